// The storage of a storage node ("bookie", DESIGN §4): entries of single-writer ledgers in
// LMDB, BookKeeper's contract:
//   add(ledger, entry, lac, payload, writer)  durable (fsync) before it resolves;
//   read(ledger, entry)                        the payload, or NoSuchEntry;
//   readLac(ledger)                            the last-add-confirmed the writer piggybacked;
//   fence(ledger)                              from now on adds from the old writer are refused
//                                              (recovery then reads and closes the ledger);
//   restore(ledger, entry, payload)            re-replication's copy of an entry, stored
//                                              whatever the ledger's writer or fence.
// Adds (and restores) that arrive together share one transaction and one fsync (group commit).
// Keys are big-endian (ledger u64, entry u64), so a ledger's entries scan in order.
import { open, type Database, type RootDatabase } from 'lmdb';

export class BookieError extends Error {
  constructor(
    readonly code: 'ADMQ_ERR_LEDGER_FENCED' | 'ADMQ_ERR_NO_SUCH_ENTRY' | 'ADMQ_ERR_NO_SUCH_LEDGER' | 'ADMQ_ERR_LEDGER_WRITER' | 'ADMQ_ERR_STORAGE' | 'ADMQ_ERR_BAD_REQUEST',
    message: string,
  ) {
    super(message);
    this.name = 'BookieError';
  }
}

interface LedgerState {
  fenced: boolean;
  /** Highest last-add-confirmed any add carried (-1: none). */
  lac: number;
  /** Highest entry id stored (-1: none). */
  last: number;
  /** The writer allowed to add (set by the first add; '' while unclaimed: fenced or only restored so far). */
  writer: string;
}

/** Ledger ids are u32 keys of the `ledgers` database (MetadataKeys pads them to 10 digits). */
export const LEDGER_ID_MAX = 0xffffffff;

interface PendingAdd {
  /** A restore ignores the writer and the fence, and leaves the LAC alone. */
  restore: boolean;
  ledgerId: number;
  entryId: number;
  lac: number;
  payload: Buffer;
  writer: string;
  resolve: () => void;
  reject: (error: Error) => void;
}

function validLedgerId(ledgerId: number): boolean {
  return Number.isSafeInteger(ledgerId) && ledgerId >= 0 && ledgerId <= LEDGER_ID_MAX;
}

function entryKey(ledgerId: number, entryId: number): Buffer {
  const key = Buffer.allocUnsafe(16);
  key.writeBigUInt64BE(BigInt(ledgerId), 0);
  key.writeBigUInt64BE(BigInt(entryId), 8);
  return key;
}

export class BookieStore {
  readonly #root: RootDatabase;
  readonly #entries: Database<Buffer, Buffer>;
  readonly #ledgers: Database<LedgerState, number>;
  #queue: PendingAdd[] = [];
  #committing = false;
  /** The group commit running now (close() waits for it, and for the ones it kicks). */
  #commitDone: Promise<void> = Promise.resolve();
  readonly #fences = new Set<Promise<void>>();
  #closed = false;

  private constructor(dir: string, sync: boolean) {
    // noSubdir: false always: lmdb-js otherwise guesses from the path, and takes a directory
    // whose name has a dot (`/var/lib/admq/bookie.1`, mktemp's `tmp.XXXX`) for a file name.
    this.#root = open({ path: dir, noSubdir: false, maxDbs: 4, noSync: !sync, pageSize: 8192 });
    this.#entries = this.#root.openDB<Buffer, Buffer>({ name: 'entries', keyEncoding: 'binary', encoding: 'binary' });
    this.#ledgers = this.#root.openDB<LedgerState, number>({ name: 'ledgers', keyEncoding: 'uint32' });
  }

  /** `sync: false` skips fsync (tests and benchmarks only: an acked add may be lost in a crash). */
  static open(dir: string, options: { sync?: boolean } = {}): BookieStore {
    return new BookieStore(dir, options.sync ?? true);
  }

  #state(ledgerId: number): LedgerState | undefined {
    return this.#ledgers.get(ledgerId);
  }

  /** Stores an entry durably. Refused if the ledger is fenced, or written by another writer. */
  add(ledgerId: number, entryId: number, lac: number, payload: Buffer, writer: string): Promise<void> {
    return this.#enqueue(false, ledgerId, entryId, lac, payload, writer);
  }

  /**
   * Stores a copy of an entry durably during re-replication, whatever the ledger's writer
   * or fence: the entry was acknowledged by its writer elsewhere, and this node replaces a
   * lost replica. Raises the ledger's `last`; the LAC stays what the writer piggybacked
   * here (a copied entry says nothing about what was confirmed).
   */
  restore(ledgerId: number, entryId: number, payload: Buffer): Promise<void> {
    return this.#enqueue(true, ledgerId, entryId, -1, payload, '');
  }

  #enqueue(restore: boolean, ledgerId: number, entryId: number, lac: number, payload: Buffer, writer: string): Promise<void> {
    if (this.#closed) return Promise.reject(new BookieError('ADMQ_ERR_STORAGE', 'the storage node is shutting down'));
    if (!validLedgerId(ledgerId) || !Number.isSafeInteger(entryId) || entryId < 0) {
      return Promise.reject(new BookieError('ADMQ_ERR_BAD_REQUEST', `bad ledger or entry id ${ledgerId}:${entryId}`));
    }
    if (!restore && (!Number.isSafeInteger(lac) || lac < -1 || writer === '')) {
      return Promise.reject(new BookieError('ADMQ_ERR_BAD_REQUEST', `bad add to ${ledgerId}:${entryId}: lac ${lac} must be an integer >= -1 and the writer non-empty`));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ restore, ledgerId, entryId, lac, payload, writer, resolve, reject });
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#committing || this.#queue.length === 0) return;
    this.#committing = true;
    this.#commitDone = new Promise<void>((resolve) => setImmediate(() => void this.#commit().then(resolve)));
  }

  async #commit(): Promise<void> {
    const batch = this.#queue;
    this.#queue = [];
    const outcomes: Array<Error | undefined> = [];
    try {
      await this.#root.transaction(() => {
        const states = new Map<number, LedgerState>();
        for (const add of batch) {
          let state = states.get(add.ledgerId) ?? this.#state(add.ledgerId);
          if (add.restore) {
            state = { fenced: state?.fenced ?? false, lac: state?.lac ?? -1, last: Math.max(state?.last ?? -1, add.entryId), writer: state?.writer ?? '' };
            states.set(add.ledgerId, state);
            this.#entries.putSync(entryKey(add.ledgerId, add.entryId), add.payload);
            outcomes.push(undefined);
            continue;
          }
          if (state?.fenced) {
            outcomes.push(new BookieError('ADMQ_ERR_LEDGER_FENCED', `ledger ${add.ledgerId} is fenced: its writer was replaced`));
            continue;
          }
          // An unclaimed ledger ('' : only restored entries so far) is claimed by its first add.
          if (state && state.writer !== '' && state.writer !== add.writer) {
            outcomes.push(new BookieError('ADMQ_ERR_LEDGER_WRITER', `ledger ${add.ledgerId} belongs to another writer`));
            continue;
          }
          state = { fenced: false, lac: Math.max(state?.lac ?? -1, add.lac), last: Math.max(state?.last ?? -1, add.entryId), writer: add.writer };
          states.set(add.ledgerId, state);
          this.#entries.putSync(entryKey(add.ledgerId, add.entryId), add.payload);
          outcomes.push(undefined);
        }
        for (const [id, state] of states) this.#ledgers.putSync(id, state);
      });
      batch.forEach((add, i) => {
        const error = outcomes[i];
        if (error) add.reject(error);
        else add.resolve();
      });
    } catch (error) {
      for (const add of batch) add.reject(new BookieError('ADMQ_ERR_STORAGE', `storage write failed: ${(error as Error).message}`));
    } finally {
      this.#committing = false;
      this.#kick();
    }
  }

  read(ledgerId: number, entryId: number): Buffer {
    if (!validLedgerId(ledgerId) || !Number.isSafeInteger(entryId) || entryId < 0) throw new BookieError('ADMQ_ERR_BAD_REQUEST', `bad ledger or entry id ${ledgerId}:${entryId}`);
    const payload = this.#entries.get(entryKey(ledgerId, entryId));
    if (!payload) throw new BookieError('ADMQ_ERR_NO_SUCH_ENTRY', `entry ${ledgerId}:${entryId} is not stored here`);
    return Buffer.from(payload);
  }

  readLac(ledgerId: number): { lac: number; last: number; fenced: boolean } {
    if (!validLedgerId(ledgerId)) throw new BookieError('ADMQ_ERR_BAD_REQUEST', `bad ledger id ${ledgerId}`);
    const state = this.#state(ledgerId);
    if (!state) throw new BookieError('ADMQ_ERR_NO_SUCH_LEDGER', `ledger ${ledgerId} has no entries here`);
    return { lac: state.lac, last: state.last, fenced: state.fenced };
  }

  /** Fences the ledger durably (a ledger this node has not seen yet is fenced too). */
  async fence(ledgerId: number): Promise<{ lac: number; last: number }> {
    if (this.#closed) throw new BookieError('ADMQ_ERR_STORAGE', 'the storage node is shutting down');
    if (!validLedgerId(ledgerId)) throw new BookieError('ADMQ_ERR_BAD_REQUEST', `bad ledger id ${ledgerId}`);
    let result = { lac: -1, last: -1 };
    const done = this.#root.transaction(() => {
      const state = this.#state(ledgerId) ?? { fenced: false, lac: -1, last: -1, writer: '' };
      this.#ledgers.putSync(ledgerId, { ...state, fenced: true });
      result = { lac: state.lac, last: state.last };
    });
    // close() waits for fences in flight, as it does for group commits.
    const tracked = done.then(() => undefined, () => undefined);
    this.#fences.add(tracked);
    try {
      await done;
    } catch (error) {
      throw new BookieError('ADMQ_ERR_STORAGE', `fencing ledger ${ledgerId} failed: ${(error as Error).message}`);
    } finally {
      this.#fences.delete(tracked);
    }
    return result;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#committing) await this.#commitDone;
    await Promise.all(this.#fences);
    await this.#root.close();
  }
}
