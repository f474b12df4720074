// Protobuf encoding of the replication stream's hot message, written by hand: a
// ReplicateRequest carrying an EntryBatch (proto/replication.proto). The sender encodes
// log entries straight into it; the receiver decodes it into entries. Every other message
// of the stream goes through proto-loader.
//
// Why: proto-loader builds an object per entry and turns 64-bit fields into decimal
// strings and back; profiles of a catch-up put that at about 8% of each side's CPU, next
// to the encryption. The bytes are exactly those of replication.proto (zero values
// omitted, as proto3 does); the decoder accepts any valid encoding and returns undefined
// for a request that is not a batch, which the caller hands to proto-loader. It decodes
// each entry straight into the object the store keeps (no proto-loader form in between).
import {
  ProtobufReader,
  decodeMapEntry,
  expectWireType,
  lengthFieldBytes,
  varintBytes,
  writeVarint,
} from '../proto/protobuf-wire.ts';
import { RepeatedText, TextBytes } from '../proto/repeated-text.ts';
import type { LogEntry, ReplicatedEntry } from './log.ts';
import type { WireEntry } from './wire.ts';

const EMPTY = Buffer.alloc(0);

function integerFieldBytes(value: number): number {
  return value === 0 ? 0 : 1 + varintBytes(value);
}

function writeIntegerField(buf: Buffer, at: number, tag: number, value: number): number {
  if (value === 0) return at;
  buf[at++] = tag;
  return writeVarint(buf, at, value);
}

/** A length-delimited field, omitted when empty (lengthFieldBytes counts tag, length and data). */
function bytesFieldBytes(length: number): number {
  return length === 0 ? 0 : lengthFieldBytes(length);
}

function writeBytesHeader(buf: Buffer, at: number, tag: number, length: number): number {
  buf[at++] = tag;
  return writeVarint(buf, at, length);
}

function writeString(buf: Buffer, at: number, tag: number, value: string, length: number): number {
  if (length === 0) return at;
  at = writeBytesHeader(buf, at, tag, length);
  return at + buf.write(value, at, 'utf8');
}

function writeBytes(buf: Buffer, at: number, tag: number, bytes: Buffer): number {
  if (bytes.length === 0) return at;
  at = writeBytesHeader(buf, at, tag, bytes.length);
  buf.set(bytes, at);
  return at + bytes.length;
}

// The origin region and the producer name repeat from entry to entry: their bytes are
// encoded once and copied.
const regionBytes = new TextBytes();
const producerBytes = new TextBytes();

/** A property's map entry (key = 1, value = 2), without its own tag and length. */
function propertyBytes(name: string, value: string): number {
  return bytesFieldBytes(Buffer.byteLength(name)) + bytesFieldBytes(Buffer.byteLength(value));
}

/** A ReplicatedEntry message, without its own tag and length. */
function entryBytes(e: ReplicatedEntry): number {
  let bytes = bytesFieldBytes(regionBytes.of(e.originRegion).length) + integerFieldBytes(e.originPosition) + 9 + bytesFieldBytes(producerBytes.of(e.producerName).length);
  bytes += integerFieldBytes(e.sequenceId) + integerFieldBytes(e.publishTimeMs) + integerFieldBytes(e.eventTimeMs);
  if (e.key !== undefined) bytes += bytesFieldBytes(Buffer.byteLength(e.key)) + 2;
  for (const name in e.properties) bytes += lengthFieldBytes(propertyBytes(name, e.properties[name] ?? ''));
  return bytes + bytesFieldBytes(e.payload.length);
}

// Each entry's size, from the sizing pass to the writing one (reused: no array per batch).
const sizes: number[] = [];

/** ReplicateRequest { batch: EntryBatch { batch_id, entries } }, ready for the wire. */
export function encodeBatchRequest(batchId: number, entries: readonly ReplicatedEntry[]): Buffer {
  let batchBytes = integerFieldBytes(batchId);
  sizes.length = entries.length;
  for (let i = 0; i < entries.length; i++) {
    const bytes = entryBytes(entries[i] as ReplicatedEntry);
    sizes[i] = bytes;
    batchBytes += lengthFieldBytes(bytes);
  }
  const out = Buffer.allocUnsafe(lengthFieldBytes(batchBytes));
  let at = writeBytesHeader(out, 0, 0x12, batchBytes); // ReplicateRequest.batch = 2
  at = writeIntegerField(out, at, 0x08, batchId); // EntryBatch.batch_id = 1
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as ReplicatedEntry;
    at = writeBytesHeader(out, at, 0x12, sizes[i] as number); // EntryBatch.entries = 2
    at = writeBytes(out, at, 0x0a, regionBytes.of(e.originRegion));
    at = writeIntegerField(out, at, 0x10, e.originPosition);
    out[at++] = 0x19; // hlc = 3, fixed64
    out.writeBigUInt64LE(BigInt.asUintN(64, e.hlc), at);
    at += 8;
    at = writeBytes(out, at, 0x22, producerBytes.of(e.producerName));
    at = writeIntegerField(out, at, 0x28, e.sequenceId);
    at = writeIntegerField(out, at, 0x30, e.publishTimeMs);
    at = writeIntegerField(out, at, 0x38, e.eventTimeMs);
    if (e.key !== undefined) {
      at = writeString(out, at, 0x42, e.key, Buffer.byteLength(e.key));
      out[at++] = 0x48; // has_key = 9
      out[at++] = 1;
    }
    for (const name in e.properties) {
      const value = e.properties[name] ?? '';
      at = writeBytesHeader(out, at, 0x52, propertyBytes(name, value)); // properties = 10
      at = writeString(out, at, 0x0a, name, Buffer.byteLength(name));
      at = writeString(out, at, 0x12, value, Buffer.byteLength(value));
    }
    if (e.payload.length > 0) {
      at = writeBytesHeader(out, at, 0x5a, e.payload.length); // payload = 11
      out.set(e.payload, at);
      at += e.payload.length;
    }
  }
  if (at !== out.length) throw new RangeError(`batch encoding wrote ${at} of ${out.length} bytes`);
  return out;
}

export interface DecodedBatchRequest {
  request: 'batch';
  /**
   * `replicated` holds the entries, decoded straight into the shape of a stored entry
   * (its `offset` is the receiver's to set); `entries`, the proto-loader form, is empty.
   */
  batch: { batchId: number; entries: WireEntry[]; replicated: LogEntry[] };
}

/** Decodes a ReplicateRequest carrying a batch; undefined for any other request. Throws on malformed bytes. */
export function decodeBatchRequest(buf: Buffer): DecodedBatchRequest | undefined {
  const r = new ProtobufReader(buf, 0, buf.length);
  let batch: DecodedBatchRequest['batch'] | undefined;
  while (r.pos < r.end) {
    const tag = r.tag();
    if (tag >>> 3 !== 2) return undefined; // hello, heartbeat, subscriptions: proto-loader's
    expectWireType(tag & 7, 2, 'ReplicateRequest.batch');
    if (batch) return undefined; // a repeated batch field: protobuf would merge; leave it to proto-loader
    const outer = r.enter();
    batch = decodeEntryBatch(r);
    r.leave(outer);
  }
  return batch ? { request: 'batch', batch } : undefined;
}

function decodeEntryBatch(r: ProtobufReader): DecodedBatchRequest['batch'] {
  let batchId = 0;
  const replicated: LogEntry[] = [];
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag >>> 3) {
      case 1:
        expectWireType(tag & 7, 0, 'EntryBatch.batch_id');
        batchId = Number(r.uint64());
        break;
      case 2: {
        expectWireType(tag & 7, 2, 'EntryBatch.entries');
        const outer = r.enter();
        replicated.push(decodeEntry(r));
        r.leave(outer);
        break;
      }
      default:
        r.skip(tag & 7, tag >>> 3);
    }
  }
  return { batchId, entries: [], replicated };
}

// The origin region and the producer name repeat from entry to entry.
const originRegions = new RepeatedText();
const producerNames = new RepeatedText();

function repeatedText(r: ProtobufReader, memo: RepeatedText): string {
  const length = r.length();
  const start = r.pos;
  r.pos += length;
  return memo.read(r.buf, start, r.pos);
}

/** The properties of an entry that has none: shared, so frozen. */
const NO_PROPERTIES: Record<string, string> = Object.freeze({});

function decodeEntry(r: ProtobufReader): LogEntry {
  // The fields in the order of a stored entry's (region-node's Entry): received and local
  // entries then share one object shape through the store's encoder.
  const e: LogEntry = { offset: 0, originRegion: '', originPosition: 0, hlc: 0n, producerName: '', sequenceId: 0, publishTimeMs: 0, eventTimeMs: 0, key: undefined, properties: NO_PROPERTIES, payload: EMPTY };
  let key = '';
  let hasKey = false;
  while (r.pos < r.end) {
    const tag = r.tag();
    const field = tag >>> 3;
    const type = tag & 7;
    switch (field) {
      case 1:
        expectWireType(type, 2, 'ReplicatedEntry.origin_region');
        e.originRegion = repeatedText(r, originRegions);
        break;
      case 2:
        expectWireType(type, 0, 'ReplicatedEntry.origin_position');
        e.originPosition = Number(r.uint64());
        break;
      case 3:
        expectWireType(type, 1, 'ReplicatedEntry.hlc');
        e.hlc = r.fixed64();
        break;
      case 4:
        expectWireType(type, 2, 'ReplicatedEntry.producer_name');
        e.producerName = repeatedText(r, producerNames);
        break;
      case 5:
        expectWireType(type, 0, 'ReplicatedEntry.sequence_id');
        e.sequenceId = Number(r.uint64());
        break;
      case 6:
        expectWireType(type, 0, 'ReplicatedEntry.publish_time_ms');
        e.publishTimeMs = Number(r.uint64());
        break;
      case 7:
        expectWireType(type, 0, 'ReplicatedEntry.event_time_ms');
        e.eventTimeMs = Number(r.uint64());
        break;
      case 8:
        expectWireType(type, 2, 'ReplicatedEntry.key');
        key = r.string();
        break;
      case 9:
        expectWireType(type, 0, 'ReplicatedEntry.has_key');
        hasKey = r.bool();
        break;
      case 10: {
        expectWireType(type, 2, 'ReplicatedEntry.properties');
        const outer = r.enter();
        if (e.properties === NO_PROPERTIES) e.properties = {};
        decodeMapEntry(r, e.properties);
        r.leave(outer);
        break;
      }
      case 11:
        expectWireType(type, 2, 'ReplicatedEntry.payload');
        e.payload = r.bytes();
        break;
      default:
        r.skip(type, field);
    }
  }
  e.key = hasKey ? key : undefined;
  return e;
}
