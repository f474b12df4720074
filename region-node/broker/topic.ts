// One topic log served by this node: its producers, subscriptions and rates.
import { ErrorCode } from '../../proto/index.ts';
import { AdmqError, MessageTooLargeError } from '../errors.ts';
import { validateSubscriptionName } from '../names.ts';
import type { AppendMessage, AppendResult, LogStore, TopicLog } from '../storage/log-store.ts';
import type { KeyedTable } from './keyed-table.ts';
import { Subscription, type ConsumerSink, type DeliveryOrder, type PersistedCursor, type SubscriptionDeps, type SubscriptionType } from './subscription.ts';

export interface ProducerInfo {
  name: string;
  connectedAtMs: number;
  address: string;
  messagesIn: number;
  bytesIn: number;
}

/** A decaying per-second rate, updated from counters on read. */
class Rate {
  #lastCount = 0;
  #lastAtMs = 0;
  #value = 0;
  sample(count: number, nowMs: number): number {
    const elapsed = nowMs - this.#lastAtMs;
    if (elapsed >= 1000 || this.#lastAtMs === 0) {
      if (this.#lastAtMs !== 0) this.#value = ((count - this.#lastCount) * 1000) / elapsed;
      this.#lastCount = count;
      this.#lastAtMs = nowMs;
    }
    return this.#value;
  }
}

export class Topic {
  readonly subscriptions = new Map<string, Subscription>();
  readonly producers = new Set<ProducerInfo>();
  readonly #rates = { msgIn: new Rate(), bytesIn: new Rate(), msgOut: new Rate(), bytesOut: new Rate() };
  #unsubscribeDurable: () => void;

  constructor(
    readonly name: string,
    readonly log: TopicLog,
    private readonly store: LogStore,
    private readonly deps: SubscriptionDeps & { messageBytesMax: number },
    /** A keyed topic's table; rebuilt from the log here, then kept current as entries are staged. */
    readonly table?: KeyedTable,
  ) {
    if (table) {
      for (let at = log.firstOffset; at < log.durableNextOffset; ) {
        const entries = store.read(log, at, 1000);
        if (entries.length === 0) break;
        for (const entry of entries) table.apply(entry, false);
        at = (entries[entries.length - 1] as { offset: number }).offset + 1;
      }
      log.stageHook = { local: (entry) => table.stampLocal(entry), replicated: (entry) => table.apply(entry, true) };
      log.isSuperseded = (entry) => table.isSuperseded(entry);
    }
    for (const { subscription, value } of store.loadCursors<PersistedCursor>(log.id)) {
      this.subscriptions.set(subscription, new Subscription(subscription, log, deps, value));
    }
    this.#unsubscribeDurable = log.onDurable(() => {
      for (const sub of this.subscriptions.values()) if (sub.consumerCount > 0) sub.scheduleDispatch();
    });
  }

  async publish(producer: ProducerInfo, messages: AppendMessage[]): Promise<AppendResult[]> {
    let bytes = 0;
    for (const m of messages) {
      let size = m.payload.length + (m.key ? Buffer.byteLength(m.key) : 0);
      for (const name in m.properties) size += name.length + (m.properties[name]?.length ?? 0);
      if (size > this.deps.messageBytesMax) throw new MessageTooLargeError(size, this.deps.messageBytesMax);
      bytes += m.payload.length;
    }
    const results = await this.store.append(this.log, messages);
    producer.messagesIn += messages.length;
    producer.bytesIn += bytes;
    return results;
  }

  lastSequenceId(producerName: string): number {
    return this.log.producers.get(producerName)?.sequenceId ?? -1;
  }

  /** Returns the subscription, creating it at the requested initial position if missing. */
  subscription(name: string, type: SubscriptionType, initial: 'earliest' | 'latest', create: boolean): Subscription {
    validateSubscriptionName(name);
    let sub = this.subscriptions.get(name);
    if (sub) return sub;
    if (!create) throw new AdmqError(ErrorCode.SubscriptionNotFound, `subscription "${name}" does not exist on ${this.name}`);
    const start = initial === 'earliest' ? this.log.firstOffset : this.log.durableNextOffset;
    sub = new Subscription(name, this.log, this.deps, { type, ackedBelow: start, individualAcks: [], createdAtMs: this.deps.nowMs() });
    sub.persist();
    this.subscriptions.set(name, sub);
    return sub;
  }

  attach(name: string, type: SubscriptionType, initial: 'earliest' | 'latest', sink: ConsumerSink, order: DeliveryOrder = 'arrival', readCompacted = false): Subscription {
    const sub = this.subscription(name, type, initial, true);
    if (readCompacted && !this.table) throw new AdmqError(ErrorCode.BadRequest, `readCompacted needs a keyed topic; ${this.name} is not keyed`);
    if (sub.consumerCount === 0) {
      sub.setOrder(order);
      sub.readCompacted = readCompacted;
    }
    else if (sub.order !== order) {
      throw new AdmqError(ErrorCode.SubscriptionTypeMismatch, `subscription "${name}" delivers in ${sub.order} order; cannot attach a consumer asking for ${order}`);
    }
    sub.addConsumer(sink, type);
    return sub;
  }

  deleteSubscription(name: string, force: boolean): void {
    const sub = this.subscriptions.get(name);
    if (!sub) throw new AdmqError(ErrorCode.SubscriptionNotFound, `subscription "${name}" does not exist on ${this.name}`);
    if (sub.consumerCount > 0 && !force) {
      throw new AdmqError(ErrorCode.InUse, `subscription "${name}" has ${sub.consumerCount} connected consumer(s)`);
    }
    sub.close();
    this.subscriptions.delete(name);
    this.store.deleteCursor(this.log.id, name);
  }

  get inUse(): boolean {
    if (this.producers.size > 0) return true;
    for (const sub of this.subscriptions.values()) if (sub.consumerCount > 0) return true;
    return false;
  }

  /** Counters for metrics, read without touching the rate samplers of stats(). */
  counters(): { topic: string; entries: number; msgInCounter: number; bytesInCounter: number; subscriptions: Record<string, { backlog: number; msgOutCounter: number }> } {
    const subscriptions: Record<string, { backlog: number; msgOutCounter: number }> = {};
    for (const [name, sub] of this.subscriptions) subscriptions[name] = { backlog: sub.backlog, msgOutCounter: sub.msgOutCounter };
    return { topic: this.name, entries: this.log.durableNextOffset - this.log.firstOffset, msgInCounter: this.log.entriesAppended, bytesInCounter: this.log.bytesAppended, subscriptions };
  }

  stats(nowMs: number): TopicStats {
    let msgOut = 0;
    let bytesOut = 0;
    const subscriptions: Record<string, SubscriptionStats> = {};
    for (const [name, sub] of this.subscriptions) {
      msgOut += sub.msgOutCounter;
      bytesOut += sub.bytesOutCounter;
      subscriptions[name] = {
        type: sub.type,
        backlog: sub.backlog,
        ackedBelow: sub.ackedBelow,
        readPosition: sub.readPosition,
        unacked: sub.unackedCount,
        pendingRedelivery: sub.replay.size,
        msgOutCounter: sub.msgOutCounter,
        consumers: [...sub.consumers],
      };
    }
    return {
      topic: this.name,
      firstOffset: this.log.firstOffset,
      nextOffset: this.log.durableNextOffset,
      entries: this.log.durableNextOffset - this.log.firstOffset,
      msgInCounter: this.log.entriesAppended,
      bytesInCounter: this.log.bytesAppended,
      msgRateIn: this.#rates.msgIn.sample(this.log.entriesAppended, nowMs),
      msgThroughputIn: this.#rates.bytesIn.sample(this.log.bytesAppended, nowMs),
      msgRateOut: this.#rates.msgOut.sample(msgOut, nowMs),
      msgThroughputOut: this.#rates.bytesOut.sample(bytesOut, nowMs),
      producers: [...this.producers].map((p) => ({ ...p })),
      subscriptions,
    };
  }

  readonly #closeListeners = new Set<(reason: AdmqError | undefined) => void>();

  /** Called once when the topic stops being served here: deleted (no reason), or moved to another broker (the reason). */
  onClose(listener: (reason: AdmqError | undefined) => void): () => void {
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /** Stops serving: subscriptions stop dispatching; open streams are told `reason` (if any) and end. */
  close(reason?: AdmqError): void {
    this.#unsubscribeDurable();
    for (const sub of this.subscriptions.values()) sub.close();
    const listeners = [...this.#closeListeners];
    this.#closeListeners.clear();
    for (const listener of listeners) listener(reason);
  }
}

export interface SubscriptionStats {
  type: SubscriptionType;
  backlog: number;
  ackedBelow: number;
  readPosition: number;
  unacked: number;
  pendingRedelivery: number;
  msgOutCounter: number;
  consumers: Array<{ name: string; permits: number; unacked: number; delivered: number; active: boolean }>;
}

export interface TopicStats {
  topic: string;
  firstOffset: number;
  nextOffset: number;
  entries: number;
  msgInCounter: number;
  bytesInCounter: number;
  msgRateIn: number;
  msgThroughputIn: number;
  msgRateOut: number;
  msgThroughputOut: number;
  producers: ProducerInfo[];
  subscriptions: Record<string, SubscriptionStats>;
}
