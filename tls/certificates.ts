/**
 * SM2 X.509 certificates: building and signing (node-forge cannot sign with
 * SM2, so the TBSCertificate is assembled with forge's ASN.1 helpers and
 * signed here with SM2-with-SM3, OID 1.2.156.10197.1.501), parsing, PEM I/O,
 * chain validation and the sign/enc classification TLCP needs.
 */
import { randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { AlertDescription, TlcpCertificateError, TlcpConfigError } from './errors.ts';
import { derToBuffer, fromDerStrict, isValidSm2PublicKey, sm2KeyPairFromPrivate, sm2Sign, sm2Verify, type Sm2KeyPair } from './sm2.ts';
import { sm3 } from './sm3.ts';

export const OID_SM2_WITH_SM3 = '1.2.156.10197.1.501';
export const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
export const OID_SM2_CURVE = '1.2.156.10197.1.301';
const OID_KEY_USAGE = '2.5.29.15';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_SUBJECT_KEY_ID = '2.5.29.14';
const OID_AUTHORITY_KEY_ID = '2.5.29.35';

const NAME_OIDS: Record<string, string> = {
  CN: '2.5.4.3',
  C: '2.5.4.6',
  L: '2.5.4.7',
  ST: '2.5.4.8',
  O: '2.5.4.10',
  OU: '2.5.4.11',
};
const NAME_BY_OID = Object.fromEntries(Object.entries(NAME_OIDS).map(([key, oid]) => [oid, key]));

/** Key usage bits, RFC 5280 §4.2.1.3 (bit 0 is the most significant). */
export const KEY_USAGE_BITS = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'] as const;
export type KeyUsage = (typeof KEY_USAGE_BITS)[number];

/** What a TLCP certificate is for, decided by key usage (never by position). */
export type CertificateRole = 'sign' | 'enc' | 'ca';

export const SIGN_KEY_USAGE: readonly KeyUsage[] = ['digitalSignature', 'nonRepudiation'];
export const ENC_KEY_USAGE: readonly KeyUsage[] = ['keyEncipherment', 'dataEncipherment', 'keyAgreement'];
const CA_KEY_USAGE: readonly KeyUsage[] = ['digitalSignature', 'keyCertSign', 'cRLSign'];

export interface NameAttributes {
  CN?: string;
  O?: string;
  OU?: string;
  C?: string;
  ST?: string;
  L?: string;
}

export interface Sm2Certificate {
  readonly der: Buffer;
  readonly tbs: Buffer;
  readonly serialNumber: string;
  readonly subject: NameAttributes;
  readonly issuer: NameAttributes;
  readonly subjectDer: Buffer;
  readonly issuerDer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: Buffer;
  /** Undefined when the certificate has no keyUsage extension. */
  readonly keyUsage: ReadonlySet<KeyUsage> | undefined;
  readonly isCa: boolean;
  readonly dnsNames: readonly string[];
  readonly uris: readonly string[];
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
}

const { asn1 } = forge;
const UNIVERSAL = asn1.Class.UNIVERSAL;

function oid(value: string): forge.asn1.Asn1 {
  return asn1.create(UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(value).getBytes());
}

function seq(items: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return asn1.create(UNIVERSAL, asn1.Type.SEQUENCE, true, items);
}

function octets(bytes: Buffer): forge.asn1.Asn1 {
  return asn1.create(UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes.toString('binary'));
}

function bitString(bytes: Buffer, unusedBits = 0): forge.asn1.Asn1 {
  return asn1.create(UNIVERSAL, asn1.Type.BITSTRING, false, String.fromCharCode(unusedBits) + bytes.toString('binary'));
}

function nameToAsn1(name: NameAttributes): forge.asn1.Asn1 {
  const rdns: forge.asn1.Asn1[] = [];
  for (const key of ['C', 'ST', 'L', 'O', 'OU', 'CN'] as const) {
    const value = name[key];
    if (value === undefined) continue;
    const type = key === 'C' ? asn1.Type.PRINTABLESTRING : asn1.Type.UTF8;
    const encoded = key === 'C' ? value : forge.util.encodeUtf8(value);
    rdns.push(asn1.create(UNIVERSAL, asn1.Type.SET, true, [seq([oid(NAME_OIDS[key]!), asn1.create(UNIVERSAL, type, false, encoded)])]));
  }
  return seq(rdns);
}

function time(date: Date): forge.asn1.Asn1 {
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after.
  return date.getUTCFullYear() < 2050
    ? asn1.create(UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

function extension(id: string, critical: boolean, value: forge.asn1.Asn1): forge.asn1.Asn1 {
  const items = [oid(id)];
  if (critical) items.push(asn1.create(UNIVERSAL, asn1.Type.BOOLEAN, false, String.fromCharCode(0xff)));
  items.push(octets(derToBuffer(value)));
  return seq(items);
}

function keyUsageBits(usages: readonly KeyUsage[]): forge.asn1.Asn1 {
  let bits = 0;
  for (const usage of usages) bits |= 1 << (15 - KEY_USAGE_BITS.indexOf(usage));
  const bytes = Buffer.from([bits >> 8, bits & 0xff]);
  const used = bytes[1] === 0 ? bytes.subarray(0, 1) : bytes;
  let unused = 0;
  const last = used[used.length - 1]!;
  while (unused < 8 && (last & (1 << unused)) === 0) unused++;
  return bitString(used, unused === 8 ? 0 : unused);
}

function publicKeyInfo(publicKey: Buffer): forge.asn1.Asn1 {
  return seq([seq([oid(OID_EC_PUBLIC_KEY), oid(OID_SM2_CURVE)]), bitString(publicKey)]);
}

function keyIdentifier(publicKey: Buffer): Buffer {
  // RFC 5280 §4.2.1.2 method 1 uses SHA-1; any stable 160-bit value is
  // allowed, and SM3 keeps the whole module on national algorithms.
  return sm3(publicKey).subarray(0, 20);
}

export interface IssueOptions {
  readonly subject: NameAttributes;
  readonly publicKey: Buffer;
  readonly issuer: { readonly certificate?: Sm2Certificate; readonly keyPair: Sm2KeyPair; readonly name?: NameAttributes };
  readonly role: CertificateRole;
  readonly dnsNames?: readonly string[];
  readonly uris?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly validDays?: number;
}

/** Builds, signs (SM2-with-SM3, default ID) and returns a DER certificate. */
export function issueCertificateDer(options: IssueOptions): Buffer {
  if (!isValidSm2PublicKey(options.publicKey)) throw new TlcpConfigError('issueCertificate: publicKey is not a valid SM2 point');
  const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  const validDays = options.validDays ?? 365;
  if (!(validDays > 0)) throw new TlcpConfigError(`issueCertificate: validDays must be > 0, got ${validDays}`);
  const notAfter = options.notAfter ?? new Date(notBefore.getTime() + validDays * 86_400_000);
  const issuerName = options.issuer.certificate ? undefined : (options.issuer.name ?? options.subject);
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  if (serial[0] === 0) serial[0] = 1;
  const usages = options.role === 'ca' ? CA_KEY_USAGE : options.role === 'sign' ? SIGN_KEY_USAGE : ENC_KEY_USAGE;
  const extensions = [
    extension(OID_BASIC_CONSTRAINTS, true, seq(options.role === 'ca' ? [asn1.create(UNIVERSAL, asn1.Type.BOOLEAN, false, String.fromCharCode(0xff))] : [])),
    extension(OID_KEY_USAGE, true, keyUsageBits(usages)),
    extension(OID_SUBJECT_KEY_ID, false, octets(keyIdentifier(options.publicKey))),
    extension(OID_AUTHORITY_KEY_ID, false, seq([asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, keyIdentifier(options.issuer.keyPair.publicKey).toString('binary'))])),
  ];
  const altNames = [
    ...(options.dnsNames ?? []).map((name) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, name)),
    ...(options.uris ?? []).map((uri) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 6, false, uri)),
  ];
  if (altNames.length > 0) extensions.push(extension(OID_SUBJECT_ALT_NAME, false, seq(altNames)));
  const issuerAsn1 = options.issuer.certificate ? fromDerStrict(options.issuer.certificate.subjectDer) : nameToAsn1(issuerName!);
  const tbs = seq([
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [asn1.create(UNIVERSAL, asn1.Type.INTEGER, false, String.fromCharCode(2))]),
    asn1.create(UNIVERSAL, asn1.Type.INTEGER, false, serial.toString('binary')),
    seq([oid(OID_SM2_WITH_SM3)]),
    issuerAsn1,
    seq([time(notBefore), time(notAfter)]),
    nameToAsn1(options.subject),
    publicKeyInfo(options.publicKey),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 3, true, [seq(extensions)]),
  ]);
  const tbsDer = derToBuffer(tbs);
  const signature = sm2Sign(options.issuer.keyPair, tbsDer);
  return derToBuffer(seq([fromDerStrict(tbsDer), seq([oid(OID_SM2_WITH_SM3)]), bitString(signature)]));
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

function fail(message: string, cause?: unknown): never {
  throw new TlcpCertificateError(message, AlertDescription.bad_certificate, { cause });
}

function children(node: forge.asn1.Asn1 | undefined, what: string): forge.asn1.Asn1[] {
  if (!node || !Array.isArray(node.value)) fail(`certificate: ${what} is not a constructed value`);
  return node.value as forge.asn1.Asn1[];
}

function primitive(node: forge.asn1.Asn1 | undefined, what: string): Buffer {
  if (!node || typeof node.value !== 'string') fail(`certificate: ${what} is not a primitive value`);
  return Buffer.from(node.value as string, 'binary');
}

function oidOf(node: forge.asn1.Asn1 | undefined, what: string): string {
  if (!node || node.type !== asn1.Type.OID) fail(`certificate: ${what} is not an OID`);
  return asn1.derToOid(forge.util.createBuffer(primitive(node, what).toString('binary')));
}

function parseName(node: forge.asn1.Asn1 | undefined): NameAttributes {
  const name: Record<string, string> = {};
  for (const rdn of children(node, 'name')) {
    for (const attribute of children(rdn, 'name attribute')) {
      const [typeNode, valueNode] = children(attribute, 'name attribute');
      const key = NAME_BY_OID[oidOf(typeNode, 'name attribute type')];
      if (key === undefined) continue;
      const raw = primitive(valueNode, 'name attribute value');
      name[key] = valueNode?.type === asn1.Type.UTF8 ? raw.toString('utf8') : raw.toString('latin1');
    }
  }
  return name as NameAttributes;
}

function parseTime(node: forge.asn1.Asn1 | undefined): Date {
  const text = primitive(node, 'time').toString('latin1');
  const date = node?.type === asn1.Type.UTCTIME ? asn1.utcTimeToDate(text) : asn1.generalizedTimeToDate(text);
  if (Number.isNaN(date.getTime())) fail('certificate: invalid time');
  return date;
}

export function formatName(name: NameAttributes): string {
  return (['C', 'ST', 'L', 'O', 'OU', 'CN'] as const).filter((key) => name[key] !== undefined).map((key) => `${key}=${name[key]}`).join(', ');
}

export function parseCertificateDer(der: Buffer): Sm2Certificate {
  let root: forge.asn1.Asn1;
  try {
    root = fromDerStrict(der);
  } catch (error) {
    fail('certificate: not valid DER', error);
  }
  const [tbsNode, algorithmNode, signatureNode] = children(root, 'Certificate');
  const tbsFields = children(tbsNode, 'TBSCertificate');
  let index = 0;
  if (tbsFields[0]?.tagClass === asn1.Class.CONTEXT_SPECIFIC && tbsFields[0].type === 0) index = 1;
  const serialNode = tbsFields[index];
  const issuerNode = tbsFields[index + 2];
  const validity = children(tbsFields[index + 3], 'validity');
  const subjectNode = tbsFields[index + 4];
  const spki = children(tbsFields[index + 5], 'subjectPublicKeyInfo');
  const [keyAlgorithm, keyCurve] = children(spki[0], 'public key algorithm');
  if (oidOf(keyAlgorithm, 'public key algorithm') !== OID_EC_PUBLIC_KEY || oidOf(keyCurve, 'curve') !== OID_SM2_CURVE) {
    throw new TlcpCertificateError('certificate: public key is not an SM2 key', AlertDescription.unsupported_certificate);
  }
  const keyBits = primitive(spki[1], 'public key');
  const publicKey = keyBits.subarray(1);
  if (keyBits[0] !== 0 || !isValidSm2PublicKey(publicKey)) fail('certificate: public key is not a valid SM2 point');

  let keyUsage: Set<KeyUsage> | undefined;
  let isCa = false;
  const dnsNames: string[] = [];
  const uris: string[] = [];
  for (const field of tbsFields.slice(index + 6)) {
    if (field.tagClass !== asn1.Class.CONTEXT_SPECIFIC || field.type !== 3) continue;
    for (const ext of children(children(field, 'extensions')[0], 'extensions')) {
      const parts = children(ext, 'extension');
      const id = oidOf(parts[0], 'extension id');
      const value = fromDerStrict(primitive(parts[parts.length - 1], 'extension value'));
      if (id === OID_KEY_USAGE) {
        const bits = primitive(value, 'keyUsage');
        keyUsage = new Set();
        KEY_USAGE_BITS.forEach((usage, bit) => {
          const byte = bits[1 + (bit >> 3)] ?? 0;
          if (byte & (0x80 >> (bit & 7))) keyUsage!.add(usage);
        });
      } else if (id === OID_BASIC_CONSTRAINTS) {
        const items = children(value, 'basicConstraints');
        isCa = items[0]?.type === asn1.Type.BOOLEAN && primitive(items[0], 'cA')[0] !== 0;
      } else if (id === OID_SUBJECT_ALT_NAME) {
        for (const general of children(value, 'subjectAltName')) {
          if (general.tagClass !== asn1.Class.CONTEXT_SPECIFIC) continue;
          if (general.type === 2) dnsNames.push(primitive(general, 'dNSName').toString('latin1'));
          if (general.type === 6) uris.push(primitive(general, 'URI').toString('latin1'));
        }
      }
    }
  }
  const signatureBits = primitive(signatureNode, 'signature');
  return {
    der: Buffer.from(der),
    tbs: derToBuffer(tbsNode!),
    serialNumber: primitive(serialNode, 'serialNumber').toString('hex'),
    issuer: parseName(issuerNode),
    subject: parseName(subjectNode),
    issuerDer: derToBuffer(issuerNode!),
    subjectDer: derToBuffer(subjectNode!),
    notBefore: parseTime(validity[0]),
    notAfter: parseTime(validity[1]),
    publicKey: Buffer.from(publicKey),
    keyUsage,
    isCa,
    dnsNames,
    uris,
    signatureAlgorithm: oidOf(children(algorithmNode, 'signatureAlgorithm')[0], 'signature algorithm'),
    signature: signatureBits.subarray(1),
  };
}

/** Sign or enc, decided by key usage as GM/T 0015 assigns it. */
export function certificateRole(certificate: Sm2Certificate): CertificateRole | 'unknown' {
  if (certificate.isCa) return 'ca';
  const usage = certificate.keyUsage;
  if (usage === undefined) return 'unknown';
  const enc = usage.has('keyEncipherment') || usage.has('dataEncipherment') || usage.has('keyAgreement');
  const sign = usage.has('digitalSignature') || usage.has('nonRepudiation');
  if (enc && !sign) return 'enc';
  if (sign && !enc) return 'sign';
  return 'unknown';
}

// ---------------------------------------------------------------------------
// PEM
// ---------------------------------------------------------------------------

export function toPem(label: string, der: Buffer): string {
  const body = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

export function fromPemAll(text: string, label: string): Buffer[] {
  const pattern = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  return [...text.matchAll(pattern)].map((match) => Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64'));
}

export function certificateToPem(certificate: Sm2Certificate | Buffer): string {
  return toPem('CERTIFICATE', Buffer.isBuffer(certificate) ? certificate : certificate.der);
}

export function parseCertificatesPem(text: string | Buffer): Sm2Certificate[] {
  const ders = fromPemAll(text.toString(), 'CERTIFICATE');
  if (ders.length === 0) throw new TlcpCertificateError('no CERTIFICATE block in PEM input');
  return ders.map(parseCertificateDer);
}

/** PKCS#8 PrivateKeyInfo wrapping an RFC 5915 ECPrivateKey on the SM2 curve. */
export function privateKeyToPem(keyPair: Sm2KeyPair): string {
  const ecPrivateKey = seq([
    asn1.create(UNIVERSAL, asn1.Type.INTEGER, false, String.fromCharCode(1)),
    octets(keyPair.privateKey),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 1, true, [bitString(keyPair.publicKey)]),
  ]);
  const info = seq([
    asn1.create(UNIVERSAL, asn1.Type.INTEGER, false, String.fromCharCode(0)),
    seq([oid(OID_EC_PUBLIC_KEY), oid(OID_SM2_CURVE)]),
    octets(derToBuffer(ecPrivateKey)),
  ]);
  return toPem('PRIVATE KEY', derToBuffer(info));
}

/** Reads PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY" PEM holding an SM2 key. */
export function parsePrivateKeyPem(text: string | Buffer): Sm2KeyPair {
  const source = text.toString();
  try {
    const pkcs8 = fromPemAll(source, 'PRIVATE KEY')[0];
    let ecDer: Buffer;
    if (pkcs8) {
      const fields = children(fromDerStrict(pkcs8), 'PrivateKeyInfo');
      const algorithm = children(fields[1], 'algorithm');
      if (oidOf(algorithm[0], 'algorithm') !== OID_EC_PUBLIC_KEY || (algorithm[1] && oidOf(algorithm[1], 'curve') !== OID_SM2_CURVE)) {
        throw new TlcpConfigError('private key is not an SM2 key');
      }
      ecDer = primitive(fields[2], 'privateKey');
    } else {
      const sec1 = fromPemAll(source, 'EC PRIVATE KEY')[0];
      if (!sec1) throw new TlcpConfigError('no PRIVATE KEY or EC PRIVATE KEY block in PEM input');
      ecDer = sec1;
    }
    const ecFields = children(fromDerStrict(ecDer), 'ECPrivateKey');
    const scalar = primitive(ecFields[1], 'private scalar');
    const padded = Buffer.concat([Buffer.alloc(Math.max(0, 32 - scalar.length)), scalar]);
    return sm2KeyPairFromPrivate(padded);
  } catch (error) {
    if (error instanceof TlcpConfigError) throw error;
    throw new TlcpConfigError('private key PEM could not be parsed', { cause: error });
  }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/**
 * Signatures already found good, keyed by SM3 over exactly the verified
 * inputs (length-prefixed issuer key, length-prefixed tbs, signature).
 * A certificate signature is a pure function of those bytes, so a hit
 * needs no SM2 work; only successes are remembered (a bad signature is
 * checked again every time). Validity dates, names and roles are not
 * cached: callers check them on every use. Bounded, oldest dropped first.
 */
export const VERIFIED_SIGNATURES_MAX = 4096;
const verifiedSignatures = new Set<string>();

export function verifyCertificateSignature(certificate: Sm2Certificate, issuer: Sm2Certificate): boolean {
  if (certificate.signatureAlgorithm !== OID_SM2_WITH_SM3) return false;
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32BE(issuer.publicKey.length, 0);
  lengths.writeUInt32BE(certificate.tbs.length, 4);
  const key = sm3(lengths, issuer.publicKey, certificate.tbs, certificate.signature).toString('base64');
  if (verifiedSignatures.has(key)) return true;
  if (!sm2Verify(issuer.publicKey, certificate.tbs, certificate.signature)) return false;
  if (verifiedSignatures.size >= VERIFIED_SIGNATURES_MAX) verifiedSignatures.delete(verifiedSignatures.values().next().value!);
  verifiedSignatures.add(key);
  return true;
}

/** For tests and key rotation: forget every cached signature result. */
export function clearVerifiedSignatureCache(): void {
  verifiedSignatures.clear();
}

function nameMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  if (p === n) return true;
  // A single leading wildcard label, RFC 6125 §6.4.3.
  if (p.startsWith('*.')) {
    const dot = n.indexOf('.');
    return dot > 0 && n.slice(dot + 1) === p.slice(2);
  }
  return false;
}

/** DNS and URI subjectAltNames first; the CN only when there are no DNS names. */
export function certificateMatchesName(certificate: Sm2Certificate, name: string): boolean {
  if (certificate.dnsNames.some((pattern) => nameMatches(pattern, name))) return true;
  if (certificate.uris.includes(name)) return true;
  return certificate.dnsNames.length === 0 && certificate.subject.CN !== undefined && nameMatches(certificate.subject.CN, name);
}

export interface ChainCheckOptions {
  /** Trust anchors. */
  readonly ca: readonly Sm2Certificate[];
  /** Extra certificates the peer sent, used to build the path. */
  readonly intermediates?: readonly Sm2Certificate[];
  readonly now?: Date;
  /** Required role of the leaf: 'sign' or 'enc'. */
  readonly role?: 'sign' | 'enc';
  /** Name the leaf must carry (DNS/URI SAN or CN). */
  readonly name?: string;
  readonly depthMax?: number;
}

/**
 * Validates `leaf` up to one of the trust anchors: signatures, validity,
 * CA flags on issuers, the leaf's key usage and name. Throws
 * TlcpCertificateError whose `alert` is the TLCP alert to send.
 */
export function verifyCertificateChain(leaf: Sm2Certificate, options: ChainCheckOptions): Sm2Certificate[] {
  const now = options.now ?? new Date();
  const depthMax = options.depthMax ?? 5;
  if (options.role !== undefined && certificateRole(leaf) !== options.role) {
    throw new TlcpCertificateError(`certificate ${formatName(leaf.subject)} has key usage of role ${certificateRole(leaf)}, expected ${options.role}`, AlertDescription.unsupported_certificate);
  }
  if (options.name !== undefined && !certificateMatchesName(leaf, options.name)) {
    throw new TlcpCertificateError(`certificate ${formatName(leaf.subject)} does not match name ${options.name}`, AlertDescription.bad_certificate);
  }
  const path = [leaf];
  let current = leaf;
  for (let depth = 0; depth <= depthMax; depth++) {
    if (now < current.notBefore || now > current.notAfter) {
      throw new TlcpCertificateError(`certificate ${formatName(current.subject)} is not valid at ${now.toISOString()} (valid ${current.notBefore.toISOString()} to ${current.notAfter.toISOString()})`, AlertDescription.certificate_expired);
    }
    const anchor = options.ca.find((ca) => ca.der.equals(current.der));
    if (anchor) return path;
    const issuer = [...options.ca, ...(options.intermediates ?? [])].find((candidate) => candidate.subjectDer.equals(current.issuerDer) && verifyCertificateSignature(current, candidate));
    if (!issuer) {
      const known = [...options.ca, ...(options.intermediates ?? [])].some((candidate) => candidate.subjectDer.equals(current.issuerDer));
      throw new TlcpCertificateError(
        known ? `certificate ${formatName(current.subject)} has a bad signature` : `certificate ${formatName(current.subject)} was issued by an unknown CA ${formatName(current.issuer)}`,
        known ? AlertDescription.bad_certificate : AlertDescription.unknown_ca,
      );
    }
    if (!issuer.isCa || (issuer.keyUsage !== undefined && !issuer.keyUsage.has('keyCertSign'))) {
      throw new TlcpCertificateError(`issuer ${formatName(issuer.subject)} is not a CA`, AlertDescription.bad_certificate);
    }
    path.push(issuer);
    current = issuer;
  }
  throw new TlcpCertificateError(`certificate chain longer than ${depthMax}`, AlertDescription.bad_certificate);
}
