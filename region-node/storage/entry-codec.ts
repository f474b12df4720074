// Binary layout of stored entries.
//
// Entries are stored in chunks: one LMDB record per topic per group commit, keyed by
// (topic id, first offset). A chunk is a header followed by entries; every entry carries
// its own CRC32C over its body, verified whenever it is decoded, so corruption is
// reported and never delivered silently.
//
//   chunk  := magic u8 (0xAD) | version u8 (1) | count u32 | entry*
//   entry  := bodyLength u32 | crc32c(body) u32 | body
//   body   := offset u64 | originPosition u64 | hlc u64 | sequenceId u64 |
//             publishTimeMs u64 | eventTimeMs u64 | flags u8 (bit 0: has key) |
//             originRegion str16 | producerName str16 | [key str32] |
//             propertyCount u32 | (name str16 | value str32)* | payload bytes32
//
// All integers are big-endian. u64 values other than the HLC are below 2^53 and are
// handled as JavaScript numbers.
import { crc32c } from '@node-rs/crc32';
import { ErrorCode } from '../../proto/index.ts';
import { RepeatedText, TextBytes } from '../../proto/repeated-text.ts';
import { AdmqError } from '../errors.ts';

export const CHUNK_MAGIC = 0xad;
export const CHUNK_VERSION = 1;
const CHUNK_HEADER_BYTES = 6;
const ENTRY_PREFIX_BYTES = 8;
const BODY_FIXED_BYTES = 6 * 8 + 1 + 2 + 2 + 4 + 4;
const FLAG_HAS_KEY = 1;
const U64_MAX = 2n ** 64n - 1n;

export interface Entry {
  /** Local position in this region's topic log: dense and monotonic. */
  offset: number;
  originRegion: string;
  originPosition: number;
  hlc: bigint;
  producerName: string;
  sequenceId: number;
  publishTimeMs: number;
  eventTimeMs: number;
  key: string | undefined;
  properties: Record<string, string>;
  payload: Buffer;
}

export class ChecksumError extends AdmqError {
  constructor(message: string) {
    super(ErrorCode.Checksum, message);
  }
}

export class CorruptChunkError extends AdmqError {
  constructor(message: string) {
    super(ErrorCode.Checksum, message);
  }
}

function writeU64(buf: Buffer, value: number, at: number): number {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at);
  buf.writeUInt32BE(value >>> 0, at + 4);
  return at + 8;
}

function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * 0x1_0000_0000 + buf.readUInt32BE(at + 4);
}

// UTF-8 bytes of the strings that repeat from entry to entry (the origin region, the
// producer name): encoded once, then copied. Profiles of a durable publish had string
// encoding and Buffer's bounds-checked writers at a third of the chunk encoder's time.
const regionBytes = new TextBytes();
const producerBytes = new TextBytes();

/** Bytes an entry takes inside a chunk, prefix included. */
export function entryEncodedBytes(entry: Entry): number {
  let size = ENTRY_PREFIX_BYTES + BODY_FIXED_BYTES;
  size += regionBytes.of(entry.originRegion).length + producerBytes.of(entry.producerName).length;
  if (entry.key !== undefined) size += 4 + Buffer.byteLength(entry.key);
  for (const name in entry.properties) {
    size += 6 + Buffer.byteLength(name) + Buffer.byteLength(entry.properties[name] ?? '');
  }
  return size + entry.payload.length;
}

function putU32(buf: Buffer, value: number, at: number): void {
  buf[at] = value >>> 24;
  buf[at + 1] = value >>> 16;
  buf[at + 2] = value >>> 8;
  buf[at + 3] = value;
}

/** A u64 below 2^53, as two big-endian u32 halves. */
function putU64(buf: Buffer, value: number, at: number): void {
  if (!(value >= 0 && value <= Number.MAX_SAFE_INTEGER && Number.isInteger(value))) throw new RangeError(`entry field ${value} is not an integer in [0, 2^53)`);
  putU32(buf, Math.floor(value / 0x1_0000_0000), at);
  putU32(buf, value >>> 0, at + 4);
}

function putBytes16(buf: Buffer, bytes: Buffer, at: number): number {
  if (bytes.length > 0xffff) throw new RangeError(`string of ${bytes.length} bytes does not fit a 16-bit length`);
  buf[at] = bytes.length >>> 8;
  buf[at + 1] = bytes.length;
  buf.set(bytes, at + 2);
  return at + 2 + bytes.length;
}

function writeEntry(buf: Buffer, view: DataView, entry: Entry, start: number): number {
  const bodyStart = start + ENTRY_PREFIX_BYTES;
  let at = bodyStart;
  putU64(buf, entry.offset, at);
  putU64(buf, entry.originPosition, at + 8);
  // setBigUint64 would wrap an out-of-range value silently; writeBigUInt64BE threw, so do we.
  if (entry.hlc < 0n || entry.hlc > U64_MAX) throw new RangeError(`HLC ${entry.hlc} is not a u64`);
  view.setBigUint64(at + 16, entry.hlc, false);
  putU64(buf, entry.sequenceId, at + 24);
  putU64(buf, entry.publishTimeMs, at + 32);
  putU64(buf, entry.eventTimeMs, at + 40);
  at += 48;
  buf[at++] = entry.key === undefined ? 0 : FLAG_HAS_KEY;
  at = putBytes16(buf, regionBytes.of(entry.originRegion), at);
  at = putBytes16(buf, producerBytes.of(entry.producerName), at);
  if (entry.key !== undefined) at = writeStr32(buf, entry.key, at);
  const countAt = at;
  at += 4;
  let count = 0;
  for (const name in entry.properties) {
    at = writeStr16(buf, name, at);
    at = writeStr32(buf, entry.properties[name] ?? '', at);
    count++;
  }
  putU32(buf, count, countAt);
  putU32(buf, entry.payload.length, at);
  at += 4;
  buf.set(entry.payload, at);
  at += entry.payload.length;
  putU32(buf, at - bodyStart, start);
  putU32(buf, crc32c(buf.subarray(bodyStart, at)), start + 4);
  return at;
}

function writeStr16(buf: Buffer, value: string, at: number): number {
  const written = buf.write(value, at + 2, 'utf8');
  if (written > 0xffff) throw new RangeError(`string of ${written} bytes does not fit a 16-bit length`);
  buf.writeUInt16BE(written, at);
  return at + 2 + written;
}

function writeStr32(buf: Buffer, value: string, at: number): number {
  const written = buf.write(value, at + 4, 'utf8');
  buf.writeUInt32BE(written, at);
  return at + 4 + written;
}

/**
 * Encodes a chunk. With `scratch`, a buffer the caller reuses, the chunk is written into
 * it when it fits and the returned view is valid only until the next call: LMDB copies a
 * value during putSync, so the log store encodes every chunk into one buffer instead of
 * allocating (and making the collector chase) a fresh one per commit.
 */
export function encodeChunk(entries: readonly Entry[], scratch?: Buffer): Buffer {
  let size = CHUNK_HEADER_BYTES;
  for (const entry of entries) size += entryEncodedBytes(entry);
  const buf = scratch && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  buf[0] = CHUNK_MAGIC;
  buf[1] = CHUNK_VERSION;
  putU32(buf, entries.length, 2);
  let at = CHUNK_HEADER_BYTES;
  for (const entry of entries) at = writeEntry(buf, view, entry, at);
  if (at !== size) throw new RangeError(`chunk encoder wrote ${at} of ${size} bytes`);
  return buf;
}

class Reader {
  at: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.at = start;
  }
  need(bytes: number): void {
    if (this.at + bytes > this.end) {
      throw new CorruptChunkError(`entry body truncated: need ${bytes} bytes at ${this.at}, body ends at ${this.end}`);
    }
  }
  u8(): number {
    this.need(1);
    return this.buf[this.at++] as number;
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = readU64(this.buf, this.at);
    this.at += 8;
    return v;
  }
  big64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.at);
    this.at += 8;
    return v;
  }
  /** A text field that repeats from entry to entry (RepeatedText). */
  repeated(length: number, memo: RepeatedText): string {
    this.need(length);
    const v = memo.read(this.buf, this.at, this.at + length);
    this.at += length;
    return v;
  }
  str(length: number): string {
    this.need(length);
    const v = this.buf.toString('utf8', this.at, this.at + length);
    this.at += length;
    return v;
  }
  bytes(length: number): Buffer {
    this.need(length);
    const v = this.buf.subarray(this.at, this.at + length);
    this.at += length;
    return v;
  }
}

/**
 * Walks a chunk's entries, verifying the header and every entry's checksum, and hands
 * each body's bounds to `visit`. `context` names the chunk in errors (topic and key).
 */
function walkChunk(buf: Buffer, context: string, visit: (bodyStart: number, bodyEnd: number, index: number) => void): void {
  if (buf.length < CHUNK_HEADER_BYTES || buf[0] !== CHUNK_MAGIC) {
    throw new CorruptChunkError(`${context}: not a chunk (bad magic or too short)`);
  }
  if (buf[1] !== CHUNK_VERSION) throw new CorruptChunkError(`${context}: unknown chunk version ${buf[1]}`);
  const count = buf.readUInt32BE(2);
  let at = CHUNK_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + ENTRY_PREFIX_BYTES > buf.length) throw new CorruptChunkError(`${context}: entry ${i} truncated`);
    const bodyLength = buf.readUInt32BE(at);
    const expected = buf.readUInt32BE(at + 4);
    const bodyStart = at + ENTRY_PREFIX_BYTES;
    const bodyEnd = bodyStart + bodyLength;
    if (bodyEnd > buf.length) throw new CorruptChunkError(`${context}: entry ${i} body overruns the chunk`);
    const actual = crc32c(buf.subarray(bodyStart, bodyEnd));
    if (actual !== expected) {
      throw new ChecksumError(
        `${context}: entry ${i} checksum mismatch (stored ${expected.toString(16)}, computed ${actual.toString(16)})`,
      );
    }
    visit(bodyStart, bodyEnd, i);
    at = bodyEnd;
  }
  if (at !== buf.length) throw new CorruptChunkError(`${context}: ${buf.length - at} trailing bytes after the last entry`);
}

/**
 * Decodes a chunk and verifies every entry's checksum. `context` names the chunk in
 * errors (topic and key). Payloads are views into `buf`, which must not be reused.
 */
export function decodeChunk(buf: Buffer, context: string): Entry[] {
  const entries: Entry[] = [];
  walkChunk(buf, context, (bodyStart, bodyEnd) => entries.push(readBody(new Reader(buf, bodyStart, bodyEnd))));
  return entries;
}

/** Offset of the origin region's length within an entry body: six u64 fields and the flags byte. */
const BODY_ORIGIN_AT = 6 * 8 + 1;

/**
 * Each entry's offset and origin region, checksums verified, without decoding the rest:
 * for scans that only look at where entries came from (a replication link passing over
 * entries of origins it does not carry), at a fraction of a full decode's cost.
 */
export function peekChunkOrigins(buf: Buffer, context: string): { offsets: number[]; origins: string[] } {
  const offsets: number[] = [];
  const origins: string[] = [];
  walkChunk(buf, context, (bodyStart, bodyEnd) => {
    const r = new Reader(buf, bodyStart, bodyEnd);
    offsets.push(r.u64());
    r.at = bodyStart + BODY_ORIGIN_AT;
    origins.push(r.repeated(r.u16(), originRegions));
  });
  return { offsets, origins };
}

// Text that repeats from entry to entry; and the properties of an entry that has none,
// shared, so frozen.
const originRegions = new RepeatedText();
const producerNames = new RepeatedText();
const NO_PROPERTIES: Record<string, string> = Object.freeze({});

function readBody(r: Reader): Entry {
  const offset = r.u64();
  const originPosition = r.u64();
  const hlc = r.big64();
  const sequenceId = r.u64();
  const publishTimeMs = r.u64();
  const eventTimeMs = r.u64();
  const flags = r.u8();
  const originRegion = r.repeated(r.u16(), originRegions);
  const producerName = r.repeated(r.u16(), producerNames);
  const key = flags & FLAG_HAS_KEY ? r.str(r.u32()) : undefined;
  const count = r.u32();
  let properties = NO_PROPERTIES;
  if (count > 0) {
    // Built with fromEntries so that a property named "__proto__" stays an own property.
    const pairs: Array<[string, string]> = [];
    for (let p = 0; p < count; p++) {
      const name = r.str(r.u16());
      pairs.push([name, r.str(r.u32())]);
    }
    properties = Object.fromEntries(pairs);
  }
  const payload = r.bytes(r.u32());
  if (r.at !== r.end) throw new CorruptChunkError(`entry at offset ${offset} has ${r.end - r.at} unread bytes`);
  // The fields in Entry's order, as the log store builds entries: one object shape for
  // every entry, decoded or new, where the encoders read them.
  return { offset, originRegion, originPosition, hlc, producerName, sequenceId, publishTimeMs, eventTimeMs, key, properties, payload };
}

/** LMDB key of a chunk: topic id u32 | first offset u64, big-endian so scans read in order. */
export function chunkKey(topicId: number, offset: number): Buffer {
  const key = Buffer.allocUnsafe(12);
  key.writeUInt32BE(topicId, 0);
  writeU64(key, offset, 4);
  return key;
}

export function chunkKeyOffset(key: Uint8Array): number {
  const buf = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return readU64(buf, 4);
}

/** The 4-byte prefix of a topic's chunk keys: sorts before every chunk of that topic. */
export function topicKeyPrefix(topicId: number): Buffer {
  const key = Buffer.allocUnsafe(4);
  key.writeUInt32BE(topicId, 0);
  return key;
}
