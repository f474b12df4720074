import test from 'ava';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { connect, type TlcpSocket } from './tlcp-socket.ts';
import { TlcpAlertError, AlertDescription } from './errors.ts';
import { clientCredentials, fixtures, startEchoServer } from './test-fixtures.ts';

async function echo(socket: TlcpSocket, payload: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= payload.length) resolve();
    });
    socket.once('error', reject);
  });
  socket.write(payload);
  await done;
  return Buffer.concat(chunks);
}

for (const suite of ['ECC_SM4_CBC_SM3', 'ECC_SM4_GCM_SM3', 'ECDHE_SM4_CBC_SM3', 'ECDHE_SM4_GCM_SM3']) {
  test(`handshake: ${suite} with double certificates, 100 KiB echoed over real sockets`, async (t) => {
    const { server, port } = await startEchoServer({ cipherSuites: [suite] });
    t.teardown(() => server.close());
    const f = fixtures();
    const secureServerSide = once(server, 'secureConnection');
    const socket = connect({ port, host: '127.0.0.1', servername: 'n1.cn-east.admq', ca: [f.ca.certificate], ...clientCredentials() });
    t.teardown(() => socket.destroy());
    await once(socket, 'secureConnect');
    t.is(socket.cipherSuite, suite);
    t.true(socket.authorized);
    t.is(socket.peerCertificates?.sign.subject.CN, 'n1.cn-east.admq');
    t.is(socket.peerCertificates?.enc.keyUsage?.has('keyEncipherment'), true);
    const payload = randomBytes(100 * 1024);
    t.deepEqual(await echo(socket, payload), payload);
    const [serverSocket] = (await secureServerSide) as [TlcpSocket];
    t.is(serverSocket.cipherSuite, suite);
    if (suite.startsWith('ECDHE')) t.is(serverSocket.peerCertificates?.sign.subject.CN, 'n7.cn-west.admq');
  });
}

test('handshake: ECC without client certificates (server does not request them)', async (t) => {
  const { server, port } = await startEchoServer({ cipherSuites: ['ECC_SM4_GCM_SM3'] });
  t.teardown(() => server.close());
  const socket = connect({ port, servername: 'localhost', ca: [fixtures().ca.certificate] });
  t.teardown(() => socket.destroy());
  await once(socket, 'secureConnect');
  const payload = Buffer.from('hello over tlcp');
  t.deepEqual(await echo(socket, payload), payload);
});

test('handshake: mutual authentication with requestCert exposes the client identity to the server', async (t) => {
  const { server, port } = await startEchoServer({ cipherSuites: ['ECC_SM4_CBC_SM3'], requestCert: true });
  t.teardown(() => server.close());
  const serverSide = once(server, 'secureConnection');
  const socket = connect({ port, servername: 'localhost', ca: [fixtures().ca.certificate], ...clientCredentials() });
  t.teardown(() => socket.destroy());
  await once(socket, 'secureConnect');
  const [serverSocket] = (await serverSide) as [TlcpSocket];
  t.true(serverSocket.authorized);
  t.deepEqual(serverSocket.peerCertificates?.sign.uris, ['admq://cn-west/n7']);
});

test('handshake: client rejects a server whose chain is from an unknown CA (unknown_ca), server keeps serving', async (t) => {
  const f = fixtures();
  const { server, port } = await startEchoServer({ sign: f.stranger.sign, enc: f.stranger.enc, ca: [f.otherCa.certificate] });
  t.teardown(() => server.close());
  const serverError = once(server, 'tlsClientError');
  const bad = connect({ port, servername: 'localhost', ca: [f.ca.certificate] });
  const [error] = (await once(bad, 'error').catch((e: unknown) => [e])) as [TlcpAlertError];
  t.true(error instanceof TlcpAlertError);
  t.is(error.alert, AlertDescription.unknown_ca);
  t.is(error.direction, 'sent');
  const [serverSideError] = (await serverError) as [TlcpAlertError];
  t.is(serverSideError.alert, AlertDescription.unknown_ca);
  t.is(serverSideError.direction, 'received');
  // Another client that trusts the other CA still gets served.
  const good = connect({ port, servername: 'localhost', ca: [f.otherCa.certificate], cipherSuites: ['ECC_SM4_GCM_SM3'] });
  t.teardown(() => good.destroy());
  await once(good, 'secureConnect');
  t.deepEqual(await echo(good, Buffer.from('still here')), Buffer.from('still here'));
});

test('handshake: wrong server name is rejected with bad_certificate', async (t) => {
  const { server, port } = await startEchoServer();
  t.teardown(() => server.close());
  const socket = connect({ port, servername: 'n2.cn-east.admq', ca: [fixtures().ca.certificate], ...clientCredentials() });
  const [error] = (await once(socket, 'error').catch((e: unknown) => [e])) as [TlcpAlertError];
  t.is(error.alert, AlertDescription.bad_certificate);
});

test('handshake: no common suite gives handshake_failure', async (t) => {
  const { server, port } = await startEchoServer({ cipherSuites: ['ECC_SM4_CBC_SM3'] });
  t.teardown(() => server.close());
  const socket = connect({ port, servername: 'localhost', ca: [fixtures().ca.certificate], cipherSuites: ['ECC_SM4_GCM_SM3'] });
  const [error] = (await once(socket, 'error').catch((e: unknown) => [e])) as [TlcpAlertError];
  t.is(error.alert, AlertDescription.handshake_failure);
  t.is(error.direction, 'received');
});

test('close_notify: end() on one side ends the other side cleanly', async (t) => {
  const { server, port } = await startEchoServer();
  t.teardown(() => server.close());
  const socket = connect({ port, servername: 'localhost', ca: [fixtures().ca.certificate], ...clientCredentials() });
  await once(socket, 'secureConnect');
  socket.resume();
  socket.end();
  await once(socket, 'close');
  t.pass();
});
