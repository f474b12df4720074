// The node's durable store: one LMDB environment holding every topic log, producer
// dedupe marks, subscription cursors, metadata and the clock's bound.
//
// Group commit is the whole game (DESIGN §4): LMDB commits a few thousand durable
// transactions per second but hundreds of thousands of puts per transaction. So appends
// queue up while a commit is in flight and the next commit carries all of them. An
// appended entry, its producer dedupe mark and the HLC bound are written in the same
// transaction, so a crash never keeps one without the other.
//
// A commit becomes visible before it is durable: with overlappingSync LMDB releases the
// writer lock before it fsyncs. (lmdb-js still resolves a transaction's promise only once
// mdb_txn_commit has returned, sync included, so one group commit follows another; the
// store waits for `flushed` all the same rather than lean on that detail.) Nothing is
// acknowledged to a producer, and nothing is delivered to a consumer, until its commit is
// flushed: each topic log tracks `durableNextOffset` separately from `nextOffset`.
import { mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { ClockSkewError, HybridLogicalClock, hlcWallMs, packHlc, type HlcTimestamp } from '../../conflict/index.ts';
import { ErrorCode } from '../../proto/index.ts';
import { AdmqError, InvariantViolation, StorageError, assert } from '../errors.ts';
import { StagedProducerMark, loadProducerMark, storeProducerMark, type ProducerMark, type StoredProducerMark } from './producer-mark.ts';
import { chunkKey, chunkKeyOffset, topicKeyPrefix, decodeChunk, encodeChunk, entryEncodedBytes, peekChunkOrigins, type Entry } from './entry-codec.ts';

export type Durability = 'fsync' | 'none';

export interface LogStoreOptions {
  /** Directory of the LMDB environment; created if missing. */
  dataDir: string;
  region: string;
  /** 'fsync' (default): acknowledge after the commit is on disk. 'none' is for tests and benchmarks only. */
  durability: Durability;
  readPhysicalMs: () => number;
  maxClockOffsetMs: number;
  /** Upper bound of one stored chunk; larger group commits are split. */
  chunkBytesMax?: number;
  chunkEntriesMax?: number;
  /** How long dirty cursors may wait before a commit is forced for them. */
  cursorFlushIntervalMs?: number;
  /**
   * Decoded chunks kept in memory for readers of recent entries (consumers, replication
   * links), all topics together: at most this many entries (default 4,096) and this many
   * stored bytes (default 8 MiB); the oldest cached chunk goes first. A reader further
   * back reads from LMDB. See #cacheChunk for why the cache is small.
   */
  chunkCacheEntriesMax?: number;
  chunkCacheBytesMax?: number;
}

export interface AppendMessage {
  producerName: string;
  sequenceId: number;
  key: string | undefined;
  properties: Record<string, string>;
  payload: Buffer;
  eventTimeMs: number;
}

export interface AppendResult {
  sequenceId: number;
  offset: number;
  duplicate: boolean;
  hlc: bigint;
}

/**
 * Regional cluster (DESIGN §4): where a topic's committed chunks are replicated before they
 * count as durable — the topic's current ledger, written to a quorum of storage nodes. The
 * local LMDB is then a cache that a new owner rebuilds from the ledgers (`restoreLog`).
 */
export interface ChunkSink {
  /** Called in commit order with each chunk's bytes; resolves once the chunk is durable in the cluster. */
  persist(chunk: Buffer): Promise<void>;
  /** The sink failed (its ledger was fenced, or quorum was lost): the log takes no more writes. */
  failed(error: AdmqError): void;
}

/** In-memory state of one topic's log. */
export class TopicLog {
  /** Next offset to assign; counts commits that may not be flushed yet. */
  nextOffset = 0;
  /** Entries below this offset are durable and may be delivered. */
  durableNextOffset = 0;
  /** Offset of the first retained entry. */
  firstOffset = 0;
  lastPublishTimeMs = 0;
  readonly producers = new Map<string, ProducerMark>();
  /** Per origin region other than this one: the highest origin position stored. */
  readonly origins = new Map<string, OriginMark>();
  /** The same marks as of the last flush: what is durable (HLC watermarks must not run ahead of it). */
  readonly durableOrigins = new Map<string, OriginMark>();
  /**
   * Keyed topics: called inside the write transaction for each entry appended, in log
   * order, so that a local write is stamped with what this region had seen of its key.
   */
  stageHook: { local(entry: Entry): void; replicated(entry: Entry): void } | undefined;
  /** Keyed topics: whether a later or winning version of the entry's key makes it obsolete (compacted reads). */
  isSuperseded: ((entry: Entry) => boolean) | undefined;
  /** HLC watermarks per origin learned from idle links' heartbeats (in memory; rebuilt as they come). */
  readonly heartbeatWatermarks = new Map<string, bigint>();
  /** Recently written or read chunks, decoded, by first offset (the store's cache bounds them). */
  readonly chunkCache = new Map<number, Entry[]>();
  readonly #durableListeners = new Set<() => void>();
  bytesAppended = 0;
  entriesAppended = 0;
  deleted = false;
  /** Cluster mode: the ledger every commit of this log must also reach before it is durable. */
  sink: ChunkSink | undefined;
  /** Set once the sink failed: the log refuses writes until a new owner restores it. */
  sinkFailure: AdmqError | undefined;
  /** Cluster mode: this log's commits settle one after another, each after its chunks reached the ledger. */
  replicationChain: Promise<void> = Promise.resolve();

  constructor(
    readonly id: number,
    readonly name: string,
  ) {}

  onDurable(listener: () => void): () => void {
    this.#durableListeners.add(listener);
    return () => this.#durableListeners.delete(listener);
  }

  notifyDurable(): void {
    for (const listener of this.#durableListeners) listener();
  }

  get backlogCount(): number {
    return this.durableNextOffset - this.firstOffset;
  }
}

interface AppendRequest {
  log: TopicLog;
  /** Local writes from producers. */
  messages: AppendMessage[];
  /** Entries replicated from other regions, with their origin fields; `offset` is ignored. */
  replicated?: Entry[];
  /** Of `replicated`, how many were already stored (counted, with no result per entry). */
  duplicates: number;
  resolve: (results: AppendResult[]) => void;
  reject: (error: unknown) => void;
}

/** What became of a batch of replicated entries: stored, or already there. */
export interface ReplicatedAppendResult {
  appended: number;
  duplicates: number;
}

/** Highest origin position (and its HLC) stored in a topic log for one origin region. */
export interface OriginMark {
  position: number;
  hlc: string;
}

interface StagedLog {
  log: TopicLog;
  nextOffset: number;
  lastPublishTimeMs: number;
  producers: Map<string, StagedProducerMark>;
  origins: Map<string, OriginMark>;
  chunks: Array<{ base: number; entries: Entry[]; bytes: number }>;
  /** Cluster mode: copies of the chunks' bytes, for the sink. */
  sinkChunks: Buffer[];
  /** Cluster mode: settles once every sink chunk of this commit is durable in the cluster. */
  replicated?: Promise<void>;
  bytes: number;
  entries: number;
}

/** The producer's mark in the commit being staged, starting from the log's. */
function stagedMark(s: StagedLog, producerName: string): StagedProducerMark {
  let mark = s.producers.get(producerName);
  if (!mark) s.producers.set(producerName, (mark = new StagedProducerMark(s.log.producers.get(producerName))));
  return mark;
}

interface Staged {
  logs: Map<TopicLog, StagedLog>;
  results: Map<AppendRequest, AppendResult[]>;
  /** The clock's last timestamp when the commit was staged: every HLC issued so far is in it or before it. */
  hlcBound: bigint;
}

/** Cached chunks per log, whatever the store-wide bounds: a lookup scans them. */
const CHUNK_CACHE_PER_LOG_MAX = 64;
/** Room beyond chunkBytesMax in the chunk scratch buffer, for the entry that crosses the bound. */
const CHUNK_SCRATCH_SLACK_BYTES = 64 * 1024;
/** Below this much free space a failed commit is reported as a full disk. */
const FREE_BYTES_MIN = 16 * 1024 * 1024;

type MetaKey = Array<string | number>;

export class LogStore {
  readonly clock: HybridLogicalClock;
  readonly region: string;
  readonly #env: RootDatabase;
  readonly #chunks: Database<Buffer, Buffer>;
  /** Every cached chunk, oldest first, keyed by its entries (see #cacheChunk). */
  readonly #cachedChunks = new Map<Entry[], { log: TopicLog; base: number; bytes: number }>();
  #cachedEntries = 0;
  #cachedBytes = 0;
  /** Chunks that reads and scans found in the cache, and those they read from LMDB. */
  #cacheHits = 0;
  #cacheMisses = 0;
  readonly #meta: Database<unknown, MetaKey>;
  readonly #options: Required<LogStoreOptions>;
  #queue: AppendRequest[] = [];
  #committing = false;
  #closed = false;
  #writeFailure: AdmqError | undefined;
  #flushChain: Promise<unknown> = Promise.resolve();
  /** Commits staged whose flush has not completed. */
  #flushesPending = 0;
  /** The hlcBound of the last flushed commit. */
  #durableHlc = 0n;
  /** Cluster mode: commits whose HLC bound waits for their ledgers (kept in commit order). */
  #hlcChain: Promise<void> = Promise.resolve();
  #replicationsPending = 0;
  readonly #dirtyCursors = new Map<string, { key: MetaKey; value: unknown }>();
  #cursorTimer: NodeJS.Timeout | undefined;
  readonly logs = new Map<number, TopicLog>();
  commits = 0;
  /** Where chunks are encoded before LMDB copies them; allocated on first use. */
  #chunkScratch: Buffer | undefined;

  private constructor(options: Required<LogStoreOptions>) {
    this.#options = options;
    this.region = options.region;
    mkdirSync(options.dataDir, { recursive: true });
    this.#env = open({
      path: join(options.dataDir, 'node.mdb'),
      noSync: options.durability === 'none',
      overlappingSync: options.durability === 'fsync',
      pageSize: 8192,
      maxDbs: 8,
      // Our own group commit batches; lmdb's event-turn batching adds a batch-start promise
      // that nobody can handle, which becomes an unhandled rejection when a commit fails.
      eventTurnBatching: false,
    });
    this.#chunks = this.#env.openDB<Buffer, Buffer>({ name: 'chunks', keyEncoding: 'binary', encoding: 'binary' });
    // JSON, not msgpack: lmdb's msgpack saves shared record structures with writes of its
    // own, outside our transactions, whose failures nobody could handle.
    this.#meta = this.#env.openDB<unknown, MetaKey>({ name: 'meta', encoding: 'json' });
    const bound = this.#meta.get(['hlc']);
    this.clock = new HybridLogicalClock({
      readPhysicalMs: options.readPhysicalMs,
      initial: typeof bound === 'string' ? BigInt(bound) : 0n,
      maxClockOffsetMs: options.maxClockOffsetMs,
    });
  }

  static open(options: LogStoreOptions): LogStore {
    return new LogStore({
      chunkBytesMax: 1024 * 1024,
      chunkEntriesMax: 4096,
      cursorFlushIntervalMs: 100,
      chunkCacheEntriesMax: 4096,
      chunkCacheBytesMax: 8 * 1024 * 1024,
      ...options,
    });
  }

  // ------------------------------------------------------------------ metadata

  metaGet<T>(key: MetaKey): T | undefined {
    return this.#meta.get(key) as T | undefined;
  }

  metaRange<T>(prefix: MetaKey): Array<{ key: MetaKey; value: T }> {
    const out: Array<{ key: MetaKey; value: T }> = [];
    for (const { key, value } of this.#meta.getRange({ start: prefix, end: [...prefix, '\uffff'] })) {
      if (key.length <= prefix.length) continue;
      out.push({ key, value: value as T });
    }
    return out;
  }

  /** Runs metadata writes atomically and durably. */
  async metaWrite(write: (txn: { put(key: MetaKey, value: unknown): void; remove(key: MetaKey): void }) => void): Promise<void> {
    this.#assertOpen();
    if (this.#writeFailure) throw this.#writeFailure;
    try {
      await this.#meta.transaction(() => {
        write({
          put: (key, value) => void this.#meta.putSync(key, value),
          remove: (key) => void this.#meta.removeSync(key),
        });
      });
      await this.#env.flushed;
    } catch (error) {
      throw await this.#classifyWriteFailure(error);
    }
  }

  /** The error that made the store read-only, if any. */
  get writeFailure(): AdmqError | undefined {
    return this.#writeFailure;
  }

  /**
   * Turns an LMDB commit failure into a typed error. LMDB reports a full tmpfs or disk as
   * EIO as often as ENOSPC, so the free space of the data directory decides.
   */
  async #classifyWriteFailure(error: unknown): Promise<AdmqError> {
    let cause = error;
    const inner = (error as { commitError?: Promise<unknown> } | undefined)?.commitError;
    if (inner && typeof inner.then === 'function') cause = await inner.then(() => error, (e: unknown) => e);
    const errno = (cause as { code?: unknown }).code;
    let freeBytes = Number.POSITIVE_INFINITY;
    try {
      const fs = statfsSync(this.#options.dataDir);
      freeBytes = fs.bavail * fs.bsize;
    } catch {
      // statfs unavailable: fall back to the errno alone
    }
    const message = cause instanceof Error ? cause.message : String(cause);
    if (errno === 28 || errno === 'ENOSPC' || freeBytes < FREE_BYTES_MIN) {
      return new StorageError(ErrorCode.StorageFull, `storage is full (${Number.isFinite(freeBytes) ? `${freeBytes} bytes free` : 'no space'} in ${this.#options.dataDir}): ${message}`, { cause });
    }
    return new StorageError(ErrorCode.Storage, `storage write failed: ${message}`, { cause });
  }

  /** Allocates topic ids from a durable counter. Called inside metaWrite. */
  nextTopicId(): number {
    const current = (this.#meta.get(['counter', 'topicId']) as number | undefined) ?? 0;
    this.#meta.putSync(['counter', 'topicId'], current + 1);
    return current + 1;
  }

  // ------------------------------------------------------------------ topic logs

  /** Loads (or returns) a topic log's state: tail offset from the last chunk, producer marks. */
  openLog(id: number, name: string): TopicLog {
    const existing = this.logs.get(id);
    if (existing) return existing;
    const log = new TopicLog(id, name);
    for (const { key } of this.#chunks.getRange({ start: chunkKey(id, 0), end: chunkKey(id + 1, 0), limit: 1 })) {
      log.firstOffset = chunkKeyOffset(key);
    }
    for (const { key, value } of this.#chunks.getRange({
      start: chunkKey(id, Number.MAX_SAFE_INTEGER),
      end: topicKeyPrefix(id),
      reverse: true,
      limit: 1,
    })) {
      const entries = decodeChunk(value, `${name} chunk ${chunkKeyOffset(key)}`);
      const last = entries[entries.length - 1];
      assert(last !== undefined, `${name}: empty chunk at ${chunkKeyOffset(key)}`);
      log.nextOffset = last.offset + 1;
      log.lastPublishTimeMs = last.publishTimeMs;
    }
    if (log.nextOffset === 0) log.firstOffset = (this.#meta.get(['logStart', id]) as number | undefined) ?? 0;
    if (log.nextOffset === 0) log.nextOffset = log.firstOffset;
    log.durableNextOffset = log.nextOffset;
    for (const { key, value } of this.metaRange<StoredProducerMark>(['producer', id])) {
      log.producers.set(String(key[2]), loadProducerMark(value));
    }
    for (const { key, value } of this.metaRange<OriginMark>(['origin', id])) {
      log.origins.set(String(key[2]), value);
      log.durableOrigins.set(String(key[2]), value);
    }
    this.logs.set(id, log);
    return log;
  }

  /**
   * Appends messages, deduplicating on (producerName, sequenceId). Resolves once the
   * entries (or, for duplicates, their originals) are durable.
   */
  append(log: TopicLog, messages: AppendMessage[]): Promise<AppendResult[]> {
    if (this.#closed) return Promise.reject(new AdmqError(ErrorCode.ShuttingDown, 'the node is shutting down'));
    if (log.deleted) return Promise.reject(new AdmqError(ErrorCode.TopicNotFound, `topic ${log.name} was deleted`));
    if (this.#writeFailure) return Promise.reject(this.#writeFailure);
    if (log.sinkFailure) return Promise.reject(log.sinkFailure);
    return new Promise((resolve, reject) => {
      this.#queue.push({ log, messages, duplicates: 0, resolve, reject });
      this.#kick();
    });
  }

  /** Throws ClockSkewError when an entry's HLC is more than maxClockOffsetMs ahead of this node's clock. */
  checkClockSkew(entries: ReadonlyArray<{ hlc: bigint }>): void {
    const now = Math.floor(this.#options.readPhysicalMs());
    for (const entry of entries) {
      const skewMs = hlcWallMs(entry.hlc) - now;
      if (skewMs > this.#options.maxClockOffsetMs) throw new ClockSkewError(skewMs, this.#options.maxClockOffsetMs);
    }
  }

  /**
   * Appends entries received from other regions, skipping any whose (origin region, origin
   * position) is already stored. The origin marks commit in the same transaction as the
   * entries, so a crash can neither lose nor duplicate one. A batch carrying a clock too
   * far ahead of ours is refused whole (ClockSkewError): the sender keeps it and retries.
   * The entries are handed over: the stored ones get their local `offset` set in place.
   * Resolves, once durable, with how many were stored and how many skipped.
   */
  appendReplicated(log: TopicLog, entries: Entry[]): Promise<ReplicatedAppendResult> {
    if (this.#closed) return Promise.reject(new AdmqError(ErrorCode.ShuttingDown, 'the node is shutting down'));
    if (log.deleted) return Promise.reject(new AdmqError(ErrorCode.TopicNotFound, `topic ${log.name} was deleted`));
    if (this.#writeFailure) return Promise.reject(this.#writeFailure);
    if (log.sinkFailure) return Promise.reject(log.sinkFailure);
    try {
      this.checkClockSkew(entries);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const request: AppendRequest = {
        log,
        messages: [],
        replicated: entries,
        duplicates: 0,
        resolve: () => resolve({ appended: entries.length - request.duplicates, duplicates: request.duplicates }),
        reject,
      };
      this.#queue.push(request);
      this.#kick();
    });
  }

  /**
   * This region's HLC watermark: every local write with an HLC at or below it is durable
   * (and no later one will get such an HLC). With nothing being committed it follows
   * physical time: a write from now on gets at least (now, 0), so everything up to the
   * end of the previous millisecond is settled. Otherwise it is the bound of the last
   * flushed commit.
   */
  localWatermark(): bigint {
    const idle = !this.#committing && this.#queue.length === 0 && this.#flushesPending === 0;
    if (!idle) return this.#durableHlc;
    const settled = packHlc(Math.floor(this.#options.readPhysicalMs()) - 1, 0xffff);
    // The clock moves up to the watermark, so that a later write stays above it even if
    // the physical clock steps back.
    this.clock.advanceTo(settled);
    return this.clock.last;
  }

  /** Highest origin positions stored per origin region, this region's own included. */
  originMarks(log: TopicLog): Map<string, number> {
    const marks = new Map<string, number>();
    for (const [origin, mark] of log.origins) marks.set(origin, mark.position);
    return marks;
  }

  #kick(): void {
    if (this.#committing || this.#closed || this.#writeFailure) return;
    if (this.#queue.length === 0 && this.#dirtyCursors.size === 0) return;
    this.#committing = true;
    setImmediate(() => void this.#commitBatch());
  }

  async #commitBatch(): Promise<void> {
    // Appends to a log that stopped taking writes (unloaded, or its ledger failed) while
    // they waited are refused here, before anything of them is written: a later restore of
    // the log must find nothing beyond what its ledgers hold.
    const batch: AppendRequest[] = [];
    for (const request of this.#queue) {
      if (request.log.sinkFailure) request.reject(request.log.sinkFailure);
      else batch.push(request);
    }
    this.#queue = [];
    const cursors = [...this.#dirtyCursors.values()];
    this.#dirtyCursors.clear();
    let staged: Staged | undefined;
    try {
      await this.#chunks.transaction(() => {
        staged = this.#stage(batch);
        for (const { key, value } of cursors) {
          if (value === undefined) this.#meta.removeSync(key);
          else this.#meta.putSync(key, value);
        }
      });
    } catch (error) {
      const failure = await this.#classifyWriteFailure(error);
      // After a failed commit LMDB's writer cannot be trusted to make progress, so the
      // store turns read-only: reads and deliveries go on, writes fail fast with the
      // typed error until an operator frees space and restarts the node.
      this.#writeFailure = failure;
      console.error(`[storage] group commit of ${batch.length} append(s) failed; store is now read-only: ${failure.code}: ${failure.message}`);
      for (const request of batch) request.reject(failure);
      const queued = this.#queue;
      this.#queue = [];
      for (const request of queued) request.reject(failure);
      this.#committing = false;
      return;
    }
    assert(staged !== undefined, 'transaction callback did not run');
    const done = staged;
    this.commits++;
    for (const s of done.logs.values()) {
      assert(s.nextOffset >= s.log.nextOffset, `${s.log.name}: offset went backwards`);
      s.log.nextOffset = s.nextOffset;
      s.log.lastPublishTimeMs = s.lastPublishTimeMs;
      for (const [name, staged] of s.producers) if (staged.added) s.log.producers.set(name, staged.written());
      for (const [origin, mark] of s.origins) s.log.origins.set(origin, mark);
      for (const chunk of s.chunks) this.#cacheChunk(s.log, chunk.base, chunk.entries, chunk.bytes);
      s.log.bytesAppended += s.bytes;
      s.log.entriesAppended += s.entries;
      if (s.sinkChunks.length > 0) {
        s.replicated = this.#replicate(s.log, s.sinkChunks);
        // Handled in the flush chain below, which may reach it only after earlier flushes.
        s.replicated.catch(() => {});
      }
    }
    // lmdb's `flushed` is a thenable that reads the newest pending flush when it is
    // awaited; take its promise now, so that this commit waits for its own flush and not
    // for one of a later commit that started in the meantime.
    const flushed = new Promise<void>((resolve, reject) => {
      this.#env.flushed.then(() => resolve(), reject);
    });
    // Handled in the flush chain below, which may reach it only after earlier flushes.
    flushed.catch(() => {});
    this.#flushesPending++;
    this.#committing = false;
    this.#kick();
    // Flushes complete in commit order; chaining keeps acknowledgements in that order too.
    this.#flushChain = this.#flushChain.then(async () => {
      try {
        await flushed;
      } catch (error) {
        // A failed fsync leaves the disk state unknown; serving on would risk acking lost data.
        console.error('[storage] fsync failed; stopping', error);
        process.exit(70);
      }
      const settle = (): void => {
        this.#flushesPending--;
        if (done.hlcBound > this.#durableHlc) this.#durableHlc = done.hlcBound;
      };
      const advance = (s: StagedLog): void => {
        if (s.nextOffset > s.log.durableNextOffset) s.log.durableNextOffset = s.nextOffset;
        for (const [origin, mark] of s.origins) s.log.durableOrigins.set(origin, mark);
        s.log.notifyDurable();
      };
      let replicates = false;
      for (const s of done.logs.values()) replicates ||= s.log.sink !== undefined;
      if (!replicates && this.#replicationsPending === 0) {
        // Standalone: durable once flushed.
        settle();
        for (const s of done.logs.values()) advance(s);
        for (const [request, results] of done.results) request.resolve(results);
        return;
      }
      // Cluster mode: a commit of a topic counts only once its chunks are on a quorum of
      // storage nodes too. Each log waits for its own ledger only, in its own commit order,
      // so that one slow ledger delays its topic and no other. A log whose ledger failed
      // keeps its entries undelivered and unacked; a new owner's recovery decides which of
      // them survive.
      const requestsOf = new Map<TopicLog, Array<[AppendRequest, AppendResult[]]>>();
      for (const entry of done.results) {
        const list = requestsOf.get(entry[0].log);
        if (list) list.push(entry);
        else requestsOf.set(entry[0].log, [entry]);
      }
      const complete = (s: StagedLog, error: AdmqError | undefined): void => {
        if (!error) advance(s);
        for (const [request, results] of requestsOf.get(s.log) ?? []) {
          // Also a commit that held only duplicates of entries whose own commit failed.
          const failure = error ?? request.log.sinkFailure;
          if (failure) request.reject(failure);
          else request.resolve(results);
        }
      };
      const replicating: Array<Promise<void>> = [];
      for (const s of done.logs.values()) {
        if (!s.log.sink) {
          complete(s, undefined);
          continue;
        }
        const step = s.log.replicationChain
          .then(() => s.replicated)
          .then(
            () => complete(s, undefined),
            (error: unknown) => complete(s, s.log.sinkFailure ?? toSinkError(s.log, error)),
          );
        s.log.replicationChain = step;
        replicating.push(step);
      }
      // The clock's durable bound advances in commit order, once every log of the commit settled.
      this.#replicationsPending++;
      this.#hlcChain = this.#hlcChain
        .then(() => Promise.all(replicating))
        .then(settle)
        .finally(() => this.#replicationsPending--);
    });
  }

  /** Hands a commit's chunks of one log to its sink, in order; the first failure stops the log. */
  #replicate(log: TopicLog, chunks: Buffer[]): Promise<void> {
    const sink = log.sink as ChunkSink;
    if (log.sinkFailure) return Promise.reject(log.sinkFailure);
    const all = Promise.all(chunks.map((chunk) => sink.persist(chunk))).then(() => undefined);
    all.catch((error: unknown) => {
      if (log.sinkFailure) return;
      log.sinkFailure = toSinkError(log, error);
      sink.failed(log.sinkFailure);
    });
    return all;
  }

  /** Runs inside the write transaction: assigns offsets and HLCs, writes chunks and marks. */
  #stage(batch: AppendRequest[]): Staged {
    const logs = new Map<TopicLog, StagedLog>();
    const results = new Map<AppendRequest, AppendResult[]>();
    const pending = new Map<TopicLog, Entry[]>();
    for (const request of batch) {
      const log = request.log;
      let s = logs.get(log);
      if (!s) {
        s = { log, nextOffset: log.nextOffset, lastPublishTimeMs: log.lastPublishTimeMs, producers: new Map(), origins: new Map(), chunks: [], sinkChunks: [], bytes: 0, entries: 0 };
        logs.set(log, s);
        pending.set(log, []);
      }
      const out: AppendResult[] = [];
      const entries = pending.get(log) as Entry[];
      for (const m of request.messages) {
        const mark = m.producerName ? stagedMark(s, m.producerName) : undefined;
        if (mark?.seenLocally(m.sequenceId)) {
          out.push({ sequenceId: m.sequenceId, offset: mark.offsetOf(m.sequenceId), duplicate: true, hlc: 0n });
          continue;
        }
        const hlc: HlcTimestamp = this.clock.now();
        // Publish time never decreases within a topic, so seeking by time can bisect.
        const publishTimeMs = Math.max(s.lastPublishTimeMs, Math.floor(this.#options.readPhysicalMs()));
        const offset = s.nextOffset++;
        const entry: Entry = {
          offset,
          originRegion: this.region,
          originPosition: offset,
          hlc,
          producerName: m.producerName,
          sequenceId: m.sequenceId,
          publishTimeMs,
          eventTimeMs: m.eventTimeMs,
          key: m.key,
          properties: m.properties,
          payload: m.payload,
        };
        s.lastPublishTimeMs = publishTimeMs;
        log.stageHook?.local(entry);
        entries.push(entry);
        mark?.add(m.sequenceId, offset, true);
        out.push({ sequenceId: m.sequenceId, offset, duplicate: false, hlc });
      }
      // The highest origin position taken from each origin in this request, and its HLC:
      // the marks are written once per origin below, not once per entry.
      let takenOrigin: string | undefined;
      let takenPosition = -1;
      let takenHlc = 0n;
      const settleTaken = (): void => {
        if (takenOrigin !== undefined) s.origins.set(takenOrigin, { position: takenPosition, hlc: takenHlc.toString() });
        takenOrigin = undefined;
      };
      for (const r of request.replicated ?? []) {
        // Dedupe by global id: an entry already stored (through any path) is skipped.
        if (r.originRegion !== takenOrigin) settleTaken();
        const mark = takenOrigin !== undefined ? takenPosition : (s.origins.get(r.originRegion) ?? log.origins.get(r.originRegion))?.position;
        if (r.originRegion === this.region || (mark !== undefined && r.originPosition <= mark)) {
          request.duplicates++;
          continue;
        }
        // The skew was checked when the batch was queued; here the clock only merges.
        this.clock.advanceTo(r.hlc);
        // Past this point the origin mark advances whatever happens to the entry, so that
        // the sender's resume from our marks never ships it again.
        takenOrigin = r.originRegion;
        takenPosition = r.originPosition;
        takenHlc = r.hlc;
        // Producer dedupe across regions: the same (producer, sequence id) accepted by
        // another region first (a producer that failed over and resent) is stored once.
        const producerMark = r.producerName ? stagedMark(s, r.producerName) : undefined;
        if (producerMark?.seen(r.sequenceId)) {
          request.duplicates++;
          continue;
        }
        const offset = s.nextOffset++;
        // Origin fields never change as an entry travels; only the local offset is ours.
        // The entry is the caller's to give away (appendReplicated), so it takes the
        // offset in place rather than as a copy.
        const stored = r;
        stored.offset = offset;
        log.stageHook?.replicated(stored);
        entries.push(stored);
        producerMark?.add(r.sequenceId, offset, false);
      }
      settleTaken();
      results.set(request, out);
    }
    for (const [log, entries] of pending) {
      const s = logs.get(log) as StagedLog;
      let chunk: Entry[] = [];
      let chunkBytes = 0;
      const flush = (): void => {
        if (chunk.length === 0) return;
        const first = chunk[0] as Entry;
        // LMDB copies the value inside putSync, so one scratch buffer serves every chunk.
        this.#chunkScratch ??= Buffer.allocUnsafe(this.#options.chunkBytesMax + CHUNK_SCRATCH_SLACK_BYTES);
        const encoded = encodeChunk(chunk, this.#chunkScratch);
        this.#chunks.putSync(chunkKey(log.id, first.offset), encoded);
        if (log.sink) s.sinkChunks.push(Buffer.from(encoded));
        s.chunks.push({ base: first.offset, entries: chunk, bytes: encoded.length });
        chunk = [];
        chunkBytes = 0;
      };
      for (const entry of entries) {
        const size = entryEncodedBytes(entry);
        if (chunk.length > 0 && (chunkBytes + size > this.#options.chunkBytesMax || chunk.length >= this.#options.chunkEntriesMax)) flush();
        chunk.push(entry);
        chunkBytes += size;
        s.bytes += entry.payload.length;
        s.entries++;
      }
      flush();
      for (const [name, staged] of s.producers) if (staged.added) this.#meta.putSync(['producer', log.id, name], storeProducerMark(staged.written()));
      for (const [origin, mark] of s.origins) this.#meta.putSync(['origin', log.id, origin], mark);
    }
    this.#meta.putSync(['hlc'], this.clock.last.toString());
    return { logs, results, hlcBound: this.clock.last };
  }

  /**
   * Caches a decoded chunk; the oldest chunks, of any log, leave when the store-wide
   * bounds are passed (the newest always stays). The bounds are small on purpose: a
   * cached chunk's entries are many small objects holding on to their payloads, and those
   * that outlive two young-generation collections are promoted into V8's old generation,
   * which then has to be marked and compacted more often. A receiver catching up at
   * 50,000 entries/s with the last 64 chunks of its topic cached (about 35 MB) spent about
   * a sixth more CPU than with this cache, and paused for 13 old-generation collections
   * (202 ms) against 8 (81 ms) (bench/results/replication.md). Readers of recent entries
   * read them within milliseconds of their commit, well inside these bounds.
   */
  #cacheChunk(log: TopicLog, base: number, entries: Entry[], bytes: number): void {
    const previous = log.chunkCache.get(base);
    if (previous) this.#uncacheChunk(previous);
    log.chunkCache.set(base, entries);
    this.#cachedChunks.set(entries, { log, base, bytes });
    this.#cachedEntries += entries.length;
    this.#cachedBytes += bytes;
    if (log.chunkCache.size > CHUNK_CACHE_PER_LOG_MAX) {
      this.#uncacheChunk(log.chunkCache.values().next().value as Entry[]);
    }
    for (const cached of this.#cachedChunks.keys()) {
      if (this.#cachedEntries <= this.#options.chunkCacheEntriesMax && this.#cachedBytes <= this.#options.chunkCacheBytesMax) break;
      if (cached === entries) break;
      this.#uncacheChunk(cached);
    }
  }

  #uncacheChunk(entries: Entry[]): void {
    const at = this.#cachedChunks.get(entries);
    if (!at) return;
    if (at.log.chunkCache.get(at.base) === entries) at.log.chunkCache.delete(at.base);
    this.#cachedChunks.delete(entries);
    this.#cachedEntries -= entries.length;
    this.#cachedBytes -= at.bytes;
  }

  /** What the chunk cache holds now, all logs together, and how often reads found a chunk in it since start. */
  chunkCacheStats(): { chunks: number; entries: number; bytes: number; hits: number; misses: number } {
    return { chunks: this.#cachedChunks.size, entries: this.#cachedEntries, bytes: this.#cachedBytes, hits: this.#cacheHits, misses: this.#cacheMisses };
  }

  /**
   * Reads durable entries from `fromOffset` on, at most `maxEntries` of them. Entries read
   * from disk have their checksums verified; a mismatch throws ChecksumError.
   */
  read(log: TopicLog, fromOffset: number, maxEntries: number): Entry[] {
    const out: Entry[] = [];
    const end = log.durableNextOffset;
    let position = Math.max(fromOffset, log.firstOffset);
    this.#walkChunks(log, () => position, end, (chunk) => {
      const entries = 'cached' in chunk ? chunk.cached : this.#decodeStored(log, chunk.base, chunk.stored);
      // Offsets are dense: a chunk starting past `position` means a gap, where reading stops.
      if ((entries[0]?.offset ?? position) > position) return false;
      for (const entry of entries) {
        if (entry.offset < position) continue;
        if (entry.offset >= end || out.length >= maxEntries) return false;
        out.push(entry);
        position = entry.offset + 1;
      }
      return out.length < maxEntries;
    });
    return out;
  }

  /**
   * Passes over durable entries whose origin region `skip` accepts, from `fromOffset` and
   * over at most `maxEntries` of them; returns the offset reached: that of the first entry
   * not skipped, or where the scan stopped (the durable end, the bound, a gap). Chunks on
   * disk are checked and only their entries' origins read, not decoded nor cached: a
   * replication link passes over the entries of origins it does not carry this way.
   */
  skipOrigins(log: TopicLog, fromOffset: number, maxEntries: number, skip: (origin: string) => boolean): number {
    let position = Math.max(fromOffset, log.firstOffset);
    const end = Math.max(position, Math.min(log.durableNextOffset, position + maxEntries));
    /** Moves `position` over the chunk's skipped entries; false where the scan stops. */
    const pass = (count: number, offsetAt: (i: number) => number, originAt: (i: number) => string): boolean => {
      if (count === 0 || offsetAt(0) > position) return false;
      for (let i = 0; i < count; i++) {
        const offset = offsetAt(i);
        if (offset < position) continue;
        if (offset >= end || !skip(originAt(i))) return false;
        position = offset + 1;
      }
      return true;
    };
    this.#walkChunks(log, () => position, end, (chunk) => {
      if ('cached' in chunk) {
        const entries = chunk.cached;
        return pass(entries.length, (i) => (entries[i] as Entry).offset, (i) => (entries[i] as Entry).originRegion);
      }
      const { offsets, origins } = peekChunkOrigins(chunk.stored, `${log.name} chunk ${chunk.base}`);
      return pass(offsets.length, (i) => offsets[i] as number, (i) => origins[i] as string);
    });
    return position;
  }

  /**
   * Visits the chunks from the one holding `position()` on, below `end`: a cached chunk
   * as its entries, one on disk as its stored bytes, read through one cursor (a catch-up
   * reads thousands of small chunks; positioning a new cursor for each one was most of a
   * read's cost) until a cached chunk comes up again. `visit` moves the position and
   * returns false where the walk stops; it also stops at `end`, and when a stretch on disk
   * moved nothing.
   */
  #walkChunks(log: TopicLog, position: () => number, end: number, visit: (chunk: { cached: Entry[] } | { base: number; stored: Buffer }) => boolean): void {
    while (position() < end) {
      const cached = this.#cachedChunkContaining(log, position());
      if (cached) {
        this.#cacheHits++;
        if (!visit({ cached })) return;
        continue;
      }
      const before = position();
      let first: number | undefined;
      for (const { key } of this.#chunks.getRange({ start: chunkKey(log.id, before), end: topicKeyPrefix(log.id), reverse: true, limit: 1 })) first = chunkKeyOffset(key);
      if (first === undefined) return;
      for (const { key, value } of this.#chunks.getRange({ start: chunkKey(log.id, first), end: chunkKey(log.id, end) })) {
        this.#cacheMisses++;
        if (!visit({ base: chunkKeyOffset(key), stored: value })) return;
        if (position() >= end || this.#cachedChunkContaining(log, position())) break;
      }
      if (position() === before) return;
    }
  }

  #cachedChunkContaining(log: TopicLog, offset: number): Entry[] | undefined {
    for (const [base, entries] of log.chunkCache) {
      const last = entries[entries.length - 1];
      if (base <= offset && last && last.offset >= offset) return entries;
    }
    return undefined;
  }

  /** A stored chunk decoded (checksums verified) and cached. */
  #decodeStored(log: TopicLog, base: number, stored: Buffer): Entry[] {
    const entries = decodeChunk(stored, `${log.name} chunk ${base}`);
    for (const entry of entries) {
      if (entry.offset < base) throw new InvariantViolation(`${log.name}: entry ${entry.offset} stored under chunk ${base}`);
    }
    this.#cacheChunk(log, base, entries, stored.length);
    return entries;
  }

  /** The first durable offset whose publish time is at or after `timeMs` (binary search). */
  findOffsetByPublishTime(log: TopicLog, timeMs: number): number {
    let low = log.firstOffset;
    let high = log.durableNextOffset;
    while (low < high) {
      const mid = Math.floor((low + high) / 2);
      const [entry] = this.read(log, mid, 1);
      if (!entry) break;
      if (entry.publishTimeMs < timeMs) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /**
   * Cluster mode: replaces a topic's local copy with `chunks` — every chunk of its ledgers,
   * in order — and the subscription cursors saved in the cluster. A new owner does this
   * before it serves the topic, so the local LMDB is only ever a cache of the ledgers.
   * Producer and origin marks are rebuilt from the entries (they were derived from them
   * when first written), and the clock moves past every restored HLC, so that the next
   * local write still orders after them.
   */
  async restoreLog(id: number, name: string, chunks: AsyncIterable<Buffer> | Iterable<Buffer>, cursors: Array<{ subscription: string; value: unknown }>): Promise<TopicLog> {
    this.#assertOpen();
    const stale = this.logs.get(id);
    if (stale) this.forgetLog(stale, 'restored from its ledgers');
    for (const key of [...this.#dirtyCursors.keys()]) {
      if (key.startsWith(`cursor\u0000${id}\u0000`) || key.startsWith(`replCursor\u0000${id}\u0000`)) this.#dirtyCursors.delete(key);
    }
    await this.#chunks.transaction(() => this.#removeLogData(id));
    const producers = new Map<string, StagedProducerMark>();
    const origins = new Map<string, OriginMark>();
    let next = -1;
    let maxHlc = 0n;
    let batch: Array<{ base: number; bytes: Buffer }> = [];
    const write = async (): Promise<void> => {
      const pending = batch;
      batch = [];
      await this.#chunks.transaction(() => {
        for (const { base, bytes } of pending) this.#chunks.putSync(chunkKey(id, base), bytes);
      });
    };
    for await (const bytes of chunks) {
      const base = next;
      const entries = decodeChunk(bytes, `${name} restored chunk`);
      const first = entries[0];
      if (!first) continue;
      if (base >= 0 && first.offset !== base) throw new InvariantViolation(`${name}: restored chunk starts at ${first.offset}, expected ${base}`);
      for (const entry of entries) {
        if (next >= 0 && entry.offset !== next) throw new InvariantViolation(`${name}: restored entry ${entry.offset}, expected ${next}`);
        next = entry.offset + 1;
        if (entry.hlc > maxHlc) maxHlc = entry.hlc;
        if (entry.producerName) {
          let mark = producers.get(entry.producerName);
          if (!mark) producers.set(entry.producerName, (mark = new StagedProducerMark()));
          mark.add(entry.sequenceId, entry.offset, entry.originRegion === this.region);
        }
        if (entry.originRegion !== this.region) origins.set(entry.originRegion, { position: entry.originPosition, hlc: entry.hlc.toString() });
      }
      batch.push({ base: first.offset, bytes: Buffer.from(bytes) });
      if (batch.length >= 256) await write();
    }
    await write();
    if (maxHlc > 0n) this.clock.advanceTo(maxHlc);
    await this.metaWrite((txn) => {
      for (const [producer, mark] of producers) txn.put(['producer', id, producer], storeProducerMark(mark.written()));
      for (const [origin, mark] of origins) txn.put(['origin', id, origin], mark);
      for (const { subscription, value } of cursors) txn.put(['cursor', id, subscription], value);
      txn.put(['hlc'], this.clock.last.toString());
    });
    return this.openLog(id, name);
  }

  /**
   * Cluster mode: the broker no longer owns the topic. Its log stops taking writes (they
   * fail as moved, so clients look the owner up again) and leaves memory; the local data
   * stays until a later `restoreLog` replaces it.
   */
  forgetLog(log: TopicLog, reason: string): void {
    log.sinkFailure ??= new AdmqError(ErrorCode.TopicMoved, `topic ${log.name} is no longer served here (${reason}); look up its owner`);
    if (this.logs.get(log.id) === log) this.logs.delete(log.id);
    this.#uncacheLog(log);
  }

  #uncacheLog(log: TopicLog): void {
    for (const entries of log.chunkCache.values()) this.#uncacheChunk(entries);
  }

  /** Cluster mode: called with every cursor saved, so the cluster layer can keep it in the metadata store. */
  onCursorSaved: ((topicId: number, subscription: string, value: unknown) => void) | undefined;

  // ------------------------------------------------------------------ cursors

  /** Queues a cursor write for the next commit (acks are persisted lazily, at most cursorFlushIntervalMs late). */
  saveCursor(topicId: number, subscription: string, value: unknown): void {
    const key: MetaKey = ['cursor', topicId, subscription];
    this.#dirtyCursors.set(key.join('\u0000'), { key, value });
    this.onCursorSaved?.(topicId, subscription, value);
    if (!this.#cursorTimer && !this.#closed) {
      this.#cursorTimer = setTimeout(() => {
        this.#cursorTimer = undefined;
        this.#kick();
      }, this.#options.cursorFlushIntervalMs);
      this.#cursorTimer.unref();
    }
  }

  /** Queues a replication sender cursor (local offset acknowledged by `remote`) for the next commit. */
  saveReplicationCursor(topicId: number, remote: string, offset: number): void {
    const key: MetaKey = ['replCursor', topicId, remote];
    this.#dirtyCursors.set(key.join('\u0000'), { key, value: offset });
    this.saveCursorSoon();
  }

  loadReplicationCursor(topicId: number, remote: string): number {
    const pending = this.#dirtyCursors.get(['replCursor', topicId, remote].join('\u0000'));
    if (pending) return pending.value as number;
    return this.metaGet<number>(['replCursor', topicId, remote]) ?? 0;
  }

  private saveCursorSoon(): void {
    if (!this.#cursorTimer && !this.#closed) {
      this.#cursorTimer = setTimeout(() => {
        this.#cursorTimer = undefined;
        this.#kick();
      }, this.#options.cursorFlushIntervalMs);
      this.#cursorTimer.unref();
    }
  }

  deleteCursor(topicId: number, subscription: string): void {
    this.saveCursor(topicId, subscription, undefined);
  }

  loadCursors<T>(topicId: number): Array<{ subscription: string; value: T }> {
    return this.metaRange<T>(['cursor', topicId]).map(({ key, value }) => ({ subscription: String(key[2]), value }));
  }

  /** Removes a topic's entries, marks and cursors. */
  async deleteLog(log: TopicLog): Promise<void> {
    log.deleted = true;
    this.logs.delete(log.id);
    this.#uncacheLog(log);
    for (const key of [...this.#dirtyCursors.keys()]) {
      if (key.startsWith(`cursor\u0000${log.id}\u0000`)) this.#dirtyCursors.delete(key);
    }
    await this.#chunks.transaction(() => this.#removeLogData(log.id));
    await this.#env.flushed;
  }

  /** Inside a write transaction: every chunk, mark and cursor of a topic log. */
  #removeLogData(id: number): void {
    for (const key of this.#chunks.getKeys({ start: chunkKey(id, 0), end: chunkKey(id + 1, 0) })) {
      this.#chunks.removeSync(key);
    }
    for (const { key } of this.metaRange(['producer', id])) this.#meta.removeSync(key);
    for (const { key } of this.metaRange(['cursor', id])) this.#meta.removeSync(key);
    for (const { key } of this.metaRange(['replCursor', id])) this.#meta.removeSync(key);
    for (const { key } of this.metaRange(['origin', id])) this.#meta.removeSync(key);
    this.#meta.removeSync(['logStart', id]);
  }

  #assertOpen(): void {
    if (this.#closed) throw new AdmqError(ErrorCode.ShuttingDown, 'the store is closed');
  }

  /** Waits for queued appends and cursor writes, then closes the environment. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#cursorTimer) clearTimeout(this.#cursorTimer);
    this.#cursorTimer = undefined;
    // Drain: let every queued append and cursor reach disk before closing.
    for (let i = 0; i < 1000 && !this.#writeFailure && (this.#committing || this.#queue.length > 0 || this.#dirtyCursors.size > 0); i++) {
      this.#kick();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // Bounded: after a failed commit LMDB's writer may never report its last flush.
    await withTimeout(this.#flushChain, 5_000);
    await withTimeout(this.#hlcChain, 5_000);
    this.#closed = true;
    await withTimeout(this.#env.close(), 5_000);
  }
}

function toSinkError(log: TopicLog, error: unknown): AdmqError {
  if (error instanceof AdmqError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new AdmqError(ErrorCode.TopicMoved, `topic ${log.name} lost its ledger (${message}); reconnect to its owner`);
}

function withTimeout(promise: Promise<unknown>, ms: number): Promise<unknown> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}

