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
import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import { AlertDescription, TlcpRecordError } from './errors.ts';
import { GcmKey, GCM_TAG_BYTES } from './gcm.ts';
import { hmacSm3 } from './sm3.ts';

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
 * buffering.
 */
export class RecordParser {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;

  push(chunk: Buffer): void {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
  }

  next(): TlcpRecord | null {
    if (this.bufferedBytes < RECORD_HEADER_BYTES) return null;
    if (this.buffered.length > 1) this.buffered = [Buffer.concat(this.buffered)];
    const data = this.buffered[0]!;
    const type = data[0]!;
    const version = data.readUInt16BE(1);
    const length = data.readUInt16BE(3);
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
    if (data.length < RECORD_HEADER_BYTES + length) return null;
    const fragment = data.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + length);
    const rest = data.subarray(RECORD_HEADER_BYTES + length);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.bufferedBytes = rest.length;
    return { type, version, fragment };
  }
}

export function encodeRecordHeader(type: number, length: number): Buffer {
  const header = Buffer.alloc(RECORD_HEADER_BYTES);
  header[0] = type;
  header.writeUInt16BE(TLCP_VERSION, 1);
  header.writeUInt16BE(length, 3);
  return header;
}

export interface RecordProtection {
  /** Returns the protected fragment for one plaintext fragment. */
  seal(type: number, plaintext: Buffer): Buffer;
  /** Returns the plaintext or throws TlcpRecordError(bad_record_mac). */
  open(type: number, fragment: Buffer): Buffer;
}

export class NullProtection implements RecordProtection {
  seal(_type: number, plaintext: Buffer): Buffer {
    return plaintext;
  }
  open(_type: number, fragment: Buffer): Buffer {
    if (fragment.length > RECORD_PLAINTEXT_BYTES_MAX) throw new TlcpRecordError('plaintext record too long', AlertDescription.record_overflow);
    return fragment;
  }
}

function sequenceBytes(sequence: bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(sequence);
  return bytes;
}

function macHeader(sequence: bigint, type: number, length: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeBigUInt64BE(sequence, 0);
  header[8] = type;
  header.writeUInt16BE(TLCP_VERSION, 9);
  header.writeUInt16BE(length, 11);
  return header;
}

const SEQUENCE_MAX = (1n << 64n) - 1n;

export class CbcProtection implements RecordProtection {
  private sequence = 0n;
  constructor(private readonly encKey: Buffer, private readonly macKey: Buffer) {}

  private nextSequence(): bigint {
    const value = this.sequence;
    // The sequence number must not wrap (RFC 5246 §6.1); a connection that
    // sent 2^64 records is an invariant failure, not an operating error.
    if (value === SEQUENCE_MAX) throw new Error('TLCP sequence number exhausted');
    this.sequence += 1n;
    return value;
  }

  seal(type: number, plaintext: Buffer): Buffer {
    const sequence = this.nextSequence();
    const mac = hmacSm3(this.macKey, macHeader(sequence, type, plaintext.length), plaintext);
    const unpadded = plaintext.length + mac.length + 1;
    const padLength = (16 - (unpadded % 16)) % 16;
    const padding = Buffer.alloc(padLength + 1, padLength);
    const iv = randomBytes(16);
    const cipher = createCipheriv('sm4-cbc', this.encKey, iv);
    cipher.setAutoPadding(false);
    return Buffer.concat([iv, cipher.update(plaintext), cipher.update(mac), cipher.update(padding), cipher.final()]);
  }

  open(type: number, fragment: Buffer): Buffer {
    const sequence = this.nextSequence();
    if (fragment.length < 16 + 48 || (fragment.length - 16) % 16 !== 0) {
      throw new TlcpRecordError(`CBC record length ${fragment.length} is invalid`, AlertDescription.bad_record_mac);
    }
    const decipher = createDecipheriv('sm4-cbc', this.encKey, fragment.subarray(0, 16));
    decipher.setAutoPadding(false);
    const decrypted = Buffer.concat([decipher.update(fragment.subarray(16)), decipher.final()]);
    const padLength = decrypted[decrypted.length - 1]!;
    // Check padding and MAC together and report one alert for both, so the
    // peer learns nothing about which failed (RFC 5246 §6.2.3.2).
    let good = padLength + 1 + 32 <= decrypted.length;
    const contentLength = good ? decrypted.length - padLength - 1 - 32 : 0;
    if (good) {
      for (let i = decrypted.length - padLength - 1; i < decrypted.length; i++) if (decrypted[i] !== padLength) good = false;
    }
    const content = decrypted.subarray(0, contentLength);
    const receivedMac = good ? decrypted.subarray(contentLength, contentLength + 32) : Buffer.alloc(32);
    const expectedMac = hmacSm3(this.macKey, macHeader(sequence, type, content.length), content);
    if (!timingSafeEqual(receivedMac, expectedMac) || !good) {
      throw new TlcpRecordError('record MAC or padding check failed', AlertDescription.bad_record_mac);
    }
    if (content.length > RECORD_PLAINTEXT_BYTES_MAX) throw new TlcpRecordError('decrypted record too long', AlertDescription.record_overflow);
    return content;
  }
}

export class GcmProtection implements RecordProtection {
  private sequence = 0n;
  private readonly key: GcmKey;
  constructor(encKey: Buffer, private readonly salt: Buffer) {
    this.key = new GcmKey('sm4', encKey);
  }

  private nextSequence(): bigint {
    const value = this.sequence;
    if (value === SEQUENCE_MAX) throw new Error('TLCP sequence number exhausted');
    this.sequence += 1n;
    return value;
  }

  seal(type: number, plaintext: Buffer): Buffer {
    const sequence = this.nextSequence();
    const explicit = sequenceBytes(sequence);
    const sealed = this.key.seal(Buffer.concat([this.salt, explicit]), plaintext, macHeader(sequence, type, plaintext.length));
    return Buffer.concat([explicit, sealed.ciphertext, sealed.tag]);
  }

  open(type: number, fragment: Buffer): Buffer {
    const sequence = this.nextSequence();
    if (fragment.length < 8 + GCM_TAG_BYTES) throw new TlcpRecordError(`GCM record length ${fragment.length} is too short`, AlertDescription.bad_record_mac);
    const explicit = fragment.subarray(0, 8);
    const ciphertext = fragment.subarray(8, fragment.length - GCM_TAG_BYTES);
    const tag = fragment.subarray(fragment.length - GCM_TAG_BYTES);
    const plaintext = this.key.open(Buffer.concat([this.salt, explicit]), ciphertext, tag, macHeader(sequence, type, ciphertext.length));
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
