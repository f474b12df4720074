// The protobuf wire format, as the hand-written codecs of the hot messages need it
// (client/grpc-codec.ts, region-node/grpc-codec.ts): a bounds-checked reader and the
// varint helpers of the encoders. Shared here because client and node must not depend on
// each other; proto/ is the contract both already import.

const EMPTY = Buffer.alloc(0);

/** Malformed protobuf bytes. */
export class WireError extends RangeError {}

/** A cursor over one protobuf message (or a nested one) inside `buf`. */
export class ProtobufReader {
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

  bool(): boolean {
    return this.varint() !== 0;
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

/** The exact value of the varint at `at`, for the rare values of 2^53 and more. */
export function exactVarint(buf: Buffer, at: number): bigint {
  let value = 0n;
  let shift = 0n;
  for (;;) {
    const byte = buf[at++] as number;
    value |= BigInt(byte & 0x7f) << shift;
    if (byte < 0x80) return value;
    shift += 7n;
  }
}

export function expectWireType(actual: number, expected: number, field: string): void {
  if (actual !== expected) throw new WireError(`${field} has wire type ${actual}, expected ${expected}`);
}

export function decodeMapEntry(r: ProtobufReader, into: Record<string, string>): void {
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

export function varintBytes(value: number): number {
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

export function writeVarint(buf: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    buf[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[at++] = value;
  return at;
}

export function lengthFieldBytes(length: number): number {
  return 1 + varintBytes(length) + length;
}
