// The ledger client against a real etcd (metadata) and real BookieStores on LMDB
// (storage nodes in process, with faults from test-pool.ts): quorum writes and in-order
// acks, ensemble changes, typed failures, recovery after a writer crash, concurrent
// recoveries, and a randomized run of writes with node failures (its seed is printed;
// ADMQ_SEED replays it).
import test, { type ExecutionContext } from 'ava';
import { startEtcd, type EtcdProcess } from '../../test-support/etcd.ts';
import { waitFor } from '../../test-support/processes.ts';
import { prng, seedFromEnv } from '../../test-support/random.ts';
import { EtcdMetadataStore, type MetadataStore } from '../metadata-store/index.ts';
import { decodeLedgerMetadata, encodeLedgerMetadata, LedgerClient, LedgerError, writeSetOf, type LedgerClientOptions } from './ledger-client.ts';
import type { LedgerMetadata, QuorumSettings } from './ledger-types.ts';
import { TestStoragePool } from './test-pool.ts';

let etcd: EtcdProcess;
test.before(async () => {
  etcd = await startEtcd();
});
test.after.always(async () => {
  await etcd?.stop();
});

let writers = 0;
async function setup(
  t: ExecutionContext,
  nodes: number,
  options: Partial<LedgerClientOptions> = {},
): Promise<{ metadata: MetadataStore; pool: TestStoragePool; client: LedgerClient; newClient: (writerId?: string) => LedgerClient }> {
  const metadata = new EtcdMetadataStore([etcd.endpoint]);
  const pool = await TestStoragePool.create(nodes, { metadata });
  t.teardown(async () => {
    await pool.close();
    await metadata.close();
  });
  const newClient = (writerId = `writer-${process.pid}-${++writers}`) => new LedgerClient({ metadata, pool, writerId, ...options });
  return { metadata, pool, client: newClient(), newClient };
}

const payload = (i: number) => Buffer.from(`entry-${i}`);
const codeOf = (error: unknown) => (error as LedgerError).code;

/** Whether a promise has settled, after letting every ready callback run. */
function tracker<T>(promise: Promise<T>): { settled: () => boolean } {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  return { settled: () => settled };
}

test('ledger: quorum writes — acks leave strictly in entry order, only once Qa replicas stored the entry', async (t) => {
  const { pool, client } = await setup(t, 3);
  const writer = await client.createLedger({ topic: 'persistent://t/n/in-order' });
  const [a, b, c] = writer.metadata().ensembles[0]!.nodes as [string, string, string];
  for (const node of [a, b, c]) pool.pause(node);
  const order: number[] = [];
  const adds = [0, 1].map((i) => writer.add(payload(i)).then((id) => (order.push(id), id)));
  const second = tracker(adds[1]!);
  await waitFor(() => pool.heldCalls(a).length === 2 && pool.heldCalls(b).length === 2, 10_000, 'adds held');
  // Entry 1 reaches Qa = 2 nodes while entry 0 is still nowhere: it must not be acked.
  pool.resume(a, (call) => call.entryId === 1);
  pool.resume(b, (call) => call.entryId === 1);
  await waitFor(() => pool.holders(writer.metadata(), 1).length === 2, 10_000, 'entry 1 on two nodes');
  await new Promise((resolve) => setImmediate(resolve));
  t.false(second.settled());
  t.is(writer.lastAddConfirmed, -1);
  // Entry 0 on one node only: still below the ack quorum.
  pool.resume(a);
  await waitFor(() => pool.holders(writer.metadata(), 0).length === 1, 10_000, 'entry 0 on one node');
  await new Promise((resolve) => setImmediate(resolve));
  t.false(second.settled());
  pool.resume(b);
  t.deepEqual(await Promise.all(adds), [0, 1]);
  t.deepEqual(order, [0, 1]);
  t.is(writer.lastAddConfirmed, 1);
  pool.resume(c);
  const closed = await writer.close();
  t.like(closed, { state: 'closed', lastEntryId: 1 });
  t.deepEqual(closed.properties, { topic: 'persistent://t/n/in-order' });
});

test('ledger: striping — E=4, Qw=2: entry e is on nodes (e + i) mod 4, i < 2, and nowhere else; reads return every entry', async (t) => {
  const quorum: QuorumSettings = { ensembleSize: 4, writeQuorum: 2, ackQuorum: 2 };
  const { pool, client } = await setup(t, 4, { quorum });
  const writer = await client.createLedger();
  t.deepEqual(await Promise.all(Array.from({ length: 12 }, (_, i) => writer.add(payload(i)))), Array.from({ length: 12 }, (_, i) => i));
  const closed = await writer.close();
  t.is(closed.lastEntryId, 11);
  const nodes = closed.ensembles[0]!.nodes;
  for (let e = 0; e < 12; e++) {
    for (const [i, node] of nodes.entries()) {
      const expected = (((i - e) % 4) + 4) % 4 < 2;
      let stored = true;
      try {
        pool.store(node).read(closed.ledgerId, e);
      } catch {
        stored = false;
      }
      t.is(stored, expected, `entry ${e} on node index ${i}`);
    }
  }
  const reader = await client.openReader(closed.ledgerId);
  t.deepEqual((await reader.read(0, 11)).map(String), Array.from({ length: 12 }, (_, i) => `entry-${i}`));
  t.is(codeOf(await t.throwsAsync(reader.readEntry(12))), 'ADMQ_ERR_NO_SUCH_ENTRY');
});

test('ledger: a storage node dies mid-stream — ensemble change to a spare, every acked entry readable, metadata shows the new segment', async (t) => {
  const { pool, client } = await setup(t, 4);
  const writer = await client.createLedger();
  const original = writer.metadata().ensembles[0]!.nodes;
  const spare = pool.ids().find((id) => !original.includes(id))!;
  const victim = original[1]!;
  const first = await Promise.all(Array.from({ length: 20 }, (_, i) => writer.add(payload(i))));
  t.is(first.at(-1), 19);
  // The node dies with adds in flight.
  const more = Array.from({ length: 40 }, (_, i) => writer.add(payload(20 + i)));
  pool.kill(victim);
  t.deepEqual(await Promise.all(more), Array.from({ length: 40 }, (_, i) => 20 + i));
  const closed = await writer.close();
  t.is(closed.lastEntryId, 59);
  t.is(closed.ensembles.length, 2);
  const segment = closed.ensembles[1]!;
  t.true(segment.firstEntryId >= 20 && segment.firstEntryId <= 60, `new segment starts at ${segment.firstEntryId}`);
  t.false(segment.nodes.includes(victim));
  t.true(segment.nodes.includes(spare));
  t.deepEqual(segment.nodes.filter((n) => n !== spare), original.filter((n) => n !== victim));
  const reader = await client.openReader(closed.ledgerId);
  t.deepEqual((await reader.read(0, 59)).map(String), Array.from({ length: 60 }, (_, i) => `entry-${i}`));
  for (let e = 0; e <= 59; e++) t.true(pool.holders(closed, e).length >= closed.ackQuorum, `entry ${e} has Qa copies in its write set`);
});

test('ledger: fewer live nodes than the ack quorum — adds fail with ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES; one dead node without a spare is tolerated', async (t) => {
  const { pool, client } = await setup(t, 3);
  const writer = await client.createLedger();
  const [a, b] = writer.metadata().ensembles[0]!.nodes as [string, string, string];
  t.is(await writer.add(payload(0)), 0);
  pool.kill(a);
  // No spare, but Qa = 2 of {b, c} still holds.
  t.is(await writer.add(payload(1)), 1);
  t.is(writer.metadata().ensembles.length, 1);
  pool.kill(b);
  const error = await t.throwsAsync(writer.add(payload(2)));
  t.true(error instanceof LedgerError);
  t.is(codeOf(error), 'ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES');
  t.is(codeOf(await t.throwsAsync(writer.add(payload(3)))), 'ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES');
  // The writer still closes the ledger at what it acknowledged.
  t.like(await writer.close(), { state: 'closed', lastEntryId: 1 });
  t.is(codeOf(await t.throwsAsync(client.createLedger())), 'ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES');
});

test('ledger: recovery after the writer crashes with entries in flight — closed at or past every acked entry, all readable, the old writer is fenced', async (t) => {
  const { pool, client, newClient } = await setup(t, 3, { writer: { addTimeoutMs: 600_000 } });
  const writer = await client.createLedger();
  const [a, b, c] = writer.metadata().ensembles[0]!.nodes as [string, string, string];
  const acked = await Promise.all(Array.from({ length: 10 }, (_, i) => writer.add(payload(i))));
  // Five more entries reach a only; their adds to b and c are lost with the writer.
  pool.pause(b);
  pool.pause(c);
  const inFlight = Array.from({ length: 5 }, (_, i) => writer.add(payload(10 + i)));
  const outcomes = Promise.allSettled(inFlight);
  await waitFor(() => pool.holders(writer.metadata(), 14).includes(a) && pool.heldCalls(b).length === 5, 10_000, 'entries on a only');
  pool.dropHeld(b);
  pool.dropHeld(c);
  pool.resume(b);
  pool.kill(c);

  const recovered = await newClient().recoverAndClose(writer.ledgerId, 'recovery-1');
  t.is(recovered.state, 'closed');
  t.true(recovered.lastEntryId >= Math.max(...acked));
  // Entries 10–14 are on a: any replica holding an entry recovers it.
  t.is(recovered.lastEntryId, 14);
  const reader = await newClient().openReader(writer.ledgerId);
  t.deepEqual((await reader.read(0, 14)).map(String), Array.from({ length: 15 }, (_, i) => `entry-${i}`));
  // Re-written to b (c is dead), so each has Qa copies again.
  for (let e = 10; e <= 14; e++) t.deepEqual(pool.holders(recovered, e).sort(), [a, b].sort());

  t.is(codeOf(await t.throwsAsync(writer.add(payload(99)))), 'ADMQ_ERR_LEDGER_FENCED');
  for (const outcome of await outcomes) {
    if (outcome.status === 'rejected') t.is(codeOf(outcome.reason), 'ADMQ_ERR_LEDGER_FENCED');
    else t.true(outcome.value <= recovered.lastEntryId);
  }
  t.is(codeOf(await t.throwsAsync(writer.close())), 'ADMQ_ERR_LEDGER_FENCED');
  t.deepEqual(await client.getMetadata(writer.ledgerId), recovered);
  // Idempotent.
  t.deepEqual(await newClient().recoverAndClose(writer.ledgerId), recovered);
});

test('ledger: two concurrent recoveries agree on one close', async (t) => {
  const { pool, client, newClient } = await setup(t, 4, { writer: { addTimeoutMs: 600_000 } });
  const writer = await client.createLedger();
  const nodes = writer.metadata().ensembles[0]!.nodes;
  await Promise.all(Array.from({ length: 25 }, (_, i) => writer.add(payload(i))));
  pool.pause(nodes[2]!);
  const inFlight = Promise.allSettled(Array.from({ length: 8 }, (_, i) => writer.add(payload(25 + i))));
  // Acked by nodes 0 and 1 (Qa = 2); their adds to node 2 are lost with the writer.
  await waitFor(() => writer.lastAddConfirmed === 32 && pool.heldCalls(nodes[2]!).length === 8, 10_000, 'adds acked');
  pool.dropHeld(nodes[2]!);
  pool.resume(nodes[2]!);
  const [one, two] = await Promise.all([newClient().recoverAndClose(writer.ledgerId, 'r1'), newClient().recoverAndClose(writer.ledgerId, 'r2')]);
  t.deepEqual(one, two);
  t.is(one.state, 'closed');
  t.is(one.lastEntryId, 32);
  for (const outcome of await inFlight) t.is(outcome.status, 'fulfilled');
  t.deepEqual(await client.getMetadata(writer.ledgerId), one);
});

test('ledger: recovering an empty ledger closes it at -1; a reader of an open ledger reads up to its LAC only', async (t) => {
  const { client, newClient } = await setup(t, 3);
  const empty = await client.createLedger();
  t.like(await newClient().recoverAndClose(empty.ledgerId), { state: 'closed', lastEntryId: -1 });
  t.is(codeOf(await t.throwsAsync(empty.add(payload(0)))), 'ADMQ_ERR_LEDGER_FENCED');

  const open = await client.createLedger();
  for (let i = 0; i < 5; i++) await open.add(payload(i));
  const reader = await newClient().openReader(open.ledgerId);
  // The LAC travels on later adds: entry 4's add carried LAC 3.
  t.is(await reader.lastAddConfirmed(), 3);
  t.is((await reader.readEntry(3)).toString(), 'entry-3');
  t.is(codeOf(await t.throwsAsync(reader.readEntry(4))), 'ADMQ_ERR_NO_SUCH_ENTRY');
  await open.close();
  t.is(await reader.lastAddConfirmed(), 4);
  t.is((await reader.readEntry(4)).toString(), 'entry-4');
  t.is(codeOf(await t.throwsAsync(client.openReader(999_999_999))), 'ADMQ_ERR_NO_SUCH_LEDGER');
});

test('ledger: close is idempotent, later adds fail ADMQ_ERR_LEDGER_CLOSED; deleteLedger removes the metadata', async (t) => {
  const { client } = await setup(t, 3);
  const writer = await client.createLedger();
  await writer.add(payload(0));
  const [one, two] = await Promise.all([writer.close(), writer.close()]);
  t.deepEqual(one, two);
  t.is(codeOf(await t.throwsAsync(writer.add(payload(1)))), 'ADMQ_ERR_LEDGER_CLOSED');
  t.true(await client.deleteLedger(writer.ledgerId));
  t.is(await client.getMetadata(writer.ledgerId), undefined);
  t.false(await client.deleteLedger(writer.ledgerId));
});

test('ledger: bounded in-flight window — adds beyond it wait in order, beyond waitingAddsMax they fail ADMQ_ERR_QUEUE_FULL', async (t) => {
  const { pool, client } = await setup(t, 3, { writer: { inFlightEntriesMax: 2, waitingAddsMax: 2 } });
  const writer = await client.createLedger();
  const nodes = writer.metadata().ensembles[0]!.nodes;
  for (const node of nodes) pool.pause(node);
  const adds = Array.from({ length: 4 }, (_, i) => writer.add(payload(i)));
  t.is(codeOf(await t.throwsAsync(writer.add(payload(4)))), 'ADMQ_ERR_QUEUE_FULL');
  await waitFor(() => pool.heldCalls(nodes[0]!).length === 2, 10_000, 'two adds sent');
  t.deepEqual(pool.heldCalls(nodes[0]!).map((c) => c.entryId), [0, 1]);
  for (const node of nodes) pool.resume(node);
  t.deepEqual(await Promise.all(adds), [0, 1, 2, 3]);
  t.is(codeOf(await t.throwsAsync(client.createLedger().then((w) => w.add(Buffer.alloc(0)).then(() => w.add('x' as unknown as Buffer))))), 'ADMQ_ERR_BAD_REQUEST');
});

test('ledger: options are validated, naming the field', (t) => {
  const base = { metadata: {} as MetadataStore, pool: { available: () => [], connect: () => ({}) as never }, writerId: 'w' };
  t.is(codeOf(t.throws(() => new LedgerClient({ ...base, writerId: '' }))), 'ADMQ_ERR_CONFIG');
  t.regex(t.throws(() => new LedgerClient({ ...base, quorum: { ensembleSize: 3, writeQuorum: 2, ackQuorum: 3 } }))!.message, /quorum\.ackQuorum/);
  t.regex(t.throws(() => new LedgerClient({ ...base, writer: { inFlightEntriesMax: 0 } }))!.message, /writer\.inFlightEntriesMax/);
});

test('ledger metadata: encode/decode round trip; malformed records fail with ADMQ_ERR_LEDGER_METADATA naming the field', (t) => {
  const good: LedgerMetadata = {
    ledgerId: 7,
    ensembleSize: 3,
    writeQuorum: 3,
    ackQuorum: 2,
    state: 'closed',
    lastEntryId: 41,
    ensembles: [
      { firstEntryId: 0, nodes: ['a', 'b', 'c'] },
      { firstEntryId: 30, nodes: ['a', 'd', 'c'] },
    ],
    writer: 'w',
    createdAtMs: 1,
    properties: { topic: 'x' },
  };
  t.deepEqual(decodeLedgerMetadata(encodeLedgerMetadata(good), 7), good);
  const bad = (patch: Partial<LedgerMetadata> | string, field: RegExp, id?: number) => {
    const bytes = typeof patch === 'string' ? Buffer.from(patch) : Buffer.from(JSON.stringify({ ...good, ...patch }));
    const error = t.throws(() => decodeLedgerMetadata(bytes, id));
    t.is(codeOf(error), 'ADMQ_ERR_LEDGER_METADATA');
    t.regex(error!.message, field);
  };
  bad('{not json', /not JSON/);
  bad({ ackQuorum: 4 }, /ackQuorum/);
  bad({ writeQuorum: 4 }, /writeQuorum/);
  bad({ state: 'open' }, /lastEntryId/);
  bad({ ensembles: [] }, /ensembles/);
  bad({ ensembles: [{ firstEntryId: 1, nodes: ['a', 'b', 'c'] }] }, /ensembles\[0\]\.firstEntryId/);
  bad({ ensembles: [{ firstEntryId: 0, nodes: ['a', 'b', 'c'] }, { firstEntryId: 0, nodes: ['a', 'b', 'c'] }] }, /ensembles\[1\]\.firstEntryId/);
  bad({ ensembles: [{ firstEntryId: 0, nodes: ['a', 'a', 'c'] }] }, /distinct/);
  bad({ ensembles: [{ firstEntryId: 0, nodes: ['a', 'b'] }] }, /ensembleSize/);
  bad({ properties: { n: 1 as unknown as string } }, /properties\.n/);
  bad({}, /names ledger 7/, 8);
  t.deepEqual(writeSetOf(good, 29), ['c', 'a', 'b']);
  t.deepEqual(writeSetOf(good, 30), ['a', 'd', 'c']);
});

test('ledger: randomized writes with node failures and restarts, closed or recovered — no acked entry is lost (seeded)', async (t) => {
  const seed = seedFromEnv();
  t.log(`seed ${seed} (replay with ADMQ_SEED=${seed})`);
  const random = prng(seed);
  const { metadata, pool, newClient } = await setup(t, 6, { random, writer: { addTimeoutMs: 600_000 } });
  const quorums: QuorumSettings[] = [
    { ensembleSize: 3, writeQuorum: 3, ackQuorum: 2 },
    { ensembleSize: 3, writeQuorum: 2, ackQuorum: 2 },
    { ensembleSize: 4, writeQuorum: 3, ackQuorum: 2 },
    { ensembleSize: 4, writeQuorum: 2, ackQuorum: 1 },
  ];
  const summary: string[] = [];
  for (let round = 0; round < 8; round++) {
    const quorum = quorums[Math.floor(random() * quorums.length)]!;
    const client = new LedgerClient({ metadata, pool, writerId: `rand-${seed}-${round}`, quorum, random, writer: { addTimeoutMs: 600_000 } });
    const writer = await client.createLedger({ round: String(round) });
    const acked = new Map<number, string>();
    const ackOrder: number[] = [];
    const adds: Array<Promise<unknown>> = [];
    const dead = new Set<string>();
    let paused: string | undefined;
    for (let step = 0; step < 120; step++) {
      const r = random();
      if (r < 0.7) {
        const body = `r${round}-s${step}-${Math.floor(random() * 1e9)}`;
        adds.push(
          writer.add(Buffer.from(body)).then(
            (id) => {
              ackOrder.push(id);
              acked.set(id, body);
            },
            (error: unknown) => t.true(['ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES', 'ADMQ_ERR_LEDGER_FENCED'].includes(codeOf(error)), String(error)),
          ),
        );
      } else if (r < 0.76 && dead.size < 2) {
        const alive = pool.ids().filter((id) => !dead.has(id));
        const victim = alive[Math.floor(random() * alive.length)]!;
        pool.kill(victim);
        dead.add(victim);
      } else if (r < 0.8 && dead.size > 0) {
        const back = [...dead][Math.floor(random() * dead.size)]!;
        pool.revive(back);
        dead.delete(back);
      } else if (r < 0.85) {
        pool.setDelayMs(pool.ids()[Math.floor(random() * 6)]!, Math.floor(random() * 3));
      } else if (r < 0.88) {
        // A node stops answering for a while: its adds stay in flight (lost if the writer crashes).
        if (paused === undefined) {
          paused = pool.ids()[Math.floor(random() * 6)]!;
          pool.pause(paused);
        } else {
          pool.resume(paused);
          paused = undefined;
        }
      } else if (adds.length > 0 && paused === undefined) {
        await adds[Math.floor(random() * adds.length)];
      }
    }
    const crash = random() < 0.5;
    if (paused !== undefined) {
      if (crash) pool.dropHeld(paused);
      pool.resume(paused);
    }
    if (!crash) await Promise.allSettled(adds);
    // Crashed nodes restart with their data; then the ledger is closed by its writer or recovered.
    for (const node of dead) pool.revive(node);
    for (const node of pool.ids()) pool.setDelayMs(node, 0);
    let closed: LedgerMetadata;
    if (crash) closed = await newClient().recoverAndClose(writer.ledgerId, `recovery-${round}`);
    else closed = await writer.close().catch(() => newClient().recoverAndClose(writer.ledgerId));
    await Promise.allSettled(adds);
    const context = `seed ${seed} round ${round} (${JSON.stringify(quorum)}, ${crash ? 'crash + recovery' : 'close'})`;
    t.deepEqual(ackOrder, [...ackOrder].sort((x, y) => x - y), `acks in order, ${context}`);
    const maxAcked = Math.max(-1, ...acked.keys());
    t.true(closed.lastEntryId >= maxAcked, `closed at ${closed.lastEntryId} ≥ ${maxAcked}, ${context}`);
    const reader = await client.openReader(writer.ledgerId);
    for (const [id, body] of acked) {
      t.true(pool.holders(closed, id).length >= closed.ackQuorum, `entry ${id} has Qa copies in its write set, ${context}`);
      t.is((await reader.readEntry(id)).toString(), body, `entry ${id}, ${context}`);
    }
    if (closed.lastEntryId >= 0) t.is((await reader.read(0, closed.lastEntryId)).length, closed.lastEntryId + 1);
    summary.push(`${quorum.ensembleSize}/${quorum.writeQuorum}/${quorum.ackQuorum} ${crash ? 'recovered' : 'closed'}: ${acked.size} acked, last ${closed.lastEntryId}, ${closed.ensembles.length} segments`);
  }
  t.log(summary.join('\n'));
});
