// Version vectors over regions, for one key of a keyed topic: region name → the highest
// origin position of that region's writes (to this key) that the holder had seen.
//
// A region absent from a vector means "no write from it seen". Origin positions start at
// 0, so absence is not the same as 0; comparisons treat an absent region as below every
// position.
//
// The text form travels in message properties: `region:position` pairs sorted by region
// name and joined by commas, e.g. `beijing:12,shanghai:40`; the empty vector is the empty
// string. Sorting makes the form deterministic, so that equal vectors have equal bytes in
// every region. Parsing is strict (canonical form only), because a vector that two regions
// could read differently would break convergence.
import { VersionVectorError } from './errors.ts';

/** Region → highest origin position seen. Treat as immutable: functions return new maps. */
export type VersionVector = ReadonlyMap<string, number>;

export type VersionVectorOrder = 'before' | 'after' | 'equal' | 'concurrent';

/** A region name as in topology/ and region-node/config.ts (DESIGN §2). */
export const REGION_NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;
/** Most regions a vector may name: far above any real deployment, low enough to bound parsing. */
export const VERSION_VECTOR_REGIONS_MAX = 256;
/** Longest accepted text form: VERSION_VECTOR_REGIONS_MAX entries of the longest name and position. */
export const VERSION_VECTOR_TEXT_LENGTH_MAX = VERSION_VECTOR_REGIONS_MAX * (63 + 1 + 16 + 1);

const POSITION_TEXT = /^(?:0|[1-9][0-9]{0,15})$/;

export function isRegionName(value: unknown): value is string {
  return typeof value === 'string' && REGION_NAME_PATTERN.test(value);
}

function checkEntry(region: unknown, position: unknown, field: string): void {
  if (!isRegionName(region)) {
    throw new VersionVectorError(field, `${JSON.stringify(region)} is not a region name ([a-z][a-z0-9-]{0,62})`);
  }
  if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0) {
    throw new VersionVectorError(`${field}.${region}`, `an origin position is a non-negative safe integer: got ${String(position)}`);
  }
}

/**
 * Builds a validated vector from entries or a plain record. Throws VersionVectorError on a
 * bad region name, a bad position, a repeated region, or too many regions.
 */
export function versionVector(
  entries: Iterable<readonly [string, number]> | Readonly<Record<string, number>> = [],
): VersionVector {
  const pairs: Iterable<readonly [string, number]> =
    Symbol.iterator in entries ? (entries as Iterable<readonly [string, number]>) : Object.entries(entries);
  const result = new Map<string, number>();
  for (const [region, position] of pairs) {
    checkEntry(region, position, 'vv');
    if (result.has(region)) throw new VersionVectorError(`vv.${region}`, 'region appears twice');
    result.set(region, position);
    if (result.size > VERSION_VECTOR_REGIONS_MAX) {
      throw new VersionVectorError('vv', `names more than ${VERSION_VECTOR_REGIONS_MAX} regions`);
    }
  }
  return sortedCopy(result);
}

/** Checks a vector built elsewhere (e.g. by a caller that made its own Map). */
export function assertVersionVector(vv: unknown, field = 'vv'): asserts vv is VersionVector {
  if (!(vv instanceof Map)) throw new VersionVectorError(field, 'must be a Map of region → origin position');
  if (vv.size > VERSION_VECTOR_REGIONS_MAX) {
    throw new VersionVectorError(field, `names more than ${VERSION_VECTOR_REGIONS_MAX} regions`);
  }
  for (const [region, position] of vv as Map<unknown, unknown>) checkEntry(region, position, field);
}

/**
 * How `a` relates to `b`: 'before' when every write `a` saw, `b` saw too, and `b` saw more;
 * 'after' the reverse; 'equal'; or 'concurrent' when each saw a write the other did not.
 */
export function compareVersionVectors(a: VersionVector, b: VersionVector): VersionVectorOrder {
  let aAhead = false;
  let bAhead = false;
  for (const [region, position] of a) {
    const other = b.get(region);
    if (other === undefined || position > other) aAhead = true;
    else if (position < other) bAhead = true;
  }
  for (const region of b.keys()) {
    if (!a.has(region)) bAhead = true;
  }
  if (aAhead && bAhead) return 'concurrent';
  if (aAhead) return 'after';
  if (bAhead) return 'before';
  return 'equal';
}

/** True when `a` has seen every write `b` has (after or equal). */
export function dominates(a: VersionVector, b: VersionVector): boolean {
  const order = compareVersionVectors(a, b);
  return order === 'after' || order === 'equal';
}

/** True when `a` has seen every write `b` has, and more. */
export function strictlyDominates(a: VersionVector, b: VersionVector): boolean {
  return compareVersionVectors(a, b) === 'after';
}

/** Pointwise maximum: everything either had seen. Commutative, associative, idempotent. */
export function joinVersionVectors(a: VersionVector, b: VersionVector): VersionVector {
  const result = new Map(a);
  for (const [region, position] of b) {
    const mine = result.get(region);
    if (mine === undefined || position > mine) result.set(region, position);
  }
  return sortedCopy(result);
}

/** The vector with `region` raised to at least `position`. */
export function withPosition(vv: VersionVector, region: string, position: number): VersionVector {
  checkEntry(region, position, 'vv');
  const mine = vv.get(region);
  if (mine !== undefined && mine >= position) return vv;
  const result = new Map(vv);
  result.set(region, position);
  return sortedCopy(result);
}

export function versionVectorsEqual(a: VersionVector, b: VersionVector): boolean {
  if (a.size !== b.size) return false;
  for (const [region, position] of a) if (b.get(region) !== position) return false;
  return true;
}

/** Canonical text form: `region:position` sorted by region, comma-separated. */
export function formatVersionVector(vv: VersionVector): string {
  const regions = [...vv.keys()].sort(compareNames);
  return regions.map((region) => `${region}:${vv.get(region)}`).join(',');
}

/** Reads the canonical text form; anything else throws VersionVectorError naming the part. */
export function parseVersionVector(text: unknown): VersionVector {
  if (typeof text !== 'string') throw new VersionVectorError('$', 'must be a string');
  if (text.length > VERSION_VECTOR_TEXT_LENGTH_MAX) {
    throw new VersionVectorError('$', `is ${text.length} characters; at most ${VERSION_VECTOR_TEXT_LENGTH_MAX}`);
  }
  const result = new Map<string, number>();
  if (text === '') return result;
  const parts = text.split(',');
  if (parts.length > VERSION_VECTOR_REGIONS_MAX) {
    throw new VersionVectorError('$', `names more than ${VERSION_VECTOR_REGIONS_MAX} regions`);
  }
  let previous: string | undefined;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const colon = part.indexOf(':');
    if (colon < 0) throw new VersionVectorError(`$[${i}]`, `${JSON.stringify(part)} is not region:position`);
    const region = part.slice(0, colon);
    const positionText = part.slice(colon + 1);
    if (!isRegionName(region)) {
      throw new VersionVectorError(`$[${i}]`, `${JSON.stringify(region)} is not a region name ([a-z][a-z0-9-]{0,62})`);
    }
    if (!POSITION_TEXT.test(positionText) || !Number.isSafeInteger(Number(positionText))) {
      throw new VersionVectorError(
        `$[${i}]`,
        `${JSON.stringify(positionText)} is not a non-negative safe integer in canonical decimal`,
      );
    }
    if (previous !== undefined && compareNames(previous, region) >= 0) {
      throw new VersionVectorError(`$[${i}]`, `regions must be sorted and unique: ${region} follows ${previous}`);
    }
    result.set(region, Number(positionText));
    previous = region;
  }
  return result;
}

// Region names are ASCII, so code-unit order is byte order in every language.
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// Maps iterate in insertion order; keeping them sorted makes iteration (and so every
// derived value) independent of the order in which regions were first seen.
function sortedCopy(map: Map<string, number>): VersionVector {
  const regions = [...map.keys()].sort(compareNames);
  return new Map(regions.map((region) => [region, map.get(region) as number]));
}
