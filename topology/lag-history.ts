// Settings of the lag history every region node keeps (compliance/), and the RPO targets
// that `admq report` measures it against. They live in the topology because every region
// must sample at the same resolution for a report to put two regions' histories side by
// side, and because an RPO target belongs to a namespace like its replication set.
import { TopologyError } from './errors.ts';

export interface LagHistorySettings {
  /** How often the node samples its replication status, in ms. Default 1,000. */
  sampleIntervalMs: number;
  /**
   * How long samples are kept at full resolution, in ms: at least this, and up to one
   * downsampled record more (1,440 buckets: a day at 1 min), which is downsampled whole.
   * Default 86,400,000 (24 h).
   */
  recentWindowMs: number;
  /** Resolution of the history older than the recent window, in ms; a multiple of the sample interval. Default 60,000. */
  downsampledResolutionMs: number;
  /** How long history is kept at all, in ms. Default 34,560,000,000 (400 days: a year's report is always possible). */
  retentionMs: number;
  /** Space the history may use in the node's data directory, in bytes (B-tree pages in use); the oldest goes first. Default 1 GiB. */
  bytesMax: number;
}

export const DEFAULT_LAG_HISTORY: Readonly<LagHistorySettings> = Object.freeze({
  sampleIntervalMs: 1_000,
  recentWindowMs: 86_400_000,
  downsampledResolutionMs: 60_000,
  retentionMs: 400 * 86_400_000,
  bytesMax: 1024 * 1024 * 1024,
});

/** The RPO target of a namespace that does not set one, unless the topology sets `rpoTargetMs`. */
export const DEFAULT_RPO_TARGET_MS = 5_000;

/** Samples per chunk of the recent history (a chunk is one LMDB record); the recent window holds at least two chunks. */
export const SAMPLES_PER_CHUNK = 60;

function integer(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new TopologyError(field, `must be an integer from ${min} to ${max}; got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Validates `lagHistory` of a topology document; fields left out take their defaults. */
export function parseLagHistorySettings(value: unknown): LagHistorySettings {
  if (value === undefined) return { ...DEFAULT_LAG_HISTORY };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TopologyError('lagHistory', 'must be a mapping');
  const doc = value as Record<string, unknown>;
  for (const key of Object.keys(doc)) {
    if (!(key in DEFAULT_LAG_HISTORY)) throw new TopologyError(`lagHistory.${key}`, 'unknown field');
  }
  const pick = (key: keyof LagHistorySettings): unknown => doc[key] ?? DEFAULT_LAG_HISTORY[key];
  const sampleIntervalMs = integer('lagHistory.sampleIntervalMs', pick('sampleIntervalMs'), 100, 60_000);
  const downsampledResolutionMs = integer('lagHistory.downsampledResolutionMs', pick('downsampledResolutionMs'), 2 * sampleIntervalMs, 86_400_000);
  if (downsampledResolutionMs % sampleIntervalMs !== 0) {
    throw new TopologyError('lagHistory.downsampledResolutionMs', `must be a multiple of sampleIntervalMs (${sampleIntervalMs}); got ${downsampledResolutionMs}`);
  }
  const recentWindowMs = integer('lagHistory.recentWindowMs', pick('recentWindowMs'), Math.max(2 * SAMPLES_PER_CHUNK * sampleIntervalMs, downsampledResolutionMs), 366 * 86_400_000);
  const retentionMs = integer('lagHistory.retentionMs', pick('retentionMs'), recentWindowMs, 10 * 366 * 86_400_000);
  const bytesMax = integer('lagHistory.bytesMax', pick('bytesMax'), 1024 * 1024, 2 ** 40);
  return { sampleIntervalMs, recentWindowMs, downsampledResolutionMs, retentionMs, bytesMax };
}

/** Validates an RPO target (`rpoTargetMs` of the topology or of a namespace). */
export function parseRpoTargetMs(field: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  return integer(field, value, 1, 7 * 86_400_000);
}
