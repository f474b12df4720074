// The storage node as a network service: the wire codec against protobufjs, the protocol
// over loopback (many adds in flight, fencing, restore, typed errors, bounded in-flight,
// deadlines), the registry in a metadata store (embedded, and a real etcd with real
// storage node processes that are SIGKILLed), durability across kill -9, and a fuzz of the
// service with random and mangled frames.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { etcdAvailable, startEtcd } from '../../test-support/etcd.ts';
import { prng, seedFromEnv } from '../../test-support/random.ts';
import { EtcdMetadataStore } from '../metadata-store/etcd-store.ts';
import { LmdbMetadataStore } from '../metadata-store/lmdb-store.ts';
import { tempDir } from '../../test-support/temp-dir.ts';
import { MetadataKeys, type StorageNodeInfo } from './ledger-types.ts';
import { StorageNodeClient, StorageNodeDirectory } from './storage-node-client.ts';
import { STORAGE_NODE_ERROR_CODES, StorageNodeError } from './storage-node-errors.ts';
import { StorageNodeServer } from './storage-node-server.ts';
import { SESSION_PATH, decodeRequest, decodeResponse, encodeRequest, encodeResponse, type StorageRequest, type StorageResponse } from './storage-node-wire.ts';

const seed = seedFromEnv();
test.before(() => console.log(`storage node tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const dir = () => tempDir('admq-storage-node-');
const quiet = () => {};
const MAIN = fileURLToPath(new URL('./storage-node-main.ts', import.meta.url));

async function startServer(t: { teardown(fn: () => Promise<void>): void }, options: Partial<Parameters<typeof StorageNodeServer.start>[0]> = {}): Promise<StorageNodeServer> {
  const server = await StorageNodeServer.start({ dataDir: dir(), port: 0, nodeId: 'sn-test', log: quiet, ...options });
  t.teardown(() => server.close());
  return server;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    if (!(error instanceof StorageNodeError)) return `untyped: ${String(error)}`;
    return error.code;
  }
}

// ---- the wire codec ---------------------------------------------------------------------

const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/storage-node.proto', import.meta.url)));
const PbRequest = root.lookupType('admq.storage.v1.StorageRequest');
const PbResponse = root.lookupType('admq.storage.v1.StorageResponse');
const pbOptions = { longs: Number, bytes: Buffer, defaults: true, oneofs: true };

type Obj = Record<string, unknown>;

function requestFromPb(bytes: Buffer): StorageRequest {
  const o = PbRequest.toObject(PbRequest.decode(bytes), pbOptions) as Obj;
  const requestId = o.requestId as number;
  const op = o.op as string;
  const m = o[op] as Obj;
  switch (op) {
    case 'add':
      return { op, requestId, ledgerId: m.ledgerId as number, entryId: m.entryId as number, lac: m.lac as number, payload: m.payload as Buffer, writer: m.writer as string };
    case 'read':
      return { op, requestId, ledgerId: m.ledgerId as number, entryId: m.entryId as number };
    case 'readLac':
    case 'fence':
      return { op, requestId, ledgerId: m.ledgerId as number };
    default:
      return { op: 'restore', requestId, ledgerId: m.ledgerId as number, entryId: m.entryId as number, payload: m.payload as Buffer };
  }
}

function requestToPb(r: StorageRequest): Buffer {
  const { op, requestId, ...fields } = r;
  return Buffer.from(PbRequest.encode(PbRequest.fromObject({ requestId, [op]: fields })).finish());
}

function responseFromPb(bytes: Buffer): StorageResponse {
  const o = PbResponse.toObject(PbResponse.decode(bytes), pbOptions) as Obj;
  const requestId = o.requestId as number;
  const m = o[o.result as string] as Obj;
  switch (o.result) {
    case 'done':
      return { result: 'done', requestId };
    case 'entry':
      return { result: 'entry', requestId, payload: m.payload as Buffer };
    case 'state':
      return { result: 'state', requestId, lac: m.lac as number, last: m.last as number, fenced: m.fenced as boolean };
    default:
      return { result: 'error', requestId, code: m.code as string, message: m.message as string };
  }
}

function responseToPb(r: StorageResponse): Buffer {
  const { result, requestId, ...fields } = r;
  return Buffer.from(PbResponse.encode(PbResponse.fromObject({ requestId, [result]: fields })).finish());
}

const requestId = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const ledgerId = fc.integer({ min: 0, max: 0xffffffff });
const entryId = fc.maxSafeNat();
const position = fc.integer({ min: -1, max: 2 ** 50 });
const payload = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
const text = fc.string({ maxLength: 12 });

const requestArb: fc.Arbitrary<StorageRequest> = fc.oneof(
  fc.record({ op: fc.constant('add' as const), requestId, ledgerId, entryId, lac: position, payload, writer: text }),
  fc.record({ op: fc.constant('read' as const), requestId, ledgerId, entryId }),
  fc.record({ op: fc.constant('readLac' as const), requestId, ledgerId }),
  fc.record({ op: fc.constant('fence' as const), requestId, ledgerId }),
  fc.record({ op: fc.constant('restore' as const), requestId, ledgerId, entryId, payload }),
);

const responseArb: fc.Arbitrary<StorageResponse> = fc.oneof(
  fc.record({ result: fc.constant('done' as const), requestId }),
  fc.record({ result: fc.constant('entry' as const), requestId, payload }),
  fc.record({ result: fc.constant('state' as const), requestId, lac: position, last: position, fenced: fc.boolean() }),
  fc.record({ result: fc.constant('error' as const), requestId, code: text, message: text }),
);

test('storage node wire: the hand-written codec and protobufjs agree on every request and response, both ways', (t) => {
  fc.assert(
    fc.property(requestArb, (request) => {
      const ours = encodeRequest(request);
      t.deepEqual(requestFromPb(ours), request);
      t.deepEqual(decodeRequest(requestToPb(request)), request);
      t.deepEqual(decodeRequest(ours), request);
    }),
    { seed, numRuns: 500 },
  );
  fc.assert(
    fc.property(responseArb, (response) => {
      const ours = encodeResponse(response);
      t.deepEqual(responseFromPb(ours), response);
      t.deepEqual(decodeResponse(responseToPb(response)), response);
    }),
    { seed, numRuns: 500 },
  );
});

test('storage node wire: truncated and random bytes decode to a request or `malformed`, and a response decoder fails only with a RangeError', (t) => {
  const add = encodeRequest({ op: 'add', requestId: 42, ledgerId: 7, entryId: 300, lac: 299, payload: Buffer.from('hello'), writer: 'w' });
  for (let cut = 1; cut < add.length; cut++) {
    const decoded = decodeRequest(add.subarray(0, cut));
    t.is(decoded.op, 'malformed', `cut at ${cut}`);
  }
  // The request id is read before the damage, so the error answer reaches its request.
  t.is(decodeRequest(add.subarray(0, add.length - 1)).requestId, 42);
  t.is(decodeRequest(Buffer.alloc(0)).op, 'malformed');
  const state = encodeResponse({ result: 'state', requestId: 9, lac: 3, last: 4, fenced: true });
  for (let cut = 1; cut < state.length; cut++) t.throws(() => decodeResponse(state.subarray(0, cut)), { instanceOf: RangeError }, `cut at ${cut}`);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const decoded = decodeRequest(Buffer.from(bytes));
      t.true(['malformed', 'add', 'read', 'readLac', 'fence', 'restore'].includes(decoded.op));
      try {
        decodeResponse(Buffer.from(bytes));
      } catch (error) {
        t.true(error instanceof RangeError, String(error));
      }
    }),
    { seed, numRuns: 3000 },
  );
});

// ---- the protocol over loopback -----------------------------------------------------------

// The tests with deadlines (5 s for 2,000 pipelined adds; 300 ms for a silent node) run
// serially, before the concurrent ones of this file that start node processes: on a slow
// 2-core machine those starts starved the in-process server past its deadline.
test.serial('storage node: 2,000 adds in flight on one connection are acknowledged and readable; readLac and fence over the wire', async (t) => {
  const server = await startServer(t);
  const client = new StorageNodeClient(server.nodeId, server.address);
  t.teardown(() => client.close());
  // Issued in a shuffled order, all at once: the client pipelines them on one stream.
  const random = prng(seed);
  const ids = Array.from({ length: 2000 }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [ids[i], ids[j]] = [ids[j] as number, ids[i] as number];
  }
  const adds = ids.map((e) => client.add(1, e, e - 1, Buffer.from(`entry-${e}`), 'writer-a'));
  t.true(client.inFlight > 1, 'adds are pipelined');
  await Promise.all(adds);
  t.is(client.inFlight, 0);
  const reads = await Promise.all(ids.map((e) => client.read(1, e)));
  t.deepEqual(
    reads.map((p) => p.toString()),
    ids.map((e) => `entry-${e}`),
  );
  t.deepEqual(await client.readLac(1), { lac: 1998, last: 1999, fenced: false });
  t.is(await codeOf(client.read(1, 5000)), 'ADMQ_ERR_NO_SUCH_ENTRY');
  t.is(await codeOf(client.readLac(2)), 'ADMQ_ERR_NO_SUCH_LEDGER');
  t.deepEqual(await client.fence(1), { lac: 1998, last: 1999 });
  t.deepEqual(await client.readLac(1), { lac: 1998, last: 1999, fenced: true });
  // Fencing a ledger the node never saw (recovery asks every node of the ensemble).
  t.deepEqual(await client.fence(3), { lac: -1, last: -1 });
  t.is(await codeOf(client.add(3, 0, -1, Buffer.from('late'), 'writer-a')), 'ADMQ_ERR_LEDGER_FENCED');
  // Arguments the wire cannot carry are refused before they are sent; the connection goes on.
  t.is(await codeOf(client.add(2 ** 32, 0, -1, Buffer.from('x'), 'w')), 'ADMQ_ERR_BAD_REQUEST');
  t.is(await codeOf(client.add(4, -1, -1, Buffer.from('x'), 'w')), 'ADMQ_ERR_BAD_REQUEST');
  t.is(await codeOf(client.add(4, 0, -2, Buffer.from('x'), 'w')), 'ADMQ_ERR_BAD_REQUEST');
  // What the node itself refuses: an add without a writer.
  t.is(await codeOf(client.add(4, 0, -1, Buffer.from('x'), '')), 'ADMQ_ERR_BAD_REQUEST');
  t.is((await client.read(1, 7)).toString(), 'entry-7');
  // A node that closes ends the stream with a typed error; later requests fail the same way.
  await server.close();
  t.is(await codeOf(client.read(1, 7)), 'ADMQ_ERR_STORAGE_UNAVAILABLE');
});

test('storage node: a fenced ledger refuses its old writer over the wire, and a ledger refuses a second writer', async (t) => {
  const server = await startServer(t);
  const writer = new StorageNodeClient(server.nodeId, server.address);
  const recovery = new StorageNodeClient(server.nodeId, server.address);
  t.teardown(() => Promise.all([writer.close(), recovery.close()]).then(() => {}));
  await writer.add(5, 0, -1, Buffer.from('a'), 'old');
  await writer.add(5, 1, 0, Buffer.from('b'), 'old');
  t.is(await codeOf(writer.add(5, 2, 1, Buffer.from('c'), 'intruder')), 'ADMQ_ERR_LEDGER_WRITER');
  t.deepEqual(await recovery.fence(5), { lac: 0, last: 1 });
  t.is(await codeOf(writer.add(5, 2, 1, Buffer.from('c'), 'old')), 'ADMQ_ERR_LEDGER_FENCED');
  t.is(await codeOf(writer.read(5, 2)), 'ADMQ_ERR_NO_SUCH_ENTRY');
  t.is((await recovery.read(5, 1)).toString(), 'b');
  // Other ledgers of the same writer go on.
  await writer.add(6, 0, -1, Buffer.from('x'), 'old');
  t.is((await recovery.read(6, 0)).toString(), 'x');
});

test('storage node: restore stores copies whatever the writer or the fence, raises last but not the LAC, and is durable', async (t) => {
  const dataDir = dir();
  let server = await StorageNodeServer.start({ dataDir, port: 0, nodeId: 'sn-r', log: quiet });
  let client = new StorageNodeClient(server.nodeId, server.address);
  await client.add(8, 0, -1, Buffer.from('e0'), 'writer-a');
  await client.fence(8);
  await client.restore(8, 1, Buffer.from('e1'));
  await client.restore(8, 2, Buffer.from('e2'));
  t.deepEqual(await client.readLac(8), { lac: -1, last: 2, fenced: true });
  // A ledger the node never saw: restored entries, then its writer's first add claims it.
  await client.restore(9, 0, Buffer.from('r0'));
  t.deepEqual(await client.readLac(9), { lac: -1, last: 0, fenced: false });
  await client.add(9, 1, 0, Buffer.from('a1'), 'writer-b');
  t.is(await codeOf(client.add(9, 2, 1, Buffer.from('a2'), 'writer-c')), 'ADMQ_ERR_LEDGER_WRITER');
  t.is(await codeOf(client.restore(2 ** 32, 0, Buffer.from('x'))), 'ADMQ_ERR_BAD_REQUEST');
  await client.close();
  await server.close();
  server = await StorageNodeServer.start({ dataDir, port: 0, nodeId: 'sn-r', log: quiet });
  client = new StorageNodeClient(server.nodeId, server.address);
  t.teardown(async () => {
    await client.close();
    await server.close();
  });
  t.deepEqual(
    (await Promise.all([client.read(8, 1), client.read(8, 2), client.read(9, 0), client.read(9, 1)])).map(String),
    ['e1', 'e2', 'r0', 'a1'],
  );
  t.deepEqual(await client.readLac(8), { lac: -1, last: 2, fenced: true });
});

test.serial('storage node client: at most inFlightMax requests on the wire, the rest wait in order; a node reading slowly (inFlightPerStreamMax) still answers all', async (t) => {
  const server = await startServer(t, { inFlightPerStreamMax: 4 });
  const client = new StorageNodeClient(server.nodeId, server.address, { inFlightMax: 8 });
  t.teardown(() => client.close());
  let peak = 0;
  const adds: Array<Promise<void>> = [];
  for (let e = 0; e < 300; e++) {
    adds.push(client.add(11, e, e - 1, Buffer.alloc(512, e), 'w'));
    peak = Math.max(peak, client.inFlight);
  }
  t.is(peak, 8);
  await Promise.all(adds);
  t.is(client.inFlight, 0);
  t.deepEqual(await client.readLac(11), { lac: 298, last: 299, fenced: false });
});

test.serial('storage node client: a node that never answers fails the request at its deadline, and the stuck stream is replaced', async (t) => {
  // A fake node: accepts streams and reads requests, never answers.
  let streams = 0;
  const silent = new grpc.Server();
  const identity = (b: Buffer): Buffer => b;
  silent.addService(
    { Session: { path: SESSION_PATH, requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    {
      Session: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        streams++;
        call.on('data', () => {});
        call.on('error', () => {});
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => silent.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  t.teardown(() => silent.forceShutdown());
  const client = new StorageNodeClient('silent', `127.0.0.1:${port}`, { requestTimeoutMs: 300 });
  t.teardown(() => client.close());
  const error = (await t.throwsAsync(client.readLac(1))) as StorageNodeError;
  t.is(error.code, 'ADMQ_ERR_STORAGE_UNAVAILABLE');
  t.regex(error.message, /did not answer within 300 ms/);
  t.is(await codeOf(client.readLac(1)), 'ADMQ_ERR_STORAGE_UNAVAILABLE');
  t.is(streams, 2, 'the second request went on a new stream');
});

// ---- the registry --------------------------------------------------------------------------

/** Resolves when the directory's list satisfies `predicate` (checked now and on every change). */
function until(directory: StorageNodeDirectory, predicate: (nodes: StorageNodeInfo[]) => boolean, what: string, timeoutMs = 60_000): Promise<StorageNodeInfo[]> {
  return new Promise((resolve, reject) => {
    const check = (nodes: StorageNodeInfo[]): boolean => {
      if (!predicate(nodes)) return false;
      clearTimeout(timer);
      stop();
      resolve(nodes);
      return true;
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; registry: ${JSON.stringify(directory.available())}`));
    }, timeoutMs);
    const stop = directory.onChange((nodes) => void check(nodes));
    check(directory.available());
  });
}

test('storage node registry (embedded metadata store): registered on start, connected through the directory, gone on close; a stale entry of the same id holds start-up until it goes', async (t) => {
  const metadata = LmdbMetadataStore.open(dir());
  t.teardown(() => metadata.close());
  const directory = await StorageNodeDirectory.open(metadata, { log: quiet });
  t.teardown(() => directory.close());
  const server = await StorageNodeServer.start({ dataDir: dir(), port: 0, nodeId: 'sn-1', metadata, log: quiet });
  t.deepEqual(directory.available(), [{ nodeId: 'sn-1', address: server.address }]);
  const connection = directory.connect('sn-1');
  t.is(directory.connect('sn-1'), connection, 'one cached client per node');
  await connection.add(1, 0, -1, Buffer.from('x'), 'w');
  t.is((await connection.read(1, 0)).toString(), 'x');
  await server.close();
  t.deepEqual(directory.available(), []);
  t.is((t.throws(() => directory.connect('sn-1')) as StorageNodeError).code, 'ADMQ_ERR_STORAGE_UNAVAILABLE');

  // An entry of the same id under a lease this process does not hold: an earlier incarnation.
  const stale = await metadata.grantLease(3000);
  await metadata.put(MetadataKeys.storageNode('sn-2'), Buffer.from(JSON.stringify({ nodeId: 'sn-2', address: '127.0.0.1:1' })), { lease: stale });
  const refused = await t.throwsAsync(StorageNodeServer.start({ dataDir: dir(), port: 0, nodeId: 'sn-2', metadata, registrationWaitMs: 0, log: quiet }));
  t.is((refused as { code?: string }).code, 'ADMQ_ERR_CONFIG');
  let waiting!: () => void;
  const waitingLogged = new Promise<void>((resolve) => (waiting = resolve));
  const starting = StorageNodeServer.start({
    dataDir: dir(),
    port: 0,
    nodeId: 'sn-2',
    metadata,
    log: (line) => {
      if (line.includes('waiting for that registration to expire')) waiting();
    },
  });
  await waitingLogged;
  t.deepEqual(directory.available(), [{ nodeId: 'sn-2', address: '127.0.0.1:1' }]);
  await stale.revoke();
  const second = await starting;
  t.teardown(() => second.close());
  t.deepEqual(directory.available(), [{ nodeId: 'sn-2', address: second.address }]);
  // The cached client follows the new address.
  await directory.connect('sn-2').add(2, 0, -1, Buffer.from('y'), 'w');
});

interface NodeProcess {
  child: ChildProcess;
  address: string;
  exited: Promise<number | null>;
  output: () => string;
}

async function startNodeProcess(args: string[]): Promise<NodeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const address = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const ready = /^storage-node \S+ listening on (\S+)$/m.exec(out);
      if (ready?.[1]) resolve(ready[1]);
    });
    child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    void exited.then((code) => reject(new Error(`storage node exited with ${code} before it was ready:\n${out}`)));
  });
  return { child, address, exited, output: () => out };
}

function killOnTeardown(t: { teardown(fn: () => void): void }, node: NodeProcess): void {
  t.teardown(() => {
    if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGKILL');
  });
}

(etcdAvailable() ? test : test.skip)(
  'storage node process (real etcd): registered on a lease; SIGKILLed, it leaves the registry when the lease expires; SIGTERMed, at once and exit 0',
  async (t) => {
    const etcd = await startEtcd();
    t.teardown(() => etcd.stop());
    const metadata = new EtcdMetadataStore([etcd.endpoint]);
    t.teardown(() => metadata.close());
    const directory = await StorageNodeDirectory.open(metadata, { log: quiet });
    t.teardown(() => directory.close());
    const start = (id: string) => startNodeProcess(['--data-dir', dir(), '--port', '0', '--node-id', id, '--etcd', etcd.endpoint]);
    const [a, b] = await Promise.all([start('sn-a'), start('sn-b')]);
    killOnTeardown(t, a);
    killOnTeardown(t, b);
    await until(directory, (nodes) => nodes.length === 2, 'both nodes registered');
    t.deepEqual(directory.available(), [
      { nodeId: 'sn-a', address: a.address },
      { nodeId: 'sn-b', address: b.address },
    ]);
    // Registered means reachable: the directory's client writes to it.
    await directory.connect('sn-a').add(1, 0, -1, Buffer.from('x'), 'w');
    t.is((await directory.connect('sn-a').read(1, 0)).toString(), 'x');

    a.child.kill('SIGKILL');
    await a.exited;
    await until(directory, (nodes) => !nodes.some((n) => n.nodeId === 'sn-a'), 'sn-a to leave the registry (lease expiry)');
    t.deepEqual(directory.available(), [{ nodeId: 'sn-b', address: b.address }]);
    t.is((t.throws(() => directory.connect('sn-a')) as StorageNodeError).code, 'ADMQ_ERR_STORAGE_UNAVAILABLE');

    b.child.kill('SIGTERM');
    t.is(await b.exited, 0, b.output());
    await until(directory, (nodes) => nodes.length === 0, 'sn-b to leave the registry (lease revoked)');
    t.regex(b.output(), /\[storage-node sn-b\] registered at \/admq\/storage-nodes\/sn-b/);
  },
);

test('storage node process: SIGKILL fails every pending request promptly with ADMQ_ERR_STORAGE_UNAVAILABLE, and so does the next request', async (t) => {
  const node = await startNodeProcess(['--data-dir', dir(), '--port', '0', '--node-id', 'sn-k']);
  killOnTeardown(t, node);
  // A deadline far beyond the test's own timeout: only the broken stream can fail these in time.
  const client = new StorageNodeClient('sn-k', node.address, { requestTimeoutMs: 600_000 });
  t.teardown(() => client.close());
  await client.add(1, 0, -1, Buffer.from('warm'), 'w');
  const payload = Buffer.alloc(64 * 1024, 7);
  const outcomes = Array.from({ length: 500 }, (_, i) =>
    client.add(1, i + 1, i, payload, 'w').then(
      () => 'acked',
      (error: unknown) => (error instanceof StorageNodeError ? error.code : `untyped: ${String(error)}`),
    ),
  );
  node.child.kill('SIGKILL');
  const results = await Promise.all(outcomes);
  const failed = results.filter((r) => r !== 'acked');
  t.true(failed.length > 0, 'some adds were pending when the node died');
  t.deepEqual([...new Set(failed)], ['ADMQ_ERR_STORAGE_UNAVAILABLE']);
  t.is(await codeOf(client.readLac(1)), 'ADMQ_ERR_STORAGE_UNAVAILABLE');
});

test('storage node process: kill -9 while adding — every acknowledged add is readable after a restart', async (t) => {
  const dataDir = dir();
  const first = await startNodeProcess(['--data-dir', dataDir, '--port', '0', '--node-id', 'sn-d']);
  killOnTeardown(t, first);
  const client = new StorageNodeClient('sn-d', first.address);
  const acked: number[] = [];
  let enough!: () => void;
  const reached = new Promise<void>((resolve) => (enough = resolve));
  let failed = false;
  const writing = (async () => {
    const inflight = new Set<Promise<void>>();
    for (let e = 0; !failed; e++) {
      const add: Promise<void> = client.add(3, e, e - 1, Buffer.from(`entry-${e}`), 'w').then(
        () => {
          acked.push(e);
          if (acked.length === 2000) enough();
        },
        () => {
          failed = true;
        },
      );
      inflight.add(add);
      void add.finally(() => inflight.delete(add));
      if (inflight.size >= 256) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  })();
  await reached;
  first.child.kill('SIGKILL');
  await first.exited;
  await writing;
  await client.close();

  const second = await startNodeProcess(['--data-dir', dataDir, '--port', '0', '--node-id', 'sn-d']);
  killOnTeardown(t, second);
  const again = new StorageNodeClient('sn-d', second.address);
  t.teardown(() => again.close());
  const stored = await Promise.all(acked.map((e) => again.read(3, e).then((p) => p.toString() === `entry-${e}`, () => false)));
  const missing = acked.filter((_, i) => !stored[i]);
  t.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged adds lost`);
  t.true(acked.length >= 2000);
  t.true((await again.readLac(3)).last >= Math.max(...acked));
  second.child.kill('SIGTERM');
  t.is(await second.exited, 0, second.output());
});

// ---- fuzz -------------------------------------------------------------------------------------

test('storage node fuzz: random and mangled frames on a raw stream each get one typed answer; junk TCP bytes are shrugged off; a well-formed client is served throughout', async (t) => {
  const server = await startServer(t);
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const good = new StorageNodeClient(server.nodeId, server.address);
  t.teardown(() => good.close());

  // Frames: random bytes, truncated or bit-flipped valid requests (ids 1..1e6), and
  // well-formed protobuf with values the node must refuse (ids from 1e9, answer known).
  const valid = (id: number): Buffer => {
    const ledger = 1 + int(10);
    switch (int(5)) {
      case 0:
        return encodeRequest({ op: 'add', requestId: id, ledgerId: ledger, entryId: int(100), lac: int(100) - 1, payload: Buffer.from(`p${id}`), writer: `w${int(2)}` });
      case 1:
        return encodeRequest({ op: 'read', requestId: id, ledgerId: ledger, entryId: int(100) });
      case 2:
        return encodeRequest({ op: 'readLac', requestId: id, ledgerId: ledger });
      case 3:
        return encodeRequest({ op: 'fence', requestId: id, ledgerId: ledger });
      default:
        return encodeRequest({ op: 'restore', requestId: id, ledgerId: ledger, entryId: int(100), payload: Buffer.from(`r${id}`) });
    }
  };
  const badValues = (id: number): Buffer => {
    switch (int(4)) {
      case 0: // read { ledger_id: 2^32 (above uint32), entry_id: 1 }, built by hand: encoders would truncate it
        return Buffer.concat([Buffer.from([0x08]), varint(id), Buffer.from([0x1a, 0x08, 0x08, 0x80, 0x80, 0x80, 0x80, 0x10, 0x10, 0x01])]);
      case 1: // lac below -1
        return requestToPb({ op: 'add', requestId: id, ledgerId: 1, entryId: 1, lac: -5, payload: Buffer.from('x'), writer: 'w' });
      case 2: // no writer
        return requestToPb({ op: 'add', requestId: id, ledgerId: 1, entryId: 1, lac: -1, payload: Buffer.from('x'), writer: '' });
      default: // no op
        return Buffer.concat([Buffer.from([0x08]), varint(id)]);
    }
  };
  const frames: Buffer[] = [];
  const expectBadRequest = new Set<number>();
  for (let i = 0; i < 600; i++) {
    const kind = int(4);
    if (kind === 0) frames.push(Buffer.from(Array.from({ length: int(64) }, () => int(256))));
    else if (kind === 1) {
      const bytes = valid(1 + int(1_000_000));
      frames.push(bytes.subarray(0, int(bytes.length)));
    } else if (kind === 2) {
      const bytes = Buffer.from(valid(1 + int(1_000_000)));
      for (let flips = 1 + int(3); flips > 0; flips--) bytes[int(bytes.length)] = int(256);
      frames.push(bytes);
    } else {
      const id = 1_000_000_000 + i;
      expectBadRequest.add(id);
      frames.push(badValues(id));
    }
  }

  const raw = new grpc.Client(server.address, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  const call = raw.makeBidiStreamRequest<Buffer, Buffer>(SESSION_PATH, (b: Buffer) => b, (b: Buffer) => b);
  const answers: StorageResponse[] = [];
  const allAnswered = new Promise<void>((resolve, reject) => {
    call.on('data', (frame: Buffer) => {
      answers.push(decodeResponse(frame));
      if (answers.length === frames.length) resolve();
    });
    call.on('error', reject);
  });
  // The well-formed client works while the fuzz runs on another stream of the same node.
  const alongside = Promise.all(Array.from({ length: 200 }, (_, e) => good.add(4_000_000_000, e, e - 1, Buffer.from(`good-${e}`), 'good')));
  for (const frame of frames) call.write(frame);
  await allAnswered;
  await alongside;
  call.end();

  t.is(answers.length, frames.length, 'one answer per frame');
  const codes = new Set(STORAGE_NODE_ERROR_CODES as readonly string[]);
  for (const answer of answers) {
    if (answer.result !== 'error') continue;
    t.true(codes.has(answer.code), `untyped error answer ${JSON.stringify(answer)}`);
    if (expectBadRequest.has(answer.requestId)) t.is(answer.code, 'ADMQ_ERR_BAD_REQUEST', answer.message);
  }
  const badAnswers = answers.filter((a) => expectBadRequest.has(a.requestId));
  t.is(badAnswers.length, expectBadRequest.size);

  // Junk below gRPC: random bytes on a raw TCP connection, longer than HTTP/2's 24-byte
  // connection preface, so the node must refuse it and drop the connection.
  const [host, port] = [server.address.slice(0, server.address.lastIndexOf(':')), Number(server.address.slice(server.address.lastIndexOf(':') + 1))];
  for (let i = 0; i < 5; i++) {
    await new Promise<void>((resolve) => {
      const socket = netConnect(port, host, () => socket.write(Buffer.from(Array.from({ length: 24 + int(300) }, () => int(256)))));
      socket.resume(); // read (and drop) the node's GOAWAY, so that its FIN is seen
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
    });
  }
  t.deepEqual(
    (await Promise.all([0, 100, 199].map((e) => good.read(4_000_000_000, e)))).map(String),
    ['good-0', 'good-100', 'good-199'],
  );
  t.deepEqual(await good.readLac(4_000_000_000), { lac: 198, last: 199, fenced: false });
});

function varint(value: number): Buffer {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Buffer.from(out);
}
