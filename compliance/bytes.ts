// Variable-length integers for the lag history's records: LEB128 (7 bits a byte), zigzag
// for signed values, and the same for 64-bit HLCs as bigints. A reader never reads past its
// buffer: bytes that end early or run on too long throw HistoryCorruptError, because they
// may come from the network (an admin API answer) as well as from our own LMDB records.
import { HistoryCorruptError } from './errors.ts';

/** Largest integer a number-valued varint may carry (Number.MAX_SAFE_INTEGER). */
const SAFE_MAX = Number.MAX_SAFE_INTEGER;

export class ByteWriter {
  #buffer: Buffer;
  #length = 0;

  constructor(initialBytes = 256) {
    this.#buffer = Buffer.allocUnsafe(initialBytes);
  }

  #reserve(bytes: number): void {
    if (this.#length + bytes <= this.#buffer.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.#length + bytes));
    this.#buffer.copy(next, 0, 0, this.#length);
    this.#buffer = next;
  }

  byte(value: number): void {
    this.#reserve(1);
    this.#buffer[this.#length++] = value & 0xff;
  }

  bytes(value: Uint8Array): void {
    this.#reserve(value.length);
    this.#buffer.set(value, this.#length);
    this.#length += value.length;
  }

  /** An unsigned integer up to 2^53 − 1. */
  uvarint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`uvarint: ${value} is not a safe unsigned integer`);
    this.#reserve(8);
    let v = value;
    while (v >= 0x80) {
      this.#buffer[this.#length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.#buffer[this.#length++] = v;
  }

  /** A signed integer, zigzag-coded: small magnitudes take few bytes either side of 0. */
  svarint(value: number): void {
    if (!Number.isSafeInteger(value) || Math.abs(value) > SAFE_MAX / 2) throw new RangeError(`svarint: ${value} is out of range`);
    this.uvarint(value >= 0 ? value * 2 : -value * 2 - 1);
  }

  bigUvarint(value: bigint): void {
    if (value < 0n) throw new RangeError(`bigUvarint: ${value} is negative`);
    this.#reserve(10);
    let v = value;
    while (v >= 0x80n) {
      this.#buffer[this.#length++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.#buffer[this.#length++] = Number(v);
  }

  bigSvarint(value: bigint): void {
    this.bigUvarint(value >= 0n ? value * 2n : -value * 2n - 1n);
  }

  /** A copy of what was written. */
  finish(): Buffer {
    return Buffer.from(this.#buffer.subarray(0, this.#length));
  }
}

export class ByteReader {
  #offset = 0;

  constructor(readonly buffer: Uint8Array) {}

  get done(): boolean {
    return this.#offset >= this.buffer.length;
  }

  get offset(): number {
    return this.#offset;
  }

  byte(): number {
    if (this.#offset >= this.buffer.length) throw new HistoryCorruptError(`record ends early at byte ${this.#offset}`);
    return this.buffer[this.#offset++] as number;
  }

  bytes(length: number): Uint8Array {
    if (this.#offset + length > this.buffer.length) throw new HistoryCorruptError(`record ends early: ${length} bytes wanted at byte ${this.#offset}`);
    const out = this.buffer.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return out;
  }

  uvarint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      value += (b & 0x7f) * scale;
      if (value > SAFE_MAX) break;
      if ((b & 0x80) === 0) return value;
      scale *= 0x80;
    }
    throw new HistoryCorruptError(`varint at byte ${this.#offset} is longer than a safe integer`);
  }

  svarint(): number {
    const z = this.uvarint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  bigUvarint(): bigint {
    let value = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.byte();
      value |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        // Zigzag deltas between two 64-bit HLCs take up to 65 bits.
        if (value >= 1n << 66n) break;
        return value;
      }
    }
    throw new HistoryCorruptError(`varint at byte ${this.#offset} is longer than 66 bits`);
  }

  bigSvarint(): bigint {
    const z = this.bigUvarint();
    return z % 2n === 0n ? z / 2n : -(z + 1n) / 2n;
  }
}
