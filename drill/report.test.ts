// Unit tests of the drill's pure figures and rendering (drill/report.ts), on hand-made
// histories whose answers are worked out in the comments.
import test from 'ava';
import type { ConsumeRecord, ProduceRecord, StoredRecord } from '../multi-region-tests/history.ts';
import {
  RecordIndex,
  buildReport,
  catchUpResult,
  computeDeliveryOrder,
  computeDivergentCopies,
  computeDuplicates,
  computeRpo,
  computeRto,
  computeSeries,
  evaluateResidency,
  failed,
  holdsAcked,
  holdsMessage,
  missingAcked,
  renderHtml,
  renderJson,
  renderText,
  type ReportInput,
  type ResidencyRegion,
  type RpoPlan,
} from './report.ts';

const TOPIC = 'persistent://public/default/__drill-t';

function acked(region: string, position: number, atMs: number, producer = `p-${region}`, sequenceId = position): ProduceRecord {
  return { region, topic: TOPIC, producer, sequenceId, payload: `${producer}#${sequenceId}`, acked: true, originRegion: region, originPosition: position, offset: position, hlc: BigInt(atMs), atMs };
}

function unacked(region: string, sequenceId: number, atMs: number, producer = `p-${region}`): ProduceRecord {
  return { region, topic: TOPIC, producer, sequenceId, payload: `${producer}#${sequenceId}`, acked: false, atMs };
}

/** A region's log holding these (origin, position) entries at offsets 0, 1, 2, … */
function log(region: string, ids: Array<[string, number]>): StoredRecord[] {
  return ids.map(([origin, position], offset) => ({ region, topic: TOPIC, offset, originRegion: origin, originPosition: position, producer: `p-${origin}`, sequenceId: position, payload: `p-${origin}#${position}`, hlc: BigInt(offset + 1) }));
}

function consumed(subscription: string, producer: string, sequenceId: number, atMs: number, region = 'a', origin = 'a'): ConsumeRecord {
  return { region, topic: TOPIC, subscription, offset: 0, originRegion: origin, originPosition: sequenceId, producer, sequenceId, payload: `${producer}#${sequenceId}`, hlc: 1n, atMs };
}

// --- finding acked entries ---------------------------------------------------------------

test('holdsAcked: by global id, or by producer and sequence when the ack named no position', (t) => {
  const index = new RecordIndex(log('b', [['a', 0], ['a', 1]]));
  t.true(holdsAcked(index, acked('a', 1, 10)));
  t.false(holdsAcked(index, acked('a', 2, 10)));
  // Same sequence id, other origin: the global id decides.
  t.false(holdsAcked(index, acked('c', 1, 10, 'p-a', 1)));
  // A resend acked as a duplicate (position -1) is found by p-a#1.
  t.true(holdsAcked(index, { ...acked('b', 0, 10, 'p-a', 1), originPosition: -1 }));
  t.false(holdsAcked(index, { ...acked('b', 0, 10, 'p-a', 7), originPosition: -1 }));
});

test('holdsMessage: any copy of the message counts, whatever its global id', (t) => {
  const index = new RecordIndex(log('b', [['a', 0], ['a', 1]]));
  // p-a#1 resent to c after a failover and acked there as c:7; b kept a's copy a:1.
  const resent = acked('c', 7, 10, 'p-a', 1);
  t.false(holdsAcked(index, resent));
  t.true(holdsMessage(index, resent));
  t.false(holdsMessage(index, acked('c', 8, 10, 'p-a', 2)));
});

test('missingAcked: lists acked entries some region lacks, ignores unacked ones and acks after the cut-off', (t) => {
  const produces = [acked('a', 0, 10), acked('a', 1, 20), unacked('a', 2, 25), acked('a', 3, 40)];
  const logs = new Map([
    ['b', new RecordIndex(log('b', [['a', 0], ['a', 1]]))],
    ['c', new RecordIndex(log('c', [['a', 0]]))],
  ]);
  t.deepEqual(
    missingAcked(produces, logs).map((m) => [m.produce.originPosition, m.regions]),
    [
      [1, ['c']],
      [3, ['b', 'c']],
    ],
  );
  t.deepEqual(
    missingAcked(produces, logs, { ackedByMs: 30 }).map((m) => m.produce.originPosition),
    [1],
  );
});

test('computeDivergentCopies: one message under two global ids, each held by the regions that stored it first', (t) => {
  // p-a#1 is a:1 in a and b, but c stored the resend first, as c:0.
  const resend: StoredRecord = { region: 'c', topic: TOPIC, offset: 0, originRegion: 'c', originPosition: 0, producer: 'p-a', sequenceId: 1, payload: 'p-a#1', hlc: 1n };
  const logs = new Map([
    ['a', log('a', [['a', 0], ['a', 1]])],
    ['b', log('b', [['a', 0], ['a', 1]])],
    ['c', [resend, { ...(log('c', [['a', 0]])[0] as StoredRecord), offset: 1 }]],
  ]);
  const divergent = computeDivergentCopies(logs);
  t.is(divergent.count, 1);
  t.deepEqual(divergent.list, [
    {
      producer: 'p-a',
      sequenceId: 1,
      copies: [
        { globalId: 'a:1', regions: ['a', 'b'] },
        { globalId: 'c:0', regions: ['c'] },
      ],
    },
  ]);
  t.is(computeDivergentCopies(new Map([['a', log('a', [['a', 0]])], ['b', log('b', [['a', 0]])]])).count, 0);
});

// --- RPO -----------------------------------------------------------------------------------

// Origin a acks positions 0–5 at 100–105 ms. At the snapshot (104.5 ms) b holds a:0–2
// (3 entries) and c holds a:0–1 (2 entries). In the end b holds a:0–5 and c a:0–3 plus
// a:5, so a:4 never reaches c.
const RPO_PRODUCES = [0, 1, 2, 3, 4, 5].map((p) => acked('a', p, 100 + p));
const RPO_FINAL = new Map([
  ['b', log('b', [['a', 0], ['a', 1], ['a', 2], ['a', 3], ['a', 4], ['a', 5]])],
  ['c', log('c', [['a', 0], ['a', 1], ['a', 2], ['a', 3], ['a', 5]])],
]);
const RPO_PLAN: RpoPlan = { basis: 'test', snapshotAtMs: 104.5, ackedByMs: 104.5, entriesAt: { b: 3, c: 2 }, pairs: [{ origin: 'a', observers: ['b', 'c'] }] };

test('computeRpo: entries acked in the origin and missing somewhere at the snapshot, each with where it arrived', (t) => {
  // When each entry was first seen: offset → ms. Recovery ended at 200.
  const arrivedAtMs = new Map([
    ['b', new Map([[3, 150], [4, 250]])],
    ['c', new Map([[2, 210], [3, 220]])],
  ]);
  const rpo = computeRpo({ plan: RPO_PLAN, produces: [...RPO_PRODUCES, acked('b', 0, 101)], finalLogs: RPO_FINAL, arrivedAtMs, recoveredAtMs: 200 });
  // a:5 was acked after the snapshot; b's own ack is not from origin a.
  t.deepEqual(rpo.entries.map((e) => [e.globalId, e.missingAt]), [
    ['a:2', ['c']],
    ['a:3', ['b', 'c']],
    ['a:4', ['b', 'c']],
  ]);
  t.is(rpo.count, 3);
  t.is(rpo.heldNowhere, 2, 'a:3 and a:4 were in no other region');
  t.is(rpo.oldestAgeMs, 104.5 - 102, 'a:2, acked at 102, is the oldest at risk');
  t.deepEqual(rpo.entries[1]?.arrivals, {
    b: { arrived: true, atMs: 150, afterRecovery: false },
    c: { arrived: true, atMs: 220, afterRecovery: true },
  });
  t.deepEqual(rpo.entries[2]?.arrivals.c, { arrived: false, atMs: null, afterRecovery: null });
  t.deepEqual(rpo.entries.map((e) => e.arrivedEverywhere), [true, true, false]);
  t.is(rpo.arrivedEverywhere, 2);
  t.is(rpo.notArrived, 1);
});

test('computeRpo: nothing at risk gives an empty list and age 0; the list is bounded but counted', (t) => {
  const none = computeRpo({ plan: { ...RPO_PLAN, entriesAt: { b: 6, c: 5 } }, produces: RPO_PRODUCES.slice(0, 4), finalLogs: RPO_FINAL });
  t.is(none.count, 0);
  t.is(none.oldestAgeMs, 0);
  const bounded = computeRpo({ plan: RPO_PLAN, produces: RPO_PRODUCES, finalLogs: RPO_FINAL, listMax: 1 });
  t.is(bounded.count, 3);
  t.is(bounded.entries.length, 1);
  t.is(bounded.omitted, 2);
});

test('computeRpo: a resend acked as a duplicate is judged by producer and sequence', (t) => {
  const resend = { ...acked('a', 0, 100, 'p-a', 9), originPosition: -1 };
  const rpo = computeRpo({ plan: { ...RPO_PLAN, entriesAt: { b: 6, c: 5 } }, produces: [resend], finalLogs: RPO_FINAL });
  t.deepEqual(rpo.entries.map((e) => [e.globalId, e.producer, e.sequenceId, e.missingAt]), [[null, 'p-a', 9, ['b', 'c']]]);
});

// --- RTO -----------------------------------------------------------------------------------

test('computeRto: the first success after the fault, in another region when the region must move', (t) => {
  const spec = { definition: 'd', faultAtMs: 1000, region: 'a', producer: 'p-a', subscription: 's-a', mustMove: true };
  const produces = [acked('a', 5, 900), acked('a', 6, 1001), { ...acked('b', 7, 1800, 'p-a', 7) }, { ...acked('b', 8, 1700, 'p-a', 8) }, acked('b', 1, 1100)];
  const consumes = [consumed('s-a', 'p-b', 1, 1002, 'a'), consumed('s-a', 'p-b', 2, 1500, 'c'), consumed('s-b', 'p-b', 3, 1200, 'b')];
  const rto = computeRto(spec, produces, consumes);
  // a's own ack at 1001 does not count (still the failed region); p-b's ack is another producer's.
  t.deepEqual(rto.produce, { atMs: 1700, ms: 700, region: 'b' });
  t.deepEqual(rto.consume, { atMs: 1500, ms: 500, region: 'c' });
  const anywhere = computeRto({ ...spec, mustMove: false }, produces, consumes);
  t.deepEqual(anywhere.produce, { atMs: 1001, ms: 1, region: 'a' });
  t.is(computeRto({ ...spec, faultAtMs: 5000 }, produces, consumes).produce, null);
});

// --- duplicates and order -----------------------------------------------------------------

test('computeDuplicates: a payload delivered again to the same subscription; other subscriptions are no duplicates', (t) => {
  const consumes = [
    consumed('s1', 'p', 1, 10),
    consumed('s1', 'p', 2, 11),
    consumed('s2', 'p', 1, 12),
    consumed('s1', 'p', 1, 13, 'b'),
    consumed('s1', 'p', 1, 14, 'b'),
    consumed('s2', 'p', 2, 15),
  ];
  const d = computeDuplicates(consumes);
  t.is(d.count, 2, 'p#1 came three times to s1');
  t.is(d.messages, 1);
  t.deepEqual(d.bySubscription, { s1: 2, s2: 0 });
  t.deepEqual(d.list[0]?.deliveries.map((x) => [x.atMs, x.region]), [
    [10, 'a'],
    [13, 'b'],
    [14, 'b'],
  ]);
  t.is(computeDuplicates([]).count, 0);
});

test('computeDeliveryOrder: a first delivery below the producer’s highest so far; repeats and other producers do not count', (t) => {
  const consumes = [
    consumed('s1', 'p', 1, 10),
    consumed('s1', 'q', 9, 11),
    consumed('s1', 'p', 3, 12),
    consumed('s1', 'q', 10, 13),
    consumed('s1', 'p', 1, 14), // a duplicate, not an order violation
    consumed('s1', 'p', 2, 15), // after 3: out of order
    consumed('s2', 'p', 2, 16), // another subscription starts afresh
    consumed('s2', 'p', 4, 17),
  ];
  const order = computeDeliveryOrder(consumes);
  t.deepEqual(order.list.map((v) => [v.subscription, v.producer, v.sequenceId, v.afterSequenceId]), [['s1', 'p', 2, 3]]);
  t.is(order.count, 1);
});

// --- residency, catch-up, series ---------------------------------------------------------

function residencyRegion(region: string, allowed: boolean, topics: string[], reachable = true): ResidencyRegion {
  return { region, allowed, reachable, tenantPresent: topics.length > 0, topics, canaryEntries: null, residencyRefusalsAtStart: 0, residencyRefusals: 0, withheldEntries: 0 };
}

test('evaluateResidency: a topic of the tenant outside its allowed regions is a violation; unreachable regions are unchecked', (t) => {
  const result = evaluateResidency('bank', ['a', 'b'], [residencyRegion('a', true, ['persistent://bank/pay/x']), residencyRegion('c', false, ['persistent://bank/pay/x', 'persistent://bank/pay/y']), residencyRegion('d', false, [], false)]);
  t.is(result.violations.length, 1);
  t.regex(result.violations[0] as string, /^c holds 2 topics of tenant bank outside its allowed regions \[a, b\]/);
  t.deepEqual(result.unchecked, ['d']);
  t.deepEqual(evaluateResidency('bank', ['a'], [residencyRegion('a', true, ['t']), residencyRegion('b', false, [])]).violations, []);
});

test('catchUpResult: time from the recovery, or the missing entries when it timed out', (t) => {
  t.is(catchUpResult({ fromMs: 1000, caughtUpAtMs: 3500, timeoutMs: 10_000, ackedEntries: 5, missing: [] }).ms, 2500);
  const late = catchUpResult({ fromMs: 1000, caughtUpAtMs: null, timeoutMs: 10_000, ackedEntries: 5, missing: [{ produce: acked('a', 4, 10), regions: ['b'] }], listMax: 10 });
  t.is(late.ms, null);
  t.deepEqual(late.missing, [{ id: 'a:4 (p-a#4)', regions: ['b'] }]);
});

test('computeSeries: acks by region, failures and deliveries per bucket', (t) => {
  const series = computeSeries([acked('a', 0, 1100), acked('b', 0, 1200), unacked('a', 1, 1700), acked('a', 1, 2600)], [consumed('s', 'p', 1, 1300)], 1000, 3000);
  t.is(series.bucketMs, 500);
  t.deepEqual(series.buckets, [
    { tMs: 0, acked: { a: 1, b: 1 }, failed: 0, delivered: 1 },
    { tMs: 500, acked: {}, failed: 1, delivered: 0 },
    { tMs: 1000, acked: {}, failed: 0, delivered: 0 },
    { tMs: 1500, acked: { a: 1 }, failed: 0, delivered: 0 },
  ]);
});

// --- the report ----------------------------------------------------------------------------

function input(overrides: Partial<ReportInput> = {}): ReportInput {
  return {
    runId: 'test-1',
    scenario: { name: 'region-outage', title: 'region-outage: SIGKILL of a for 1 s', region: 'a', mode: 'kill', faultMs: 1000 },
    target: { kind: 'harness', description: 'unit test', regions: ['a', 'b', 'c'] },
    tenant: 'public',
    namespace: 'public/default',
    topic: TOPIC,
    homeRegion: 'a',
    allowedRegions: ['a', 'b', 'c'],
    canaryRegions: ['a', 'b', 'c'],
    observedRegions: ['b', 'c'],
    startedAtMs: 0,
    finishedAtMs: 1000,
    settings: { ratePerProducer: 50 },
    phases: [{ phase: 'fault', startedAtMs: 100, endedAtMs: 900, note: '' }],
    events: [
      { atMs: 500, kind: 'recovered', text: 'recovered' },
      { atMs: 100, kind: 'fault', text: 'fault' },
    ],
    produces: RPO_PRODUCES,
    consumes: [consumed('s-a', 'p-a', 0, 300, 'b')],
    producerHomes: new Map([['p-a', 'a']]),
    consumerHomes: new Map([['s-a', 'a']]),
    finalLogs: RPO_FINAL,
    rpoPlan: RPO_PLAN,
    rtoSpec: { definition: 'd', faultAtMs: 100, region: 'a', producer: 'p-a', subscription: 's-a', mustMove: true },
    recoveredAtMs: 500,
    catchUp: catchUpResult({ fromMs: 500, caughtUpAtMs: 700, timeoutMs: 1000, ackedEntries: 6, missing: [] }),
    residency: evaluateResidency('public', ['a', 'b', 'c'], [residencyRegion('a', true, [TOPIC])]),
    violations: [],
    ...overrides,
  };
}

test('buildReport: an entry at risk that never arrived fails the drill; events come in time order', (t) => {
  const report = buildReport(input());
  t.deepEqual(report.events.map((e) => e.kind), ['fault', 'recovered']);
  t.is(report.rpo.applicable && report.rpo.notArrived, 1);
  t.true(failed(report));
  t.is(report.findings[0]?.severity, 'fail');
  t.regex(report.findings[0]?.text ?? '', /never reached every region/);
  // The RTO: no produce of p-a outside a after the fault; one delivery in b at 300.
  t.true(report.rto.applicable && report.rto.produce === null && report.rto.consume?.ms === 200);
  t.true(report.findings.some((f) => f.severity === 'warn' && /RTO: no successful produce/.test(f.text)));
  t.deepEqual(report.canary.producers.map((p) => [p.producer, p.attempts, p.acked, p.ackedByRegion]), [['p-a', 6, 6, { a: 6 }]]);
  t.is(report.canary.consumers[0]?.undelivered, 5, 'six acked messages, one delivered');
});

test('buildReport: when everything arrived, nothing fails; a planned failover with RPO > 0 fails', (t) => {
  const everywhere = new Map([
    ['b', RPO_FINAL.get('b') as StoredRecord[]],
    ['c', log('c', [['a', 0], ['a', 1], ['a', 2], ['a', 3], ['a', 4], ['a', 5]])],
  ]);
  const report = buildReport(input({ finalLogs: everywhere }));
  t.false(failed(report), renderText(report));
  t.true(report.findings.some((f) => f.severity === 'ok' && /RPO: 3 acked entries were not yet replicated/.test(f.text)));
  const planned = buildReport(input({ finalLogs: everywhere, scenario: { name: 'planned-failover', title: 'planned-failover: home a → b', region: 'a', to: 'b' } }));
  t.true(failed(planned));
  t.true(planned.findings.some((f) => f.severity === 'fail' && /RPO must be 0/.test(f.text)));
});

test('buildReport: invariant violations and residency violations fail the drill', (t) => {
  const everywhere = new Map([
    ['b', RPO_FINAL.get('b') as StoredRecord[]],
    ['c', RPO_FINAL.get('b') as StoredRecord[]],
  ]);
  t.false(failed(buildReport(input({ finalLogs: everywhere }))));
  t.true(failed(buildReport(input({ finalLogs: everywhere, violations: [{ invariant: 1, kind: 'lost', message: 'x' }] }))));
  const outside = evaluateResidency('public', ['a', 'b'], [residencyRegion('c', false, [TOPIC])]);
  t.true(failed(buildReport(input({ finalLogs: everywhere, residency: outside }))));
});

test('renderHtml: self-contained (no script, no external resource) and every text escaped', (t) => {
  const hostile = '<script>alert("x")</script>';
  const report = buildReport(input({ tenant: hostile, topic: `persistent://t/n/${hostile}`, notes: [hostile], events: [{ atMs: 100, kind: 'note', text: hostile }] }));
  const html = renderHtml(report);
  t.true(html.startsWith('<!doctype html>'));
  t.true(html.includes('<svg'), 'the timeline is inline SVG');
  t.false(/<script|<link|<img|<iframe|@import|url\(|src=|href=|https?:/i.test(html), 'nothing is loaded from anywhere');
  t.true(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'));
  // The RPO table lists the entries by global id.
  for (const id of ['a:2', 'a:3', 'a:4']) t.true(html.includes(`>${id}<`), id);
});

test('renderJson: the report round-trips through JSON', (t) => {
  const report = buildReport(input());
  t.deepEqual(JSON.parse(renderJson(report)), JSON.parse(JSON.stringify(report)));
  t.is((JSON.parse(renderJson(report)) as { version: number }).version, 1);
});
