// Cluster mode of the log store (DESIGN §4): a commit counts as durable only once its
// chunks reached the topic's ledger (the sink); a failed sink stops the log; a new owner
// rebuilds the log from the ledger's chunks with the same offsets, marks and cursors.
// The sink here is a stand-in for the ledger writer (pure bookkeeping); LMDB is real.
import test from 'ava';
import { ErrorCode } from '../../proto/index.ts';
import { AdmqError } from '../errors.ts';
import { tempDir } from '../../test-support/temp-dir.ts';
import { LogStore, type AppendMessage, type ChunkSink } from './log-store.ts';

function openStore(): LogStore {
  return LogStore.open({ dataDir: tempDir('admq-sink-'), region: 'shanghai', durability: 'none', readPhysicalMs: Date.now, maxClockOffsetMs: 500 });
}

const message = (producerName: string, sequenceId: number): AppendMessage => ({ producerName, sequenceId, key: undefined, properties: {}, payload: Buffer.from(`${producerName}-${sequenceId}`), eventTimeMs: 0 });

/** A sink whose persists are settled by the test. */
class HeldSink implements ChunkSink {
  readonly chunks: Buffer[] = [];
  readonly pending: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  failure: AdmqError | undefined;
  readonly #arrivals: Array<{ count: number; resolve: () => void }> = [];
  persist(chunk: Buffer): Promise<void> {
    this.chunks.push(chunk);
    const held = new Promise<void>((resolve, reject) => this.pending.push({ resolve, reject }));
    for (const a of this.#arrivals.filter((a) => this.pending.length >= a.count)) {
      this.#arrivals.splice(this.#arrivals.indexOf(a), 1);
      a.resolve();
    }
    return held;
  }
  /** Resolves once `count` chunks are held (unsettled). */
  holding(count: number): Promise<void> {
    if (this.pending.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#arrivals.push({ count, resolve }));
  }
  failed(error: AdmqError): void {
    this.failure = error;
  }
  settleAll(error?: Error): void {
    for (const p of this.pending.splice(0)) {
      if (error) p.reject(error);
      else p.resolve();
    }
  }
}

test('an append is acknowledged and delivered only after its chunk reached the sink', async (t) => {
  const store = openStore();
  t.teardown(() => store.close());
  const log = store.openLog(1, 'persistent://t/n/a');
  const sink = new HeldSink();
  log.sink = sink;
  let acked = false;
  const appended = store.append(log, [message('p', 0), message('p', 1)]).then((r) => {
    acked = true;
    return r;
  });
  await sink.holding(1);
  t.false(acked, 'not acked while the sink holds the chunk');
  t.is(log.durableNextOffset, 0, 'nothing deliverable yet');
  t.deepEqual(store.read(log, 0, 10), []);
  sink.settleAll();
  const results = await appended;
  t.deepEqual(results.map((r) => r.offset), [0, 1]);
  t.is(log.durableNextOffset, 2);
  t.is(store.read(log, 0, 10).length, 2);
});

test('a failed sink rejects the commit, keeps its entries undelivered, and stops the log', async (t) => {
  const store = openStore();
  t.teardown(() => store.close());
  const log = store.openLog(1, 'persistent://t/n/b');
  const other = store.openLog(2, 'persistent://t/n/c');
  const sink = new HeldSink();
  log.sink = sink;
  const first = store.append(log, [message('p', 0)]);
  const unaffected = store.append(other, [message('q', 0)]);
  await sink.holding(1);
  sink.settleAll(new AdmqError(ErrorCode.TopicMoved, 'ledger fenced'));
  const error = await t.throwsAsync(first);
  t.is((error as AdmqError).code, ErrorCode.TopicMoved);
  t.is(sink.failure?.code, ErrorCode.TopicMoved, 'the sink is told');
  t.is(log.durableNextOffset, 0, 'the failed entry is never delivered');
  t.deepEqual((await unaffected).map((r) => r.offset), [0], 'another topic in the same commit is unaffected');
  const later = await t.throwsAsync(store.append(log, [message('p', 1)]));
  t.is((later as AdmqError).code, ErrorCode.TopicMoved);
});

test('restoreLog rebuilds a log from its chunks: same offsets and entries, dedupe marks, cursors, clock', async (t) => {
  const a = openStore();
  const b = openStore();
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const name = 'persistent://t/n/d';
  const log = a.openLog(7, name);
  const sink = new HeldSink();
  log.sink = sink;
  const sends: Array<Promise<unknown>> = [];
  for (let round = 0; round < 5; round++) {
    sends.push(a.append(log, [message('p', round * 2), message('p', round * 2 + 1), message(`other-${round}`, 0)]));
    await sink.holding(1);
    sink.settleAll();
  }
  await Promise.all(sends);
  const original = a.read(log, 0, 100);
  t.is(original.length, 15);

  const restored = await b.restoreLog(7, name, sink.chunks, [{ subscription: 'sub', value: { ackedBelow: 4 } }]);
  t.is(restored.nextOffset, 15);
  t.is(restored.durableNextOffset, 15);
  t.deepEqual(
    b.read(restored, 0, 100).map((e) => [e.offset, e.producerName, e.sequenceId, e.hlc, e.payload.toString()]),
    original.map((e) => [e.offset, e.producerName, e.sequenceId, e.hlc, e.payload.toString()]),
  );
  t.deepEqual(b.loadCursors(7), [{ subscription: 'sub', value: { ackedBelow: 4 } }]);
  t.true(b.clock.last >= (original.at(-1)?.hlc ?? 0n), 'the clock moved past every restored HLC');
  // A producer resending after the move is deduplicated by the rebuilt marks.
  const [resent] = await b.append(restored, [message('p', 9)]);
  t.true(resent?.duplicate);
  const [fresh] = await b.append(restored, [message('p', 10)]);
  t.is(fresh?.offset, 15);
  t.true((b.read(restored, 15, 1)[0]?.hlc ?? 0n) > (original.at(-1)?.hlc ?? 0n));
});

test('restoreLog refuses chunks with a gap in offsets', async (t) => {
  const a = openStore();
  const b = openStore();
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const log = a.openLog(3, 'persistent://t/n/e');
  const sink = new HeldSink();
  log.sink = sink;
  for (let i = 0; i < 3; i++) {
    const sent = a.append(log, [message('p', i)]);
    await sink.holding(1);
    sink.settleAll();
    await sent;
  }
  await t.throwsAsync(b.restoreLog(3, 'persistent://t/n/e', [sink.chunks[0] as Buffer, sink.chunks[2] as Buffer], []), { message: /expected 1/ });
});

test('a log unloaded while commits wait for the sink acknowledges nothing more: every pending append fails as moved', async (t) => {
  const store = openStore();
  t.teardown(() => store.close());
  const log = store.openLog(4, 'persistent://t/n/f');
  const sink = new HeldSink();
  log.sink = sink;
  const outcome = (p: Promise<unknown>) => p.then(() => 'acked', (error: AdmqError) => error.code);
  const first = outcome(store.append(log, [message('p', 0)]));
  await sink.holding(1);
  // Queued behind the first commit, whose acknowledgement the sink still holds.
  const second = outcome(store.append(log, [message('p', 1)]));
  // Unloaded before that commit is staged: its chunk never reaches the sink, and even the
  // first (stored in the ledger) is not acknowledged here; the client resends it to the
  // new owner, which finds it already stored.
  store.forgetLog(log, 'the bundle moved');
  t.is(await second, ErrorCode.TopicMoved);
  sink.settleAll();
  t.is(await first, ErrorCode.TopicMoved);
  t.is(sink.chunks.length, 1, 'the second append never reached the sink');
  const later = await t.throwsAsync(store.append(log, [message('p', 2)]));
  t.is((later as AdmqError).code, ErrorCode.TopicMoved);
});

test('a slow ledger delays its own topic only: another topic committed later is acknowledged first', async (t) => {
  const store = openStore();
  t.teardown(() => store.close());
  const slow = store.openLog(5, 'persistent://t/n/slow');
  const fast = store.openLog(6, 'persistent://t/n/fast');
  const held = new HeldSink();
  slow.sink = held;
  fast.sink = { persist: () => Promise.resolve(), failed: () => {} };
  let slowAcked = false;
  const slowSend = store.append(slow, [message('p', 0)]).then(() => {
    slowAcked = true;
  });
  await held.holding(1);
  // A later commit, of another topic, whose ledger answers at once.
  const [fastResult] = await store.append(fast, [message('q', 0)]);
  t.is(fastResult?.offset, 0);
  t.is(fast.durableNextOffset, 1, 'delivered');
  t.false(slowAcked, 'the slow topic still waits for its ledger');
  t.is(slow.durableNextOffset, 0);
  // A second commit of the slow topic stays behind its first.
  const second = store.append(slow, [message('p', 1)]);
  await held.holding(2);
  held.settleAll();
  await Promise.all([slowSend, second]);
  t.is(slow.durableNextOffset, 2);
});
