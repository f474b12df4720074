// The drill's figures and its report, as pure functions of what the drill recorded: the
// canary's produce attempts and deliveries (multi-region-tests History records), each
// region's log as read at the end, when the drill saw each entry arrive, and the moments of
// the fault, the snapshot and the recovery. No I/O, no clock: the same inputs give the same
// report, which is what lets tests recompute every figure independently.
//
// Identities: a message is one produce attempt; the canary gives each a unique payload. An
// acked entry is found in a log by its global id (origin region, origin position), or, when
// the ack carried no position (a resend acked as a duplicate), by (producer, sequence id):
// the same rule as checkHistory's.
import { formatViolations, globalIdOf, type ConsumeRecord, type ProduceRecord, type StoredRecord, type Violation } from '../multi-region-tests/history.ts';
import type { FailoverResult } from '../operations/planned-failover.ts';

export const REPORT_VERSION = 1;

export type PhaseName = 'prepare' | 'warm-up' | 'fault' | 'recovery' | 'catch-up' | 'observe' | 'drain' | 'verify';

export interface PhaseRecord {
  phase: PhaseName;
  startedAtMs: number;
  endedAtMs: number;
  note: string;
}

export type TimelineEventKind =
  | 'fault'
  | 'fault-in-force'
  | 'snapshot'
  | 'recovery'
  | 'recovered'
  | 'switch'
  | 'first-produce'
  | 'first-consume'
  | 'caught-up'
  | 'failover-phase'
  | 'note';

export interface TimelineEvent {
  atMs: number;
  kind: TimelineEventKind;
  text: string;
  region?: string;
}

export interface ScenarioSummary {
  name: string;
  /** One line: "region-outage: kill shanghai for 10 s". */
  title: string;
  /** The region that fails (outage, skew) or loses its home (planned failover). */
  region?: string;
  mode?: string;
  link?: [string, string];
  skewMs?: number;
  to?: string;
  faultMs?: number;
}

export interface NotApplicable {
  applicable: false;
  reason: string;
}

// ---------------------------------------------------------------------------------------
// Finding entries in logs

/** Lookups into one region's log. */
export interface LogIndex {
  hasGlobalId(originRegion: string, originPosition: number): boolean;
  hasSequence(producer: string, sequenceId: number): boolean;
}

type Identifiable = Pick<StoredRecord, 'originRegion' | 'originPosition' | 'producer' | 'sequenceId'>;

/** An index of log records (or of any entries with origin and producer fields). */
export class RecordIndex implements LogIndex {
  readonly #byGlobalId = new Map<string, Map<number, Identifiable>>();
  readonly #bySequence = new Map<string, Set<number>>();

  constructor(records: Iterable<Identifiable> = []) {
    for (const r of records) this.add(r);
  }

  add(record: Identifiable): void {
    let positions = this.#byGlobalId.get(record.originRegion);
    if (!positions) {
      positions = new Map();
      this.#byGlobalId.set(record.originRegion, positions);
    }
    if (!positions.has(record.originPosition)) positions.set(record.originPosition, record);
    let sequences = this.#bySequence.get(record.producer);
    if (!sequences) {
      sequences = new Set();
      this.#bySequence.set(record.producer, sequences);
    }
    sequences.add(record.sequenceId);
  }

  hasGlobalId(originRegion: string, originPosition: number): boolean {
    return this.#byGlobalId.get(originRegion)?.has(originPosition) ?? false;
  }

  hasSequence(producer: string, sequenceId: number): boolean {
    return this.#bySequence.get(producer)?.has(sequenceId) ?? false;
  }
}

/** Whether an ack names its entry by global id (else by producer and sequence id). */
export function hasPosition(produce: ProduceRecord): produce is ProduceRecord & { originRegion: string; originPosition: number } {
  return produce.originRegion !== undefined && produce.originPosition !== undefined && produce.originPosition >= 0;
}

/** Whether `log` holds the entry an ack was for. */
export function holdsAcked(log: LogIndex, produce: ProduceRecord): boolean {
  return hasPosition(produce) ? log.hasGlobalId(produce.originRegion, produce.originPosition) : log.hasSequence(produce.producer, produce.sequenceId);
}

/** How a report names an acked entry: "shanghai:41 (p#12)". */
export function ackedId(produce: ProduceRecord): string {
  const sequence = `${produce.producer}#${produce.sequenceId}`;
  return hasPosition(produce) ? `${globalIdOf(produce)} (${sequence})` : sequence;
}

/**
 * Whether `log` holds the acked message in any copy: its global id, or the same producer and
 * sequence id. A producer that failed over resends what it had not seen acked, and a region
 * keeps the first copy of a sequence it stores, so two regions may hold one message under
 * two global ids (checkHistory reports that; the message itself is there).
 */
export function holdsMessage(log: LogIndex, produce: ProduceRecord): boolean {
  return holdsAcked(log, produce) || log.hasSequence(produce.producer, produce.sequenceId);
}

/**
 * The acked messages some of `logs` lack (in any copy: holdsMessage); acks recorded after
 * `ackedByMs` (if given) are left out.
 */
export function missingAcked(produces: readonly ProduceRecord[], logs: ReadonlyMap<string, LogIndex>, options: { ackedByMs?: number } = {}): Array<{ produce: ProduceRecord; regions: string[] }> {
  const out: Array<{ produce: ProduceRecord; regions: string[] }> = [];
  for (const produce of produces) {
    if (!produce.acked) continue;
    if (options.ackedByMs !== undefined && produce.atMs > options.ackedByMs) continue;
    const regions = [...logs].filter(([, log]) => !holdsMessage(log, produce)).map(([region]) => region);
    if (regions.length > 0) out.push({ produce, regions });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// RPO

export interface RpoPlan {
  /** What the list means, for the reader ("acked in shanghai, not in beijing/shenzhen at the fault"). */
  basis: string;
  /** When the observers' logs were measured. */
  snapshotAtMs: number;
  /** Only acks recorded at or before this moment count (the snapshot, or the end of a drain). */
  ackedByMs: number;
  /**
   * Each observer's entry count at the snapshot. Logs only grow, with dense offsets, so the
   * entries at offsets below it in the final log are exactly what the region held then.
   */
  entriesAt: Record<string, number>;
  /** Each origin region, and the regions that should hold what it acked. */
  pairs: Array<{ origin: string; observers: string[] }>;
}

export interface RpoArrival {
  arrived: boolean;
  /** When the drill's reader first saw it in that region; null if unknown or never. */
  atMs: number | null;
  /** Whether that was after the recovery finished; null if not known. */
  afterRecovery: boolean | null;
}

export interface RpoEntry {
  /** "origin:position", or null for an ack that named no position (a resend acked as a duplicate). */
  globalId: string | null;
  originRegion: string;
  originPosition: number;
  producer: string;
  sequenceId: number;
  ackedAtMs: number;
  /** Regions that did not hold it at the snapshot. */
  missingAt: string[];
  /** For each of those regions: whether (and when) it arrived afterwards. */
  arrivals: Record<string, RpoArrival>;
  arrivedEverywhere: boolean;
}

export interface RpoResult {
  applicable: true;
  basis: string;
  snapshotAtMs: number;
  ackedByMs: number;
  entriesAt: Record<string, number>;
  pairs: Array<{ origin: string; observers: string[] }>;
  /** Acked entries some observer lacked at the snapshot. */
  count: number;
  /** Of those, the ones no observer held: gone for good had the origin's disk been lost. */
  heldNowhere: number;
  /** Age at the snapshot of the oldest entry listed: the RPO as a time span. 0 when none. */
  oldestAgeMs: number;
  /** Of those, the ones that reached every region that lacked them. */
  arrivedEverywhere: number;
  notArrived: number;
  entries: RpoEntry[];
  /** Entries counted but not listed (the list is bounded). */
  omitted: number;
}

export interface RpoInput {
  plan: RpoPlan;
  produces: readonly ProduceRecord[];
  /** Each region's whole log as read at the end, in offset order. */
  finalLogs: ReadonlyMap<string, readonly StoredRecord[]>;
  /** Per region, per offset: when the drill first saw the entry there. */
  arrivedAtMs?: ReadonlyMap<string, ReadonlyMap<number, number>>;
  /** When the recovery finished (restart done, link healed). */
  recoveredAtMs?: number;
  listMax?: number;
}

interface LocatedIndex {
  index: RecordIndex;
  byGlobalId: Map<string, StoredRecord>;
  bySequence: Map<string, StoredRecord>;
}

function locate(records: readonly StoredRecord[]): LocatedIndex {
  const located: LocatedIndex = { index: new RecordIndex(), byGlobalId: new Map(), bySequence: new Map() };
  for (const r of records) {
    located.index.add(r);
    const id = globalIdOf(r);
    if (!located.byGlobalId.has(id)) located.byGlobalId.set(id, r);
    const sequence = `${r.producer}#${r.sequenceId}`;
    if (!located.bySequence.has(sequence)) located.bySequence.set(sequence, r);
  }
  return located;
}

function find(located: LocatedIndex, produce: ProduceRecord): StoredRecord | undefined {
  return hasPosition(produce) ? located.byGlobalId.get(globalIdOf(produce)) : located.bySequence.get(`${produce.producer}#${produce.sequenceId}`);
}

/**
 * The acked entries of each origin that some of its observers did not hold at the
 * snapshot, and whether each reached them by the end. An ack counts for an origin when the
 * origin region gave it (the canary records which region acked).
 */
export function computeRpo(input: RpoInput): RpoResult {
  const { plan } = input;
  const listMax = input.listMax ?? 1000;
  const observers = new Set(plan.pairs.flatMap((p) => p.observers));
  const atSnapshot = new Map<string, RecordIndex>();
  const atEnd = new Map<string, LocatedIndex>();
  for (const region of observers) {
    const log = input.finalLogs.get(region) ?? [];
    const held = plan.entriesAt[region] ?? 0;
    atSnapshot.set(region, new RecordIndex(log.filter((r) => r.offset < held)));
    atEnd.set(region, locate(log));
  }
  const entries: RpoEntry[] = [];
  for (const pair of plan.pairs) {
    for (const produce of input.produces) {
      if (!produce.acked || produce.region !== pair.origin || produce.atMs > plan.ackedByMs) continue;
      const missingAt = pair.observers.filter((region) => !holdsAcked(atSnapshot.get(region) as RecordIndex, produce));
      if (missingAt.length === 0) continue;
      const arrivals: Record<string, RpoArrival> = {};
      for (const region of missingAt) {
        const stored = find(atEnd.get(region) as LocatedIndex, produce);
        const atMs = stored ? (input.arrivedAtMs?.get(region)?.get(stored.offset) ?? null) : null;
        arrivals[region] = {
          arrived: stored !== undefined,
          atMs,
          afterRecovery: atMs === null || input.recoveredAtMs === undefined ? null : atMs > input.recoveredAtMs,
        };
      }
      entries.push({
        globalId: hasPosition(produce) ? globalIdOf(produce) : null,
        originRegion: pair.origin,
        originPosition: hasPosition(produce) ? produce.originPosition : -1,
        producer: produce.producer,
        sequenceId: produce.sequenceId,
        ackedAtMs: produce.atMs,
        missingAt,
        arrivals,
        arrivedEverywhere: Object.values(arrivals).every((a) => a.arrived),
      });
    }
  }
  entries.sort((a, b) => a.originRegion.localeCompare(b.originRegion) || a.originPosition - b.originPosition || a.producer.localeCompare(b.producer) || a.sequenceId - b.sequenceId);
  const oldestAckMs = entries.reduce((min, e) => Math.min(min, e.ackedAtMs), Infinity);
  const arrivedEverywhere = entries.filter((e) => e.arrivedEverywhere).length;
  return {
    applicable: true,
    basis: plan.basis,
    snapshotAtMs: plan.snapshotAtMs,
    ackedByMs: plan.ackedByMs,
    entriesAt: plan.entriesAt,
    pairs: plan.pairs,
    count: entries.length,
    heldNowhere: entries.filter((e) => e.missingAt.length === (plan.pairs.find((p) => p.origin === e.originRegion)?.observers.length ?? 0)).length,
    oldestAgeMs: entries.length === 0 ? 0 : Math.max(0, plan.snapshotAtMs - oldestAckMs),
    arrivedEverywhere,
    notArrived: entries.length - arrivedEverywhere,
    entries: entries.slice(0, listMax),
    omitted: Math.max(0, entries.length - listMax),
  };
}

// ---------------------------------------------------------------------------------------
// RTO

export interface RtoSpec {
  /** What the figure measures, for the reader. */
  definition: string;
  /** When the fault began. */
  faultAtMs: number;
  /** The region that failed (or lost its home). */
  region: string;
  /** The canary producer and subscription homed in that region. */
  producer: string;
  subscription: string;
  /** A success only counts in another region than `region` (a real outage). */
  mustMove: boolean;
}

export interface RtoPoint {
  atMs: number;
  /** Since the fault. */
  ms: number;
  region: string;
}

export interface RtoResult {
  applicable: true;
  definition: string;
  faultAtMs: number;
  region: string;
  producer: string;
  subscription: string;
  produce: RtoPoint | null;
  consume: RtoPoint | null;
}

/** The first acked produce and the first delivery, after the fault, of the canary homed in the failed region. */
export function computeRto(spec: RtoSpec, produces: readonly ProduceRecord[], consumes: readonly ConsumeRecord[]): RtoResult {
  const counts = (region: string): boolean => !spec.mustMove || region !== spec.region;
  let produce: RtoPoint | null = null;
  for (const p of produces) {
    if (!p.acked || p.producer !== spec.producer || p.atMs <= spec.faultAtMs || !counts(p.region)) continue;
    if (!produce || p.atMs < produce.atMs) produce = { atMs: p.atMs, ms: p.atMs - spec.faultAtMs, region: p.region };
  }
  let consume: RtoPoint | null = null;
  for (const c of consumes) {
    if (c.subscription !== spec.subscription || c.atMs <= spec.faultAtMs || !counts(c.region)) continue;
    if (!consume || c.atMs < consume.atMs) consume = { atMs: c.atMs, ms: c.atMs - spec.faultAtMs, region: c.region };
  }
  return { applicable: true, definition: spec.definition, faultAtMs: spec.faultAtMs, region: spec.region, producer: spec.producer, subscription: spec.subscription, produce, consume };
}

// ---------------------------------------------------------------------------------------
// Duplicates and order, as the canary consumers saw them

export interface Delivery {
  atMs: number;
  region: string;
  globalId: string;
}

export interface DuplicateDelivery {
  subscription: string;
  producer: string;
  sequenceId: number;
  payload: string;
  /** Every delivery of the message, the first included. */
  deliveries: Delivery[];
}

export interface DuplicatesResult {
  /** Deliveries beyond the first of each message, over all subscriptions. */
  count: number;
  /** Messages delivered more than once (per subscription). */
  messages: number;
  bySubscription: Record<string, number>;
  list: DuplicateDelivery[];
  omitted: number;
}

/** A message (unique payload) delivered more than once to one subscription is a duplicate. */
export function computeDuplicates(consumes: readonly ConsumeRecord[], listMax = 200): DuplicatesResult {
  const bySubscription = new Map<string, Map<string, ConsumeRecord[]>>();
  for (const c of consumes) {
    let byPayload = bySubscription.get(c.subscription);
    if (!byPayload) {
      byPayload = new Map();
      bySubscription.set(c.subscription, byPayload);
    }
    const seen = byPayload.get(c.payload);
    if (seen) seen.push(c);
    else byPayload.set(c.payload, [c]);
  }
  const list: DuplicateDelivery[] = [];
  const counts: Record<string, number> = {};
  let count = 0;
  for (const [subscription, byPayload] of [...bySubscription].sort(([a], [b]) => a.localeCompare(b))) {
    counts[subscription] = 0;
    for (const [payload, deliveries] of byPayload) {
      if (deliveries.length < 2) continue;
      counts[subscription] += deliveries.length - 1;
      count += deliveries.length - 1;
      const first = deliveries[0] as ConsumeRecord;
      list.push({ subscription, producer: first.producer, sequenceId: first.sequenceId, payload, deliveries: deliveries.map((d) => ({ atMs: d.atMs, region: d.region, globalId: globalIdOf(d) })) });
    }
  }
  list.sort((a, b) => a.subscription.localeCompare(b.subscription) || (a.deliveries[1]?.atMs ?? 0) - (b.deliveries[1]?.atMs ?? 0));
  return { count, messages: list.length, bySubscription: counts, list: list.slice(0, listMax), omitted: Math.max(0, list.length - listMax) };
}

export interface DeliveryOrderViolation {
  subscription: string;
  producer: string;
  sequenceId: number;
  /** The highest sequence id of the producer this subscription had already been given. */
  afterSequenceId: number;
  atMs: number;
  region: string;
  globalId: string;
}

export interface DeliveryOrderResult {
  count: number;
  list: DeliveryOrderViolation[];
  omitted: number;
}

/**
 * Per subscription and producer, a message delivered for the first time after one with a
 * higher sequence id. Repeats are duplicates, counted there, not here.
 */
export function computeDeliveryOrder(consumes: readonly ConsumeRecord[], listMax = 200): DeliveryOrderResult {
  const seen = new Map<string, Set<string>>();
  const highest = new Map<string, number>();
  const list: DeliveryOrderViolation[] = [];
  const ordered = [...consumes].sort((a, b) => a.atMs - b.atMs);
  for (const c of ordered) {
    let payloads = seen.get(c.subscription);
    if (!payloads) {
      payloads = new Set();
      seen.set(c.subscription, payloads);
    }
    if (payloads.has(c.payload)) continue;
    payloads.add(c.payload);
    const key = `${c.subscription}\u0000${c.producer}`;
    const before = highest.get(key);
    if (before !== undefined && c.sequenceId < before) {
      list.push({ subscription: c.subscription, producer: c.producer, sequenceId: c.sequenceId, afterSequenceId: before, atMs: c.atMs, region: c.region, globalId: globalIdOf(c) });
    }
    if (before === undefined || c.sequenceId > before) highest.set(key, c.sequenceId);
  }
  return { count: list.length, list: list.slice(0, listMax), omitted: Math.max(0, list.length - listMax) };
}

export interface DivergentCopy {
  producer: string;
  sequenceId: number;
  /** Each global id the message is stored under, and the regions holding that copy. */
  copies: Array<{ globalId: string; regions: string[] }>;
}

export interface DivergentCopiesResult {
  count: number;
  list: DivergentCopy[];
  omitted: number;
}

/**
 * Messages (producer, sequence id) stored under more than one global id across the final
 * logs: a producer failed over and resent a message its old region had stored without
 * acking it, and each region kept the copy it stored first.
 */
export function computeDivergentCopies(finalLogs: ReadonlyMap<string, readonly StoredRecord[]>, listMax = 200): DivergentCopiesResult {
  const copies = new Map<string, Map<string, Set<string>>>();
  for (const [region, records] of finalLogs) {
    for (const r of records) {
      const key = `${r.producer}#${r.sequenceId}`;
      let byId = copies.get(key);
      if (!byId) {
        byId = new Map();
        copies.set(key, byId);
      }
      const id = globalIdOf(r);
      let regions = byId.get(id);
      if (!regions) {
        regions = new Set();
        byId.set(id, regions);
      }
      regions.add(region);
    }
  }
  const list: DivergentCopy[] = [];
  for (const byId of copies.values()) {
    if (byId.size < 2) continue;
    const first = [...finalLogs.values()].flat().find((r) => byId.has(globalIdOf(r))) as StoredRecord;
    list.push({ producer: first.producer, sequenceId: first.sequenceId, copies: [...byId].map(([globalId, regions]) => ({ globalId, regions: [...regions].sort() })) });
  }
  list.sort((a, b) => a.producer.localeCompare(b.producer) || a.sequenceId - b.sequenceId);
  return { count: list.length, list: list.slice(0, listMax), omitted: Math.max(0, list.length - listMax) };
}

// ---------------------------------------------------------------------------------------
// Catch-up, residency, canary summaries, the chart's series

export interface CatchUpResult {
  applicable: true;
  /** When the recovery finished; catch-up is measured from here. */
  fromMs: number;
  caughtUpAtMs: number | null;
  ms: number | null;
  timeoutMs: number;
  /** Acked entries (recorded by fromMs) that every region had to hold. */
  ackedEntries: number;
  /** When it timed out: what was still missing, and where. */
  missing: Array<{ id: string; regions: string[] }>;
  omitted: number;
}

export function catchUpResult(input: { fromMs: number; caughtUpAtMs: number | null; timeoutMs: number; ackedEntries: number; missing: Array<{ produce: ProduceRecord; regions: string[] }>; listMax?: number }): CatchUpResult {
  const listMax = input.listMax ?? 100;
  return {
    applicable: true,
    fromMs: input.fromMs,
    caughtUpAtMs: input.caughtUpAtMs,
    ms: input.caughtUpAtMs === null ? null : Math.max(0, input.caughtUpAtMs - input.fromMs),
    timeoutMs: input.timeoutMs,
    ackedEntries: input.ackedEntries,
    missing: input.missing.slice(0, listMax).map((m) => ({ id: ackedId(m.produce), regions: m.regions })),
    omitted: Math.max(0, input.missing.length - listMax),
  };
}

export interface ResidencyRegion {
  region: string;
  /** Whether the tenant may have data here. */
  allowed: boolean;
  reachable: boolean;
  error?: string;
  /** The tenant's record exists here (metadata; data is what `topics` says). */
  tenantPresent: boolean;
  /** The tenant's topics held here (from the admin API). */
  topics: string[];
  /** Entries of the canary topic here; null when it does not exist or was not readable. */
  canaryEntries: number | null;
  /** Replication receivers' residency refusals (GET /replication/status), at the start and at the end. */
  residencyRefusalsAtStart: number | null;
  residencyRefusals: number | null;
  /** Entries of the tenant's topics senders here withheld from regions that may not hold them. */
  withheldEntries: number | null;
}

export interface ResidencyResult {
  tenant: string;
  allowedRegions: string[];
  regions: ResidencyRegion[];
  violations: string[];
  /** Regions that could not be checked. */
  unchecked: string[];
}

/** A topic of the tenant outside its allowed regions is a violation; an unreachable region is unchecked. */
export function evaluateResidency(tenant: string, allowedRegions: string[], regions: ResidencyRegion[]): ResidencyResult {
  const violations: string[] = [];
  for (const r of regions) {
    if (r.allowed || r.topics.length === 0) continue;
    const shown = r.topics.slice(0, 5).join(', ') + (r.topics.length > 5 ? ', …' : '');
    violations.push(`${r.region} holds ${plural(r.topics.length, 'topic', 'topics')} of tenant ${tenant} outside its allowed regions [${allowedRegions.join(', ')}]: ${shown}`);
  }
  return { tenant, allowedRegions, regions, violations, unchecked: regions.filter((r) => !r.reachable).map((r) => r.region) };
}

export interface ProducerSummary {
  producer: string;
  homeRegion: string;
  attempts: number;
  acked: number;
  failed: number;
  ackedByRegion: Record<string, number>;
  /** Failed attempts by error code. */
  errors: Record<string, number>;
}

export interface ConsumerSummary {
  subscription: string;
  homeRegion: string;
  deliveries: number;
  /** Distinct messages delivered. */
  messages: number;
  byRegion: Record<string, number>;
  /** Acked messages never delivered to this subscription by the end. */
  undelivered: number;
}

export function summarizeProducers(produces: readonly ProduceRecord[], homes: ReadonlyMap<string, string>, errors: ReadonlyMap<string, Record<string, number>> = new Map()): ProducerSummary[] {
  return [...homes].map(([producer, homeRegion]) => {
    const own = produces.filter((p) => p.producer === producer);
    const ackedByRegion: Record<string, number> = {};
    for (const p of own) if (p.acked) ackedByRegion[p.region] = (ackedByRegion[p.region] ?? 0) + 1;
    const acked = own.filter((p) => p.acked).length;
    return { producer, homeRegion, attempts: own.length, acked, failed: own.length - acked, ackedByRegion, errors: errors.get(producer) ?? {} };
  });
}

export function summarizeConsumers(consumes: readonly ConsumeRecord[], produces: readonly ProduceRecord[], homes: ReadonlyMap<string, string>): ConsumerSummary[] {
  const ackedPayloads = new Set(produces.filter((p) => p.acked).map((p) => p.payload));
  return [...homes].map(([subscription, homeRegion]) => {
    const own = consumes.filter((c) => c.subscription === subscription);
    const byRegion: Record<string, number> = {};
    for (const c of own) byRegion[c.region] = (byRegion[c.region] ?? 0) + 1;
    const payloads = new Set(own.map((c) => c.payload));
    let undelivered = 0;
    for (const payload of ackedPayloads) if (!payloads.has(payload)) undelivered++;
    return { subscription, homeRegion, deliveries: own.length, messages: payloads.size, byRegion, undelivered };
  });
}

export interface SeriesBucket {
  /** Bucket start, ms after the drill started. */
  tMs: number;
  /** Acked sends by the region that acked them. */
  acked: Record<string, number>;
  failed: number;
  delivered: number;
}

export interface Series {
  bucketMs: number;
  buckets: SeriesBucket[];
}

/** Acks, failures and deliveries per time bucket (at most about 240 buckets, at least 500 ms each). */
export function computeSeries(produces: readonly ProduceRecord[], consumes: readonly ConsumeRecord[], startedAtMs: number, finishedAtMs: number): Series {
  const durationMs = Math.max(1, finishedAtMs - startedAtMs);
  const bucketMs = Math.max(500, Math.ceil(durationMs / 240 / 500) * 500);
  const count = Math.ceil(durationMs / bucketMs);
  const buckets: SeriesBucket[] = Array.from({ length: count }, (_, i) => ({ tMs: i * bucketMs, acked: {}, failed: 0, delivered: 0 }));
  const at = (ms: number): SeriesBucket | undefined => buckets[Math.min(count - 1, Math.floor((ms - startedAtMs) / bucketMs))];
  for (const p of produces) {
    if (p.atMs < startedAtMs) continue;
    const bucket = at(p.atMs);
    if (!bucket) continue;
    if (p.acked) bucket.acked[p.region] = (bucket.acked[p.region] ?? 0) + 1;
    else bucket.failed++;
  }
  for (const c of consumes) {
    if (c.atMs < startedAtMs) continue;
    const bucket = at(c.atMs);
    if (bucket) bucket.delivered++;
  }
  return { bucketMs, buckets };
}

// ---------------------------------------------------------------------------------------
// The report

/** The node's receiver counters and the canary topic's links in one region, sampled just before recovery. */
export interface RegionStatusSample {
  region: string;
  error?: string;
  receiver?: Record<string, number>;
  links?: Array<{ to: string; state: string; backlogEntries: number; replicationDelayMs: number; clockSkewAlert: boolean }>;
}

/** The planned failover's phases, on the drill's clock. */
export interface FailoverSummary extends Pick<FailoverResult, 'tenant' | 'from' | 'to' | 'fencedAtMs' | 'drainedAtMs' | 'movedAtMs' | 'unfencedAtMs' | 'totalMs' | 'drainMs'> {
  /** The progress reports, in order. */
  progress: Array<{ phase: string; elapsedMs: number; backlogEntries?: number; topicsPending?: number; atMs: number }>;
}

export interface InvariantsResult {
  /** The regions checkHistory required to hold every entry. */
  regions: string[];
  count: number;
  violations: Violation[];
  /** formatViolations' text. */
  text: string;
}

export interface Finding {
  severity: 'fail' | 'warn' | 'ok';
  text: string;
}

export interface DrillReport {
  version: typeof REPORT_VERSION;
  runId: string;
  scenario: ScenarioSummary;
  target: { kind: string; description: string; regions: string[] };
  tenant: string;
  namespace: string;
  topic: string;
  homeRegion: string;
  allowedRegions: string[];
  /** Regions the canary clients use (the tenant's, home first). */
  canaryRegions: string[];
  /** Regions whose logs the drill read (the namespace's replication set). */
  observedRegions: string[];
  startedAtMs: number;
  finishedAtMs: number;
  settings: Record<string, number | string | boolean>;
  phases: PhaseRecord[];
  events: TimelineEvent[];
  canary: { producers: ProducerSummary[]; consumers: ConsumerSummary[] };
  rpo: RpoResult | NotApplicable;
  rto: RtoResult | NotApplicable;
  duplicates: DuplicatesResult;
  deliveryOrder: DeliveryOrderResult;
  /** Messages stored under two global ids (a resend after failover); checkHistory counts them under invariant 2. */
  divergentCopies: DivergentCopiesResult;
  catchUp: CatchUpResult | NotApplicable;
  residency: ResidencyResult;
  invariants: InvariantsResult;
  statusBeforeRecovery: RegionStatusSample[];
  failover: FailoverSummary | null;
  series: Series;
  findings: Finding[];
  notes: string[];
}

export interface ReportInput
  extends Pick<
    DrillReport,
    'runId' | 'scenario' | 'target' | 'tenant' | 'namespace' | 'topic' | 'homeRegion' | 'allowedRegions' | 'canaryRegions' | 'observedRegions' | 'startedAtMs' | 'finishedAtMs' | 'settings' | 'phases' | 'events'
  > {
  produces: readonly ProduceRecord[];
  consumes: readonly ConsumeRecord[];
  /** Canary producer name → home region, and subscription → home region. */
  producerHomes: ReadonlyMap<string, string>;
  consumerHomes: ReadonlyMap<string, string>;
  producerErrors?: ReadonlyMap<string, Record<string, number>>;
  finalLogs: ReadonlyMap<string, readonly StoredRecord[]>;
  arrivedAtMs?: ReadonlyMap<string, ReadonlyMap<number, number>>;
  rpoPlan: RpoPlan | NotApplicable;
  rtoSpec: RtoSpec | NotApplicable;
  recoveredAtMs?: number;
  catchUp: CatchUpResult | NotApplicable;
  residency: ResidencyResult;
  violations: Violation[];
  statusBeforeRecovery?: RegionStatusSample[];
  failover?: FailoverSummary | null;
  notes?: string[];
}

export function buildReport(input: ReportInput): DrillReport {
  const rpo = 'applicable' in input.rpoPlan ? input.rpoPlan : computeRpo({ plan: input.rpoPlan, produces: input.produces, finalLogs: input.finalLogs, ...(input.arrivedAtMs ? { arrivedAtMs: input.arrivedAtMs } : {}), ...(input.recoveredAtMs !== undefined ? { recoveredAtMs: input.recoveredAtMs } : {}) });
  const rto = 'applicable' in input.rtoSpec ? input.rtoSpec : computeRto(input.rtoSpec, input.produces, input.consumes);
  const report: DrillReport = {
    version: REPORT_VERSION,
    runId: input.runId,
    scenario: input.scenario,
    target: input.target,
    tenant: input.tenant,
    namespace: input.namespace,
    topic: input.topic,
    homeRegion: input.homeRegion,
    allowedRegions: input.allowedRegions,
    canaryRegions: input.canaryRegions,
    observedRegions: input.observedRegions,
    startedAtMs: input.startedAtMs,
    finishedAtMs: input.finishedAtMs,
    settings: input.settings,
    phases: input.phases,
    events: [...input.events].sort((a, b) => a.atMs - b.atMs),
    canary: {
      producers: summarizeProducers(input.produces, input.producerHomes, input.producerErrors),
      consumers: summarizeConsumers(input.consumes, input.produces, input.consumerHomes),
    },
    rpo,
    rto,
    duplicates: computeDuplicates(input.consumes),
    deliveryOrder: computeDeliveryOrder(input.consumes),
    divergentCopies: computeDivergentCopies(input.finalLogs),
    catchUp: input.catchUp,
    residency: input.residency,
    invariants: { regions: input.observedRegions, count: input.violations.length, violations: input.violations, text: formatViolations(input.violations) },
    statusBeforeRecovery: input.statusBeforeRecovery ?? [],
    failover: input.failover ?? null,
    series: computeSeries(input.produces, input.consumes, input.startedAtMs, input.finishedAtMs),
    findings: [],
    notes: input.notes ?? [],
  };
  report.findings = assessFindings(report);
  return report;
}

/** What the figures say, most serious first. A 'fail' makes `admq drill` exit with 1. */
export function assessFindings(report: DrillReport): Finding[] {
  const out: Finding[] = [];
  const { rpo, rto, catchUp } = report;
  if (rpo.applicable) {
    if (rpo.notArrived > 0) out.push({ severity: 'fail', text: `${plural(rpo.notArrived, 'acked entry', 'acked entries')} at risk at the snapshot never reached every region` });
    else if (rpo.count > 0) out.push({ severity: 'ok', text: `RPO: ${plural(rpo.count, 'acked entry was', 'acked entries were')} not yet replicated (oldest ${formatMs(rpo.oldestAgeMs)}); all arrived later` });
    else out.push({ severity: 'ok', text: 'RPO: nothing acked was left unreplicated' });
    if (report.scenario.name === 'planned-failover' && rpo.count > 0) out.push({ severity: 'fail', text: `planned failover: ${plural(rpo.count, 'acked entry was', 'acked entries were')} missing in ${report.scenario.to ?? 'the target'} after the drain (RPO must be 0)` });
  }
  if (report.invariants.count > 0) {
    const kinds = [...new Set(report.invariants.violations.map((v) => v.kind))].join(', ');
    out.push({ severity: 'fail', text: `${plural(report.invariants.count, 'invariant violation', 'invariant violations')} in the final logs (${kinds})` });
  } else out.push({ severity: 'ok', text: 'invariants 1–5 hold on the final logs (checkHistory)' });
  if (report.divergentCopies.count > 0) {
    out.push({
      severity: 'warn',
      text: `${plural(report.divergentCopies.count, 'message is', 'messages are')} stored under two global ids: a producer failed over and resent what its region had stored but not acked, and each region kept the copy it stored first (checkHistory reports these as invariant 2 violations)`,
    });
  }
  if (catchUp.applicable) {
    if (catchUp.caughtUpAtMs === null) out.push({ severity: 'fail', text: `catch-up did not finish within ${formatMs(catchUp.timeoutMs)}: ${plural(catchUp.missing.length + catchUp.omitted, 'acked entry', 'acked entries')} still missing somewhere` });
    else out.push({ severity: 'ok', text: `caught up ${formatMs(catchUp.ms ?? 0)} after recovery` });
  }
  if (report.residency.violations.length > 0) out.push({ severity: 'fail', text: `residency: ${report.residency.violations.join('; ')}` });
  else out.push({ severity: 'ok', text: `residency: tenant ${report.tenant}'s topics only in [${report.residency.allowedRegions.join(', ')}]` });
  if (report.residency.unchecked.length > 0) out.push({ severity: 'warn', text: `residency: could not check ${report.residency.unchecked.join(', ')}` });
  if (rto.applicable) {
    if (rto.produce === null || rto.consume === null) {
      const missing = [rto.produce === null ? 'produce' : '', rto.consume === null ? 'consume' : ''].filter((s) => s).join(' and ');
      out.push({ severity: 'warn', text: `RTO: no successful ${missing} by the canary homed in ${rto.region} after the fault` });
    } else out.push({ severity: 'ok', text: `RTO: produce ${formatMs(rto.produce.ms)} (${rto.produce.region}), consume ${formatMs(rto.consume.ms)} (${rto.consume.region})` });
  }
  const undelivered = report.canary.consumers.filter((c) => c.undelivered > 0);
  if (undelivered.length > 0) out.push({ severity: 'warn', text: `undelivered at the end: ${undelivered.map((c) => `${c.subscription} ${c.undelivered}`).join(', ')}` });
  if (report.duplicates.count > 0) out.push({ severity: 'warn', text: `${plural(report.duplicates.count, 'duplicate delivery', 'duplicate deliveries')} to canary consumers (at-least-once after a failover)` });
  if (report.deliveryOrder.count > 0) out.push({ severity: 'warn', text: `${plural(report.deliveryOrder.count, 'delivery', 'deliveries')} out of producer order` });
  const order = { fail: 0, warn: 1, ok: 2 } as const;
  return out.sort((a, b) => order[a.severity] - order[b.severity]);
}

export function failed(report: DrillReport): boolean {
  return report.findings.some((f) => f.severity === 'fail');
}

// ---------------------------------------------------------------------------------------
// Rendering

/** The report as JSON (bigints, should any slip in, as decimal strings). */
export function renderJson(report: DrillReport): string {
  return `${JSON.stringify(report, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value), 2)}\n`;
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}

function relative(report: DrillReport, atMs: number): string {
  return `+${((atMs - report.startedAtMs) / 1000).toFixed(2)} s`;
}

/** A few lines for the terminal. */
export function renderText(report: DrillReport): string {
  const lines = [`admq drill ${report.runId}: ${report.scenario.title}`, `target: ${report.target.description}`, `topic: ${report.topic}`];
  const { rpo, rto, catchUp } = report;
  lines.push(
    rpo.applicable
      ? `RPO: ${plural(rpo.count, 'acked entry', 'acked entries')} at risk (${rpo.heldNowhere} held by no other region, oldest ${formatMs(rpo.oldestAgeMs)}); ${rpo.arrivedEverywhere} arrived later, ${rpo.notArrived} never`
      : `RPO: n/a (${rpo.reason})`,
  );
  lines.push(rto.applicable ? `RTO: produce ${rto.produce ? `${formatMs(rto.produce.ms)} in ${rto.produce.region}` : 'not reached'}, consume ${rto.consume ? `${formatMs(rto.consume.ms)} in ${rto.consume.region}` : 'not reached'}` : `RTO: n/a (${rto.reason})`);
  lines.push(`duplicates: ${report.duplicates.count}; out-of-order deliveries: ${report.deliveryOrder.count}; invariant violations: ${report.invariants.count}; messages under two global ids: ${report.divergentCopies.count}`);
  lines.push(catchUp.applicable ? `catch-up: ${catchUp.ms === null ? `not within ${formatMs(catchUp.timeoutMs)}` : formatMs(catchUp.ms)}` : `catch-up: n/a (${catchUp.reason})`);
  lines.push(`residency: ${report.residency.violations.length === 0 ? 'ok' : report.residency.violations.join('; ')}`);
  for (const f of report.findings) lines.push(`  [${f.severity}] ${f.text}`);
  return lines.join('\n');
}

function esc(value: unknown): string {
  return String(value).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');
}

const REGION_COLOURS = ['#2f6fb0', '#d9822b', '#3a9a5b', '#8e5bb5', '#b5475b', '#4f8f9a', '#a08a2a', '#6b6b6b'];
const PHASE_COLOURS: Record<PhaseName, string> = {
  'prepare': '#e3e7ee',
  'warm-up': '#d6e6f5',
  'fault': '#f6c9c4',
  'recovery': '#f7e0b5',
  'catch-up': '#fdf0c8',
  'observe': '#d9efdc',
  'drain': '#e6e0f1',
  'verify': '#e3e7ee',
};

function regionColour(report: DrillReport, region: string): string {
  const index = report.target.regions.indexOf(region);
  return REGION_COLOURS[(index < 0 ? report.target.regions.length : index) % REGION_COLOURS.length] as string;
}

/** Tick spacing for an axis of `spanMs`: 1, 2, 5, 10, 15, 30, 60 s … */
function tickStepMs(spanMs: number): number {
  for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]) if (spanMs / (s * 1000) <= 12) return s * 1000;
  return 7200_000;
}

/** The timeline: phases, a shaded fault, numbered events, and acks/failures/deliveries per bucket. */
export function renderTimelineSvg(report: DrillReport): string {
  const width = 1000;
  const left = 56;
  const right = 16;
  const plotWidth = width - left - right;
  const spanMs = Math.max(1, report.finishedAtMs - report.startedAtMs);
  const x = (atMs: number): number => left + (Math.min(Math.max(atMs - report.startedAtMs, 0), spanMs) / spanMs) * plotWidth;
  const phaseTop = 8;
  const phaseHeight = 22;
  const markerTop = 36;
  const markerRows = 3;
  const markerRowHeight = 18;
  const chartTop = markerTop + markerRows * markerRowHeight + 6;
  const chartHeight = 170;
  const failHeight = 40;
  const axisY = chartTop + chartHeight;
  const height = axisY + failHeight + 34;
  const parts: string[] = [];
  parts.push(`<svg viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="drill timeline">`);
  // Phases.
  for (const p of report.phases) {
    const x0 = x(p.startedAtMs);
    const w = Math.max(1, x(p.endedAtMs) - x0);
    parts.push(`<rect x="${x0.toFixed(1)}" y="${phaseTop}" width="${w.toFixed(1)}" height="${phaseHeight}" fill="${PHASE_COLOURS[p.phase]}" stroke="#fff"><title>${esc(`${p.phase}: ${formatMs(p.endedAtMs - p.startedAtMs)} ${p.note}`)}</title></rect>`);
    if (w > p.phase.length * 6.5 + 8) parts.push(`<text x="${(x0 + w / 2).toFixed(1)}" y="${phaseTop + 15}" text-anchor="middle" class="ph">${esc(p.phase)}</text>`);
  }
  // The fault's span, shaded behind the chart.
  const fault = report.events.find((e) => e.kind === 'fault');
  const healed = report.events.find((e) => e.kind === 'recovered');
  if (fault) {
    const x0 = x(fault.atMs);
    const x1 = healed ? x(healed.atMs) : x(report.finishedAtMs);
    parts.push(`<rect x="${x0.toFixed(1)}" y="${chartTop}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${chartHeight + failHeight}" fill="#fbe3e0"><title>fault in force</title></rect>`);
  }
  // Bars: acks stacked by region, failures hanging below the axis.
  const { buckets, bucketMs } = report.series;
  const ackedMax = Math.max(1, ...buckets.map((b) => Object.values(b.acked).reduce((s, n) => s + n, 0)));
  // Deliveries have a scale of their own (right axis): a consumer replaying after a failover would flatten the acks.
  const deliveredMax = Math.max(1, ...buckets.map((b) => b.delivered));
  const failedMax = Math.max(1, ...buckets.map((b) => b.failed));
  const barWidth = Math.max(1, (bucketMs / spanMs) * plotWidth - 1);
  for (const b of buckets) {
    const x0 = x(report.startedAtMs + b.tMs);
    let y = axisY;
    for (const region of report.target.regions.concat(Object.keys(b.acked).filter((r) => !report.target.regions.includes(r)))) {
      const n = b.acked[region] ?? 0;
      if (n === 0) continue;
      const h = (n / ackedMax) * chartHeight;
      y -= h;
      parts.push(`<rect x="${x0.toFixed(1)}" y="${y.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${h.toFixed(1)}" fill="${regionColour(report, region)}"><title>${esc(`${region}: ${n} acked at +${(b.tMs / 1000).toFixed(1)} s`)}</title></rect>`);
    }
    if (b.failed > 0) {
      const h = (b.failed / failedMax) * (failHeight - 4);
      parts.push(`<rect x="${x0.toFixed(1)}" y="${axisY + 2}" width="${barWidth.toFixed(1)}" height="${h.toFixed(1)}" fill="#c0392b"><title>${esc(`${b.failed} failed sends at +${(b.tMs / 1000).toFixed(1)} s`)}</title></rect>`);
    }
  }
  const points = buckets.map((b) => `${(x(report.startedAtMs + b.tMs) + barWidth / 2).toFixed(1)},${(axisY - (b.delivered / deliveredMax) * chartHeight).toFixed(1)}`);
  if (points.length > 1) parts.push(`<polyline points="${points.join(' ')}" fill="none" stroke="#222" stroke-width="1.5" stroke-dasharray="4 2"><title>deliveries to canary consumers</title></polyline>`);
  // Axes.
  parts.push(`<line x1="${left}" y1="${axisY}" x2="${width - right}" y2="${axisY}" stroke="#444"/>`);
  parts.push(`<line x1="${left}" y1="${chartTop}" x2="${left}" y2="${axisY + failHeight}" stroke="#444"/>`);
  parts.push(`<text x="${left - 6}" y="${chartTop + 10}" text-anchor="end" class="ax">${esc(Math.round(ackedMax))}</text>`);
  parts.push(`<text x="${left - 6}" y="${axisY + 4}" text-anchor="end" class="ax">0</text>`);
  parts.push(`<text x="${width - right}" y="${chartTop - 4}" text-anchor="end" class="ax">deliveries (- -): max ${esc(deliveredMax)} per ${esc(formatMs(bucketMs))}</text>`);
  parts.push(`<text x="${left - 6}" y="${axisY + failHeight - 2}" text-anchor="end" class="ax fail">${esc(failedMax)}</text>`);
  parts.push(`<text x="${left - 44}" y="${chartTop + chartHeight / 2}" class="ax" transform="rotate(-90 ${left - 44} ${chartTop + chartHeight / 2})" text-anchor="middle">acked per ${esc(formatMs(bucketMs))}</text>`);
  const step = tickStepMs(spanMs);
  for (let t = 0; t <= spanMs; t += step) {
    const tx = x(report.startedAtMs + t);
    parts.push(`<line x1="${tx.toFixed(1)}" y1="${axisY + failHeight}" x2="${tx.toFixed(1)}" y2="${axisY + failHeight + 5}" stroke="#444"/>`);
    parts.push(`<text x="${tx.toFixed(1)}" y="${axisY + failHeight + 17}" text-anchor="middle" class="ax">+${t / 1000} s</text>`);
  }
  // Numbered event markers; the table under the chart says what each is. Markers close
  // together go to the next row down instead of on top of each other.
  const rowEnds: number[] = Array.from({ length: markerRows }, () => -Infinity);
  report.events.forEach((e, i) => {
    const ex = x(e.atMs);
    let row = rowEnds.findIndex((end) => ex - end >= 18);
    if (row < 0) row = rowEnds.indexOf(Math.min(...rowEnds));
    rowEnds[row] = ex;
    const cy = markerTop + 8 + row * markerRowHeight;
    parts.push(`<line x1="${ex.toFixed(1)}" y1="${cy + 8}" x2="${ex.toFixed(1)}" y2="${axisY + failHeight}" stroke="#555" stroke-width="0.8" stroke-dasharray="2 2"/>`);
    parts.push(`<g><title>${esc(`${i + 1}. ${relative(report, e.atMs)} ${e.text}`)}</title><circle cx="${ex.toFixed(1)}" cy="${cy}" r="8" fill="#fff" stroke="#555"/><text x="${ex.toFixed(1)}" y="${cy + 3.5}" text-anchor="middle" class="mk">${i + 1}</text></g>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

function table(headers: string[], rows: string[][], empty = 'none'): string {
  if (rows.length === 0) return `<p class="muted">${esc(empty)}</p>`;
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

function more(omitted: number): string {
  return omitted > 0 ? `<p class="muted">… and ${esc(omitted)} more (see report.json for the counts; lists are bounded)</p>` : '';
}

function isoTime(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232b;margin:0;background:#f6f7f9}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde4;padding-bottom:4px}
.muted{color:#667}.mono,td.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0}th,td{border:1px solid #dde2e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:10px 12px}.card b{display:block;font-size:20px}.card span{color:#667;font-size:12px}
.fail{color:#b02a1e}.warn{color:#a86a00}.ok{color:#2d7a3e}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}.badge.fail{background:#b02a1e;color:#fff}.badge.ok{background:#2d7a3e;color:#fff}
.chart{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:8px}
svg text.ph{font-size:11px;fill:#333}svg text.ax{font-size:10.5px;fill:#444}svg text.ax.fail{fill:#b02a1e}svg text.mk{font-size:10px;fill:#222;font-weight:600}
.legend span{display:inline-block;margin-right:14px;font-size:12px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}
pre{background:#fff;border:1px solid #dde2e8;padding:8px;overflow:auto;font-size:12px}
ul.findings{list-style:none;padding:0}ul.findings li{margin:2px 0}
`;

/** A self-contained page: inline CSS and SVG, no script, no external resource. */
export function renderHtml(report: DrillReport): string {
  const { rpo, rto, catchUp } = report;
  const verdict = failed(report) ? '<span class="badge fail">FAILED</span>' : '<span class="badge ok">PASSED</span>';
  const cards: Array<[string, string, string]> = [
    ['RPO (entries at risk)', rpo.applicable ? String(rpo.count) : 'n/a', rpo.applicable ? `oldest ${formatMs(rpo.oldestAgeMs)}; ${rpo.notArrived} never arrived` : rpo.reason],
    ['RTO produce', rto.applicable ? (rto.produce ? formatMs(rto.produce.ms) : 'not reached') : 'n/a', rto.applicable ? (rto.produce ? `in ${rto.produce.region}` : '') : rto.reason],
    ['RTO consume', rto.applicable ? (rto.consume ? formatMs(rto.consume.ms) : 'not reached') : 'n/a', rto.applicable ? (rto.consume ? `in ${rto.consume.region}` : '') : rto.reason],
    ['catch-up', catchUp.applicable ? (catchUp.ms === null ? 'not reached' : formatMs(catchUp.ms)) : 'n/a', catchUp.applicable ? `${catchUp.ackedEntries} acked entries` : catchUp.reason],
    ['duplicates delivered', String(report.duplicates.count), `${report.duplicates.messages} messages`],
    ['out-of-order deliveries', String(report.deliveryOrder.count), 'per producer, per subscription'],
    ['invariant violations', String(report.invariants.count), `checkHistory, DESIGN §10 1–5; ${report.divergentCopies.count} divergent copies`],
    ['residency', report.residency.violations.length === 0 ? 'ok' : `${report.residency.violations.length} violations`, `allowed: ${report.residency.allowedRegions.join(', ')}`],
  ];
  const legend = report.target.regions.map((r) => `<span><i style="background:${regionColour(report, r)}"></i>acked in ${esc(r)}</span>`).join('') + '<span><i style="background:#c0392b"></i>failed sends</span><span><i style="background:#fbe3e0"></i>fault in force</span><span>- - deliveries</span>';
  const sections: string[] = [];
  sections.push(`<h2>Timeline</h2><div class="chart">${renderTimelineSvg(report)}<div class="legend">${legend}</div></div>`);
  sections.push(
    `<h2>Events</h2>${table(
      ['#', 'time', 'event'],
      report.events.map((e, i) => [String(i + 1), `<span class="mono">${esc(relative(report, e.atMs))}</span>`, esc(e.text)]),
    )}`,
  );
  sections.push(
    `<h2>Findings</h2><ul class="findings">${report.findings.map((f) => `<li class="${f.severity}">[${esc(f.severity)}] ${esc(f.text)}</li>`).join('')}</ul>`,
  );
  // RPO
  if (rpo.applicable) {
    sections.push(
      `<h2>RPO: acked entries not yet replicated</h2><p>${esc(rpo.basis)}. Snapshot at ${esc(relative(report, rpo.snapshotAtMs))}; entries then: ${esc(
        Object.entries(rpo.entriesAt)
          .map(([r, n]) => `${r} ${n}`)
          .join(', '),
      )}. ${esc(rpo.count)} listed, ${esc(rpo.heldNowhere)} held by no other region, ${esc(rpo.arrivedEverywhere)} arrived later, ${esc(rpo.notArrived)} never.</p>${table(
        ['global id', 'producer #seq', 'acked', 'missing at snapshot', 'arrival'],
        rpo.entries.map((e) => [
          `<span class="mono">${esc(e.globalId ?? '(no position)')}</span>`,
          `<span class="mono">${esc(`${e.producer}#${e.sequenceId}`)}</span>`,
          esc(relative(report, e.ackedAtMs)),
          esc(e.missingAt.join(', ')),
          Object.entries(e.arrivals)
            .map(([r, a]) => `<span class="${a.arrived ? 'ok' : 'fail'}">${esc(r)}: ${a.arrived ? (a.atMs === null ? 'arrived' : `${esc(relative(report, a.atMs))}${a.afterRecovery ? ' (after recovery)' : a.afterRecovery === false ? ' (before recovery)' : ''}`) : 'never'}</span>`)
            .join('<br>'),
        ]),
        'nothing acked was left unreplicated',
      )}${more(rpo.omitted)}`,
    );
  } else sections.push(`<h2>RPO</h2><p class="muted">not applicable: ${esc(rpo.reason)}</p>`);
  // RTO
  sections.push(
    rto.applicable
      ? `<h2>RTO</h2><p>${esc(rto.definition)}</p>${table(
          ['', 'first success after the fault', 'region', 'since the fault'],
          [
            ['produce', rto.produce ? esc(relative(report, rto.produce.atMs)) : '<span class="warn">not reached</span>', rto.produce ? esc(rto.produce.region) : '', rto.produce ? esc(formatMs(rto.produce.ms)) : ''],
            ['consume', rto.consume ? esc(relative(report, rto.consume.atMs)) : '<span class="warn">not reached</span>', rto.consume ? esc(rto.consume.region) : '', rto.consume ? esc(formatMs(rto.consume.ms)) : ''],
          ],
        )}`
      : `<h2>RTO</h2><p class="muted">not applicable: ${esc(rto.reason)}</p>`,
  );
  if (report.failover) {
    const f = report.failover;
    sections.push(
      `<h2>Planned failover</h2><p>tenant ${esc(f.tenant)}: ${esc(f.from)} → ${esc(f.to)}; total ${esc(formatMs(f.totalMs))}, drain ${esc(formatMs(f.drainMs))}.</p>${table(
        ['step', 'at'],
        [
          ['fenced', esc(relative(report, f.fencedAtMs))],
          ['drained', esc(relative(report, f.drainedAtMs))],
          ['moved', esc(relative(report, f.movedAtMs))],
          ['unfenced', esc(relative(report, f.unfencedAtMs))],
        ],
      )}`,
    );
  }
  // Catch-up
  sections.push(
    catchUp.applicable
      ? `<h2>Catch-up</h2><p>From the end of the recovery (${esc(relative(report, catchUp.fromMs))}) until every observed region held every one of the ${esc(catchUp.ackedEntries)} entries acked by then: <b>${esc(catchUp.ms === null ? `not within ${formatMs(catchUp.timeoutMs)}` : formatMs(catchUp.ms))}</b>.</p>${
          catchUp.missing.length > 0 ? table(['entry', 'missing in'], catchUp.missing.map((m) => [`<span class="mono">${esc(m.id)}</span>`, esc(m.regions.join(', '))])) + more(catchUp.omitted) : ''
        }`
      : `<h2>Catch-up</h2><p class="muted">not applicable: ${esc(catchUp.reason)}</p>`,
  );
  // Duplicates and order
  sections.push(
    `<h2>Duplicates delivered to canary consumers</h2>${table(
      ['subscription', 'producer #seq', 'deliveries'],
      report.duplicates.list.map((d) => [esc(d.subscription), `<span class="mono">${esc(`${d.producer}#${d.sequenceId}`)}</span>`, d.deliveries.map((x) => `${esc(relative(report, x.atMs))} ${esc(x.region)} <span class="mono">${esc(x.globalId)}</span>`).join('<br>')]),
    )}${more(report.duplicates.omitted)}`,
  );
  sections.push(
    `<h2>Deliveries out of producer order</h2>${table(
      ['subscription', 'producer', 'sequence', 'after', 'at', 'region', 'global id'],
      report.deliveryOrder.list.map((v) => [esc(v.subscription), esc(v.producer), esc(v.sequenceId), esc(v.afterSequenceId), esc(relative(report, v.atMs)), esc(v.region), `<span class="mono">${esc(v.globalId)}</span>`]),
    )}${more(report.deliveryOrder.omitted)}`,
  );
  if (report.divergentCopies.count > 0) {
    sections.push(
      `<h2>Messages stored under two global ids</h2><p>A producer that fails over resends what it has not seen acked; a region keeps the first copy of a sequence it stores, so the old region's copy and the resent one can both survive, each in the regions that stored it first.</p>${table(
        ['producer #seq', 'copies'],
        report.divergentCopies.list.map((d) => [`<span class="mono">${esc(`${d.producer}#${d.sequenceId}`)}</span>`, d.copies.map((c) => `<span class="mono">${esc(c.globalId)}</span> in ${esc(c.regions.join(', '))}`).join('<br>')]),
      )}${more(report.divergentCopies.omitted)}`,
    );
  }
  sections.push(
    `<h2>Invariants on the final logs (checkHistory)</h2><p>Regions required to hold every entry: ${esc(report.invariants.regions.join(', '))}.</p><pre>${esc(report.invariants.text)}</pre>`,
  );
  // Residency
  sections.push(
    `<h2>Residency</h2><p>Tenant ${esc(report.residency.tenant)} may hold data in: ${esc(report.residency.allowedRegions.join(', '))}.</p>${table(
      ['region', 'allowed', 'topics of the tenant', 'canary entries', 'receiver residency refusals (start → end)', 'entries withheld by senders', ''],
      report.residency.regions.map((r) => [
        esc(r.region),
        r.allowed ? 'yes' : 'no',
        r.topics.length === 0 ? '<span class="muted">none</span>' : `<span class="${r.allowed ? '' : 'fail'}">${esc(r.topics.length)}</span>`,
        esc(r.canaryEntries ?? '—'),
        `${esc(r.residencyRefusalsAtStart ?? '—')} → ${esc(r.residencyRefusals ?? '—')}`,
        esc(r.withheldEntries ?? '—'),
        r.reachable ? '' : `<span class="warn">unreachable: ${esc(r.error ?? '')}</span>`,
      ]),
    )}${report.residency.violations.map((v) => `<p class="fail">${esc(v)}</p>`).join('')}`,
  );
  if (report.statusBeforeRecovery.length > 0) {
    sections.push(
      `<h2>Replication just before recovery</h2>${table(
        ['region', 'links of the canary topic', 'receiver'],
        report.statusBeforeRecovery.map((s) => [
          esc(s.region),
          s.error ? `<span class="warn">${esc(s.error)}</span>` : (s.links ?? []).map((l) => `→ ${esc(l.to)}: ${esc(l.state)}, backlog ${esc(l.backlogEntries)}, delay ${esc(formatMs(l.replicationDelayMs))}${l.clockSkewAlert ? ' <span class="warn">clock-skew alert</span>' : ''}`).join('<br>'),
          s.receiver ? `<span class="mono">${esc(Object.entries(s.receiver).map(([k, v]) => `${k} ${v}`).join(', '))}</span>` : '',
        ]),
      )}`,
    );
  }
  // Canary
  sections.push(
    `<h2>Canary</h2>${table(
      ['producer', 'home', 'attempts', 'acked', 'failed', 'acked by region', 'errors'],
      report.canary.producers.map((p) => [
        `<span class="mono">${esc(p.producer)}</span>`,
        esc(p.homeRegion),
        esc(p.attempts),
        esc(p.acked),
        esc(p.failed),
        esc(Object.entries(p.ackedByRegion).map(([r, n]) => `${r} ${n}`).join(', ')),
        esc(Object.entries(p.errors).map(([c, n]) => `${c} ${n}`).join(', ')),
      ]),
    )}${table(
      ['subscription', 'home', 'deliveries', 'messages', 'by region', 'undelivered at the end'],
      report.canary.consumers.map((c) => [`<span class="mono">${esc(c.subscription)}</span>`, esc(c.homeRegion), esc(c.deliveries), esc(c.messages), esc(Object.entries(c.byRegion).map(([r, n]) => `${r} ${n}`).join(', ')), esc(c.undelivered)]),
    )}`,
  );
  sections.push(
    `<h2>Phases</h2>${table(
      ['phase', 'start', 'duration', ''],
      report.phases.map((p) => [esc(p.phase), esc(relative(report, p.startedAtMs)), esc(formatMs(p.endedAtMs - p.startedAtMs)), esc(p.note)]),
    )}`,
  );
  sections.push(
    `<h2>Settings</h2>${table(
      ['setting', 'value'],
      Object.entries(report.settings).map(([k, v]) => [esc(k), `<span class="mono">${esc(v)}</span>`]),
    )}${report.notes.length > 0 ? `<ul>${report.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}`,
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(`admq drill ${report.runId}: ${report.scenario.title}`)}</title><style>${CSS}</style></head>
<body><main>
<h1>admq drill: ${esc(report.scenario.title)} ${verdict}</h1>
<p class="muted">run ${esc(report.runId)} · ${esc(report.target.description)} · ${esc(isoTime(report.startedAtMs))} – ${esc(isoTime(report.finishedAtMs))} (${esc(formatMs(report.finishedAtMs - report.startedAtMs))})<br>
tenant ${esc(report.tenant)} (home ${esc(report.homeRegion)}) · topic <span class="mono">${esc(report.topic)}</span> · logs read in ${esc(report.observedRegions.join(', '))}</p>
<div class="cards">${cards.map(([label, value, sub]) => `<div class="card"><span>${esc(label)}</span><b>${esc(value)}</b><span>${esc(sub)}</span></div>`).join('')}</div>
${sections.join('\n')}
</main></body></html>
`;
}
