// Protobuf encoding of the node's hot messages, written by hand: the `send` request of a
// produce stream (decoded), its receipt and the message batches of a consume stream
// (encoded). Every other message still goes through @grpc/proto-loader.
//
// Why: proto-loader turns each 64-bit field into a Long object and then into a decimal
// string (`longs: String`, needed so that the HLC survives), and builds an intermediate
// object for every message. CPU profiles of a durable publish at 1 KiB put that, and the
// garbage it makes, at about a fifth of the node's main thread. Here 64-bit values below
// 2^53 become numbers, the HLC is written straight from its bigint, and a receipt or a
// delivery is encoded in one pass into one buffer.
//
// The bytes are exactly those of proto/admq.proto: a decoder accepts any valid encoding
// (fields in any order, unknown fields skipped, a repeated map key keeps the last value)
// and throws on a truncated or malformed one; a request it does not handle (an `open`, an
// empty or repeated `send`) is left to proto-loader. Checked against protobufjs in
// grpc-codec.test.ts.
import type { ProduceRequest, SendBatch, OutboundMessage } from '../proto/index.ts';
import { ProtobufReader, decodeMapEntry, expectWireType, lengthFieldBytes, varintBytes, writeVarint } from '../proto/protobuf-wire.ts';
import type { Delivery } from './broker/subscription.ts';
import type { AppendResult } from './storage/log-store.ts';

const EMPTY = Buffer.alloc(0);


/**
 * Decodes a ProduceRequest that carries a `send`. Returns undefined for anything else
 * (an `open`, an empty request, a repeated `send` that protobuf would merge), which the
 * caller hands to proto-loader. Throws on malformed bytes.
 */
export function decodeProduceSend(buf: Buffer): ProduceRequest | undefined {
  const r = new ProtobufReader(buf, 0, buf.length);
  let send: SendBatch | undefined;
  while (r.pos < r.end) {
    const tag = r.tag();
    const field = tag >>> 3;
    if (field === 1 || (field === 2 && send)) return undefined;
    if (field === 2) {
      expectWireType(tag & 7, 2, 'ProduceRequest.send');
      const outer = r.enter();
      send = decodeSendBatch(r);
      r.leave(outer);
    } else r.skip(tag & 7, field);
  }
  return send ? { request: 'send', send } : undefined;
}

function decodeSendBatch(r: ProtobufReader): SendBatch {
  let requestId: number | string = 0;
  const messages: OutboundMessage[] = [];
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag >>> 3) {
      case 1:
        expectWireType(tag & 7, 0, 'SendBatch.request_id');
        requestId = r.uint64();
        break;
      case 2: {
        expectWireType(tag & 7, 2, 'SendBatch.messages');
        const outer = r.enter();
        messages.push(decodeOutboundMessage(r));
        r.leave(outer);
        break;
      }
      default:
        r.skip(tag & 7, tag >>> 3);
    }
  }
  return { requestId, messages };
}

function decodeOutboundMessage(r: ProtobufReader): OutboundMessage {
  let sequenceId: number | string = 0;
  let payload: Buffer = EMPTY;
  let key = '';
  let hasKey = false;
  const properties: Record<string, string> = {};
  let eventTimeMs: number | string = 0;
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag >>> 3) {
      case 1:
        expectWireType(tag & 7, 0, 'OutboundMessage.sequence_id');
        sequenceId = r.uint64();
        break;
      case 2:
        expectWireType(tag & 7, 2, 'OutboundMessage.payload');
        payload = r.bytes();
        break;
      case 3:
        expectWireType(tag & 7, 2, 'OutboundMessage.key');
        key = r.string();
        break;
      case 4:
        expectWireType(tag & 7, 0, 'OutboundMessage.has_key');
        hasKey = r.bool();
        break;
      case 5: {
        expectWireType(tag & 7, 2, 'OutboundMessage.properties');
        const outer = r.enter();
        decodeMapEntry(r, properties);
        r.leave(outer);
        break;
      }
      case 6:
        expectWireType(tag & 7, 0, 'OutboundMessage.event_time_ms');
        eventTimeMs = r.uint64();
        break;
      default:
        r.skip(tag & 7, tag >>> 3);
    }
  }
  return { sequenceId, payload, key, hasKey, properties, eventTimeMs };
}


// ------------------------------------------------------------------------- encoding

/** Bytes of a varint holding a non-negative integer below 2^64 given as a number. */


function bigVarintBytes(value: bigint): number {
  let bytes = 1;
  while (value >= 0x80n) {
    bytes++;
    value >>= 7n;
  }
  return bytes;
}

function writeBigVarint(buf: Buffer, at: number, value: bigint): number {
  while (value >= 0x80n) {
    buf[at++] = Number(value & 0x7fn) | 0x80;
    value >>= 7n;
  }
  buf[at++] = Number(value);
  return at;
}

/** A uint64/int64 field value as what the wire carries: a number below 2^53 or a bigint. */
function wireInteger(value: number | string | bigint): number | bigint {
  if (typeof value === 'number' && value >= 0 && value <= Number.MAX_SAFE_INTEGER) return value;
  // Negative int64 values travel as their 64-bit two's complement (ten bytes).
  return BigInt.asUintN(64, BigInt(value));
}

function integerFieldBytes(value: number | bigint): number {
  if (value === 0 || value === 0n) return 0;
  return 1 + (typeof value === 'number' ? varintBytes(value) : bigVarintBytes(value));
}

function writeIntegerField(buf: Buffer, at: number, tag: number, value: number | bigint): number {
  if (value === 0 || value === 0n) return at;
  buf[at++] = tag;
  return typeof value === 'number' ? writeVarint(buf, at, value) : writeBigVarint(buf, at, value);
}


/** Field tags (field number << 3 | wire type); every field used here is below 16. */
const T = {
  produceResponseReceipt: (2 << 3) | 2,
  receiptRequestId: (1 << 3) | 0,
  receiptResults: (2 << 3) | 2,
  resultSequenceId: (1 << 3) | 0,
  resultOffset: (2 << 3) | 0,
  resultDuplicate: (3 << 3) | 0,
  resultHlc: (4 << 3) | 1,
  consumeResponseMessages: (2 << 3) | 2,
  batchMessages: (1 << 3) | 2,
  offset: (1 << 3) | 0,
  originRegion: (2 << 3) | 2,
  originPosition: (3 << 3) | 0,
  hlc: (4 << 3) | 1,
  producerName: (5 << 3) | 2,
  sequenceId: (6 << 3) | 0,
  publishTimeMs: (7 << 3) | 0,
  key: (8 << 3) | 2,
  hasKey: (9 << 3) | 0,
  properties: (10 << 3) | 2,
  payload: (11 << 3) | 2,
  redeliveryCount: (12 << 3) | 0,
  eventTimeMs: (13 << 3) | 0,
  mapKey: (1 << 3) | 2,
  mapValue: (2 << 3) | 2,
} as const;

function resultBodyBytes(r: AppendResult, offset: number | bigint): number {
  return integerFieldBytes(r.sequenceId) + integerFieldBytes(offset) + (r.duplicate ? 2 : 0) + (r.hlc !== 0n ? 9 : 0);
}

/** A ProduceResponse carrying the receipt of one send batch: one result per message, in order. */
export function encodeSendReceipt(requestId: number | string, results: readonly AppendResult[]): Buffer {
  const id = wireInteger(requestId);
  let bodyBytes = integerFieldBytes(id);
  for (const r of results) {
    const offset = r.offset >= 0 ? r.offset : wireInteger(r.offset);
    bodyBytes += lengthFieldBytes(resultBodyBytes(r, offset));
  }
  const buf = Buffer.allocUnsafe(lengthFieldBytes(bodyBytes));
  let at = 0;
  buf[at++] = T.produceResponseReceipt;
  at = writeVarint(buf, at, bodyBytes);
  at = writeIntegerField(buf, at, T.receiptRequestId, id);
  for (const r of results) {
    const offset = r.offset >= 0 ? r.offset : wireInteger(r.offset);
    buf[at++] = T.receiptResults;
    at = writeVarint(buf, at, resultBodyBytes(r, offset));
    at = writeIntegerField(buf, at, T.resultSequenceId, r.sequenceId);
    at = writeIntegerField(buf, at, T.resultOffset, offset);
    if (r.duplicate) {
      buf[at++] = T.resultDuplicate;
      buf[at++] = 1;
    }
    if (r.hlc !== 0n) {
      buf[at++] = T.resultHlc;
      buf.writeBigUInt64LE(r.hlc, at);
      at += 8;
    }
  }
  if (at !== buf.length) throw new RangeError(`receipt encoder wrote ${at} of ${buf.length} bytes`);
  return buf;
}

/** UTF-8 lengths of the strings in one batch; producer and region names repeat, so the last one is remembered. */
class StringBytes {
  #last = '';
  #lastBytes = 0;
  of(value: string): number {
    if (value === this.#last) return this.#lastBytes;
    this.#last = value;
    this.#lastBytes = Buffer.byteLength(value);
    return this.#lastBytes;
  }
}

function stringFieldBytes(bytes: number): number {
  return bytes === 0 ? 0 : lengthFieldBytes(bytes);
}

function writeStringField(buf: Buffer, at: number, tag: number, value: string, bytes: number): number {
  if (bytes === 0) return at;
  buf[at++] = tag;
  at = writeVarint(buf, at, bytes);
  const written = buf.write(value, at, 'utf8');
  if (written !== bytes) throw new RangeError(`string field wrote ${written} of ${bytes} bytes`);
  return at + bytes;
}

function propertiesBytes(properties: Record<string, string>): number {
  let bytes = 0;
  for (const name in properties) {
    const entry = stringFieldBytes(Buffer.byteLength(name)) + stringFieldBytes(Buffer.byteLength(properties[name] ?? ''));
    bytes += lengthFieldBytes(entry);
  }
  return bytes;
}

function writeProperties(buf: Buffer, at: number, properties: Record<string, string>): number {
  for (const name in properties) {
    const value = properties[name] ?? '';
    const nameBytes = Buffer.byteLength(name);
    const valueBytes = Buffer.byteLength(value);
    buf[at++] = T.properties;
    at = writeVarint(buf, at, stringFieldBytes(nameBytes) + stringFieldBytes(valueBytes));
    at = writeStringField(buf, at, T.mapKey, name, nameBytes);
    at = writeStringField(buf, at, T.mapValue, value, valueBytes);
  }
  return at;
}

/**
 * A ConsumeResponse carrying a batch of deliveries, each a Message as admq.proto defines
 * it. Offsets, positions and times are below 2^53 (entry-codec.ts stores them so).
 */
export function encodeMessageBatch(deliveries: readonly Delivery[]): Buffer {
  const regions = new StringBytes();
  const producers = new StringBytes();
  const sizes = new Array<number>(deliveries.length);
  let batchBytes = 0;
  for (let i = 0; i < deliveries.length; i++) {
    const d = deliveries[i] as Delivery;
    const e = d.entry;
    let bytes =
      integerFieldBytes(e.offset) +
      stringFieldBytes(regions.of(e.originRegion)) +
      integerFieldBytes(e.originPosition) +
      (e.hlc !== 0n ? 9 : 0) +
      stringFieldBytes(producers.of(e.producerName)) +
      integerFieldBytes(e.sequenceId) +
      integerFieldBytes(e.publishTimeMs) +
      integerFieldBytes(d.redeliveryCount) +
      integerFieldBytes(e.eventTimeMs) +
      (e.payload.length > 0 ? lengthFieldBytes(e.payload.length) : 0);
    if (e.key !== undefined) bytes += stringFieldBytes(Buffer.byteLength(e.key)) + 2;
    bytes += propertiesBytes(e.properties);
    sizes[i] = bytes;
    batchBytes += lengthFieldBytes(bytes);
  }
  const buf = Buffer.allocUnsafe(lengthFieldBytes(batchBytes));
  let at = 0;
  buf[at++] = T.consumeResponseMessages;
  at = writeVarint(buf, at, batchBytes);
  for (let i = 0; i < deliveries.length; i++) {
    const d = deliveries[i] as Delivery;
    const e = d.entry;
    buf[at++] = T.batchMessages;
    at = writeVarint(buf, at, sizes[i] as number);
    at = writeIntegerField(buf, at, T.offset, e.offset);
    at = writeStringField(buf, at, T.originRegion, e.originRegion, regions.of(e.originRegion));
    at = writeIntegerField(buf, at, T.originPosition, e.originPosition);
    if (e.hlc !== 0n) {
      buf[at++] = T.hlc;
      buf.writeBigUInt64LE(e.hlc, at);
      at += 8;
    }
    at = writeStringField(buf, at, T.producerName, e.producerName, producers.of(e.producerName));
    at = writeIntegerField(buf, at, T.sequenceId, e.sequenceId);
    at = writeIntegerField(buf, at, T.publishTimeMs, e.publishTimeMs);
    if (e.key !== undefined) {
      at = writeStringField(buf, at, T.key, e.key, Buffer.byteLength(e.key));
      buf[at++] = T.hasKey;
      buf[at++] = 1;
    }
    at = writeProperties(buf, at, e.properties);
    if (e.payload.length > 0) {
      buf[at++] = T.payload;
      at = writeVarint(buf, at, e.payload.length);
      buf.set(e.payload, at);
      at += e.payload.length;
    }
    at = writeIntegerField(buf, at, T.redeliveryCount, d.redeliveryCount);
    at = writeIntegerField(buf, at, T.eventTimeMs, e.eventTimeMs);
  }
  if (at !== buf.length) throw new RangeError(`message batch encoder wrote ${at} of ${buf.length} bytes`);
  return buf;
}
