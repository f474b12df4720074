/**
 * TLCP record layer (GB/T 38636-2020 §6.3.3): framing, and the two record
 * protections used by the SM4 suites.
 *
 * - CBC suites: MAC-then-encrypt with HMAC-SM3 over
 *   seq_num(8) || type(1) || version(2) || length(2) || fragment, TLS 1.1+
 *   style explicit 16-byte IV, TLS-style padding.
 * - GCM suites: nonce = 4-byte implicit salt (client/server_write_IV from the
 *   key block) || 8-byte explicit nonce carried in the record (we send the
 *   sequence number); AAD = seq_num || type || version || plaintext length;
 *   fragment = explicit(8) || ciphertext || tag(16).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual, type Cipher, type Decipher } from 'node:crypto';
import { AlertDescription, TlcpRecordError } from './errors.ts';
import { GcmKey, GCM_NONCE_BYTES, GCM_TAG_BYTES } from './gcm.ts';

export const TLCP_VERSION = 0x0101;

export const ContentType = {
  change_cipher_spec: 20,
  alert: 21,
  handshake: 22,
  application_data: 23,
} as const;

/** 2^14: the largest plaintext fragment of one record. */
export const RECORD_PLAINTEXT_BYTES_MAX = 16_384;
/** 2^14 + 2048: the largest protected fragment we accept. */
export const RECORD_CIPHERTEXT_BYTES_MAX = RECORD_PLAINTEXT_BYTES_MAX + 2048;
export const RECORD_HEADER_BYTES = 5;

export interface CipherSuite {
  readonly id: number;
  readonly name: string;
  readonly keyExchange: 'ecc' | 'ecdhe';
  readonly mode: 'cbc' | 'gcm';
  readonly macKeyBytes: number;
  readonly encKeyBytes: number;
  readonly ivBytes: number;
}

export const CIPHER_SUITES: readonly CipherSuite[] = [
  { id: 0xe013, name: 'ECC_SM4_CBC_SM3', keyExchange: 'ecc', mode: 'cbc', macKeyBytes: 32, encKeyBytes: 16, ivBytes: 16 },
  { id: 0xe053, name: 'ECC_SM4_GCM_SM3', keyExchange: 'ecc', mode: 'gcm', macKeyBytes: 0, encKeyBytes: 16, ivBytes: 4 },
  { id: 0xe011, name: 'ECDHE_SM4_CBC_SM3', keyExchange: 'ecdhe', mode: 'cbc', macKeyBytes: 32, encKeyBytes: 16, ivBytes: 16 },
  { id: 0xe051, name: 'ECDHE_SM4_GCM_SM3', keyExchange: 'ecdhe', mode: 'gcm', macKeyBytes: 0, encKeyBytes: 16, ivBytes: 4 },
];

export type CipherSuiteName = 'ECC_SM4_CBC_SM3' | 'ECC_SM4_GCM_SM3' | 'ECDHE_SM4_CBC_SM3' | 'ECDHE_SM4_GCM_SM3';

export function cipherSuiteById(id: number): CipherSuite | undefined {
  return CIPHER_SUITES.find((suite) => suite.id === id);
}

export function cipherSuiteByName(name: string): CipherSuite | undefined {
  return CIPHER_SUITES.find((suite) => suite.name === name.toUpperCase().replace(/-/g, '_'));
}

export interface TlcpRecord {
  readonly type: number;
  readonly version: number;
  readonly fragment: Buffer;
}

/**
 * Splits a byte stream into records. Bounded: a header announcing more than
 * RECORD_CIPHERTEXT_BYTES_MAX fails at once with record_overflow instead of
 * buffering. Chunks are joined only when a record straddles them, and then
 * only once the whole record is there.
 */
export class RecordParser {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
  }

  next(): TlcpRecord | null {
    if (this.bufferedBytes < RECORD_HEADER_BYTES) return null;
    const header = this.peekHeader();
    const type = header[0]!;
    const version = header.readUInt16BE(1);
    const length = header.readUInt16BE(3);
    if (type < ContentType.change_cipher_spec || type > ContentType.application_data) {
      throw new TlcpRecordError(`unknown record content type ${type}`, AlertDescription.unexpected_message);
    }
    if (version >> 8 !== 0x01 && version >> 8 !== 0x03) {
      // Neither TLCP nor SSL/TLS: not a protocol we speak at all.
      throw new TlcpRecordError(`unknown record version 0x${version.toString(16)}`, AlertDescription.protocol_version);
    }
    if (length > RECORD_CIPHERTEXT_BYTES_MAX) {
      throw new TlcpRecordError(`record of ${length} bytes exceeds ${RECORD_CIPHERTEXT_BYTES_MAX}`, AlertDescription.record_overflow);
    }
    const recordBytes = RECORD_HEADER_BYTES + length;
    if (this.bufferedBytes < recordBytes) return null;
    return { type, version, fragment: this.take(recordBytes).subarray(RECORD_HEADER_BYTES) };
  }

  /** The next record header: in place when the first chunk holds it, else copied. */
  private peekHeader(): Buffer {
    const first = this.buffered[0]!;
    if (first.length >= RECORD_HEADER_BYTES) return first;
    const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
    let at = 0;
    for (const chunk of this.buffered) {
      at += chunk.copy(header, at, 0, Math.min(chunk.length, RECORD_HEADER_BYTES - at));
      if (at === RECORD_HEADER_BYTES) break;
    }
    return header;
  }

  /**
   * Removes the next `bytes` bytes: a view of the first chunk when it holds them all,
   * else a copy of just those bytes (a record that straddles two reads), not of
   * everything buffered behind them.
   */
  private take(bytes: number): Buffer {
    this.bufferedBytes -= bytes;
    const first = this.buffered[0]!;
    if (first.length >= bytes) {
      if (first.length === bytes) this.buffered.shift();
      else this.buffered[0] = first.subarray(bytes);
      return first.subarray(0, bytes);
    }
    const out = Buffer.allocUnsafe(bytes);
    let at = 0;
    while (at < bytes) {
      const chunk = this.buffered[0]!;
      const copied = chunk.copy(out, at, 0, Math.min(chunk.length, bytes - at));
      at += copied;
      if (copied === chunk.length) this.buffered.shift();
      else this.buffered[0] = chunk.subarray(copied);
    }
    return out;
  }
}

export function encodeRecordHeader(type: number, length: number): Buffer {
  const header = Buffer.alloc(RECORD_HEADER_BYTES);
  writeRecordHeader(header, 0, type, length);
  return header;
}

function writeRecordHeader(out: Buffer, offset: number, type: number, length: number): void {
  out[offset] = type;
  out.writeUInt16BE(TLCP_VERSION, offset + 1);
  out.writeUInt16BE(length, offset + 3);
}

export interface RecordProtection {
  /** Length of the protected fragment of a plaintext of `plaintextBytes`. */
  sealedBytes(plaintextBytes: number): number;
  /** Writes the protected fragment of one plaintext fragment at out[offset, offset + sealedBytes). */
  sealInto(type: number, plaintext: Buffer, out: Buffer, offset: number): void;
  /**
   * Returns the plaintext or throws TlcpRecordError(bad_record_mac). The fragment is the
   * protection's to overwrite: the plaintext may be decrypted where it lies.
   */
  open(type: number, fragment: Buffer): Buffer;
}

/**
 * Protects `data` as records of at most 2^14 plaintext bytes and returns
 * them, headers included, in one buffer: one allocation and one transport
 * write per flush, however many records.
 */
export function sealRecords(protection: RecordProtection, type: number, data: Buffer): Buffer {
  const count = Math.ceil(data.length / RECORD_PLAINTEXT_BYTES_MAX);
  let total = 0;
  for (let index = 0; index < count; index++) {
    total += RECORD_HEADER_BYTES + protection.sealedBytes(Math.min(RECORD_PLAINTEXT_BYTES_MAX, data.length - index * RECORD_PLAINTEXT_BYTES_MAX));
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (let index = 0; index < count; index++) {
    const plaintext = data.subarray(index * RECORD_PLAINTEXT_BYTES_MAX, (index + 1) * RECORD_PLAINTEXT_BYTES_MAX);
    const sealedBytes = protection.sealedBytes(plaintext.length);
    writeRecordHeader(out, at, type, sealedBytes);
    protection.sealInto(type, plaintext, out, at + RECORD_HEADER_BYTES);
    at += RECORD_HEADER_BYTES + sealedBytes;
  }
  return out;
}

export class NullProtection implements RecordProtection {
  sealedBytes(plaintextBytes: number): number {
    return plaintextBytes;
  }
  sealInto(_type: number, plaintext: Buffer, out: Buffer, offset: number): void {
    plaintext.copy(out, offset);
  }
  open(_type: number, fragment: Buffer): Buffer {
    if (fragment.length > RECORD_PLAINTEXT_BYTES_MAX) throw new TlcpRecordError('plaintext record too long', AlertDescription.record_overflow);
    return fragment;
  }
}

/**
 * Record sequence numbers. RFC 5246 §6.1 forbids wrapping at 2^64; a Number
 * counts exactly to 2^53, and a connection that sent 2^53 records (2^67
 * bytes) is a broken invariant, not an operating error.
 */
class SequenceCounter {
  private value = 0;
  next(): number {
    const value = this.value;
    if (value >= Number.MAX_SAFE_INTEGER) throw new Error('TLCP sequence number exhausted');
    this.value = value + 1;
    return value;
  }
}

function writeSequence(out: Buffer, offset: number, sequence: number): void {
  out.writeUInt32BE(Math.floor(sequence / 0x1_0000_0000), offset);
  out.writeUInt32BE(sequence >>> 0, offset + 4);
}

/** seq_num(8) || type(1) || version(2) || length(2): the MAC header and the GCM AAD. */
function writeMacHeader(out: Buffer, sequence: number, type: number, length: number): Buffer {
  writeSequence(out, 0, sequence);
  out[8] = type;
  out.writeUInt16BE(TLCP_VERSION, 9);
  out.writeUInt16BE(length, 11);
  return out;
}

const MAC_BYTES = 32;
const BLOCK_BYTES = 16;
const RANDOM_POOL_BYTES = 4096;

/**
 * CBC suites: MAC-then-encrypt with an explicit IV per record.
 *
 * Both directions keep one SM4-CBC context for the whole connection instead
 * of one per record (RFC 4346 §6.2.3.2 option 2b). Sending, each record
 * starts with a fresh random block R: the first ciphertext block,
 * E(R XOR previous ciphertext block), is the record's IV, as unpredictable
 * as R, and the rest of the record chains from it, which is exactly
 * SM4-CBC(IV, fragment). Receiving, the record's IV block is fed through the
 * running context and its output dropped: CBC decryption of each block
 * depends only on that block and the one before, so every other block comes
 * out as with a fresh context keyed by the record's IV. On the wire nothing
 * changes, for any peer.
 */
export class CbcProtection implements RecordProtection {
  private readonly sequence = new SequenceCounter();
  private readonly macHeader = Buffer.alloc(13);
  /** Created on first use: one instance only ever seals or only ever opens. */
  private encryptor: Cipher | undefined;
  private decryptor: Decipher | undefined;
  private randomPool = Buffer.alloc(0);
  private randomOffset = 0;

  constructor(private readonly encKey: Buffer, private readonly macKey: Buffer) {}

  sealedBytes(plaintextBytes: number): number {
    const unpadded = plaintextBytes + MAC_BYTES + 1;
    return BLOCK_BYTES + unpadded + ((BLOCK_BYTES - (unpadded % BLOCK_BYTES)) % BLOCK_BYTES);
  }

  private randomBlock(): Buffer {
    if (this.randomOffset + BLOCK_BYTES > this.randomPool.length) {
      this.randomPool = randomBytes(RANDOM_POOL_BYTES);
      this.randomOffset = 0;
    }
    const block = this.randomPool.subarray(this.randomOffset, this.randomOffset + BLOCK_BYTES);
    this.randomOffset += BLOCK_BYTES;
    return block;
  }

  sealInto(type: number, plaintext: Buffer, out: Buffer, offset: number): void {
    const sequence = this.sequence.next();
    const hmac = createHmac('sm3', this.macKey);
    hmac.update(writeMacHeader(this.macHeader, sequence, type, plaintext.length));
    hmac.update(plaintext);
    const unpadded = plaintext.length + MAC_BYTES + 1;
    const padLength = (BLOCK_BYTES - (unpadded % BLOCK_BYTES)) % BLOCK_BYTES;
    const trailer = Buffer.allocUnsafe(MAC_BYTES + padLength + 1);
    hmac.digest().copy(trailer, 0);
    trailer.fill(padLength, MAC_BYTES);
    if (this.encryptor === undefined) {
      // The context's own IV only whitens the first record's R.
      this.encryptor = createCipheriv('sm4-cbc', this.encKey, randomBytes(BLOCK_BYTES));
      this.encryptor.setAutoPadding(false);
    }
    let at = offset;
    at += this.encryptor.update(this.randomBlock()).copy(out, at);
    at += this.encryptor.update(plaintext).copy(out, at);
    at += this.encryptor.update(trailer).copy(out, at);
    // Every record is whole blocks, so the context never carries a partial block across records.
    if (at - offset !== this.sealedBytes(plaintext.length)) throw new Error('CBC record is not a whole number of blocks');
  }

  open(type: number, fragment: Buffer): Buffer {
    const sequence = this.sequence.next();
    if (fragment.length < BLOCK_BYTES + 48 || fragment.length % BLOCK_BYTES !== 0) {
      throw new TlcpRecordError(`CBC record length ${fragment.length} is invalid`, AlertDescription.bad_record_mac);
    }
    if (this.decryptor === undefined) {
      this.decryptor = createDecipheriv('sm4-cbc', this.encKey, Buffer.alloc(BLOCK_BYTES));
      this.decryptor.setAutoPadding(false);
    }
    const decrypted = this.decryptor.update(fragment).subarray(BLOCK_BYTES);
    if (decrypted.length !== fragment.length - BLOCK_BYTES) throw new Error('SM4-CBC decryption held back data');
    const padLength = decrypted[decrypted.length - 1]!;
    // Check padding and MAC together and report one alert for both, so the
    // peer learns nothing about which failed (RFC 5246 §6.2.3.2).
    let good = padLength + 1 + MAC_BYTES <= decrypted.length;
    const contentLength = good ? decrypted.length - padLength - 1 - MAC_BYTES : 0;
    if (good) {
      for (let i = decrypted.length - padLength - 1; i < decrypted.length; i++) if (decrypted[i] !== padLength) good = false;
    }
    const content = decrypted.subarray(0, contentLength);
    const receivedMac = good ? decrypted.subarray(contentLength, contentLength + MAC_BYTES) : Buffer.alloc(MAC_BYTES);
    const hmac = createHmac('sm3', this.macKey);
    hmac.update(writeMacHeader(this.macHeader, sequence, type, content.length));
    hmac.update(content);
    if (!timingSafeEqual(receivedMac, hmac.digest()) || !good) {
      throw new TlcpRecordError('record MAC or padding check failed', AlertDescription.bad_record_mac);
    }
    if (content.length > RECORD_PLAINTEXT_BYTES_MAX) throw new TlcpRecordError('decrypted record too long', AlertDescription.record_overflow);
    return content;
  }
}

const EXPLICIT_NONCE_BYTES = 8;

export class GcmProtection implements RecordProtection {
  private readonly sequence = new SequenceCounter();
  private readonly key: GcmKey;
  private readonly nonce = Buffer.alloc(GCM_NONCE_BYTES);
  private readonly aad = Buffer.alloc(13);

  constructor(encKey: Buffer, salt: Buffer) {
    this.key = new GcmKey('sm4', encKey);
    salt.copy(this.nonce, 0, 0, GCM_NONCE_BYTES - EXPLICIT_NONCE_BYTES);
  }

  sealedBytes(plaintextBytes: number): number {
    return EXPLICIT_NONCE_BYTES + plaintextBytes + GCM_TAG_BYTES;
  }

  sealInto(type: number, plaintext: Buffer, out: Buffer, offset: number): void {
    const sequence = this.sequence.next();
    // The explicit nonce is the sequence number: unique per key, as GCM requires.
    writeSequence(this.nonce, GCM_NONCE_BYTES - EXPLICIT_NONCE_BYTES, sequence);
    this.nonce.copy(out, offset, GCM_NONCE_BYTES - EXPLICIT_NONCE_BYTES);
    this.key.sealInto(this.nonce, plaintext, writeMacHeader(this.aad, sequence, type, plaintext.length), out, offset + EXPLICIT_NONCE_BYTES);
  }

  open(type: number, fragment: Buffer): Buffer {
    const sequence = this.sequence.next();
    if (fragment.length < EXPLICIT_NONCE_BYTES + GCM_TAG_BYTES) throw new TlcpRecordError(`GCM record length ${fragment.length} is too short`, AlertDescription.bad_record_mac);
    fragment.copy(this.nonce, GCM_NONCE_BYTES - EXPLICIT_NONCE_BYTES, 0, EXPLICIT_NONCE_BYTES);
    const ciphertext = fragment.subarray(EXPLICIT_NONCE_BYTES, fragment.length - GCM_TAG_BYTES);
    const tag = fragment.subarray(fragment.length - GCM_TAG_BYTES);
    // Decrypted where it arrived: no buffer per record on the receiving side.
    const plaintext = this.key.open(this.nonce, ciphertext, tag, writeMacHeader(this.aad, sequence, type, ciphertext.length), ciphertext);
    if (plaintext === null) throw new TlcpRecordError('record GCM tag check failed', AlertDescription.bad_record_mac);
    if (plaintext.length > RECORD_PLAINTEXT_BYTES_MAX) throw new TlcpRecordError('decrypted record too long', AlertDescription.record_overflow);
    return plaintext;
  }
}

export interface KeyBlock {
  readonly clientWrite: RecordProtection;
  readonly serverWrite: RecordProtection;
}

/** Splits key_block (GB/T 38636-2020 §6.5.2) and builds both directions. */
export function protectionFromKeyBlock(suite: CipherSuite, keyBlock: Buffer): KeyBlock {
  let offset = 0;
  const take = (count: number): Buffer => {
    const slice = keyBlock.subarray(offset, offset + count);
    offset += count;
    return slice;
  };
  const clientMac = take(suite.macKeyBytes);
  const serverMac = take(suite.macKeyBytes);
  const clientKey = take(suite.encKeyBytes);
  const serverKey = take(suite.encKeyBytes);
  const clientIv = take(suite.ivBytes);
  const serverIv = take(suite.ivBytes);
  if (suite.mode === 'cbc') {
    return { clientWrite: new CbcProtection(clientKey, clientMac), serverWrite: new CbcProtection(serverKey, serverMac) };
  }
  return { clientWrite: new GcmProtection(clientKey, clientIv), serverWrite: new GcmProtection(serverKey, serverIv) };
}

export function keyBlockBytes(suite: CipherSuite): number {
  return 2 * (suite.macKeyBytes + suite.encKeyBytes + suite.ivBytes);
}
