// The operation history of a multi-region scenario, and the checker of DESIGN §10's
// invariants 1–5 on it.
//
// A scenario records every produce attempt while faults are injected (acked or not), then
// reads every region's whole log back with recordStored(). checkHistory() compares the two.
// It trusts only what clients were told and what each log holds at the end, never the
// system's own account of what happened, so a bug that also corrupts the system's
// bookkeeping is still caught.
//
// The types follow the client SDK: offsets, origin positions and sequence ids are numbers
// (client/producer.ts MessageId, client/consumer.ts Message) and HLCs are bigints, so they
// compare exactly. The checker makes single passes over maps, so that a history with
// 100,000 entries per region checks in well under a second.
import { formatHlc } from '../conflict/index.ts';

/** One produce attempt. An unacked attempt may or may not have been stored. */
export interface ProduceRecord {
  /** The region whose node received the send. */
  region: string;
  topic: string;
  producer: string;
  sequenceId: number;
  payload: string;
  /** True when the node acknowledged the send, i.e. promised that the entry is durable. */
  acked: boolean;
  /** The global id the ack reported; absent for an unacked attempt. */
  originRegion?: string;
  /** -1 when the node acked a resend whose original position it no longer knows. */
  originPosition?: number;
  /** The local offset in `region` that the ack reported. */
  offset?: number;
  /** The HLC the ack reported; 0n when the node acked a resend (it does not look the original up). */
  hlc?: bigint;
  atMs: number;
}

/** One entry read back from a region's log. */
export interface StoredRecord {
  region: string;
  topic: string;
  offset: number;
  originRegion: string;
  originPosition: number;
  producer: string;
  sequenceId: number;
  payload: string;
  hlc: bigint;
}

/** One message delivered to a consumer. */
export interface ConsumeRecord {
  region: string;
  topic: string;
  subscription: string;
  offset: number;
  originRegion: string;
  originPosition: number;
  producer: string;
  sequenceId: number;
  payload: string;
  hlc: bigint;
  atMs: number;
}

export class History {
  readonly #produces: ProduceRecord[] = [];
  readonly #stored: StoredRecord[] = [];
  readonly #consumes: ConsumeRecord[] = [];

  /** Records every produce attempt, acked or not. */
  recordProduce(produce: ProduceRecord): void {
    assertInteger('recordProduce', 'sequenceId', produce.sequenceId, -1);
    if (produce.acked && produce.originRegion === undefined) {
      throw new Error(`recordProduce: an acked produce needs originRegion (producer ${produce.producer}, sequence ${produce.sequenceId})`);
    }
    // A copy, so that a caller reusing its object cannot rewrite the history afterwards.
    this.#produces.push({ ...produce });
  }

  /** Records one entry of a region's log. Read each log whole, in offset order. */
  recordStored(stored: StoredRecord): void {
    assertInteger('recordStored', 'offset', stored.offset, 0);
    assertInteger('recordStored', 'originPosition', stored.originPosition, 0);
    assertInteger('recordStored', 'sequenceId', stored.sequenceId, -1);
    this.#stored.push({ ...stored });
  }

  /** Records a message delivered to a consumer (for delivery checks of later issues). */
  recordConsume(consume: ConsumeRecord): void {
    this.#consumes.push({ ...consume });
  }

  produces(): readonly ProduceRecord[] {
    return this.#produces;
  }

  stored(): readonly StoredRecord[] {
    return this.#stored;
  }

  consumes(): readonly ConsumeRecord[] {
    return this.#consumes;
  }

  /** The entries read from one region's log of one topic, in the order they were recorded. */
  storedIn(region: string, topic: string): StoredRecord[] {
    return this.#stored.filter((s) => s.region === region && s.topic === topic);
  }

  /** Every topic that was produced to or read from. */
  topics(): string[] {
    const topics = new Set<string>();
    for (const p of this.#produces) topics.add(p.topic);
    for (const s of this.#stored) topics.add(s.topic);
    return [...topics];
  }
}

function assertInteger(method: string, field: string, value: number, min: number): void {
  // A non-integer here is a harness bug (a string or bigint slipped through), not a system bug.
  if (!Number.isSafeInteger(value) || value < min) {
    throw new TypeError(`${method}: ${field} must be a safe integer >= ${min}, got ${String(value)} (${typeof value})`);
  }
}

// ---------------------------------------------------------------------------------------
// Violations

export type InvariantNumber = 1 | 2 | 3 | 4 | 5;

export type ViolationKind =
  | 'lost'
  | 'ack-mismatch'
  | 'offset-gap'
  | 'offset-repeat'
  | 'duplicate-global-id'
  | 'duplicate-sequence'
  | 'missing-in-region'
  | 'content-differs'
  | 'offset-backwards'
  | 'origin-order'
  | 'producer-order'
  | 'origin-sequence-differs'
  | 'residency'
  | 'hlc-origin-order'
  | 'hlc-happened-before'
  | 'hlc-differs';

/** Which DESIGN §10 invariant each kind of violation breaks. */
const INVARIANT_OF: Record<ViolationKind, InvariantNumber> = {
  // A gap in what was read is an entry that may be lost.
  'lost': 1,
  'ack-mismatch': 1,
  'offset-gap': 1,
  'offset-repeat': 2,
  'duplicate-global-id': 2,
  'duplicate-sequence': 2,
  'missing-in-region': 2,
  // An entry whose origin fields differ between regions is not the same entry everywhere.
  'content-differs': 2,
  'offset-backwards': 3,
  'origin-order': 3,
  'producer-order': 3,
  'origin-sequence-differs': 3,
  'residency': 4,
  'hlc-origin-order': 5,
  'hlc-happened-before': 5,
  'hlc-differs': 5,
};

/** Kinds in the order reports list them: the most telling first within each invariant. */
const KIND_ORDER = Object.keys(INVARIANT_OF) as ViolationKind[];

const INVARIANT_TITLE: Record<InvariantNumber, string> = {
  1: 'an acked entry is never lost',
  2: 'every entry reaches every region exactly once',
  3: 'order within one origin is identical in every region',
  4: 'data never exists outside its allowed regions',
  5: 'the HLC never goes backwards and respects happened-before',
};

export interface Violation {
  invariant: InvariantNumber;
  kind: ViolationKind;
  message: string;
  region?: string;
  topic?: string;
  /** `originRegion:originPosition` of the (first) entry concerned. */
  globalId?: string;
  /** Local offsets concerned, in the region named. */
  offsets?: number[];
  /** A small neighbourhood of the expected and the actual sequence, for order and set differences. */
  diff?: { expected: string[]; actual: string[] };
  /** Set on a summary: this many further violations of `kind` were found but not listed. */
  omitted?: number;
}

export interface CheckOptions {
  /** Regions that must each hold every entry of every topic (narrowed by allowedRegions). */
  regions: string[];
  /** A topic's allowed regions (data residency). When given, no entry may exist elsewhere. */
  allowedRegions?: (topic: string) => string[];
  /** Violations listed per kind before the rest are only counted. Default 1,000. */
  violationsPerKindMax?: number;
}

/**
 * Collects violations, bounded per kind: a region that lost its whole log would otherwise
 * produce one violation per entry, and a failing test would spend its time printing them.
 */
class ViolationList {
  readonly #kept: Violation[] = [];
  readonly #countByKind = new Map<ViolationKind, number>();
  readonly #perKindMax: number;

  constructor(perKindMax: number) {
    this.#perKindMax = perKindMax;
  }

  add(kind: ViolationKind, details: Omit<Violation, 'invariant' | 'kind'>): void {
    const count = (this.#countByKind.get(kind) ?? 0) + 1;
    this.#countByKind.set(kind, count);
    if (count <= this.#perKindMax) this.#kept.push({ invariant: INVARIANT_OF[kind], kind, ...details });
  }

  /** The violations, by invariant, each followed by a summary for what was only counted. */
  finish(): Violation[] {
    const out = [...this.#kept];
    for (const [kind, count] of this.#countByKind) {
      const omitted = count - this.#perKindMax;
      if (omitted <= 0) continue;
      out.push({ invariant: INVARIANT_OF[kind], kind, message: `${omitted} more ${kind} violations were found but not listed`, omitted });
    }
    // By invariant, then kind; the sort is stable, so each kind keeps the order the checks found.
    return out.sort((a, b) => a.invariant - b.invariant || KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
  }
}

// ---------------------------------------------------------------------------------------
// The checker

/** One region's log of one topic. */
interface RegionLog {
  region: string;
  topic: string;
  /** In the order the test read it, which should be offset order. */
  recorded: StoredRecord[];
  /** In offset order: the log's own order. */
  entries: StoredRecord[];
  /** The first entry with each global id (origin region, origin position). */
  byGlobalId: PairMap<StoredRecord>;
  /** The first entry with each (producer, sequence id). */
  bySequence: PairMap<StoredRecord>;
  /** Entries whose global id an earlier entry already has, each with that earlier entry. */
  duplicates: Array<{ first: StoredRecord; entry: StoredRecord }>;
  /** Each origin's entries, in offset order (duplicates included). */
  byOrigin: Map<string, StoredRecord[]>;
}

interface TopicView {
  topic: string;
  /** Every region with a recorded entry, plus every expected region (empty if nothing was read). */
  logs: Map<string, RegionLog>;
  /** Regions that must hold every entry: options.regions, narrowed by allowedRegions. */
  expectedRegions: string[];
  produces: ProduceRecord[];
}

/**
 * Checks DESIGN §10's invariants 1–5 on a recorded history and returns what is broken
 * ([] when nothing is). Every region in `options.regions` (that the topic is allowed in)
 * must hold every acked entry and the same set of global ids; per-region checks (offsets,
 * duplicates, order, HLC) apply to every region that was read.
 */
export function checkHistory(history: History, options: CheckOptions): Violation[] {
  validateOptions(options);
  const violations = new ViolationList(options.violationsPerKindMax ?? 1000);
  for (const view of buildTopicViews(history, options)) {
    for (const log of view.logs.values()) {
      checkOffsetsDense(log, violations);
      reportDuplicateGlobalIds(log, violations);
      checkOrderWithinLog(log, violations);
      checkHlcPerOrigin(log, violations);
      checkHappenedBefore(log, violations);
    }
    checkAckedEntriesStored(view, violations);
    checkSameGlobalIds(view, violations);
    checkSameContent(view, violations);
    checkSequencesUnique(view, violations);
    checkOriginSequencesAgree(view, violations);
    if (options.allowedRegions) checkResidency(view, options.allowedRegions(view.topic), violations);
  }
  return violations.finish();
}

function validateOptions(options: CheckOptions): void {
  if (!Array.isArray(options.regions) || options.regions.length === 0) {
    throw new TypeError('checkHistory: options.regions must name at least one region');
  }
  if (new Set(options.regions).size !== options.regions.length) {
    throw new TypeError(`checkHistory: options.regions names a region twice: ${options.regions.join(', ')}`);
  }
  const max = options.violationsPerKindMax;
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 1)) {
    throw new TypeError(`checkHistory: options.violationsPerKindMax must be a positive integer, got ${max}`);
  }
}

function buildTopicViews(history: History, options: CheckOptions): TopicView[] {
  const views = new Map<string, TopicView>();
  const viewOf = (topic: string): TopicView => {
    let view = views.get(topic);
    if (!view) {
      const allowed = options.allowedRegions ? new Set(options.allowedRegions(topic)) : undefined;
      const expectedRegions = options.regions.filter((r) => !allowed || allowed.has(r));
      view = { topic, logs: new Map(), expectedRegions, produces: [] };
      for (const region of expectedRegions) view.logs.set(region, emptyLog(region, topic));
      views.set(topic, view);
    }
    return view;
  };
  for (const produce of history.produces()) viewOf(produce.topic).produces.push(produce);
  for (const stored of history.stored()) {
    const view = viewOf(stored.topic);
    let log = view.logs.get(stored.region);
    if (!log) {
      log = emptyLog(stored.region, stored.topic);
      view.logs.set(stored.region, log);
    }
    log.recorded.push(stored);
  }
  for (const view of views.values()) {
    for (const log of view.logs.values()) indexLog(log);
  }
  return [...views.values()];
}

function emptyLog(region: string, topic: string): RegionLog {
  return { region, topic, recorded: [], entries: [], byGlobalId: new PairMap(), bySequence: new PairMap(), duplicates: [], byOrigin: new Map() };
}

function indexLog(log: RegionLog): void {
  // The test reads in offset order, so this is usually the sorted array itself, uncopied.
  log.entries = isSortedByOffset(log.recorded) ? log.recorded : [...log.recorded].sort((a, b) => a.offset - b.offset);
  for (const entry of log.entries) {
    const first = log.byGlobalId.setIfAbsent(entry.originRegion, entry.originPosition, entry);
    if (first !== entry) log.duplicates.push({ first, entry });
    log.bySequence.setIfAbsent(entry.producer, entry.sequenceId, entry);
    let ofOrigin = log.byOrigin.get(entry.originRegion);
    if (!ofOrigin) {
      ofOrigin = [];
      log.byOrigin.set(entry.originRegion, ofOrigin);
    }
    ofOrigin.push(entry);
  }
}

function isSortedByOffset(entries: StoredRecord[]): boolean {
  for (let i = 1; i < entries.length; i++) {
    if ((entries[i] as StoredRecord).offset < (entries[i - 1] as StoredRecord).offset) return false;
  }
  return true;
}

/**
 * A map keyed by (name, number): a global id (origin region, origin position) or a
 * producer's (name, sequence id). Nested, so that no lookup builds a string key.
 */
class PairMap<V> {
  readonly #byName = new Map<string, IntegerMap<V>>();

  get(name: string, n: number): V | undefined {
    return this.#byName.get(name)?.get(n);
  }

  has(name: string, n: number): boolean {
    return this.get(name, n) !== undefined;
  }

  /** Stores `value` unless the key is taken, and returns what the key holds afterwards. */
  setIfAbsent(name: string, n: number, value: V): V {
    let inner = this.#byName.get(name);
    if (!inner) {
      inner = new IntegerMap();
      this.#byName.set(name, inner);
    }
    const existing = inner.get(n);
    if (existing !== undefined) return existing;
    inner.set(n, value);
    return value;
  }
}

/** Keys this far past the end of the dense array make IntegerMap switch to a Map. */
const DENSE_GAP_MAX = 4096;

/**
 * A map from integers. Positions and sequence ids are nearly dense and arrive nearly in
 * order, so an array indexed from the first key is the usual store: several times faster
 * than a Map with 100,000 keys. A key below the first one, or far past the end, switches
 * it to a Map, which is always correct.
 */
class IntegerMap<V> {
  #base = 0;
  #dense: Array<V | undefined> | undefined = [];
  #sparse: Map<number, V> | undefined;

  get(n: number): V | undefined {
    if (this.#sparse) return this.#sparse.get(n);
    const dense = this.#dense as Array<V | undefined>;
    return n >= this.#base ? dense[n - this.#base] : undefined;
  }

  set(n: number, value: V): void {
    if (this.#sparse) {
      this.#sparse.set(n, value);
      return;
    }
    const dense = this.#dense as Array<V | undefined>;
    if (dense.length === 0) this.#base = n;
    const index = n - this.#base;
    if (index >= 0 && index <= dense.length + DENSE_GAP_MAX) {
      dense[index] = value;
      return;
    }
    this.#sparse = new Map();
    dense.forEach((v, i) => {
      if (v !== undefined) this.#sparse?.set(this.#base + i, v);
    });
    this.#dense = undefined;
    this.#sparse.set(n, value);
  }
}

/** A global id as people read it: `originRegion:originPosition`. */
export function globalIdOf(entry: { originRegion: string; originPosition: number }): string {
  return `${entry.originRegion}:${entry.originPosition}`;
}

// --- per-region checks -------------------------------------------------------------------

/** What was read must be dense and increasing: a gap may hide a lost entry. */
function checkOffsetsDense(log: RegionLog, violations: ViolationList): void {
  let previous: StoredRecord | undefined;
  for (const entry of log.recorded) {
    if (previous && entry.offset !== previous.offset + 1) reportOffsetBreak(log, previous, entry, violations);
    previous = entry;
  }
}

function reportOffsetBreak(log: RegionLog, previous: StoredRecord, entry: StoredRecord, violations: ViolationList): void {
  const where = { region: log.region, topic: log.topic, globalId: globalIdOf(entry), offsets: [previous.offset, entry.offset] };
  if (entry.offset === previous.offset) {
    violations.add('offset-repeat', { ...where, message: `offset ${entry.offset} was read twice` });
  } else if (entry.offset < previous.offset) {
    violations.add('offset-backwards', { ...where, message: `offset ${entry.offset} was read after offset ${previous.offset}` });
  } else {
    violations.add('offset-gap', { ...where, message: `offsets ${formatRange(previous.offset + 1, entry.offset - 1)} are missing between ${previous.offset} and ${entry.offset}` });
  }
}

function reportDuplicateGlobalIds(log: RegionLog, violations: ViolationList): void {
  for (const { first, entry } of log.duplicates) {
    violations.add('duplicate-global-id', {
      region: log.region,
      topic: log.topic,
      globalId: globalIdOf(entry),
      offsets: [first.offset, entry.offset],
      message: `global id ${globalIdOf(entry)} is stored twice, at offsets ${first.offset} and ${entry.offset}`,
    });
  }
}

/**
 * In offset order, each origin's positions increase, and each producer's sequence ids
 * increase within one origin. Producer order is checked per origin because a producer that
 * fails over to another region legitimately interleaves two origins.
 */
function checkOrderWithinLog(log: RegionLog, violations: ViolationList): void {
  for (const [origin, entries] of log.byOrigin) {
    for (let i = 1; i < entries.length; i++) {
      const previous = entries[i - 1] as StoredRecord;
      const entry = entries[i] as StoredRecord;
      if (entry.originPosition > previous.originPosition) continue;
      // A repeated position is a duplicate, reported under invariant 2, not an order break.
      if (entry.originPosition === previous.originPosition) continue;
      violations.add('origin-order', {
        region: log.region,
        topic: log.topic,
        globalId: globalIdOf(entry),
        offsets: [previous.offset, entry.offset],
        message: `origin ${origin}: position ${entry.originPosition} (offset ${entry.offset}) comes after position ${previous.originPosition} (offset ${previous.offset})`,
        diff: { expected: sortedWindow(entries, i), actual: neighbourhood(entries.length, i, (k) => String(entries[k]?.originPosition)) },
      });
    }
  }
  // The last entry of each producer, per origin.
  const lastByOrigin = new Map<string, Map<string, StoredRecord>>();
  for (const entry of log.entries) {
    let lastByProducer = lastByOrigin.get(entry.originRegion);
    if (!lastByProducer) {
      lastByProducer = new Map();
      lastByOrigin.set(entry.originRegion, lastByProducer);
    }
    const previous = lastByProducer.get(entry.producer);
    lastByProducer.set(entry.producer, entry);
    if (!previous || entry.sequenceId > previous.sequenceId) continue;
    if (globalIdOf(entry) === globalIdOf(previous)) continue;
    violations.add('producer-order', {
      region: log.region,
      topic: log.topic,
      globalId: globalIdOf(entry),
      offsets: [previous.offset, entry.offset],
      message: `producer ${entry.producer} (origin ${entry.originRegion}): sequence ${entry.sequenceId} at offset ${entry.offset} comes after sequence ${previous.sequenceId} at offset ${previous.offset}`,
    });
  }
}

/** The positions around `index`, in the order they should have been. */
function sortedWindow(entries: StoredRecord[], index: number): string[] {
  const { start, end } = windowAround(entries.length, index);
  const sorted = entries.slice(start, end).map((e) => e.originPosition).sort((a, b) => a - b);
  return neighbourhood(entries.length, index, (i) => String(sorted[i - start]));
}

/** Within one region, one origin's HLCs strictly increase with its positions. */
function checkHlcPerOrigin(log: RegionLog, violations: ViolationList): void {
  for (const [origin, entries] of log.byOrigin) {
    // By position, not offset: a reordering is an invariant 3 violation, reported there.
    const inOrder = entries.every((e, i) => i === 0 || e.originPosition >= (entries[i - 1] as StoredRecord).originPosition);
    const byPosition = inOrder ? entries : [...entries].sort((a, b) => a.originPosition - b.originPosition);
    for (let i = 1; i < byPosition.length; i++) {
      const previous = byPosition[i - 1] as StoredRecord;
      const entry = byPosition[i] as StoredRecord;
      if (entry.originPosition === previous.originPosition || entry.hlc > previous.hlc) continue;
      violations.add('hlc-origin-order', {
        region: log.region,
        topic: log.topic,
        globalId: globalIdOf(entry),
        offsets: [previous.offset, entry.offset],
        message: `origin ${origin}: position ${entry.originPosition} has HLC ${describeHlc(entry.hlc)}, not after position ${previous.originPosition}'s ${describeHlc(previous.hlc)}`,
      });
    }
  }
}

/**
 * A local write happens after everything its region had stored before it (local writes
 * and received entries alike), so its HLC must exceed every HLC at a lower offset.
 */
function checkHappenedBefore(log: RegionLog, violations: ViolationList): void {
  let latest: StoredRecord | undefined;
  for (const entry of log.entries) {
    if (latest && entry.originRegion === log.region && entry.hlc <= latest.hlc) {
      violations.add('hlc-happened-before', {
        region: log.region,
        topic: log.topic,
        globalId: globalIdOf(entry),
        offsets: [latest.offset, entry.offset],
        message: `local entry at offset ${entry.offset} has HLC ${describeHlc(entry.hlc)}, not after ${globalIdOf(latest)} at offset ${latest.offset} with HLC ${describeHlc(latest.hlc)}`,
      });
    }
    if (!latest || entry.hlc > latest.hlc) latest = entry;
  }
}

// --- cross-region checks ----------------------------------------------------------------

/** Every acked produce is stored, as acked, in every expected region. */
function checkAckedEntriesStored(view: TopicView, violations: ViolationList): void {
  const lostByRegion = new Map<string, ProduceRecord[]>();
  for (const produce of view.produces) {
    if (!produce.acked) continue;
    for (const region of view.expectedRegions) {
      const log = view.logs.get(region) as RegionLog;
      const stored = findAcked(log, produce);
      if (stored) {
        compareAckWithStored(produce, stored, violations);
        continue;
      }
      let lost = lostByRegion.get(region);
      if (!lost) {
        lost = [];
        lostByRegion.set(region, lost);
      }
      lost.push(produce);
    }
  }
  for (const [region, lost] of lostByRegion) reportLost(view.topic, region, lost, violations);
}

function hasGlobalId(produce: ProduceRecord): produce is ProduceRecord & { originRegion: string; originPosition: number } {
  return produce.originRegion !== undefined && produce.originPosition !== undefined && produce.originPosition >= 0;
}

function findAcked(log: RegionLog, produce: ProduceRecord): StoredRecord | undefined {
  // A resend acked as a duplicate may come without its position; its identity is then the
  // producer's sequence id, which the node deduplicates on.
  if (hasGlobalId(produce)) return log.byGlobalId.get(produce.originRegion, produce.originPosition);
  return log.bySequence.get(produce.producer, produce.sequenceId);
}

function compareAckWithStored(produce: ProduceRecord, stored: StoredRecord, violations: ViolationList): void {
  const differences: string[] = [];
  if (produce.producer !== stored.producer) differences.push(`producer ${produce.producer} → ${stored.producer}`);
  if (produce.sequenceId !== stored.sequenceId) differences.push(`sequence ${produce.sequenceId} → ${stored.sequenceId}`);
  if (produce.payload !== stored.payload) differences.push(`payload ${quote(produce.payload)} → ${quote(stored.payload)}`);
  // The acked offset is a position in the region that took the send, and only there.
  if (stored.region === produce.region && produce.offset !== undefined && produce.offset >= 0 && produce.offset !== stored.offset) {
    differences.push(`offset ${produce.offset} → ${stored.offset}`);
  }
  if (differences.length > 0) {
    const id = globalIdOf(stored);
    violations.add('ack-mismatch', { region: stored.region, topic: stored.topic, globalId: id, offsets: [stored.offset], message: `entry ${id} differs from what was acked (acked → stored): ${differences.join('; ')}` });
  }
  // 0n is what the node reports for a resend acked as a duplicate: it carries no HLC.
  if (produce.hlc !== undefined && produce.hlc !== 0n && produce.hlc !== stored.hlc) {
    const id = globalIdOf(stored);
    violations.add('hlc-differs', { region: stored.region, topic: stored.topic, globalId: id, offsets: [stored.offset], message: `entry ${id} was acked with HLC ${describeHlc(produce.hlc)} but is stored with ${describeHlc(stored.hlc)}` });
  }
}

function reportLost(topic: string, region: string, lost: ProduceRecord[], violations: ViolationList): void {
  // One violation per origin, with position ranges: "positions 300–899" says more than 600 lines.
  const byOrigin = new Map<string, ProduceRecord[]>();
  for (const produce of lost) {
    const origin = hasGlobalId(produce) ? produce.originRegion : '(unknown position)';
    let list = byOrigin.get(origin);
    if (!list) {
      list = [];
      byOrigin.set(origin, list);
    }
    list.push(produce);
  }
  for (const [origin, produces] of byOrigin) {
    const first = produces[0] as ProduceRecord;
    const identities = hasGlobalId(first)
      ? `positions ${formatRanges(produces.map((p) => p.originPosition as number))}`
      : `producer sequences ${produces.slice(0, 10).map((p) => `${p.producer}#${p.sequenceId}`).join(', ')}${produces.length > 10 ? ', …' : ''}`;
    violations.add('lost', {
      region,
      topic,
      ...(hasGlobalId(first) ? { globalId: globalIdOf(first) } : {}),
      message: `${plural(produces.length, 'acked entry', 'acked entries')} of origin ${origin} missing: ${identities}`,
    });
  }
}

/** Every expected region holds the same set of global ids. */
function checkSameGlobalIds(view: TopicView, violations: ViolationList): void {
  const logs = expectedLogs(view);
  for (const log of logs) {
    // For each origin: the positions some other region holds and this one lacks, and a holder.
    const missingByOrigin = new Map<string, Map<number, string>>();
    for (const other of logs) {
      if (other === log) continue;
      for (const entry of other.entries) {
        if (log.byGlobalId.has(entry.originRegion, entry.originPosition)) continue;
        let missing = missingByOrigin.get(entry.originRegion);
        if (!missing) {
          missing = new Map();
          missingByOrigin.set(entry.originRegion, missing);
        }
        if (!missing.has(entry.originPosition)) missing.set(entry.originPosition, other.region);
      }
    }
    for (const [origin, missing] of missingByOrigin) reportMissing(view.topic, log, origin, missing, logs, violations);
  }
}

function expectedLogs(view: TopicView): RegionLog[] {
  return view.expectedRegions.map((region) => view.logs.get(region) as RegionLog);
}

function reportMissing(topic: string, log: RegionLog, origin: string, missing: Map<number, string>, logs: RegionLog[], violations: ViolationList): void {
  const positions = [...missing.keys()].sort((a, b) => a - b);
  const first = positions[0] as number;
  const heldBy = [...new Set(missing.values())].join(', ');
  violations.add('missing-in-region', {
    region: log.region,
    topic,
    globalId: globalIdOf({ originRegion: origin, originPosition: first }),
    message: `${plural(positions.length, 'entry', 'entries')} of origin ${origin} held by ${heldBy} missing: positions ${formatRanges(positions)}`,
    diff: setDiff(logs, log, origin, first),
  });
}

/** Around the first missing position: the positions some region holds, and this region's. */
function setDiff(logs: RegionLog[], log: RegionLog, origin: string, firstMissing: number): { expected: string[]; actual: string[] } {
  const union = new Set<number>();
  for (const other of logs) for (const entry of other.byOrigin.get(origin) ?? []) union.add(entry.originPosition);
  const expected = [...union].sort((a, b) => a - b);
  const actual = (log.byOrigin.get(origin) ?? []).map((e) => e.originPosition).sort((a, b) => a - b);
  // Where the missing position would sit among this region's positions.
  let gapAt = actual.findIndex((p) => p > firstMissing);
  if (gapAt === -1) gapAt = actual.length;
  const actualItem = (i: number): string => (i < gapAt ? String(actual[i]) : i === gapAt ? '(missing)' : String(actual[i - 1]));
  return {
    expected: neighbourhood(expected.length, expected.indexOf(firstMissing), (i) => String(expected[i])),
    actual: neighbourhood(actual.length + 1, gapAt, actualItem),
  };
}

/** Origin fields are set once: every copy of an entry, in every region, carries the same ones. */
function checkSameContent(view: TopicView, violations: ViolationList): void {
  const reference = new PairMap<StoredRecord>();
  for (const log of view.logs.values()) {
    for (const entry of log.entries) {
      const first = reference.setIfAbsent(entry.originRegion, entry.originPosition, entry);
      if (first === entry) continue;
      const id = globalIdOf(entry);
      const where = { region: entry.region, topic: view.topic, globalId: id, offsets: [entry.offset] };
      const differences = [
        first.producer !== entry.producer ? `producer ${first.producer} vs ${entry.producer}` : '',
        first.sequenceId !== entry.sequenceId ? `sequence ${first.sequenceId} vs ${entry.sequenceId}` : '',
        first.payload !== entry.payload ? `payload ${quote(first.payload)} vs ${quote(entry.payload)}` : '',
      ].filter((d) => d !== '');
      if (differences.length > 0) {
        violations.add('content-differs', { ...where, message: `entry ${id} in ${entry.region} (offset ${entry.offset}) differs from its copy in ${first.region} (offset ${first.offset}): ${differences.join('; ')}` });
      }
      if (first.hlc !== entry.hlc) {
        violations.add('hlc-differs', { ...where, message: `entry ${id} has HLC ${describeHlc(entry.hlc)} in ${entry.region} but ${describeHlc(first.hlc)} in ${first.region}` });
      }
    }
  }
}

/**
 * A producer's sequence id names one entry: it is stored under one global id only, in any
 * region. This is what keeps an unacked (or resent) produce from appearing twice.
 */
function checkSequencesUnique(view: TopicView, violations: ViolationList): void {
  // First pass: the first entry of each sequence. Only conflicting sequences get details.
  const first = new PairMap<StoredRecord>();
  const conflicts = new PairMap<SequenceConflict>();
  for (const log of view.logs.values()) {
    for (const entry of log.entries) {
      const seen = first.setIfAbsent(entry.producer, entry.sequenceId, entry);
      if (seen.originRegion === entry.originRegion && seen.originPosition === entry.originPosition) continue;
      conflicts.setIfAbsent(entry.producer, entry.sequenceId, { producer: entry.producer, sequenceId: entry.sequenceId, placesById: new Map(), ackState: 'no produce recorded' });
    }
  }
  const found: SequenceConflict[] = [];
  for (const log of view.logs.values()) {
    for (const entry of log.entries) {
      const conflict = conflicts.get(entry.producer, entry.sequenceId);
      if (!conflict) continue;
      if (conflict.placesById.size === 0) found.push(conflict);
      const id = globalIdOf(entry);
      const places = conflict.placesById.get(id) ?? [];
      places.push(`${log.region}@${entry.offset}`);
      conflict.placesById.set(id, places);
    }
  }
  for (const produce of view.produces) {
    const conflict = conflicts.get(produce.producer, produce.sequenceId);
    // One acked attempt makes the sequence acked, whatever the other attempts say.
    if (conflict && conflict.ackState !== 'acked') conflict.ackState = produce.acked ? 'acked' : 'unacked';
  }
  for (const conflict of found) {
    const where = [...conflict.placesById].map(([id, places]) => `${id} (${places.join(', ')})`).join(', ');
    violations.add('duplicate-sequence', {
      topic: view.topic,
      globalId: [...conflict.placesById.keys()][0] as string,
      message: `producer ${conflict.producer} sequence ${conflict.sequenceId} (${conflict.ackState}) is stored under ${conflict.placesById.size} global ids: ${where}`,
    });
  }
}

interface SequenceConflict {
  producer: string;
  sequenceId: number;
  /** For each global id the sequence is stored under, where: `region@offset`. */
  placesById: Map<string, string[]>;
  ackState: 'acked' | 'unacked' | 'no produce recorded';
}

/**
 * Each origin's entries come in the same order in every expected region. Sequences are
 * compared on the positions every region holds, so that a missing entry (reported by
 * invariants 1 and 2) does not also show up as an order difference.
 */
function checkOriginSequencesAgree(view: TopicView, violations: ViolationList): void {
  const logs = expectedLogs(view);
  if (logs.length < 2) return;
  const origins = new Set<string>();
  for (const log of logs) for (const origin of log.byOrigin.keys()) origins.add(origin);
  const heldEverywhere = (entry: StoredRecord): boolean => logs.every((log) => log.byGlobalId.has(entry.originRegion, entry.originPosition));
  for (const origin of origins) {
    // Each region's positions of this origin, first copies only, held by every region.
    const sequences = logs.map((log) =>
      (log.byOrigin.get(origin) ?? []).filter((e) => log.byGlobalId.get(e.originRegion, e.originPosition) === e && heldEverywhere(e)).map((e) => e.originPosition),
    );
    // The origin's own log is the natural reference: it wrote the entries in that order.
    const referenceIndex = Math.max(0, view.expectedRegions.indexOf(origin));
    const reference = sequences[referenceIndex] as number[];
    const referenceRegion = view.expectedRegions[referenceIndex] as string;
    sequences.forEach((sequence, i) => {
      if (i === referenceIndex) return;
      const at = firstDifference(reference, sequence);
      if (at === -1) return;
      const region = view.expectedRegions[i] as string;
      violations.add('origin-sequence-differs', {
        region,
        topic: view.topic,
        globalId: globalIdOf({ originRegion: origin, originPosition: sequence[at] as number }),
        message: `origin ${origin}: ${region}'s order differs from ${referenceRegion}'s at index ${at} (${referenceRegion} has position ${reference[at]}, ${region} has ${sequence[at]})`,
        diff: { expected: neighbourhood(reference.length, at, (k) => String(reference[k])), actual: neighbourhood(sequence.length, at, (k) => String(sequence[k])) },
      });
    });
  }
}

function firstDifference(a: number[], b: number[]): number {
  const length = Math.max(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** No entry is stored, and no produce is acked, in a region outside the topic's allowed set. */
function checkResidency(view: TopicView, allowedRegions: string[], violations: ViolationList): void {
  const allowed = new Set(allowedRegions);
  const allowedList = `[${allowedRegions.join(', ')}]`;
  for (const log of view.logs.values()) {
    if (allowed.has(log.region) || log.entries.length === 0) continue;
    const first = log.entries[0] as StoredRecord;
    const last = log.entries[log.entries.length - 1] as StoredRecord;
    violations.add('residency', {
      region: log.region,
      topic: view.topic,
      globalId: globalIdOf(first),
      offsets: [first.offset, last.offset],
      message: `${plural(log.entries.length, 'entry', 'entries')} stored outside the allowed regions ${allowedList} (offsets ${formatRange(first.offset, last.offset)}, origins ${[...log.byOrigin.keys()].join(', ')})`,
    });
  }
  const ackedOutside = new Map<string, number>();
  for (const produce of view.produces) {
    if (produce.acked && !allowed.has(produce.region)) ackedOutside.set(produce.region, (ackedOutside.get(produce.region) ?? 0) + 1);
  }
  for (const [region, count] of ackedOutside) {
    violations.add('residency', { region, topic: view.topic, message: `${plural(count, 'produce was', 'produces were')} acked outside the allowed regions ${allowedList}` });
  }
}

// ---------------------------------------------------------------------------------------
// Formatting

const NEIGHBOURHOOD_RADIUS = 3;

/**
 * Up to three items each side of `index` in a sequence of `length` items, the one at
 * `index` in brackets. Items are read through `itemAt`, so that a violation in a log of
 * 100,000 entries costs seven lookups, not a copy of the log.
 */
function neighbourhood(length: number, index: number, itemAt: (i: number) => string): string[] {
  const { start, end } = windowAround(length, index);
  const window: string[] = [];
  if (start > 0) window.push('…');
  for (let i = start; i < end; i++) window.push(i === index ? `[${itemAt(i)}]` : itemAt(i));
  if (index >= length) window.push('[(end)]');
  if (end < length) window.push('…');
  return window;
}

function windowAround(length: number, index: number): { start: number; end: number } {
  return { start: Math.max(0, index - NEIGHBOURHOOD_RADIUS), end: Math.min(length, index + NEIGHBOURHOOD_RADIUS + 1) };
}

function formatRange(first: number, last: number): string {
  return first === last ? String(first) : `${first}–${last}`;
}

/** Sorted numbers as ranges: "3–7, 9, 12–40", at most 10 ranges. */
function formatRanges(sorted: number[]): string {
  const ranges: string[] = [];
  let start = sorted[0];
  let end = start;
  let count = 0;
  for (let i = 1; i <= sorted.length; i++) {
    const value = sorted[i];
    if (value !== undefined && end !== undefined && value === end + 1) {
      end = value;
      continue;
    }
    if (start !== undefined && end !== undefined) {
      count++;
      if (ranges.length < 10) ranges.push(formatRange(start, end));
    }
    start = value;
    end = value;
  }
  return count > ranges.length ? `${ranges.join(', ')}, … (${count} ranges)` : ranges.join(', ');
}

function describeHlc(hlc: bigint): string {
  // Wall time and counter say more than the packed value; the packed value can be searched for.
  return `${hlc} (${formatHlc(hlc)})`;
}

function quote(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}

export interface FormatOptions {
  /** Violations listed per invariant; the rest are counted. Default 20. */
  perInvariantMax?: number;
}

/** A readable report for a failed test: grouped by invariant, bounded, with small diffs. */
export function formatViolations(violations: readonly Violation[], options: FormatOptions = {}): string {
  if (violations.length === 0) return 'no invariant violations';
  const perInvariantMax = options.perInvariantMax ?? 20;
  const lines: string[] = [];
  let total = 0;
  for (const invariant of [1, 2, 3, 4, 5] as const) {
    const byKind = groupByKind(violations.filter((v) => v.invariant === invariant));
    if (byKind.size === 0) continue;
    const count = [...byKind.values()].reduce((sum, group) => sum + group.count, 0);
    total += count;
    lines.push(`invariant ${invariant} (${INVARIANT_TITLE[invariant]}): ${plural(count, 'violation', 'violations')}`);
    // Each kind gets a share of the lines, so that 500 offset gaps cannot hide the one lost entry.
    const share = Math.max(1, Math.floor(perInvariantMax / byKind.size));
    const notListed: string[] = [];
    for (const [kind, group] of byKind) {
      for (const violation of group.listed.slice(0, share)) lines.push(...formatViolation(violation));
      const rest = group.count - Math.min(share, group.listed.length);
      if (rest > 0) notListed.push(`${rest} ${kind}`);
    }
    if (notListed.length > 0) lines.push(`  … and more: ${notListed.join(', ')}`);
  }
  return [`${plural(total, 'invariant violation', 'invariant violations')} (DESIGN §10)`, ...lines].join('\n');
}

/** Violations by kind, in the order of KIND_ORDER; summaries count, but are not listed. */
function groupByKind(violations: Violation[]): Map<ViolationKind, { listed: Violation[]; count: number }> {
  const byKind = new Map<ViolationKind, { listed: Violation[]; count: number }>();
  for (const kind of KIND_ORDER) byKind.set(kind, { listed: [], count: 0 });
  for (const violation of violations) {
    const group = byKind.get(violation.kind) as { listed: Violation[]; count: number };
    if (violation.omitted === undefined) {
      group.listed.push(violation);
      group.count++;
    } else {
      group.count += violation.omitted;
    }
  }
  for (const [kind, group] of byKind) if (group.count === 0) byKind.delete(kind);
  return byKind;
}

function formatViolation(violation: Violation): string[] {
  const place = [violation.topic, violation.region].filter((p) => p !== undefined).join(' @ ');
  const lines = [`  - [${violation.kind}]${place ? ` ${place}:` : ''} ${violation.message}`];
  if (violation.diff) {
    lines.push(`      expected: ${violation.diff.expected.join(' ')}`);
    lines.push(`      actual:   ${violation.diff.actual.join(' ')}`);
  }
  return lines;
}
