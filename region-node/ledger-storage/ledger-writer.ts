// The single writer of an open ledger (BookKeeper's LedgerHandle, add path).
//
// Entry e goes to the Qw nodes (e + i) mod E of the current ensemble. It is acknowledged
// once Qa of them have fsynced it AND every earlier entry is acknowledged: acks leave in
// entry order, so the last-add-confirmed (LAC, the highest entry acknowledged in order) is
// a prefix of the ledger, and it rides on every later add so that readers and recovery
// learn it from the storage nodes.
//
// A node that fails an add (unavailable, timed out, storage error) is replaced by a live
// node outside the ensemble: a new segment starting at LAC + 1 goes into the metadata by
// compare-and-set, and the entries not yet acknowledged are sent to the new node. Entries up
// to the LAC stay with the old segment, where Qa nodes hold them.
//
// The writer owns an open ledger's metadata: the only other party that writes it is a
// recovery (ledger-recovery.ts), which first bumps its version. So any compare-and-set that
// finds another version means "recovered": the writer stops, as it does when a storage node
// answers FENCED.
import type { MetadataStore } from '../metadata-store/index.ts';
import { assert } from '../errors.ts';
import { errorCode, LedgerError } from './ledger-errors.ts';
import { casLedgerMetadata, stripe } from './ledger-metadata.ts';
import type { LedgerMetadata } from './ledger-types.ts';
import { shuffled, withTimeout, type StorageNodePool, type Timers } from './storage-node-pool.ts';

export interface LedgerWriterOptions {
  /** Entries sent but not yet acknowledged, at most (default 1,000). */
  inFlightEntriesMax: number;
  /** Payload bytes sent but not yet acknowledged, at most (default 64 MiB; one larger entry is refused). */
  inFlightBytesMax: number;
  /** Adds waiting for room in the in-flight window, at most; beyond, add() fails with ADMQ_ERR_QUEUE_FULL (default 10,000). */
  waitingAddsMax: number;
  /** A storage node that has not answered an add after this long is treated as failed (default 10,000 ms). */
  addTimeoutMs: number;
  /** Attempts at a metadata update while the store is unreachable (default 5, backing off from 100 ms). */
  metadataAttemptsMax: number;
}

export const DEFAULT_WRITER_OPTIONS: LedgerWriterOptions = {
  inFlightEntriesMax: 1000,
  inFlightBytesMax: 64 * 1024 * 1024,
  waitingAddsMax: 10_000,
  addTimeoutMs: 10_000,
  metadataAttemptsMax: 5,
};

interface PendingEntry {
  readonly entryId: number;
  readonly payload: Buffer;
  /** Nodes of the entry's current write set that have durably stored it. */
  readonly acked: Set<string>;
  /** Nodes with an add of this entry outstanding (never two at once to one node). */
  readonly sending: Set<string>;
  resolve(entryId: number): void;
  reject(error: Error): void;
}

interface WaitingAdd {
  payload: Buffer;
  resolve(entryId: number): void;
  reject(error: Error): void;
}

export interface LedgerWriterDeps {
  store: MetadataStore;
  pool: StorageNodePool;
  writerId: string;
  options: LedgerWriterOptions;
  timers: Timers;
  random: () => number;
}

export class LedgerWriter {
  readonly ledgerId: number;
  readonly #deps: LedgerWriterDeps;
  #metadata: LedgerMetadata;
  #version: number;
  #nextEntryId = 0;
  #lac = -1;
  /** Entries LAC + 1 … nextEntryId − 1, in order. */
  #pending: PendingEntry[] = [];
  #pendingBytes = 0;
  #waiting: WaitingAdd[] = [];
  /** Nodes of the current ensemble that failed and are not replaced yet: nothing is sent to them. */
  readonly #failedNodes = new Set<string>();
  /** Every node that failed during this writer's life: never chosen as a replacement. */
  readonly #excluded = new Set<string>();
  #changing: Promise<void> | undefined;
  #changeAgain = false;
  /** Set while an ensemble change's metadata update is in flight: acks wait (see #changeEnsemble). */
  #holdAcks = false;
  #state: 'open' | 'closing' | 'closed' | 'failed' = 'open';
  #failure: LedgerError | undefined;
  #closing: Promise<LedgerMetadata> | undefined;
  #drainedListeners: Array<() => void> = [];

  constructor(deps: LedgerWriterDeps, metadata: LedgerMetadata, version: number) {
    assert(metadata.state === 'open', `a writer needs an open ledger (${metadata.ledgerId} is ${metadata.state})`);
    this.#deps = deps;
    this.ledgerId = metadata.ledgerId;
    this.#metadata = metadata;
    this.#version = version;
  }

  /** The highest entry id acknowledged in order (-1: none). */
  get lastAddConfirmed(): number {
    return this.#lac;
  }

  /** A copy of the ledger's metadata as this writer last wrote it. */
  metadata(): LedgerMetadata {
    return structuredClone(this.#metadata);
  }

  /**
   * Appends `payload`; resolves with its entry id once Qa nodes of its write set have it
   * durably and every earlier entry is acknowledged. While the in-flight window is full the
   * add waits (in call order) for room.
   */
  add(payload: Buffer): Promise<number> {
    if (this.#state === 'failed') return Promise.reject(this.#failure!);
    if (this.#state !== 'open') return Promise.reject(new LedgerError('ADMQ_ERR_LEDGER_CLOSED', `ledger ${this.ledgerId} is closed to this writer`));
    if (!Buffer.isBuffer(payload)) return Promise.reject(new LedgerError('ADMQ_ERR_BAD_REQUEST', 'an entry payload must be a Buffer'));
    if (payload.length > this.#deps.options.inFlightBytesMax) {
      return Promise.reject(new LedgerError('ADMQ_ERR_BAD_REQUEST', `an entry of ${payload.length} bytes exceeds inFlightBytesMax (${this.#deps.options.inFlightBytesMax} bytes)`));
    }
    return new Promise<number>((resolve, reject) => {
      if (this.#waiting.length === 0 && this.#hasRoom(payload.length)) {
        this.#admit({ payload, resolve, reject });
      } else if (this.#waiting.length >= this.#deps.options.waitingAddsMax) {
        reject(new LedgerError('ADMQ_ERR_QUEUE_FULL', `ledger ${this.ledgerId}: ${this.#waiting.length} adds already wait for room (waitingAddsMax)`));
      } else {
        this.#waiting.push({ payload, resolve, reject });
      }
    });
  }

  /**
   * Waits for the adds already made, then closes the ledger at the LAC (compare-and-set).
   * Idempotent. Fails with ADMQ_ERR_LEDGER_FENCED if the ledger was recovered meanwhile.
   */
  close(): Promise<LedgerMetadata> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<LedgerMetadata> {
    if (this.#state === 'open') this.#state = 'closing';
    await this.#drained();
    // A failure that took the ledger away from us (fenced, or the metadata changed) leaves
    // closing to whoever took it; one that only ended this writer's adds (too few nodes)
    // still closes the ledger at the prefix that was acknowledged.
    if (this.#failure && this.#failure.code !== 'ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES' && this.#failure.code !== 'ADMQ_ERR_METADATA_UNAVAILABLE') throw this.#failure;
    while (this.#changing) await this.#changing;
    if (this.#failure && this.#failure.code !== 'ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES' && this.#failure.code !== 'ADMQ_ERR_METADATA_UNAVAILABLE') throw this.#failure;
    await this.#updateMetadata({ ...this.#metadata, state: 'closed', lastEntryId: this.#lac });
    if (this.#state !== 'failed') this.#state = 'closed';
    return this.metadata();
  }

  #drained(): Promise<void> {
    if (this.#pending.length === 0 && this.#waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainedListeners.push(resolve));
  }

  #notifyIfDrained(): void {
    if (this.#pending.length > 0 || this.#waiting.length > 0) return;
    const listeners = this.#drainedListeners;
    this.#drainedListeners = [];
    for (const listener of listeners) listener();
  }

  #hasRoom(bytes: number): boolean {
    const { inFlightEntriesMax, inFlightBytesMax } = this.#deps.options;
    return this.#pending.length < inFlightEntriesMax && (this.#pending.length === 0 || this.#pendingBytes + bytes <= inFlightBytesMax);
  }

  #admit(add: WaitingAdd): void {
    const entry: PendingEntry = {
      entryId: this.#nextEntryId++,
      payload: add.payload,
      acked: new Set(),
      sending: new Set(),
      resolve: add.resolve,
      reject: add.reject,
    };
    this.#pending.push(entry);
    this.#pendingBytes += add.payload.length;
    this.#sendMissing(entry);
    // With failed nodes left unreplaced, a new entry may have too few live nodes: look for a
    // replacement again (one may have joined), and fail if there is none.
    if (this.#liveInWriteSet(entry.entryId) < this.#metadata.ackQuorum) this.#scheduleEnsembleChange();
  }

  #currentNodes(): string[] {
    return this.#metadata.ensembles[this.#metadata.ensembles.length - 1]!.nodes;
  }

  /** Pending entries are all past the LAC, hence all in the current (last) segment. */
  #writeSet(entryId: number): string[] {
    const last = this.#metadata.ensembles[this.#metadata.ensembles.length - 1]!;
    assert(entryId >= last.firstEntryId, `pending entry ${entryId} of ledger ${this.ledgerId} precedes its current segment (${last.firstEntryId})`);
    return stripe(last.nodes, this.#metadata.writeQuorum, entryId);
  }

  #liveInWriteSet(entryId: number): number {
    return this.#writeSet(entryId).filter((node) => !this.#failedNodes.has(node)).length;
  }

  /** Sends the entry to every node of its write set that neither has it nor is being sent it. */
  #sendMissing(entry: PendingEntry): void {
    for (const node of this.#writeSet(entry.entryId)) {
      if (this.#failedNodes.has(node) || entry.acked.has(node) || entry.sending.has(node)) continue;
      this.#sendTo(entry, node);
    }
  }

  #sendTo(entry: PendingEntry, node: string): void {
    entry.sending.add(node);
    const { pool, writerId, options, timers } = this.#deps;
    const lac = this.#lac;
    const call = Promise.resolve().then(() => pool.connect(node).add(this.ledgerId, entry.entryId, lac, entry.payload, writerId));
    withTimeout(call, options.addTimeoutMs, `add ${this.ledgerId}:${entry.entryId} on storage node ${node}`, timers).then(
      () => this.#onAck(entry, node),
      (error: unknown) => this.#onAddFailed(entry, node, error),
    );
  }

  #onAck(entry: PendingEntry, node: string): void {
    entry.sending.delete(node);
    if (this.#state === 'failed' || entry.entryId <= this.#lac) return;
    // An ack from a node that failed meanwhile, or that an ensemble change replaced, does not
    // count: the metadata does not (or soon will not) list it for this entry.
    if (this.#failedNodes.has(node) || !this.#writeSet(entry.entryId).includes(node)) return;
    entry.acked.add(node);
    this.#advance();
  }

  #advance(): void {
    const { ackQuorum } = this.#metadata;
    let head = this.#pending[0];
    while (head && !this.#holdAcks && head.acked.size >= ackQuorum) {
      assert(head.entryId === this.#lac + 1, `ledger ${this.ledgerId}: acking entry ${head.entryId} after LAC ${this.#lac}`);
      this.#pending.shift();
      this.#pendingBytes -= head.payload.length;
      this.#lac = head.entryId;
      head.resolve(head.entryId);
      head = this.#pending[0];
    }
    while (this.#waiting.length > 0 && this.#state !== 'failed' && this.#hasRoom(this.#waiting[0]!.payload.length)) {
      this.#admit(this.#waiting.shift()!);
    }
    this.#notifyIfDrained();
  }

  #onAddFailed(entry: PendingEntry, node: string, error: unknown): void {
    entry.sending.delete(node);
    if (this.#state === 'failed') return;
    const code = errorCode(error);
    if (code === 'ADMQ_ERR_LEDGER_FENCED' || code === 'ADMQ_ERR_LEDGER_WRITER') {
      this.#fail(new LedgerError('ADMQ_ERR_LEDGER_FENCED', `ledger ${this.ledgerId} was fenced by a recovery (storage node ${node} refused entry ${entry.entryId})`, { cause: error }));
      return;
    }
    if (code === 'ADMQ_ERR_BAD_REQUEST') {
      this.#fail(new LedgerError('ADMQ_ERR_BAD_REQUEST', `storage node ${node} refused entry ${this.ledgerId}:${entry.entryId} as malformed`, { cause: error }));
      return;
    }
    if (!this.#currentNodes().includes(node) || this.#failedNodes.has(node)) return;
    this.#failedNodes.add(node);
    this.#excluded.add(node);
    // Its acks of pending entries must not count: the new segment starts at LAC + 1 and will
    // not list this node, so those entries need Qa copies on the nodes it does list.
    for (const pending of this.#pending) pending.acked.delete(node);
    this.#scheduleEnsembleChange();
  }

  #scheduleEnsembleChange(): void {
    if (this.#changing) {
      this.#changeAgain = true;
      return;
    }
    this.#changing = (async () => {
      do {
        this.#changeAgain = false;
        try {
          await this.#changeEnsemble();
        } catch (error) {
          this.#fail(error instanceof LedgerError ? error : new LedgerError('ADMQ_ERR_METADATA_UNAVAILABLE', `ledger ${this.ledgerId}: ensemble change failed: ${(error as Error).message}`, { cause: error }));
        }
      } while (this.#changeAgain && this.#state !== 'failed');
    })().finally(() => {
      this.#changing = undefined;
    });
  }

  async #changeEnsemble(): Promise<void> {
    if (this.#state === 'failed' || this.#state === 'closed') return;
    const current = this.#currentNodes();
    const failed = current.filter((node) => this.#failedNodes.has(node));
    if (failed.length > 0) {
      const candidates = shuffled(
        this.#deps.pool.available().filter((node) => !current.includes(node) && !this.#excluded.has(node)),
        this.#deps.random,
      );
      const replacements = new Map<string, string>();
      for (const node of failed) {
        const candidate = candidates.shift();
        if (candidate === undefined) break;
        replacements.set(node, candidate);
      }
      if (replacements.size > 0) {
        const nodes = current.map((node) => replacements.get(node) ?? node);
        const last = this.#metadata.ensembles[this.#metadata.ensembles.length - 1]!;
        // Everything up to the LAC has Qa copies on the old segment; the rest moves.
        const firstEntryId = this.#lac + 1;
        assert(firstEntryId >= last.firstEntryId, `ledger ${this.ledgerId}: new segment at ${firstEntryId} before the current one at ${last.firstEntryId}`);
        // A segment none of whose entries was acknowledged is replaced rather than kept.
        const ensembles =
          last.firstEntryId === firstEntryId
            ? [...this.#metadata.ensembles.slice(0, -1), { firstEntryId, nodes }]
            : [...this.#metadata.ensembles, { firstEntryId, nodes }];
        // No entry is acknowledged while the change is in flight: every entry from
        // firstEntryId on must still be pending when the new segment is in place, so that it
        // is sent to the new node too (else one acked meanwhile would keep only the copies
        // of the old write set, fewer than Qw in the new one).
        this.#holdAcks = true;
        try {
          await this.#updateMetadata({ ...this.#metadata, ensembles });
          // (#updateMetadata fails the writer rather than return when the ledger was lost.)
          for (const node of replacements.keys()) this.#failedNodes.delete(node);
          for (const entry of this.#pending) {
            assert(entry.entryId >= firstEntryId, `ledger ${this.ledgerId}: entry ${entry.entryId} acked during the change to a segment at ${firstEntryId}`);
            const writeSet = this.#writeSet(entry.entryId);
            for (const node of [...entry.acked]) if (!writeSet.includes(node)) entry.acked.delete(node);
            this.#sendMissing(entry);
          }
        } finally {
          this.#holdAcks = false;
          this.#advance();
        }
      }
    }
    // Nodes left unreplaced: an entry whose write set keeps fewer than Qa live nodes can
    // never be acknowledged, nor (acks being in order) can any entry after it.
    const stuck = this.#pending.find((entry) => this.#liveInWriteSet(entry.entryId) < this.#metadata.ackQuorum);
    if (stuck) {
      this.#fail(
        new LedgerError(
          'ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES',
          `ledger ${this.ledgerId}: entry ${stuck.entryId} has ${this.#liveInWriteSet(stuck.entryId)} live storage nodes in its write set, fewer than the ack quorum ${this.#metadata.ackQuorum}, and no live node can replace the failed ones (${[...this.#failedNodes].join(', ')})`,
        ),
      );
    }
  }

  /** Compare-and-set of this ledger's metadata; any foreign change means we lost the ledger. */
  async #updateMetadata(next: LedgerMetadata): Promise<void> {
    const { store, options, timers } = this.#deps;
    let delayMs = 100;
    for (let attempt = 1; ; attempt++) {
      let result;
      try {
        result = await casLedgerMetadata(store, next, this.#version);
      } catch (error) {
        if (errorCode(error) === 'ADMQ_ERR_LEDGER_METADATA' || attempt >= options.metadataAttemptsMax) {
          throw new LedgerError('ADMQ_ERR_METADATA_UNAVAILABLE', `ledger ${this.ledgerId}: metadata update failed ${attempt} times: ${(error as Error).message}`, { cause: error });
        }
        await new Promise<void>((resolve) => timers.setTimeout(resolve, delayMs));
        delayMs = Math.min(delayMs * 2, 60_000);
        continue;
      }
      if (result.ok) {
        this.#metadata = next;
        this.#version = result.version;
        return;
      }
      const current = result.current;
      const error = !current
        ? new LedgerError('ADMQ_ERR_METADATA_CONFLICT', `ledger ${this.ledgerId} was deleted while its writer was open`)
        : new LedgerError('ADMQ_ERR_LEDGER_FENCED', `ledger ${this.ledgerId} was ${current.metadata.state === 'closed' ? 'closed' : 'taken over'} by a recovery`);
      this.#fail(error);
      throw error;
    }
  }

  #fail(error: LedgerError): void {
    if (this.#state === 'failed') return;
    this.#state = 'failed';
    this.#failure = error;
    const pending = this.#pending;
    const waiting = this.#waiting;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#waiting = [];
    for (const entry of pending) entry.reject(error);
    for (const add of waiting) add.reject(error);
    this.#notifyIfDrained();
  }
}
