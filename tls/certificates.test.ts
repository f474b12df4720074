import test from 'ava';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createCa, describeCertificate, issueDoubleCertificate, loadIssued, verifyCertificateFile, writeIssued } from './cert-tool.ts';
import { certificateRole, parseCertificateDer, parsePrivateKeyPem, verifyCertificateChain, verifyCertificateSignature, certificateMatchesName } from './certificates.ts';
import { TlcpCertificateError } from './errors.ts';
import { AlertDescription } from './errors.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';

const ca = createCa({ commonName: 'admq test root', organization: 'admq' });
const node = issueDoubleCertificate(ca, { region: 'cn-east', nodeId: 'n1', dnsNames: ['localhost'] });

test('certs: CA is self-signed SM2-with-SM3 and marked CA', (t) => {
  t.true(ca.certificate.isCa);
  t.is(ca.certificate.signatureAlgorithm, '1.2.156.10197.1.501');
  t.true(verifyCertificateSignature(ca.certificate, ca.certificate));
  t.is(certificateRole(ca.certificate), 'ca');
});

test('certs: node sign and enc certificates carry the right key usages and names', (t) => {
  t.deepEqual([...node.sign.certificate.keyUsage!].sort(), ['digitalSignature', 'nonRepudiation']);
  t.deepEqual([...node.enc.certificate.keyUsage!].sort(), ['dataEncipherment', 'keyAgreement', 'keyEncipherment']);
  t.is(certificateRole(node.sign.certificate), 'sign');
  t.is(certificateRole(node.enc.certificate), 'enc');
  t.is(node.sign.certificate.subject.CN, 'n1.cn-east.admq');
  t.is(node.sign.certificate.subject.OU, 'cn-east');
  t.deepEqual(node.sign.certificate.dnsNames, ['n1.cn-east.admq', 'localhost']);
  t.deepEqual(node.sign.certificate.uris, ['admq://cn-east/n1']);
  t.true(certificateMatchesName(node.sign.certificate, 'localhost'));
  t.false(certificateMatchesName(node.sign.certificate, 'n2.cn-east.admq'));
});

test('certs: OpenSSL (via node:crypto X509Certificate) parses our certificates', (t) => {
  // An independent DER/X.509 parser reads the structure we built.
  const x509 = new X509Certificate(node.sign.certificatePem);
  t.regex(x509.subject, /CN=n1\.cn-east\.admq/);
  t.regex(x509.subjectAltName ?? '', /DNS:localhost/);
  t.regex(x509.subjectAltName ?? '', /URI:admq:\/\/cn-east\/n1/);
  t.true(x509.checkIssued(new X509Certificate(ca.certificatePem)));
  t.is(x509.serialNumber.toLowerCase(), node.sign.certificate.serialNumber.toLowerCase().replace(/^0+/, '').padStart(x509.serialNumber.length, '0'));
});

test('certs: chain validation accepts a good chain and checks role and name', (t) => {
  const path = verifyCertificateChain(node.enc.certificate, { ca: [ca.certificate], role: 'enc', name: 'n1.cn-east.admq' });
  t.is(path.length, 2);
  const roleError = t.throws<TlcpCertificateError>(() => verifyCertificateChain(node.enc.certificate, { ca: [ca.certificate], role: 'sign' }), { instanceOf: TlcpCertificateError });
  t.is(roleError?.alert, AlertDescription.unsupported_certificate);
  t.is(roleError?.code, 'ADMQ_ERR_TLCP_CERT');
  t.throws<TlcpCertificateError>(() => verifyCertificateChain(node.sign.certificate, { ca: [ca.certificate], name: 'evil.example' }), { instanceOf: TlcpCertificateError });
});

test('certs: expired, unknown-CA and wrongly signed certificates are rejected with the right alert', (t) => {
  const expired = issueDoubleCertificate(ca, { region: 'cn-east', nodeId: 'old', notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
  t.is(t.throws<TlcpCertificateError>(() => verifyCertificateChain(expired.sign.certificate, { ca: [ca.certificate] }))?.alert, AlertDescription.certificate_expired);
  const otherCa = createCa({ commonName: 'other root' });
  t.is(t.throws<TlcpCertificateError>(() => verifyCertificateChain(node.sign.certificate, { ca: [otherCa.certificate] }))?.alert, AlertDescription.unknown_ca);
  // Same subject as the real CA, different key: the signature does not verify.
  const impostorCa = createCa({ commonName: 'admq test root', organization: 'admq' });
  const forged = issueDoubleCertificate(impostorCa, { region: 'cn-east', nodeId: 'n1' });
  t.is(t.throws<TlcpCertificateError>(() => verifyCertificateChain(forged.sign.certificate, { ca: [ca.certificate] }))?.alert, AlertDescription.bad_certificate);
  // A flipped bit in the signed part breaks the signature.
  const der = Buffer.from(node.sign.certificate.der);
  const index = der.indexOf(Buffer.from('cn-east'));
  der[index] = 'C'.charCodeAt(0);
  t.false(verifyCertificateSignature(parseCertificateDer(der), ca.certificate));
});

test('certs: PEM files round-trip through write, load, inspect and verify', async (t) => {
  const directory = tempDir('admq-certs-');
  t.teardown(() => removeTempDir(directory));
  await writeIssued(directory, 'ca', ca);
  const paths = await writeIssued(directory, 'n1-sign', node.sign);
  const loaded = await loadIssued(paths.certificatePath, paths.keyPath);
  t.deepEqual(loaded.keyPair.privateKey, node.sign.keyPair.privateKey);
  t.deepEqual(parsePrivateKeyPem(node.enc.keyPem).publicKey, node.enc.keyPair.publicKey);
  t.regex(describeCertificate(loaded.certificate), /Role: +sign/);
  const result = await verifyCertificateFile(paths.certificatePath, join(directory, 'ca.crt'), { role: 'sign' });
  t.true(result.ok, result.message);
  const wrongRole = await verifyCertificateFile(paths.certificatePath, join(directory, 'ca.crt'), { role: 'enc' });
  t.false(wrongRole.ok);
});
