/**
 * TLCP connections as Node Duplex streams: `connect()` for clients,
 * `createServer()` for servers, in the manner of node:tls.
 *
 * The handshake runs as one async function per connection that pulls
 * records from a queue; after it completes, records are processed as they
 * arrive. Any failure sends one fatal alert, destroys the connection and
 * surfaces a typed error; nothing escapes to the process.
 */
import { EventEmitter } from 'node:events';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import {
  certificateRole,
  parseCertificateDer,
  parseCertificatesPem,
  parsePrivateKeyPem,
  verifyCertificateChain,
  type Sm2Certificate,
} from './certificates.ts';
import {
  AlertDescription,
  TlcpAlertError,
  TlcpCertificateError,
  TlcpClosedError,
  TlcpConfigError,
  TlcpHandshakeError,
  TlcpRecordError,
  alertName,
  type TlsModuleError,
} from './errors.ts';
import {
  CLIENT_CERTIFICATE_TYPE_ECDSA_SIGN,
  CLIENT_CERTIFICATE_TYPE_RSA_SIGN,
  FINISHED_VERIFY_DATA_BYTES,
  HandshakeAssembler,
  HandshakeType,
  decodeCertificateList,
  decodeCertificateRequest,
  decodeClientHello,
  decodeEccClientKeyExchange,
  decodeEcdheClientKeyExchange,
  decodeServerHello,
  decodeServerKeyExchange,
  decodeSignatureBody,
  eccSignedParams,
  encodeCertificateList,
  encodeCertificateRequest,
  encodeClientHello,
  encodeEccClientKeyExchange,
  encodeEcdheClientKeyExchange,
  encodeEcdheParams,
  encodeHandshake,
  encodeServerHello,
  encodeSignatureBody,
  makeRandom,
  type HandshakeMessage,
} from './handshake-messages.ts';
import {
  CIPHER_SUITES,
  ContentType,
  NullProtection,
  RecordParser,
  TLCP_VERSION,
  cipherSuiteByName,
  keyBlockBytes,
  protectionFromKeyBlock,
  sealRecords,
  type CipherSuite,
  type RecordProtection,
  type TlcpRecord,
} from './record-layer.ts';
import { generateSm2KeyPair, isValidSm2PublicKey, sm2Decrypt, sm2Encrypt, sm2KeyExchange, sm2Sign, sm2Verify, type Sm2KeyPair } from './sm2.ts';
import { prf, sm3 } from './sm3.ts';

export interface KeyedCertificate {
  readonly certificate: Sm2Certificate;
  readonly keyPair: Sm2KeyPair;
}

type PemInput = string | Buffer;

export interface TlcpSecureOptions {
  /** Sign certificate and key: parsed, or PEM via signCert/signKey. */
  readonly sign?: KeyedCertificate;
  readonly enc?: KeyedCertificate;
  readonly signCert?: PemInput;
  readonly signKey?: PemInput;
  readonly encCert?: PemInput;
  readonly encKey?: PemInput;
  /** Extra chain certificates to send after sign and enc (PEM or parsed). */
  readonly chain?: PemInput | readonly Sm2Certificate[];
  /** Trust anchors (PEM, possibly several, or parsed). */
  readonly ca?: PemInput | readonly PemInput[] | readonly Sm2Certificate[];
  /** Suites in preference order; default all four, ECDHE first. */
  readonly cipherSuites?: readonly string[];
  /** Verify the peer's chain; default true. */
  readonly rejectUnauthorized?: boolean;
  /** Abort a handshake that has not finished after this long; default 30000. */
  readonly handshakeTimeoutMs?: number;
}

export interface TlcpConnectOptions extends TlcpSecureOptions {
  readonly host?: string;
  readonly port?: number;
  /** Use an already connected stream instead of opening a TCP connection. */
  readonly socket?: Duplex;
  /** Name the server's sign certificate must carry; default `host`. */
  readonly servername?: string;
}

export interface TlcpServerOptions extends TlcpSecureOptions {
  /** Ask clients for their double certificates; default false (ECDHE suites always ask). */
  readonly requestCert?: boolean;
}

export interface PeerCertificates {
  readonly sign: Sm2Certificate;
  readonly enc: Sm2Certificate;
  readonly chain: readonly Sm2Certificate[];
}

const DEFAULT_SUITES = ['ECDHE_SM4_GCM_SM3', 'ECDHE_SM4_CBC_SM3', 'ECC_SM4_GCM_SM3', 'ECC_SM4_CBC_SM3'];

interface ResolvedOptions {
  readonly sign: KeyedCertificate | undefined;
  readonly enc: KeyedCertificate | undefined;
  readonly chain: readonly Sm2Certificate[];
  readonly ca: readonly Sm2Certificate[];
  readonly suites: readonly CipherSuite[];
  readonly rejectUnauthorized: boolean;
  readonly handshakeTimeoutMs: number;
}

function keyed(certificate: PemInput | undefined, key: PemInput | undefined, what: string): KeyedCertificate | undefined {
  if (certificate === undefined && key === undefined) return undefined;
  if (certificate === undefined || key === undefined) throw new TlcpConfigError(`${what}Cert and ${what}Key must be given together`);
  const parsed = parseCertificatesPem(certificate)[0]!;
  const keyPair = parsePrivateKeyPem(key);
  if (!keyPair.publicKey.equals(parsed.publicKey)) throw new TlcpConfigError(`${what}Key does not match ${what}Cert`);
  return { certificate: parsed, keyPair };
}

function certificatesFrom(input: TlcpSecureOptions['ca'], what: string): Sm2Certificate[] {
  if (input === undefined) return [];
  if (typeof input === 'string' || Buffer.isBuffer(input)) return parseCertificatesPem(input);
  const list = input as readonly (PemInput | Sm2Certificate)[];
  const out: Sm2Certificate[] = [];
  for (const item of list) {
    if (typeof item === 'string' || Buffer.isBuffer(item)) out.push(...parseCertificatesPem(item));
    else if (item && typeof item === 'object' && 'der' in item) out.push(item);
    else throw new TlcpConfigError(`${what} entries must be PEM or parsed certificates`);
  }
  return out;
}

/** Validates options once; every error names the offending field. */
export function resolveSecureOptions(options: TlcpSecureOptions, role: 'client' | 'server'): ResolvedOptions {
  const sign = options.sign ?? keyed(options.signCert, options.signKey, 'sign');
  const enc = options.enc ?? keyed(options.encCert, options.encKey, 'enc');
  if ((sign === undefined) !== (enc === undefined)) throw new TlcpConfigError('sign and enc credentials must be given together (TLCP uses double certificates)');
  if (sign && certificateRole(sign.certificate) !== 'sign') throw new TlcpConfigError(`sign certificate has key usage of role ${certificateRole(sign.certificate)}, expected sign`);
  if (enc && certificateRole(enc.certificate) !== 'enc') throw new TlcpConfigError(`enc certificate has key usage of role ${certificateRole(enc.certificate)}, expected enc`);
  if (role === 'server' && sign === undefined) throw new TlcpConfigError('a TLCP server needs sign and enc certificates');
  const names = options.cipherSuites ?? DEFAULT_SUITES;
  if (names.length === 0) throw new TlcpConfigError('cipherSuites must not be empty');
  const suites = names.map((name) => {
    const suite = cipherSuiteByName(name);
    if (!suite) throw new TlcpConfigError(`cipherSuites: unknown suite ${name}; known: ${CIPHER_SUITES.map((s) => s.name).join(', ')}`);
    return suite;
  });
  const ca = certificatesFrom(options.ca, 'ca');
  const rejectUnauthorized = options.rejectUnauthorized ?? true;
  if (rejectUnauthorized && ca.length === 0) throw new TlcpConfigError('ca is required when rejectUnauthorized is true');
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? 30_000;
  if (!(handshakeTimeoutMs > 0)) throw new TlcpConfigError(`handshakeTimeoutMs must be > 0, got ${handshakeTimeoutMs}`);
  const chain = typeof options.chain === 'string' || Buffer.isBuffer(options.chain) ? parseCertificatesPem(options.chain) : [...((options.chain as readonly Sm2Certificate[] | undefined) ?? [])];
  return { sign, enc, chain, ca, suites, rejectUnauthorized, handshakeTimeoutMs };
}

function alertOf(error: unknown): number {
  if (error instanceof TlcpHandshakeError || error instanceof TlcpRecordError || error instanceof TlcpCertificateError) return error.alert;
  return AlertDescription.internal_error;
}

/** Picks sign and enc certificates from a Certificate message by key usage. */
export function classifyPeerCertificates(ders: readonly Buffer[]): PeerCertificates {
  if (ders.length === 0) throw new TlcpCertificateError('peer sent no certificates', AlertDescription.handshake_failure);
  const parsed = ders.map((der) => parseCertificateDer(der));
  const leaves = parsed.filter((certificate) => !certificate.isCa);
  let sign = leaves.find((certificate) => certificateRole(certificate) === 'sign');
  let enc = leaves.find((certificate) => certificateRole(certificate) === 'enc');
  // Certificates without keyUsage carry no role: fall back to the order
  // GB/T 38636 prescribes (sign first, then enc).
  if (!sign && parsed[0] && certificateRole(parsed[0]) === 'unknown') sign = parsed[0];
  if (!enc && parsed[1] && certificateRole(parsed[1]) === 'unknown') enc = parsed[1];
  if (!sign) throw new TlcpCertificateError('peer sent no sign certificate (digitalSignature key usage)', AlertDescription.bad_certificate);
  if (!enc) throw new TlcpCertificateError('peer sent no enc certificate (keyEncipherment/keyAgreement key usage)', AlertDescription.bad_certificate);
  return { sign, enc, chain: parsed.filter((certificate) => certificate !== sign && certificate !== enc) };
}

let socketCounter = 0;

/**
 * Encrypted bytes a connection lets the transport buffer before a write
 * waits for 'drain'. Above the socket's own 16 KiB mark so that sealing the
 * next write overlaps sending this one; bounded so that a slow peer costs
 * at most this much memory per connection (plus one write being sealed).
 */
export const TRANSPORT_BUFFERED_BYTES_MAX = 1024 * 1024;

export class TlcpSocket extends Duplex {
  /** Negotiated suite name, once the handshake has finished. */
  cipherSuite: string | undefined;
  cipherSuiteId: number | undefined;
  peerCertificates: PeerCertificates | undefined;
  /** True when the peer's certificates were verified against `ca`. */
  authorized = false;
  authorizationError: Error | undefined;
  readonly id = ++socketCounter;
  readonly encrypted = true;

  private readonly parser = new RecordParser();
  private readonly assembler = new HandshakeAssembler();
  private readonly inbound: TlcpRecord[] = [];
  private waiter: (() => void) | undefined;
  private readProtection: RecordProtection = new NullProtection();
  private writeProtection: RecordProtection = new NullProtection();
  private handshakeDone = false;
  private failed = false;
  private closeNotifySent = false;
  /** The transport is corked until the end of this tick (see writeApplicationData). */
  private corked = false;
  /** Records of the current handshake flight, not yet written. */
  private readonly outbox: Buffer[] = [];
  private readonly pendingWrites: Array<{ data: Buffer; callback: (error?: Error | null) => void }> = [];
  private readonly transcript: Buffer[] = [];
  private readonly options: ResolvedOptions;
  private handshakeTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly transport: Duplex,
    readonly role: 'client' | 'server',
    options: ResolvedOptions,
    private readonly extra: { servername?: string; requestCert?: boolean },
  ) {
    super({ allowHalfOpen: false });
    this.options = options;
    // Handshake flights and records are written whole; Nagle would only
    // hold the last segment of each back for the peer's delayed ACK.
    (transport as Partial<net.Socket>).setNoDelay?.(true);
    transport.on('data', (chunk: Buffer) => this.onTransportData(chunk));
    transport.on('error', (error: Error) => this.fail(error, false));
    transport.on('close', () => {
      if (!this.handshakeDone) this.fail(new TlcpHandshakeError('connection closed during handshake', AlertDescription.handshake_failure), false);
      else {
        this.push(null);
        this.destroy();
      }
    });
    transport.on('end', () => {
      if (this.handshakeDone) this.push(null);
    });
    this.handshakeTimer = setTimeout(() => this.fail(new TlcpHandshakeError(`handshake not finished within ${options.handshakeTimeoutMs} ms`, AlertDescription.handshake_failure), true), options.handshakeTimeoutMs);
    this.handshakeTimer.unref?.();
    const run = role === 'client' ? this.clientHandshake() : this.serverHandshake();
    run.then(
      () => this.onHandshakeDone(),
      (error: unknown) => this.fail(error, !(error instanceof TlcpAlertError)),
    );
  }

  // --- net.Socket look-alikes used by grpc-js and http2 ---------------------

  get remoteAddress(): string | undefined {
    return (this.transport as Partial<net.Socket>).remoteAddress;
  }
  get remotePort(): number | undefined {
    return (this.transport as Partial<net.Socket>).remotePort;
  }
  get localAddress(): string | undefined {
    return (this.transport as Partial<net.Socket>).localAddress;
  }
  get localPort(): number | undefined {
    return (this.transport as Partial<net.Socket>).localPort;
  }
  setNoDelay(noDelay?: boolean): this {
    (this.transport as Partial<net.Socket>).setNoDelay?.(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, delayMs?: number): this {
    (this.transport as Partial<net.Socket>).setKeepAlive?.(enable, delayMs);
    return this;
  }
  setTimeout(timeoutMs: number, callback?: () => void): this {
    (this.transport as Partial<net.Socket>).setTimeout?.(timeoutMs, callback);
    return this;
  }
  ref(): this {
    (this.transport as Partial<net.Socket>).ref?.();
    return this;
  }
  unref(): this {
    (this.transport as Partial<net.Socket>).unref?.();
    return this;
  }
  get handshakeComplete(): boolean {
    return this.handshakeDone;
  }

  /** Summary of the peer's sign certificate in node:tls style. */
  getPeerCertificate(): { subject: Record<string, string>; issuer: Record<string, string>; raw: Buffer; valid_from: string; valid_to: string; subjectaltname: string } | Record<string, never> {
    const sign = this.peerCertificates?.sign;
    if (!sign) return {};
    return {
      subject: { ...sign.subject },
      issuer: { ...sign.issuer },
      raw: sign.der,
      valid_from: sign.notBefore.toISOString(),
      valid_to: sign.notAfter.toISOString(),
      subjectaltname: [...sign.dnsNames.map((name) => `DNS:${name}`), ...sign.uris.map((uri) => `URI:${uri}`)].join(', '),
    };
  }

  // --- inbound --------------------------------------------------------------

  private onTransportData(chunk: Buffer): void {
    if (this.failed) return;
    try {
      this.parser.push(chunk);
      for (let record = this.parser.next(); record !== null; record = this.parser.next()) {
        if (this.handshakeDone) this.processRecord(record);
        else this.inbound.push(record);
        if (this.failed) return;
      }
    } catch (error) {
      this.fail(error, true);
      return;
    }
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  /** Post-handshake records. */
  private processRecord(record: TlcpRecord): void {
    const plaintext = this.readProtection.open(record.type, record.fragment);
    switch (record.type) {
      case ContentType.application_data:
        if (plaintext.length > 0 && !this.push(plaintext)) (this.transport as Partial<net.Socket>).pause?.();
        return;
      case ContentType.alert:
        this.onAlert(plaintext);
        return;
      case ContentType.handshake:
        // Renegotiation is not supported (and TLCP renegotiation is unsafe).
        this.sendAlert(1, AlertDescription.no_renegotiation);
        return;
      default:
        throw new TlcpRecordError(`unexpected record type ${record.type} after handshake`, AlertDescription.unexpected_message);
    }
  }

  private onAlert(body: Buffer): void {
    if (body.length !== 2) throw new TlcpRecordError('malformed alert', AlertDescription.decode_error);
    const [level, description] = [body[0]!, body[1]!];
    if (description === AlertDescription.close_notify) {
      this.sendCloseNotify();
      this.push(null);
      this.transport.end();
      return;
    }
    if (level === 2 || !this.handshakeDone) {
      throw new TlcpAlertError(description, 'received', `peer sent fatal alert ${alertName(description)}`);
    }
    this.emit('alert', { level, description });
  }

  private async nextRecord(): Promise<TlcpRecord> {
    for (;;) {
      if (this.failed) throw new TlcpClosedError('connection failed');
      const record = this.inbound.shift();
      if (record) return record;
      // About to wait for the peer: send what this side has to say first.
      this.flushOutbox();
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  /** Next handshake message; alerts and stray records end the handshake. */
  private async readHandshake(expected: number | readonly number[]): Promise<HandshakeMessage> {
    const accepted = typeof expected === 'number' ? [expected] : expected;
    for (;;) {
      const message = this.assembler.next();
      if (message) {
        if (!accepted.includes(message.type)) {
          throw new TlcpHandshakeError(`unexpected handshake message ${message.type}, expected ${accepted.join('/')}`, AlertDescription.unexpected_message);
        }
        this.transcript.push(message.raw);
        return message;
      }
      const record = await this.nextRecord();
      const plaintext = this.readProtection.open(record.type, record.fragment);
      if (record.type === ContentType.alert) {
        this.onAlert(plaintext);
        throw new TlcpAlertError(AlertDescription.close_notify, 'received', 'peer closed during handshake');
      }
      if (record.type !== ContentType.handshake) {
        throw new TlcpHandshakeError(`unexpected record type ${record.type} during handshake`, AlertDescription.unexpected_message);
      }
      if (plaintext.length === 0) throw new TlcpHandshakeError('empty handshake record', AlertDescription.unexpected_message);
      this.assembler.push(plaintext);
    }
  }

  private async readChangeCipherSpec(): Promise<void> {
    if (this.assembler.hasPartial) throw new TlcpHandshakeError('ChangeCipherSpec inside a handshake message', AlertDescription.unexpected_message);
    const record = await this.nextRecord();
    const plaintext = this.readProtection.open(record.type, record.fragment);
    if (record.type === ContentType.alert) {
      this.onAlert(plaintext);
      throw new TlcpAlertError(AlertDescription.close_notify, 'received', 'peer closed during handshake');
    }
    if (record.type !== ContentType.change_cipher_spec || plaintext.length !== 1 || plaintext[0] !== 1) {
      throw new TlcpHandshakeError('expected ChangeCipherSpec', AlertDescription.unexpected_message);
    }
  }

  // --- outbound ---------------------------------------------------------------

  /**
   * Queues one record. During the handshake records are held in `outbox` and
   * written as one flight (one transport write, one TCP segment train) when
   * the handshake next waits for the peer; afterwards they go out at once.
   */
  private writeRecord(type: number, plaintext: Buffer): void {
    this.outbox.push(sealRecords(this.writeProtection, type, plaintext));
    if (this.handshakeDone) this.flushOutbox();
  }

  private flushOutbox(): void {
    if (this.outbox.length === 0) return;
    const data = this.outbox.length === 1 ? this.outbox[0]! : Buffer.concat(this.outbox);
    this.outbox.length = 0;
    if (!this.transport.destroyed && this.transport.writable) this.transport.write(data);
  }

  private writeHandshake(type: number, body: Buffer): void {
    const message = encodeHandshake(type, body);
    this.transcript.push(message);
    this.writeRecord(ContentType.handshake, message);
  }

  private sendAlert(level: 1 | 2, description: number): void {
    if (this.transport.destroyed || !this.transport.writable) return;
    try {
      this.writeRecord(ContentType.alert, Buffer.from([level, description]));
      this.flushOutbox();
    } catch {
      // The connection is being torn down; nothing more to tell the peer.
    }
  }

  private sendCloseNotify(): void {
    if (this.closeNotifySent) return;
    this.closeNotifySent = true;
    this.sendAlert(1, AlertDescription.close_notify);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  /** Batches queued chunks into as few 16 KiB records as possible. */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const data = chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((item) => item.chunk));
    if (!this.handshakeDone) {
      this.pendingWrites.push({ data, callback });
      return;
    }
    this.writeApplicationData(data, callback);
  }

  private writeApplicationData(data: Buffer, callback: (error?: Error | null) => void): void {
    if (this.failed || this.transport.destroyed) {
      callback(new TlcpClosedError('write after the TLCP connection closed'));
      return;
    }
    try {
      const records = sealRecords(this.writeProtection, ContentType.application_data, data);
      if (!this.corked && records.length > 0) {
        // Everything written in this tick (HTTP/2 writes a large message as many frames,
        // each a write here) leaves in one system call at the end of the tick, instead of
        // one each: system calls are a large share of a link's CPU on virtual machines.
        this.corked = true;
        this.transport.cork();
        process.nextTick(() => {
          this.corked = false;
          this.transport.uncork();
        });
      }
      const belowMark = records.length === 0 || this.transport.write(records);
      // Take the next write while the kernel and the peer work on this one
      // (sealing and sending overlap); wait for 'drain' only once the
      // transport holds TRANSPORT_BUFFERED_BYTES_MAX.
      if (belowMark || this.transport.writableLength < TRANSPORT_BUFFERED_BYTES_MAX) callback();
      else this.transport.once('drain', () => callback());
    } catch (error) {
      callback(error as Error);
    }
  }

  override _read(): void {
    (this.transport as Partial<net.Socket>).resume?.();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.handshakeDone && !this.failed) this.sendCloseNotify();
    this.transport.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    for (const pending of this.pendingWrites.splice(0)) pending.callback(new TlcpClosedError('connection destroyed before the handshake finished'));
    this.transport.destroy();
    callback(error);
  }

  private onHandshakeDone(): void {
    if (this.failed) return;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeDone = true;
    this.flushOutbox();
    this.transcript.length = 0;
    // Records that arrived behind the Finished message.
    try {
      for (let record = this.inbound.shift(); record; record = this.inbound.shift()) this.processRecord(record);
    } catch (error) {
      this.fail(error, true);
      return;
    }
    this.emit(this.role === 'client' ? 'secureConnect' : 'secure');
    for (const pending of this.pendingWrites.splice(0)) this.writeApplicationData(pending.data, pending.callback);
  }

  private fail(error: unknown, sendAlert: boolean): void {
    if (this.failed) return;
    this.failed = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    const typed = toTypedError(error);
    if (sendAlert && !(typed instanceof TlcpAlertError && typed.direction === 'received')) this.sendAlert(2, alertOf(error));
    this.transport.end();
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
    this.destroy(typed);
  }

  // --- key schedule -------------------------------------------------------------

  private masterSecret: Buffer = Buffer.alloc(0);

  private deriveKeys(suite: CipherSuite, premaster: Buffer, clientRandom: Buffer, serverRandom: Buffer): { clientWrite: RecordProtection; serverWrite: RecordProtection } {
    this.masterSecret = prf(premaster, 'master secret', Buffer.concat([clientRandom, serverRandom]), 48);
    const keyBlock = prf(this.masterSecret, 'key expansion', Buffer.concat([serverRandom, clientRandom]), keyBlockBytes(suite));
    return protectionFromKeyBlock(suite, keyBlock);
  }

  private finishedData(label: 'client finished' | 'server finished'): Buffer {
    return prf(this.masterSecret, label, sm3(...this.transcript), FINISHED_VERIFY_DATA_BYTES);
  }

  private async readFinished(label: 'client finished' | 'server finished'): Promise<void> {
    const expected = this.finishedData(label);
    const message = await this.readHandshake(HandshakeType.finished);
    if (message.body.length !== FINISHED_VERIFY_DATA_BYTES || !timingSafeEqual(message.body, expected)) {
      throw new TlcpHandshakeError('Finished verify_data does not match', AlertDescription.decrypt_error);
    }
  }

  private verifyPeer(certificates: PeerCertificates, name: string | undefined): void {
    try {
      verifyCertificateChain(certificates.sign, { ca: this.options.ca, intermediates: certificates.chain, role: 'sign', ...(name !== undefined ? { name } : {}) });
      verifyCertificateChain(certificates.enc, { ca: this.options.ca, intermediates: certificates.chain, role: 'enc' });
      this.authorized = true;
    } catch (error) {
      this.authorizationError = error as Error;
      if (this.options.rejectUnauthorized) throw error;
    }
  }

  private ownCertificateList(): Buffer {
    const { sign, enc, chain } = this.options;
    return encodeCertificateList([sign!.certificate.der, enc!.certificate.der, ...chain.map((certificate) => certificate.der)]);
  }

  // --- client -------------------------------------------------------------------

  private async clientHandshake(): Promise<void> {
    const options = this.options;
    const clientRandom = makeRandom(Date.now(), randomBytes(28));
    this.writeHandshake(HandshakeType.client_hello, encodeClientHello({ version: TLCP_VERSION, random: clientRandom, sessionId: Buffer.alloc(0), cipherSuites: options.suites.map((suite) => suite.id) }));

    const serverHello = decodeServerHello((await this.readHandshake(HandshakeType.server_hello)).body);
    if (serverHello.version !== TLCP_VERSION) throw new TlcpHandshakeError(`server chose version 0x${serverHello.version.toString(16)}`, AlertDescription.protocol_version);
    const suite = options.suites.find((candidate) => candidate.id === serverHello.cipherSuite);
    if (!suite) throw new TlcpHandshakeError(`server chose suite 0x${serverHello.cipherSuite.toString(16)} that was not offered`, AlertDescription.illegal_parameter);
    if (serverHello.compressionMethod !== 0) throw new TlcpHandshakeError('server chose compression', AlertDescription.illegal_parameter);
    const serverRandom = serverHello.random;

    const peer = classifyPeerCertificates(decodeCertificateList((await this.readHandshake(HandshakeType.certificate)).body));
    this.verifyPeer(peer, this.extra.servername);

    const ske = decodeServerKeyExchange((await this.readHandshake(HandshakeType.server_key_exchange)).body, suite.keyExchange);
    const signed = suite.keyExchange === 'ecc' ? eccSignedParams(clientRandom, serverRandom, peer.enc.der) : Buffer.concat([clientRandom, serverRandom, ske.params!]);
    if (!sm2Verify(peer.sign.publicKey, signed, ske.signature)) throw new TlcpHandshakeError('ServerKeyExchange signature does not verify', AlertDescription.decrypt_error);

    let next = await this.readHandshake([HandshakeType.certificate_request, HandshakeType.server_hello_done]);
    let certificateRequested = false;
    if (next.type === HandshakeType.certificate_request) {
      decodeCertificateRequest(next.body);
      certificateRequested = true;
      next = await this.readHandshake(HandshakeType.server_hello_done);
    }
    if (next.body.length !== 0) throw new TlcpHandshakeError('ServerHelloDone has a body', AlertDescription.decode_error);

    if (certificateRequested) {
      if (!options.sign) throw new TlcpHandshakeError('server requested a client certificate and none is configured', AlertDescription.handshake_failure);
      this.writeHandshake(HandshakeType.certificate, this.ownCertificateList());
    }
    let premaster: Buffer;
    if (suite.keyExchange === 'ecc') {
      premaster = Buffer.concat([Buffer.from([TLCP_VERSION >> 8, TLCP_VERSION & 0xff]), randomBytes(46)]);
      this.writeHandshake(HandshakeType.client_key_exchange, encodeEccClientKeyExchange(sm2Encrypt(peer.enc.publicKey, premaster)));
    } else {
      if (!certificateRequested || !options.enc) throw new TlcpHandshakeError('ECDHE needs the client enc certificate, but the server did not request it', AlertDescription.handshake_failure);
      if (!ske.point || !isValidSm2PublicKey(ske.point)) throw new TlcpHandshakeError('server ECDHE point is not on the SM2 curve', AlertDescription.illegal_parameter);
      const ephemeral = generateSm2KeyPair();
      premaster = sm2KeyExchange({ initiator: false, self: options.enc.keyPair, selfEphemeral: ephemeral, peerPublicKey: peer.enc.publicKey, peerEphemeralPublicKey: ske.point, keyBytes: 48 });
      this.writeHandshake(HandshakeType.client_key_exchange, encodeEcdheClientKeyExchange(ephemeral.publicKey));
    }
    if (certificateRequested) {
      // CertificateVerify signs SM3(handshake_messages) (§6.4.5.9).
      const signature = sm2Sign(options.sign!.keyPair, sm3(...this.transcript));
      this.writeHandshake(HandshakeType.certificate_verify, encodeSignatureBody(signature));
    }
    const keys = this.deriveKeys(suite, premaster, clientRandom, serverRandom);
    this.writeRecord(ContentType.change_cipher_spec, Buffer.from([1]));
    this.writeProtection = keys.clientWrite;
    this.writeHandshake(HandshakeType.finished, this.finishedData('client finished'));
    await this.readChangeCipherSpec();
    this.readProtection = keys.serverWrite;
    await this.readFinished('server finished');
    this.cipherSuite = suite.name;
    this.cipherSuiteId = suite.id;
    this.peerCertificates = peer;
  }

  // --- server -------------------------------------------------------------------

  private async serverHandshake(): Promise<void> {
    const options = this.options;
    const hello = decodeClientHello((await this.readHandshake(HandshakeType.client_hello)).body);
    if (hello.version !== TLCP_VERSION) throw new TlcpHandshakeError(`client offered version 0x${hello.version.toString(16)}, TLCP is 0x0101`, AlertDescription.protocol_version);
    if (!hello.compressionMethods.includes(0)) throw new TlcpHandshakeError('client does not offer null compression', AlertDescription.illegal_parameter);
    const suite = options.suites.find((candidate) => hello.cipherSuites.includes(candidate.id));
    if (!suite) throw new TlcpHandshakeError('no cipher suite in common', AlertDescription.handshake_failure);
    const clientRandom = hello.random;
    const serverRandom = makeRandom(Date.now(), randomBytes(28));
    this.writeHandshake(HandshakeType.server_hello, encodeServerHello({ version: TLCP_VERSION, random: serverRandom, sessionId: Buffer.alloc(0), cipherSuite: suite.id, compressionMethod: 0 }));
    this.writeHandshake(HandshakeType.certificate, this.ownCertificateList());

    const sign = options.sign!;
    const enc = options.enc!;
    let ephemeral: Sm2KeyPair | undefined;
    if (suite.keyExchange === 'ecc') {
      const signature = sm2Sign(sign.keyPair, eccSignedParams(clientRandom, serverRandom, enc.certificate.der));
      this.writeHandshake(HandshakeType.server_key_exchange, encodeSignatureBody(signature));
    } else {
      ephemeral = generateSm2KeyPair();
      const params = encodeEcdheParams(ephemeral.publicKey);
      const signature = sm2Sign(sign.keyPair, Buffer.concat([clientRandom, serverRandom, params]));
      this.writeHandshake(HandshakeType.server_key_exchange, Buffer.concat([params, encodeSignatureBody(signature)]));
    }
    const requestCertificate = this.extra.requestCert === true || suite.keyExchange === 'ecdhe';
    if (requestCertificate) {
      this.writeHandshake(HandshakeType.certificate_request, encodeCertificateRequest({
        certificateTypes: Buffer.from([CLIENT_CERTIFICATE_TYPE_ECDSA_SIGN, CLIENT_CERTIFICATE_TYPE_RSA_SIGN]),
        authorities: options.ca.map((ca) => ca.subjectDer),
      }));
    }
    this.writeHandshake(HandshakeType.server_hello_done, Buffer.alloc(0));

    let peer: PeerCertificates | undefined;
    if (requestCertificate) {
      const list = decodeCertificateList((await this.readHandshake(HandshakeType.certificate)).body);
      if (list.length === 0) throw new TlcpCertificateError('client sent no certificate', AlertDescription.handshake_failure);
      peer = classifyPeerCertificates(list);
      this.verifyPeer(peer, undefined);
    }
    const cke = await this.readHandshake(HandshakeType.client_key_exchange);
    let premaster: Buffer;
    if (suite.keyExchange === 'ecc') {
      const decrypted = sm2Decrypt(enc.keyPair.privateKey, decodeEccClientKeyExchange(cke.body));
      // A bad premaster continues with a random one, so the failure shows
      // only at Finished and leaks nothing about which check failed.
      premaster = decrypted !== null && decrypted.length === 48 && decrypted.readUInt16BE(0) === TLCP_VERSION ? decrypted : randomBytes(48);
    } else {
      const point = decodeEcdheClientKeyExchange(cke.body);
      if (!isValidSm2PublicKey(point)) throw new TlcpHandshakeError('client ECDHE point is not on the SM2 curve', AlertDescription.illegal_parameter);
      premaster = sm2KeyExchange({ initiator: true, self: enc.keyPair, selfEphemeral: ephemeral!, peerPublicKey: peer!.enc.publicKey, peerEphemeralPublicKey: point, keyBytes: 48 });
    }
    if (peer) {
      const transcriptHash = sm3(...this.transcript);
      const transcriptRaw = Buffer.concat(this.transcript);
      const signature = decodeSignatureBody((await this.readHandshake(HandshakeType.certificate_verify)).body, 'CertificateVerify');
      // The standard signs SM3(handshake_messages); GmSSL signs the raw
      // messages (its SM2 API hashes them once more). Accept both.
      if (!sm2Verify(peer.sign.publicKey, transcriptHash, signature) && !sm2Verify(peer.sign.publicKey, transcriptRaw, signature)) {
        throw new TlcpHandshakeError('CertificateVerify signature does not verify', AlertDescription.decrypt_error);
      }
    }
    const keys = this.deriveKeys(suite, premaster, clientRandom, serverRandom);
    await this.readChangeCipherSpec();
    this.readProtection = keys.clientWrite;
    await this.readFinished('client finished');
    this.writeRecord(ContentType.change_cipher_spec, Buffer.from([1]));
    this.writeProtection = keys.serverWrite;
    this.writeHandshake(HandshakeType.finished, this.finishedData('server finished'));
    this.cipherSuite = suite.name;
    this.cipherSuiteId = suite.id;
    this.peerCertificates = peer;
  }
}

function toTypedError(error: unknown): Error {
  if (error instanceof TlcpAlertError) return error;
  if (error instanceof TlcpHandshakeError || error instanceof TlcpRecordError || error instanceof TlcpCertificateError) {
    return new TlcpAlertError((error as TlsModuleError & { alert: number }).alert, 'sent', error.message, { cause: error });
  }
  if (error instanceof TlcpClosedError) return error;
  if (error instanceof Error && (error as NodeJS.ErrnoException).code !== undefined) return error;
  return new TlcpAlertError(AlertDescription.internal_error, 'sent', error instanceof Error ? error.message : String(error), { cause: error });
}

/** Opens a TLCP client connection; 'secureConnect' fires after the handshake. */
export function connect(options: TlcpConnectOptions, onSecureConnect?: () => void): TlcpSocket {
  const resolved = resolveSecureOptions(options, 'client');
  let transport: Duplex;
  if (options.socket) transport = options.socket;
  else {
    if (options.port === undefined) throw new TlcpConfigError('connect: port (or socket) is required');
    transport = net.connect({ host: options.host ?? '127.0.0.1', port: options.port });
  }
  const servername = options.servername ?? (options.host !== undefined && net.isIP(options.host) === 0 ? options.host : undefined);
  const socket = new TlcpSocket(transport, 'client', resolved, servername !== undefined ? { servername } : {});
  if (onSecureConnect) socket.once('secureConnect', onSecureConnect);
  return socket;
}

/**
 * A TLCP server. Emits 'secureConnection' (TlcpSocket) after each
 * handshake, and 'tlsClientError' (error, socket) when one fails; a failing
 * client never disturbs the others.
 */
export class TlcpServer extends EventEmitter {
  readonly netServer: net.Server;
  private readonly resolved: ResolvedOptions;
  private readonly sockets = new Set<TlcpSocket>();

  constructor(private readonly options: TlcpServerOptions, onSecureConnection?: (socket: TlcpSocket) => void) {
    super();
    this.resolved = resolveSecureOptions(options, 'server');
    this.netServer = net.createServer((socket) => this.handleConnection(socket));
    this.netServer.on('error', (error) => this.emit('error', error));
    this.netServer.on('listening', () => this.emit('listening'));
    if (onSecureConnection) this.on('secureConnection', onSecureConnection);
  }

  /** Runs the server side of the handshake on any connected stream. */
  handleConnection(transport: Duplex): TlcpSocket {
    const socket = new TlcpSocket(transport, 'server', this.resolved, { requestCert: this.options.requestCert ?? false });
    this.sockets.add(socket);
    socket.once('secure', () => this.emit('secureConnection', socket));
    socket.on('error', (error: Error) => {
      if (!socket.handshakeComplete) this.emit('tlsClientError', error, socket);
    });
    socket.once('close', () => this.sockets.delete(socket));
    return socket;
  }

  listen(port: number, host = '127.0.0.1', callback?: () => void): this {
    this.netServer.listen(port, host, callback);
    return this;
  }

  address(): net.AddressInfo {
    return this.netServer.address() as net.AddressInfo;
  }

  /** Stops accepting; with `destroyConnections`, also ends open connections. */
  close(callback?: (error?: Error) => void, destroyConnections = true): void {
    if (destroyConnections) for (const socket of this.sockets) socket.destroy();
    this.netServer.close(callback);
  }
}

export function createServer(options: TlcpServerOptions, onSecureConnection?: (socket: TlcpSocket) => void): TlcpServer {
  return new TlcpServer(options, onSecureConnection);
}
