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
import { AdmqError } from '../errors.ts';

export const CHUNK_MAGIC = 0xad;
export const CHUNK_VERSION = 1;
const CHUNK_HEADER_BYTES = 6;
const ENTRY_PREFIX_BYTES = 8;
const BODY_FIXED_BYTES = 6 * 8 + 1 + 2 + 2 + 4 + 4;
const FLAG_HAS_KEY = 1;

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

/** Bytes an entry takes inside a chunk, prefix included. */
export function entryEncodedBytes(entry: Entry): number {
  let size = ENTRY_PREFIX_BYTES + BODY_FIXED_BYTES;
  size += Buffer.byteLength(entry.originRegion) + Buffer.byteLength(entry.producerName);
  if (entry.key !== undefined) size += 4 + Buffer.byteLength(entry.key);
  for (const name in entry.properties) {
    size += 6 + Buffer.byteLength(name) + Buffer.byteLength(entry.properties[name] ?? '');
  }
  return size + entry.payload.length;
}

function writeEntry(buf: Buffer, entry: Entry, start: number): number {
  const bodyStart = start + ENTRY_PREFIX_BYTES;
  let at = bodyStart;
  at = writeU64(buf, entry.offset, at);
  at = writeU64(buf, entry.originPosition, at);
  buf.writeBigUInt64BE(entry.hlc, at);
  at += 8;
  at = writeU64(buf, entry.sequenceId, at);
  at = writeU64(buf, entry.publishTimeMs, at);
  at = writeU64(buf, entry.eventTimeMs, at);
  buf[at++] = entry.key === undefined ? 0 : FLAG_HAS_KEY;
  at = writeStr16(buf, entry.originRegion, at);
  at = writeStr16(buf, entry.producerName, at);
  if (entry.key !== undefined) at = writeStr32(buf, entry.key, at);
  const countAt = at;
  at += 4;
  let count = 0;
  for (const name in entry.properties) {
    at = writeStr16(buf, name, at);
    at = writeStr32(buf, entry.properties[name] ?? '', at);
    count++;
  }
  buf.writeUInt32BE(count, countAt);
  buf.writeUInt32BE(entry.payload.length, at);
  at += 4;
  entry.payload.copy(buf, at);
  at += entry.payload.length;
  buf.writeUInt32BE(at - bodyStart, start);
  buf.writeUInt32BE(crc32c(buf.subarray(bodyStart, at)), start + 4);
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

export function encodeChunk(entries: readonly Entry[]): Buffer {
  let size = CHUNK_HEADER_BYTES;
  for (const entry of entries) size += entryEncodedBytes(entry);
  const buf = Buffer.allocUnsafe(size);
  buf[0] = CHUNK_MAGIC;
  buf[1] = CHUNK_VERSION;
  buf.writeUInt32BE(entries.length, 2);
  let at = CHUNK_HEADER_BYTES;
  for (const entry of entries) at = writeEntry(buf, entry, at);
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
 * Decodes a chunk and verifies every entry's checksum. `context` names the chunk in
 * errors (topic and key). Payloads are views into `buf`, which must not be reused.
 */
export function decodeChunk(buf: Buffer, context: string): Entry[] {
  if (buf.length < CHUNK_HEADER_BYTES || buf[0] !== CHUNK_MAGIC) {
    throw new CorruptChunkError(`${context}: not a chunk (bad magic or too short)`);
  }
  if (buf[1] !== CHUNK_VERSION) throw new CorruptChunkError(`${context}: unknown chunk version ${buf[1]}`);
  const count = buf.readUInt32BE(2);
  const entries: Entry[] = new Array(count);
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
    entries[i] = readBody(new Reader(buf, bodyStart, bodyEnd));
    at = bodyEnd;
  }
  if (at !== buf.length) throw new CorruptChunkError(`${context}: ${buf.length - at} trailing bytes after the last entry`);
  return entries;
}

function readBody(r: Reader): Entry {
  const offset = r.u64();
  const originPosition = r.u64();
  const hlc = r.big64();
  const sequenceId = r.u64();
  const publishTimeMs = r.u64();
  const eventTimeMs = r.u64();
  const flags = r.u8();
  const originRegion = r.str(r.u16());
  const producerName = r.str(r.u16());
  const key = flags & FLAG_HAS_KEY ? r.str(r.u32()) : undefined;
  const count = r.u32();
  // Built with fromEntries so that a property named "__proto__" stays an own property.
  const pairs: Array<[string, string]> = [];
  for (let p = 0; p < count; p++) {
    const name = r.str(r.u16());
    pairs.push([name, r.str(r.u32())]);
  }
  const properties: Record<string, string> = Object.fromEntries(pairs);
  const payload = r.bytes(r.u32());
  if (r.at !== r.end) throw new CorruptChunkError(`entry at offset ${offset} has ${r.end - r.at} unread bytes`);
  return { offset, originPosition, hlc, sequenceId, publishTimeMs, eventTimeMs, originRegion, producerName, key, properties, payload };
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
