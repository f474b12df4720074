// Hybrid logical clock after Kulkarni et al., "Logical Physical Clocks" (2014).
//
// A timestamp packs a 48-bit wall time in milliseconds and a 16-bit logical counter into
// one unsigned 64-bit value: (wallMs << 16) | logical. As a big-endian key it sorts in
// timestamp order, which is what LMDB range scans need.
//
// This module is pure: physical time is an argument, never read from the system, so that
// tests can skew it and replay it.
import { ClockSkewError } from './errors.ts';

export type HlcTimestamp = bigint;

export const HLC_LOGICAL_BITS = 16n;
export const HLC_LOGICAL_MAX = 0xffff;
export const HLC_WALL_MAX_MS = 2 ** 48 - 1;
export const HLC_ZERO: HlcTimestamp = 0n;

export function packHlc(wallMs: number, logical: number): HlcTimestamp {
  if (!Number.isInteger(wallMs) || wallMs < 0 || wallMs > HLC_WALL_MAX_MS) {
    throw new RangeError(`HLC wall time must be an integer in [0, 2^48): got ${wallMs}`);
  }
  if (!Number.isInteger(logical) || logical < 0 || logical > HLC_LOGICAL_MAX) {
    throw new RangeError(`HLC logical counter must be an integer in [0, 65535]: got ${logical}`);
  }
  return (BigInt(wallMs) << HLC_LOGICAL_BITS) | BigInt(logical);
}

export function hlcWallMs(timestamp: HlcTimestamp): number {
  return Number(timestamp >> HLC_LOGICAL_BITS);
}

export function hlcLogical(timestamp: HlcTimestamp): number {
  return Number(timestamp & 0xffffn);
}

export function formatHlc(timestamp: HlcTimestamp): string {
  return `${hlcWallMs(timestamp)}.${hlcLogical(timestamp)}`;
}

/**
 * Orders two (timestamp, origin region) pairs. Equal timestamps from different regions
 * break the tie on the region name, so every region computes the same total order.
 */
export function compareHlc(
  a: { hlc: HlcTimestamp; region: string },
  b: { hlc: HlcTimestamp; region: string },
): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1;
  if (a.region === b.region) return 0;
  return a.region < b.region ? -1 : 1;
}

/**
 * The smallest timestamp strictly after both `last` and the physical time. The counter
 * only grows while the wall part stays; if it would overflow 16 bits, the wall part is
 * advanced by one millisecond instead, which keeps the clock monotonic at the cost of
 * running slightly ahead of physical time under extreme write rates.
 */
function successor(last: HlcTimestamp, physicalMs: number): HlcTimestamp {
  const lastWall = hlcWallMs(last);
  if (physicalMs > lastWall) return packHlc(physicalMs, 0);
  const logical = hlcLogical(last);
  if (logical < HLC_LOGICAL_MAX) return last + 1n;
  return packHlc(lastWall + 1, 0);
}

/** Send or local event: returns the new timestamp, which is also the clock's new state. */
export function hlcTick(last: HlcTimestamp, physicalMs: number): HlcTimestamp {
  return successor(last, Math.floor(physicalMs));
}

/**
 * Receive event: merges a remote timestamp. Refuses one that is more than
 * maxClockOffsetMs ahead of local physical time, so that one region with a bad clock
 * cannot drag every other region's clock into the future.
 */
export function hlcReceive(
  last: HlcTimestamp,
  remote: HlcTimestamp,
  physicalMs: number,
  maxClockOffsetMs: number,
): HlcTimestamp {
  const physical = Math.floor(physicalMs);
  const skewMs = hlcWallMs(remote) - physical;
  if (skewMs > maxClockOffsetMs) throw new ClockSkewError(skewMs, maxClockOffsetMs);
  const base = remote > last ? remote : last;
  return successor(base, physical);
}

/**
 * A stateful clock around the pure rules. The physical source is injected; the caller
 * persists `last` (see region-node storage) so that a restart never goes backwards.
 */
export class HybridLogicalClock {
  #last: HlcTimestamp;
  readonly #readPhysicalMs: () => number;
  readonly #maxClockOffsetMs: number;

  constructor(options: { readPhysicalMs: () => number; initial?: HlcTimestamp; maxClockOffsetMs?: number }) {
    this.#readPhysicalMs = options.readPhysicalMs;
    this.#last = options.initial ?? HLC_ZERO;
    this.#maxClockOffsetMs = options.maxClockOffsetMs ?? 500;
  }

  get last(): HlcTimestamp {
    return this.#last;
  }

  now(): HlcTimestamp {
    this.#last = hlcTick(this.#last, this.#readPhysicalMs());
    return this.#last;
  }

  receive(remote: HlcTimestamp): HlcTimestamp {
    this.#last = hlcReceive(this.#last, remote, this.#readPhysicalMs(), this.#maxClockOffsetMs);
    return this.#last;
  }

  /** Moves the clock to at least `floor`, e.g. the bound persisted before a restart. */
  advanceTo(floor: HlcTimestamp): void {
    if (floor > this.#last) this.#last = floor;
  }
}
