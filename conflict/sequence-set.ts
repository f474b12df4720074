// Producer dedupe across regions: the set of sequence ids a region has accepted from one
// producer, kept as sorted, disjoint, non-adjacent inclusive ranges.
//
// Why a set and not a high-water mark. A producer sends seq 1..100 to region A; A commits
// them, but the acks of 91..100 are lost. The producer fails over to region B and resends
// 91..100 under the same producer name and sequence ids, then goes on with 101, 102, ...
// Later A's copies replicate to B and B's to A. Each region must keep exactly one copy of
// 91..100, so a replicated entry whose (producer, sequence id) is already in the set is a
// duplicate. A high-water mark cannot decide this: B may have accepted 91..120 locally
// before A's 51..90 arrive by replication, and those are new messages, not duplicates,
// although they are below B's mark. Within one origin the ids do arrive in order, so the
// set is nearly always a handful of ranges: one per failover that interleaved two regions'
// copies.
//
// Why the bound drops the oldest ranges. The set is persisted with every commit (the
// dedupe mark commits in the same transaction as the entry), so it must stay small: at
// most `rangesMax` ranges (default 64). When a new range would exceed the bound, the
// LOWEST ranges are dropped. The only harm is that a very old sequence id (below 64 gaps)
// would be accepted again if it were ever resent or replicated once more: at worst a
// duplicate. Merging two ranges across the gap between them would keep the count down too,
// but it would claim that the ids in the gap were seen; the messages that later fill the gap
// (A's 51..90 in the story above) would then be discarded as duplicates although no region
// stores them, and an acknowledged message would be lost (DESIGN §10, invariant 1). A
// duplicate is the cheaper failure.
//
// Values are immutable: `add` and `union` return a new set (or `this` when nothing
// changes), so that a set can be staged in a transaction and dropped if it aborts.
import { SequenceSetError } from './errors.ts';

export const SEQUENCE_SET_RANGES_MAX_DEFAULT = 64;
/** An upper bound on the bound itself, so that a bad setting cannot make a mark unbounded. */
export const SEQUENCE_SET_RANGES_MAX_LIMIT = 65_536;

/** The JSON-able form: sorted, disjoint, non-adjacent inclusive ranges `[first, last]`. */
export type SequenceRanges = Array<[number, number]>;

type Range = readonly [number, number];

export interface SequenceSetOptions {
  /** Most ranges kept; the lowest are dropped beyond it. Default 64. */
  rangesMax?: number;
}

function checkRangesMax(rangesMax: number): number {
  if (!Number.isInteger(rangesMax) || rangesMax < 1 || rangesMax > SEQUENCE_SET_RANGES_MAX_LIMIT) {
    throw new SequenceSetError(
      'rangesMax',
      `must be an integer in [1, ${SEQUENCE_SET_RANGES_MAX_LIMIT}]: got ${String(rangesMax)}`,
    );
  }
  return rangesMax;
}

function checkSequenceId(sequenceId: number, field: string): number {
  if (!Number.isSafeInteger(sequenceId) || sequenceId < 0) {
    throw new SequenceSetError(field, `a sequence id is a non-negative safe integer: got ${String(sequenceId)}`);
  }
  return sequenceId;
}

export class SequenceSet {
  readonly rangesMax: number;
  // Sorted by first id; for consecutive ranges r, s: r[1] + 1 < s[0] (disjoint and not adjacent).
  readonly #ranges: readonly Range[];

  private constructor(ranges: readonly Range[], rangesMax: number) {
    this.#ranges = ranges;
    this.rangesMax = rangesMax;
  }

  static empty(options: SequenceSetOptions = {}): SequenceSet {
    return new SequenceSet([], checkRangesMax(options.rangesMax ?? SEQUENCE_SET_RANGES_MAX_DEFAULT));
  }

  /**
   * Reads the persisted form. It must be canonical (sorted, disjoint, non-adjacent), which
   * is what `toJSON` writes; anything else is refused with a SequenceSetError naming the
   * element. A set with more ranges than `rangesMax` (the bound was lowered) is trimmed
   * from below, like any other set over the bound.
   */
  static fromJSON(value: unknown, options: SequenceSetOptions = {}): SequenceSet {
    const rangesMax = checkRangesMax(options.rangesMax ?? SEQUENCE_SET_RANGES_MAX_DEFAULT);
    if (!Array.isArray(value)) throw new SequenceSetError('$', 'must be an array of [first, last] ranges');
    if (value.length > SEQUENCE_SET_RANGES_MAX_LIMIT) {
      throw new SequenceSetError('$', `has ${value.length} ranges; at most ${SEQUENCE_SET_RANGES_MAX_LIMIT} are read`);
    }
    const ranges: Range[] = [];
    let previousLast = -2;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (!Array.isArray(item) || item.length !== 2) {
        throw new SequenceSetError(`$[${i}]`, 'must be a pair [first, last]');
      }
      const first = checkSequenceId(item[0] as number, `$[${i}][0]`);
      const last = checkSequenceId(item[1] as number, `$[${i}][1]`);
      if (first > last) throw new SequenceSetError(`$[${i}]`, `first ${first} is above last ${last}`);
      if (first <= previousLast + 1) {
        throw new SequenceSetError(`$[${i}]`, 'ranges must be sorted, disjoint and not adjacent');
      }
      ranges.push([first, last]);
      previousLast = last;
    }
    return new SequenceSet(trimOldest(ranges, rangesMax), rangesMax);
  }

  /** The persisted form (a fresh array: the caller may keep or mutate it). */
  toJSON(): SequenceRanges {
    return this.#ranges.map(([first, last]) => [first, last]);
  }

  get rangeCount(): number {
    return this.#ranges.length;
  }

  /** How many sequence ids the set holds. */
  get size(): number {
    let size = 0;
    for (const [first, last] of this.#ranges) size += last - first + 1;
    return size;
  }

  get isEmpty(): boolean {
    return this.#ranges.length === 0;
  }

  /** The highest sequence id in the set, or undefined when it is empty. */
  highest(): number | undefined {
    return this.#ranges.at(-1)?.[1];
  }

  /** The lowest sequence id still remembered, or undefined when the set is empty. */
  lowest(): number | undefined {
    return this.#ranges[0]?.[0];
  }

  has(sequenceId: number): boolean {
    checkSequenceId(sequenceId, 'sequenceId');
    const index = this.#indexAtOrBefore(sequenceId);
    if (index < 0) return false;
    return sequenceId <= (this.#ranges[index] as Range)[1];
  }

  /** The set with `sequenceId` added (`this` when it is already there). */
  add(sequenceId: number): SequenceSet {
    checkSequenceId(sequenceId, 'sequenceId');
    const ranges = this.#ranges;
    const index = this.#indexAtOrBefore(sequenceId);
    const before = index >= 0 ? (ranges[index] as Range) : undefined;
    if (before && sequenceId <= before[1]) return this;
    const after = ranges[index + 1];
    const joinsBefore = before !== undefined && before[1] + 1 === sequenceId;
    const joinsAfter = after !== undefined && after[0] - 1 === sequenceId;
    const next = ranges.slice();
    if (joinsBefore && joinsAfter) {
      next.splice(index, 2, [before[0], after[1]]);
    } else if (joinsBefore) {
      next[index] = [before[0], sequenceId];
    } else if (joinsAfter) {
      next[index + 1] = [sequenceId, after[1]];
    } else {
      next.splice(index + 1, 0, [sequenceId, sequenceId]);
    }
    return new SequenceSet(trimOldest(next, this.rangesMax), this.rangesMax);
  }

  /**
   * The set with every id of `first..last` added, without a copy of the ranges per id.
   * Within the bound it is the set that adding them one by one gives. Over it, like
   * `union`, it trims once, at the end: a range that one-by-one adding would have dropped
   * on the way, before the new ids joined it to a kept one, may stay.
   */
  addRange(first: number, last: number): SequenceSet {
    checkSequenceId(first, 'first');
    checkSequenceId(last, 'last');
    if (first > last) throw new SequenceSetError('first', `${first} is above last ${last}`);
    return this.union(new SequenceSet([[first, last]], this.rangesMax));
  }

  /**
   * Everything in either set, trimmed to this set's bound (the local setting rules what is
   * stored locally). Within the bound, union is commutative, associative and idempotent.
   * Once trimming drops ranges it is no longer associative: ranges dropped from a partial
   * union are not restored when a later operand would have joined them to a kept range.
   * That only ever forgets old ids (a possible duplicate), never invents seen ids.
   */
  union(other: SequenceSet): SequenceSet {
    if (other.#ranges.length === 0) return this;
    const merged: Array<[number, number]> = [];
    const a = this.#ranges;
    const b = other.#ranges;
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      const takeA = j >= b.length || (i < a.length && (a[i] as Range)[0] <= (b[j] as Range)[0]);
      const range = takeA ? (a[i++] as Range) : (b[j++] as Range);
      const last = merged.at(-1);
      if (last && range[0] <= last[1] + 1) {
        if (range[1] > last[1]) last[1] = range[1];
      } else {
        merged.push([range[0], range[1]]);
      }
    }
    return new SequenceSet(trimOldest(merged, this.rangesMax), this.rangesMax);
  }

  /** Every sequence id, lowest first. For tests and diagnostics: it can be large. */
  *values(): IterableIterator<number> {
    for (const [first, last] of this.#ranges) for (let id = first; id <= last; id++) yield id;
  }

  /** Index of the last range whose first id is ≤ sequenceId, or -1. */
  #indexAtOrBefore(sequenceId: number): number {
    let low = 0;
    let high = this.#ranges.length - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if ((this.#ranges[middle] as Range)[0] <= sequenceId) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found;
  }
}

/** Drops the lowest ranges beyond the bound. Never merges across a gap: see the file comment. */
function trimOldest(ranges: readonly Range[], rangesMax: number): readonly Range[] {
  return ranges.length > rangesMax ? ranges.slice(ranges.length - rangesMax) : ranges;
}
