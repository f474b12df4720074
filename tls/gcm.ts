/**
 * GCM (NIST SP 800-38D) over any native 128-bit block cipher. Node has no
 * SM4-GCM, so the keystream comes from native `<cipher>-ctr` and the
 * authentication from GHASH implemented here with 4-bit tables (Shoup's
 * method) over two 64-bit BigInt-free halves split into 32-bit words.
 *
 * The same code runs with AES so tests can compare it to Node's native
 * aes-128-gcm; a wrong GHASH cannot then hide behind its own round trip.
 */
import { createCipheriv, timingSafeEqual } from 'node:crypto';

export type GcmBlockCipher = 'sm4' | 'aes-128';

export const GCM_TAG_BYTES = 16;

/** 128-bit value held as four 32-bit big-endian words. */
type Block = [number, number, number, number];

function readBlock(bytes: Buffer, offset: number): Block {
  return [bytes.readUInt32BE(offset), bytes.readUInt32BE(offset + 4), bytes.readUInt32BE(offset + 8), bytes.readUInt32BE(offset + 12)];
}

// R = 11100001 || 0^120; the reduction constants for shifting out 4 bits.
const REDUCE4: number[] = (() => {
  const table: number[] = [];
  for (let nibble = 0; nibble < 16; nibble++) {
    let value = 0;
    for (let bit = 0; bit < 4; bit++) {
      if (nibble & (1 << bit)) value ^= 0xe1000000 >>> (3 - bit);
    }
    table.push(value >>> 0);
  }
  return table;
})();

/** GHASH keyed by H, with a 16-entry table of multiples of H. */
export class Ghash {
  private readonly table: Block[] = [];
  private state: Block = [0, 0, 0, 0];

  constructor(hashKey: Buffer) {
    const h = readBlock(hashKey, 0);
    // table[i] = i * H where the 4-bit i is read with its MSB as x^0.
    const multiples: Block[] = new Array(16);
    multiples[0] = [0, 0, 0, 0];
    multiples[8] = h;
    // multiples[4] = H * x, multiples[2] = H * x^2, multiples[1] = H * x^3.
    let v: Block = h;
    for (const index of [4, 2, 1]) {
      v = mulX(v);
      multiples[index] = v;
    }
    for (const base of [2, 4, 8]) {
      for (let low = 1; low < base; low++) {
        const a = multiples[base]!;
        const b = multiples[low]!;
        multiples[base + low] = [a[0] ^ b[0], a[1] ^ b[1], a[2] ^ b[2], a[3] ^ b[3]];
      }
    }
    for (let i = 0; i < 16; i++) this.table.push(multiples[i]!);
  }

  /** Absorbs data zero-padded to a multiple of 16 bytes. */
  update(data: Buffer): void {
    const full = data.length - (data.length % 16);
    for (let offset = 0; offset < full; offset += 16) this.absorb(data, offset);
    if (full < data.length) {
      const last = Buffer.alloc(16);
      data.copy(last, 0, full);
      this.absorb(last, 0);
    }
  }

  digest(): Buffer {
    const out = Buffer.alloc(16);
    for (let i = 0; i < 4; i++) out.writeUInt32BE(this.state[i]! >>> 0, i * 4);
    return out;
  }

  private absorb(data: Buffer, offset: number): void {
    const s = this.state;
    const x0 = (s[0] ^ data.readUInt32BE(offset)) >>> 0;
    const x1 = (s[1] ^ data.readUInt32BE(offset + 4)) >>> 0;
    const x2 = (s[2] ^ data.readUInt32BE(offset + 8)) >>> 0;
    const x3 = (s[3] ^ data.readUInt32BE(offset + 12)) >>> 0;
    const words = [x0, x1, x2, x3];
    let z0 = 0, z1 = 0, z2 = 0, z3 = 0;
    // Horner's rule over the 32 nibbles, last nibble first.
    for (let word = 3; word >= 0; word--) {
      const w = words[word]!;
      for (let shift = 0; shift < 32; shift += 4) {
        const nibble = (w >>> shift) & 0xf;
        if (!(word === 3 && shift === 0)) {
          // Z = Z * x^4: shift right by 4 bits and reduce.
          const carry = z3 & 0xf;
          z3 = ((z3 >>> 4) | (z2 << 28)) >>> 0;
          z2 = ((z2 >>> 4) | (z1 << 28)) >>> 0;
          z1 = ((z1 >>> 4) | (z0 << 28)) >>> 0;
          z0 = ((z0 >>> 4) ^ REDUCE4[carry]!) >>> 0;
        }
        const m = this.table[nibble]!;
        z0 = (z0 ^ m[0]) >>> 0;
        z1 = (z1 ^ m[1]) >>> 0;
        z2 = (z2 ^ m[2]) >>> 0;
        z3 = (z3 ^ m[3]) >>> 0;
      }
    }
    this.state = [z0, z1, z2, z3];
  }
}

/** Multiplies by x in GCM's reflected bit order (a right shift). */
function mulX(v: Block): Block {
  const carry = v[3] & 1;
  const out: Block = [
    (v[0] >>> 1) >>> 0,
    ((v[1] >>> 1) | (v[0] << 31)) >>> 0,
    ((v[2] >>> 1) | (v[1] << 31)) >>> 0,
    ((v[3] >>> 1) | (v[2] << 31)) >>> 0,
  ];
  if (carry) out[0] = (out[0] ^ 0xe1000000) >>> 0;
  return out;
}

function lengthsBlock(aadBytes: number, textBytes: number): Buffer {
  const block = Buffer.alloc(16);
  block.writeBigUInt64BE(BigInt(aadBytes) * 8n, 0);
  block.writeBigUInt64BE(BigInt(textBytes) * 8n, 8);
  return block;
}

/** A GCM key: caches H and the GHASH table so per-record cost is low. */
export class GcmKey {
  private readonly hashKey: Buffer;

  constructor(readonly cipher: GcmBlockCipher, readonly key: Buffer) {
    if (key.length !== 16) throw new RangeError(`GCM key must be 16 bytes, got ${key.length}`);
    const ecb = createCipheriv(`${cipher}-ecb`, key, null);
    ecb.setAutoPadding(false);
    this.hashKey = Buffer.concat([ecb.update(Buffer.alloc(16)), ecb.final()]);
  }

  private counterBlock(nonce: Buffer): Buffer {
    if (nonce.length !== 12) throw new RangeError(`GCM nonce must be 12 bytes, got ${nonce.length}`);
    const j0 = Buffer.alloc(16);
    nonce.copy(j0, 0);
    j0.writeUInt32BE(1, 12);
    return j0;
  }

  private tag(j0: Buffer, aad: Buffer, ciphertext: Buffer): Buffer {
    const ghash = new Ghash(this.hashKey);
    ghash.update(aad);
    ghash.update(ciphertext);
    ghash.update(lengthsBlock(aad.length, ciphertext.length));
    // E(K, J0) XOR S: run CTR over S starting at J0.
    const ctr = createCipheriv(`${this.cipher}-ctr`, this.key, j0);
    return ctr.update(ghash.digest());
  }

  private ctr(j0: Buffer, data: Buffer): Buffer {
    const start = Buffer.from(j0);
    start.writeUInt32BE((j0.readUInt32BE(12) + 1) >>> 0, 12);
    const ctr = createCipheriv(`${this.cipher}-ctr`, this.key, start);
    return Buffer.concat([ctr.update(data), ctr.final()]);
  }

  seal(nonce: Buffer, plaintext: Buffer, aad: Buffer): { ciphertext: Buffer; tag: Buffer } {
    const j0 = this.counterBlock(nonce);
    const ciphertext = this.ctr(j0, plaintext);
    return { ciphertext, tag: this.tag(j0, aad, ciphertext) };
  }

  /** Returns null when the tag does not verify. */
  open(nonce: Buffer, ciphertext: Buffer, tag: Buffer, aad: Buffer): Buffer | null {
    if (tag.length !== GCM_TAG_BYTES) return null;
    const j0 = this.counterBlock(nonce);
    const expected = this.tag(j0, aad, ciphertext);
    if (!timingSafeEqual(expected, tag)) return null;
    return this.ctr(j0, ciphertext);
  }
}
