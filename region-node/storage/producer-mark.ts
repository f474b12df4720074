// A producer's dedupe state in a topic log, and how a group commit updates it.
import { SequenceSet } from '../../conflict/index.ts';
import { assert } from '../errors.ts';

/**
 * A producer's dedupe state in one topic log: its highest sequence id, where that entry
 * is, and every sequence id of it the log holds, whichever region accepted it. The last
 * is what makes dedupe work across regions: a producer that fails over from A to B
 * resends to B what A had stored, and A's copies arrive later by replication; each
 * region keeps the first copy it stores and skips the other. A high-water mark alone
 * would wrongly skip A's older entries that arrive after B stored newer ones.
 */
export interface ProducerMark {
  sequenceId: number;
  offset: number;
  seen: SequenceSet;
  /** The highest sequence id this region accepted from the producer itself (-1: none). */
  localSequenceId: number;
}

/** How a ProducerMark is stored (`seen` as ranges; absent in marks written before it existed). */
export interface StoredProducerMark {
  sequenceId: number;
  offset: number;
  seen?: Array<[number, number]>;
  localSequenceId?: number;
}

export function loadProducerMark(stored: StoredProducerMark): ProducerMark {
  // A mark from before `seen` existed meant "every id up to sequenceId"; keep that meaning.
  const seen = stored.seen ? SequenceSet.fromJSON(stored.seen) : stored.sequenceId >= 0 ? SequenceSet.fromJSON([[0, stored.sequenceId]]) : SequenceSet.empty();
  return { sequenceId: stored.sequenceId, offset: stored.offset, seen, localSequenceId: stored.localSequenceId ?? stored.sequenceId };
}

export function storeProducerMark(mark: ProducerMark): StoredProducerMark {
  return { sequenceId: mark.sequenceId, offset: mark.offset, seen: mark.seen.toJSON(), localSequenceId: mark.localSequenceId };
}

/**
 * Whether a producer's sequence id is already in the log. Ids below the lowest kept range
 * are NOT taken as seen: they may be older entries of the producer that another region
 * accepted and that arrive only now (a failover). Once the bound on ranges has dropped the
 * oldest ones, a very old resend may be stored twice; that is a duplicate, never a loss.
 */
export function alreadySeen(mark: ProducerMark | undefined, sequenceId: number): boolean {
  return mark !== undefined && mark.seen.has(sequenceId);
}

/**
 * A send from the producer itself is also a duplicate at or below the highest id this
 * region accepted from it (Pulsar's rule): a producer sends in order, so that holds even
 * for producers whose ids are sparse (say, timestamps) and outgrow the bounded ranges.
 */
export function alreadySeenLocally(mark: ProducerMark | undefined, sequenceId: number): boolean {
  return mark !== undefined && (sequenceId <= mark.localSequenceId || mark.seen.has(sequenceId));
}

/**
 * A producer's mark while a commit is staged. A producer's ids mostly follow one another,
 * so a run of them is held as its first and last id and added to the mark's set once,
 * when the run ends, instead of making for every entry a copy of the set's ranges, a new
 * range, a new set and a new mark: garbage for the collector at 50,000 replicated entries
 * a second. An id that follows the run is checked against the mark without the run,
 * which gives the same answer: the run holds only lower ids, and it raises the producer's
 * own highest id (localSequenceId) only up to its last id.
 */
export class StagedProducerMark {
  #mark: ProducerMark | undefined;
  #first = -1;
  #last = -1;
  #lastOffset = -1;
  #local = false;
  /** Whether any id was added: only then is the mark written. */
  added = false;

  constructor(mark?: ProducerMark) {
    this.#mark = mark;
  }

  /** Whether the id is already stored (a replicated entry: any copy counts). */
  seen(sequenceId: number): boolean {
    return alreadySeen(this.#markBefore(sequenceId), sequenceId);
  }

  /** Whether a send of the producer itself is a duplicate (Pulsar's rule, alreadySeenLocally). */
  seenLocally(sequenceId: number): boolean {
    return alreadySeenLocally(this.#markBefore(sequenceId), sequenceId);
  }

  /** The offset of the producer's highest id, if that is `sequenceId` (a duplicate's receipt). */
  offsetOf(sequenceId: number): number {
    const mark = this.mark();
    return mark !== undefined && mark.sequenceId === sequenceId ? mark.offset : -1;
  }

  /** Records a new id, stored at `offset`; `local` when the producer sent it to this region. */
  add(sequenceId: number, offset: number, local: boolean): void {
    this.added = true;
    if (this.#first >= 0 && sequenceId === this.#last + 1 && local === this.#local) {
      this.#last = sequenceId;
      this.#lastOffset = offset;
      return;
    }
    this.#fold();
    this.#first = sequenceId;
    this.#last = sequenceId;
    this.#lastOffset = offset;
    this.#local = local;
  }

  /** The mark with every id added so far. */
  mark(): ProducerMark | undefined {
    this.#fold();
    return this.#mark;
  }

  /** The mark to write, once `added`. */
  written(): ProducerMark {
    const mark = this.mark();
    assert(mark !== undefined, 'a producer mark with no id added');
    return mark;
  }

  #markBefore(sequenceId: number): ProducerMark | undefined {
    if (this.#first >= 0 && sequenceId !== this.#last + 1) this.#fold();
    return this.#mark;
  }

  #fold(): void {
    if (this.#first < 0) return;
    const mark = this.#mark;
    const seen = (mark?.seen ?? SequenceSet.empty()).addRange(this.#first, this.#last);
    const localSequenceId = this.#local ? Math.max(mark?.localSequenceId ?? -1, this.#last) : (mark?.localSequenceId ?? -1);
    this.#mark =
      mark && mark.sequenceId > this.#last
        ? { sequenceId: mark.sequenceId, offset: mark.offset, seen, localSequenceId }
        : { sequenceId: this.#last, offset: this.#lastOffset, seen, localSequenceId };
    this.#first = -1;
  }
}
