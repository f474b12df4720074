// The catalog: where a region keeps its tenants, namespaces and topic records. The
// MetadataManager (metadata.ts) reads it synchronously on every request path and writes it
// on admin operations, so both backends answer reads from memory and only writes wait:
//
// - LocalCatalog: the node's own LMDB metadata table (a standalone node; the layout every
//   existing data directory has).
// - ClusterCatalog (issue 8): the region's shared metadata store (etcd), mirrored into
//   memory by a watch, so that every broker of a regional cluster sees one catalog.
import { ErrorCode } from '../../proto/index.ts';
import { MetadataStoreError, type MetadataStore, type WatchEvent } from '../metadata-store/index.ts';
import { AdmqError, StorageError, assert } from '../errors.ts';
import type { LogStore } from '../storage/log-store.ts';

/** A catalog key: its components, e.g. `['topic', tenant, namespace, topic]`. */
export type CatalogKey = readonly string[];

/**
 * One write of a catalog operation. `ifAbsent` makes a put create-only: it fails with
 * `ADMQ_ERR_ALREADY_EXISTS` when the key exists.
 */
export type CatalogOp = { type: 'put'; key: CatalogKey; value: unknown; ifAbsent?: boolean } | { type: 'remove'; key: CatalogKey };

export type CatalogChange = { type: 'put'; key: CatalogKey; value: unknown } | { type: 'remove'; key: CatalogKey };

export interface Catalog {
  get<T>(key: CatalogKey): T | undefined;
  /** Entries whose key starts with `prefix` and is longer than it, in key order. */
  range<T>(prefix: CatalogKey): Array<{ key: CatalogKey; value: T }>;
  /**
   * Applies `ops`. When it resolves, this catalog's own reads show the write. If a create-only
   * put finds its key present, it throws `ADMQ_ERR_ALREADY_EXISTS` and leaves no part of the
   * write behind. LocalCatalog writes everything in one transaction; ClusterCatalog has no
   * multi-key transaction, see `ClusterCatalog.write` for the order it keeps.
   */
  write(ops: readonly CatalogOp[]): Promise<void>;
  /** `count` topic ids never handed out before, for logs of new topics and partitions. */
  allocateTopicIds(count: number): Promise<number[]>;
  /** Called after each change this catalog applies (ClusterCatalog: other brokers' changes too). Returns an unsubscribe function. */
  onChange(listener: (change: CatalogChange) => void): () => void;
  close(): Promise<void>;
}

function alreadyExists(key: CatalogKey, detail = 'already exists'): AdmqError {
  return new AdmqError(ErrorCode.AlreadyExists, `catalog record ${key.join('/')} ${detail}`);
}

/** Calls each listener; a throwing listener is its own bug and must not leave the caller half done, so its error surfaces on its own. */
function notify(listeners: ReadonlySet<(change: CatalogChange) => void>, change: CatalogChange): void {
  for (const listener of listeners) {
    try {
      listener(change);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

// ------------------------------------------------------------------ LocalCatalog

/**
 * The catalog in the node's LMDB metadata table, under the keys a standalone node has always
 * used (`['tenant', t]`, `['namespace', t, n]`, `['topic', t, n, topic]`, counter
 * `['counter', 'topicId']`), so existing data directories keep working.
 */
export class LocalCatalog implements Catalog {
  readonly #listeners = new Set<(change: CatalogChange) => void>();

  constructor(private readonly store: LogStore) {}

  get<T>(key: CatalogKey): T | undefined {
    return this.store.metaGet<T>([...key]);
  }

  range<T>(prefix: CatalogKey): Array<{ key: CatalogKey; value: T }> {
    return this.store.metaRange<T>([...prefix]).map((e) => ({ key: e.key.map(String), value: e.value }));
  }

  async write(ops: readonly CatalogOp[]): Promise<void> {
    let conflict: CatalogKey | undefined;
    await this.store.metaWrite((txn) => {
      // Checked inside the write transaction, so two concurrent creates of one key cannot
      // both pass. Throwing here would come back as a storage error, so a conflict writes
      // nothing and is reported after the transaction.
      conflict = ops.find((op) => op.type === 'put' && op.ifAbsent === true && this.store.metaGet([...op.key]) !== undefined)?.key;
      if (conflict) return;
      for (const op of ops) {
        if (op.type === 'put') txn.put([...op.key], op.value);
        else txn.remove([...op.key]);
      }
    });
    if (conflict) throw alreadyExists(conflict);
    for (const op of ops) notify(this.#listeners, op.type === 'put' ? { type: 'put', key: op.key, value: op.value } : { type: 'remove', key: op.key });
  }

  /**
   * Ids come from the durable counter in a transaction of their own, before the records that
   * use them: an id lost to a crash or a failed create is a gap, never a duplicate.
   */
  async allocateTopicIds(count: number): Promise<number[]> {
    const ids: number[] = [];
    if (count <= 0) return ids;
    await this.store.metaWrite(() => {
      for (let i = 0; i < count; i++) ids.push(this.store.nextTopicId());
    });
    return ids;
  }

  onChange(listener: (change: CatalogChange) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }
}

// ------------------------------------------------------------------ ClusterCatalog

/** Everything under this prefix is mirrored into every broker's memory. */
export const CATALOG_PREFIX = '/admq/catalog/';
/** The topic id counter: outside the mirrored prefix, since no reader needs it and each allocation would otherwise wake every broker. */
export const TOPIC_ID_COUNTER_KEY = '/admq/catalog-counters/topic-id';
/** Claims of multi-record creates in progress, attached to a lease; outside the mirror. */
const CLAIM_PREFIX = '/admq/catalog-claims/';
/** A key under the mirrored prefix that no record uses, written to learn how far the mirror has caught up (see `#barrier`). */
const SYNC_KEY = `${CATALOG_PREFIX}~sync`;

const SYNC_TIMEOUT_MS_DEFAULT = 5_000;
const CLAIM_TTL_MS_DEFAULT = 10_000;
/** Compare-and-set rounds one topic id allocation may lose to other brokers before it gives up. */
const ID_ALLOCATION_ATTEMPTS_MAX = 64;
/** Upper bound of the jittered pause after a lost round, so that brokers stop colliding. */
const ID_ALLOCATION_BACKOFF_MS_MAX = 50;
const IDS_PER_ALLOCATION_MAX = 1_000_000;

export interface ClusterCatalogOptions {
  /** How long a write waits for this broker's mirror to show it, in ms. Default 5000. */
  syncTimeoutMs?: number;
  /** TTL of the lease behind a multi-record create's claim, in ms: how long a crashed creator blocks that name. Default 10000. */
  claimTtlMs?: number;
  /** Randomness for the allocation backoff's jitter; injectable for repeatable tests. Default Math.random. */
  random?: () => number;
}

interface MirroredRecord {
  key: CatalogKey;
  /** The stored JSON; parsed on every read, so callers get their own copy as from LMDB. */
  json: string;
  version: number;
}

interface VersionWaiter {
  version: number;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export function catalogPath(key: CatalogKey): string {
  assert(key.length > 0, 'a catalog key has at least one component');
  return CATALOG_PREFIX + key.map(encodeURIComponent).join('/');
}

/** The key of a mirrored path, or undefined for a path that is not a record (the sync key, foreign writes). */
export function catalogKeyOf(path: string): CatalogKey | undefined {
  if (!path.startsWith(CATALOG_PREFIX) || path === SYNC_KEY) return undefined;
  try {
    const key = path.slice(CATALOG_PREFIX.length).split('/').map(decodeURIComponent);
    return key.every((c) => c.length > 0) ? key : undefined;
  } catch {
    return undefined;
  }
}

function compareKeys(a: CatalogKey, b: CatalogKey): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] as string;
    const y = b[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** The metadata store's own errors become typed catalog errors; everything else (typed errors, broken invariants) passes unchanged. */
function metadataUnavailable(error: unknown, what: string): unknown {
  if (!(error instanceof MetadataStoreError)) return error;
  return new StorageError(ErrorCode.Storage, `catalog ${what} failed: ${error.code}: ${error.message}`, { cause: error });
}

/**
 * The catalog of a regional cluster, in the shared metadata store under `/admq/catalog/`
 * (`tenant/<t>`, `namespace/<t>/<n>`, `topic/<t>/<n>/<topic>`, components URI-encoded,
 * values JSON), mirrored into memory so that reads stay synchronous.
 *
 * The mirror is always a prefix of the store's history: it applies watch events in revision
 * order and never applies a write of its own ahead of them. Read-your-writes therefore waits:
 * a write resolves once the watch has delivered its revision (bounded by `syncTimeoutMs`).
 * Applying the write locally at once would be faster, but the mirror could then show a later
 * write without an earlier one (say another broker's delete of the same tenant).
 */
export class ClusterCatalog implements Catalog {
  readonly #store: MetadataStore;
  readonly #syncTimeoutMs: number;
  readonly #claimTtlMs: number;
  readonly #random: () => number;
  readonly #mirror = new Map<string, MirroredRecord>();
  readonly #listeners = new Set<(change: CatalogChange) => void>();
  #waiters: VersionWaiter[] = [];
  /** Events that arrive while the initial listing is in flight; applied after it. */
  #buffered: WatchEvent[] | undefined = [];
  /** Highest revision the mirror has applied: every event up to it has been delivered. */
  #appliedVersion = 0;
  #stopWatch: (() => Promise<void>) | undefined;
  #closed = false;
  /** Topic id allocations of this broker run one at a time, so that they contend only with other brokers. */
  #allocations: Promise<unknown> = Promise.resolve();
  /** The counter as last seen, to skip a read before the next compare-and-set. */
  #counter: { value: number; version: number } | undefined;
  /** Entries under the prefix that are not catalog records (foreign writes): skipped, counted. */
  ignoredEntries = 0;

  private constructor(store: MetadataStore, options: ClusterCatalogOptions) {
    for (const field of ['syncTimeoutMs', 'claimTtlMs'] as const) {
      const value = options[field];
      if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
        throw new AdmqError(ErrorCode.Config, `ClusterCatalog ${field} must be a positive integer (ms); got ${String(value)}`);
      }
    }
    this.#store = store;
    this.#syncTimeoutMs = options.syncTimeoutMs ?? SYNC_TIMEOUT_MS_DEFAULT;
    this.#claimTtlMs = options.claimTtlMs ?? CLAIM_TTL_MS_DEFAULT;
    this.#random = options.random ?? Math.random;
  }

  /**
   * Mirrors the catalog and resolves once the mirror is complete and the watch active.
   *
   * The watch starts before the listing, so no change falls between them; events it
   * delivers meanwhile are applied after the listing, each only if newer than what the
   * listing holds of its key. That alone is not enough: an event older than the listing for
   * a key the listing no longer has (put, then deleted before the listing) would bring the key
   * back until its delete event arrives. So `open` then writes the sync key and waits for its
   * event: by then every event older than the listing has been applied, and everything later
   * is newer than it.
   */
  static async open(metadata: MetadataStore, options: ClusterCatalogOptions = {}): Promise<ClusterCatalog> {
    const catalog = new ClusterCatalog(metadata, options);
    try {
      catalog.#stopWatch = await metadata.watch(CATALOG_PREFIX, (event) => catalog.#onEvent(event));
      const listed = await metadata.list(CATALOG_PREFIX);
      for (const entry of listed) {
        catalog.#apply(entry.key, { type: 'put', key: entry.key, value: entry.value, version: entry.version }, false);
      }
      const buffered = catalog.#buffered ?? [];
      catalog.#buffered = undefined;
      for (const event of buffered) catalog.#apply(event.key, event, false);
      await catalog.#barrier();
    } catch (error) {
      await catalog.close();
      throw metadataUnavailable(error, 'open');
    }
    return catalog;
  }

  // ---------------------------------------------------------------- reads

  get<T>(key: CatalogKey): T | undefined {
    const record = this.#mirror.get(catalogPath(key));
    return record && (JSON.parse(record.json) as T);
  }

  /** A scan of the whole mirror: the catalog is small next to memory, and range is not on the message path. */
  range<T>(prefix: CatalogKey): Array<{ key: CatalogKey; value: T }> {
    const out: MirroredRecord[] = [];
    for (const record of this.#mirror.values()) {
      if (record.key.length > prefix.length && prefix.every((c, i) => record.key[i] === c)) out.push(record);
    }
    return out.sort((a, b) => compareKeys(a.key, b.key)).map((r) => ({ key: r.key, value: JSON.parse(r.json) as T }));
  }

  /** The store revision this broker's mirror has caught up to. */
  get appliedVersion(): number {
    return this.#appliedVersion;
  }

  onChange(listener: (change: CatalogChange) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /**
   * Resolves once this broker's mirror shows every change stored in the metadata store
   * before the call (one write of the sync key); for a read that must see another
   * broker's write that has completed.
   */
  async sync(): Promise<void> {
    if (this.#closed) throw new AdmqError(ErrorCode.ShuttingDown, 'the catalog is closed');
    try {
      await this.#barrier();
    } catch (error) {
      throw metadataUnavailable(error, 'sync');
    }
  }

  // ---------------------------------------------------------------- mirror

  #onEvent(event: WatchEvent): void {
    if (this.#closed) return;
    if (this.#buffered) {
      this.#buffered.push(event);
      return;
    }
    this.#apply(event.key, event, true);
  }

  /** Applies one change if it is newer than the mirror's copy of its key, then wakes the writers waiting for its revision. */
  #apply(path: string, event: WatchEvent, announce: boolean): void {
    const key = catalogKeyOf(path);
    if (key) {
      const current = this.#mirror.get(path);
      if (event.version > (current?.version ?? 0)) {
        if (event.type === 'put') {
          const json = event.value.toString();
          let value: unknown;
          try {
            value = JSON.parse(json);
          } catch {
            this.ignoredEntries++;
            value = undefined;
          }
          if (value !== undefined) {
            this.#mirror.set(path, { key, json, version: event.version });
            if (announce) notify(this.#listeners, { type: 'put', key, value });
          }
        } else if (current) {
          this.#mirror.delete(path);
          if (announce) notify(this.#listeners, { type: 'remove', key });
        }
      }
    } else if (path !== SYNC_KEY) {
      this.ignoredEntries++;
    }
    if (event.version > this.#appliedVersion) this.#appliedVersion = event.version;
    if (this.#waiters.length > 0) {
      const ready = this.#waiters.filter((w) => w.version <= this.#appliedVersion);
      this.#waiters = this.#waiters.filter((w) => w.version > this.#appliedVersion);
      for (const w of ready) {
        clearTimeout(w.timer);
        w.resolve();
      }
    }
  }

  /**
   * Resolves once the mirror has applied revision `version`; bounded by syncTimeoutMs. Only
   * for revisions of writes under the mirrored prefix: no event carries any other.
   */
  #waitForVersion(version: number): Promise<void> {
    if (version <= this.#appliedVersion) return Promise.resolve();
    if (this.#closed) return Promise.reject(new AdmqError(ErrorCode.ShuttingDown, 'the catalog is closed'));
    return new Promise<void>((resolve, reject) => {
      const waiter: VersionWaiter = {
        version,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(
            new AdmqError(
              ErrorCode.Timeout,
              `the catalog write at revision ${version} is stored, but this broker's mirror has not seen it after ${this.#syncTimeoutMs} ms (it is at ${this.#appliedVersion}); is the metadata store's watch stalled?`,
            ),
          );
        }, this.#syncTimeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /** Makes the mirror show every change stored before now: writes the sync key and waits for its event. */
  async #barrier(): Promise<void> {
    const result = await this.#store.put(SYNC_KEY, Buffer.from('{}'));
    assert(result.ok, 'an unconditional put succeeds');
    await this.#waitForVersion(result.version);
  }

  // ---------------------------------------------------------------- writes

  /**
   * Applies `ops` in the metadata store; resolves once this broker's mirror shows them.
   *
   * - One put: a create-only put (`ifAbsent`) is a compare-and-set on "absent", so of two
   *   brokers creating one record exactly one succeeds; the other gets ADMQ_ERR_ALREADY_EXISTS
   *   after its mirror shows the winner's record.
   * - Removes: each record is deleted at the version this broker saw, so a record deleted and
   *   created again elsewhere meanwhile survives (the one meant is gone either way).
   * - Several create-only puts (a partitioned topic: its partitions, then its parent): the
   *   last one is the commit record; see `#createGroup`.
   */
  async write(ops: readonly CatalogOp[]): Promise<void> {
    if (this.#closed) throw new AdmqError(ErrorCode.ShuttingDown, 'the catalog is closed');
    if (ops.length === 0) return;
    try {
      const puts = ops.filter((op) => op.type === 'put');
      if (puts.length > 1) {
        assert(puts.length === ops.length && puts.every((op) => op.ifAbsent === true), 'a multi-record catalog write is a group of create-only puts');
        await this.#createGroup(puts);
        return;
      }
      for (const op of ops) {
        if (op.type === 'put') await this.#putOne(op);
        else {
          const current = this.#mirror.get(catalogPath(op.key));
          if (current) await this.#store.delete(catalogPath(op.key), { expectedVersion: current.version });
        }
      }
      // A delete does not say its revision, so removes wait for the sync key's.
      if (ops.some((op) => op.type === 'remove')) await this.#barrier();
    } catch (error) {
      throw metadataUnavailable(error, 'write');
    }
  }

  async #putOne(op: CatalogOp & { type: 'put' }): Promise<void> {
    const path = catalogPath(op.key);
    const value = Buffer.from(JSON.stringify(op.value));
    const result = await this.#store.put(path, value, op.ifAbsent === true ? { expectedVersion: 0 } : {});
    if (!result.ok) {
      // Let this broker's reads show the record that won before saying it exists.
      if (result.current) await this.#waitForVersion(result.current.version).catch(() => {});
      throw alreadyExists(op.key);
    }
    await this.#waitForVersion(result.version);
  }

  /**
   * Creates several records where a reader must never see the last (the commit record,
   * e.g. a partitioned topic's parent) without the others (its partitions). The store has
   * no multi-key transaction, so:
   *
   * 1. A claim on the commit record's name, attached to a short lease, makes this broker the
   *    only creator of the group; a concurrent creator gets ADMQ_ERR_ALREADY_EXISTS. The lease
   *    lets a crashed creator's claim expire instead of blocking the name.
   * 2. The dependent records are written create-only. One that exists is an orphan of a
   *    creator that crashed before its commit record (nobody else may write it while we hold
   *    the claim and the commit record is absent), and is replaced at its version.
   * 3. The commit record is written last, create-only: a visible parent implies its
   *    partitions. If that fails, the dependents written here are deleted again.
   * 4. Revoking the lease deletes the claim.
   */
  async #createGroup(ops: ReadonlyArray<CatalogOp & { type: 'put' }>): Promise<void> {
    const commit = ops[ops.length - 1] as CatalogOp & { type: 'put' };
    const commitPath = catalogPath(commit.key);
    if (this.#mirror.has(commitPath)) throw alreadyExists(commit.key);
    const lease = await this.#store.grantLease(this.#claimTtlMs);
    let leaseLost: string | undefined;
    lease.onLost((reason) => (leaseLost = reason));
    const written: Array<{ path: string; version: number }> = [];
    let committed = false;
    try {
      const claimPath = CLAIM_PREFIX + commitPath.slice(CATALOG_PREFIX.length);
      const claim = await this.#store.put(claimPath, Buffer.from(JSON.stringify({ ttlMs: this.#claimTtlMs })), { expectedVersion: 0, lease });
      if (!claim.ok) throw alreadyExists(commit.key, 'is being created by another broker');
      // A creator that held the claim before us wrote its commit record before releasing the
      // claim, so a mirror caught up past our claim's revision shows that record if it exists.
      // The claim is outside the mirrored prefix (no watch event carries its revision), so the
      // sync key is written after it.
      await this.#barrier();
      if (this.#mirror.has(commitPath)) throw alreadyExists(commit.key);
      for (const op of ops.slice(0, -1)) {
        const path = catalogPath(op.key);
        const value = Buffer.from(JSON.stringify(op.value));
        let result = await this.#store.put(path, value, { expectedVersion: 0 });
        if (!result.ok) result = await this.#store.put(path, value, { expectedVersion: result.current?.version ?? 0 });
        if (!result.ok) throw alreadyExists(op.key, 'changed while this broker held the claim to create it');
        written.push({ path, version: result.version });
      }
      // A lost lease means another broker may hold the claim now; the partitions written so
      // far are then its to replace, not ours to commit.
      if (leaseLost !== undefined) throw new AdmqError(ErrorCode.Storage, `the claim to create ${commit.key.join('/')} was lost: ${leaseLost}`);
      const result = await this.#store.put(commitPath, Buffer.from(JSON.stringify(commit.value)), { expectedVersion: 0 });
      if (!result.ok) throw alreadyExists(commit.key);
      committed = true;
      await this.#waitForVersion(result.version);
    } catch (error) {
      if (!committed) {
        // Best effort: a dependent left behind is an orphan the next creator replaces.
        for (const w of written.reverse()) await this.#store.delete(w.path, { expectedVersion: w.version }).catch(() => false);
      }
      throw error;
    } finally {
      // If revoking fails, the claim expires with the lease's TTL.
      await lease.revoke().catch(() => {});
    }
  }

  /**
   * Topic ids from the counter at TOPIC_ID_COUNTER_KEY, advanced by compare-and-set by
   * `count` at once (a partitioned topic takes all its ids in one round). Rounds lost to other
   * brokers retry from the value the failed compare-and-set returned, after a jittered pause,
   * at most ID_ALLOCATION_ATTEMPTS_MAX times.
   */
  allocateTopicIds(count: number): Promise<number[]> {
    if (!Number.isInteger(count) || count < 0 || count > IDS_PER_ALLOCATION_MAX) {
      return Promise.reject(new AdmqError(ErrorCode.BadRequest, `topic id count must be an integer from 0 to ${IDS_PER_ALLOCATION_MAX}; got ${count}`));
    }
    const run = this.#allocations.then(() => this.#allocate(count));
    this.#allocations = run.catch(() => {});
    return run;
  }

  async #allocate(count: number): Promise<number[]> {
    if (count === 0) return [];
    if (this.#closed) throw new AdmqError(ErrorCode.ShuttingDown, 'the catalog is closed');
    try {
      if (!this.#counter) {
        const stored = await this.#store.get(TOPIC_ID_COUNTER_KEY);
        this.#counter = stored ? { value: parseCounter(stored.value), version: stored.version } : { value: 0, version: 0 };
      }
      for (let attempt = 1; attempt <= ID_ALLOCATION_ATTEMPTS_MAX; attempt++) {
        const from = this.#counter.value;
        const next = from + count;
        const result = await this.#store.put(TOPIC_ID_COUNTER_KEY, Buffer.from(String(next)), { expectedVersion: this.#counter.version });
        if (result.ok) {
          this.#counter = { value: next, version: result.version };
          return Array.from({ length: count }, (_, i) => from + 1 + i);
        }
        this.#counter = result.current ? { value: parseCounter(result.current.value), version: result.current.version } : { value: 0, version: 0 };
        const pauseMs = Math.min(ID_ALLOCATION_BACKOFF_MS_MAX, 2 ** attempt) * this.#random();
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    } catch (error) {
      this.#counter = undefined;
      throw metadataUnavailable(error, 'topic id allocation');
    }
    throw new AdmqError(ErrorCode.Timeout, `topic id allocation lost ${ID_ALLOCATION_ATTEMPTS_MAX} compare-and-set rounds to other brokers`);
  }

  /** Stops the watch; pending writes fail with ADMQ_ERR_SHUTTING_DOWN. Reads keep answering from the last mirror. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.reject(new AdmqError(ErrorCode.ShuttingDown, 'the catalog is closed'));
    }
    this.#listeners.clear();
    const stop = this.#stopWatch;
    this.#stopWatch = undefined;
    await stop?.().catch(() => {});
  }
}

function parseCounter(value: Buffer): number {
  const n = Number(value.toString());
  assert(Number.isSafeInteger(n) && n >= 0, `the topic id counter ${TOPIC_ID_COUNTER_KEY} holds a non-negative integer (found ${JSON.stringify(value.toString())})`);
  return n;
}
