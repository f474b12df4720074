// Tests of the fault proxy over real loopback sockets (port 0). Randomized tests print their
// seed; ADMQ_SEED=<seed> replays one. Every wait is on an event, bounded by a timeout; the
// only fixed windows are the ones that assert that nothing arrives.
import test from 'ava';
import { EventEmitter, once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FaultProxy, FaultProxyError, seededRandom } from './fault-proxy.ts';

const WAIT_MS = 10_000;
/** How long "nothing arrives" is watched for. Long enough to beat scheduling noise on loopback. */
const SILENCE_MS = 300;

function testSeed(): number {
  const fromEnv = process.env['ADMQ_SEED'];
  return fromEnv !== undefined ? Number(fromEnv) >>> 0 : Math.floor(Math.random() * 2 ** 32);
}

interface TargetServer {
  port: number;
  /** Accepted sockets, in order. */
  sockets: Socket[];
  events: EventEmitter;
  close(): Promise<void>;
}

/** A target on 127.0.0.1:0: an echo server, or one that leaves its sockets to the test. */
async function startTarget(mode: 'echo' | 'manual'): Promise<TargetServer> {
  const sockets: Socket[] = [];
  const events = new EventEmitter();
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => socket.destroy());
    if (mode === 'echo') socket.pipe(socket);
    events.emit('connection', socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('target has no TCP address');
  return {
    port: address.port,
    sockets,
    events,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function connectTo(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  await withTimeout(once(socket, 'connect'), WAIT_MS, `connect to ${port}`);
  return socket;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Collects exactly `bytes` bytes from `socket`; rejects on close, error or timeout. */
function readExactly(socket: Socket, bytes: number, ms = WAIT_MS): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  let cleanup = (): void => {};
  const done = new Promise<Buffer>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= bytes) resolve(Buffer.concat(chunks));
    };
    const onClose = (): void => reject(new Error(`socket closed after ${received} of ${bytes} bytes`));
    const onError = (error: Error): void => reject(error);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onError);
    cleanup = () => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
  });
  return withTimeout(done, ms, `${bytes} bytes (got ${received})`).finally(() => cleanup());
}

/** Resolves true if no byte arrives on `socket` within `ms`. */
function staysSilent(socket: Socket, ms = SILENCE_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const onData = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      socket.off('data', onData);
      resolve(true);
    }, ms);
    socket.once('data', onData);
  });
}

/** Waits for the socket to close; resolves with the error it closed with, if any. */
async function closedWith(socket: Socket): Promise<Error | undefined> {
  let error: Error | undefined;
  socket.on('error', (e) => (error = e));
  // Not events.once: it would reject on the very 'error' this helper wants to report.
  if (!socket.destroyed) await withTimeout(new Promise((resolve) => socket.once('close', resolve)), WAIT_MS, 'socket close');
  return error;
}

function randomBytes(random: () => number, length: number): Buffer {
  const buffer = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) buffer[i] = Math.floor(random() * 256);
  return buffer;
}

test('fault-proxy: bytes pass through unchanged and in order (random chunks, changing delay)', async (t) => {
  const seed = testSeed();
  t.log(`seed ${seed} (replay with ADMQ_SEED=${seed})`);
  const random = seededRandom(seed);
  const target = await startTarget('echo');
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port, name: 'passthrough' });
  t.teardown(async () => {
    await proxy.close();
    await target.close();
  });
  const clients = await Promise.all([connectTo(proxy.port), connectTo(proxy.port)]);
  let totalBytes = 0;
  await Promise.all(
    clients.map(async (client) => {
      const chunkCount = 20 + Math.floor(random() * 80);
      const chunks: Buffer[] = [];
      for (let i = 0; i < chunkCount; i++) chunks.push(randomBytes(random, 1 + Math.floor(random() * 65_536)));
      const sent = Buffer.concat(chunks);
      totalBytes += sent.length;
      const echoed = readExactly(client, sent.length);
      for (const chunk of chunks) {
        // A shrinking delay between two chunks must not let the second overtake the first.
        proxy.setDelay(Math.floor(random() * 4));
        client.write(chunk);
      }
      const received = await echoed;
      t.is(received.length, sent.length);
      t.true(received.equals(sent), 'echoed bytes differ from the bytes sent');
    }),
  );
  const stats = proxy.stats();
  t.is(stats.bytesForward, totalBytes);
  t.is(stats.bytesBackward, totalBytes);
  t.is(stats.connections, 2);
  for (const client of clients) client.destroy();
});

test('fault-proxy: a small queue bound pauses the sender and loses nothing (64 KiB bound, 20 ms delay)', async (t) => {
  const seed = testSeed();
  t.log(`seed ${seed} (replay with ADMQ_SEED=${seed})`);
  const target = await startTarget('echo');
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port, queueBytesMax: 64 * 1024 });
  t.teardown(async () => {
    await proxy.close();
    await target.close();
  });
  proxy.setDelay(20);
  const client = await connectTo(proxy.port);
  const sent = randomBytes(seededRandom(seed), 2 * 1024 * 1024);
  const echoed = readExactly(client, sent.length);
  client.write(sent);
  t.true((await echoed).equals(sent));
  client.destroy();
});

test('fault-proxy: a half close travels as a FIN both ways', async (t) => {
  const target = await startTarget('echo');
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port });
  t.teardown(async () => {
    await proxy.close();
    await target.close();
  });
  const client = await connectTo(proxy.port);
  const echoed = readExactly(client, 5);
  client.end('hello');
  t.is((await echoed).toString(), 'hello');
  // The echo server ends its side when it sees our FIN; that FIN must reach us too.
  const error = await closedWith(client);
  t.is(error, undefined);
});

test('fault-proxy: setDelay(50) makes a round trip take at least 100 ms', async (t) => {
  const target = await startTarget('echo');
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port });
  t.teardown(async () => {
    await proxy.close();
    await target.close();
  });
  const client = await connectTo(proxy.port);
  // One undelayed round trip first, so that the target connection is up before timing.
  const warm = readExactly(client, 1);
  client.write('w');
  await warm;
  proxy.setDelay(50);
  const startedMs = performance.now();
  const echoed = readExactly(client, 4);
  client.write('ping');
  t.is((await echoed).toString(), 'ping');
  const roundTripMs = performance.now() - startedMs;
  t.log(`round trip ${roundTripMs.toFixed(1)} ms`);
  t.true(roundTripMs >= 100, `round trip took ${roundTripMs} ms`);
  client.destroy();
});

test('fault-proxy: blackhole both stops data without closing; heal resets it and a new connection works', async (t) => {
  const target = await startTarget('manual');
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port });
  t.teardown(async () => {
    await proxy.close();
    await target.close();
  });
  const accepted = once(target.events, 'connection') as Promise<[Socket]>;
  const client = await connectTo(proxy.port);
  const [server] = await withTimeout(accepted, WAIT_MS, 'target accepts');
  proxy.blackhole('both');
  const serverSilent = staysSilent(server);
  const clientSilent = staysSilent(client);
  client.write('to server');
  server.write('to client');
  t.true(await serverSilent, 'client data crossed a blackhole');
  t.true(await clientSilent, 'server data crossed a blackhole');
  t.false(client.destroyed, 'a blackhole must not close the connection');

  // A connection opened during the partition never reaches the target.
  const duringPartition = await connectTo(proxy.port);
  t.true(await staysSilent(duringPartition));
  t.is(target.sockets.length, 1);

  const clientClosed = closedWith(client);
  const duringClosed = closedWith(duringPartition);
  proxy.heal();
  t.is((await clientClosed)?.message.includes('ECONNRESET'), true);
  t.truthy(await duringClosed);

  const fresh = await connectTo(proxy.port);
  const [freshServer] = (await withTimeout(once(target.events, 'connection'), WAIT_MS, 'target accepts after heal')) as [Socket];
  const got = readExactly(freshServer, 5);
  fresh.write('again');
  t.is((await got).toString(), 'again');
  fresh.destroy();
});

test('fault-proxy: blackhole forward holds client→target while target→client still flows', async (t) => {
  const target = await startTarget('manual');
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port });
  t.teardown(async () => {
    await proxy.close();
    await target.close();
  });
  const accepted = once(target.events, 'connection') as Promise<[Socket]>;
  const client = await connectTo(proxy.port);
  const [server] = await withTimeout(accepted, WAIT_MS, 'target accepts');
  proxy.blackhole('forward');
  const serverSilent = staysSilent(server);
  client.write('ping');
  const toClient = readExactly(client, 4);
  server.write('pong');
  t.is((await toClient).toString(), 'pong');
  t.true(await serverSilent, 'client data crossed a forward blackhole');
  client.destroy();
});

test('fault-proxy: blackhole backward holds target→client while client→target still flows', async (t) => {
  const target = await startTarget('manual');
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port });
  t.teardown(async () => {
    await proxy.close();
    await target.close();
  });
  const accepted = once(target.events, 'connection') as Promise<[Socket]>;
  const client = await connectTo(proxy.port);
  const [server] = await withTimeout(accepted, WAIT_MS, 'target accepts');
  proxy.blackhole('backward');
  const clientSilent = staysSilent(client);
  server.write('pong');
  const toServer = readExactly(server, 4);
  client.write('ping');
  t.is((await toServer).toString(), 'ping');
  t.true(await clientSilent, 'server data crossed a backward blackhole');
  client.destroy();
});

test('fault-proxy: 1 MiB at 1 MiB/s takes at least 0.9 s', async (t) => {
  const target = await startTarget('manual');
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port });
  t.teardown(async () => {
    await proxy.close();
    await target.close();
  });
  const mebibyte = 1024 * 1024;
  proxy.setBandwidth(mebibyte);
  const accepted = once(target.events, 'connection') as Promise<[Socket]>;
  const client = await connectTo(proxy.port);
  const [server] = await withTimeout(accepted, WAIT_MS, 'target accepts');
  const received = readExactly(server, mebibyte);
  const startedMs = performance.now();
  client.write(Buffer.alloc(mebibyte, 7));
  await received;
  const elapsedMs = performance.now() - startedMs;
  t.log(`1 MiB in ${elapsedMs.toFixed(0)} ms`);
  t.true(elapsedMs >= 900, `took only ${elapsedMs} ms`);
  t.true(elapsedMs < 5_000, `took ${elapsedMs} ms; the cap is far too tight`);
  t.is(proxy.stats().bytesForward, mebibyte);
  client.destroy();
});

test('fault-proxy: resetAll closes clients with ECONNRESET', async (t) => {
  const target = await startTarget('echo');
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port });
  t.teardown(async () => {
    await proxy.close();
    await target.close();
  });
  const clients = await Promise.all([connectTo(proxy.port), connectTo(proxy.port)]);
  for (const client of clients) {
    const echoed = readExactly(client, 2);
    client.write('hi');
    await echoed;
  }
  t.is(proxy.stats().connections, 2);
  const closed = clients.map((client) => closedWith(client));
  proxy.resetAll();
  for (const error of await Promise.all(closed)) t.is((error as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET');
  t.is(proxy.stats().connections, 0);
});

test('fault-proxy: loss 1 resets a connection on its first data, loss 0 lets it through', async (t) => {
  const target = await startTarget('echo');
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port, random: () => 0.5 });
  t.teardown(async () => {
    await proxy.close();
    await target.close();
  });
  proxy.setLoss(1);
  const lossy = await connectTo(proxy.port);
  const closed = closedWith(lossy);
  lossy.write('x');
  t.is(((await closed) as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET');
  proxy.setLoss(0.4); // The injected draw is always 0.5: never lost.
  const fine = await connectTo(proxy.port);
  const echoed = readExactly(fine, 2);
  fine.write('ok');
  t.is((await echoed).toString(), 'ok');
  fine.destroy();
});

test('fault-proxy: close() is idempotent and frees the port', async (t) => {
  const target = await startTarget('echo');
  t.teardown(() => target.close());
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port });
  const client = await connectTo(proxy.port);
  const closed = closedWith(client);
  await Promise.all([proxy.close(), proxy.close()]);
  await proxy.close();
  t.truthy(await closed);
  // The port can be bound again at once.
  const again = createServer();
  again.listen(proxy.port, '127.0.0.1');
  await withTimeout(once(again, 'listening'), WAIT_MS, 'rebinding the port');
  await new Promise<void>((resolve) => again.close(() => resolve()));
  t.pass();
});

test('fault-proxy: bad options are refused with a message naming the field', async (t) => {
  await t.throwsAsync(FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 0 }), { instanceOf: FaultProxyError, message: /targetPort/ });
  await t.throwsAsync(FaultProxy.start({ targetHost: '', targetPort: 1 }), { message: /targetHost/ });
  await t.throwsAsync(FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 1, queueBytesMax: -1 }), { message: /queueBytesMax/ });
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 1, name: 'a->b' });
  t.teardown(() => proxy.close());
  t.throws(() => proxy.setDelay(-1), { message: /a->b.*oneWayMs/ });
  t.throws(() => proxy.setLoss(2), { message: /probability/ });
  t.throws(() => proxy.setBandwidth(0), { message: /bytesPerSecond/ });
  t.is(proxy.address, `127.0.0.1:${proxy.port}`);
});
