// The report's figures from synthetic histories: known lag patterns, gaps of each cause,
// link states, residency, and a randomized comparison with brute force over the samples.
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prng, seedFromEnv } from '../test-support/random.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';
import { findDrills } from './drills.ts';
import { buildLagReport, reportPeriod, seriesResolution, type RegionHistory, type ReportInput } from './report.ts';
import { LinkStateValue, mergeCells, rawCell, seriesKeyText, type Cell, type SeriesKey } from './series.ts';

const seed = seedFromEnv();
test.before(() => console.log(`report tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const T0 = 1_800_000_000_000; // a whole day
const NS = 'bank/pay';

function outValues(lagMs: number, linkState: number = LinkStateValue.Up, extra: Record<string, number> = {}): Record<string, number> {
  return { lagMs, backlogEntries: 0, backlogBytes: 0, links: linkState === LinkStateValue.NoLinks ? 0 : 1, linkState, duplicates: 0, residencyWithheld: 0, clockSkewRefusals: 0, entriesShipped: 0, reconnects: 0, ...extra };
}

const NODE_VALUES = { residencyRefusals: 0, unauthorizedRefusals: 0, clockSkewRefusals: 0, maxClockSkewMs: 0, entriesAppended: 0, duplicates: 0 };

/** A region's history: raw cells from T0, one per second; undefined is a slot without a sample. */
function history(region: string, series: Array<[SeriesKey, Array<Cell | undefined>]>, options: { nowMs?: number; firstSampleMs?: number | null; retainedFromMs?: number | null } = {}): RegionHistory {
  return {
    region,
    nowMs: options.nowMs ?? T0 + 3_600_000,
    sampleIntervalMs: 1000,
    downsampledResolutionMs: 60_000,
    firstSampleMs: options.firstSampleMs === undefined ? T0 : options.firstSampleMs,
    retainedFromMs: options.retainedFromMs ?? null,
    series: new Map(series.map(([key, cells]) => [seriesKeyText(key), cells.filter((c): c is Cell => c !== undefined)])),
  };
}

function rawSeries(values: Array<Record<string, number> | undefined>, hlc?: (i: number) => bigint): Array<Cell | undefined> {
  return values.map((v, i) => (v ? rawCell(T0 + i * 1000, 1000, v, hlc ? { watermarkHlc: hlc(i) } : {}) : undefined));
}

const OUT: SeriesKey = { kind: 'out', namespace: NS, from: 'shanghai', to: 'beijing' };
const IN: SeriesKey = { kind: 'in', namespace: NS, from: 'shanghai', to: 'beijing' };
const NODE_SH: SeriesKey = { kind: 'node', namespace: '', from: 'shanghai', to: '' };

function input(histories: Map<string, RegionHistory | { error: string }>, extra: Partial<ReportInput> = {}): ReportInput {
  return {
    id: 'test',
    generatedAtMs: T0 + 3_600_000,
    generatedBy: 'shanghai',
    period: { fromMs: T0, toMs: T0 + 600_000 },
    tenant: null,
    namespaces: [{ namespace: NS, tenant: 'bank', replicationSet: ['shanghai', 'beijing'], allowedRegions: ['shanghai', 'beijing'], rpoTargetMs: 5000 }],
    pairs: ['shanghai->beijing'],
    regions: ['shanghai', 'beijing', 'shenzhen'],
    links: [['beijing', 'shanghai'], ['beijing', 'shenzhen'], ['shanghai', 'shenzhen']],
    sampleIntervalMs: 1000,
    downsampledResolutionMs: 60_000,
    histories: new Map([[NS, histories]]),
    topicsNow: new Map([[NS, new Map([['shanghai', 1], ['beijing', 1], ['shenzhen', 0]])]]),
    drills: [],
    sources: [],
    ...extra,
  };
}

test('report: a known lag pattern gives its breaches, time above target and percentiles, exactly at 1 s', (t) => {
  // 600 s: 0 ms, then 100 s ramping to 9.9 s (above 5 s from its 51st second), then 200 ms, then 20 s at 8 s.
  const lags = Array.from({ length: 600 }, (_, i) => (i >= 100 && i < 200 ? (i - 100) * 100 : i >= 400 && i < 420 ? 8000 : i >= 200 ? 200 : 0));
  const sh = history('shanghai', [[OUT, rawSeries(lags.map((l) => outValues(l)))], [NODE_SH, rawSeries(lags.map(() => NODE_VALUES))]]);
  const report = buildLagReport(input(new Map([['shanghai', sh]])));
  const pair = report.namespaces[0]?.pairs[0];
  if (!pair) return t.fail('no pair');
  t.is(pair.lag?.maxMs, 9900);
  t.is(pair.lag?.maxAtMs, T0 + 199_000);
  t.is(pair.lag?.samples, 600);
  // Nearest rank: p50 is the 300th smallest (200 ms), p99 the 594th (9,300 ms), each within 1% (2.5 ms below 500 ms, rounded).
  t.true(Math.abs((pair.lag?.p50Ms ?? 0) - 200) <= 3, `p50 ${pair.lag?.p50Ms}`);
  t.true(Math.abs((pair.lag?.p99Ms ?? 0) - 9300) <= 93, `p99 ${pair.lag?.p99Ms}`);
  t.deepEqual(
    pair.breaches.map((b) => ({ start: b.startMs - T0, end: b.endMs - T0, above: b.aboveTargetMs, peak: b.peakMs, peakAt: b.peakAtMs - T0, gapBefore: b.gapBefore, gapAfter: b.gapAfter })),
    [
      { start: 151_000, end: 200_000, above: 49_000, peak: 9900, peakAt: 199_000, gapBefore: false, gapAfter: false },
      { start: 400_000, end: 420_000, above: 20_000, peak: 8000, peakAt: 400_000, gapBefore: false, gapAfter: false },
    ],
  );
  t.is(pair.timeAboveTargetMs, 69_000);
  t.deepEqual(pair.gaps, []);
  t.is(pair.coverage.ratio, 1);
  t.is(report.findings[0]?.severity, 'fail');
  t.regex(report.findings[0]?.text ?? '', /2 breach\(es\) of the 5\.00 s RPO target, 1 min 9 s above it; peak 9\.90 s/);
});

test('report: a gap is never zero lag — left out of every figure and listed with its cause', (t) => {
  const lags: Array<number | undefined> = Array.from({ length: 600 }, (_, i) => (i < 60 ? undefined : i >= 200 && i < 260 ? undefined : i >= 300 && i < 330 ? undefined : 6000));
  // Before 60 s the node had no history; 200–260 s the node was down; 300–330 s the node ran but did not record the pair.
  const node = Array.from({ length: 600 }, (_, i) => (i < 60 || (i >= 200 && i < 260) ? undefined : NODE_VALUES));
  const sh = history('shanghai', [[OUT, rawSeries(lags.map((l) => (l === undefined ? undefined : outValues(l))))], [NODE_SH, rawSeries(node)]], { firstSampleMs: T0 + 60_000 });
  const pair = buildLagReport(input(new Map([['shanghai', sh]]))).namespaces[0]?.pairs[0];
  if (!pair) return t.fail('no pair');
  t.deepEqual(
    pair.gaps.map((g) => [g.startMs - T0, g.endMs - T0, g.missingMs, g.cause]),
    [
      [0, 60_000, 60_000, 'before-history'],
      [200_000, 260_000, 60_000, 'node-down'],
      [300_000, 330_000, 30_000, 'not-recorded'],
    ],
  );
  // Every sample says 6 s: had the gaps counted as zeros, p50 would not be 6 s and time above target would be shorter.
  t.is(pair.lag?.samples, 450);
  t.true(Math.abs((pair.lag?.p50Ms ?? 0) - 6000) <= 60);
  t.is(pair.timeAboveTargetMs, 450_000);
  t.is(pair.coverage.observedMs, 450_000);
  // Breaches stop at gaps, and say so.
  t.deepEqual(
    pair.breaches.map((b) => [b.startMs - T0, b.endMs - T0, b.gapBefore, b.gapAfter]),
    [
      [60_000, 200_000, true, true],
      [260_000, 300_000, true, true],
      [330_000, 600_000, true, true],
    ],
  );
  // In the chart series a point without samples has no value (not 0).
  const step = pair.series[1]?.t !== undefined ? (pair.series[1].t - (pair.series[0]?.t ?? 0)) : 0;
  t.true(step > 0);
  const inGap = pair.series.filter((p) => p.t >= T0 + 200_000 && p.t + step <= T0 + 260_000);
  t.true(inGap.length > 0);
  t.true(inGap.every((p) => p.lagMaxMs === null && p.coverage === 0));
});

test('report: a region that does not answer leaves its pairs without figures, as a gap of cause no-answer', (t) => {
  const report = buildLagReport(input(new Map([['shanghai', { error: 'connection refused' }]]), { sources: [{ region: 'shanghai', answered: false, error: 'connection refused' }] }));
  const pair = report.namespaces[0]?.pairs[0];
  t.is(pair?.lag, null);
  t.deepEqual(pair?.gaps.map((g) => g.cause), ['no-answer']);
  t.true(report.findings.some((f) => f.severity === 'warn' && /shanghai did not answer: connection refused/.test(f.text)));
});

test('report: link uptime and down windows come from the link states; time without links is not downtime', (t) => {
  const states = Array.from({ length: 300 }, (_, i) => (i < 20 ? LinkStateValue.NoLinks : i >= 100 && i < 130 ? LinkStateValue.Down : LinkStateValue.Up));
  const sh = history('shanghai', [[OUT, rawSeries(states.map((s) => outValues(10, s)))], [NODE_SH, rawSeries(states.map(() => NODE_VALUES))]]);
  const pair = buildLagReport(input(new Map([['shanghai', sh]]), { period: { fromMs: T0, toMs: T0 + 300_000 } })).namespaces[0]?.pairs[0];
  t.is(pair?.uptime.withLinksMs, 280_000);
  t.is(pair?.uptime.connectedMs, 250_000);
  t.is(pair?.uptime.ratio, Math.round((250 / 280) * 10_000) / 10_000);
  t.deepEqual(pair?.uptime.downtimes.map((d) => [d.startMs - T0, d.endMs - T0, d.downMs]), [[100_000, 130_000, 30_000]]);
});

test('report: the watermark series and the clock bound come from the receiving region\'s history', (t) => {
  const hlcAt = (i: number): bigint => BigInt(T0 + i * 1000 - 250) << 16n;
  const bj = history('beijing', [[IN, rawSeries(Array.from({ length: 120 }, (_, i) => ({ skewMs: i === 70 ? 1800 : -250 })), hlcAt)]]);
  const sh = history('shanghai', [[OUT, rawSeries(Array.from({ length: 120 }, () => outValues(5)))], [NODE_SH, rawSeries(Array.from({ length: 120 }, () => NODE_VALUES))]]);
  const report = buildLagReport(input(new Map([['shanghai', sh], ['beijing', bj]]), { period: { fromMs: T0, toMs: T0 + 120_000 } }));
  const pair = report.namespaces[0]?.pairs[0];
  t.is(pair?.watermark.first, hlcAt(0).toString());
  t.is(pair?.watermark.last, hlcAt(119).toString());
  t.is(pair?.watermark.samples, 120);
  t.is(pair?.clockAheadMs, 1800);
  t.deepEqual(report.namespaces[0]?.clockSkew, { aheadMs: 1800, ahead: 'shanghai', behind: 'beijing', refusals: 0, largestRefusedMs: 0 });
  // Each chart point has the highest watermark in it, and its age when sampled.
  const step = report.settings.seriesResolutionMs;
  t.is(step, 1000);
  t.is(pair?.series[10]?.watermarkHlc, hlcAt(10).toString());
  t.is(pair?.series[10]?.watermarkAgeMs, 250);
});

test('report: residency — a region outside the allowed set that held data is a violation; refused attempts are summed', (t) => {
  const ns = (region: string, topics: number, refused: number): Array<[SeriesKey, Array<Cell | undefined>]> => [
    [{ kind: 'ns', namespace: NS, from: region, to: '' }, rawSeries(Array.from({ length: 60 }, () => ({ topics, mayHold: topics > 0 ? 1 : 0, conflicts: 1, writesRefusedResidency: refused })))],
    [{ kind: 'node', namespace: '', from: region, to: '' }, rawSeries(Array.from({ length: 60 }, () => ({ ...NODE_VALUES, residencyRefusals: region === 'beijing' ? 1 : 0 })))],
  ];
  const histories = new Map<string, RegionHistory>([
    ['shanghai', history('shanghai', [...ns('shanghai', 2, 0), [OUT, rawSeries(Array.from({ length: 60 }, () => outValues(1, LinkStateValue.Up, { residencyWithheld: 2 })))]])],
    ['beijing', history('beijing', ns('beijing', 2, 0))],
    ['shenzhen', history('shenzhen', ns('shenzhen', 1, 1))],
  ]);
  const clean = buildLagReport(input(new Map([...histories].filter(([r]) => r !== 'shenzhen')), { period: { fromMs: T0, toMs: T0 + 60_000 } })).namespaces[0];
  t.deepEqual(clean?.residency.violations, []);
  t.deepEqual(clean?.residency.heldBy, ['shanghai', 'beijing']);
  t.is(clean?.residency.regions.find((r) => r.region === 'shenzhen')?.heldInPeriod, 'unknown');
  t.regex(clean?.residency.statement ?? '', /held in shanghai, beijing, inside tenant bank's allowed regions/);
  const dirty = buildLagReport(input(histories, { period: { fromMs: T0, toMs: T0 + 60_000 } }));
  const residency = dirty.namespaces[0]?.residency;
  t.is(residency?.violations.length, 1);
  t.regex(residency?.violations[0] ?? '', /shenzhen held data of bank\/pay but is not one of tenant bank's allowed regions/);
  t.deepEqual(residency?.refused, { entriesWithheld: 120, writesRefused: 60, helloRefusalsAllNamespaces: 60 });
  t.deepEqual(dirty.namespaces[0]?.conflicts, { total: 180, byRegion: { shanghai: 60, beijing: 60, shenzhen: 60 } });
  t.true(dirty.findings.some((f) => f.severity === 'fail' && /residency: shenzhen held data/.test(f.text)));
});

test('report: randomized lag series with gaps — every figure equals brute force over the samples', (t) => {
  const random = prng(seed);
  for (let round = 0; round < 40; round++) {
    const length = 60 + Math.floor(random() * 540);
    const target = 500 + Math.floor(random() * 5000);
    const lags: Array<number | undefined> = [];
    let level = 0;
    for (let i = 0; i < length; i++) {
      if (random() < 0.05) {
        lags.push(undefined);
        continue;
      }
      level = Math.max(0, level + Math.floor((random() - 0.5) * 2000));
      lags.push(random() < 0.1 ? 0 : level);
    }
    const sh = history('shanghai', [[OUT, rawSeries(lags.map((l) => (l === undefined ? undefined : outValues(l))))], [NODE_SH, rawSeries(lags.map(() => NODE_VALUES))]]);
    const inputs = input(new Map([['shanghai', sh]]), { period: { fromMs: T0, toMs: T0 + length * 1000 }, namespaces: [{ namespace: NS, tenant: 'bank', replicationSet: ['shanghai', 'beijing'], allowedRegions: ['shanghai', 'beijing'], rpoTargetMs: target }] });
    const pair = buildLagReport(inputs).namespaces[0]?.pairs[0];
    const present = lags.filter((l): l is number => l !== undefined);
    // Brute force: runs of consecutive slots above target, broken by a slot at or below it, or by a gap.
    const expected: Array<[number, number, number]> = [];
    let open: [number, number, number] | undefined;
    lags.forEach((l, i) => {
      if (l !== undefined && l > target) {
        if (open) open = [open[0], i + 1, Math.max(open[2], l)];
        else open = [i, i + 1, l];
      } else if (open) {
        expected.push(open);
        open = undefined;
      }
    });
    if (open) expected.push(open);
    const got = (pair?.breaches ?? []).map((b): [number, number, number] => [(b.startMs - T0) / 1000, (b.endMs - T0) / 1000, b.peakMs]);
    const sorted = [...present].sort((a, b) => a - b);
    const p99 = sorted[Math.ceil(0.99 * sorted.length) - 1] as number;
    const ok =
      JSON.stringify(got) === JSON.stringify(expected) &&
      pair?.timeAboveTargetMs === present.filter((l) => l > target).length * 1000 &&
      pair?.lag?.maxMs === Math.max(...present) &&
      Math.abs((pair?.lag?.p99Ms ?? 0) - p99) <= Math.max(p99 * 0.01, 2.5) + 0.5 &&
      pair?.coverage.observedMs === present.length * 1000;
    if (!ok) return t.fail(`round ${round} differs (seed ${seed}): breaches ${JSON.stringify(got)} expected ${JSON.stringify(expected)}; p99 ${pair?.lag?.p99Ms} expected ${p99}`);
  }
  t.pass();
});

test('report: a period over downsampled history uses its buckets; the period widens to whole buckets', (t) => {
  const minutes = 120;
  const random = prng(seed ^ 0x51);
  const buckets: Cell[] = [];
  for (let m = 0; m < minutes; m++) {
    const cells = Array.from({ length: 60 }, (_, s) => rawCell(T0 + m * 60_000 + s * 1000, 1000, outValues(m === 50 ? 9000 : Math.floor(random() * 1000))));
    buckets.push(mergeCells('out', m === 80 ? cells.slice(0, 30) : cells, T0 + m * 60_000, 60_000));
  }
  const sh: RegionHistory = { ...history('shanghai', [], { nowMs: T0 + 10_000_000 }), series: new Map([[seriesKeyText(OUT), buckets], [seriesKeyText(NODE_SH), [mergeCells('node', Array.from({ length: 60 }, (_, s) => rawCell(T0 + s * 1000, 1000, NODE_VALUES)), T0, 60_000)]]]) };
  t.deepEqual(reportPeriod({ fromMs: T0 + 10, toMs: T0 + 7_199_990 }, 60_000, T0 + 10_000_000), { fromMs: T0, toMs: T0 + 7_200_000 });
  const report = buildLagReport(input(new Map([['shanghai', sh]]), { period: { fromMs: T0 + 10, toMs: T0 + 7_199_990 }, generatedAtMs: T0 + 10_000_000 }));
  const pair = report.namespaces[0]?.pairs[0];
  t.is(report.period.fromMs, T0);
  t.is(pair?.lag?.maxMs, 9000);
  t.is(pair?.lag?.samples, minutes * 60 - 30);
  t.is(pair?.coverage.downsampledMs, (minutes * 60 - 30) * 1000);
  t.deepEqual(pair?.breaches.map((b) => [b.startMs - T0, b.endMs - T0, b.aboveTargetMs, b.resolutionMs]), [[3_000_000, 3_060_000, 60_000, 60_000]]);
  // The half-filled bucket is a partial gap of 30 s.
  t.deepEqual(pair?.gaps.map((g) => [g.startMs - T0, g.endMs - T0, g.missingMs]), [[4_800_000, 4_860_000, 30_000]]);
  t.is(report.settings.seriesResolutionMs, seriesResolution(7_200_000, 60_000, 1500));
});

test('drills: report.json files that started in the period and concern the namespace or tenant are listed with their SM3', (t) => {
  const dir = tempDir('admq-drills-');
  t.teardown(() => removeTempDir(dir));
  const drill = (name: string, namespace: string, startedAtMs: number, fail: boolean): void => {
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(
      join(dir, name, 'report.json'),
      JSON.stringify({
        version: 1,
        runId: name,
        scenario: { name: 'region-outage', title: `region-outage: ${name}` },
        tenant: namespace.split('/')[0],
        namespace,
        startedAtMs,
        finishedAtMs: startedAtMs + 60_000,
        rpo: { applicable: true, count: 3, oldestAgeMs: 120 },
        rto: { applicable: true, produce: { ms: 2100 }, consume: { ms: 2500 } },
        findings: [{ severity: fail ? 'fail' : 'ok', text: 'x' }],
      }),
    );
  };
  drill('in-period', NS, T0 + 1000, false);
  drill('other-namespace', 'shop/cart', T0 + 1000, false);
  drill('before', NS, T0 - 1000, true);
  drill('tenant-sibling', 'bank/ledger', T0 + 5000, true);
  writeFileSync(join(dir, 'not-a-drill.json'), '{}');
  const found = findDrills(dir, { fromMs: T0, toMs: T0 + 600_000 }, { namespaces: [NS] });
  t.deepEqual(found.map((d) => d.runId), ['in-period']);
  t.like(found[0], { rpoEntries: 3, rtoProduceMs: 2100, rtoConsumeMs: 2500, failed: false, file: join('in-period', 'report.json') });
  t.regex(found[0]?.sm3 ?? '', /^[0-9a-f]{64}$/);
  const byTenant = findDrills(dir, { fromMs: T0, toMs: T0 + 600_000 }, { namespaces: [NS], tenant: 'bank' });
  t.deepEqual(byTenant.map((d) => [d.runId, d.failed]), [['in-period', false], ['tenant-sibling', true]]);
});
