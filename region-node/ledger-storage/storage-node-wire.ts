// The bytes of proto/storage-node.proto, encoded and decoded by hand on both sides of the
// storage node's stream (the server and StorageNodeClient import this file; neither
// imports the other).
//
// Why by hand: adds are the hot path of every ledger write, and proto-loader would build
// an object per message and turn 64-bit ids into decimal strings and back. The encoders
// write exactly what protobuf would (proto3: zero values omitted, the oneof's message always
// present); the decoders accept any valid encoding of a message, except that they are
// stricter than protobuf in three ways, each answered as a malformed request: a second op
// (protobuf would merge or keep the last), a uint32 ledger id above 2^32 (protobuf would
// truncate it), and an integer of 2^53 or more (an id JavaScript cannot hold exactly).
import { ProtobufReader, WireError, expectWireType, lengthFieldBytes, varintBytes, writeVarint } from '../../proto/protobuf-wire.ts';

export const STORAGE_NODE_SERVICE = 'admq.storage.v1.StorageNode';
export const SESSION_PATH = `/${STORAGE_NODE_SERVICE}/Session`;
/** Ledger ids are uint32 on the wire (and the store's keys, see bookie-store.ts). */
export const LEDGER_ID_MAX = 0xffffffff;

export type StorageRequest =
  | { op: 'add'; requestId: number; ledgerId: number; entryId: number; lac: number; payload: Buffer; writer: string }
  | { op: 'read'; requestId: number; ledgerId: number; entryId: number }
  | { op: 'readLac'; requestId: number; ledgerId: number }
  | { op: 'fence'; requestId: number; ledgerId: number }
  | { op: 'restore'; requestId: number; ledgerId: number; entryId: number; payload: Buffer };

/** What the server answers for bytes it cannot take as a request (requestId: as far as it was read, else 0). */
export interface MalformedRequest {
  op: 'malformed';
  requestId: number;
  reason: string;
}

export type StorageResponse =
  | { result: 'done'; requestId: number }
  | { result: 'entry'; requestId: number; payload: Buffer }
  | { result: 'state'; requestId: number; lac: number; last: number; fenced: boolean }
  | { result: 'error'; requestId: number; code: string; message: string };

const EMPTY: Buffer = Buffer.alloc(0);

// ---- encoding ---------------------------------------------------------------------------

function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

function unzigzag(v: number): number {
  return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
}

/** Bytes of a varint field with a one-byte tag (every field here is below 16); 0 when omitted. */
function varintField(value: number): number {
  return value === 0 ? 0 : 1 + varintBytes(value);
}

/** Bytes of a length-delimited field with a one-byte tag; 0 when empty and not `always`. */
function lengthField(length: number, always = false): number {
  return length === 0 && !always ? 0 : lengthFieldBytes(length);
}

class Writer {
  readonly buf: Buffer;
  at = 0;
  constructor(bytes: number) {
    this.buf = Buffer.allocUnsafe(bytes);
  }
  varint(tag: number, value: number): void {
    if (value === 0) return;
    this.buf[this.at++] = tag;
    this.at = writeVarint(this.buf, this.at, value);
  }
  header(tag: number, length: number): void {
    this.buf[this.at++] = tag;
    this.at = writeVarint(this.buf, this.at, length);
  }
  bytes(tag: number, value: Buffer): void {
    if (value.length === 0) return;
    this.header(tag, value.length);
    this.at += value.copy(this.buf, this.at);
  }
  string(tag: number, value: string, length: number): void {
    if (length === 0) return;
    this.header(tag, length);
    this.at += this.buf.write(value, this.at, 'utf8');
  }
  bool(tag: number, value: boolean): void {
    if (!value) return;
    this.buf[this.at++] = tag;
    this.buf[this.at++] = 1;
  }
  done(): Buffer {
    if (this.at !== this.buf.length) throw new RangeError(`storage node encoding wrote ${this.at} of ${this.buf.length} bytes`);
    return this.buf;
  }
}

/** StorageRequest (or StorageResponse: the same layout) = request_id, then the oneof field `tag` holding `body` bytes. */
function envelope(requestId: number, tag: number, body: number): Writer {
  const w = new Writer(varintField(requestId) + lengthField(body, true));
  w.varint(0x08, requestId);
  w.header(tag, body);
  return w;
}

export function encodeRequest(request: StorageRequest): Buffer {
  switch (request.op) {
    case 'add': {
      const writer = Buffer.byteLength(request.writer);
      const lac = zigzag(request.lac);
      const body =
        varintField(request.ledgerId) + varintField(request.entryId) + varintField(lac) + lengthField(request.payload.length) + lengthField(writer);
      const w = envelope(request.requestId, 0x12, body);
      w.varint(0x08, request.ledgerId);
      w.varint(0x10, request.entryId);
      w.varint(0x18, lac);
      w.bytes(0x22, request.payload);
      w.string(0x2a, request.writer, writer);
      return w.done();
    }
    case 'read': {
      const w = envelope(request.requestId, 0x1a, varintField(request.ledgerId) + varintField(request.entryId));
      w.varint(0x08, request.ledgerId);
      w.varint(0x10, request.entryId);
      return w.done();
    }
    case 'readLac':
    case 'fence': {
      const w = envelope(request.requestId, request.op === 'readLac' ? 0x22 : 0x2a, varintField(request.ledgerId));
      w.varint(0x08, request.ledgerId);
      return w.done();
    }
    case 'restore': {
      const body = varintField(request.ledgerId) + varintField(request.entryId) + lengthField(request.payload.length);
      const w = envelope(request.requestId, 0x32, body);
      w.varint(0x08, request.ledgerId);
      w.varint(0x10, request.entryId);
      w.bytes(0x1a, request.payload);
      return w.done();
    }
  }
}

export function encodeResponse(response: StorageResponse): Buffer {
  switch (response.result) {
    case 'done':
      return envelope(response.requestId, 0x12, 0).done();
    case 'entry': {
      const w = envelope(response.requestId, 0x1a, lengthField(response.payload.length));
      w.bytes(0x0a, response.payload);
      return w.done();
    }
    case 'state': {
      const lac = zigzag(response.lac);
      const last = zigzag(response.last);
      const w = envelope(response.requestId, 0x22, varintField(lac) + varintField(last) + (response.fenced ? 2 : 0));
      w.varint(0x08, lac);
      w.varint(0x10, last);
      w.bool(0x18, response.fenced);
      return w.done();
    }
    case 'error': {
      const code = Buffer.byteLength(response.code);
      const message = Buffer.byteLength(response.message);
      const w = envelope(response.requestId, 0x2a, lengthField(code) + lengthField(message));
      w.string(0x0a, response.code, code);
      w.string(0x12, response.message, message);
      return w.done();
    }
  }
}

// ---- decoding ---------------------------------------------------------------------------

function safeUint(r: ProtobufReader, field: string): number {
  const value = r.uint64();
  if (typeof value !== 'number') throw new WireError(`${field} ${value} is 2^53 or more`);
  return value;
}

function uint32(r: ProtobufReader, field: string): number {
  const value = r.varint();
  if (value > 0xffffffff) throw new WireError(`${field} ${value} does not fit in a uint32`);
  return value;
}

function sint(r: ProtobufReader, field: string): number {
  const value = r.varint();
  if (value > Number.MAX_SAFE_INTEGER) throw new WireError(`${field} is out of the safe integer range`);
  return unzigzag(value);
}

type OpFields = { ledgerId: number; entryId: number; lac: number; payload: Buffer; writer: string };

/** The fields of any op message (they share numbers where they share meaning, except restore's payload). */
function decodeOp(r: ProtobufReader, op: StorageRequest['op']): OpFields {
  const f: OpFields = { ledgerId: 0, entryId: 0, lac: 0, payload: EMPTY, writer: '' };
  while (r.pos < r.end) {
    const tag = r.tag();
    const field = tag >>> 3;
    const type = tag & 7;
    if (field === 1) {
      expectWireType(type, 0, `${op}.ledger_id`);
      f.ledgerId = uint32(r, `${op}.ledger_id`);
    } else if (field === 2 && (op === 'add' || op === 'read' || op === 'restore')) {
      expectWireType(type, 0, `${op}.entry_id`);
      f.entryId = safeUint(r, `${op}.entry_id`);
    } else if (field === 3 && op === 'add') {
      expectWireType(type, 0, 'add.lac');
      f.lac = sint(r, 'add.lac');
    } else if ((field === 4 && op === 'add') || (field === 3 && op === 'restore')) {
      expectWireType(type, 2, `${op}.payload`);
      f.payload = r.bytes();
    } else if (field === 5 && op === 'add') {
      expectWireType(type, 2, 'add.writer');
      f.writer = r.string();
    } else r.skip(type, field);
  }
  return f;
}

const OPS: Record<number, StorageRequest['op']> = { 2: 'add', 3: 'read', 4: 'readLac', 5: 'fence', 6: 'restore' };

/**
 * Decodes a StorageRequest. Never throws: bytes that are not a request come back as
 * `malformed`, with the request id if it was read before the damage. Payloads are views
 * into `buf` (grpc-js hands each message its own buffer).
 */
export function decodeRequest(buf: Buffer): StorageRequest | MalformedRequest {
  const r = new ProtobufReader(buf, 0, buf.length);
  let requestId = 0;
  let op: StorageRequest['op'] | undefined;
  let fields: OpFields | undefined;
  try {
    while (r.pos < r.end) {
      const tag = r.tag();
      const field = tag >>> 3;
      if (field === 1) {
        expectWireType(tag & 7, 0, 'request_id');
        requestId = safeUint(r, 'request_id');
        continue;
      }
      const named = OPS[field];
      if (named === undefined) {
        r.skip(tag & 7, field);
        continue;
      }
      expectWireType(tag & 7, 2, named);
      if (op !== undefined) throw new WireError(`a request carries one op; this one has ${op} and ${named}`);
      op = named;
      const outer = r.enter();
      fields = decodeOp(r, named);
      r.leave(outer);
    }
  } catch (error) {
    return { op: 'malformed', requestId, reason: (error as Error).message };
  }
  if (requestId === 0) return { op: 'malformed', requestId, reason: 'request_id is missing (it must not be 0)' };
  if (op === undefined || fields === undefined) return { op: 'malformed', requestId, reason: 'the request carries no op' };
  const { ledgerId, entryId, lac, payload, writer } = fields;
  switch (op) {
    case 'add':
      return { op, requestId, ledgerId, entryId, lac, payload, writer };
    case 'read':
      return { op, requestId, ledgerId, entryId };
    case 'readLac':
    case 'fence':
      return { op, requestId, ledgerId };
    case 'restore':
      return { op, requestId, ledgerId, entryId, payload };
  }
}

/** Decodes a StorageResponse; throws WireError on malformed bytes (a node that sends them is broken). */
export function decodeResponse(buf: Buffer): StorageResponse {
  const r = new ProtobufReader(buf, 0, buf.length);
  let requestId = 0;
  let response: StorageResponse | undefined;
  while (r.pos < r.end) {
    const tag = r.tag();
    const field = tag >>> 3;
    const type = tag & 7;
    if (field === 1) {
      expectWireType(type, 0, 'request_id');
      requestId = safeUint(r, 'request_id');
      continue;
    }
    if (field < 2 || field > 5) {
      r.skip(type, field);
      continue;
    }
    expectWireType(type, 2, `result ${field}`);
    if (response) throw new WireError('a response carries one result');
    const outer = r.enter();
    response = decodeResult(r, field);
    r.leave(outer);
  }
  if (!response) throw new WireError('the response carries no result');
  response.requestId = requestId;
  return response;
}

function decodeResult(r: ProtobufReader, field: number): StorageResponse {
  switch (field) {
    case 2:
      while (r.pos < r.end) {
        const tag = r.tag();
        r.skip(tag & 7, tag >>> 3);
      }
      return { result: 'done', requestId: 0 };
    case 3: {
      let payload = EMPTY;
      while (r.pos < r.end) {
        const tag = r.tag();
        if (tag >>> 3 === 1) {
          expectWireType(tag & 7, 2, 'entry.payload');
          payload = r.bytes();
        } else r.skip(tag & 7, tag >>> 3);
      }
      return { result: 'entry', requestId: 0, payload };
    }
    case 4: {
      const state = { result: 'state' as const, requestId: 0, lac: 0, last: 0, fenced: false };
      while (r.pos < r.end) {
        const tag = r.tag();
        const f = tag >>> 3;
        if (f === 1) {
          expectWireType(tag & 7, 0, 'state.lac');
          state.lac = sint(r, 'state.lac');
        } else if (f === 2) {
          expectWireType(tag & 7, 0, 'state.last');
          state.last = sint(r, 'state.last');
        } else if (f === 3) {
          expectWireType(tag & 7, 0, 'state.fenced');
          state.fenced = r.bool();
        } else r.skip(tag & 7, f);
      }
      return state;
    }
    default: {
      const error = { result: 'error' as const, requestId: 0, code: '', message: '' };
      while (r.pos < r.end) {
        const tag = r.tag();
        const f = tag >>> 3;
        if (f === 1) {
          expectWireType(tag & 7, 2, 'error.code');
          error.code = r.string();
        } else if (f === 2) {
          expectWireType(tag & 7, 2, 'error.message');
          error.message = r.string();
        } else r.skip(tag & 7, f);
      }
      return error;
    }
  }
}
