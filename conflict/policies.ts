// Conflict policies: how concurrent versions of one key resolve, set per namespace
// (DESIGN §6). Every policy answers one question, pick(a, b), with the same answer whichever
// order a and b come in and in whichever region it runs, so that keyed state converges.
//
// The built-in policies are total orders over versions, each ending in last-writer-wins by
// (HLC, origin region, origin position), which is total over distinct writes. A custom
// resolver is user code and may be neither symmetric nor transitive; it is always called
// with the two versions in (HLC, origin) order, which makes its answer a function of the
// pair, and keyed-state's resolve folds the versions in that same order, which makes the
// winner a function of the set.
import { ConflictPolicyError, ConflictResolverError } from './errors.ts';
import type { KeyedVersion } from './keyed-state.ts';
import { compareHlcOrder } from './order.ts';
import { isRegionName } from './version-vector.ts';

export type ConflictPolicyKind = 'lww' | 'region-priority' | 'max-json-path' | 'custom';

/** The policy as written in the topology file or set through the admin API (JSON). */
export type ConflictPolicySpec =
  | { readonly kind: 'lww' }
  | { readonly kind: 'region-priority'; readonly regions: readonly string[] }
  | { readonly kind: 'max-json-path'; readonly path: string }
  | { readonly kind: 'custom'; readonly module: string; readonly export: string };

export interface ConflictPolicy {
  readonly name: ConflictPolicyKind;
  readonly spec: ConflictPolicySpec;
  /** The winner of two concurrent versions: one of the two arguments, whatever their order. */
  pick(a: KeyedVersion, b: KeyedVersion): KeyedVersion;
}

/**
 * A user-supplied resolver, exported by a module the region node loads. It is called with
 * two concurrent versions, always in (HLC, origin) order (`a` before `b`), and answers
 * which one wins. It must be deterministic and pure: the same answer in every region, with
 * no clock, randomness or I/O. It gets copies, so it cannot alter stored versions.
 */
export type CustomResolver = (a: Readonly<KeyedVersion>, b: Readonly<KeyedVersion>) => 'a' | 'b';

export const DEFAULT_CONFLICT_POLICY_SPEC: ConflictPolicySpec = Object.freeze({ kind: 'lww' });

/** Longest accepted JSON path, and most segments: paths are configuration, not data. */
export const JSON_PATH_LENGTH_MAX = 256;
export const JSON_PATH_SEGMENTS_MAX = 16;
/** Most regions in a region-priority list. */
export const REGION_PRIORITY_REGIONS_MAX = 256;

const JSON_PATH = /^\$(?:\.[A-Za-z0-9_-]+)*$/;
const MODULE_EXPORT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const MODULE_LENGTH_MAX = 1024;

/**
 * Reads a policy spec from configuration. Accepts the bare string "lww" as shorthand and
 * treats a missing policy as lww, the documented default. Unknown fields are refused, so
 * that a misspelt field is an error rather than a silently ignored setting. Every error is
 * a ConflictPolicyError whose field is a path under `field`.
 */
export function parseConflictPolicySpec(input: unknown, field = 'conflictPolicy'): ConflictPolicySpec {
  if (input === undefined) return DEFAULT_CONFLICT_POLICY_SPEC;
  if (input === 'lww') return DEFAULT_CONFLICT_POLICY_SPEC;
  if (typeof input === 'string') {
    throw new ConflictPolicyError(field, `${JSON.stringify(input)} is not a policy; only "lww" has a string shorthand`);
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConflictPolicyError(field, 'must be an object with a "kind"');
  }
  const spec = input as Record<string, unknown>;
  const allow = (names: string[]): void => {
    for (const name of Object.keys(spec)) {
      if (!names.includes(name)) {
        throw new ConflictPolicyError(`${field}.${name}`, `is not a field of a ${String(spec.kind)} policy (allowed: ${names.join(', ')})`);
      }
    }
  };
  switch (spec.kind) {
    case 'lww':
      allow(['kind']);
      return DEFAULT_CONFLICT_POLICY_SPEC;
    case 'region-priority': {
      allow(['kind', 'regions']);
      const regions = spec.regions;
      if (!Array.isArray(regions) || regions.length === 0) {
        throw new ConflictPolicyError(`${field}.regions`, 'must be a non-empty array of region names, highest priority first');
      }
      if (regions.length > REGION_PRIORITY_REGIONS_MAX) {
        throw new ConflictPolicyError(`${field}.regions`, `lists ${regions.length} regions; at most ${REGION_PRIORITY_REGIONS_MAX}`);
      }
      const seen = new Set<string>();
      regions.forEach((region: unknown, i) => {
        if (!isRegionName(region)) {
          throw new ConflictPolicyError(`${field}.regions[${i}]`, `${JSON.stringify(region)} is not a region name ([a-z][a-z0-9-]{0,62})`);
        }
        if (seen.has(region)) throw new ConflictPolicyError(`${field}.regions[${i}]`, `${region} is listed twice`);
        seen.add(region);
      });
      return Object.freeze({ kind: 'region-priority', regions: Object.freeze([...(regions as string[])]) });
    }
    case 'max-json-path': {
      allow(['kind', 'path']);
      parseJsonPath(spec.path, `${field}.path`);
      return Object.freeze({ kind: 'max-json-path', path: spec.path as string });
    }
    case 'custom': {
      allow(['kind', 'module', 'export']);
      if (typeof spec.module !== 'string' || spec.module === '' || spec.module.length > MODULE_LENGTH_MAX) {
        throw new ConflictPolicyError(`${field}.module`, `must be a module specifier of 1–${MODULE_LENGTH_MAX} characters`);
      }
      const exportName = spec.export ?? 'default';
      if (typeof exportName !== 'string' || !MODULE_EXPORT.test(exportName)) {
        throw new ConflictPolicyError(`${field}.export`, `must be an export name (an identifier); default "default"`);
      }
      return Object.freeze({ kind: 'custom', module: spec.module, export: exportName });
    }
    default:
      throw new ConflictPolicyError(
        `${field}.kind`,
        `${JSON.stringify(spec.kind)} is not one of lww, region-priority, max-json-path, custom`,
      );
  }
}

/**
 * The policy for a spec. A custom spec needs the resolver the node loaded from
 * `spec.module` / `spec.export`; pass the export as it came, and it is checked here.
 */
export function createConflictPolicy(spec: ConflictPolicySpec, options: { resolver?: unknown } = {}): ConflictPolicy {
  switch (spec.kind) {
    case 'lww':
      return lwwPolicy();
    case 'region-priority':
      return regionPriorityPolicy(spec.regions);
    case 'max-json-path':
      return maxJsonPathPolicy(spec.path);
    case 'custom': {
      const resolver = options.resolver;
      if (typeof resolver !== 'function') {
        throw new ConflictPolicyError(
          'resolver',
          `export ${JSON.stringify(spec.export)} of ${JSON.stringify(spec.module)} must be a function (a, b) => 'a' | 'b'`,
        );
      }
      return customPolicy(resolver as CustomResolver, spec);
    }
  }
}

/** Last writer wins by (HLC, origin region, origin position): DESIGN §3's total order. */
export function lwwPolicy(): ConflictPolicy {
  return { name: 'lww', spec: DEFAULT_CONFLICT_POLICY_SPEC, pick: (a, b) => (compareHlcOrder(a, b) >= 0 ? a : b) };
}

/**
 * Earlier regions in the list win; a listed region beats an unlisted one; two versions of
 * equal rank (same region, or both unlisted) fall back to last-writer-wins.
 */
export function regionPriorityPolicy(regions: readonly string[]): ConflictPolicy {
  const spec = parseConflictPolicySpec({ kind: 'region-priority', regions }, 'regionPriorityPolicy') as Extract<
    ConflictPolicySpec,
    { kind: 'region-priority' }
  >;
  const rank = new Map(spec.regions.map((region, i) => [region, i]));
  const rankOf = (version: KeyedVersion): number => rank.get(version.originRegion) ?? Number.POSITIVE_INFINITY;
  return {
    name: 'region-priority',
    spec,
    pick: (a, b) => {
      const ra = rankOf(a);
      const rb = rankOf(b);
      if (ra !== rb) return ra < rb ? a : b;
      return compareHlcOrder(a, b) >= 0 ? a : b;
    },
  };
}

/**
 * The version whose JSON payload has the highest finite number at `path` wins. A version
 * whose payload is not JSON, lacks the path, holds a non-number there, or is a deletion has
 * no number and loses to one that has; two without, or two equal numbers, fall back to
 * last-writer-wins. Parsing is JSON.parse in every region, so large integers lose
 * precision the same way everywhere.
 */
export function maxJsonPathPolicy(path: string): ConflictPolicy {
  const segments = parseJsonPath(path, 'path');
  // Payloads are immutable once written, so the extracted number can be cached per buffer;
  // a weak map lets the cache go with the version.
  const cache = new WeakMap<Buffer, number | undefined>();
  const numberOf = (version: KeyedVersion): number | undefined => {
    const value = version.value;
    if (value === null) return undefined;
    if (cache.has(value)) return cache.get(value);
    const found = numberAtPath(value, segments);
    cache.set(value, found);
    return found;
  };
  return {
    name: 'max-json-path',
    spec: Object.freeze({ kind: 'max-json-path', path }),
    pick: (a, b) => {
      const na = numberOf(a);
      const nb = numberOf(b);
      if (na !== undefined && nb === undefined) return a;
      if (na === undefined && nb !== undefined) return b;
      if (na !== undefined && nb !== undefined && na !== nb) return na > nb ? a : b;
      return compareHlcOrder(a, b) >= 0 ? a : b;
    },
  };
}

/**
 * Wraps a user resolver so that its answer depends only on the pair: it is called with the
 * versions in (HLC, origin) order and gets copies of them. A throw or an answer other than
 * 'a' or 'b' becomes a ConflictResolverError (with the original as cause). That is not
 * papered over with a fallback: a resolver that fails in one region might not fail in
 * another, and silently diverging state is worse than a loud, typed failure.
 */
export function customPolicy(
  resolver: CustomResolver,
  spec: Extract<ConflictPolicySpec, { kind: 'custom' }> = { kind: 'custom', module: '(inline)', export: 'default' },
): ConflictPolicy {
  const label = `${spec.module}#${spec.export}`;
  return {
    name: 'custom',
    spec,
    pick: (x, y) => {
      const [first, second] = compareHlcOrder(x, y) <= 0 ? [x, y] : [y, x];
      let answer: unknown;
      try {
        answer = resolver(copyVersion(first), copyVersion(second));
      } catch (error) {
        throw new ConflictResolverError(label, 'threw', { cause: error });
      }
      if (answer === 'a') return first;
      if (answer === 'b') return second;
      throw new ConflictResolverError(label, `returned ${describe(answer)}; it must return 'a' or 'b'`);
    },
  };
}

/** Splits `$.a.b` into ['a', 'b']; `$` alone is the whole payload. */
export function parseJsonPath(path: unknown, field: string): string[] {
  if (typeof path !== 'string' || path.length > JSON_PATH_LENGTH_MAX || !JSON_PATH.test(path)) {
    throw new ConflictPolicyError(
      field,
      `must be a simple JSON path such as "$.balance" or "$.a.b" (segments of [A-Za-z0-9_-], at most ${JSON_PATH_LENGTH_MAX} characters): got ${JSON.stringify(path)}`,
    );
  }
  const segments = path === '$' ? [] : path.slice(2).split('.');
  if (segments.length > JSON_PATH_SEGMENTS_MAX) {
    throw new ConflictPolicyError(field, `has ${segments.length} segments; at most ${JSON_PATH_SEGMENTS_MAX}`);
  }
  return segments;
}

function numberAtPath(payload: Buffer, segments: readonly string[]): number | undefined {
  let node: unknown;
  try {
    node = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  for (const segment of segments) {
    // Own properties only: a path such as $.constructor must not reach the prototype.
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, segment)) return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  // JSON.parse turns 1e400 into Infinity; only finite numbers count.
  return typeof node === 'number' && Number.isFinite(node) ? node : undefined;
}

function copyVersion(version: KeyedVersion): KeyedVersion {
  return Object.freeze({
    key: version.key,
    value: version.value === null ? null : Buffer.from(version.value),
    originRegion: version.originRegion,
    originPosition: version.originPosition,
    hlc: version.hlc,
    vv: new Map(version.vv),
  });
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  return typeof value === 'object' || typeof value === 'function' ? typeof value : String(value);
}
