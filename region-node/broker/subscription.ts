// A subscription: a durable cursor over a topic log plus the consumers attached to it,
// and the dispatcher that hands entries to them within their permits.
//
// Cursor: every offset below `ackedBelow` is acknowledged; `individualAcks` holds acked
// offsets at or above it. Delivery is at-least-once: unacked entries of a consumer that
// leaves, times out or negatively acks go to the replay set and are delivered again.
//
// Dispatch order by type:
//   exclusive  one consumer; a second is refused.
//   failover   the consumer with the lowest priority level (then the earliest) is active.
//   shared     round-robin over consumers with permits.
//   key_shared a key maps to one consumer (rendezvous hashing over the consumers' names),
//              so it moves only when the consumer set changes. An entry is handed to its
//              key's consumer only while no other consumer holds an unacked entry of the
//              same key: when a key moves (a consumer joins or leaves), the new owner
//              waits for the old owner's acks, and per-key order holds.
import { SequenceSet, compareHlcOrder, hlcInsertionIndex } from '../../conflict/index.ts';
import { ErrorCode, type SubscriptionTypeName } from '../../proto/index.ts';
import { AdmqError, toAdmqError } from '../errors.ts';
import type { Entry } from '../storage/entry-codec.ts';
import type { LogStore, TopicLog } from '../storage/log-store.ts';

export type SubscriptionType = 'exclusive' | 'failover' | 'shared' | 'key_shared';

/**
 * `arrival`: in this region's log order. `hlc`: in (HLC, origin region) order, each entry
 * released only once every region of the replication set has a watermark at or past it,
 * so that every region delivers the same sequence (DESIGN §6).
 */
export type DeliveryOrder = 'arrival' | 'hlc';

export function subscriptionTypeFromWire(name: SubscriptionTypeName | string): SubscriptionType {
  switch (name) {
    case 'EXCLUSIVE':
      return 'exclusive';
    case 'FAILOVER':
      return 'failover';
    case 'SHARED':
      return 'shared';
    case 'KEY_SHARED':
      return 'key_shared';
    default:
      throw new AdmqError(ErrorCode.BadRequest, `unknown subscription type "${name}"`);
  }
}

export interface Delivery {
  entry: Entry;
  redeliveryCount: number;
}

/** What the dispatcher needs from a connected consumer; the gRPC layer implements it. */
export interface ConsumerSink {
  readonly name: string;
  readonly priorityLevel: number;
  readonly ackTimeoutMs: number;
  readonly negativeAckRedeliveryDelayMs: number;
  deliver(deliveries: Delivery[]): void;
  activeChanged(active: boolean): void;
  seekReset(requestId: number, offset: number): void;
  /** Reading the log failed (e.g. a checksum mismatch); delivery stops at the bad entry. */
  readFailed(error: AdmqError): void;
}

export interface PersistedCursor {
  type: SubscriptionType;
  ackedBelow: number;
  individualAcks: Array<[number, number]>;
  createdAtMs: number;
  /** Replicated subscriptions: what other regions acked, per origin (see applyRemoteFrontier). */
  remoteAcked?: Record<string, RemoteFrontier>;
  /** Absent: arrival. */
  order?: DeliveryOrder;
}

/** An acked frontier in origin positions: everything at or below `through` (-1: none), and `acked`. */
export interface RemoteFrontier {
  through: number;
  acked: Array<[number, number]>;
}

/** Entries scanned per frontier() or applyRemoteFrontier() call, so that a long log is worked through in steps. */
const FRONTIER_SCAN_MAX = 50_000;

interface ConsumerState {
  readonly sink: ConsumerSink;
  readonly order: number;
  permits: number;
  /** Offset → dispatch time (for ack timeouts) and key hash (for key_shared ordering). */
  readonly unacked: Map<number, { sentAtMs: number; keyHash: number }>;
  readonly nameHash: number;
  delivered: number;
}

export interface SubscriptionDeps {
  store: LogStore;
  nowMs: () => number;
  /** Upper bound of entries held back for redelivery or key ordering before reading stops. */
  replayEntriesMax: number;
  dispatchBatchMax: number;
  defaultNegativeAckDelayMs: number;
  /**
   * HLC-ordered delivery: the HLC up to which the topic's entries may be released (the
   * lowest watermark over its replication set), or undefined while nothing may be.
   */
  hlcReleaseFrontier: (topic: string) => bigint | undefined;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function mix32(value: number): number {
  let h = value | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function keyHash(key: string | undefined): number {
  return fnv1a(key ?? '');
}

export class Subscription {
  type: SubscriptionType;
  order: DeliveryOrder;
  /**
   * Keyed topics: deliver only each key's current version; superseded ones are acked
   * without delivery (set by the first consumer, like the type).
   */
  readCompacted = false;
  ackedBelow: number;
  readonly individualAcks = new Set<number>();
  /** Next offset to read from the log for first delivery. */
  readPosition: number;
  /** Offsets waiting for (re)delivery, with their redelivery counts. */
  readonly replay = new Map<number, number>();
  readonly redeliveryCounts = new Map<number, number>();
  readonly #delayed: Array<{ offset: number; dueMs: number }> = [];
  readonly #consumers: ConsumerState[] = [];
  #orderCounter = 0;
  #active: ConsumerState | undefined;
  #dispatchScheduled = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly createdAtMs: number;
  /** Replicated subscriptions: positions acked in other regions, per origin. */
  readonly #remoteAcked = new Map<string, { through: number; acked: SequenceSet }>();
  /** This region's contiguous acked frontier per origin, scanned up to `#scannedBelow`. */
  readonly #originThrough = new Map<string, number>();
  #scannedBelow: number;
  /** HLC-ordered delivery: entries read from the log and not yet released, in (HLC, origin) order. */
  #hlcPending: Entry[] = [];
  msgOutCounter = 0;
  bytesOutCounter = 0;

  constructor(
    readonly name: string,
    readonly log: TopicLog,
    private readonly deps: SubscriptionDeps,
    cursor: PersistedCursor,
  ) {
    this.type = cursor.type;
    this.order = cursor.order ?? 'arrival';
    this.ackedBelow = Math.max(cursor.ackedBelow, log.firstOffset);
    for (const [from, to] of cursor.individualAcks) {
      for (let o = from; o <= to; o++) if (o >= this.ackedBelow) this.individualAcks.add(o);
    }
    this.readPosition = this.ackedBelow;
    this.createdAtMs = cursor.createdAtMs;
    this.#scannedBelow = log.firstOffset;
    for (const [origin, f] of Object.entries(cursor.remoteAcked ?? {})) {
      this.#remoteAcked.set(origin, { through: f.through, acked: SequenceSet.fromJSON(f.acked) });
    }
  }

  get consumerCount(): number {
    return this.#consumers.length;
  }

  get consumers(): ReadonlyArray<{ name: string; permits: number; unacked: number; delivered: number; active: boolean }> {
    return this.#consumers.map((c) => ({
      name: c.sink.name,
      permits: c.permits,
      unacked: c.unacked.size,
      delivered: c.delivered,
      active: this.#active === c,
    }));
  }

  /** Entries not yet acknowledged, from the cursor to the durable tail. */
  get backlog(): number {
    return Math.max(0, this.log.durableNextOffset - this.ackedBelow - this.individualAcks.size);
  }

  get unackedCount(): number {
    let n = 0;
    for (const c of this.#consumers) n += c.unacked.size;
    return n;
  }

  /** Sets the delivery order; only while no consumer is attached (it applies to the whole subscription). */
  setOrder(order: DeliveryOrder): void {
    if (order === this.order) return;
    if (this.#consumers.length > 0) {
      throw new AdmqError(ErrorCode.SubscriptionTypeMismatch, `subscription "${this.name}" delivers in ${this.order} order and has consumers; cannot switch to ${order}`);
    }
    this.order = order;
    this.#hlcPending = [];
    this.readPosition = this.ackedBelow;
    this.persist();
  }

  addConsumer(sink: ConsumerSink, type: SubscriptionType): void {
    if (this.#consumers.length > 0 && type !== this.type) {
      throw new AdmqError(
        ErrorCode.SubscriptionTypeMismatch,
        `subscription "${this.name}" is ${this.type} with ${this.#consumers.length} consumer(s); cannot attach a ${type} consumer`,
      );
    }
    if (type === 'exclusive' && this.#consumers.length > 0) {
      throw new AdmqError(ErrorCode.ConsumerBusy, `subscription "${this.name}" is exclusive and already has a consumer`);
    }
    if (this.#consumers.length === 0 && type !== this.type) {
      this.type = type;
      this.persist();
    }
    const state: ConsumerState = {
      sink,
      order: this.#orderCounter++,
      permits: 0,
      unacked: new Map(),
      nameHash: fnv1a(sink.name),
      delivered: 0,
    };
    this.#consumers.push(state);
    this.#electActive();
    // A failover consumer that joins as a standby is told so; the elected one was told by #electActive.
    if (this.type === 'failover' && this.#active !== state) sink.activeChanged(false);
    this.#ensureTimer();
    this.scheduleDispatch();
  }

  removeConsumer(sink: ConsumerSink): void {
    const index = this.#consumers.findIndex((c) => c.sink === sink);
    if (index < 0) return;
    const [state] = this.#consumers.splice(index, 1);
    if (state) this.#returnUnacked(state);
    this.#electActive();
    this.scheduleDispatch();
  }

  flow(sink: ConsumerSink, permits: number): void {
    const state = this.#find(sink);
    if (!state) return;
    state.permits = Math.min(state.permits + permits, 1_000_000);
    this.scheduleDispatch();
  }

  ack(offsets: number[], cumulative: boolean): void {
    if (cumulative) {
      if (this.type === 'shared' || this.type === 'key_shared') {
        throw new AdmqError(ErrorCode.BadRequest, `cumulative ack is not allowed on a ${this.type} subscription`);
      }
      const upTo = Math.max(...offsets);
      if (upTo + 1 > this.ackedBelow) {
        for (const c of this.#consumers) for (const o of c.unacked.keys()) if (o <= upTo) c.unacked.delete(o);
        for (const o of this.replay.keys()) if (o <= upTo) this.replay.delete(o);
        this.ackedBelow = Math.min(upTo + 1, this.log.durableNextOffset);
        for (const o of this.individualAcks) if (o < this.ackedBelow) this.individualAcks.delete(o);
      }
    } else {
      for (const o of offsets) {
        if (o < this.ackedBelow || o >= this.log.durableNextOffset) continue;
        this.individualAcks.add(o);
        this.replay.delete(o);
        for (const c of this.#consumers) c.unacked.delete(o);
      }
    }
    while (this.individualAcks.has(this.ackedBelow)) {
      this.individualAcks.delete(this.ackedBelow);
      this.redeliveryCounts.delete(this.ackedBelow);
      this.ackedBelow++;
    }
    if (this.readPosition < this.ackedBelow) this.readPosition = this.ackedBelow;
    for (const o of this.redeliveryCounts.keys()) if (o < this.ackedBelow) this.redeliveryCounts.delete(o);
    this.persist();
    this.scheduleDispatch();
  }

  nack(sink: ConsumerSink, offsets: number[]): void {
    const state = this.#find(sink);
    if (!state) return;
    const delay = state.sink.negativeAckRedeliveryDelayMs || this.deps.defaultNegativeAckDelayMs;
    const due = this.deps.nowMs() + delay;
    for (const o of offsets) {
      if (!state.unacked.delete(o)) continue;
      this.#delayed.push({ offset: o, dueMs: due });
    }
    this.#ensureTimer();
  }

  redeliverUnacked(sink: ConsumerSink): void {
    const state = this.#find(sink);
    if (state) this.#returnUnacked(state);
    this.scheduleDispatch();
  }

  /** Moves the cursor: the next entry delivered is `offset`; everything before counts as acked. */
  seek(offset: number, requestId: number): number {
    const target = Math.min(Math.max(offset, this.log.firstOffset), this.log.durableNextOffset);
    this.ackedBelow = target;
    this.readPosition = target;
    this.individualAcks.clear();
    this.replay.clear();
    this.redeliveryCounts.clear();
    this.#delayed.length = 0;
    this.#hlcPending = [];
    for (const c of this.#consumers) {
      c.unacked.clear();
      c.permits = 0;
      c.sink.seekReset(requestId, target);
    }
    this.persist();
    return target;
  }

  persist(): void {
    this.deps.store.saveCursor(this.log.id, this.name, this.toCursor());
  }

  toCursor(): PersistedCursor {
    const sorted = [...this.individualAcks].sort((a, b) => a - b);
    const ranges: Array<[number, number]> = [];
    for (const o of sorted) {
      const last = ranges[ranges.length - 1];
      if (last && last[1] + 1 === o) last[1] = o;
      else ranges.push([o, o]);
    }
    const cursor: PersistedCursor = { type: this.type, ackedBelow: this.ackedBelow, individualAcks: ranges, createdAtMs: this.createdAtMs };
    if (this.order !== 'arrival') cursor.order = this.order;
    if (this.#remoteAcked.size > 0) {
      cursor.remoteAcked = Object.fromEntries([...this.#remoteAcked].map(([origin, f]) => [origin, { through: f.through, acked: f.acked.toJSON() }]));
    }
    return cursor;
  }

  /**
   * Replicated subscriptions (sender side): this subscription's acked frontier per origin
   * region, in origin positions, which are the same in every region. The contiguous part
   * comes from the entries below `ackedBelow` (scanned incrementally: each origin's entries
   * are in origin order in every log), the rest from the individually acked entries.
   */
  frontier(): Record<string, RemoteFrontier> {
    let budget = FRONTIER_SCAN_MAX;
    if (this.#scannedBelow < this.log.firstOffset) this.#scannedBelow = this.log.firstOffset;
    while (this.#scannedBelow < this.ackedBelow && budget > 0) {
      const entries = this.deps.store.read(this.log, this.#scannedBelow, Math.min(1000, this.ackedBelow - this.#scannedBelow, budget));
      if (entries.length === 0) break;
      for (const e of entries) {
        if (e.offset >= this.ackedBelow) break;
        this.#originThrough.set(e.originRegion, Math.max(this.#originThrough.get(e.originRegion) ?? -1, e.originPosition));
        this.#scannedBelow = e.offset + 1;
        budget--;
      }
    }
    const acked = new Map<string, SequenceSet>();
    if (this.#scannedBelow >= this.ackedBelow) {
      for (const offset of [...this.individualAcks].sort((a, b) => a - b).slice(0, FRONTIER_SCAN_MAX)) {
        const [e] = this.deps.store.read(this.log, offset, 1);
        if (!e || e.offset !== offset) continue;
        acked.set(e.originRegion, (acked.get(e.originRegion) ?? SequenceSet.empty()).add(e.originPosition));
      }
    }
    const out: Record<string, RemoteFrontier> = {};
    for (const origin of new Set([...this.#originThrough.keys(), ...acked.keys()])) {
      out[origin] = { through: this.#originThrough.get(origin) ?? -1, acked: acked.get(origin)?.toJSON() ?? [] };
    }
    return out;
  }

  /** Entries acked without delivery: acked in another region, or superseded for a compacted read. */
  #skippable(entry: Entry): boolean {
    if (this.#remoteAcked.size > 0 && this.#ackedElsewhere(entry)) return true;
    return this.readCompacted && this.log.isSuperseded?.(entry) === true;
  }

  /** Whether another region acked this entry (replicated subscriptions). */
  #ackedElsewhere(entry: Entry): boolean {
    const f = this.#remoteAcked.get(entry.originRegion);
    return f !== undefined && (entry.originPosition <= f.through || f.acked.has(entry.originPosition));
  }

  /**
   * Replicated subscriptions (receiver side): entries another region acked count as acked
   * here. The durable entries (up to FRONTIER_SCAN_MAX past the cursor) are acked now, so
   * that the backlog is true; later ones are skipped when dispatch reaches them (they may
   * not even have arrived yet).
   */
  applyRemoteFrontier(origins: Record<string, RemoteFrontier>): void {
    let changed = false;
    for (const [origin, f] of Object.entries(origins)) {
      const current = this.#remoteAcked.get(origin) ?? { through: -1, acked: SequenceSet.empty() };
      const through = Math.max(current.through, f.through);
      const acked = current.acked.union(SequenceSet.fromJSON(f.acked));
      if (through !== current.through || acked.size !== current.acked.size) changed = true;
      this.#remoteAcked.set(origin, { through, acked });
    }
    if (!changed) return;
    const covered: number[] = [];
    let at = this.ackedBelow;
    const end = Math.min(this.log.durableNextOffset, this.ackedBelow + FRONTIER_SCAN_MAX);
    while (at < end) {
      const entries = this.deps.store.read(this.log, at, Math.min(1000, end - at));
      if (entries.length === 0) break;
      for (const e of entries) {
        if (e.offset >= end) break;
        if (!this.individualAcks.has(e.offset) && this.#ackedElsewhere(e)) covered.push(e.offset);
        at = e.offset + 1;
      }
    }
    if (covered.length > 0) this.ack(covered, false);
    else this.persist();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  scheduleDispatch(): void {
    if (this.#dispatchScheduled || this.#closed) return;
    this.#dispatchScheduled = true;
    setImmediate(() => {
      this.#dispatchScheduled = false;
      try {
        this.dispatch();
      } catch (error) {
        // A checksum failure or other read error: report it to every consumer of this
        // subscription rather than skipping the entry silently.
        const failure = toAdmqError(error);
        console.error(`[${this.log.name}][${this.name}] dispatch failed: ${failure.code}: ${failure.message}`);
        for (const c of this.#consumers) c.sink.readFailed(failure);
      }
    });
  }

  #find(sink: ConsumerSink): ConsumerState | undefined {
    return this.#consumers.find((c) => c.sink === sink);
  }

  #returnUnacked(state: ConsumerState): void {
    for (const o of state.unacked.keys()) {
      this.replay.set(o, (this.redeliveryCounts.get(o) ?? 0) + 1);
      this.redeliveryCounts.set(o, (this.redeliveryCounts.get(o) ?? 0) + 1);
    }
    state.unacked.clear();
  }

  #electActive(): void {
    if (this.type !== 'failover' && this.type !== 'exclusive') {
      this.#active = undefined;
      return;
    }
    let best: ConsumerState | undefined;
    for (const c of this.#consumers) {
      if (!best || c.sink.priorityLevel < best.sink.priorityLevel || (c.sink.priorityLevel === best.sink.priorityLevel && c.order < best.order)) {
        best = c;
      }
    }
    if (best === this.#active) return;
    const previous = this.#active;
    this.#active = best;
    if (previous && this.#consumers.includes(previous)) {
      this.#returnUnacked(previous);
      previous.sink.activeChanged(false);
    }
    if (best && this.type === 'failover') best.sink.activeChanged(true);
  }

  #ensureTimer(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => this.#onTick(), 50);
    this.#timer.unref();
  }

  #onTick(): void {
    const now = this.deps.nowMs();
    let changed = false;
    for (let i = this.#delayed.length - 1; i >= 0; i--) {
      const item = this.#delayed[i] as { offset: number; dueMs: number };
      if (item.dueMs > now) continue;
      this.#delayed.splice(i, 1);
      if (item.offset < this.ackedBelow || this.individualAcks.has(item.offset)) continue;
      const count = (this.redeliveryCounts.get(item.offset) ?? 0) + 1;
      this.redeliveryCounts.set(item.offset, count);
      this.replay.set(item.offset, count);
      changed = true;
    }
    for (const c of this.#consumers) {
      if (c.sink.ackTimeoutMs <= 0) continue;
      for (const [o, { sentAtMs }] of c.unacked) {
        if (now - sentAtMs < c.sink.ackTimeoutMs) continue;
        c.unacked.delete(o);
        const count = (this.redeliveryCounts.get(o) ?? 0) + 1;
        this.redeliveryCounts.set(o, count);
        this.replay.set(o, count);
        changed = true;
      }
    }
    // HLC-ordered delivery waits on watermarks, which move without any event here.
    if (changed || (this.#hlcPending.length > 0 && this.#consumers.length > 0)) this.scheduleDispatch();
    if (this.#consumers.length === 0 && this.#delayed.length === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #targetFor(entry: Entry, candidates: ConsumerState[], rr: { next: number }): ConsumerState | undefined {
    switch (this.type) {
      case 'exclusive':
      case 'failover':
        return this.#active;
      case 'shared': {
        for (let i = 0; i < candidates.length; i++) {
          const c = candidates[(rr.next + i) % candidates.length] as ConsumerState;
          if (c.permits > 0) {
            rr.next = (rr.next + i + 1) % candidates.length;
            return c;
          }
        }
        return undefined;
      }
      case 'key_shared': {
        const h = keyHash(entry.key);
        let best: ConsumerState | undefined;
        let bestScore = -1;
        for (const c of candidates) {
          const score = mix32(h ^ c.nameHash);
          if (score > bestScore || (score === bestScore && best && c.sink.name < best.sink.name)) {
            best = c;
            bestScore = score;
          }
        }
        return best;
      }
    }
  }

  /** Reads new entries into the HLC-ordered pending buffer (bounded by replayEntriesMax). */
  #fillHlcPending(remotelyAcked: number[]): void {
    const room = (): number => this.deps.replayEntriesMax - this.#hlcPending.length;
    while (this.readPosition < this.log.durableNextOffset && room() > 0) {
      const entries = this.deps.store.read(this.log, this.readPosition, Math.min(1000, room()));
      if (entries.length === 0) break;
      for (const entry of entries) {
        this.readPosition = entry.offset + 1;
        if (this.individualAcks.has(entry.offset)) continue;
        if (this.#skippable(entry)) {
          remotelyAcked.push(entry.offset);
          continue;
        }
        this.#insertHlcPending(entry);
        if (room() <= 0) break;
      }
    }
  }

  #insertHlcPending(entry: Entry): void {
    const pending = this.#hlcPending;
    // Entries mostly arrive in order: append, and search only when one does not.
    const last = pending[pending.length - 1];
    if (!last || compareHlcOrder(last, entry) < 0) {
      pending.push(entry);
      return;
    }
    // In place: the pure insertInHlcOrder copies the buffer, too costly per entry here.
    pending.splice(hlcInsertionIndex(pending, entry), 0, entry);
  }

  #keyHolders(): Map<number, ConsumerState | null> {
    const holders = new Map<number, ConsumerState | null>();
    for (const c of this.#consumers) {
      for (const { keyHash: h } of c.unacked.values()) {
        const holder = holders.get(h);
        if (holder === undefined) holders.set(h, c);
        else if (holder !== c) holders.set(h, null);
      }
    }
    return holders;
  }

  /** Hands entries to consumers until permits, entries or the batch bound run out. */
  dispatch(): void {
    if (this.#closed || this.#consumers.length === 0) return;
    const candidates = this.#consumers;
    let budget = 0;
    for (const c of candidates) budget += c.permits;
    if (budget === 0) return;
    budget = Math.min(budget, this.deps.dispatchBatchMax);
    const out = new Map<ConsumerState, Delivery[]>();
    const blockedKeys = new Set<number>();
    const rr = { next: this.msgOutCounter % Math.max(1, candidates.length) };
    const now = this.deps.nowMs();
    let handed = 0;
    /** Entries another region acked: acked here instead of delivered (replicated subscriptions). */
    const remotelyAcked: number[] = [];

    // key_shared: which consumer holds unacked entries of each key (null: more than one).
    const holders = this.type === 'key_shared' ? this.#keyHolders() : undefined;

    const offer = (entry: Entry, redeliveryCount: number): 'sent' | 'held' | 'stop' => {
      const target = this.#targetFor(entry, candidates, rr);
      if (!target) return this.type === 'key_shared' ? 'held' : 'stop';
      const h = keyHash(entry.key);
      if (holders) {
        const holder = holders.get(h);
        const heldElsewhere = holder !== undefined && holder !== target;
        if (blockedKeys.has(h) || target.permits <= 0 || heldElsewhere) {
          blockedKeys.add(h);
          return 'held';
        }
        holders.set(h, target);
      } else if (target.permits <= 0) {
        return 'stop';
      }
      target.permits--;
      target.unacked.set(entry.offset, { sentAtMs: now, keyHash: h });
      target.delivered++;
      let list = out.get(target);
      if (!list) out.set(target, (list = []));
      list.push({ entry, redeliveryCount });
      handed++;
      return 'sent';
    };

    // 1. Redeliveries first, in offset order: they are older than anything unread.
    if (this.replay.size > 0) {
      const offsets = [...this.replay.keys()].sort((a, b) => a - b);
      for (const o of offsets) {
        if (handed >= budget) break;
        if (o < this.ackedBelow || this.individualAcks.has(o)) {
          this.replay.delete(o);
          continue;
        }
        const [entry] = this.deps.store.read(this.log, o, 1);
        if (!entry || entry.offset !== o) {
          this.replay.delete(o);
          continue;
        }
        if (this.#skippable(entry)) {
          this.replay.delete(o);
          remotelyAcked.push(o);
          continue;
        }
        const result = offer(entry, this.replay.get(o) ?? 0);
        if (result === 'sent') this.replay.delete(o);
        else if (result === 'stop') break;
      }
    }

    // 2h. HLC order: new entries go through the pending buffer, released in (HLC, origin)
    // order up to the replication set's lowest watermark.
    if (this.order === 'hlc') {
      this.#fillHlcPending(remotelyAcked);
      const frontier = this.deps.hlcReleaseFrontier(this.log.name);
      while (handed < budget && frontier !== undefined && this.#hlcPending.length > 0) {
        const entry = this.#hlcPending[0] as Entry;
        if (entry.hlc > frontier) break;
        if (offer(entry, 0) !== 'sent') break; // strict order: nothing overtakes the head
        this.#hlcPending.shift();
      }
    }

    // 2. New entries from the read position, while the replay set has room.
    while (this.order === 'arrival' && handed < budget && this.readPosition < this.log.durableNextOffset && this.replay.size < this.deps.replayEntriesMax) {
      const entries = this.deps.store.read(this.log, this.readPosition, Math.min(budget - handed, 1000));
      if (entries.length === 0) break;
      let stopped = false;
      for (const entry of entries) {
        if (handed >= budget) {
          stopped = true;
          break;
        }
        if (this.individualAcks.has(entry.offset)) {
          this.readPosition = entry.offset + 1;
          continue;
        }
        if (this.#skippable(entry)) {
          remotelyAcked.push(entry.offset);
          this.readPosition = entry.offset + 1;
          continue;
        }
        const result = offer(entry, 0);
        if (result === 'stop') {
          stopped = true;
          break;
        }
        if (result === 'held') this.replay.set(entry.offset, 0);
        this.readPosition = entry.offset + 1;
        if (this.replay.size >= this.deps.replayEntriesMax) {
          stopped = true;
          break;
        }
      }
      if (stopped) break;
    }

    if (remotelyAcked.length > 0) this.ack(remotelyAcked, false);
    for (const [consumer, deliveries] of out) {
      for (const d of deliveries) this.bytesOutCounter += d.entry.payload.length;
      this.msgOutCounter += deliveries.length;
      consumer.sink.deliver(deliveries);
    }
    // More may be dispatchable (the batch bound was hit); yield to I/O, then continue.
    if (handed >= budget) this.scheduleDispatch();
  }
}
