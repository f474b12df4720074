// The lag history on real LMDB files in temporary directories, with simulated time: the
// store never reads a clock, so a test can write ten minutes of samples in milliseconds.
import test from 'ava';
import { readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { prng, seedFromEnv } from '../test-support/random.ts';
import { parseLagHistorySettings, type LagHistorySettings } from '../topology/index.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';
import { LagHistoryStore } from './history-store.ts';
import { parseHistoryPage, queryHistory } from './history-wire.ts';
import { buildPairReport, decodeRegionHistory, type RegionHistory, type ReportInput } from './report.ts';
import { mergeCells, rawCell, seriesKeyText, sketchOf, type Cell, type Sample, type SeriesKey } from './series.ts';
import { LagSketch } from './sketch.ts';

const seed = seedFromEnv();
test.before(() => console.log(`history store tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const T0 = 1_800_000_000_000; // a whole minute, and a multiple of 48 minutes
const SETTINGS: LagHistorySettings = parseLagHistorySettings({ recentWindowMs: 120_000, retentionMs: 3_600_000, bytesMax: 1024 * 1024 });
const OUT: SeriesKey = { kind: 'out', namespace: 'bank/pay', from: 'shanghai', to: 'beijing' };
const NODE: SeriesKey = { kind: 'node', namespace: '', from: 'shanghai', to: '' };

function outSample(lagMs: number, extra: Partial<Record<string, number>> = {}): Sample {
  return { series: OUT, values: { lagMs, backlogEntries: 1, backlogBytes: 100, links: 1, linkState: 2, duplicates: 0, residencyWithheld: 0, clockSkewRefusals: 0, entriesShipped: 5, reconnects: 0, ...extra } };
}

function nodeSample(): Sample {
  return { series: NODE, values: { residencyRefusals: 0, unauthorizedRefusals: 0, clockSkewRefusals: 0, maxClockSkewMs: 0, entriesAppended: 0, duplicates: 0 } };
}

function testDir(t: { teardown: (f: () => void) => void }): string {
  const dir = tempDir('admq-lag-history-');
  t.teardown(() => removeTempDir(dir));
  return dir;
}

function read(store: LagHistoryStore, fromMs: number, toMs: number, nowMs: number): RegionHistory {
  const pages = [];
  let after: string | undefined;
  do {
    const page = queryHistory(store, 'shanghai', nowMs, { namespace: OUT.namespace, fromMs, toMs, ...(after !== undefined && { after }) });
    // Through JSON and the parser, as the admin API sends it.
    const parsed = parseHistoryPage(JSON.parse(JSON.stringify(page)));
    pages.push(parsed);
    after = parsed.next;
  } while (after !== undefined);
  return decodeRegionHistory(pages, { fromMs, toMs });
}

function cellsOf(history: RegionHistory, series: SeriesKey): Cell[] {
  return history.series.get(seriesKeyText(series)) ?? [];
}

test('history store: samples survive a restart; a slot never written stays a gap, never a zero', async (t) => {
  const dir = testDir(t);
  let store = await LagHistoryStore.open({ dataDir: dir, settings: SETTINGS });
  for (let i = 0; i < 90; i++) {
    if (i >= 30 && i < 45) continue; // the node was down
    await store.record(T0 + i * 1000, [outSample(100 + i), nodeSample()], { 'conflicts|bank/pay': i });
  }
  await store.close();
  store = await LagHistoryStore.open({ dataDir: dir, settings: SETTINGS });
  t.teardown(() => store.close());
  t.deepEqual(store.baselines(), { 'conflicts|bank/pay': 89 });
  t.is(store.info().firstSampleMs, T0);
  const history = read(store, T0, T0 + 90_000, T0 + 90_000);
  const cells = cellsOf(history, OUT);
  t.is(cells.length, 75);
  t.deepEqual(
    cells.map((c) => c.values.lagMs),
    Array.from({ length: 90 }, (_, i) => i).filter((i) => i < 30 || i >= 45).map((i) => 100 + i),
  );
  t.false(cells.some((c) => c.startMs >= T0 + 30_000 && c.startMs < T0 + 45_000));
  // A sample after the restart lands in the same chunk beside the ones before it.
  await store.record(T0 + 90_000, [outSample(7), nodeSample()]);
  t.is(cellsOf(read(store, T0, T0 + 91_000, T0 + 91_000), OUT).length, 76);
});

/** 2 s buckets, so that a downsampled record (1,440 buckets) spans 48 minutes of test data. */
const FINE: LagHistorySettings = parseLagHistorySettings({ recentWindowMs: 120_000, downsampledResolutionMs: 2000, retentionMs: 36_000_000, bytesMax: 1024 * 1024 });
const DAY = 86_400_000;

test('history store: samples that leave the recent window become buckets that keep the count, max, percentiles and sums', async (t) => {
  const dir = testDir(t);
  const store = await LagHistoryStore.open({ dataDir: dir, settings: FINE });
  t.teardown(() => store.close());
  const random = prng(seed);
  const lags: number[] = [];
  const slots = [];
  for (let i = 0; i < 7200; i++) {
    const lag = i >= 1000 && i < 1060 ? 8000 + Math.floor(random() * 4000) : Math.floor(random() * 300);
    lags.push(lag);
    slots.push({ slotMs: T0 + i * 1000, samples: [outSample(lag, { duplicates: i % 7 === 0 ? 1 : 0 }), nodeSample()] });
  }
  await store.recordBatch(slots);
  const before = read(store, T0, T0 + 7_200_000, T0 + 7_200_000);
  const result = await store.maintain(T0 + 7_200_000);
  t.true(result.downsampledChunks > 0);
  const after = read(store, T0, T0 + 7_200_000, T0 + 7_200_000);
  const cells = cellsOf(after, OUT);
  const buckets = cells.filter((c) => !c.raw);
  const raw = cells.filter((c) => c.raw);
  // Two whole 48-minute records left the 2-minute window and were downsampled; the rest stays raw.
  t.is(buckets.length, 2880);
  t.is(raw.length, 1440);
  t.is(buckets[buckets.length - 1]?.startMs, T0 + 5_758_000);
  for (const [i, bucket] of buckets.entries()) {
    const pair = lags.slice(i * 2, i * 2 + 2);
    if (bucket.count !== 2 || bucket.values.lagMs !== Math.max(...pair) || bucket.values.duplicates !== [i * 2, i * 2 + 1].filter((j) => j % 7 === 0).length) {
      return t.fail(`bucket ${i}: ${JSON.stringify(bucket.values)} from ${JSON.stringify(pair)}`);
    }
  }
  // Figures over the whole period agree between the raw and the downsampled history.
  const input = { period: { fromMs: T0, toMs: T0 + 7_200_000 }, sampleIntervalMs: 1000, links: [['shanghai', 'beijing']] } as unknown as ReportInput;
  const ns = { namespace: 'bank/pay', tenant: 'bank', replicationSet: ['shanghai', 'beijing'], allowedRegions: ['shanghai', 'beijing'], rpoTargetMs: 5000 };
  const withHistory = (h: RegionHistory): ReportInput => ({ ...input, histories: new Map([['bank/pay', new Map([['shanghai', h]])]]) }) as ReportInput;
  const rawReport = buildPairReport(withHistory(before), ns, 'shanghai', 'beijing', 60_000);
  const downReport = buildPairReport(withHistory(after), ns, 'shanghai', 'beijing', 60_000);
  t.is(downReport.lag?.maxMs, rawReport.lag?.maxMs);
  t.is(downReport.lag?.samples, 7200);
  t.is(downReport.lag?.p99Ms, rawReport.lag?.p99Ms);
  t.is(downReport.lag?.p50Ms, rawReport.lag?.p50Ms);
  t.is(downReport.coverage.observedMs, 7_200_000);
  t.is(downReport.coverage.downsampledMs, 5_760_000);
  t.is(rawReport.timeAboveTargetMs, 60_000);
  t.is(downReport.timeAboveTargetMs, 60_000);
  t.deepEqual(rawReport.breaches.map((b) => [b.startMs - T0, b.endMs - T0, b.resolutionMs]), [[1_000_000, 1_060_000, 1000]]);
  t.deepEqual(downReport.breaches.map((b) => [b.startMs - T0, b.endMs - T0, b.resolutionMs, b.aboveTargetMs]), [[1_000_000, 1_060_000, 2000, 60_000]]);
  t.is(downReport.counters.duplicates, rawReport.counters.duplicates);
  // Maintenance again changes nothing: a record is downsampled once.
  t.is((await store.maintain(T0 + 7_200_000)).downsampledChunks, 0);
});

test('history store: retention drops whole records older than it and records from when history is kept', async (t) => {
  const dir = testDir(t);
  const store = await LagHistoryStore.open({ dataDir: dir, settings: { ...FINE, retentionMs: 3_000_000 } });
  t.teardown(() => store.close());
  await store.recordBatch(Array.from({ length: 7200 }, (_, i) => ({ slotMs: T0 + i * 1000, samples: [outSample(10), nodeSample()] })));
  const result = await store.maintain(T0 + 7_200_000);
  t.true(result.removedForRetention > 0);
  // The first 48-minute record ended before now − 50 min; the second did not.
  t.is(store.info().retainedFromMs, T0 + 2_880_000);
  const history = read(store, T0, T0 + 7_200_000, T0 + 7_200_000);
  t.is(cellsOf(history, OUT)[0]?.startMs, T0 + 2_880_000);
  const ns = { namespace: 'bank/pay', tenant: 'bank', replicationSet: ['shanghai', 'beijing'], allowedRegions: ['shanghai', 'beijing'], rpoTargetMs: 5000 };
  const input = { period: { fromMs: T0, toMs: T0 + 7_200_000 }, sampleIntervalMs: 1000, links: [['shanghai', 'beijing']], histories: new Map([['bank/pay', new Map([['shanghai', history]])]]) } as unknown as ReportInput;
  const pair = buildPairReport(input, ns, 'shanghai', 'beijing', 60_000);
  t.deepEqual(pair.gaps.map((g) => [g.startMs - T0, g.endMs - T0, g.cause]), [[0, 2_880_000, 'not-retained']]);
});

/** A minute bucket with 60 samples spread over 0..5 s: a wide sketch, as a bad day makes. */
function wideBucket(startMs: number, random: () => number): Cell {
  const sketch = new LagSketch();
  let max = 0;
  for (let s = 0; s < 60; s++) {
    const lag = Math.floor(random() * 5000);
    sketch.add(lag);
    max = Math.max(max, lag);
  }
  return { startMs, spanMs: 60_000, count: 60, raw: false, values: { ...outSample(max).values }, hlc: {}, sketches: { lagMs: sketch }, states: { linkState: [0, 0, 60] } };
}

test('history store: the size bound drops the oldest days first and keeps the newest', async (t) => {
  const dir = testDir(t);
  const settings = parseLagHistorySettings({ retentionMs: 400 * DAY, bytesMax: 1024 * 1024 });
  const store = await LagHistoryStore.open({ dataDir: dir, settings });
  t.teardown(() => store.close());
  const random = prng(seed);
  const days = 12;
  // Records are whole days (1,440 minute buckets).
  const D0 = Math.ceil(T0 / DAY) * DAY;
  // Two pairs with twelve days of wide minute buckets: several MiB, well over the 1 MiB bound.
  for (let p = 0; p < 2; p++) {
    const series: SeriesKey = { ...OUT, to: `region-${p}` };
    for (let d = 0; d < days; d++) await store.writeBuckets(series, Array.from({ length: 1440 }, (_, m) => wideBucket(D0 + d * DAY + m * 60_000, random)));
  }
  t.true(store.bytesUsed() > settings.bytesMax, `${store.bytesUsed()} bytes before`);
  const result = await store.maintain(D0 + days * DAY);
  t.true(result.removedForSize > 0);
  t.true(result.bytesUsed <= settings.bytesMax, `${result.bytesUsed} bytes after`);
  const retainedFrom = store.info().retainedFromMs as number;
  t.true(retainedFrom > D0 && retainedFrom < D0 + days * DAY);
  // What is left is the newest: every series still has its last day, nothing before the mark.
  const page = store.query({ namespace: OUT.namespace, fromMs: D0, toMs: D0 + days * DAY, pageBytesMax: 64 * 1024 * 1024 });
  t.false(page.chunks.some((c) => c.startMs < retainedFrom));
  for (let p = 0; p < 2; p++) t.true(page.chunks.some((c) => c.series.to === `region-${p}` && c.startMs === D0 + (days - 1) * DAY), JSON.stringify(page.chunks.map((c) => [c.series.to, (c.startMs - D0) / DAY])));
});

test('history store: pages hold every chunk once, and a cursor continues where the last page ended', async (t) => {
  const dir = testDir(t);
  const store = await LagHistoryStore.open({ dataDir: dir, settings: FINE });
  t.teardown(() => store.close());
  await store.recordBatch(Array.from({ length: 7200 }, (_, i) => ({ slotMs: T0 + i * 1000, samples: [outSample(i), nodeSample()] })));
  await store.maintain(T0 + 7_200_000);
  const whole = store.query({ namespace: OUT.namespace, fromMs: T0, toMs: T0 + 7_200_000, pageBytesMax: 64 * 1024 * 1024 });
  t.is(whole.next, undefined);
  t.true(whole.chunks.some((c) => c.level === 0) && whole.chunks.some((c) => c.level === 1));
  const paged = [];
  let after: string | undefined;
  let pages = 0;
  do {
    const page = store.query({ namespace: OUT.namespace, fromMs: T0, toMs: T0 + 7_200_000, pageBytesMax: 2000, ...(after !== undefined && { after }) });
    paged.push(...page.chunks);
    after = page.next;
    pages++;
  } while (after !== undefined);
  t.true(pages > 3);
  const key = (c: { series: SeriesKey; level: number; startMs: number }): string => `${seriesKeyText(c.series)}@${c.level}@${c.startMs}`;
  t.deepEqual(paged.map(key), whole.chunks.map(key));
  t.throws(() => store.query({ namespace: OUT.namespace, fromMs: T0, toMs: T0 + 1000, pageBytesMax: 300, after: 'not-a-cursor' }), { code: 'ADMQ_ERR_HISTORY_QUERY' });
  // Another namespace's series are not part of this one's answer; node series always are.
  await store.record(T0 + 7_200_000, [{ ...outSample(1), series: { ...OUT, namespace: 'other/ns' } }]);
  const again = store.query({ namespace: OUT.namespace, fromMs: T0, toMs: T0 + 7_300_000, pageBytesMax: 64 * 1024 * 1024 });
  t.false(again.chunks.some((c) => c.series.namespace === 'other/ns'));
  t.true(again.chunks.some((c) => c.series.kind === 'node'));
});

test('history store: a bucket written for an import merges with what is there', async (t) => {
  const dir = testDir(t);
  const store = await LagHistoryStore.open({ dataDir: dir, settings: SETTINGS });
  t.teardown(() => store.close());
  const a = mergeCells('out', [rawCell(T0, 1000, outSample(100).values)], T0, 60_000);
  const b = mergeCells('out', [rawCell(T0 + 1000, 1000, outSample(9000).values)], T0, 60_000);
  await store.writeBuckets(OUT, [a]);
  await store.writeBuckets(OUT, [b]);
  const cells = cellsOf(read(store, T0, T0 + 60_000, T0 + 60_000), OUT);
  t.is(cells.length, 1);
  t.is(cells[0]?.count, 2);
  t.is(cells[0]?.values.lagMs, 9000);
  const expected = new LagSketch();
  expected.add(100);
  expected.add(9000);
  t.is(sketchOf(cells[0] as Cell, 'lagMs').quantile(0.5), expected.quantile(0.5));
  await t.throwsAsync(store.writeBuckets(OUT, [{ ...a, startMs: T0 + 5 }]), { code: 'ADMQ_ERR_HISTORY_QUERY' });
});

test('history store: a history written with another sample interval or resolution is set aside and kept, not misread', async (t) => {
  const dir = testDir(t);
  const first = await LagHistoryStore.open({ dataDir: dir, settings: SETTINGS });
  await first.recordBatch(Array.from({ length: 120 }, (_, i) => ({ slotMs: T0 + i * 1000, samples: [outSample(i), nodeSample()] })));
  await first.close();
  const lines: string[] = [];
  const second = await LagHistoryStore.open({ dataDir: dir, settings: FINE, logLine: (line) => lines.push(line) });
  t.teardown(() => second.close());
  t.is(second.info().firstSampleMs, null, 'a new history');
  t.is(lines.length, 1);
  t.regex(lines[0] ?? '', /written with 1000 ms samples and 60000 ms buckets, now 1000 ms and 2000 ms: kept as .*lag-history-\d+\.mdb/);
  const aside = readdirSync(dir).filter((f) => /^lag-history-\d+\.mdb$/.test(f));
  t.is(aside.length, 1);
  // The set-aside history is intact: opened with its own settings, it still holds its samples.
  const kept = await LagHistoryStore.open({ dataDir: join(dir, 'kept'), settings: SETTINGS });
  await kept.close();
  renameSync(join(dir, aside[0] as string), join(dir, 'kept', 'lag-history.mdb'));
  const reopened = await LagHistoryStore.open({ dataDir: join(dir, 'kept'), settings: SETTINGS });
  t.teardown(() => reopened.close());
  t.is(reopened.query({ namespace: OUT.namespace, fromMs: T0, toMs: T0 + 120_000, pageBytesMax: 1 << 20 }).chunks.length, 4);
});
