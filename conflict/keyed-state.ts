// The state of one key of a keyed topic (compaction, table views) as a multi-value
// register: a state-based CRDT whose state is the set of maximal versions.
//
// Every write of a key carries a version vector: what the writing region had seen of this
// key when it wrote, plus the write itself (`vv[originRegion] === originPosition`). Write w
// supersedes write v when w's vector is strictly above v's, that is, w's region had seen v
// (directly or through a write that had). Two writes are concurrent when neither vector is
// above the other: neither region had seen the other's write (DESIGN §6).
//
// The state keeps every version that no other version supersedes. Applying a version or
// merging two states is "union, then keep the maximal elements" under the strict pointwise
// order of vectors, which is a join in a lattice: commutative, associative and idempotent,
// so every region that has received the same writes holds the same state, whatever the
// arrival order and however the writes were batched (DESIGN §10, invariant 6).
//
// The state stays small without any pruning rule: one region's writes are totally ordered
// (each region's next vector joins everything it holds, its own last write included), so at
// most one version per region is maximal.
//
// A deletion is a version whose value is null (a tombstone). It takes part like any other
// write, so that a delete concurrent with an update is a conflict that the policy resolves.
import assert from 'node:assert/strict';
import { KeyedVersionError } from './errors.ts';
import type { HlcTimestamp } from './hybrid-logical-clock.ts';
import { compareHlcOrder } from './order.ts';
import type { ConflictPolicy } from './policies.ts';
import {
  assertVersionVector,
  compareVersionVectors,
  isRegionName,
  joinVersionVectors,
  versionVectorsEqual,
  withPosition,
  type VersionVector,
} from './version-vector.ts';

const HLC_MAX: HlcTimestamp = 2n ** 64n - 1n;

/** One write of a key, as it travels: every field is set once, by the origin region. */
export interface KeyedVersion {
  readonly key: string;
  /** The payload; null is a deletion (tombstone). */
  readonly value: Buffer | null;
  readonly originRegion: string;
  readonly originPosition: number;
  readonly hlc: HlcTimestamp;
  /** What the origin had seen of this key when it wrote, including this write. */
  readonly vv: VersionVector;
}

/** The maximal versions of one key, sorted by (HLC, origin) so that equal states look equal. */
export interface KeyedState {
  readonly key: string;
  readonly versions: readonly KeyedVersion[];
}

/** The winner of a key's maximal versions under a policy, and the concurrent versions it beat. */
export interface Resolution {
  readonly winner: KeyedVersion;
  /** The other maximal versions (all concurrent with the winner), in (HLC, origin) order. */
  readonly losers: readonly KeyedVersion[];
}

export function emptyKeyedState(key: string): KeyedState {
  return { key, versions: [] };
}

/**
 * Checks a version that came from the wire or from storage; throws KeyedVersionError naming
 * the field. A vector that does not contain the write itself would let an older write look
 * concurrent with (or even supersede) a newer one, so it is refused.
 */
export function validateKeyedVersion(version: unknown): asserts version is KeyedVersion {
  if (typeof version !== 'object' || version === null) throw new KeyedVersionError('$', 'must be an object');
  const v = version as Record<string, unknown>;
  if (typeof v.key !== 'string') throw new KeyedVersionError('key', 'must be a string');
  if (v.value !== null && !Buffer.isBuffer(v.value)) throw new KeyedVersionError('value', 'must be a Buffer or null');
  if (!isRegionName(v.originRegion)) {
    throw new KeyedVersionError('originRegion', `${JSON.stringify(v.originRegion)} is not a region name`);
  }
  const position = v.originPosition;
  if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0) {
    throw new KeyedVersionError('originPosition', `must be a non-negative safe integer: got ${String(position)}`);
  }
  if (typeof v.hlc !== 'bigint' || v.hlc < 0n || v.hlc > HLC_MAX) {
    throw new KeyedVersionError('hlc', 'must be an unsigned 64-bit bigint');
  }
  try {
    assertVersionVector(v.vv, 'vv');
  } catch (error) {
    throw new KeyedVersionError('vv', (error as Error).message, { cause: error });
  }
  const own = v.vv.get(v.originRegion);
  if (own !== position) {
    throw new KeyedVersionError(
      `vv.${v.originRegion}`,
      `must equal the write's own origin position ${position}: got ${String(own)}`,
    );
  }
}

/** The state with `version` added, and any versions it supersedes removed. */
export function applyVersion(state: KeyedState, version: KeyedVersion): KeyedState {
  validateKeyedVersion(version);
  assert.equal(version.key, state.key, 'a version was applied to the state of another key');
  return insertMaximal(state, version);
}

/** The join of two states of the same key: the maximal versions of their union. */
export function mergeStates(a: KeyedState, b: KeyedState): KeyedState {
  assert.equal(a.key, b.key, 'states of different keys cannot be merged');
  let result = a;
  for (const version of b.versions) result = insertMaximal(result, version);
  return result;
}

/**
 * True when the state already accounts for `version`: it holds it, or holds a version whose
 * writer had seen it. Applying such a version changes nothing.
 */
export function hasSeenVersion(state: KeyedState, version: KeyedVersion): boolean {
  return state.versions.some(
    (held) => sameWrite(held, version) || compareVersionVectors(held.vv, version.vv) === 'after',
  );
}

/**
 * The held versions that `version` is concurrent with, when applying it adds it to the
 * state: the conflicts that applying it detects. Empty when the state has already seen it,
 * so that a redelivered or superseded write is never reported twice.
 */
export function concurrentVersions(state: KeyedState, version: KeyedVersion): KeyedVersion[] {
  validateKeyedVersion(version);
  if (hasSeenVersion(state, version)) return [];
  return state.versions.filter((held) => compareVersionVectors(held.vv, version.vv) === 'concurrent');
}

/**
 * The version vector of a new local write to this key: everything the region holds of the
 * key, plus the write itself at `originPosition`. The position must be above any position of
 * this region already seen for the key; a lower one means positions went backwards, which is
 * a broken invariant, not bad input.
 */
export function nextVersionVector(state: KeyedState, region: string, originPosition: number): VersionVector {
  let vv: VersionVector = new Map();
  for (const version of state.versions) vv = joinVersionVectors(vv, version.vv);
  const seen = vv.get(region);
  assert(
    seen === undefined || seen < originPosition,
    `origin position ${originPosition} of ${region} is not above ${String(seen)}, already seen for key ${state.key}`,
  );
  return withPosition(vv, region, originPosition);
}

/**
 * The winner among the key's maximal versions, and the others as losers; undefined for an
 * empty state. The versions are folded in (HLC, origin) order, winner = pick(winner, next),
 * so the result depends only on the set of versions: the same in every region. For the
 * built-in policies, which are total orders, that is simply the greatest version.
 */
export function resolve(state: KeyedState, policy: ConflictPolicy): Resolution | undefined {
  const [first, ...rest] = state.versions;
  if (first === undefined) return undefined;
  let winner = first;
  for (const version of rest) winner = policy.pick(winner, version);
  return { winner, losers: state.versions.filter((version) => version !== winner) };
}

/** The value the key reads as once resolved: undefined when it has no version or was deleted. */
export function resolvedValue(state: KeyedState, policy: ConflictPolicy): Buffer | undefined {
  return resolve(state, policy)?.winner.value ?? undefined;
}

function sameWrite(a: KeyedVersion, b: KeyedVersion): boolean {
  return a.originRegion === b.originRegion && a.originPosition === b.originPosition;
}

function insertMaximal(state: KeyedState, version: KeyedVersion): KeyedState {
  const kept: KeyedVersion[] = [];
  for (const held of state.versions) {
    if (sameWrite(held, version)) {
      // Origin fields are set once and never change as an entry travels (DESIGN §2), so a
      // second copy of a write must be identical; anything else is corruption upstream.
      assert(
        held.hlc === version.hlc && versionVectorsEqual(held.vv, version.vv) && valuesEqual(held.value, version.value),
        `two different versions claim the global id (${version.originRegion}, ${version.originPosition})`,
      );
      return state;
    }
    const order = compareVersionVectors(held.vv, version.vv);
    // Superseded already: the state has seen this write.
    if (order === 'after') return state;
    // Superseded by the new version: drop it. 'equal' vectors of different writes cannot
    // come from real histories (each would have seen the other); both are kept, which keeps
    // the order strict and the merge a lattice join even for such input.
    if (order !== 'before') kept.push(held);
  }
  kept.push(version);
  kept.sort(compareHlcOrder);
  return { key: state.key, versions: kept };
}

function valuesEqual(a: Buffer | null, b: Buffer | null): boolean {
  if (a === null || b === null) return a === b;
  return a.equals(b);
}
