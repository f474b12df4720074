// Ledger metadata in the region's metadata store: its JSON encoding (validated on every
// decode, since a bad record would make readers and recovery compute wrong write sets),
// the striping arithmetic, and compare-and-set updates.
import type { MetadataStore } from '../metadata-store/index.ts';
import { LedgerError } from './ledger-errors.ts';
import { MetadataKeys, type EnsembleSegment, type LedgerMetadata } from './ledger-types.ts';

/** Ledger ids are u32 on the storage nodes (BookieStore keys its ledger states by u32). */
export const LEDGER_ID_MAX = 0xffffffff;
/** Bounds an ensemble: more nodes than this per ledger is a configuration mistake. */
export const ENSEMBLE_SIZE_MAX = 32;
/** Bounds the history of ensemble changes of one ledger (each change appends a segment). */
export const SEGMENTS_MAX = 10_000;

/** Metadata as read from the store, with the version a compare-and-set must name. */
export interface VersionedLedgerMetadata {
  metadata: LedgerMetadata;
  version: number;
}

export function encodeLedgerMetadata(metadata: LedgerMetadata): Buffer {
  validateLedgerMetadata(metadata);
  return Buffer.from(JSON.stringify(metadata));
}

export function decodeLedgerMetadata(bytes: Buffer, expectedLedgerId?: number): LedgerMetadata {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new LedgerError('ADMQ_ERR_LEDGER_METADATA', `ledger metadata is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const metadata = validateLedgerMetadata(parsed);
  if (expectedLedgerId !== undefined && metadata.ledgerId !== expectedLedgerId) {
    throw new LedgerError('ADMQ_ERR_LEDGER_METADATA', `ledger metadata under id ${expectedLedgerId} names ledger ${metadata.ledgerId}`);
  }
  return metadata;
}

function isInt(value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;
}

/** Checks every field and the rules between them; returns a clean copy (unknown fields dropped). */
export function validateLedgerMetadata(value: unknown): LedgerMetadata {
  const fail = (field: string, why: string): never => {
    throw new LedgerError('ADMQ_ERR_LEDGER_METADATA', `ledger metadata: ${field} ${why}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('', 'must be an object');
  const m = value as Record<string, unknown>;
  if (!isInt(m.ledgerId, 0, LEDGER_ID_MAX)) fail('ledgerId', `must be an integer in [0, ${LEDGER_ID_MAX}]`);
  if (!isInt(m.ensembleSize, 1, ENSEMBLE_SIZE_MAX)) fail('ensembleSize', `must be an integer in [1, ${ENSEMBLE_SIZE_MAX}]`);
  const ensembleSize = m.ensembleSize as number;
  if (!isInt(m.writeQuorum, 1, ensembleSize)) fail('writeQuorum', 'must be an integer in [1, ensembleSize]');
  if (!isInt(m.ackQuorum, 1, m.writeQuorum as number)) fail('ackQuorum', 'must be an integer in [1, writeQuorum]');
  if (m.state !== 'open' && m.state !== 'closed') fail('state', "must be 'open' or 'closed'");
  if (!isInt(m.lastEntryId, -1)) fail('lastEntryId', 'must be an integer >= -1');
  if (m.state === 'open' && m.lastEntryId !== -1) fail('lastEntryId', 'must be -1 while the ledger is open');
  if (typeof m.writer !== 'string' || m.writer === '') fail('writer', 'must be a non-empty string');
  if (!isInt(m.createdAtMs, 0)) fail('createdAtMs', 'must be an integer >= 0');
  if (typeof m.properties !== 'object' || m.properties === null || Array.isArray(m.properties)) fail('properties', 'must be an object');
  const properties: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.properties as object)) {
    if (typeof v !== 'string') fail(`properties.${k}`, 'must be a string');
    properties[k] = v as string;
  }
  if (!Array.isArray(m.ensembles) || m.ensembles.length === 0 || m.ensembles.length > SEGMENTS_MAX) {
    fail('ensembles', `must be a list of 1 to ${SEGMENTS_MAX} segments`);
  }
  const ensembles: EnsembleSegment[] = [];
  for (const [i, raw] of (m.ensembles as unknown[]).entries()) {
    const segment = raw as Partial<EnsembleSegment> | null;
    if (typeof segment !== 'object' || segment === null) return fail(`ensembles[${i}]`, 'must be an object');
    const previous = ensembles[i - 1];
    // Segments cover the ledger from entry 0 on, each starting after the one before.
    if (i === 0 ? segment.firstEntryId !== 0 : !isInt(segment.firstEntryId, previous!.firstEntryId + 1)) {
      fail(`ensembles[${i}].firstEntryId`, i === 0 ? 'must be 0' : 'must be above the previous segment’s');
    }
    if (!Array.isArray(segment.nodes) || segment.nodes.length !== ensembleSize) fail(`ensembles[${i}].nodes`, `must list ensembleSize (${ensembleSize}) nodes`);
    const nodes = segment.nodes as unknown[];
    if (nodes.some((n) => typeof n !== 'string' || n === '') || new Set(nodes).size !== nodes.length) {
      fail(`ensembles[${i}].nodes`, 'must be distinct non-empty node ids');
    }
    ensembles.push({ firstEntryId: segment.firstEntryId as number, nodes: [...(nodes as string[])] });
  }
  return {
    ledgerId: m.ledgerId as number,
    ensembleSize,
    writeQuorum: m.writeQuorum as number,
    ackQuorum: m.ackQuorum as number,
    state: m.state as 'open' | 'closed',
    lastEntryId: m.lastEntryId as number,
    ensembles,
    writer: m.writer as string,
    createdAtMs: m.createdAtMs as number,
    properties,
  };
}

/** The index of the segment that holds `entryId`: the last one starting at or before it. */
export function segmentIndexOf(metadata: LedgerMetadata, entryId: number): number {
  let index = 0;
  for (let i = 1; i < metadata.ensembles.length; i++) {
    if (metadata.ensembles[i]!.firstEntryId <= entryId) index = i;
    else break;
  }
  return index;
}

/**
 * The nodes that store `entryId` (its write set), in striping order: entry e goes to the
 * nodes at (e + i) mod E, i < Qw, of the segment holding it.
 */
export function writeSetOf(metadata: LedgerMetadata, entryId: number): string[] {
  return stripe(metadata.ensembles[segmentIndexOf(metadata, entryId)]!.nodes, metadata.writeQuorum, entryId);
}

export function stripe(nodes: readonly string[], writeQuorum: number, entryId: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < writeQuorum; i++) out.push(nodes[(entryId + i) % nodes.length]!);
  return out;
}

/** Whether the node at `nodeIndex` of an ensemble of `ensembleSize` is in entry `entryId`'s write set. */
export function indexInWriteSet(nodeIndex: number, entryId: number, ensembleSize: number, writeQuorum: number): boolean {
  return (((nodeIndex - entryId) % ensembleSize) + ensembleSize) % ensembleSize < writeQuorum;
}

export async function readLedgerMetadata(store: MetadataStore, ledgerId: number): Promise<VersionedLedgerMetadata | undefined> {
  const found = await store.get(MetadataKeys.ledger(ledgerId));
  if (!found) return undefined;
  return { metadata: decodeLedgerMetadata(found.value, ledgerId), version: found.version };
}

export async function requireLedgerMetadata(store: MetadataStore, ledgerId: number): Promise<VersionedLedgerMetadata> {
  const found = await readLedgerMetadata(store, ledgerId);
  if (!found) throw new LedgerError('ADMQ_ERR_NO_SUCH_LEDGER', `ledger ${ledgerId} does not exist`);
  return found;
}

/**
 * Writes `next` if the ledger's metadata is still at `expectedVersion`. Returns the new
 * version, or the current metadata when someone else changed it. If the store fails in a
 * way that leaves the outcome unknown (etcd may apply a put whose answer is lost), the key is
 * read back: finding exactly our bytes means our write is the one that landed.
 */
export async function casLedgerMetadata(
  store: MetadataStore,
  next: LedgerMetadata,
  expectedVersion: number,
): Promise<{ ok: true; version: number } | { ok: false; current: VersionedLedgerMetadata | undefined }> {
  const key = MetadataKeys.ledger(next.ledgerId);
  const bytes = encodeLedgerMetadata(next);
  let result;
  try {
    result = await store.put(key, bytes, { expectedVersion });
  } catch (error) {
    const after = await store.get(key).catch(() => undefined);
    if (after && after.version !== expectedVersion && after.value.equals(bytes)) return { ok: true, version: after.version };
    throw error;
  }
  if (result.ok) return { ok: true, version: result.version };
  const current = result.current;
  return { ok: false, current: current ? { metadata: decodeLedgerMetadata(current.value, next.ledgerId), version: current.version } : undefined };
}
