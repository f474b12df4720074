// Public surface of conflict/: the hybrid logical clock and (later) dedupe and merge rules.
// Everything here is pure: no I/O, no timers, no reading of the system clock.
export {
  HybridLogicalClock,
  compareHlc,
  formatHlc,
  hlcLogical,
  hlcReceive,
  hlcTick,
  hlcWallMs,
  packHlc,
  HLC_LOGICAL_MAX,
  HLC_ZERO,
} from './hybrid-logical-clock.ts';
export type { HlcTimestamp } from './hybrid-logical-clock.ts';
export { ClockSkewError, ConflictError } from './errors.ts';
