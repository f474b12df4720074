// Reads of a ledger: of a closed one up to its last entry, of an open one up to the
// last-add-confirmed the storage nodes have been told (the writer piggybacks it on its
// adds, so it lags the writer a little but never claims an entry that lacks Qa copies).
// Each entry is read from the replicas of its write set in turn until one has it.
import type { MetadataStore } from '../metadata-store/index.ts';
import { errorCode, LedgerError } from './ledger-errors.ts';
import { requireLedgerMetadata, writeSetOf } from './ledger-metadata.ts';
import type { LedgerMetadata } from './ledger-types.ts';
import { withTimeout, type StorageNodePool, type Timers } from './storage-node-pool.ts';

export interface LedgerReaderDeps {
  store: MetadataStore;
  pool: StorageNodePool;
  timers: Timers;
  callTimeoutMs: number;
  /** Entries one read() may return, at most. */
  readEntriesMax: number;
  /** Entries read in parallel by read(). */
  readWindow: number;
}

export class LedgerReader {
  readonly ledgerId: number;
  readonly #deps: LedgerReaderDeps;
  #metadata: LedgerMetadata;
  /** The highest entry known to be readable (closed: the last entry; open: the highest LAC seen). */
  #lac: number;

  constructor(deps: LedgerReaderDeps, metadata: LedgerMetadata) {
    this.#deps = deps;
    this.ledgerId = metadata.ledgerId;
    this.#metadata = metadata;
    this.#lac = metadata.state === 'closed' ? metadata.lastEntryId : -1;
  }

  metadata(): LedgerMetadata {
    return structuredClone(this.#metadata);
  }

  /**
   * The last readable entry: a closed ledger's last entry, or for an open one the highest
   * LAC its current ensemble reports (metadata re-read first, so that a ledger closed or an
   * ensemble changed since is seen).
   */
  async lastAddConfirmed(): Promise<number> {
    if (this.#metadata.state === 'closed') return this.#lac;
    this.#metadata = (await requireLedgerMetadata(this.#deps.store, this.ledgerId)).metadata;
    if (this.#metadata.state === 'closed') {
      this.#lac = this.#metadata.lastEntryId;
      return this.#lac;
    }
    const segment = this.#metadata.ensembles[this.#metadata.ensembles.length - 1]!;
    const lacs = await Promise.all(
      segment.nodes.map((node) =>
        withTimeout(
          Promise.resolve().then(() => this.#deps.pool.connect(node).readLac(this.ledgerId)),
          this.#deps.callTimeoutMs,
          `readLac ${this.ledgerId} on ${node}`,
          this.#deps.timers,
        ).then(
          (answer) => answer.lac,
          () => -1,
        ),
      ),
    );
    // Entries before the current segment were all acknowledged when it began.
    this.#lac = Math.max(this.#lac, segment.firstEntryId - 1, ...lacs);
    return this.#lac;
  }

  async readEntry(entryId: number): Promise<Buffer> {
    if (!Number.isSafeInteger(entryId) || entryId < 0) throw new LedgerError('ADMQ_ERR_BAD_REQUEST', `entry id ${entryId} must be an integer >= 0`);
    if (entryId > this.#lac && (this.#metadata.state === 'closed' || entryId > (await this.lastAddConfirmed()))) {
      throw new LedgerError('ADMQ_ERR_NO_SUCH_ENTRY', `entry ${this.ledgerId}:${entryId} is past the ${this.#metadata.state === 'closed' ? 'last entry' : 'last-add-confirmed'} (${this.#lac})`);
    }
    const writeSet = writeSetOf(this.#metadata, entryId);
    const failures: string[] = [];
    let missing = 0;
    for (const node of writeSet) {
      try {
        return await withTimeout(
          Promise.resolve().then(() => this.#deps.pool.connect(node).read(this.ledgerId, entryId)),
          this.#deps.callTimeoutMs,
          `read ${this.ledgerId}:${entryId} on ${node}`,
          this.#deps.timers,
        );
      } catch (error) {
        const code = errorCode(error);
        if (code === 'ADMQ_ERR_NO_SUCH_ENTRY' || code === 'ADMQ_ERR_NO_SUCH_LEDGER') missing++;
        failures.push(`${node}: ${code ?? (error as Error).message}`);
      }
    }
    throw new LedgerError(
      missing === writeSet.length ? 'ADMQ_ERR_NO_SUCH_ENTRY' : 'ADMQ_ERR_STORAGE_UNAVAILABLE',
      `entry ${this.ledgerId}:${entryId} could be read from none of its replicas (${failures.join('; ')})`,
    );
  }

  /** Entries first … last (inclusive), in order; at most readEntriesMax of them. */
  async read(first: number, last: number): Promise<Buffer[]> {
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first < 0 || last < first) {
      throw new LedgerError('ADMQ_ERR_BAD_REQUEST', `bad entry range ${first}..${last}`);
    }
    if (last - first + 1 > this.#deps.readEntriesMax) {
      throw new LedgerError('ADMQ_ERR_BAD_REQUEST', `a read of ${last - first + 1} entries exceeds readEntriesMax (${this.#deps.readEntriesMax})`);
    }
    if (last > this.#lac && (this.#metadata.state === 'closed' || last > (await this.lastAddConfirmed()))) {
      throw new LedgerError('ADMQ_ERR_NO_SUCH_ENTRY', `entries up to ${this.ledgerId}:${last} requested, but the ledger is readable up to ${this.#lac}`);
    }
    const out: Buffer[] = [];
    for (let start = first; start <= last; start += this.#deps.readWindow) {
      const ids = Array.from({ length: Math.min(this.#deps.readWindow, last - start + 1) }, (_, i) => start + i);
      out.push(...(await Promise.all(ids.map((id) => this.readEntry(id)))));
    }
    return out;
  }
}
