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

class WireError extends RangeError {}

class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    /** End of the message being read; narrowed while inside a nested one. */
    public end: number,
  ) {}

  enter(): number {
    const length = this.length();
    const outer = this.end;
    this.end = this.pos + length;
    return outer;
  }

  leave(outer: number): void {
    if (this.pos !== this.end) throw new WireError('nested message overruns its length');
    this.end = outer;
  }

  /** A varint as a number: exact below 2^53; callers check and re-read larger ones exactly. */
  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    let value = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (pos >= this.end) throw new WireError('varint runs past the end of the message');
      const byte = buf[pos++] as number;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) break;
      if (i === 9) throw new WireError('varint longer than 10 bytes');
      scale *= 128;
    }
    this.pos = pos;
    return value;
  }

  tag(): number {
    const tag = this.varint();
    if (tag >>> 3 === 0 || tag > 0xffffffff) throw new WireError(`invalid field tag ${tag}`);
    return tag;
  }

  uint64(): number | string {
    const start = this.pos;
    const value = this.varint();
    if (value <= Number.MAX_SAFE_INTEGER) return value;
    return BigInt.asUintN(64, exactVarint(this.buf, start)).toString();
  }

  int64(): number | string {
    const start = this.pos;
    const value = this.varint();
    if (value <= Number.MAX_SAFE_INTEGER) return value;
    const exact = BigInt.asIntN(64, exactVarint(this.buf, start));
    return exact >= BigInt(Number.MIN_SAFE_INTEGER) && exact <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(exact) : exact.toString();
  }

  uint32(): number {
    const start = this.pos;
    const value = this.varint();
    if (value <= 0xffffffff) return value;
    return Number(BigInt.asUintN(32, exactVarint(this.buf, start)));
  }

  fixed64(): bigint {
    if (this.end - this.pos < 8) throw new WireError('fixed64 runs past the end of the message');
    const value = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return value;
  }

  length(): number {
    const length = this.varint();
    if (length > this.end - this.pos) throw new WireError(`length ${length} runs past the end of the message`);
    return length;
  }

  bytes(): Buffer {
    const length = this.length();
    const start = this.pos;
    this.pos += length;
    return length === 0 ? EMPTY : this.buf.subarray(start, start + length);
  }

  string(): string {
    const length = this.length();
    const start = this.pos;
    this.pos += length;
    return length === 0 ? '' : this.buf.toString('utf8', start, start + length);
  }

  skip(wireType: number, field: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.#advance(8);
        return;
      case 2:
        this.#advance(this.length());
        return;
      case 3:
        for (;;) {
          const tag = this.tag();
          if ((tag & 7) === 4) {
            if (tag >>> 3 !== field) throw new WireError('mismatched end group');
            return;
          }
          this.skip(tag & 7, tag >>> 3);
        }
      case 5:
        this.#advance(4);
        return;
      default:
        throw new WireError(`invalid wire type ${wireType} for field ${field}`);
    }
  }

  #advance(bytes: number): void {
    if (bytes > this.end - this.pos) throw new WireError('field runs past the end of the message');
    this.pos += bytes;
  }
}

function exactVarint(buf: Buffer, at: number): bigint {
  let value = 0n;
  let shift = 0n;
  for (;;) {
    const byte = buf[at++] as number;
    value |= BigInt(byte & 0x7f) << shift;
    if (byte < 0x80) return value;
    shift += 7n;
  }
}

function expectWireType(actual: number, expected: number, field: string): void {
  if (actual !== expected) throw new WireError(`${field} has wire type ${actual}, expected ${expected}`);
}

/**
 * Decodes a ProduceResponse that carries a receipt. Returns undefined for anything else
 * (`opened`, `error`, a repeated receipt), which the caller hands to proto-loader.
 */
export function decodeProduceReceipt(buf: Buffer): { response: 'receipt'; receipt: DecodedReceipt } | undefined {
  const r = new Reader(buf, 0, buf.length);
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

function decodeReceipt(r: Reader): DecodedReceipt {
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

function decodeResult(r: Reader): ReceiptResult {
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
  const r = new Reader(buf, 0, buf.length);
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

function decodeMessage(r: Reader): WireMessage {
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

function decodeMapEntry(r: Reader, into: Record<string, string>): void {
  let key = '';
  let value = '';
  while (r.pos < r.end) {
    const tag = r.tag();
    const field = tag >>> 3;
    if (field === 1) {
      expectWireType(tag & 7, 2, 'map key');
      key = r.string();
    } else if (field === 2) {
      expectWireType(tag & 7, 2, 'map value');
      value = r.string();
    } else r.skip(tag & 7, field);
  }
  // defineProperty keeps a key named "__proto__" an own property instead of a prototype.
  if (key === '__proto__') Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true });
  else into[key] = value;
}

// ------------------------------------------------------------------------- encoding

function varintBytes(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  let bytes = 4;
  let rest = Math.floor(value / 0x1000_0000);
  while (rest > 0) {
    bytes++;
    rest = Math.floor(rest / 128);
  }
  return bytes;
}

function writeVarint(buf: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    buf[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[at++] = value;
  return at;
}

function integerFieldBytes(value: number): number {
  return value === 0 ? 0 : 1 + varintBytes(value);
}

function writeIntegerField(buf: Buffer, at: number, tag: number, value: number): number {
  if (value === 0) return at;
  buf[at++] = tag;
  return writeVarint(buf, at, value);
}

function lengthFieldBytes(length: number): number {
  return 1 + varintBytes(length) + length;
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
