// Topics → bundles (pure). As in Pulsar, a namespace's 32-bit hash space is cut into N
// contiguous ranges, the bundles; a topic belongs to the bundle whose range holds the hash
// of `tenant/namespace/topic`. Ownership and load balancing move whole bundles, so the
// metadata store holds one owner key per bundle, not one per topic.
//
// The hash is FNV-1a (32 bits) over the UTF-8 bytes of the name, followed by MurmurHash3's
// 32-bit finalizer: FNV-1a alone barely moves the high bits for names that differ in their
// last characters (`x-partition-1`, `x-partition-2`), and bundles are cut on the high bits.
// Both are fixed by this file, not by any library's version, so every broker of every
// release puts a topic in the same bundle. A partition (`t/n/x-partition-3`) is a topic of its own and hashes by its own
// name, so the partitions of one topic spread over bundles (and brokers).
import { parseTopicName } from '../names.ts';
import { ClusterError, ClusterErrorCode } from './errors.ts';

export const BUNDLES_PER_NAMESPACE_DEFAULT = 16;
export const BUNDLES_PER_NAMESPACE_MAX = 1024;
const HASH_SPACE = 0x1_0000_0000;
const HASH_MAX = 0xffff_ffff;

/** MurmurHash3's fmix32: every input bit affects every output bit. */
export function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The hash that places a topic (`tenant/namespace/topic`) in its namespace's bundles. */
export function topicHash(name: string): number {
  return fmix32(fnv1a32(name));
}

/** FNV-1a, 32 bits, over the UTF-8 encoding of `text`. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * The lower boundaries of a namespace's `count` bundles, then 0xffffffff: bundle i covers
 * [boundaries[i], boundaries[i + 1]), and the last one also holds 0xffffffff itself (Pulsar's
 * convention, which keeps every boundary within 8 hex digits).
 */
export function bundleBoundaries(count: number): number[] {
  checkBundleCount(count);
  const boundaries: number[] = [];
  for (let i = 0; i < count; i++) boundaries.push(Math.floor((i * HASH_SPACE) / count));
  boundaries.push(HASH_MAX);
  return boundaries;
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

/** `tenant/namespace/0x00000000_0x10000000`: the namespace, then the bundle's hash range. */
export function bundleName(tenant: string, namespace: string, lower: number, upper: number): string {
  return `${tenant}/${namespace}/${hex(lower)}_${hex(upper)}`;
}

/** Every bundle of a namespace, in hash order. */
export function namespaceBundles(tenant: string, namespace: string, count = BUNDLES_PER_NAMESPACE_DEFAULT): string[] {
  const boundaries = bundleBoundaries(count);
  const names: string[] = [];
  for (let i = 0; i < count; i++) names.push(bundleName(tenant, namespace, boundaries[i] as number, boundaries[i + 1] as number));
  return names;
}

/** The bundle of a topic (`[persistent://]tenant/namespace/topic`; a partition is its own topic). */
export function bundleOfTopic(topic: string, count = BUNDLES_PER_NAMESPACE_DEFAULT): string {
  const name = parseTopicName(topic);
  const boundaries = bundleBoundaries(count);
  const hash = topicHash(`${name.tenant}/${name.namespace}/${name.topic}`);
  // The last boundary with boundaries[i] <= hash; binary search, count is at most 1,024.
  let low = 0;
  let high = count - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if ((boundaries[middle] as number) <= hash) low = middle;
    else high = middle - 1;
  }
  return bundleName(name.tenant, name.namespace, boundaries[low] as number, boundaries[low + 1] as number);
}

export interface ParsedBundle {
  tenant: string;
  namespace: string;
  lower: number;
  upper: number;
}

/** Parses a bundle name; undefined if it is not one. */
export function parseBundleName(bundle: string): ParsedBundle | undefined {
  const match = /^([^/]+)\/([^/]+)\/0x([0-9a-f]{8})_0x([0-9a-f]{8})$/.exec(bundle);
  if (!match) return undefined;
  const lower = Number.parseInt(match[3] as string, 16);
  const upper = Number.parseInt(match[4] as string, 16);
  if (lower >= upper) return undefined;
  return { tenant: match[1] as string, namespace: match[2] as string, lower, upper };
}

function checkBundleCount(count: number): void {
  if (!Number.isInteger(count) || count < 1 || count > BUNDLES_PER_NAMESPACE_MAX) {
    throw new ClusterError(ClusterErrorCode.Config, `bundlesPerNamespace must be an integer in 1..${BUNDLES_PER_NAMESPACE_MAX}, got ${String(count)}`);
  }
}
