// Conflict feed records: one per resolved concurrent pair of writes to a key, appended to
// the namespace's conflict feed topic so that conflicts can be audited (DESIGN §6).
//
// Who records. Every region that holds both writes of a pair at once detects the conflict,
// but the feed should list it once. `recorderOf` names ONE region, the origin region of
// the pair's winner: a function of the pair alone, so every region agrees without talking.
// The winner's origin is chosen because it is the region whose value stands. The pair id is
// a digest of the topic and the two global ids, independent of their order and of the
// policy; consumers of the feed dedupe on it (the recorder may append twice across a crash
// between append and its own bookkeeping, or twice if the policy changed in between).
//
// What detection cannot promise. A region detects a pair only if one write arrives while the
// other is still a maximal version there. The feed therefore holds each pair that the
// winner's origin detected, once: it detects every pair whose loser arrives while the
// winning write is still current there. If that region had already superseded its winning
// write (it wrote the key again) when the loser arrived, it records the loser against the
// newer write instead, as a different pair; with three or more regions a pair can also be
// seen only by regions other than the recorder. The feed is not the set of all concurrent
// pairs of the history: that would need every past version of every key, which the
// state-based register deliberately does not keep.
//
// What a record holds of each value. Its size and a digest always, so that an auditor can
// match it against the log; the value itself (base64) too when it is at most
// `valueInlineBytesMax` bytes (default 256), which covers the counters, flags and small
// documents that conflicts are usually about and lets an operator repair a key from the feed
// alone. Larger values are left out to keep the feed small (a record is at most a few KiB);
// they stay readable by global id in the topic until compaction removes the loser. The
// digest is SHA-256 truncated to 128 bits, written as `sha256-128:<32 hex digits>`: standard
// tools can recompute it, and 128 bits is ample for matching, which is all it is for.
//
// The encoding is JSON with a fixed field order, so that two regions building the record
// for the same pair produce the same bytes.
import { createHash } from 'node:crypto';
import { ConflictRecordError, VersionVectorError } from './errors.ts';
import type { HlcOrdered } from './order.ts';
import { concurrentVersions, type KeyedState, type KeyedVersion } from './keyed-state.ts';
import type { ConflictPolicy, ConflictPolicyKind } from './policies.ts';
import { compareVersionVectors, formatVersionVector, isRegionName, parseVersionVector } from './version-vector.ts';

export const CONFLICT_RECORD_FORMAT = 1;
export const CONFLICT_RECORD_VALUE_INLINE_BYTES_MAX_DEFAULT = 256;
/** Upper bound on the inline setting, so that a record stays well under any message limit. */
export const CONFLICT_RECORD_VALUE_INLINE_BYTES_LIMIT = 16 * 1024;
/** Largest record decodeConflictRecord reads. */
export const CONFLICT_RECORD_BYTES_MAX = 128 * 1024;

const POLICY_KINDS: readonly ConflictPolicyKind[] = ['lww', 'region-priority', 'max-json-path', 'custom'];
const DIGEST_PREFIX = 'sha256-128:';
const DIGEST_TEXT = /^sha256-128:[0-9a-f]{32}$/;
const PAIR_ID_TEXT = /^[0-9a-f]{32}$/;
const HLC_TEXT = /^(?:0|[1-9][0-9]{0,19})$/;
const HLC_MAX = 2n ** 64n - 1n;
const TEXT_LENGTH_MAX = 4096;

/** A concurrent pair as resolved by a policy, pairwise: the input of a record. */
export interface ConflictPair {
  readonly topic: string;
  readonly key: string;
  readonly winner: KeyedVersion;
  readonly loser: KeyedVersion;
  readonly policy: ConflictPolicyKind;
}

/** One side of a recorded pair. */
export interface ConflictVersionSummary {
  readonly originRegion: string;
  readonly originPosition: number;
  /** HLC as a decimal string: JSON numbers cannot hold 64 bits. */
  readonly hlc: string;
  /** The version vector in its text form. */
  readonly vv: string;
  readonly deleted: boolean;
  readonly valueBytes: number;
  /** `sha256-128:<hex>`; absent for a deletion. */
  readonly valueDigest?: string;
  /** The value itself, when it is small enough to inline. */
  readonly valueBase64?: string;
}

export interface ConflictRecord {
  readonly format: typeof CONFLICT_RECORD_FORMAT;
  readonly pairId: string;
  readonly topic: string;
  readonly key: string;
  readonly policy: ConflictPolicyKind;
  /** The region that appends the record: recorderOf(pair). */
  readonly recordedBy: string;
  readonly winner: ConflictVersionSummary;
  readonly loser: ConflictVersionSummary;
}

/**
 * The pairs that applying `incoming` to `state` detects: `incoming` against each held
 * version it is concurrent with, each resolved by the policy on its own. With a custom
 * resolver that is not transitive, a pair's winner can differ from the key's overall winner
 * (resolve folds all maximal versions); the record states the pairwise decision, which is
 * the one every region computes the same way.
 */
export function detectConflicts(
  topic: string,
  state: KeyedState,
  incoming: KeyedVersion,
  policy: ConflictPolicy,
): ConflictPair[] {
  return concurrentVersions(state, incoming).map((held) => {
    const winner = policy.pick(held, incoming);
    const loser = winner === held ? incoming : held;
    return { topic, key: state.key, winner, loser, policy: policy.name };
  });
}

/** The one region that appends the pair's record: the origin region of its winner. */
export function recorderOf(pair: { readonly winner: { readonly originRegion: string } }): string {
  return pair.winner.originRegion;
}

type GlobalId = Pick<HlcOrdered, 'originRegion' | 'originPosition'>;

/** A stable id for the pair: the same whichever order the two writes are given in. */
export function conflictPairId(topic: string, a: GlobalId, b: GlobalId): string {
  const [first, second] = compareGlobalIds(a, b) <= 0 ? [a, b] : [b, a];
  return createHash('sha256')
    .update(`admq-conflict-pair\n${topic}\n${first.originRegion}:${first.originPosition}\n${second.originRegion}:${second.originPosition}`)
    .digest('hex')
    .slice(0, 32);
}

/** The digest a record gives a value: `sha256-128:` and 32 hex digits. */
export function valueDigest(value: Uint8Array): string {
  return DIGEST_PREFIX + createHash('sha256').update(value).digest('hex').slice(0, 32);
}

export function buildConflictRecord(
  pair: ConflictPair,
  options: { valueInlineBytesMax?: number } = {},
): ConflictRecord {
  const inlineMax = options.valueInlineBytesMax ?? CONFLICT_RECORD_VALUE_INLINE_BYTES_MAX_DEFAULT;
  if (!Number.isInteger(inlineMax) || inlineMax < 0 || inlineMax > CONFLICT_RECORD_VALUE_INLINE_BYTES_LIMIT) {
    throw new ConflictRecordError(
      'valueInlineBytesMax',
      `must be an integer in [0, ${CONFLICT_RECORD_VALUE_INLINE_BYTES_LIMIT}] bytes: got ${String(inlineMax)}`,
    );
  }
  return {
    format: CONFLICT_RECORD_FORMAT,
    pairId: conflictPairId(pair.topic, pair.winner, pair.loser),
    topic: pair.topic,
    key: pair.key,
    policy: pair.policy,
    recordedBy: recorderOf(pair),
    winner: summarize(pair.winner, inlineMax),
    loser: summarize(pair.loser, inlineMax),
  };
}

/** JSON bytes with a fixed field order (deterministic across regions). */
export function encodeConflictRecord(record: ConflictRecord): Buffer {
  const ordered = {
    format: record.format,
    pairId: record.pairId,
    topic: record.topic,
    key: record.key,
    policy: record.policy,
    recordedBy: record.recordedBy,
    winner: orderedSummary(record.winner),
    loser: orderedSummary(record.loser),
  };
  return Buffer.from(JSON.stringify(ordered), 'utf8');
}

/**
 * Reads and checks a record: field types, the pair id against the two global ids, the
 * recorder against the winner, that the two versions really are concurrent, and inlined
 * values against their size and digest. Throws ConflictRecordError naming the field.
 */
export function decodeConflictRecord(bytes: Uint8Array): ConflictRecord {
  if (bytes.byteLength > CONFLICT_RECORD_BYTES_MAX) {
    throw new ConflictRecordError('$', `is ${bytes.byteLength} bytes; at most ${CONFLICT_RECORD_BYTES_MAX}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new ConflictRecordError('$', 'is not UTF-8 JSON', { cause: error });
  }
  const root = object(parsed, '$');
  if (root.format !== CONFLICT_RECORD_FORMAT) {
    throw new ConflictRecordError('format', `must be ${CONFLICT_RECORD_FORMAT}: got ${JSON.stringify(root.format)}`);
  }
  const pairId = text(root.pairId, 'pairId');
  if (!PAIR_ID_TEXT.test(pairId)) throw new ConflictRecordError('pairId', 'must be 32 lowercase hex digits');
  const topic = text(root.topic, 'topic');
  const key = text(root.key, 'key');
  const policy = root.policy;
  if (!POLICY_KINDS.includes(policy as ConflictPolicyKind)) {
    throw new ConflictRecordError('policy', `must be one of ${POLICY_KINDS.join(', ')}: got ${JSON.stringify(policy)}`);
  }
  const recordedBy = text(root.recordedBy, 'recordedBy');
  const winner = readSummary(root.winner, 'winner');
  const loser = readSummary(root.loser, 'loser');
  if (compareGlobalIds(winner, loser) === 0) throw new ConflictRecordError('loser', 'is the same write as the winner');
  if (compareVersionVectors(parseVersionVector(winner.vv), parseVersionVector(loser.vv)) !== 'concurrent') {
    throw new ConflictRecordError('loser.vv', 'the two versions are not concurrent');
  }
  if (pairId !== conflictPairId(topic, winner, loser)) {
    throw new ConflictRecordError('pairId', 'does not match the topic and the two global ids');
  }
  if (recordedBy !== recorderOf({ winner })) {
    throw new ConflictRecordError('recordedBy', `must be the winner's origin region ${winner.originRegion}`);
  }
  return {
    format: CONFLICT_RECORD_FORMAT,
    pairId,
    topic,
    key,
    policy: policy as ConflictPolicyKind,
    recordedBy,
    winner,
    loser,
  };
}

function summarize(version: KeyedVersion, inlineMax: number): ConflictVersionSummary {
  const base = {
    originRegion: version.originRegion,
    originPosition: version.originPosition,
    hlc: version.hlc.toString(),
    vv: formatVersionVector(version.vv),
  };
  if (version.value === null) return { ...base, deleted: true, valueBytes: 0 };
  const summary = {
    ...base,
    deleted: false,
    valueBytes: version.value.byteLength,
    valueDigest: valueDigest(version.value),
  };
  return version.value.byteLength <= inlineMax ? { ...summary, valueBase64: version.value.toString('base64') } : summary;
}

function orderedSummary(summary: ConflictVersionSummary): Record<string, unknown> {
  return {
    originRegion: summary.originRegion,
    originPosition: summary.originPosition,
    hlc: summary.hlc,
    vv: summary.vv,
    deleted: summary.deleted,
    valueBytes: summary.valueBytes,
    valueDigest: summary.valueDigest,
    valueBase64: summary.valueBase64,
  };
}

function readSummary(input: unknown, field: string): ConflictVersionSummary {
  const summary = object(input, field);
  const originRegion = summary.originRegion;
  if (!isRegionName(originRegion)) throw new ConflictRecordError(`${field}.originRegion`, 'must be a region name');
  const originPosition = summary.originPosition;
  if (typeof originPosition !== 'number' || !Number.isSafeInteger(originPosition) || originPosition < 0) {
    throw new ConflictRecordError(`${field}.originPosition`, 'must be a non-negative safe integer');
  }
  const hlc = summary.hlc;
  if (typeof hlc !== 'string' || !HLC_TEXT.test(hlc) || BigInt(hlc) > HLC_MAX) {
    throw new ConflictRecordError(`${field}.hlc`, 'must be an unsigned 64-bit integer in canonical decimal');
  }
  let vv;
  try {
    vv = parseVersionVector(summary.vv);
  } catch (error) {
    if (!(error instanceof VersionVectorError)) throw error;
    throw new ConflictRecordError(`${field}.vv`, error.message, { cause: error });
  }
  if (vv.get(originRegion) !== originPosition) {
    throw new ConflictRecordError(`${field}.vv`, `must contain the write itself (${originRegion}:${originPosition})`);
  }
  const deleted = summary.deleted;
  if (typeof deleted !== 'boolean') throw new ConflictRecordError(`${field}.deleted`, 'must be a boolean');
  const valueBytes = summary.valueBytes;
  if (typeof valueBytes !== 'number' || !Number.isSafeInteger(valueBytes) || valueBytes < 0) {
    throw new ConflictRecordError(`${field}.valueBytes`, 'must be a non-negative safe integer');
  }
  const base = { originRegion, originPosition, hlc, vv: summary.vv as string, deleted, valueBytes };
  if (deleted) {
    if (valueBytes !== 0 || summary.valueDigest !== undefined || summary.valueBase64 !== undefined) {
      throw new ConflictRecordError(`${field}.deleted`, 'a deletion has valueBytes 0 and no digest or value');
    }
    return base;
  }
  const digest = summary.valueDigest;
  if (typeof digest !== 'string' || !DIGEST_TEXT.test(digest)) {
    throw new ConflictRecordError(`${field}.valueDigest`, 'must be "sha256-128:" and 32 lowercase hex digits');
  }
  if (summary.valueBase64 === undefined) return { ...base, valueDigest: digest };
  const encoded = summary.valueBase64;
  if (typeof encoded !== 'string') throw new ConflictRecordError(`${field}.valueBase64`, 'must be a string');
  const value = Buffer.from(encoded, 'base64');
  if (value.toString('base64') !== encoded) {
    throw new ConflictRecordError(`${field}.valueBase64`, 'is not canonical base64');
  }
  if (value.byteLength !== valueBytes) {
    throw new ConflictRecordError(`${field}.valueBase64`, `decodes to ${value.byteLength} bytes; valueBytes is ${valueBytes}`);
  }
  if (valueDigest(value) !== digest) throw new ConflictRecordError(`${field}.valueBase64`, 'does not match valueDigest');
  return { ...base, valueDigest: digest, valueBase64: encoded };
}

function object(input: unknown, field: string): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConflictRecordError(field, 'must be an object');
  }
  return input as Record<string, unknown>;
}

function text(input: unknown, field: string): string {
  if (typeof input !== 'string') throw new ConflictRecordError(field, 'must be a string');
  if (input.length > TEXT_LENGTH_MAX) throw new ConflictRecordError(field, `is longer than ${TEXT_LENGTH_MAX} characters`);
  return input;
}

function compareGlobalIds(a: GlobalId, b: GlobalId): number {
  if (a.originRegion !== b.originRegion) return a.originRegion < b.originRegion ? -1 : 1;
  return a.originPosition - b.originPosition;
}
