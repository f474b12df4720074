// The (HLC, origin) total order and HLC-ordered delivery (DESIGN §3, §6).
//
// Every entry carries the HLC timestamp its origin region gave it. Sorting by HLC, then by
// origin region name, gives one order that every region computes the same way and that
// respects happened-before (an entry written after its region saw another has a larger
// HLC, because receiving merges the clock). Origin position breaks the last tie: one
// region's clock never repeats a timestamp, so it only matters if a region ran several
// clocks (brokers) that happened to agree, and it keeps the order total even then.
import assert from 'node:assert/strict';
import { compareHlc, type HlcTimestamp } from './hybrid-logical-clock.ts';

/** What the order needs from an entry or a keyed version. */
export interface HlcOrdered {
  readonly hlc: HlcTimestamp;
  readonly originRegion: string;
  readonly originPosition: number;
}

/** Negative when `a` comes first; 0 only for the same global id at the same HLC. */
export function compareHlcOrder(a: HlcOrdered, b: HlcOrdered): number {
  const byClock = compareHlc({ hlc: a.hlc, region: a.originRegion }, { hlc: b.hlc, region: b.originRegion });
  if (byClock !== 0) return byClock;
  return a.originPosition - b.originPosition;
}

/**
 * The HLC below which delivery is safe: the lowest watermark over the replication set, or
 * undefined while some region in the set has no watermark yet (nothing is safe then).
 *
 * `watermarks` maps an origin region to T such that every entry from that origin with
 * HLC ≤ T is durable here. It must include the local region: for local writes, that is the
 * HLC of the latest durable local entry while writes are in flight, and a fresh reading of
 * the clock when none is (the clock never again hands out a timestamp at or below it). Idle
 * remote links advance their watermark by heartbeats; without them delivery would stall.
 */
export function releaseFrontier(
  watermarks: ReadonlyMap<string, HlcTimestamp>,
  replicationSet: Iterable<string>,
): HlcTimestamp | undefined {
  let frontier: HlcTimestamp | undefined;
  let regions = 0;
  for (const region of replicationSet) {
    regions++;
    const watermark = watermarks.get(region);
    if (watermark === undefined) return undefined;
    if (frontier === undefined || watermark < frontier) frontier = watermark;
  }
  assert(regions > 0, 'HLC-ordered delivery needs a non-empty replication set');
  return frontier;
}

export interface Release<T> {
  /** Entries that can be delivered now, in (HLC, origin) order. */
  released: T[];
  /** The rest of the buffer, still sorted. */
  pending: T[];
}

/**
 * Splits a buffer sorted by `compareHlcOrder` into what can be delivered now and what must
 * wait. An entry is released once every region in the replication set has a watermark at or
 * above its HLC: then no entry that sorts before it can still arrive (an entry with an equal
 * HLC from a region with a smaller name is covered too, because watermarks are inclusive).
 * Because the buffer is sorted, the released entries are a prefix of it, and every region
 * releases the same sequence whatever order the entries arrived in.
 */
export function releaseInHlcOrder<T extends HlcOrdered>(
  pending: readonly T[],
  watermarks: ReadonlyMap<string, HlcTimestamp>,
  replicationSet: Iterable<string>,
): Release<T> {
  const frontier = releaseFrontier(watermarks, replicationSet);
  let count = 0;
  if (frontier !== undefined) {
    while (count < pending.length && (pending[count] as T).hlc <= frontier) {
      if (count > 0) {
        assert(compareHlcOrder(pending[count - 1] as T, pending[count] as T) < 0, 'HLC delivery buffer is not sorted');
      }
      count++;
    }
  }
  return { released: pending.slice(0, count), pending: pending.slice(count) };
}

/** Where `entry` goes in a buffer sorted by (HLC, origin): the first position not before it (binary search). */
export function hlcInsertionIndex<T extends HlcOrdered>(buffer: readonly T[], entry: T): number {
  let low = 0;
  let high = buffer.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareHlcOrder(buffer[middle] as T, entry) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Inserts an entry into a sorted buffer (binary search); an entry with the same global id
 * as one already buffered is a duplicate and leaves the buffer unchanged.
 */
export function insertInHlcOrder<T extends HlcOrdered>(buffer: readonly T[], entry: T): T[] {
  const low = hlcInsertionIndex(buffer, entry);
  const at = buffer[low];
  if (at && at.originRegion === entry.originRegion && at.originPosition === entry.originPosition) return buffer.slice();
  const result = buffer.slice();
  result.splice(low, 0, entry);
  return result;
}
