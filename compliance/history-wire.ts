// The lag history as the admin API sends it (GET /admin/v1/lag-history): the stored chunks
// as base64, so a report decodes exactly what the node stored, with the node's settings
// and the facts a report needs to tell a gap from history that does not exist.
import type { LagHistorySettings } from '../topology/index.ts';
import { ComplianceError, ComplianceErrorCode } from './errors.ts';
import type { HistoryInfo, HistoryPage, LagHistoryStore } from './history-store.ts';
import { SERIES_KINDS, type SeriesKey, type SeriesKind } from './series.ts';

export interface WireChunk {
  series: SeriesKey;
  level: 0 | 1;
  startMs: number;
  /** encodeChunk bytes, base64. */
  data: string;
}

export interface HistoryPageWire {
  region: string;
  /** The node's clock when it answered. */
  nowMs: number;
  settings: LagHistorySettings;
  firstSampleMs: number | null;
  retainedFromMs: number | null;
  bytesUsed: number;
  chunks: WireChunk[];
  next?: string;
}

/** Largest page of chunk data the admin API sends. */
export const HISTORY_PAGE_BYTES_MAX = 4 * 1024 * 1024;

export function historyPageToWire(region: string, nowMs: number, info: HistoryInfo, page: HistoryPage): HistoryPageWire {
  return {
    region,
    nowMs,
    settings: info.settings,
    firstSampleMs: info.firstSampleMs,
    retainedFromMs: info.retainedFromMs,
    bytesUsed: info.bytesUsed,
    chunks: page.chunks.map((c) => ({ series: c.series, level: c.level, startMs: c.startMs, data: c.data.toString('base64') })),
    ...(page.next !== undefined && { next: page.next }),
  };
}

/** One page of a node's history for the admin API. */
export function queryHistory(store: LagHistoryStore, region: string, nowMs: number, query: { namespace: string; fromMs: number; toMs: number; after?: string }): HistoryPageWire {
  const page = store.query({ ...query, pageBytesMax: HISTORY_PAGE_BYTES_MAX });
  return historyPageToWire(region, nowMs, store.info(), page);
}

function fail(message: string): never {
  throw new ComplianceError(ComplianceErrorCode.ReportFormat, `lag-history answer: ${message}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function finite(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`${field} is not a number`);
  return value;
}

/** Checks an answer of GET /admin/v1/lag-history (it comes over the network). */
export function parseHistoryPage(value: unknown): HistoryPageWire {
  if (!isRecord(value)) fail('not an object');
  if (typeof value.region !== 'string') fail('region is not a string');
  if (!isRecord(value.settings)) fail('settings missing');
  const settings = value.settings;
  const parsedSettings: LagHistorySettings = {
    sampleIntervalMs: finite(settings.sampleIntervalMs, 'settings.sampleIntervalMs'),
    recentWindowMs: finite(settings.recentWindowMs, 'settings.recentWindowMs'),
    downsampledResolutionMs: finite(settings.downsampledResolutionMs, 'settings.downsampledResolutionMs'),
    retentionMs: finite(settings.retentionMs, 'settings.retentionMs'),
    bytesMax: finite(settings.bytesMax, 'settings.bytesMax'),
  };
  if (parsedSettings.sampleIntervalMs <= 0 || parsedSettings.downsampledResolutionMs <= 0) fail('settings: intervals must be positive');
  if (!Array.isArray(value.chunks)) fail('chunks is not a list');
  const chunks = value.chunks.map((c, i): WireChunk => {
    if (!isRecord(c) || !isRecord(c.series)) fail(`chunks[${i}] malformed`);
    const s = c.series;
    if (!SERIES_KINDS.includes(s.kind as SeriesKind) || typeof s.namespace !== 'string' || typeof s.from !== 'string' || typeof s.to !== 'string') fail(`chunks[${i}].series malformed`);
    if (c.level !== 0 && c.level !== 1) fail(`chunks[${i}].level must be 0 or 1`);
    if (typeof c.data !== 'string') fail(`chunks[${i}].data is not base64`);
    return { series: { kind: s.kind as SeriesKind, namespace: s.namespace, from: s.from, to: s.to }, level: c.level, startMs: finite(c.startMs, `chunks[${i}].startMs`), data: c.data };
  });
  const nullable = (v: unknown, field: string): number | null => (v === null || v === undefined ? null : finite(v, field));
  return {
    region: value.region,
    nowMs: finite(value.nowMs, 'nowMs'),
    settings: parsedSettings,
    firstSampleMs: nullable(value.firstSampleMs, 'firstSampleMs'),
    retainedFromMs: nullable(value.retainedFromMs, 'retainedFromMs'),
    bytesUsed: finite(value.bytesUsed, 'bytesUsed'),
    chunks,
    ...(typeof value.next === 'string' && { next: value.next }),
  };
}
