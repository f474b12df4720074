// Public surface of conflict/: the hybrid logical clock, producer dedupe across regions,
// version vectors, keyed state and its conflict policies, conflict feed records, and the
// (HLC, origin) order for HLC-ordered delivery.
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
export {
  ClockSkewError,
  ConflictError,
  ConflictInputError,
  ConflictPolicyError,
  ConflictRecordError,
  ConflictResolverError,
  KeyedVersionError,
  SequenceSetError,
  VersionVectorError,
} from './errors.ts';
export {
  SequenceSet,
  SEQUENCE_SET_RANGES_MAX_DEFAULT,
  SEQUENCE_SET_RANGES_MAX_LIMIT,
} from './sequence-set.ts';
export type { SequenceRanges, SequenceSetOptions } from './sequence-set.ts';
export {
  assertVersionVector,
  compareVersionVectors,
  dominates,
  formatVersionVector,
  isRegionName,
  joinVersionVectors,
  parseVersionVector,
  strictlyDominates,
  versionVector,
  versionVectorsEqual,
  withPosition,
  REGION_NAME_PATTERN,
  VERSION_VECTOR_REGIONS_MAX,
  VERSION_VECTOR_TEXT_LENGTH_MAX,
} from './version-vector.ts';
export type { VersionVector, VersionVectorOrder } from './version-vector.ts';
export {
  applyVersion,
  concurrentVersions,
  emptyKeyedState,
  hasSeenVersion,
  mergeStates,
  nextVersionVector,
  resolve,
  resolvedValue,
  validateKeyedVersion,
} from './keyed-state.ts';
export type { KeyedState, KeyedVersion, Resolution } from './keyed-state.ts';
export {
  createConflictPolicy,
  customPolicy,
  lwwPolicy,
  maxJsonPathPolicy,
  parseConflictPolicySpec,
  parseJsonPath,
  regionPriorityPolicy,
  DEFAULT_CONFLICT_POLICY_SPEC,
  JSON_PATH_LENGTH_MAX,
  JSON_PATH_SEGMENTS_MAX,
  REGION_PRIORITY_REGIONS_MAX,
} from './policies.ts';
export type { ConflictPolicy, ConflictPolicyKind, ConflictPolicySpec, CustomResolver } from './policies.ts';
export {
  buildConflictRecord,
  conflictPairId,
  decodeConflictRecord,
  detectConflicts,
  encodeConflictRecord,
  recorderOf,
  valueDigest,
  CONFLICT_RECORD_BYTES_MAX,
  CONFLICT_RECORD_FORMAT,
  CONFLICT_RECORD_VALUE_INLINE_BYTES_LIMIT,
  CONFLICT_RECORD_VALUE_INLINE_BYTES_MAX_DEFAULT,
} from './conflict-record.ts';
export type { ConflictPair, ConflictRecord, ConflictVersionSummary } from './conflict-record.ts';
export { compareHlcOrder, hlcInsertionIndex, insertInHlcOrder, releaseFrontier, releaseInHlcOrder } from './order.ts';
export type { HlcOrdered, Release } from './order.ts';
