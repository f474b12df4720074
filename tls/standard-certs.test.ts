// Standard certificates for the "tls" transport: issued by the deployment's CA, naming the
// region, and good for a mutually authenticated TLS 1.3 connection on Node's own stack.
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import test from 'ava';
import { TlcpConfigError } from './errors.ts';
import { createStandardCa, issueStandardCertificate, writeStandardRegionCertificate } from './standard-certs.ts';
import { tempDir } from '../test-support/temp-dir.ts';

test('standard certificates: signed by the CA, region in OU and DNS name, mutual TLS 1.3 between two regions', async (t) => {
  const ca = createStandardCa();
  const shanghai = issueStandardCertificate(ca, 'shanghai');
  const beijing = issueStandardCertificate(ca, 'beijing');
  const caCert = new X509Certificate(ca.certificatePem);
  const cert = new X509Certificate(shanghai.certificatePem);
  t.true(cert.checkIssued(caCert) && cert.verify(caCert.publicKey));
  t.regex(cert.subject, /OU=shanghai/);
  t.regex(cert.subjectAltName ?? '', /DNS:shanghai\.admq/);
  t.false(cert.ca);
  const server = tls.createServer({ key: shanghai.keyPem, cert: shanghai.certificatePem, ca: ca.certificatePem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
  const peers: string[] = [];
  server.on('secureConnection', (socket) => {
    peers.push(String(socket.getPeerCertificate().subject.OU));
    socket.end('hello');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const client = tls.connect({ host: '127.0.0.1', port, servername: 'shanghai.admq', key: beijing.keyPem, cert: beijing.certificatePem, ca: ca.certificatePem });
  await once(client, 'secureConnect');
  t.is(client.getProtocol(), 'TLSv1.3');
  t.is(client.getPeerCertificate().subject.OU, 'shanghai');
  const [data] = (await once(client, 'data')) as [Buffer];
  t.is(data.toString(), 'hello');
  t.deepEqual(peers, ['beijing']);
  client.destroy();
  // A client without a certificate of this CA is refused.
  const stranger = createStandardCa('another CA');
  const rogue = issueStandardCertificate(stranger, 'beijing');
  const refused = tls.connect({ host: '127.0.0.1', port, servername: 'shanghai.admq', key: rogue.keyPem, cert: rogue.certificatePem, ca: ca.certificatePem });
  const outcome = await Promise.race([once(refused, 'error').then(() => 'error'), once(refused, 'close').then(() => 'closed')]);
  t.true(outcome === 'error' || outcome === 'closed');
  t.deepEqual(peers, ['beijing'], 'the rogue never reached the application');
  t.throws(() => issueStandardCertificate(ca, 'Bad Region'), { instanceOf: TlcpConfigError });
});

test('admq certs create-tls writes the CA once and a certificate per region', async (t) => {
  const dir = tempDir('admq-tls-certs-');
  const first = await writeStandardRegionCertificate(dir, 'shanghai');
  const second = await writeStandardRegionCertificate(dir, 'beijing');
  t.deepEqual(first.map((p) => p.slice(dir.length + 1)), ['tls-ca.crt', 'tls-ca.key', 'shanghai-tls.crt', 'shanghai-tls.key']);
  t.deepEqual(second.map((p) => p.slice(dir.length + 1)), ['beijing-tls.crt', 'beijing-tls.key'], 'the CA is reused');
  const caCert = new X509Certificate(readFileSync(join(dir, 'tls-ca.crt')));
  for (const region of ['shanghai', 'beijing']) t.true(new X509Certificate(readFileSync(join(dir, `${region}-tls.crt`))).checkIssued(caCert));
});
