// The durable lag history of one region node: an LMDB environment of its own,
// `<dataDir>/lag-history.mdb`, beside the node's log (its own so that a sample never waits
// behind, or delays, a group commit of messages).
//
// Layout:
//   chunks  [seriesId, level, chunkStartMs] → encodeChunk(...)   (ordered-binary array keys)
//           level 0: 60 raw samples of sampleIntervalMs (one record per series per minute at 1 s);
//           level 1: 1,440 buckets of downsampledResolutionMs (one per series per day at 1 min).
//   meta    ['series', 'kind|namespace|from|to'] → seriesId; ['seriesNext'] → next id;
//           ['firstSampleMs'], ['retainedFromMs'], ['baselines'] → cumulative counters
//           read at the last sample (durable ones: conflicts recorded).
//
// A sample rewrites its series' current raw chunk, so a crash loses at most the sample in
// flight. maintain() downsamples the raw chunks of a whole level-1 chunk (a day) once all of
// it has left the recent window, and writes that level-1 chunk once; it drops whole chunks
// older than the retention, and, while the pages in use exceed bytesMax, the oldest day of
// every series. A slot never written stays a gap.
//
// Why these sizes: LMDB keeps a record of up to ~4 KiB in a leaf page and splits pages in
// half, so records of a few KiB leave pages mostly empty (one 2.7 KiB record per 8 KiB
// page was measured); a raw chunk (~0.5 KiB) shares its page, and a day of buckets
// (tens of KiB, deflated to about a third) goes to overflow pages that it fills but for
// the last one. Written once, a day chunk is never copied again.
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { SAMPLES_PER_CHUNK, type LagHistorySettings } from '../topology/index.ts';
import { ComplianceError, ComplianceErrorCode } from './errors.ts';
import { cellsOf, decodeChunk, encodeChunk, mergeCells, parseSeriesKeyText, rawCell, seriesKeyText, type Cell, type Chunk, type Level, type Sample, type SeriesKey } from './series.ts';

type ChunkKey = [number, Level, number];
type MetaKey = Array<string | number>;

export interface LagHistoryStoreOptions {
  /** The node's data directory; the history lives in `lag-history.mdb` inside it. */
  dataDir: string;
  settings: LagHistorySettings;
  /** "fsync" (default) or "none" (tests and benchmarks), as the node's durability. */
  durability?: 'fsync' | 'none';
  /** Where a history set aside (see open) is reported. */
  logLine?: (line: string) => void;
}

export interface EncodedChunk {
  series: SeriesKey;
  level: Level;
  startMs: number;
  data: Buffer;
}

export interface HistoryQuery {
  /** tenant/namespace; node series (no namespace) always come too. */
  namespace: string;
  fromMs: number;
  toMs: number;
  /** Continue after this cursor (the `next` of the previous page). */
  after?: string;
  /** Bytes of chunk data in one page. */
  pageBytesMax: number;
}

export interface HistoryPage {
  chunks: EncodedChunk[];
  /** Set when there is more: pass it as `after`. */
  next?: string;
}

export interface HistoryInfo {
  settings: LagHistorySettings;
  /** When this node first sampled (history before it is "before history", not a gap). */
  firstSampleMs: number | null;
  /** History before this was dropped (retention or size bound). */
  retainedFromMs: number | null;
  /** B-tree pages in use times the page size (the file itself never shrinks; LMDB reuses freed pages). */
  bytesUsed: number;
  /** Series this node has written. */
  series: number;
}

export interface MaintenanceResult {
  downsampledChunks: number;
  removedForRetention: number;
  removedForSize: number;
  bytesUsed: number;
}

/** Buckets per level-1 chunk: a day at the default 1 min resolution. */
export const BUCKETS_PER_CHUNK = 1440;

const PAGE_BYTES = 8192;
/** Slabs removed for the size bound in one maintenance at most (a lowered bound catches up over several). */
const SIZE_ROUNDS_MAX = 200;

export class LagHistoryStore {
  readonly settings: LagHistorySettings;
  readonly path: string;
  readonly #env: RootDatabase;
  readonly #chunks: Database<Buffer, ChunkKey>;
  readonly #meta: Database<unknown, MetaKey>;
  readonly #ids = new Map<string, number>();
  readonly #keys = new Map<number, SeriesKey>();
  /** Each series' current raw chunk, as last written. */
  readonly #current = new Map<number, Chunk>();
  /** Writes one after another: the in-memory chunks follow the commit order. */
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(options: LagHistoryStoreOptions) {
    this.settings = options.settings;
    mkdirSync(options.dataDir, { recursive: true });
    this.path = join(options.dataDir, 'lag-history.mdb');
    this.#env = open({ path: this.path, pageSize: PAGE_BYTES, maxDbs: 4, noSync: options.durability === 'none', eventTurnBatching: false });
    this.#chunks = this.#env.openDB<Buffer, ChunkKey>({ name: 'chunks', encoding: 'binary' });
    this.#meta = this.#env.openDB<unknown, MetaKey>({ name: 'meta', encoding: 'json' });
    for (const { key, value } of this.#meta.getRange({ start: ['series'], end: ['series', '\uffff'] })) {
      const text = key[1] as string;
      this.#ids.set(text, value as number);
      this.#keys.set(value as number, parseSeriesKeyText(text));
    }
  }

  /**
   * Opens the node's history. A history written with another sample interval or
   * downsampled resolution cannot be continued (its slots would not line up): it is moved
   * aside to `lag-history-<ms>.mdb`, kept, and a new one starts.
   */
  static async open(options: LagHistoryStoreOptions): Promise<LagHistoryStore> {
    let store = new LagHistoryStore(options);
    const layout = { sampleIntervalMs: options.settings.sampleIntervalMs, downsampledResolutionMs: options.settings.downsampledResolutionMs };
    const stored = store.#meta.get(['layout']) as typeof layout | undefined;
    if (stored && (stored.sampleIntervalMs !== layout.sampleIntervalMs || stored.downsampledResolutionMs !== layout.downsampledResolutionMs)) {
      await store.close();
      const aside = join(options.dataDir, `lag-history-${Date.now()}.mdb`);
      renameSync(store.path, aside);
      if (existsSync(`${store.path}-lock`)) renameSync(`${store.path}-lock`, `${aside}-lock`);
      options.logLine?.(`[lag-history] written with ${stored.sampleIntervalMs} ms samples and ${stored.downsampledResolutionMs} ms buckets, now ${layout.sampleIntervalMs} ms and ${layout.downsampledResolutionMs} ms: kept as ${aside}, a new history starts`);
      store = new LagHistoryStore(options);
    }
    const opened = store;
    await opened.#env.transaction(() => opened.#meta.put(['layout'], layout));
    return opened;
  }

  get rawChunkMs(): number {
    return SAMPLES_PER_CHUNK * this.settings.sampleIntervalMs;
  }

  get bucketChunkMs(): number {
    return BUCKETS_PER_CHUNK * this.settings.downsampledResolutionMs;
  }

  /** Cumulative counters saved with the last sample (see record). */
  baselines(): Record<string, number> {
    return (this.#meta.get(['baselines']) as Record<string, number> | undefined) ?? {};
  }

  info(): HistoryInfo {
    return {
      settings: this.settings,
      firstSampleMs: (this.#meta.get(['firstSampleMs']) as number | undefined) ?? null,
      retainedFromMs: (this.#meta.get(['retainedFromMs']) as number | undefined) ?? null,
      bytesUsed: this.bytesUsed(),
      series: this.#ids.size,
    };
  }

  /** B-tree pages in use (branch, leaf, overflow) of both databases, in bytes. */
  bytesUsed(): number {
    let pages = 0;
    for (const db of [this.#chunks, this.#meta]) {
      const s = db.getStats() as { treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
      pages += s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages;
    }
    return pages * PAGE_BYTES;
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new ComplianceError(ComplianceErrorCode.HistoryQuery, 'the lag history is closed'));
    const next = this.#chain.then(work, work);
    this.#chain = next.catch(() => {});
    return next;
  }

  /** Within a write transaction: the series' id, registered on first use. */
  #idOf(series: SeriesKey): number {
    const text = seriesKeyText(series);
    let id = this.#ids.get(text);
    if (id === undefined) {
      id = (this.#meta.get(['seriesNext']) as number | undefined) ?? 1;
      this.#meta.put(['seriesNext'], id + 1);
      this.#meta.put(['series', text], id);
      this.#ids.set(text, id);
      this.#keys.set(id, series);
    }
    return id;
  }

  /**
   * Records one sample per series in the slot starting at `slotMs` (a multiple of the
   * sample interval), with the cumulative counters they were computed from, in one
   * durable transaction.
   */
  record(slotMs: number, samples: readonly Sample[], baselines?: Record<string, number>): Promise<void> {
    return this.recordBatch([{ slotMs, samples }], baselines);
  }

  /** Several slots in one transaction (imports, benchmarks); each slot as record() writes it. */
  recordBatch(slots: ReadonlyArray<{ slotMs: number; samples: readonly Sample[] }>, baselines?: Record<string, number>): Promise<void> {
    const interval = this.settings.sampleIntervalMs;
    for (const { slotMs } of slots) {
      if (slotMs % interval !== 0) return Promise.reject(new ComplianceError(ComplianceErrorCode.HistoryQuery, `slot ${slotMs} is not a multiple of the sample interval ${interval}`));
    }
    return this.#serial(() =>
      this.#env.transaction(() => {
        const dirty = new Map<number, SeriesKey>();
        for (const { slotMs, samples } of slots) {
          const chunkStart = Math.floor(slotMs / this.rawChunkMs) * this.rawChunkMs;
          for (const sample of samples) {
            const id = this.#idOf(sample.series);
            let chunk = this.#current.get(id);
            if (!chunk || chunk.startMs !== chunkStart) {
              if (chunk && dirty.has(id)) this.#chunks.put([id, 0, chunk.startMs], encodeChunk(sample.series.kind, chunk));
              const stored = this.#chunks.get([id, 0, chunkStart]);
              chunk = stored ? decodeChunk(sample.series.kind, chunkStart, stored) : { level: 0, startMs: chunkStart, slotMs: interval, slots: new Array(SAMPLES_PER_CHUNK).fill(undefined) };
              this.#current.set(id, chunk);
            }
            chunk.slots[(slotMs - chunkStart) / interval] = rawCell(slotMs, interval, { ...sample.values }, { ...(sample.hlc ?? {}) });
            dirty.set(id, sample.series);
          }
        }
        for (const [id, series] of dirty) {
          const chunk = this.#current.get(id) as Chunk;
          this.#chunks.put([id, 0, chunk.startMs], encodeChunk(series.kind, chunk));
        }
        const first = slots.reduce((m, s) => Math.min(m, s.slotMs), Infinity);
        const known = this.#meta.get(['firstSampleMs']) as number | undefined;
        if (first !== Infinity && (known === undefined || first < known)) this.#meta.put(['firstSampleMs'], first);
        if (baselines) this.#meta.put(['baselines'], baselines);
      }),
    );
  }

  /**
   * Writes downsampled buckets (cells of the downsampled resolution, as maintain() makes
   * them) for one series, merged with any there: imports and benchmarks.
   */
  writeBuckets(series: SeriesKey, cells: readonly Cell[]): Promise<void> {
    const resolution = this.settings.downsampledResolutionMs;
    for (const cell of cells) {
      if (cell.startMs % resolution !== 0 || cell.spanMs !== resolution) return Promise.reject(new ComplianceError(ComplianceErrorCode.HistoryQuery, `a bucket must start on and span the downsampled resolution (${resolution} ms)`));
    }
    return this.#serial(() =>
      this.#env.transaction(() => {
        const id = this.#idOf(series);
        this.#mergeIntoBuckets(id, series, cells);
        const first = cells.reduce((m, c) => Math.min(m, c.startMs), Infinity);
        const known = this.#meta.get(['firstSampleMs']) as number | undefined;
        if (first !== Infinity && (known === undefined || first < known)) this.#meta.put(['firstSampleMs'], first);
      }),
    );
  }

  /** Within a write transaction: merges cells (raw or buckets) into the series' level-1 chunks. */
  #mergeIntoBuckets(id: number, series: SeriesKey, cells: readonly Cell[]): void {
    const resolution = this.settings.downsampledResolutionMs;
    const bucketChunk = this.bucketChunkMs;
    // Cells by the bucket they fall in, buckets by the level-1 chunk they fall in.
    const byChunk = new Map<number, Map<number, Cell[]>>();
    for (const cell of cells) {
      const bucket = Math.floor(cell.startMs / resolution) * resolution;
      const chunkStart = Math.floor(bucket / bucketChunk) * bucketChunk;
      let buckets = byChunk.get(chunkStart);
      if (!buckets) byChunk.set(chunkStart, (buckets = new Map()));
      let list = buckets.get(bucket);
      if (!list) buckets.set(bucket, (list = []));
      list.push(cell);
    }
    for (const [chunkStart, buckets] of byChunk) {
      const stored = this.#chunks.get([id, 1, chunkStart]);
      const chunk: Chunk = stored ? decodeChunk(series.kind, chunkStart, stored) : { level: 1, startMs: chunkStart, slotMs: resolution, slots: new Array(BUCKETS_PER_CHUNK).fill(undefined) };
      for (const [bucket, list] of buckets) {
        const index = (bucket - chunkStart) / resolution;
        const existing = chunk.slots[index];
        chunk.slots[index] = mergeCells(series.kind, existing ? [existing, ...list] : list, bucket, resolution);
      }
      this.#chunks.put([id, 1, chunkStart], encodeChunk(series.kind, chunk, { deflate: true }));
    }
  }

  /** Downsampling, retention and the size bound, as of `nowMs`. */
  maintain(nowMs: number): Promise<MaintenanceResult> {
    return this.#serial(async () => {
      const result = { downsampledChunks: 0, removedForRetention: 0, removedForSize: 0, bytesUsed: 0 };
      // A whole level-1 chunk at a time: it is written once, and a bucket is either all raw
      // or all downsampled, so a report never has to guess which samples a bucket holds.
      const step = this.bucketChunkMs;
      await this.#env.transaction(() => {
        result.downsampledChunks = this.#downsample(Math.floor((nowMs - this.settings.recentWindowMs) / step) * step);
        result.removedForRetention = this.#dropBefore(nowMs - this.settings.retentionMs);
      });
      // Pages freed by a commit show in the stats after it: one slab per transaction, then
      // measure again. Once over the bound, down to 90% of it, so that the next sample
      // does not start it again.
      let used = this.bytesUsed();
      if (used > this.settings.bytesMax) {
        for (let round = 0; used > this.settings.bytesMax * 0.9 && round < SIZE_ROUNDS_MAX; round++) {
          const removed = await this.#env.transaction(() => this.#dropOldestSlab());
          if (removed === 0) break;
          result.removedForSize += removed;
          used = this.bytesUsed();
        }
      }
      result.bytesUsed = used;
      return result;
    });
  }

  #downsample(cutoffMs: number): number {
    const raw = this.rawChunkMs;
    let count = 0;
    for (const [id, series] of this.#keys) {
      const old: Array<{ key: ChunkKey; chunk: Chunk }> = [];
      for (const { key, value } of this.#chunks.getRange({ start: [id, 0, 0], end: [id, 0, cutoffMs - raw + 1] })) {
        old.push({ key: key as ChunkKey, chunk: decodeChunk(series.kind, (key as ChunkKey)[2], value) });
      }
      if (old.length === 0) continue;
      this.#mergeIntoBuckets(id, series, old.flatMap(({ chunk }) => cellsOf(chunk)));
      for (const { key } of old) {
        this.#chunks.remove(key);
        if (this.#current.get(id)?.startMs === key[2]) this.#current.delete(id);
        count++;
      }
    }
    return count;
  }

  /** Removes every chunk that ends before `cutoffMs` (retention works in whole chunks); returns how many. */
  #dropBefore(cutoffMs: number): number {
    let removed = 0;
    let retainedFrom = 0;
    for (const id of this.#keys.keys()) {
      for (const [level, span] of [[0, this.rawChunkMs], [1, this.bucketChunkMs]] as Array<[Level, number]>) {
        for (const key of [...this.#chunks.getKeys({ start: [id, level, 0], end: [id, level, cutoffMs - span + 1] })] as ChunkKey[]) {
          this.#chunks.remove(key);
          retainedFrom = Math.max(retainedFrom, key[2] + span);
          removed++;
        }
      }
    }
    if (removed > 0) this.#noteRetainedFrom(retainedFrom);
    return removed;
  }

  #noteRetainedFrom(ms: number): void {
    const before = (this.#meta.get(['retainedFromMs']) as number | undefined) ?? 0;
    if (ms > before) this.#meta.put(['retainedFromMs'], ms);
  }

  /**
   * The size bound: removes the oldest slab of history, one level-1 chunk span (a day by
   * default) of every series; returns the chunks removed.
   */
  #dropOldestSlab(): number {
    let oldest = Infinity;
    for (const id of this.#keys.keys()) {
      for (const level of [1, 0] as Level[]) {
        for (const key of this.#chunks.getKeys({ start: [id, level, 0], end: [id, level, Number.MAX_SAFE_INTEGER], limit: 1 })) {
          const k = key as ChunkKey;
          // A raw chunk still being written is never dropped for size.
          if (level === 0 && this.#current.get(id)?.startMs === k[2]) continue;
          oldest = Math.min(oldest, k[2]);
        }
      }
    }
    if (oldest === Infinity) return 0;
    const slabEnd = (Math.floor(oldest / this.bucketChunkMs) + 1) * this.bucketChunkMs;
    let removed = 0;
    for (const id of this.#keys.keys()) {
      for (const level of [1, 0] as Level[]) {
        for (const key of [...this.#chunks.getKeys({ start: [id, level, 0], end: [id, level, slabEnd] })]) {
          const k = key as ChunkKey;
          if (level === 0 && this.#current.get(id)?.startMs === k[2]) continue;
          this.#chunks.remove(k);
          removed++;
        }
      }
    }
    if (removed > 0) this.#noteRetainedFrom(slabEnd);
    return removed;
  }

  /**
   * Chunks of the namespace's series (and the node series) that overlap [fromMs, toMs),
   * in (series, level, time) order, a page at a time.
   */
  query(q: HistoryQuery): HistoryPage {
    if (!(q.toMs > q.fromMs)) throw new ComplianceError(ComplianceErrorCode.HistoryQuery, `the period is empty: from ${q.fromMs} to ${q.toMs}`);
    let after: ChunkKey | undefined;
    if (q.after !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.from(q.after, 'base64url').toString('utf8'));
      } catch {
        parsed = undefined;
      }
      if (!Array.isArray(parsed) || parsed.length !== 3 || !parsed.every((n) => Number.isSafeInteger(n))) throw new ComplianceError(ComplianceErrorCode.HistoryQuery, 'after is not a cursor this node gave');
      after = parsed as ChunkKey;
    }
    const ids = [...this.#keys].filter(([, s]) => s.namespace === q.namespace || s.kind === 'node').map(([id]) => id).sort((a, b) => a - b);
    const chunks: EncodedChunk[] = [];
    let bytes = 0;
    for (const id of ids) {
      if (after && id < after[0]) continue;
      const series = this.#keys.get(id) as SeriesKey;
      for (const [level, span] of [[0, this.rawChunkMs], [1, this.bucketChunkMs]] as Array<[Level, number]>) {
        if (after && id === after[0] && level < after[1]) continue;
        let start = Math.max(0, q.fromMs - span + 1);
        if (after && id === after[0] && level === after[1]) start = Math.max(start, after[2] + 1);
        for (const { key, value } of this.#chunks.getRange({ start: [id, level, start], end: [id, level, q.toMs] })) {
          if (chunks.length > 0 && bytes + value.length > q.pageBytesMax) {
            const last = chunks[chunks.length - 1] as EncodedChunk;
            return { chunks, next: Buffer.from(JSON.stringify([this.#ids.get(seriesKeyText(last.series)), last.level, last.startMs])).toString('base64url') };
          }
          const k = key as ChunkKey;
          chunks.push({ series, level: k[1], startMs: k[2], data: Buffer.from(value) });
          bytes += value.length;
        }
      }
    }
    return { chunks };
  }

  /** Waits for the writes in flight, closes the environment. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#chain;
    await this.#env.close();
  }
}
