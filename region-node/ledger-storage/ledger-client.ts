// The ledger client of a region (BookKeeper's client protocol, DESIGN §4): creates ledgers
// on an ensemble of storage nodes, writes them with a write and an ack quorum
// (ledger-writer.ts), reads them (ledger-reader.ts), recovers and closes the ledger of a
// writer that is gone (ledger-recovery.ts), and deletes them. Ledger metadata lives in the
// region's metadata store (ledger-metadata.ts); storage nodes are reached through a
// StorageNodePool, in process or over the network alike. See LEDGERS.md.
import type { MetadataStore } from '../metadata-store/index.ts';
import { LedgerError } from './ledger-errors.ts';
import { encodeLedgerMetadata, ENSEMBLE_SIZE_MAX, LEDGER_ID_MAX, readLedgerMetadata, requireLedgerMetadata } from './ledger-metadata.ts';
import { LedgerReader } from './ledger-reader.ts';
import { recoverAndClose } from './ledger-recovery.ts';
import { DEFAULT_QUORUM, MetadataKeys, type LedgerMetadata, type QuorumSettings } from './ledger-types.ts';
import { DEFAULT_WRITER_OPTIONS, LedgerWriter, type LedgerWriterOptions } from './ledger-writer.ts';
import { realTimers, shuffled, type StorageNodePool, type Timers } from './storage-node-pool.ts';

export { LedgerError, type LedgerErrorCode } from './ledger-errors.ts';
export { decodeLedgerMetadata, encodeLedgerMetadata, validateLedgerMetadata, writeSetOf } from './ledger-metadata.ts';
export { LedgerReader } from './ledger-reader.ts';
export { LedgerWriter, type LedgerWriterOptions } from './ledger-writer.ts';
export type { StorageNodePool, Timers } from './storage-node-pool.ts';

export interface LedgerClientOptions {
  metadata: MetadataStore;
  pool: StorageNodePool;
  /** Ensemble size, write quorum and ack quorum of new ledgers (default 3/3/2). */
  quorum?: QuorumSettings;
  /** This client's identity as a writer: storage nodes accept a ledger's adds from its writer only. */
  writerId: string;
  /** Limits of each writer's in-flight window and its timeouts. */
  writer?: Partial<LedgerWriterOptions>;
  /** Time a storage node has to answer a read, fence or restore (default 10,000 ms). */
  callTimeoutMs?: number;
  /** Entries one read() may return, at most (default 10,000). */
  readEntriesMax?: number;
  /** Entries read in parallel by read() and by recovery (default 32). */
  readWindow?: number;
  /** Whole-recovery attempts while other recoveries change the metadata (default 10). */
  recoveryAttemptsMax?: number;
  /** Compare-and-set attempts at the ledger id counter under contention (default 100). */
  idAllocationAttemptsMax?: number;
  /** Injected for repeatable tests; default Math.random, Date.now and real timers. */
  random?: () => number;
  now?: () => number;
  timers?: Timers;
}

function positiveInt(field: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new LedgerError('ADMQ_ERR_CONFIG', `${field} must be an integer in [1, ${max}] (got ${String(value)})`);
  return v;
}

export class LedgerClient {
  readonly #store: MetadataStore;
  readonly #pool: StorageNodePool;
  readonly #quorum: QuorumSettings;
  readonly #writerId: string;
  readonly #writerOptions: LedgerWriterOptions;
  readonly #callTimeoutMs: number;
  readonly #readEntriesMax: number;
  readonly #readWindow: number;
  readonly #recoveryAttemptsMax: number;
  readonly #idAttemptsMax: number;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #timers: Timers;

  constructor(options: LedgerClientOptions) {
    if (!options.metadata) throw new LedgerError('ADMQ_ERR_CONFIG', 'metadata (a MetadataStore) is required');
    if (!options.pool) throw new LedgerError('ADMQ_ERR_CONFIG', 'pool (a StorageNodePool) is required');
    if (typeof options.writerId !== 'string' || options.writerId === '') throw new LedgerError('ADMQ_ERR_CONFIG', 'writerId must be a non-empty string');
    const quorum = options.quorum ?? DEFAULT_QUORUM;
    const ensembleSize = positiveInt('quorum.ensembleSize', quorum.ensembleSize, 3, ENSEMBLE_SIZE_MAX);
    const writeQuorum = positiveInt('quorum.writeQuorum', quorum.writeQuorum, 3, ensembleSize);
    const ackQuorum = positiveInt('quorum.ackQuorum', quorum.ackQuorum, 2, writeQuorum);
    this.#quorum = { ensembleSize, writeQuorum, ackQuorum };
    const w = { ...DEFAULT_WRITER_OPTIONS, ...options.writer };
    this.#writerOptions = {
      inFlightEntriesMax: positiveInt('writer.inFlightEntriesMax', w.inFlightEntriesMax, 1000),
      inFlightBytesMax: positiveInt('writer.inFlightBytesMax', w.inFlightBytesMax, 64 * 1024 * 1024),
      waitingAddsMax: positiveInt('writer.waitingAddsMax', w.waitingAddsMax, 10_000),
      addTimeoutMs: positiveInt('writer.addTimeoutMs', w.addTimeoutMs, 10_000),
      metadataAttemptsMax: positiveInt('writer.metadataAttemptsMax', w.metadataAttemptsMax, 5),
    };
    this.#callTimeoutMs = positiveInt('callTimeoutMs', options.callTimeoutMs, 10_000);
    this.#readEntriesMax = positiveInt('readEntriesMax', options.readEntriesMax, 10_000);
    this.#readWindow = positiveInt('readWindow', options.readWindow, 32, 1024);
    this.#recoveryAttemptsMax = positiveInt('recoveryAttemptsMax', options.recoveryAttemptsMax, 10);
    this.#idAttemptsMax = positiveInt('idAllocationAttemptsMax', options.idAllocationAttemptsMax, 100);
    this.#store = options.metadata;
    this.#pool = options.pool;
    this.#writerId = options.writerId;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? realTimers;
  }

  /**
   * A new open ledger on E live storage nodes chosen at random (which spreads ledgers over
   * the nodes), and its writer.
   */
  async createLedger(properties: Record<string, string> = {}): Promise<LedgerWriter> {
    const live = [...new Set(this.#pool.available())];
    const { ensembleSize, writeQuorum, ackQuorum } = this.#quorum;
    if (live.length < ensembleSize) {
      throw new LedgerError('ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES', `a ledger needs ${ensembleSize} storage nodes; ${live.length} are live`);
    }
    const nodes = shuffled(live, this.#random).slice(0, ensembleSize);
    for (let attempt = 1; attempt <= this.#idAttemptsMax; attempt++) {
      const ledgerId = await this.#allocateLedgerId();
      const metadata: LedgerMetadata = {
        ledgerId,
        ensembleSize,
        writeQuorum,
        ackQuorum,
        state: 'open',
        lastEntryId: -1,
        ensembles: [{ firstEntryId: 0, nodes }],
        writer: this.#writerId,
        createdAtMs: this.#now(),
        properties: { ...properties },
      };
      // Create-only: an id is never reused, even if the counter were ever set back.
      const created = await this.#store.put(MetadataKeys.ledger(ledgerId), encodeLedgerMetadata(metadata), { expectedVersion: 0 });
      if (created.ok) return new LedgerWriter(this.#writerDeps(), metadata, created.version);
    }
    throw new LedgerError('ADMQ_ERR_METADATA_CONFLICT', `no free ledger id after ${this.#idAttemptsMax} attempts`);
  }

  /** The next ledger id, by compare-and-set on the region's counter. */
  async #allocateLedgerId(): Promise<number> {
    for (let attempt = 1; attempt <= this.#idAttemptsMax; attempt++) {
      const current = await this.#store.get(MetadataKeys.ledgerIdCounter);
      const last = current ? Number(current.value.toString()) : -1;
      if (!Number.isSafeInteger(last) || last < -1) throw new LedgerError('ADMQ_ERR_LEDGER_METADATA', `the ledger id counter holds ${JSON.stringify(current?.value.toString())}`);
      const next = last + 1;
      if (next > LEDGER_ID_MAX) throw new LedgerError('ADMQ_ERR_METADATA_CONFLICT', `ledger ids are exhausted (${LEDGER_ID_MAX})`);
      const put = await this.#store.put(MetadataKeys.ledgerIdCounter, Buffer.from(String(next)), { expectedVersion: current?.version ?? 0 });
      if (put.ok) return next;
    }
    throw new LedgerError('ADMQ_ERR_METADATA_CONFLICT', `the ledger id counter kept changing for ${this.#idAttemptsMax} attempts`);
  }

  /** A reader of the ledger (closed, or open: then up to its last-add-confirmed). */
  async openReader(ledgerId: number): Promise<LedgerReader> {
    const { metadata } = await requireLedgerMetadata(this.#store, ledgerId);
    return new LedgerReader(
      { store: this.#store, pool: this.#pool, timers: this.#timers, callTimeoutMs: this.#callTimeoutMs, readEntriesMax: this.#readEntriesMax, readWindow: this.#readWindow },
      metadata,
    );
  }

  /**
   * Fences the ledger against its writer, finds and secures its end, and closes it
   * (ledger-recovery.ts). Returns the closed metadata; idempotent; concurrent recoveries
   * all return the one close that won.
   */
  recoverAndClose(ledgerId: number, recoveryWriterId: string = this.#writerId): Promise<LedgerMetadata> {
    return recoverAndClose(
      { store: this.#store, pool: this.#pool, timers: this.#timers, callTimeoutMs: this.#callTimeoutMs, attemptsMax: this.#recoveryAttemptsMax, readWindow: this.#readWindow },
      ledgerId,
      recoveryWriterId,
    );
  }

  async getMetadata(ledgerId: number): Promise<LedgerMetadata | undefined> {
    return (await readLedgerMetadata(this.#store, ledgerId))?.metadata;
  }

  /**
   * Deletes the ledger's metadata; true if it existed. Its entries stay on the storage
   * nodes (they have no delete yet: garbage collection is future work) but are unreachable.
   */
  deleteLedger(ledgerId: number): Promise<boolean> {
    return this.#store.delete(MetadataKeys.ledger(ledgerId));
  }

  #writerDeps() {
    return { store: this.#store, pool: this.#pool, writerId: this.#writerId, options: this.#writerOptions, timers: this.#timers, random: this.#random };
  }
}
