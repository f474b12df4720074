import test from 'ava';
import net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { connect, classifyPeerCertificates, type TlcpSocket } from './tlcp-socket.ts';
import { AlertDescription, TlcpAlertError, TlcpCertificateError, TlcpHandshakeError, TlcpRecordError } from './errors.ts';
import { ContentType, RecordParser, encodeRecordHeader } from './record-layer.ts';
import {
  HandshakeAssembler,
  HandshakeType,
  decodeCertificateList,
  decodeCertificateRequest,
  decodeClientHello,
  decodeEccClientKeyExchange,
  decodeEcdheClientKeyExchange,
  decodeServerHello,
  decodeServerKeyExchange,
  encodeClientHello,
  encodeHandshake,
} from './handshake-messages.ts';
import { issueDoubleCertificate } from './cert-tool.ts';
import { clientCredentials, fixtures, seededRandom, startEchoServer, testSeed } from './test-fixtures.ts';

const seed = testSeed();
console.log(`tls fuzz seed ${seed} (replay with ADMQ_SEED=${seed})`);
const random = seededRandom(seed);
const randomBuffer = (length: number): Buffer => Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));

function isTyped(error: unknown): boolean {
  return error instanceof TlcpHandshakeError || error instanceof TlcpRecordError || error instanceof TlcpCertificateError;
}

test('fuzz: decoders throw only typed errors on random and truncated input', (t) => {
  const decoders: Array<(body: Buffer) => unknown> = [
    decodeClientHello,
    decodeServerHello,
    decodeCertificateList,
    decodeCertificateRequest,
    (body) => decodeServerKeyExchange(body, 'ecc'),
    (body) => decodeServerKeyExchange(body, 'ecdhe'),
    decodeEccClientKeyExchange,
    decodeEcdheClientKeyExchange,
  ];
  const valid = encodeClientHello({ version: 0x0101, random: randomBuffer(32), sessionId: Buffer.alloc(0), cipherSuites: [0xe013, 0xe053] });
  for (let round = 0; round < 3000; round++) {
    const input = round % 3 === 0 ? valid.subarray(0, Math.floor(random() * valid.length)) : randomBuffer(Math.floor(random() * 200));
    for (const decode of decoders) {
      try {
        decode(input);
      } catch (error) {
        if (!isTyped(error)) t.fail(`untyped ${String(error)} on ${input.toString('hex')} (seed ${seed})`);
      }
    }
  }
  t.pass();
});

test('fuzz: record parser and handshake assembler on random streams', (t) => {
  for (let round = 0; round < 2000; round++) {
    const parser = new RecordParser();
    const assembler = new HandshakeAssembler();
    try {
      parser.push(randomBuffer(Math.floor(random() * 300)));
      for (let record = parser.next(); record; record = parser.next()) {
        assembler.push(record.fragment);
        while (assembler.next());
      }
    } catch (error) {
      if (!isTyped(error)) t.fail(`untyped ${String(error)} (seed ${seed})`);
    }
  }
  t.throws(() => {
    const parser = new RecordParser();
    parser.push(Buffer.from([22, 1, 1, 0xff, 0xff]));
    parser.next();
  }, { instanceOf: TlcpRecordError, message: /exceeds/ });
});

test('fuzz: a Certificate message without an enc certificate is rejected (bad_certificate)', (t) => {
  const f = fixtures();
  const error = t.throws<TlcpCertificateError>(() => classifyPeerCertificates([f.server.sign.certificate.der, f.ca.certificate.der]));
  t.is(error?.alert, AlertDescription.bad_certificate);
  t.regex(error?.message ?? '', /no enc certificate/);
  // Order does not matter: enc first, sign second is classified by usage.
  const swapped = classifyPeerCertificates([f.server.enc.certificate.der, f.server.sign.certificate.der]);
  t.true(swapped.sign.der.equals(f.server.sign.certificate.der));
});

/** Opens a raw TCP connection, sends `bytes`, collects everything until close. */
async function rawExchange(port: number, writes: Buffer[], endAfterWrites = false): Promise<Buffer> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  for (const write of writes) socket.write(write);
  if (endAfterWrites) socket.end();
  await once(socket, 'close');
  return Buffer.concat(chunks);
}

function alertIn(bytes: Buffer): number | undefined {
  const parser = new RecordParser();
  parser.push(bytes);
  try {
    for (let record = parser.next(); record; record = parser.next()) {
      if (record.type === ContentType.alert && record.fragment.length === 2) return record.fragment[1];
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function clientHelloRecord(version = 0x0101, suites = [0xe013, 0xe053]): Buffer {
  const message = encodeHandshake(HandshakeType.client_hello, encodeClientHello({ version, random: randomBuffer(32), sessionId: Buffer.alloc(0), cipherSuites: suites }));
  return Buffer.concat([encodeRecordHeader(ContentType.handshake, message.length), message]);
}

test('fuzz: bad first flights get the right alert and a closed connection; the server keeps serving', async (t) => {
  const { server, port } = await startEchoServer({ cipherSuites: ['ECC_SM4_CBC_SM3', 'ECC_SM4_GCM_SM3'] });
  t.teardown(() => server.close());
  const clientErrors: unknown[] = [];
  server.on('tlsClientError', (error: unknown) => clientErrors.push(error));
  t.is(alertIn(await rawExchange(port, [Buffer.from([22, 1, 1, 0xff, 0xff])])), AlertDescription.record_overflow);
  t.is(alertIn(await rawExchange(port, [clientHelloRecord(0x0303)])), AlertDescription.protocol_version);
  t.is(alertIn(await rawExchange(port, [clientHelloRecord(0x0101, [0xc02f, 0x1301])])), AlertDescription.handshake_failure);
  t.is(alertIn(await rawExchange(port, [Buffer.from([99, 1, 1, 0, 1, 0])])), AlertDescription.unexpected_message);
  // A complete handshake message whose ClientHello body stops after 10 bytes.
  const shortBody = encodeClientHello({ version: 0x0101, random: randomBuffer(32), sessionId: Buffer.alloc(0), cipherSuites: [0xe013] }).subarray(0, 10);
  const shortMessage = encodeHandshake(HandshakeType.client_hello, shortBody);
  const cut = Buffer.concat([encodeRecordHeader(ContentType.handshake, shortMessage.length), shortMessage]);
  t.is(alertIn(await rawExchange(port, [cut])), AlertDescription.decode_error);
  for (let i = 0; i < 20; i++) {
    const garbage = randomBuffer(1 + Math.floor(random() * 64));
    garbage[0] = 22;
    garbage[1] = 1;
    garbage[2] = 1;
    await rawExchange(port, [garbage], true);
  }
  t.true(clientErrors.every((error) => error instanceof TlcpAlertError));
  // A well-behaved client is still served.
  const good = connect({ port, servername: 'localhost', ca: [fixtures().ca.certificate], cipherSuites: ['ECC_SM4_CBC_SM3'] });
  t.teardown(() => good.destroy());
  await once(good, 'secureConnect');
});

test('fuzz: ClientHello split at every byte boundary still gets a ServerHello', async (t) => {
  const { server, port } = await startEchoServer({ cipherSuites: ['ECC_SM4_GCM_SM3'] });
  t.teardown(() => server.close());
  const hello = clientHelloRecord(0x0101, [0xe053]);
  for (let split = 1; split < hello.length; split++) {
    const socket = net.connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    socket.write(hello.subarray(0, split));
    await new Promise<void>((resolve) => setImmediate(resolve));
    socket.write(hello.subarray(split));
    const [first] = (await once(socket, 'data')) as [Buffer];
    t.is(first[0], ContentType.handshake, `split at ${split}`);
    t.is(first[5], HandshakeType.server_hello, `split at ${split}`);
    socket.destroy();
  }
});

/** TCP relay that re-chunks both directions and can tamper with records. */
async function startRelay(targetPort: number, options: { chunkMax: number; tamperClientAppData?: boolean }): Promise<{ port: number; close(): void }> {
  const relay = net.createServer((inbound) => {
    const outbound = net.connect({ port: targetPort, host: '127.0.0.1' });
    const parser = new RecordParser();
    let tampered = false;
    const forward = (from: net.Socket, to: net.Socket, inspect: boolean): void => {
      from.on('data', (chunk: Buffer) => {
        let data = chunk;
        if (inspect && options.tamperClientAppData && !tampered) {
          parser.push(chunk);
          const records: Buffer[] = [];
          for (let record = parser.next(); record; record = parser.next()) {
            const fragment = Buffer.from(record.fragment);
            if (record.type === ContentType.application_data && !tampered) {
              fragment[fragment.length - 1] = fragment[fragment.length - 1]! ^ 0x01;
              tampered = true;
            }
            records.push(encodeRecordHeader(record.type, fragment.length), fragment);
          }
          data = Buffer.concat(records);
        }
        for (let offset = 0; offset < data.length;) {
          const size = 1 + Math.floor(random() * options.chunkMax);
          to.write(data.subarray(offset, offset + size));
          offset += size;
        }
      });
      from.on('end', () => to.end());
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
    };
    forward(inbound, outbound, true);
    forward(outbound, inbound, false);
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  return { port: (relay.address() as net.AddressInfo).port, close: () => relay.close() };
}

for (const suite of ['ECC_SM4_CBC_SM3', 'ECDHE_SM4_GCM_SM3']) {
  test(`fuzz: ${suite} handshake and data through a relay cutting the stream into 1-7 byte chunks`, async (t) => {
    const { server, port } = await startEchoServer({ cipherSuites: [suite] });
    const relay = await startRelay(port, { chunkMax: 7 });
    t.teardown(() => { relay.close(); server.close(); });
    const socket = connect({ port: relay.port, servername: 'localhost', ca: [fixtures().ca.certificate], ...clientCredentials() });
    t.teardown(() => socket.destroy());
    await once(socket, 'secureConnect');
    const payload = randomBytes(20_000);
    const received: Buffer[] = [];
    let total = 0;
    const done = new Promise<void>((resolve) => socket.on('data', (chunk: Buffer) => { received.push(chunk); total += chunk.length; if (total >= payload.length) resolve(); }));
    socket.write(payload);
    await done;
    t.deepEqual(Buffer.concat(received), payload);
  });

  test(`fuzz: ${suite} record with a flipped bit gets bad_record_mac and a closed connection`, async (t) => {
    const { server, port } = await startEchoServer({ cipherSuites: [suite] });
    const relay = await startRelay(port, { chunkMax: 4096, tamperClientAppData: true });
    t.teardown(() => { relay.close(); server.close(); });
    const serverSide = once(server, 'secureConnection');
    const socket = connect({ port: relay.port, servername: 'localhost', ca: [fixtures().ca.certificate], ...clientCredentials() });
    socket.on('error', () => undefined);
    await once(socket, 'secureConnect');
    const [serverSocket] = (await serverSide) as [TlcpSocket];
    const serverError = once(serverSocket, 'error');
    socket.write(Buffer.from('this record will be tampered with'));
    const [error] = (await serverError) as [TlcpAlertError];
    t.is(error.alert, AlertDescription.bad_record_mac);
    t.is(error.direction, 'sent');
    const [clientError] = (await once(socket, 'error')) as [TlcpAlertError];
    t.is(clientError.alert, AlertDescription.bad_record_mac);
    t.is(clientError.direction, 'received');
  });
}

test('fuzz: expired server certificate gets certificate_expired', async (t) => {
  const f = fixtures();
  const expired = issueDoubleCertificate(f.ca, { region: 'cn-east', nodeId: 'n1', dnsNames: ['localhost'], notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
  const { server, port } = await startEchoServer({ sign: expired.sign, enc: expired.enc, cipherSuites: ['ECC_SM4_CBC_SM3'] });
  t.teardown(() => server.close());
  const socket = connect({ port, servername: 'localhost', ca: [f.ca.certificate] });
  const [error] = (await once(socket, 'error')) as [TlcpAlertError];
  t.is(error.alert, AlertDescription.certificate_expired);
});
