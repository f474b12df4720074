// Protobuf encoding of the client's hot messages, written by hand: the `send` request of
// a produce stream (encoded), its receipt and the message batches of a consume stream
// (decoded). Every other message still goes through @grpc/proto-loader.
//
// Why: proto-loader builds an intermediate object per message and turns each 64-bit
// field into a Long and then a decimal string (`longs: String`, so that the HLC
// survives). CPU and allocation profiles of a producer at 1 KiB put that at about a third
// of its main thread and most of its garbage. Here values below 2^53 stay numbers and
// the receipt's HLC is read straight into a bigint.
//
// The bytes are exactly those of proto/admq.proto. A decoder accepts any valid encoding
// (fields in any order, unknown fields skipped) and throws on a malformed one; a
// response it does not handle (`opened`, `error`, anything unusual) is left to
// proto-loader. region-node/grpc-codec.ts is the node's half; grpc-codec.test.ts there
// checks both against protobufjs.
import type { ConsumeResponse, WireMessage } from '../proto/index.ts';
import { ProtobufReader, decodeMapEntry, expectWireType, lengthFieldBytes, varintBytes, writeVarint } from '../proto/protobuf-wire.ts';

const EMPTY = Buffer.alloc(0);

export interface ReceiptResult {
  sequenceId: number | string;
  /** int64: -1 for a duplicate whose original position is not known. */
  offset: number | string;
  duplicate: boolean;
  hlc: bigint;
}

/** A SendReceipt as this file decodes it: numbers below 2^53, the HLC as a bigint. */
export interface DecodedReceipt {
  requestId: number | string;
  results: ReceiptResult[];
}

/** One message of a send batch, as the producer holds it. */
export interface SendItem {
  sequenceId: number;
  payload: Buffer;
  key: string | undefined;
  properties: Record<string, string> | undefined;
  eventTimeMs: number;
}


/**
 * Decodes a ProduceResponse that carries a receipt. Returns undefined for anything else
 * (`opened`, `error`, a repeated receipt), which the caller hands to proto-loader.
 */
export function decodeProduceReceipt(buf: Buffer): { response: 'receipt'; receipt: DecodedReceipt } | undefined {
  const r = new ProtobufReader(buf, 0, buf.length);
  let receipt: DecodedReceipt | undefined;
  while (r.pos < r.end) {
    const tag = r.tag();
    const field = tag >>> 3;
    if (field === 1 || field === 3 || (field === 2 && receipt)) return undefined;
    if (field === 2) {
      expectWireType(tag & 7, 2, 'ProduceResponse.receipt');
      const outer = r.enter();
      receipt = decodeReceipt(r);
      r.leave(outer);
    } else r.skip(tag & 7, field);
  }
  return receipt ? { response: 'receipt', receipt } : undefined;
}

function decodeReceipt(r: ProtobufReader): DecodedReceipt {
  let requestId: number | string = 0;
  const results: ReceiptResult[] = [];
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag >>> 3) {
      case 1:
        expectWireType(tag & 7, 0, 'SendReceipt.request_id');
        requestId = r.uint64();
        break;
      case 2: {
        expectWireType(tag & 7, 2, 'SendReceipt.results');
        const outer = r.enter();
        results.push(decodeResult(r));
        r.leave(outer);
        break;
      }
      default:
        r.skip(tag & 7, tag >>> 3);
    }
  }
  return { requestId, results };
}

function decodeResult(r: ProtobufReader): ReceiptResult {
  let sequenceId: number | string = 0;
  let offset: number | string = 0;
  let duplicate = false;
  let hlc = 0n;
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag >>> 3) {
      case 1:
        expectWireType(tag & 7, 0, 'SendResult.sequence_id');
        sequenceId = r.uint64();
        break;
      case 2:
        expectWireType(tag & 7, 0, 'SendResult.offset');
        offset = r.int64();
        break;
      case 3:
        expectWireType(tag & 7, 0, 'SendResult.duplicate');
        duplicate = r.varint() !== 0;
        break;
      case 4:
        expectWireType(tag & 7, 1, 'SendResult.hlc');
        hlc = r.fixed64();
        break;
      default:
        r.skip(tag & 7, tag >>> 3);
    }
  }
  return { sequenceId, offset, duplicate, hlc };
}

/**
 * Decodes a ConsumeResponse that carries a message batch into the shapes proto-loader
 * gives (WireMessage, defaults filled in), with numbers for 64-bit values below 2^53 and
 * the HLC as its decimal string. Returns undefined for any other response.
 */
export function decodeConsumeMessages(buf: Buffer): ConsumeResponse | undefined {
  const r = new ProtobufReader(buf, 0, buf.length);
  let messages: WireMessage[] | undefined;
  while (r.pos < r.end) {
    const tag = r.tag();
    const field = tag >>> 3;
    if ((field >= 1 && field <= 5 && field !== 2) || (field === 2 && messages)) return undefined;
    if (field === 2) {
      expectWireType(tag & 7, 2, 'ConsumeResponse.messages');
      const outer = r.enter();
      messages = [];
      while (r.pos < r.end) {
        const inner = r.tag();
        if (inner >>> 3 === 1) {
          expectWireType(inner & 7, 2, 'MessageBatch.messages');
          const messageOuter = r.enter();
          messages.push(decodeMessage(r));
          r.leave(messageOuter);
        } else r.skip(inner & 7, inner >>> 3);
      }
      r.leave(outer);
    } else r.skip(tag & 7, field);
  }
  return messages ? { response: 'messages', messages: { messages } } : undefined;
}

function decodeMessage(r: ProtobufReader): WireMessage {
  const m: WireMessage = {
    offset: 0,
    originRegion: '',
    originPosition: 0,
    hlc: '0',
    producerName: '',
    sequenceId: 0,
    publishTimeMs: 0,
    key: '',
    hasKey: false,
    properties: {},
    payload: EMPTY,
    redeliveryCount: 0,
    eventTimeMs: 0,
  };
  while (r.pos < r.end) {
    const tag = r.tag();
    const wireType = tag & 7;
    switch (tag >>> 3) {
      case 1:
        expectWireType(wireType, 0, 'Message.offset');
        m.offset = r.uint64();
        break;
      case 2:
        expectWireType(wireType, 2, 'Message.origin_region');
        m.originRegion = r.string();
        break;
      case 3:
        expectWireType(wireType, 0, 'Message.origin_position');
        m.originPosition = r.uint64();
        break;
      case 4:
        expectWireType(wireType, 1, 'Message.hlc');
        m.hlc = r.fixed64().toString();
        break;
      case 5:
        expectWireType(wireType, 2, 'Message.producer_name');
        m.producerName = r.string();
        break;
      case 6:
        expectWireType(wireType, 0, 'Message.sequence_id');
        m.sequenceId = r.uint64();
        break;
      case 7:
        expectWireType(wireType, 0, 'Message.publish_time_ms');
        m.publishTimeMs = r.uint64();
        break;
      case 8:
        expectWireType(wireType, 2, 'Message.key');
        m.key = r.string();
        break;
      case 9:
        expectWireType(wireType, 0, 'Message.has_key');
        m.hasKey = r.varint() !== 0;
        break;
      case 10: {
        expectWireType(wireType, 2, 'Message.properties');
        const outer = r.enter();
        decodeMapEntry(r, m.properties);
        r.leave(outer);
        break;
      }
      case 11:
        expectWireType(wireType, 2, 'Message.payload');
        m.payload = r.bytes();
        break;
      case 12:
        expectWireType(wireType, 0, 'Message.redelivery_count');
        m.redeliveryCount = r.uint32();
        break;
      case 13:
        expectWireType(wireType, 0, 'Message.event_time_ms');
        m.eventTimeMs = r.uint64();
        break;
      default:
        r.skip(wireType, tag >>> 3);
    }
  }
  return m;
}


// ------------------------------------------------------------------------- encoding



function integerFieldBytes(value: number): number {
  return value === 0 ? 0 : 1 + varintBytes(value);
}

function writeIntegerField(buf: Buffer, at: number, tag: number, value: number): number {
  if (value === 0) return at;
  buf[at++] = tag;
  return writeVarint(buf, at, value);
}


function writeStringField(buf: Buffer, at: number, tag: number, value: string, bytes: number): number {
  if (bytes === 0) return at;
  buf[at++] = tag;
  at = writeVarint(buf, at, bytes);
  const written = buf.write(value, at, 'utf8');
  if (written !== bytes) throw new RangeError(`string field wrote ${written} of ${bytes} bytes`);
  return at + bytes;
}

const T = {
  produceRequestSend: (2 << 3) | 2,
  batchRequestId: (1 << 3) | 0,
  batchMessages: (2 << 3) | 2,
  sequenceId: (1 << 3) | 0,
  payload: (2 << 3) | 2,
  key: (3 << 3) | 2,
  hasKey: (4 << 3) | 0,
  properties: (5 << 3) | 2,
  eventTimeMs: (6 << 3) | 0,
  mapKey: (1 << 3) | 2,
  mapValue: (2 << 3) | 2,
} as const;

/** A property value as a string; JavaScript callers may pass other types, which protobufjs also converts. */
function text(value: unknown): string {
  return typeof value === 'string' ? value : value === undefined ? '' : String(value);
}

function entryBytes(nameBytes: number, valueBytes: number): number {
  return (nameBytes > 0 ? lengthFieldBytes(nameBytes) : 0) + (valueBytes > 0 ? lengthFieldBytes(valueBytes) : 0);
}

function messageBytes(m: SendItem): number {
  let bytes = integerFieldBytes(m.sequenceId) + integerFieldBytes(m.eventTimeMs);
  if (m.payload.length > 0) bytes += lengthFieldBytes(m.payload.length);
  if (m.key !== undefined) {
    const keyBytes = Buffer.byteLength(m.key);
    bytes += (keyBytes > 0 ? lengthFieldBytes(keyBytes) : 0) + 2;
  }
  if (m.properties) {
    for (const name in m.properties) {
      bytes += lengthFieldBytes(entryBytes(Buffer.byteLength(name), Buffer.byteLength(text(m.properties[name]))));
    }
  }
  return bytes;
}

/**
 * A ProduceRequest carrying one send batch. Sequence ids and event times are
 * non-negative integers below 2^53 (the producer assigns and validates them).
 */
export function encodeSendBatch(requestId: number, items: readonly SendItem[]): Buffer {
  const sizes = new Array<number>(items.length);
  let batchBytes = integerFieldBytes(requestId);
  for (let i = 0; i < items.length; i++) {
    const size = messageBytes(items[i] as SendItem);
    sizes[i] = size;
    batchBytes += lengthFieldBytes(size);
  }
  const buf = Buffer.allocUnsafe(lengthFieldBytes(batchBytes));
  let at = 0;
  buf[at++] = T.produceRequestSend;
  at = writeVarint(buf, at, batchBytes);
  at = writeIntegerField(buf, at, T.batchRequestId, requestId);
  for (let i = 0; i < items.length; i++) {
    const m = items[i] as SendItem;
    buf[at++] = T.batchMessages;
    at = writeVarint(buf, at, sizes[i] as number);
    at = writeIntegerField(buf, at, T.sequenceId, m.sequenceId);
    if (m.payload.length > 0) {
      buf[at++] = T.payload;
      at = writeVarint(buf, at, m.payload.length);
      buf.set(m.payload, at);
      at += m.payload.length;
    }
    if (m.key !== undefined) {
      at = writeStringField(buf, at, T.key, m.key, Buffer.byteLength(m.key));
      buf[at++] = T.hasKey;
      buf[at++] = 1;
    }
    if (m.properties) {
      for (const name in m.properties) {
        const value = text(m.properties[name]);
        const nameBytes = Buffer.byteLength(name);
        const valueBytes = Buffer.byteLength(value);
        buf[at++] = T.properties;
        at = writeVarint(buf, at, entryBytes(nameBytes, valueBytes));
        at = writeStringField(buf, at, T.mapKey, name, nameBytes);
        at = writeStringField(buf, at, T.mapValue, value, valueBytes);
      }
    }
    at = writeIntegerField(buf, at, T.eventTimeMs, m.eventTimeMs);
  }
  if (at !== buf.length) throw new RangeError(`send batch encoder wrote ${at} of ${buf.length} bytes`);
  return buf;
}
