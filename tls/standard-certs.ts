/**
 * Standard X.509 certificates (RSA-2048, SHA-256) for the `tls` transport: Node's own
 * TLS 1.3, for deployments and clients that cannot use TLCP. One CA per deployment
 * (`tls-ca.crt`, `tls-ca.key`) and one certificate per region (`<region>-tls.crt`, `.key`)
 * usable both as server and as client (mutual authentication between regions). The
 * region's name is the subject's OU, as in the SM2 certificates, and the DNS name
 * `<region>.admq` is what a dialling region checks.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import { TlcpConfigError } from './errors.ts';

export interface StandardIssued {
  readonly certificatePem: string;
  readonly keyPem: string;
}

const REGION_NAME = /^[a-z][a-z0-9-]{0,62}$/;

function newKeyPair(): { forgeKey: forge.pki.rsa.PrivateKey; forgePublic: forge.pki.rsa.PublicKey; keyPem: string } {
  // Node generates the key (native, fast); forge only builds and signs the certificate.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const forgePublic = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
  return { forgeKey, forgePublic, keyPem };
}

function newCertificate(publicKey: forge.pki.rsa.PublicKey, validDays: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: the top bit clear.
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + validDays * 86_400_000);
  return cert;
}

export function createStandardCa(commonName = 'admq TLS root CA', validDays = 3650): StandardIssued {
  const { forgeKey, forgePublic, keyPem } = newKeyPair();
  const cert = newCertificate(forgePublic, validDays);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forgeKey, forge.md.sha256.create());
  return { certificatePem: forge.pki.certificateToPem(cert), keyPem };
}

export function issueStandardCertificate(ca: StandardIssued, region: string, validDays = 825): StandardIssued {
  if (!REGION_NAME.test(region)) throw new TlcpConfigError(`region must be a lowercase name (a-z, 0-9, -), got ${JSON.stringify(region)}`);
  const caCert = forge.pki.certificateFromPem(ca.certificatePem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const { forgePublic, keyPem } = newKeyPair();
  const cert = newCertificate(forgePublic, validDays);
  cert.setSubject([
    { name: 'commonName', value: `${region}.admq` },
    { shortName: 'OU', value: region },
  ]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: `${region}.admq` }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certificatePem: forge.pki.certificateToPem(cert), keyPem };
}

/**
 * Writes `<region>-tls.crt/.key` under `dir`, creating the deployment's `tls-ca.crt/.key`
 * first if it is missing. Returns the paths written.
 */
export async function writeStandardRegionCertificate(dir: string, region: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  let ca: StandardIssued;
  if (existsSync(join(dir, 'tls-ca.crt'))) {
    ca = { certificatePem: await readFile(join(dir, 'tls-ca.crt'), 'utf8'), keyPem: await readFile(join(dir, 'tls-ca.key'), 'utf8') };
  } else {
    ca = createStandardCa();
    await writeFile(join(dir, 'tls-ca.crt'), ca.certificatePem);
    await writeFile(join(dir, 'tls-ca.key'), ca.keyPem, { mode: 0o600 });
    written.push(join(dir, 'tls-ca.crt'), join(dir, 'tls-ca.key'));
  }
  const issued = issueStandardCertificate(ca, region);
  await writeFile(join(dir, `${region}-tls.crt`), issued.certificatePem);
  await writeFile(join(dir, `${region}-tls.key`), issued.keyPem, { mode: 0o600 });
  written.push(join(dir, `${region}-tls.crt`), join(dir, `${region}-tls.key`));
  return written;
}
