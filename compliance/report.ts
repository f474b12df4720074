// The replication-lag compliance report, as a pure function of what the regions' lag
// histories hold for a period (plus placement, RPO targets and drill summaries). No I/O,
// no clock: the same inputs give the same report, so tests can recompute every figure.
//
// Where each figure comes from, for a pair from → to of a namespace:
// - lag (p50, p99, max, time above target, breaches, uptime, backlog, duplicates): the
//   `out` series written by `from` (its links' age of the oldest unacknowledged entry);
// - the HLC watermark and the clock skew: the `in` series written by `to` (what `to`
//   holds of `from`'s writes);
// - gaps: slots with no sample. A gap is never zero lag: it is left out of every figure
//   and listed with its cause (the node was down, the series was not recorded while the
//   node ran, before the node's history began, or dropped by retention).
// Percentiles are nearest-rank over all samples of the period, from LagSketches (within
// 1%, or 2.5 ms below 500 ms); the max is exact. Time above target and breaches are exact
// at 1 s resolution and at the downsampled resolution beyond the recent window (a breach
// there starts and ends on bucket edges, and its time above target counts samples within
// one sketch bin of the target by the bin's value).
import type { DrillSummary } from './drills.ts';
import { decodeChunk, seriesKeyText, sketchOf, statesOf, type Cell } from './series.ts';
import { LINEAR_LIMIT_MS, LINEAR_WIDTH_MS, LagSketch, SKETCH_RELATIVE_ACCURACY } from './sketch.ts';
import type { HistoryPageWire } from './history-wire.ts';
import { hlcWallMs } from './sampler.ts';
import { ComplianceError, ComplianceErrorCode } from './errors.ts';

export const REPORT_FORMAT = 'admq-lag-report';
export const REPORT_VERSION = 1;

// ---------------------------------------------------------------------------------------
// A region's history, decoded

export interface RegionHistory {
  region: string;
  /** The node's clock when it answered. */
  nowMs: number;
  sampleIntervalMs: number;
  downsampledResolutionMs: number;
  firstSampleMs: number | null;
  retainedFromMs: number | null;
  /** Cells per series (seriesKeyText), in time order, inside the period. */
  series: Map<string, Cell[]>;
}

/**
 * Decodes a region's history pages, keeps the cells that start inside [fromMs, toMs), and
 * drops raw cells that a bucket also holds (a page fetched before the node downsampled,
 * the next one after).
 */
export function decodeRegionHistory(pages: readonly HistoryPageWire[], period: { fromMs: number; toMs: number }): RegionHistory {
  const first = pages[0];
  if (!first) throw new ComplianceError(ComplianceErrorCode.Report, 'no history page to decode');
  const raw = new Map<string, Cell[]>();
  const buckets = new Map<string, Cell[]>();
  for (const page of pages) {
    for (const chunk of page.chunks) {
      const key = seriesKeyText(chunk.series);
      const decoded = decodeChunk(chunk.series.kind, chunk.startMs, Buffer.from(chunk.data, 'base64'));
      const into = chunk.level === 0 ? raw : buckets;
      let cells = into.get(key);
      if (!cells) into.set(key, (cells = []));
      for (const cell of decoded.slots) if (cell && cell.startMs >= period.fromMs && cell.startMs < period.toMs) cells.push(cell);
    }
  }
  const series = new Map<string, Cell[]>();
  for (const key of new Set([...raw.keys(), ...buckets.keys()])) {
    const held = buckets.get(key) ?? [];
    const starts = new Set(held.map((c) => c.startMs));
    const resolution = first.settings.downsampledResolutionMs;
    const kept = (raw.get(key) ?? []).filter((c) => !starts.has(Math.floor(c.startMs / resolution) * resolution));
    const cells = [...held, ...kept].sort((a, b) => a.startMs - b.startMs);
    // One cell per start: a duplicate would be the same slot on two pages.
    series.set(key, cells.filter((c, i) => i === 0 || c.startMs !== (cells[i - 1] as Cell).startMs));
  }
  return {
    region: first.region,
    nowMs: first.nowMs,
    sampleIntervalMs: first.settings.sampleIntervalMs,
    downsampledResolutionMs: first.settings.downsampledResolutionMs,
    firstSampleMs: first.firstSampleMs,
    retainedFromMs: first.retainedFromMs,
    series,
  };
}

// ---------------------------------------------------------------------------------------
// Report model

export type GapCause = 'node-down' | 'not-recorded' | 'before-history' | 'not-retained' | 'no-answer';

export interface Gap {
  startMs: number;
  endMs: number;
  /** Time without samples inside [startMs, endMs) (less than the span for a partly filled bucket). */
  missingMs: number;
  cause: GapCause;
}

export interface Breach {
  startMs: number;
  endMs: number;
  /** Time above the target inside the breach. */
  aboveTargetMs: number;
  peakMs: number;
  peakAtMs: number;
  /** Resolution of the samples it was found in (1 s recent, the downsampled resolution older). */
  resolutionMs: number;
  /** A gap touches it: it may have started earlier / ended later than shown. */
  gapBefore: boolean;
  gapAfter: boolean;
}

export interface Downtime {
  startMs: number;
  endMs: number;
  /** Time a link of the pair was not connected inside the window. */
  downMs: number;
  resolutionMs: number;
}

export interface SeriesPoint {
  /** Start of the point; it covers [t, t + seriesResolutionMs). */
  t: number;
  /** Worst lag in the point; null when it has no sample. */
  lagMaxMs: number | null;
  /** Share of the point's time that has samples, 0..1. */
  coverage: number;
  /** Share of the sampled time with every link connected; null without links. */
  upRatio: number | null;
  /** Highest HLC watermark of `from` held by `to` in the point (decimal), null when none. */
  watermarkHlc: string | null;
  /** When the watermark was sampled (a bucket's: its end) minus the watermark's wall clock, ms. */
  watermarkAgeMs: number | null;
}

export interface PairReport {
  from: string;
  to: string;
  /** Whether the regions have a link: lag is measured on links; a relayed pair shows only its watermark. */
  direct: boolean;
  /** Regions whose history the figures came from, and whether they answered. */
  sources: { lag: { region: string; answered: boolean }; watermark: { region: string; answered: boolean } };
  coverage: { periodMs: number; observedMs: number; ratio: number; rawMs: number; downsampledMs: number };
  lag: { p50Ms: number; p99Ms: number; maxMs: number; maxAtMs: number; samples: number } | null;
  timeAboveTargetMs: number;
  breaches: Breach[];
  uptime: { withLinksMs: number; connectedMs: number; ratio: number | null; downtimes: Downtime[] };
  backlog: { entriesMax: number; bytesMax: number };
  counters: { duplicates: number; residencyWithheld: number; clockSkewRefusals: number; entriesShipped: number; reconnects: number };
  watermark: { first: string | null; last: string | null; samples: number };
  /** `from`'s clock ahead of `to`'s by at least this much (from the watermarks), ms; null without samples. */
  clockAheadMs: number | null;
  gaps: Gap[];
  series: SeriesPoint[];
}

export interface RegionResidency {
  region: string;
  allowed: boolean;
  inReplicationSet: boolean;
  /** Whether the region held topics of the namespace in the period: from its own history. */
  heldInPeriod: 'yes' | 'no' | 'unknown';
  /** Share of the period the region's history covers (its node series). */
  historyCoverage: number;
  /** Topics of the namespace there when the report was made; null when the region did not answer. */
  topicsNow: number | null;
  writesRefused: number;
  conflictsRecorded: number;
  /** Replication links the region's receiver refused for residency (every namespace: the node counts them together). */
  helloRefusalsAllNamespaces: number;
  unauthorizedRefusalsAllNamespaces: number;
}

export interface NamespaceReport {
  namespace: string;
  tenant: string;
  rpoTargetMs: number;
  replicationSet: string[];
  allowedRegions: string[];
  pairs: PairReport[];
  dedupe: { duplicates: number };
  conflicts: { total: number; byRegion: Record<string, number> };
  clockSkew: { aheadMs: number | null; ahead: string | null; behind: string | null; refusals: number; largestRefusedMs: number };
  residency: {
    heldBy: string[];
    regions: RegionResidency[];
    refused: { entriesWithheld: number; writesRefused: number; helloRefusalsAllNamespaces: number };
    violations: string[];
    statement: string;
  };
  summary: { breaches: number; worstP99Ms: number | null; worstMaxMs: number | null; coverageMin: number };
}

export interface Finding {
  severity: 'fail' | 'warn' | 'ok';
  text: string;
}

export interface SourceStatus {
  region: string;
  answered: boolean;
  error?: string;
  nowMs?: number;
  firstSampleMs?: number | null;
  retainedFromMs?: number | null;
}

export interface LagReport {
  format: typeof REPORT_FORMAT;
  version: typeof REPORT_VERSION;
  id: string;
  generatedAtMs: number;
  /** The region whose certificate signs the report. */
  generatedBy: string;
  scope: { tenant: string | null; namespaces: string[]; pairs: string[] };
  period: { fromMs: number; toMs: number; requestedFromMs: number; requestedToMs: number };
  settings: { sampleIntervalMs: number; downsampledResolutionMs: number; seriesResolutionMs: number; percentileMethod: string };
  namespaces: NamespaceReport[];
  drills: DrillSummary[];
  sources: SourceStatus[];
  findings: Finding[];
}

export interface ReportInput {
  id: string;
  generatedAtMs: number;
  generatedBy: string;
  /** As asked; the report covers it aligned to whole downsampled buckets (reportPeriod), and not beyond generatedAtMs. */
  period: { fromMs: number; toMs: number };
  tenant: string | null;
  namespaces: ReadonlyArray<{ namespace: string; tenant: string; replicationSet: string[]; allowedRegions: string[]; rpoTargetMs: number }>;
  /** Ordered pairs to report ("a->b"); empty: every pair of each replication set. */
  pairs: readonly string[];
  regions: readonly string[];
  links: ReadonlyArray<readonly [string, string]>;
  sampleIntervalMs: number;
  downsampledResolutionMs: number;
  /** Per namespace, per region: its history, or why there is none. */
  histories: ReadonlyMap<string, ReadonlyMap<string, RegionHistory | { error: string }>>;
  /** Per namespace, per region: topics there now (null: did not answer). */
  topicsNow: ReadonlyMap<string, ReadonlyMap<string, number | null>>;
  drills: DrillSummary[];
  sources: SourceStatus[];
  /** Chart points per pair at most. Default 1,500. */
  seriesPointsMax?: number;
}

// ---------------------------------------------------------------------------------------
// Time arithmetic

const NICE_RESOLUTIONS_MS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map((s) => s * 1000);

/**
 * The period a report covers: the one asked for, aligned outwards to whole downsampled
 * buckets (so that every bucket is in or out), and ending no later than the report.
 */
export function reportPeriod(period: { fromMs: number; toMs: number }, downsampledResolutionMs: number, generatedAtMs: number): { fromMs: number; toMs: number } {
  const fromMs = Math.floor(period.fromMs / downsampledResolutionMs) * downsampledResolutionMs;
  return { fromMs, toMs: Math.max(fromMs, Math.min(generatedAtMs, Math.ceil(period.toMs / downsampledResolutionMs) * downsampledResolutionMs)) };
}

/** The chart resolution: a round step no finer than the data, with at most `pointsMax` points. */
export function seriesResolution(periodMs: number, dataResolutionMs: number, pointsMax: number): number {
  const wanted = Math.max(dataResolutionMs, Math.ceil(periodMs / pointsMax));
  return NICE_RESOLUTIONS_MS.find((r) => r >= wanted && r % dataResolutionMs === 0) ?? Math.ceil(wanted / dataResolutionMs) * dataResolutionMs;
}

/** Time actually sampled in a cell. */
function observedMs(cell: Cell, intervalMs: number): number {
  return Math.min(cell.spanMs, cell.count * intervalMs);
}

/** Where `cells` leave [fromMs, endMs) without samples (partly filled buckets count their missing time). */
export function missingIntervals(cells: readonly Cell[], fromMs: number, endMs: number, intervalMs: number): Array<{ startMs: number; endMs: number; missingMs: number }> {
  const out: Array<{ startMs: number; endMs: number; missingMs: number }> = [];
  const push = (s: number, e: number, missing: number): void => {
    if (missing <= 0 || e <= s) return;
    const last = out[out.length - 1];
    if (last && last.endMs >= s) {
      last.endMs = Math.max(last.endMs, e);
      last.missingMs += missing;
    } else out.push({ startMs: s, endMs: e, missingMs: missing });
  };
  let cursor = fromMs;
  for (const cell of cells) {
    if (cell.startMs >= endMs) break;
    if (cell.startMs > cursor) push(cursor, cell.startMs, cell.startMs - cursor);
    const cellEnd = Math.min(cell.startMs + cell.spanMs, endMs);
    push(cell.startMs, cellEnd, Math.min(cellEnd - cell.startMs, cell.spanMs - observedMs(cell, intervalMs)));
    cursor = Math.max(cursor, cell.startMs + cell.spanMs);
  }
  if (cursor < endMs) push(cursor, endMs, endMs - cursor);
  return out;
}

/** Sampled time of `cells` inside [s, e), spreading a bucket's samples evenly over it. */
function sampledWithin(cells: readonly Cell[], s: number, e: number, intervalMs: number): number {
  let total = 0;
  for (const cell of cells) {
    const overlap = Math.min(e, cell.startMs + cell.spanMs) - Math.max(s, cell.startMs);
    if (overlap > 0) total += (overlap * observedMs(cell, intervalMs)) / cell.spanMs;
  }
  return total;
}

/**
 * Gaps of one series of `history`, with their causes: split at the start of the node's
 * history and at what retention dropped; a gap while the node's own series has samples
 * is "not-recorded" (the node ran, this series was not kept: the pair was outside the
 * replication set, or no watermark existed), otherwise "node-down".
 */
export function classifyGaps(cells: readonly Cell[], history: RegionHistory, fromMs: number, endMs: number): Gap[] {
  const node = history.series.get(seriesKeyText({ kind: 'node', namespace: '', from: history.region, to: '' })) ?? [];
  const out: Gap[] = [];
  for (const gap of missingIntervals(cells, fromMs, endMs, history.sampleIntervalMs)) {
    const cuts = [gap.startMs, ...[history.retainedFromMs, history.firstSampleMs].filter((c): c is number => c !== null && c > gap.startMs && c < gap.endMs).sort((a, b) => a - b), gap.endMs];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const s = cuts[i] as number;
      const e = cuts[i + 1] as number;
      const missingMs = cuts.length === 2 ? gap.missingMs : Math.min(e - s, gap.missingMs);
      let cause: GapCause;
      if (history.retainedFromMs !== null && e <= history.retainedFromMs) cause = 'not-retained';
      else if (history.firstSampleMs === null || e <= history.firstSampleMs) cause = 'before-history';
      else cause = sampledWithin(node, s, e, history.sampleIntervalMs) >= missingMs / 2 ? 'not-recorded' : 'node-down';
      out.push({ startMs: s, endMs: e, missingMs, cause });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Figures of a pair

/** Above-target time of a cell: exact for a raw sample, by the sketch for a bucket. */
function aboveMs(cell: Cell, targetMs: number, intervalMs: number): number {
  if (cell.raw) return (cell.values.lagMs ?? 0) > targetMs ? cell.spanMs : 0;
  return sketchOf(cell, 'lagMs').countAbove(targetMs) * intervalMs;
}

export function findBreaches(cells: readonly Cell[], targetMs: number, intervalMs: number): Breach[] {
  const out: Breach[] = [];
  let open: Breach | undefined;
  let previousEnd: number | undefined;
  for (const cell of cells) {
    const contiguous = previousEnd === cell.startMs;
    const above = (cell.values.lagMs ?? 0) > targetMs;
    if (open && (!above || !contiguous)) {
      open.gapAfter = !contiguous;
      out.push(open);
      open = undefined;
    }
    if (above) {
      const lag = cell.values.lagMs ?? 0;
      if (!open) {
        open = { startMs: cell.startMs, endMs: cell.startMs + cell.spanMs, aboveTargetMs: 0, peakMs: lag, peakAtMs: cell.startMs, resolutionMs: cell.spanMs, gapBefore: !contiguous, gapAfter: false };
      }
      open.endMs = cell.startMs + cell.spanMs;
      open.aboveTargetMs += aboveMs(cell, targetMs, intervalMs);
      open.resolutionMs = Math.max(open.resolutionMs, cell.spanMs);
      if (lag > open.peakMs) {
        open.peakMs = lag;
        open.peakAtMs = cell.startMs;
      }
    }
    previousEnd = cell.startMs + cell.spanMs;
  }
  if (open) {
    open.gapAfter = true;
    out.push(open);
  }
  return out;
}

/** Windows in which a link of the pair was not connected (contiguous cells with such samples). */
export function findDowntimes(cells: readonly Cell[], intervalMs: number): Downtime[] {
  const out: Downtime[] = [];
  let open: Downtime | undefined;
  let previousEnd: number | undefined;
  for (const cell of cells) {
    const down = statesOf(cell, 'linkState')[1] ?? 0;
    const contiguous = previousEnd === cell.startMs;
    if (open && (down === 0 || !contiguous)) {
      out.push(open);
      open = undefined;
    }
    if (down > 0) {
      open ??= { startMs: cell.startMs, endMs: cell.startMs, downMs: 0, resolutionMs: cell.spanMs };
      open.endMs = cell.startMs + cell.spanMs;
      open.downMs += down * intervalMs;
      open.resolutionMs = Math.max(open.resolutionMs, cell.spanMs);
    }
    previousEnd = cell.startMs + cell.spanMs;
  }
  if (open) out.push(open);
  return out;
}

function sum(cells: readonly Cell[], field: string): number {
  let n = 0;
  for (const c of cells) n += c.values[field] ?? 0;
  return n;
}

function max(cells: readonly Cell[], field: string): number {
  let n = 0;
  for (const c of cells) n = Math.max(n, c.values[field] ?? 0);
  return n;
}

/** The chart points of a pair: per step, the worst lag, coverage, link state and watermark. */
export function seriesPoints(out: readonly Cell[], inbound: readonly Cell[], fromMs: number, endMs: number, stepMs: number, intervalMs: number): SeriesPoint[] {
  const points: SeriesPoint[] = [];
  let i = 0;
  let j = 0;
  for (let t = Math.floor(fromMs / stepMs) * stepMs; t < endMs; t += stepMs) {
    const end = t + stepMs;
    let lagMax: number | null = null;
    let sampled = 0;
    let withLinks = 0;
    let up = 0;
    while (i < out.length && (out[i] as Cell).startMs < end) {
      const cell = out[i++] as Cell;
      if (cell.startMs < t) continue;
      lagMax = Math.max(lagMax ?? 0, cell.values.lagMs ?? 0);
      sampled += observedMs(cell, intervalMs);
      const states = statesOf(cell, 'linkState');
      withLinks += (states[1] ?? 0) + (states[2] ?? 0);
      up += states[2] ?? 0;
    }
    let hlc = 0n;
    let seenAtMs = end;
    while (j < inbound.length && (inbound[j] as Cell).startMs < end) {
      const cell = inbound[j++] as Cell;
      const h = cell.hlc.watermarkHlc ?? 0n;
      if (cell.startMs >= t && h > hlc) {
        hlc = h;
        // A raw sample is taken at the start of its slot; a bucket's highest watermark at some time inside it.
        seenAtMs = cell.raw ? cell.startMs : cell.startMs + cell.spanMs;
      }
    }
    points.push({
      t,
      lagMaxMs: lagMax,
      coverage: Math.round((sampled / stepMs) * 1000) / 1000,
      upRatio: withLinks > 0 ? Math.round((up / withLinks) * 1000) / 1000 : null,
      watermarkHlc: hlc > 0n ? hlc.toString() : null,
      watermarkAgeMs: hlc > 0n ? seenAtMs - hlcWallMs(hlc) : null,
    });
  }
  return points;
}

function historyOf(input: ReportInput, namespace: string, region: string): RegionHistory | undefined {
  const h = input.histories.get(namespace)?.get(region);
  return h && !('error' in h) ? h : undefined;
}

/** The end of what a region's history can hold: its last complete slot before it answered. */
function endFor(history: RegionHistory | undefined, toMs: number): number {
  if (!history) return toMs;
  return Math.max(0, Math.min(toMs, Math.floor(history.nowMs / history.sampleIntervalMs) * history.sampleIntervalMs));
}

export function buildPairReport(input: ReportInput, ns: ReportInput['namespaces'][number], from: string, to: string, stepMs: number): PairReport {
  const { fromMs } = input.period;
  const source = historyOf(input, ns.namespace, from);
  const sink = historyOf(input, ns.namespace, to);
  const interval = source?.sampleIntervalMs ?? input.sampleIntervalMs;
  const endMs = endFor(source, input.period.toMs);
  const direct = input.links.some(([a, b]) => (a === from && b === to) || (a === to && b === from));
  const out = (source?.series.get(seriesKeyText({ kind: 'out', namespace: ns.namespace, from, to })) ?? []).filter((c) => c.startMs < endMs);
  const inbound = (sink?.series.get(seriesKeyText({ kind: 'in', namespace: ns.namespace, from, to })) ?? []).filter((c) => c.startMs < endFor(sink, input.period.toMs));
  const periodMs = Math.max(0, endMs - fromMs);
  const observed = out.reduce((n, c) => n + observedMs(c, interval), 0);
  const rawMs = out.filter((c) => c.raw).reduce((n, c) => n + observedMs(c, interval), 0);

  const sketch = new LagSketch();
  let maxMs = 0;
  let maxAtMs = 0;
  let samples = 0;
  for (const cell of out) {
    sketch.merge(sketchOf(cell, 'lagMs'));
    const lag = cell.values.lagMs ?? 0;
    if (samples === 0 || lag > maxMs) {
      maxMs = lag;
      maxAtMs = cell.startMs;
    }
    samples += cell.count;
  }
  const p50 = sketch.quantile(0.5);
  const p99 = sketch.quantile(0.99);
  const withLinks = out.reduce((n, c) => {
    const s = statesOf(c, 'linkState');
    return n + (s[1] ?? 0) + (s[2] ?? 0);
  }, 0);
  const connected = out.reduce((n, c) => n + (statesOf(c, 'linkState')[2] ?? 0), 0);
  let hlcFirst: bigint | null = null;
  let hlcLast: bigint | null = null;
  let watermarkSamples = 0;
  let clockAheadMs: number | null = null;
  for (const cell of inbound) {
    const h = cell.hlc.watermarkHlc ?? 0n;
    if (h > 0n) {
      hlcFirst ??= h;
      hlcLast = h;
      watermarkSamples += cell.count;
    }
    clockAheadMs = clockAheadMs === null ? (cell.values.skewMs ?? 0) : Math.max(clockAheadMs, cell.values.skewMs ?? 0);
  }
  const gaps = source
    ? classifyGaps(out, source, fromMs, endMs)
    : [{ startMs: fromMs, endMs, missingMs: periodMs, cause: 'no-answer' as const }];
  return {
    from,
    to,
    direct,
    sources: { lag: { region: from, answered: source !== undefined }, watermark: { region: to, answered: sink !== undefined } },
    coverage: { periodMs, observedMs: observed, ratio: periodMs > 0 ? Math.round((observed / periodMs) * 10_000) / 10_000 : 0, rawMs, downsampledMs: observed - rawMs },
    lag: samples > 0 && p50 !== undefined && p99 !== undefined ? { p50Ms: Math.min(maxMs, Math.round(p50)), p99Ms: Math.min(maxMs, Math.round(p99)), maxMs, maxAtMs, samples } : null,
    timeAboveTargetMs: out.reduce((n, c) => n + aboveMs(c, ns.rpoTargetMs, interval), 0),
    breaches: findBreaches(out, ns.rpoTargetMs, interval),
    uptime: { withLinksMs: withLinks * interval, connectedMs: connected * interval, ratio: withLinks > 0 ? Math.round((connected / withLinks) * 10_000) / 10_000 : null, downtimes: findDowntimes(out, interval) },
    backlog: { entriesMax: max(out, 'backlogEntries'), bytesMax: max(out, 'backlogBytes') },
    counters: {
      duplicates: sum(out, 'duplicates'),
      residencyWithheld: sum(out, 'residencyWithheld'),
      clockSkewRefusals: sum(out, 'clockSkewRefusals'),
      entriesShipped: sum(out, 'entriesShipped'),
      reconnects: sum(out, 'reconnects'),
    },
    watermark: { first: hlcFirst?.toString() ?? null, last: hlcLast?.toString() ?? null, samples: watermarkSamples },
    clockAheadMs,
    gaps,
    series: seriesPoints(out, inbound, fromMs, endMs, stepMs, interval),
  };
}

function namespaceReport(input: ReportInput, ns: ReportInput['namespaces'][number], stepMs: number): NamespaceReport {
  const wanted = new Set(input.pairs);
  const pairs: PairReport[] = [];
  for (const from of ns.replicationSet) {
    for (const to of ns.replicationSet) {
      if (from === to || (wanted.size > 0 && !wanted.has(`${from}->${to}`))) continue;
      pairs.push(buildPairReport(input, ns, from, to, stepMs));
    }
  }
  // Residency: every region of the topology, from its own history and as it is now.
  const regions: RegionResidency[] = input.regions.map((region) => {
    const history = historyOf(input, ns.namespace, region);
    const nsCells = history?.series.get(seriesKeyText({ kind: 'ns', namespace: ns.namespace, from: region, to: '' })) ?? [];
    const nodeCells = history?.series.get(seriesKeyText({ kind: 'node', namespace: '', from: region, to: '' })) ?? [];
    const end = endFor(history, input.period.toMs);
    const span = Math.max(1, end - input.period.fromMs);
    const coverage = history ? nodeCells.reduce((n, c) => n + observedMs(c, history.sampleIntervalMs), 0) / span : 0;
    const held = nsCells.some((c) => (c.values.topics ?? 0) > 0);
    return {
      region,
      allowed: ns.allowedRegions.includes(region),
      inReplicationSet: ns.replicationSet.includes(region),
      heldInPeriod: held ? 'yes' : coverage >= 0.999 ? 'no' : 'unknown',
      historyCoverage: Math.round(Math.min(1, coverage) * 10_000) / 10_000,
      topicsNow: input.topicsNow.get(ns.namespace)?.get(region) ?? null,
      writesRefused: sum(nsCells, 'writesRefusedResidency'),
      conflictsRecorded: sum(nsCells, 'conflicts'),
      helloRefusalsAllNamespaces: sum(nodeCells, 'residencyRefusals'),
      unauthorizedRefusalsAllNamespaces: sum(nodeCells, 'unauthorizedRefusals'),
    };
  });
  const heldBy = regions.filter((r) => r.heldInPeriod === 'yes' || (r.topicsNow ?? 0) > 0).map((r) => r.region);
  const violations = regions
    .filter((r) => !r.allowed && (r.heldInPeriod === 'yes' || (r.topicsNow ?? 0) > 0))
    .map((r) => `${r.region} held data of ${ns.namespace} but is not one of tenant ${ns.tenant}'s allowed regions (${ns.allowedRegions.join(', ')})`);
  const unknown = regions.filter((r) => !r.allowed && r.heldInPeriod === 'unknown' && r.topicsNow === null).map((r) => r.region);
  const statement =
    violations.length > 0
      ? `Residency violated: ${violations.join('; ')}.`
      : `In the period the data of ${ns.namespace} was held in ${heldBy.length > 0 ? heldBy.join(', ') : 'no region'}, inside tenant ${ns.tenant}'s allowed regions (${ns.allowedRegions.join(', ')})` +
        (unknown.length > 0 ? `; ${unknown.join(', ')} could not be checked for all of the period.` : '.');
  const nodeSkew = input.regions.map((region) => {
    const history = historyOf(input, ns.namespace, region);
    const cells = history?.series.get(seriesKeyText({ kind: 'node', namespace: '', from: region, to: '' })) ?? [];
    return { refusals: sum(cells, 'clockSkewRefusals'), largest: cells.filter((c) => (c.values.clockSkewRefusals ?? 0) > 0).reduce((n, c) => Math.max(n, c.values.maxClockSkewMs ?? 0), 0) };
  });
  let aheadMs: number | null = null;
  let ahead: string | null = null;
  let behind: string | null = null;
  for (const p of pairs) {
    if (p.clockAheadMs !== null && (aheadMs === null || p.clockAheadMs > aheadMs)) {
      aheadMs = p.clockAheadMs;
      ahead = p.from;
      behind = p.to;
    }
  }
  const p99s = pairs.flatMap((p) => (p.lag ? [p.lag.p99Ms] : []));
  const maxes = pairs.flatMap((p) => (p.lag ? [p.lag.maxMs] : []));
  return {
    namespace: ns.namespace,
    tenant: ns.tenant,
    rpoTargetMs: ns.rpoTargetMs,
    replicationSet: ns.replicationSet,
    allowedRegions: ns.allowedRegions,
    pairs,
    dedupe: { duplicates: pairs.reduce((n, p) => n + p.counters.duplicates, 0) },
    conflicts: { total: regions.reduce((n, r) => n + r.conflictsRecorded, 0), byRegion: Object.fromEntries(regions.filter((r) => r.conflictsRecorded > 0).map((r) => [r.region, r.conflictsRecorded])) },
    clockSkew: { aheadMs, ahead, behind, refusals: nodeSkew.reduce((n, s) => n + s.refusals, 0), largestRefusedMs: nodeSkew.reduce((n, s) => Math.max(n, s.largest), 0) },
    residency: {
      heldBy,
      regions,
      refused: {
        entriesWithheld: pairs.reduce((n, p) => n + p.counters.residencyWithheld, 0),
        writesRefused: regions.reduce((n, r) => n + r.writesRefused, 0),
        helloRefusalsAllNamespaces: regions.reduce((n, r) => n + r.helloRefusalsAllNamespaces, 0),
      },
      violations,
      statement,
    },
    summary: {
      breaches: pairs.reduce((n, p) => n + p.breaches.length, 0),
      worstP99Ms: p99s.length > 0 ? Math.max(...p99s) : null,
      worstMaxMs: maxes.length > 0 ? Math.max(...maxes) : null,
      coverageMin: pairs.length > 0 ? Math.min(...pairs.map((p) => p.coverage.ratio)) : 0,
    },
  };
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}

export function assessFindings(report: Omit<LagReport, 'findings'>): Finding[] {
  const out: Finding[] = [];
  for (const ns of report.namespaces) {
    for (const p of ns.pairs) {
      const name = `${ns.namespace} ${p.from} → ${p.to}`;
      if (p.breaches.length > 0) out.push({ severity: 'fail', text: `${name}: ${p.breaches.length} breach(es) of the ${formatDuration(ns.rpoTargetMs)} RPO target, ${formatDuration(p.timeAboveTargetMs)} above it; peak ${formatDuration(Math.max(...p.breaches.map((b) => b.peakMs)))}` });
      else if (p.lag) out.push({ severity: 'ok', text: `${name}: lag stayed under the ${formatDuration(ns.rpoTargetMs)} RPO target (p99 ${formatDuration(p.lag.p99Ms)}, max ${formatDuration(p.lag.maxMs)})` });
      else if (!p.direct) out.push({ severity: 'warn', text: `${name}: no direct link; lag is measured on links, only the watermark is reported` });
      else out.push({ severity: 'warn', text: `${name}: no lag sample in the period` });
      const down = p.gaps.filter((g) => g.cause === 'node-down' || g.cause === 'no-answer').reduce((n, g) => n + g.missingMs, 0);
      if (down > 0) out.push({ severity: 'warn', text: `${name}: ${formatDuration(down)} without samples (node down or not answering): not counted as zero lag` });
    }
    for (const v of ns.residency.violations) out.push({ severity: 'fail', text: `residency: ${v}` });
    if (ns.residency.violations.length === 0) out.push({ severity: 'ok', text: `residency: ${ns.residency.statement}` });
  }
  for (const s of report.sources) if (!s.answered) out.push({ severity: 'warn', text: `region ${s.region} did not answer: ${s.error ?? 'unknown error'}` });
  const order = { fail: 0, warn: 1, ok: 2 } as const;
  return out.sort((a, b) => order[a.severity] - order[b.severity]);
}

export function buildLagReport(asked: ReportInput): LagReport {
  const input: ReportInput = { ...asked, period: reportPeriod(asked.period, asked.downsampledResolutionMs, asked.generatedAtMs) };
  const periodMs = input.period.toMs - input.period.fromMs;
  const anyRaw = [...input.histories.values()].some((byRegion) => [...byRegion.values()].some((h) => !('error' in h) && [...h.series.values()].some((cells) => cells.some((c) => c.raw))));
  const stepMs = seriesResolution(periodMs, anyRaw ? input.sampleIntervalMs : input.downsampledResolutionMs, input.seriesPointsMax ?? 1500);
  const body: Omit<LagReport, 'findings'> = {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    id: input.id,
    generatedAtMs: input.generatedAtMs,
    generatedBy: input.generatedBy,
    scope: { tenant: input.tenant, namespaces: input.namespaces.map((n) => n.namespace), pairs: [...input.pairs] },
    period: { fromMs: input.period.fromMs, toMs: input.period.toMs, requestedFromMs: asked.period.fromMs, requestedToMs: asked.period.toMs },
    settings: {
      sampleIntervalMs: input.sampleIntervalMs,
      downsampledResolutionMs: input.downsampledResolutionMs,
      seriesResolutionMs: stepMs,
      percentileMethod: `nearest rank over every sample of the period, from sketches (within ${SKETCH_RELATIVE_ACCURACY * 100}%, or ${LINEAR_WIDTH_MS / 2} ms below ${LINEAR_LIMIT_MS} ms); max exact`,
    },
    namespaces: input.namespaces.map((ns) => namespaceReport(input, ns, stepMs)),
    drills: input.drills,
    sources: input.sources,
  };
  return { ...body, findings: assessFindings(body) };
}
