import test from 'ava';
import { backoffMs, lingerMs, replicationDelayMs, selectEntries } from './index.ts';
import type { LogEntry } from './index.ts';

const entry = (originRegion: string, originPosition: number, offset: number): LogEntry => ({
  offset, originRegion, originPosition, hlc: BigInt(offset + 1), producerName: 'p', sequenceId: offset, publishTimeMs: 1000 + offset, eventTimeMs: 0, key: undefined, properties: {}, payload: Buffer.from('x'),
});

test('selection: resume from the receiver skips what it holds, per origin', (t) => {
  const entries = [entry('a', 0, 0), entry('b', 0, 1), entry('a', 1, 2), entry('b', 1, 3), entry('a', 2, 4)];
  const s = selectEntries({ entries, marks: new Map([['a', 1]]), routes: () => true, remoteMayHold: true });
  t.deepEqual(s.ship.map((e) => `${e.originRegion}#${e.originPosition}`), ['b#0', 'b#1', 'a#2']);
  t.is(s.alreadyThere, 2);
});

test('selection: entries not routed over the link are not shipped', (t) => {
  const entries = [entry('a', 0, 0), entry('b', 0, 1)];
  const s = selectEntries({ entries, marks: new Map(), routes: (origin) => origin === 'a', remoteMayHold: true });
  t.deepEqual(s.ship.map((e) => e.originRegion), ['a']);
  t.is(s.notRouted, 1);
});

test('selection: residency withholds everything from a region that may not hold the data', (t) => {
  const s = selectEntries({ entries: [entry('a', 0, 0)], marks: new Map(), routes: () => true, remoteMayHold: false });
  t.is(s.ship.length, 0);
  t.is(s.residencyBlocked, 1);
});

test('lag: a disconnected link never reports zero delay', (t) => {
  for (const state of ['backing-off', 'connecting', 'starting'] as const) {
    t.true(replicationDelayMs({ state, nowMs: 10_000, oldestUnackedPublishMs: undefined, lastContactMs: 10_000, startedMs: 0 }) > 0);
  }
  t.is(replicationDelayMs({ state: 'connected', nowMs: 10_000, oldestUnackedPublishMs: undefined, lastContactMs: 9_000, startedMs: 0 }), 0);
  t.is(replicationDelayMs({ state: 'connected', nowMs: 10_000, oldestUnackedPublishMs: 7_500, lastContactMs: 9_000, startedMs: 0 }), 2_500);
  t.is(replicationDelayMs({ state: 'backing-off', nowMs: 10_000, oldestUnackedPublishMs: 9_900, lastContactMs: 4_000, startedMs: 0 }), 6_000);
  // Connected but unanswered for longer than staleAfterMs (a silent cut): the silence counts.
  t.is(replicationDelayMs({ state: 'connected', nowMs: 10_000, oldestUnackedPublishMs: undefined, lastContactMs: 8_000, startedMs: 0, staleAfterMs: 1_000 }), 2_000);
  t.is(replicationDelayMs({ state: 'connected', nowMs: 10_000, oldestUnackedPublishMs: undefined, lastContactMs: 9_500, startedMs: 0, staleAfterMs: 1_000 }), 0);
});

test('backoff: from about 100 ms, doubling, capped at 5 s', (t) => {
  t.true(backoffMs(0, 0) >= 50 && backoffMs(0, 1) <= 100);
  t.true(backoffMs(3, 1) === 800);
  t.is(backoffMs(30, 1), 5_000);
  t.true(backoffMs(30, 0) >= 2_500);
});

test('linger: entries ship at once with nothing in flight, however recent the last batch', (t) => {
  t.is(lingerMs({ inflightBatches: 0, lastBatchAtMs: 1000, nowMs: 1000, batchLingerMs: 2 }), 0);
});

test('linger: with batches in flight, entries wait until the linger has passed since the last batch', (t) => {
  t.is(lingerMs({ inflightBatches: 3, lastBatchAtMs: 1000, nowMs: 1000.5, batchLingerMs: 2 }), 1.5);
  t.is(lingerMs({ inflightBatches: 3, lastBatchAtMs: 1000, nowMs: 1002, batchLingerMs: 2 }), 0);
});

test('linger: a link with batches in flight that last sent longer ago than the linger ships at once', (t) => {
  // A 60 ms round trip keeps a batch in flight all the time at 50 entries/s: no entry waits.
  t.is(lingerMs({ inflightBatches: 3, lastBatchAtMs: 1000, nowMs: 1020, batchLingerMs: 2 }), 0);
  t.is(lingerMs({ inflightBatches: 1, lastBatchAtMs: -Infinity, nowMs: 5, batchLingerMs: 2 }), 0);
});

test('linger: a linger of 0 never holds entries back', (t) => {
  t.is(lingerMs({ inflightBatches: 5, lastBatchAtMs: 1000, nowMs: 1000, batchLingerMs: 0 }), 0);
});
