// Re-replication (BookKeeper's auditor and replication worker in one): when a storage node
// leaves the registry (its lease expired: it is lost), every closed ledger with that node in
// an ensemble segment has fewer than Qw copies of some entries. For each such segment the
// re-replicator picks a live node outside the segment, copies onto it (`restore`, durable,
// whatever the fence) every entry of the segment whose write set held the lost node, reading
// each from a surviving replica, and only then swaps the node in the segment by
// compare-and-set on the ledger's metadata: a reader never sees a node listed for an entry
// it does not hold yet.
//
// Open ledgers are left alone: their writer replaces failed nodes (ensemble change), or
// recovery closes them, after which the next run sees them closed.
//
// It runs once on start, again on every change of the registry, and every
// `recheckIntervalMs` (a pass that found no replacement node, or lost a race, is retried
// then). Passes never overlap. Several re-replicators may run at once: the compare-and-set
// lets one swap win; the loser's copies are only unreferenced garbage on its target node.
import type { MetadataStore } from '../metadata-store/index.ts';
import { LedgerError } from './ledger-errors.ts';
import { casLedgerMetadata, decodeLedgerMetadata, indexInWriteSet, writeSetOf } from './ledger-metadata.ts';
import { MetadataKeys, type LedgerMetadata } from './ledger-types.ts';
import { realTimers, shuffled, withTimeout, type StorageNodePool, type Timers } from './storage-node-pool.ts';

export interface ReReplicatorOptions {
  metadata: MetadataStore;
  pool: StorageNodePool;
  /** Time a storage node has to answer a read or restore (default 10,000 ms). */
  callTimeoutMs?: number;
  /** Entries copied at once (default 32). */
  copyWindow?: number;
  /** A full pass runs at least this often besides registry changes (default 30,000 ms). */
  recheckIntervalMs?: number;
  /** Compare-and-set attempts per ledger when its metadata changes meanwhile (default 3). */
  ledgerAttemptsMax?: number;
  random?: () => number;
  timers?: Timers;
  log?: (line: string) => void;
}

/** Counters since start (cumulative), and what the last pass saw. */
export interface ReReplicationProgress {
  passes: number;
  ledgersChecked: number;
  /** Segments in which a lost node was replaced. */
  segmentsReplaced: number;
  entriesCopied: number;
  /** Ledgers left under-replicated by the last pass (no replacement node, no surviving replica, or a lost race). */
  ledgersPending: number;
  /** Records under the ledgers prefix that did not decode (skipped, never touched). */
  ledgersUndecodable: number;
  lastError: string | undefined;
}

export class ReReplicator {
  readonly #store: MetadataStore;
  readonly #pool: StorageNodePool;
  readonly #callTimeoutMs: number;
  readonly #copyWindow: number;
  readonly #recheckIntervalMs: number;
  readonly #attemptsMax: number;
  readonly #random: () => number;
  readonly #timers: Timers;
  readonly #log: (line: string) => void;
  readonly #progress: ReReplicationProgress = {
    passes: 0,
    ledgersChecked: 0,
    segmentsReplaced: 0,
    entriesCopied: 0,
    ledgersPending: 0,
    ledgersUndecodable: 0,
    lastError: undefined,
  };
  #running: Promise<ReReplicationProgress> | undefined;
  #again = false;
  #unwatch: (() => Promise<void>) | undefined;
  #timer: unknown;
  #state: 'idle' | 'started' | 'closed' = 'idle';

  constructor(options: ReReplicatorOptions) {
    const int = (field: string, value: number | undefined, fallback: number) => {
      const v = value ?? fallback;
      if (!Number.isSafeInteger(v) || v < 1) throw new LedgerError('ADMQ_ERR_CONFIG', `${field} must be an integer >= 1 (got ${String(value)})`);
      return v;
    };
    this.#store = options.metadata;
    this.#pool = options.pool;
    this.#callTimeoutMs = int('callTimeoutMs', options.callTimeoutMs, 10_000);
    this.#copyWindow = int('copyWindow', options.copyWindow, 32);
    this.#recheckIntervalMs = int('recheckIntervalMs', options.recheckIntervalMs, 30_000);
    this.#attemptsMax = int('ledgerAttemptsMax', options.ledgerAttemptsMax, 3);
    this.#random = options.random ?? Math.random;
    this.#timers = options.timers ?? realTimers;
    this.#log = options.log ?? (() => undefined);
  }

  progress(): ReReplicationProgress {
    return { ...this.#progress };
  }

  /** Watches the registry, runs a first pass, and rechecks periodically. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new LedgerError('ADMQ_ERR_BAD_REQUEST', `the re-replicator is ${this.#state}`);
    this.#state = 'started';
    this.#unwatch = await this.#store.watch(MetadataKeys.storageNodesPrefix, () => this.#trigger());
    this.#trigger();
    this.#schedule();
  }

  /** Stops; waits for a pass in progress. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    await this.#unwatch?.();
    await this.#running?.catch(() => undefined);
  }

  #schedule(): void {
    this.#timer = this.#timers.setTimeout(() => {
      if (this.#state !== 'started') return;
      this.#trigger();
      this.#schedule();
    }, this.#recheckIntervalMs);
  }

  #trigger(): void {
    if (this.#state !== 'started') return;
    void this.runOnce().catch(() => undefined);
  }

  /**
   * One pass over every ledger (or, if a pass is running, one more right after it; the
   * promise then settles when that one has). Resolves with the progress afterwards.
   */
  runOnce(): Promise<ReReplicationProgress> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          try {
            await this.#pass();
            this.#progress.lastError = undefined;
          } catch (error) {
            this.#progress.lastError = (error as Error).message;
            this.#log(`[re-replication] pass failed: ${(error as Error).message}`);
            throw error;
          }
        } while (this.#again && this.#state !== 'closed');
        return this.progress();
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  async #pass(): Promise<void> {
    this.#progress.passes++;
    const registered = new Set((await this.#store.list(MetadataKeys.storageNodesPrefix)).map((v) => v.key.slice(MetadataKeys.storageNodesPrefix.length)));
    let pending = 0;
    for (const record of await this.#store.list(MetadataKeys.ledgersPrefix)) {
      if (this.#state === 'closed') return;
      let metadata: LedgerMetadata;
      try {
        metadata = decodeLedgerMetadata(record.value);
      } catch {
        this.#progress.ledgersUndecodable++;
        continue;
      }
      this.#progress.ledgersChecked++;
      if (metadata.state !== 'closed') continue;
      if (!metadata.ensembles.some((segment) => segment.nodes.some((node) => !registered.has(node)))) continue;
      const healed = await this.#healLedger(metadata, record.version, registered);
      if (!healed) pending++;
    }
    this.#progress.ledgersPending = pending;
  }

  /** Replaces every lost node of one closed ledger, a segment at a time. True when none is left. */
  async #healLedger(metadata: LedgerMetadata, version: number, registered: ReadonlySet<string>): Promise<boolean> {
    const tag = `[re-replication][ledger ${metadata.ledgerId}]`;
    let attempts = 0;
    for (;;) {
      const lost = this.#firstLost(metadata, registered);
      if (!lost) return true;
      const { segmentIndex, nodeIndex } = lost;
      const segment = metadata.ensembles[segmentIndex]!;
      const lostNode = segment.nodes[nodeIndex]!;
      const candidates = shuffled(
        this.#pool.available().filter((node) => registered.has(node) && !segment.nodes.includes(node)),
        this.#random,
      );
      const target = candidates[0];
      if (target === undefined) {
        this.#log(`${tag} no live node can replace lost ${lostNode} in segment ${segmentIndex}`);
        return false;
      }
      const copied = await this.#copySegment(metadata, segmentIndex, nodeIndex, target, tag);
      if (copied === undefined) return false;
      const ensembles = metadata.ensembles.map((s, i) => (i === segmentIndex ? { ...s, nodes: s.nodes.map((n, j) => (j === nodeIndex ? target : n)) } : s));
      const next: LedgerMetadata = { ...metadata, ensembles };
      const result = await casLedgerMetadata(this.#store, next, version);
      if (result.ok) {
        this.#progress.segmentsReplaced++;
        this.#progress.entriesCopied += copied;
        this.#log(`${tag} segment ${segmentIndex}: ${lostNode} replaced by ${target} (${copied} entries copied)`);
        metadata = next;
        version = result.version;
        continue;
      }
      // Changed meanwhile (another re-replicator, or deleted): start over from what is there.
      if (!result.current || ++attempts >= this.#attemptsMax) return !result.current;
      metadata = result.current.metadata;
      version = result.current.version;
    }
  }

  #firstLost(metadata: LedgerMetadata, registered: ReadonlySet<string>): { segmentIndex: number; nodeIndex: number } | undefined {
    for (const [segmentIndex, segment] of metadata.ensembles.entries()) {
      const nodeIndex = segment.nodes.findIndex((node) => !registered.has(node));
      if (nodeIndex >= 0) return { segmentIndex, nodeIndex };
    }
    return undefined;
  }

  /**
   * Copies to `target` every entry of the segment whose write set includes the node at
   * `nodeIndex`. Returns how many, or undefined if some entry has no readable surviving
   * replica (the ledger is left as it is, to be retried).
   */
  async #copySegment(metadata: LedgerMetadata, segmentIndex: number, nodeIndex: number, target: string, tag: string): Promise<number | undefined> {
    const segment = metadata.ensembles[segmentIndex]!;
    const next = metadata.ensembles[segmentIndex + 1];
    const last = Math.min(next ? next.firstEntryId - 1 : Number.MAX_SAFE_INTEGER, metadata.lastEntryId);
    const lostNode = segment.nodes[nodeIndex]!;
    const ids: number[] = [];
    const flush = async (): Promise<boolean> => {
      const results = await Promise.all(ids.map((entryId) => this.#copyEntry(metadata, entryId, lostNode, target)));
      ids.length = 0;
      return results.every(Boolean);
    };
    let copied = 0;
    for (let entryId = segment.firstEntryId; entryId <= last; entryId++) {
      if (!indexInWriteSet(nodeIndex, entryId, metadata.ensembleSize, metadata.writeQuorum)) continue;
      ids.push(entryId);
      copied++;
      if (ids.length >= this.#copyWindow && !(await flush())) return this.#cannotCopy(tag, lostNode);
    }
    if (ids.length > 0 && !(await flush())) return this.#cannotCopy(tag, lostNode);
    return copied;
  }

  #cannotCopy(tag: string, lostNode: string): undefined {
    this.#log(`${tag} some entries of lost ${lostNode} could be read from no surviving replica; left for a later pass`);
    return undefined;
  }

  async #copyEntry(metadata: LedgerMetadata, entryId: number, lostNode: string, target: string): Promise<boolean> {
    const call = <T>(what: string, f: () => Promise<T>) => withTimeout(Promise.resolve().then(f), this.#callTimeoutMs, what, this.#timers);
    for (const source of writeSetOf(metadata, entryId)) {
      if (source === lostNode) continue;
      let payload: Buffer;
      try {
        payload = await call(`read ${metadata.ledgerId}:${entryId} on ${source}`, () => this.#pool.connect(source).read(metadata.ledgerId, entryId));
      } catch {
        // Missing here (a replica the writer never reached) or unreachable: try the next one.
        continue;
      }
      const connection = this.#pool.connect(target);
      if (!connection.restore) throw new LedgerError('ADMQ_ERR_BAD_REQUEST', `storage node ${target} offers no restore: it cannot take re-replicated entries`);
      try {
        await call(`restore ${metadata.ledgerId}:${entryId} on ${target}`, () => connection.restore!(metadata.ledgerId, entryId, payload));
        return true;
      } catch {
        return false;
      }
    }
    return false;
  }
}
