// The size of a year of lag history per region pair (issue 7): a synthetic year written
// into a real LMDB lag-history store with the default settings (1 s samples for the last
// 24 h, 1 min buckets before that), then measured: B-tree pages in use, the file, and the
// bytes of each level. A pair's history is its `out` series (kept by the sending region)
// and its `in` series (watermark and clock, kept by the receiving one); both are written.
//
// The lag is what a healthy link between cities looks like, with the incidents a year
// brings: tens of ms with jitter every second, delay episodes of minutes most days, and a
// few partitions of minutes a month. Seeded, so runs compare.
//
//   npx tsx bench/lag-history-bench.ts [--year-fraction 0.01] [--pairs 2]
//
// `--year-fraction` writes that share of a year (at least a day) and projects the year
// from it: the recent window is the same size, the downsampled part grows linearly.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { LagHistoryStore } from '../compliance/history-store.ts';
import { LinkStateValue, type Cell, type Sample, type SeriesKey } from '../compliance/series.ts';
import { LagSketch } from '../compliance/sketch.ts';
import { prng } from '../test-support/random.ts';
import { DEFAULT_LAG_HISTORY, type LagHistorySettings } from '../topology/index.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';

export interface LagHistoryBenchResult {
  settings: LagHistorySettings;
  pairs: number;
  days: number;
  yearFraction: number;
  writeSeconds: number;
  /** The whole store. */
  bytesUsed: number;
  fileBytes: number;
  /** Per pair (out + in series), as written. */
  perPair: { bytesUsed: number; rawValueBytes: number; downsampledValueBytes: number; outValueBytes: number; inValueBytes: number; chunks: number };
  /** Per pair, projected to 365 days (equal to perPair.bytesUsed at --year-fraction 1). */
  yearPerPairBytes: number;
}

const DAY_MS = 86_400_000;

/** A year's lag, one value per second: base latency with jitter, daily delay episodes, monthly partitions. */
class LagModel {
  #episodeUntil = 0;
  #episodeLagMs = 0;
  #partitionFrom = 0;
  #partitionUntil = 0;
  constructor(private readonly random: () => number) {}

  at(ms: number): { lagMs: number; up: boolean } {
    const r = this.random;
    if (ms >= this.#partitionUntil && ms >= this.#episodeUntil) {
      // Per second: a delay episode starts about once a day, a partition about 3 times a month.
      if (r() < 1 / 86_400) {
        this.#episodeLagMs = 150 + r() * 1500;
        this.#episodeUntil = ms + (2 + r() * 28) * 60_000;
      } else if (r() < 3 / (30 * 86_400)) {
        this.#partitionFrom = ms;
        this.#partitionUntil = ms + (30 + r() * 570) * 1000;
      }
    }
    if (ms < this.#partitionUntil) return { lagMs: ms - this.#partitionFrom + 1000, up: false };
    const jitter = -Math.log(1 - r()) * 12;
    const base = 28 + jitter;
    return { lagMs: Math.round(ms < this.#episodeUntil ? this.#episodeLagMs + base : base), up: true };
  }
}

function outValues(lagMs: number, up: boolean, r: () => number): Record<string, number> {
  return {
    lagMs,
    backlogEntries: Math.round(lagMs / 10),
    backlogBytes: Math.round(lagMs * 100),
    links: 3,
    linkState: up ? LinkStateValue.Up : LinkStateValue.Down,
    duplicates: r() < 0.0005 ? 1 : 0,
    residencyWithheld: 0,
    clockSkewRefusals: 0,
    entriesShipped: up ? 80 + Math.floor(r() * 40) : 0,
    reconnects: !up && r() < 0.2 ? 1 : 0,
  };
}

/** One downsampled bucket, aggregated the way maintain() does, without a raw cell per second. */
function bucket(kind: 'out' | 'in', startMs: number, resolutionMs: number, intervalMs: number, model: LagModel, r: () => number, inbound: { skew: number }): Cell {
  const values: Record<string, number> = {};
  const sketch = new LagSketch();
  const states = [0, 0, 0];
  let hlc = 0n;
  let count = 0;
  for (let t = startMs; t < startMs + resolutionMs; t += intervalMs) {
    const { lagMs, up } = model.at(t);
    count++;
    if (kind === 'in') {
      hlc = BigInt(t - lagMs) << 16n;
      values.skewMs = Math.max(values.skewMs ?? -Infinity, inbound.skew - Math.round(r() * 200));
      continue;
    }
    const v = outValues(lagMs, up, r);
    sketch.add(lagMs);
    states[v.linkState as number] = (states[v.linkState as number] ?? 0) + 1;
    for (const name of ['backlogEntries', 'backlogBytes', 'links', 'lagMs', 'linkState']) values[name] = Math.max(values[name] ?? 0, v[name] as number);
    for (const name of ['duplicates', 'residencyWithheld', 'clockSkewRefusals', 'entriesShipped', 'reconnects']) values[name] = (values[name] ?? 0) + (v[name] as number);
  }
  return kind === 'out'
    ? { startMs, spanMs: resolutionMs, count, raw: false, values, hlc: {}, sketches: { lagMs: sketch }, states: { linkState: states } }
    : { startMs, spanMs: resolutionMs, count, raw: false, values, hlc: { watermarkHlc: hlc }, sketches: {}, states: {} };
}

export async function runLagHistoryBench(options: { yearFraction?: number; pairs?: number; seed?: number; log?: (line: string) => void } = {}): Promise<LagHistoryBenchResult> {
  const settings = { ...DEFAULT_LAG_HISTORY };
  const yearFraction = options.yearFraction ?? 1;
  const pairs = options.pairs ?? 2;
  const log = options.log ?? ((line: string) => console.error(line));
  const days = Math.max(1, Math.round(365 * yearFraction));
  const interval = settings.sampleIntervalMs;
  const resolution = settings.downsampledResolutionMs;
  const end = Date.UTC(2027, 0, 1);
  const start = end - days * DAY_MS;
  const recentFrom = end - settings.recentWindowMs;
  const dir = tempDir('admq-lag-history-bench-');
  const store = await LagHistoryStore.open({ dataDir: dir, settings, durability: 'none' });
  const began = performance.now();
  let downsampledPages = 0;
  try {
    for (let p = 0; p < pairs; p++) {
      const random = prng((options.seed ?? 7) + p);
      const model = new LagModel(random);
      const inModel = new LagModel(prng((options.seed ?? 7) + 1000 + p));
      const out: SeriesKey = { kind: 'out', namespace: 'bank/pay', from: 'shanghai', to: `region-${p}` };
      const inbound: SeriesKey = { kind: 'in', namespace: 'bank/pay', from: 'shanghai', to: `region-${p}` };
      // Older than the recent window: the buckets maintain() would have made, a day per transaction.
      for (let day = start; day < recentFrom; day += DAY_MS) {
        const outCells: Cell[] = [];
        const inCells: Cell[] = [];
        for (let t = day; t < Math.min(day + DAY_MS, recentFrom); t += resolution) {
          outCells.push(bucket('out', t, resolution, interval, model, random, { skew: 0 }));
          inCells.push(bucket('in', t, resolution, interval, inModel, random, { skew: -20 }));
        }
        await store.writeBuckets(out, outCells);
        await store.writeBuckets(inbound, inCells);
      }
      if (p === pairs - 1) downsampledPages = store.bytesUsed();
    }
    // The recent window of every pair: raw samples, an hour per transaction, as the sampler writes them.
    for (let p = 0; p < pairs; p++) {
      const random = prng((options.seed ?? 7) + 2000 + p);
      const model = new LagModel(random);
      const inModel = new LagModel(prng((options.seed ?? 7) + 3000 + p));
      const out: SeriesKey = { kind: 'out', namespace: 'bank/pay', from: 'shanghai', to: `region-${p}` };
      const inbound: SeriesKey = { kind: 'in', namespace: 'bank/pay', from: 'shanghai', to: `region-${p}` };
      for (let hour = recentFrom; hour < end; hour += 3_600_000) {
        const slots: Array<{ slotMs: number; samples: Sample[] }> = [];
        for (let t = hour; t < hour + 3_600_000; t += interval) {
          const { lagMs, up } = model.at(t);
          const inbound2 = inModel.at(t);
          slots.push({
            slotMs: t,
            samples: [
              { series: out, values: outValues(lagMs, up, random) },
              { series: inbound, values: { skewMs: -20 - Math.round(random() * 200) }, hlc: { watermarkHlc: BigInt(t - inbound2.lagMs) << 16n } },
            ],
          });
        }
        await store.recordBatch(slots);
      }
      log(`lag-history bench: pair ${p + 1}/${pairs} written (${days} days)`);
    }
    const writeSeconds = (performance.now() - began) / 1000;
    const page = store.query({ namespace: 'bank/pay', fromMs: start, toMs: end, pageBytesMax: Number.MAX_SAFE_INTEGER });
    let rawValueBytes = 0;
    let downsampledValueBytes = 0;
    let outValueBytes = 0;
    let inValueBytes = 0;
    for (const c of page.chunks) {
      if (c.level === 0) rawValueBytes += c.data.length;
      else downsampledValueBytes += c.data.length;
      if (c.series.kind === 'out') outValueBytes += c.data.length;
      else inValueBytes += c.data.length;
    }
    const bytesUsed = store.bytesUsed();
    await store.close();
    const fileBytes = statSync(join(dir, 'lag-history.mdb')).size;
    const perPair = {
      bytesUsed: Math.round(bytesUsed / pairs),
      rawValueBytes: Math.round(rawValueBytes / pairs),
      downsampledValueBytes: Math.round(downsampledValueBytes / pairs),
      outValueBytes: Math.round(outValueBytes / pairs),
      inValueBytes: Math.round(inValueBytes / pairs),
      chunks: Math.round(page.chunks.length / pairs),
    };
    // The raw window is the same in any year; the downsampled pages grow with the days.
    const downsampledDays = days - settings.recentWindowMs / DAY_MS;
    const yearDownsampledDays = 365 - settings.recentWindowMs / DAY_MS;
    const rawPages = bytesUsed - downsampledPages;
    const yearPerPairBytes = Math.round((rawPages + (downsampledDays > 0 ? (downsampledPages * yearDownsampledDays) / downsampledDays : 0)) / pairs);
    return { settings, pairs, days, yearFraction, writeSeconds, bytesUsed, fileBytes, perPair, yearPerPairBytes };
  } finally {
    await store.close();
    removeTempDir(dir);
  }
}

export function formatLagHistoryBench(r: LagHistoryBenchResult): string {
  const mib = (n: number): string => `${(n / 2 ** 20).toFixed(2)} MiB`;
  return [
    `## Lag history: a year per region pair (default settings: ${r.settings.sampleIntervalMs} ms samples for ${r.settings.recentWindowMs / 3_600_000} h, ${r.settings.downsampledResolutionMs / 1000} s buckets before)`,
    '',
    `${r.days} days written for ${r.pairs} pairs (out + in series each) in ${r.writeSeconds.toFixed(1)} s${r.yearFraction < 1 ? `; a year projected from ${(r.yearFraction * 100).toFixed(1)}% of one` : ''}.`,
    '',
    '| per pair | bytes |',
    '|---|---|',
    `| **a year, pages in use** | **${mib(r.yearPerPairBytes)}** |`,
    `| as written: pages in use | ${mib(r.perPair.bytesUsed)} |`,
    `| raw (recent window) record bytes | ${mib(r.perPair.rawValueBytes)} |`,
    `| downsampled record bytes | ${mib(r.perPair.downsampledValueBytes)} |`,
    `| out series (sending region) | ${mib(r.perPair.outValueBytes)} |`,
    `| in series (receiving region) | ${mib(r.perPair.inValueBytes)} |`,
    `| records (chunks) | ${r.perPair.chunks.toLocaleString('en-US')} |`,
    '',
    `Store file: ${mib(r.fileBytes)} for ${r.pairs} pairs; pages in use ${mib(r.bytesUsed)}.`,
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string): string | undefined => {
    const at = process.argv.indexOf(name);
    return at >= 0 ? process.argv[at + 1] : undefined;
  };
  const result = await runLagHistoryBench({ yearFraction: Number(arg('--year-fraction') ?? 1), pairs: Number(arg('--pairs') ?? 2) });
  console.log(formatLagHistoryBench(result));
}
