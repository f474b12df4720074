// A topic's log in a regional cluster (DESIGN §4): a sequence of single-writer ledgers,
// listed in the metadata store, plus the subscriptions' cursors. The broker that owns the
// topic appends every committed chunk of the topic's log to its own ledger; a broker that
// takes the topic over recovers (fences and closes) the previous owner's ledger, opens a
// new one, and rebuilds its local copy of the log from all of them.
//
// Why this is safe: the list changes only by compare-and-set, so of two brokers that both
// believe they own the topic only one can add its ledger; and recovery fences the old
// ledger on its storage nodes first, so the old owner can no longer get an add acked.
// Every entry a producer was told is stored is therefore in a ledger of the list, and
// the new owner reads every one of them.
import { ErrorCode } from '../../proto/index.ts';
import { AdmqError } from '../errors.ts';
import { MetadataKeys } from '../ledger-storage/ledger-types.ts';
import type { LedgerClient } from '../ledger-storage/ledger-client.ts';
import type { MetadataStore } from '../metadata-store/index.ts';

/** What the topic log needs of the region's ledgers (the ledger client provides it). */
export interface LedgerAccess {
  /** A new open ledger, written by this broker. */
  create(properties: Record<string, string>): Promise<LedgerHandle>;
  /** Fences and closes a ledger (idempotent); resolves with its last entry id (-1: empty). */
  recover(ledgerId: number): Promise<number>;
  /** Entries `first..last` of a closed ledger, in order. */
  read(ledgerId: number, first: number, last: number): Promise<Buffer[]>;
  delete(ledgerId: number): Promise<void>;
}

export interface LedgerHandle {
  readonly ledgerId: number;
  /** Resolves once the entry is on an ack quorum; in order. */
  add(payload: Buffer): Promise<number>;
  close(): Promise<void>;
}

interface TopicLedgerList {
  ledgers: number[];
  /** The broker that added the last ledger (for operators; ownership itself is the lease). */
  owner: string;
}

/** How many entries one read asks for while a log is rebuilt. */
const RESTORE_READ_ENTRIES = 64;

/**
 * When the owner closes its ledger and starts another (Pulsar's rollover). Closed ledgers
 * are what re-replication heals after a storage node is lost, and what a takeover reads
 * without recovery, so a long-owned topic must not keep one ledger forever.
 */
export interface RolloverSettings {
  /** Entries (chunks) per ledger. Default 50,000. */
  entriesMax: number;
  /** Bytes per ledger. Default 256 MiB. */
  bytesMax: number;
  /** Age of a ledger, ms. Default 4 hours. */
  ageMaxMs: number;
}

export const ROLLOVER_DEFAULT: RolloverSettings = { entriesMax: 50_000, bytesMax: 256 * 1024 * 1024, ageMaxMs: 4 * 60 * 60 * 1000 };
/** Cursor changes are written to the metadata store at most this often per topic. */
export const CURSOR_SAVE_INTERVAL_MS = 200;

export class TopicLedgers {
  #writer: LedgerHandle | undefined;
  /** Entries, bytes and start time of the current ledger. */
  #written = { entries: 0, bytes: 0, sinceMs: Date.now() };
  /** A rollover in progress: later chunks wait for the new ledger. */
  #rolling: Promise<void> | undefined;
  /** The version of the ledger list as last written by us (rollovers compare-and-set on it). */
  #listVersion = 0;
  #ledgers: number[] = [];
  #cursors = new Map<string, unknown>();
  #cursorTimer: NodeJS.Timeout | undefined;
  #cursorWrite: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(
    readonly topic: string,
    private readonly metadata: MetadataStore,
    private readonly ledgers: LedgerAccess,
    private readonly brokerId: string,
    private readonly rollover: RolloverSettings,
  ) {}

  /**
   * Takes the topic's log over: recovers the previous owner's ledger, adds a new ledger of
   * ours to the list (compare-and-set: a concurrent taker loses with ADMQ_ERR_TOPIC_MOVED).
   * The caller must hold the topic's ownership lease.
   */
  static async acquire(topic: string, metadata: MetadataStore, ledgers: LedgerAccess, brokerId: string, rollover: RolloverSettings = ROLLOVER_DEFAULT): Promise<TopicLedgers> {
    const self = new TopicLedgers(topic, metadata, ledgers, brokerId, rollover);
    await self.#acquire();
    return self;
  }

  /** Removes a deleted topic's ledger list, its ledgers' metadata and its cursors. */
  static async remove(topic: string, metadata: MetadataStore, ledgers: LedgerAccess): Promise<void> {
    const key = MetadataKeys.topicLedgers(topic);
    const current = await metadata.get(key);
    await metadata.delete(MetadataKeys.topicCursors(topic));
    if (!current) return;
    await metadata.delete(key);
    for (const ledgerId of (JSON.parse(current.value.toString()) as TopicLedgerList).ledgers) await ledgers.delete(ledgerId).catch(() => {});
  }

  async #acquire(): Promise<void> {
    const key = MetadataKeys.topicLedgers(this.topic);
    const current = await this.metadata.get(key);
    const list: TopicLedgerList = current ? (JSON.parse(current.value.toString()) as TopicLedgerList) : { ledgers: [], owner: '' };
    const kept: number[] = [];
    const empty: number[] = [];
    for (const [i, ledgerId] of list.ledgers.entries()) {
      // Only the last ledger can be open: every owner before it was recovered by the next.
      const last = i === list.ledgers.length - 1 ? await this.ledgers.recover(ledgerId) : 0;
      if (last < 0) empty.push(ledgerId);
      else kept.push(ledgerId);
    }
    const writer = await this.ledgers.create({ topic: this.topic, broker: this.brokerId });
    const next: TopicLedgerList = { ledgers: [...kept, writer.ledgerId], owner: this.brokerId };
    const put = await this.metadata.put(key, Buffer.from(JSON.stringify(next)), { expectedVersion: current?.version ?? 0 });
    if (!put.ok) {
      await writer.close().catch(() => {});
      await this.ledgers.delete(writer.ledgerId).catch(() => {});
      throw new AdmqError(ErrorCode.TopicMoved, `topic ${this.topic} was taken over by another broker while this one acquired it`);
    }
    // Empty ledgers (an owner that wrote nothing) leave the list; deleting them is tidying only.
    for (const ledgerId of empty) await this.ledgers.delete(ledgerId).catch(() => {});
    this.#writer = writer;
    this.#ledgers = next.ledgers;
    this.#listVersion = put.version;
    this.#written = { entries: 0, bytes: 0, sinceMs: Date.now() };
    const cursors = await this.metadata.get(MetadataKeys.topicCursors(this.topic));
    if (cursors) this.#cursors = new Map(Object.entries(JSON.parse(cursors.value.toString()) as Record<string, unknown>));
  }

  /** Every chunk of the topic's log stored in ledgers before ours, in order. */
  async *chunks(): AsyncGenerator<Buffer> {
    for (const ledgerId of this.#ledgers) {
      if (ledgerId === this.#writer?.ledgerId) continue;
      const last = await this.ledgers.recover(ledgerId);
      for (let first = 0; first <= last; first += RESTORE_READ_ENTRIES) {
        yield* await this.ledgers.read(ledgerId, first, Math.min(last, first + RESTORE_READ_ENTRIES - 1));
      }
    }
  }

  /** The subscriptions' cursors as last saved by any owner. */
  cursors(): Array<{ subscription: string; value: unknown }> {
    return [...this.#cursors].map(([subscription, value]) => ({ subscription, value }));
  }

  /**
   * Appends one chunk to our ledger; resolves once it is on an ack quorum. Chunks are
   * handed over in log order and stay in that order across a rollover: the new ledger
   * takes chunks only once the old one is closed, so no later chunk can be stored while an
   * earlier one might still fail.
   */
  persist(chunk: Buffer): Promise<void> {
    if (this.#rolling) {
      return new Promise((resolve, reject) => this.#waiting.push({ chunk, resolve, reject }));
    }
    const writer = this.#writer;
    if (!writer || this.#closed) return Promise.reject(new AdmqError(ErrorCode.TopicMoved, `topic ${this.topic} is no longer owned here`));
    const added = writer.add(chunk).then(() => undefined);
    this.#written.entries++;
    this.#written.bytes += chunk.length;
    const w = this.#written;
    if (w.entries >= this.rollover.entriesMax || w.bytes >= this.rollover.bytesMax || Date.now() - w.sinceMs >= this.rollover.ageMaxMs) {
      this.#rolling = this.#roll(writer).then(
        () => {
          // In order, synchronously: nothing can slip in between the waiting chunks.
          this.#rolling = undefined;
          for (const waiting of this.#waiting.splice(0)) this.persist(waiting.chunk).then(waiting.resolve, waiting.reject);
        },
        (error: unknown) => {
          this.#rolling = undefined;
          for (const waiting of this.#waiting.splice(0)) waiting.reject(error);
        },
      );
    }
    return added;
  }

  /** Chunks handed over during a rollover, in order; they go to the new ledger. */
  readonly #waiting: Array<{ chunk: Buffer; resolve: () => void; reject: (error: unknown) => void }> = [];

  /** Closes `old` once its adds are acknowledged, then adds a new ledger to the list (compare-and-set). */
  async #roll(old: LedgerHandle): Promise<void> {
    await old.close();
    if (this.#closed) throw new AdmqError(ErrorCode.TopicMoved, `topic ${this.topic} is no longer owned here`);
    const writer = await this.ledgers.create({ topic: this.topic, broker: this.brokerId });
    const next: TopicLedgerList = { ledgers: [...this.#ledgers, writer.ledgerId], owner: this.brokerId };
    const put = await this.metadata.put(MetadataKeys.topicLedgers(this.topic), Buffer.from(JSON.stringify(next)), { expectedVersion: this.#listVersion });
    if (!put.ok) {
      // Another broker took the topic over meanwhile: our ledger was recovered by it.
      await writer.close().catch(() => {});
      await this.ledgers.delete(writer.ledgerId).catch(() => {});
      this.#writer = undefined;
      throw new AdmqError(ErrorCode.TopicMoved, `topic ${this.topic} was taken over by another broker`);
    }
    this.#writer = writer;
    this.#ledgers = next.ledgers;
    this.#listVersion = put.version;
    this.#written = { entries: 0, bytes: 0, sinceMs: Date.now() };
  }

  /** The ledgers of the topic, oldest first (the last one is ours). */
  ledgerIds(): readonly number[] {
    return this.#ledgers;
  }

  /** Keeps a cursor (undefined: the subscription was deleted); written within CURSOR_SAVE_INTERVAL_MS. */
  saveCursor(subscription: string, value: unknown): void {
    if (this.#closed) return;
    if (value === undefined) this.#cursors.delete(subscription);
    else this.#cursors.set(subscription, value);
    this.#cursorTimer ??= setTimeout(() => {
      this.#cursorTimer = undefined;
      this.#cursorWrite = this.#cursorWrite.then(() => this.#writeCursors());
    }, CURSOR_SAVE_INTERVAL_MS);
  }

  async #writeCursors(): Promise<void> {
    try {
      await this.metadata.put(MetadataKeys.topicCursors(this.topic), Buffer.from(JSON.stringify(Object.fromEntries(this.#cursors))));
    } catch (error) {
      // A lost cursor write means redelivery after a takeover, never loss: log and go on.
      console.error(`[${this.topic}] cursors not saved: ${(error as Error).message}`);
    }
  }

  /**
   * Stops using the topic's ledger. With `release`, a graceful hand-over: pending cursor
   * changes are written and the ledger closed, so the next owner's recovery is instant.
   * Without (ownership lost), nothing more is written.
   */
  async close(release: boolean): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#cursorTimer) {
      clearTimeout(this.#cursorTimer);
      this.#cursorTimer = undefined;
      if (release) this.#cursorWrite = this.#cursorWrite.then(() => this.#writeCursors());
    }
    await this.#cursorWrite;
    if (release) await this.#writer?.close().catch(() => {});
  }
}

/** The region's ledger client as the topic log needs it. */
export function ledgerAccess(client: LedgerClient): LedgerAccess {
  return {
    create: async (properties) => {
      const writer = await client.createLedger(properties);
      return {
        ledgerId: writer.ledgerId,
        add: (payload) => writer.add(payload),
        close: async () => {
          await writer.close();
        },
      };
    },
    recover: async (ledgerId) => (await client.recoverAndClose(ledgerId)).lastEntryId,
    read: async (ledgerId, first, last) => (await client.openReader(ledgerId)).read(first, last),
    delete: async (ledgerId) => {
      await client.deleteLedger(ledgerId);
    },
  };
}
