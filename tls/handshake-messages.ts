/**
 * Encoders and decoders of the TLCP handshake messages (GB/T 38636-2020
 * §6.4.5). Decoders are total: any malformed input throws
 * TlcpHandshakeError carrying the alert to send (decode_error unless stated).
 */
import { AlertDescription, TlcpHandshakeError } from './errors.ts';
import { ByteReader, u16, u8, vector16, vector24, vector8 } from './wire-bytes.ts';

export const HandshakeType = {
  hello_request: 0,
  client_hello: 1,
  server_hello: 2,
  certificate: 11,
  server_key_exchange: 12,
  certificate_request: 13,
  server_hello_done: 14,
  certificate_verify: 15,
  client_key_exchange: 16,
  finished: 20,
} as const;

/** ECParameters: curve_type named_curve(3). */
export const EC_CURVE_TYPE_NAMED = 3;
/** SM2 named curve id used by Tongsuo and openHiTLS (RFC 8998 curveSM2). */
export const NAMED_CURVE_SM2 = 41;
/** The id older GmSSL versions send; accepted on input. */
export const NAMED_CURVE_SM2_GMSSL_LEGACY = 30;
/** ClientCertificateType ecdsa_sign(64), which TLCP uses for SM2. */
export const CLIENT_CERTIFICATE_TYPE_ECDSA_SIGN = 64;
export const CLIENT_CERTIFICATE_TYPE_RSA_SIGN = 1;

/** Largest handshake message body we buffer (certificate chains included). */
export const HANDSHAKE_MESSAGE_BYTES_MAX = 65_536;

export interface HandshakeMessage {
  readonly type: number;
  readonly body: Buffer;
  /** Header plus body, as it enters the transcript. */
  readonly raw: Buffer;
}

export function encodeHandshake(type: number, body: Buffer): Buffer {
  return Buffer.concat([u8(type), vector24(body)]);
}

/** Reassembles handshake messages from record fragments. */
export class HandshakeAssembler {
  private pending: Buffer = Buffer.alloc(0);

  push(fragment: Buffer): void {
    this.pending = this.pending.length === 0 ? fragment : Buffer.concat([this.pending, fragment]);
  }

  get hasPartial(): boolean {
    return this.pending.length > 0;
  }

  next(): HandshakeMessage | null {
    if (this.pending.length < 4) return null;
    const length = this.pending.readUIntBE(1, 3);
    if (length > HANDSHAKE_MESSAGE_BYTES_MAX) {
      throw new TlcpHandshakeError(`handshake message of ${length} bytes exceeds ${HANDSHAKE_MESSAGE_BYTES_MAX}`, AlertDescription.record_overflow);
    }
    if (this.pending.length < 4 + length) return null;
    const raw = this.pending.subarray(0, 4 + length);
    this.pending = this.pending.subarray(4 + length);
    return { type: raw[0]!, body: raw.subarray(4), raw };
  }
}

// --- Hello messages ---------------------------------------------------------

export interface ClientHello {
  readonly version: number;
  readonly random: Buffer;
  readonly sessionId: Buffer;
  readonly cipherSuites: number[];
  readonly compressionMethods: Buffer;
  readonly extensions: Buffer;
}

export function encodeClientHello(hello: Omit<ClientHello, 'compressionMethods' | 'extensions'>): Buffer {
  const suites = Buffer.concat(hello.cipherSuites.map((id) => u16(id)));
  return Buffer.concat([u16(hello.version), hello.random, vector8(hello.sessionId), vector16(suites), vector8(Buffer.from([0]))]);
}

export function decodeClientHello(body: Buffer): ClientHello {
  const reader = new ByteReader(body);
  const version = reader.u16('client_version');
  const random = reader.take(32, 'random');
  const sessionId = reader.vector8('session_id');
  if (sessionId.length > 32) throw new TlcpHandshakeError('session_id longer than 32 bytes', AlertDescription.illegal_parameter);
  const suites = reader.vector16('cipher_suites');
  if (suites.length < 2 || suites.length % 2 !== 0) throw new TlcpHandshakeError('cipher_suites length must be even and non-zero', AlertDescription.decode_error);
  const cipherSuites: number[] = [];
  for (let i = 0; i < suites.length; i += 2) cipherSuites.push(suites.readUInt16BE(i));
  const compressionMethods = reader.vector8('compression_methods');
  if (compressionMethods.length < 1) throw new TlcpHandshakeError('no compression methods', AlertDescription.decode_error);
  // Extensions are optional in TLCP; when present they must be a well-formed vector.
  const extensions = reader.remaining > 0 ? reader.vector16('extensions') : Buffer.alloc(0);
  reader.expectEnd('ClientHello');
  return { version, random, sessionId, cipherSuites, compressionMethods, extensions };
}

export interface ServerHello {
  readonly version: number;
  readonly random: Buffer;
  readonly sessionId: Buffer;
  readonly cipherSuite: number;
  readonly compressionMethod: number;
}

export function encodeServerHello(hello: ServerHello): Buffer {
  return Buffer.concat([u16(hello.version), hello.random, vector8(hello.sessionId), u16(hello.cipherSuite), u8(hello.compressionMethod)]);
}

export function decodeServerHello(body: Buffer): ServerHello {
  const reader = new ByteReader(body);
  const version = reader.u16('server_version');
  const random = reader.take(32, 'random');
  const sessionId = reader.vector8('session_id');
  if (sessionId.length > 32) throw new TlcpHandshakeError('session_id longer than 32 bytes', AlertDescription.illegal_parameter);
  const cipherSuite = reader.u16('cipher_suite');
  const compressionMethod = reader.u8('compression_method');
  if (reader.remaining > 0) reader.vector16('extensions');
  reader.expectEnd('ServerHello');
  return { version, random, sessionId, cipherSuite, compressionMethod };
}

/** TLCP Random: gmt_unix_time(4) || random_bytes(28). */
export function makeRandom(nowMs: number, random28: Buffer): Buffer {
  const out = Buffer.alloc(32);
  out.writeUInt32BE(Math.floor(nowMs / 1000) >>> 0, 0);
  random28.copy(out, 4, 0, 28);
  return out;
}

// --- Certificate --------------------------------------------------------------

/** Certificate: ASN.1Cert certificate_list<0..2^24-1>; sign cert, enc cert, then chain. */
export function encodeCertificateList(certificates: readonly Buffer[]): Buffer {
  return vector24(Buffer.concat(certificates.map((der) => vector24(der))));
}

export function decodeCertificateList(body: Buffer): Buffer[] {
  const reader = new ByteReader(body);
  const list = new ByteReader(reader.vector24('certificate_list'));
  reader.expectEnd('Certificate');
  const certificates: Buffer[] = [];
  while (list.remaining > 0) {
    const der = list.vector24('ASN.1Cert');
    if (der.length === 0) throw new TlcpHandshakeError('empty certificate in list', AlertDescription.decode_error);
    certificates.push(der);
    if (certificates.length > 10) throw new TlcpHandshakeError('more than 10 certificates', AlertDescription.bad_certificate);
  }
  return certificates;
}

// --- ServerKeyExchange --------------------------------------------------------

/** What the ECC-suite ServerKeyExchange signature covers (§6.4.5.4). */
export function eccSignedParams(clientRandom: Buffer, serverRandom: Buffer, encCertificateDer: Buffer): Buffer {
  return Buffer.concat([clientRandom, serverRandom, vector24(encCertificateDer)]);
}

/** ServerECDHEParams / ClientECDHEParams: ECParameters || ECPoint<1..2^8-1>. */
export function encodeEcdheParams(point: Buffer): Buffer {
  return Buffer.concat([u8(EC_CURVE_TYPE_NAMED), u16(NAMED_CURVE_SM2), vector8(point)]);
}

export function readEcdheParams(reader: ByteReader): { curve: number; point: Buffer } {
  const curveType = reader.u8('curve_type');
  if (curveType !== EC_CURVE_TYPE_NAMED) throw new TlcpHandshakeError(`unsupported curve_type ${curveType}`, AlertDescription.illegal_parameter);
  const curve = reader.u16('named_curve');
  if (curve !== NAMED_CURVE_SM2 && curve !== NAMED_CURVE_SM2_GMSSL_LEGACY) throw new TlcpHandshakeError(`unsupported named curve ${curve}`, AlertDescription.illegal_parameter);
  const point = reader.vector8('ECPoint');
  return { curve, point };
}

export interface ServerKeyExchange {
  /** The ServerECDHEParams bytes exactly as received (ECDHE only). */
  readonly params?: Buffer;
  readonly point?: Buffer;
  readonly signature: Buffer;
}

export function decodeServerKeyExchange(body: Buffer, keyExchange: 'ecc' | 'ecdhe'): ServerKeyExchange {
  const reader = new ByteReader(body);
  if (keyExchange === 'ecc') {
    const signature = reader.vector16('signature');
    reader.expectEnd('ServerKeyExchange');
    return { signature };
  }
  const { point } = readEcdheParams(reader);
  const params = body.subarray(0, body.length - reader.remaining);
  const signature = reader.vector16('signature');
  reader.expectEnd('ServerKeyExchange');
  return { params, point, signature };
}

// --- CertificateRequest ---------------------------------------------------------

export interface CertificateRequest {
  readonly certificateTypes: Buffer;
  readonly authorities: Buffer[];
}

export function encodeCertificateRequest(request: CertificateRequest): Buffer {
  return Buffer.concat([vector8(request.certificateTypes), vector16(Buffer.concat(request.authorities.map((dn) => vector16(dn))))]);
}

export function decodeCertificateRequest(body: Buffer): CertificateRequest {
  const reader = new ByteReader(body);
  const certificateTypes = reader.vector8('certificate_types');
  if (certificateTypes.length === 0) throw new TlcpHandshakeError('no certificate types', AlertDescription.decode_error);
  const list = new ByteReader(reader.vector16('certificate_authorities'));
  reader.expectEnd('CertificateRequest');
  const authorities: Buffer[] = [];
  while (list.remaining > 0) authorities.push(list.vector16('DistinguishedName'));
  return { certificateTypes, authorities };
}

// --- ClientKeyExchange ------------------------------------------------------------

/**
 * ECC: the SM2 ciphertext (GM/T 0009 DER) in a 2-byte length vector, as
 * Tongsuo, GmSSL and openHiTLS all send it.
 */
export function encodeEccClientKeyExchange(ciphertext: Buffer): Buffer {
  return vector16(ciphertext);
}

export function decodeEccClientKeyExchange(body: Buffer): Buffer {
  // Tolerate a bare DER body too: GB/T 38636's text leaves the vector
  // implicit, and a DER SEQUENCE starts with 0x30 while a 2-byte length of
  // an SM2 ciphertext of a 48-byte secret starts with 0x00.
  if (body.length >= 2 && body.readUInt16BE(0) === body.length - 2) return body.subarray(2);
  if (body[0] === 0x30) return body;
  throw new TlcpHandshakeError('ClientKeyExchange is neither a length-prefixed nor a bare SM2 ciphertext', AlertDescription.decode_error);
}

/** ECDHE: ClientECDHEParams without an outer length (Tongsuo, openHiTLS). */
export function encodeEcdheClientKeyExchange(point: Buffer): Buffer {
  return encodeEcdheParams(point);
}

export function decodeEcdheClientKeyExchange(body: Buffer): Buffer {
  // GmSSL wraps the same bytes in a uint16 vector; accept both forms.
  const unwrapped = body.length >= 2 && body.readUInt16BE(0) === body.length - 2 && body[2] === EC_CURVE_TYPE_NAMED ? body.subarray(2) : body;
  const reader = new ByteReader(unwrapped);
  const { point } = readEcdheParams(reader);
  reader.expectEnd('ClientKeyExchange');
  return point;
}

// --- CertificateVerify / Finished ---------------------------------------------------

export function encodeSignatureBody(signature: Buffer): Buffer {
  return vector16(signature);
}

export function decodeSignatureBody(body: Buffer, what: string): Buffer {
  const reader = new ByteReader(body);
  const signature = reader.vector16(`${what} signature`);
  reader.expectEnd(what);
  return signature;
}

export const FINISHED_VERIFY_DATA_BYTES = 12;
