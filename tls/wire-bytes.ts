/**
 * Bounded readers and writers for the TLCP wire format (big-endian integers,
 * 1/2/3-byte length-prefixed vectors). A reader never reads past its end: it
 * throws TlcpHandshakeError(decode_error) instead, so parsers fed garbage fail
 * with the right alert.
 */
import { AlertDescription, TlcpHandshakeError } from './errors.ts';

export class ByteReader {
  private offset = 0;
  constructor(private readonly bytes: Buffer) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  private need(count: number, what: string): void {
    if (count > this.remaining) {
      throw new TlcpHandshakeError(`truncated ${what}: need ${count} bytes, have ${this.remaining}`, AlertDescription.decode_error);
    }
  }

  u8(what = 'uint8'): number {
    this.need(1, what);
    const value = this.bytes[this.offset]!;
    this.offset += 1;
    return value;
  }

  u16(what = 'uint16'): number {
    this.need(2, what);
    const value = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  u24(what = 'uint24'): number {
    this.need(3, what);
    const value = this.bytes.readUIntBE(this.offset, 3);
    this.offset += 3;
    return value;
  }

  take(count: number, what = 'bytes'): Buffer {
    this.need(count, what);
    const slice = this.bytes.subarray(this.offset, this.offset + count);
    this.offset += count;
    return slice;
  }

  vector8(what: string): Buffer {
    return this.take(this.u8(what), what);
  }

  vector16(what: string): Buffer {
    return this.take(this.u16(what), what);
  }

  vector24(what: string): Buffer {
    return this.take(this.u24(what), what);
  }

  rest(): Buffer {
    return this.take(this.remaining);
  }

  expectEnd(what: string): void {
    if (this.remaining !== 0) {
      throw new TlcpHandshakeError(`${this.remaining} trailing bytes after ${what}`, AlertDescription.decode_error);
    }
  }
}

export function u8(value: number): Buffer {
  return Buffer.from([value & 0xff]);
}

export function u16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}

export function u24(value: number): Buffer {
  const out = Buffer.alloc(3);
  out.writeUIntBE(value, 0, 3);
  return out;
}

export function vector8(body: Buffer): Buffer {
  if (body.length > 0xff) throw new RangeError(`vector8 too long: ${body.length}`);
  return Buffer.concat([u8(body.length), body]);
}

export function vector16(body: Buffer): Buffer {
  if (body.length > 0xffff) throw new RangeError(`vector16 too long: ${body.length}`);
  return Buffer.concat([u16(body.length), body]);
}

export function vector24(body: Buffer): Buffer {
  if (body.length > 0xffffff) throw new RangeError(`vector24 too long: ${body.length}`);
  return Buffer.concat([u24(body.length), body]);
}

export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}
