// Signing and verifying reports with a region's SM2 sign certificate: SM2 signatures with
// SM3 (the standard's Z value with the default ID 1234567812345678, as TLCP signs), over
// canonical JSON. The JSON report carries its signature; the CSV and HTML renderings get a
// detached `.sig` file each, bound to the file's SM3 digest and to the JSON report's.
//
// Verification needs nothing from the signer but the file: the certificates travel in the
// signature, and they must chain to the CA the verifier trusts (the deployment's ca.crt).
// The chain is checked at the signing time (a report must stay verifiable after its
// certificate expires); a signing time outside the certificate's validity fails.
import { createHash } from 'node:crypto';
import {
  certificateToPem,
  formatName,
  parseCertificatesPem,
  parsePrivateKeyPem,
  sm2Sign,
  sm2Verify,
  verifyCertificateChain,
  type Sm2Certificate,
  type Sm2KeyPair,
} from '../tls/index.ts';
import { ComplianceError, ComplianceErrorCode } from './errors.ts';

export const SIGNATURE_ALGORITHM = 'SM2-with-SM3';
export const DETACHED_FORMAT = 'admq-signature';

/** JSON with object keys sorted and no whitespace: the bytes that are signed. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ComplianceError(ComplianceErrorCode.ReportFormat, `canonical JSON: ${value} is not a finite number`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new ComplianceError(ComplianceErrorCode.ReportFormat, `canonical JSON: a ${typeof value} cannot be signed`);
}

export function sm3Hex(bytes: Buffer | string): string {
  return createHash('sm3').update(bytes).digest('hex');
}

export interface Signer {
  region: string;
  keyPair: Sm2KeyPair;
  /** The sign certificate first, then any intermediates, as PEM. */
  certificatesPem: string[];
  certificate: Sm2Certificate;
}

/**
 * The region's signer from its sign certificate and key (admq certs: `{region}-sign.crt`,
 * `{region}-sign.key`). The certificate must be a sign certificate naming the region (OU),
 * and the key must be its key.
 */
export function loadSigner(region: string, certificatePem: string, keyPem: string): Signer {
  const certificates = parseCertificatesPem(certificatePem);
  const leaf = certificates[0];
  if (!leaf) throw new ComplianceError(ComplianceErrorCode.Report, 'the sign certificate file holds no certificate');
  const keyPair = parsePrivateKeyPem(keyPem);
  if (!keyPair.publicKey.equals(leaf.publicKey)) throw new ComplianceError(ComplianceErrorCode.Report, `the key does not belong to the certificate ${formatName(leaf.subject)}`);
  if (leaf.subject.OU !== region) throw new ComplianceError(ComplianceErrorCode.Report, `the certificate ${formatName(leaf.subject)} names region "${leaf.subject.OU ?? ''}", not "${region}"`);
  if (!leaf.keyUsage?.has('digitalSignature')) throw new ComplianceError(ComplianceErrorCode.Report, `the certificate ${formatName(leaf.subject)} is not a sign certificate (no digitalSignature key usage)`);
  return { region, keyPair, certificate: leaf, certificatesPem: certificates.map((c) => certificateToPem(c)) };
}

export interface SignatureBlock {
  algorithm: typeof SIGNATURE_ALGORITHM;
  region: string;
  signedAtMs: number;
  /** Signer certificate first, then intermediates (PEM). */
  certificates: string[];
  /** SM3 of the signed bytes (canonical JSON), hex: what the signature covers. */
  digestSm3: string;
  /** SM2 signature (DER), base64. */
  value: string;
}

export interface SignedReport<R = unknown> {
  report: R;
  signature: SignatureBlock;
}

export interface DetachedSignature {
  format: typeof DETACHED_FORMAT;
  version: 1;
  /** The file's name (the signature does not depend on where it is). */
  file: string;
  fileSm3: string;
  reportId: string;
  /** digestSm3 of the signed JSON report this file was rendered from. */
  reportDigestSm3: string;
  signature: SignatureBlock;
}

/** The bytes a signature covers: everything but the digest and the signature value. */
function signedBytes(content: Record<string, unknown>, block: Omit<SignatureBlock, 'digestSm3' | 'value'>): Buffer {
  const leaf = parseCertificatesPem(block.certificates[0] ?? '')[0];
  return Buffer.from(canonicalJson({ ...content, signature: { algorithm: block.algorithm, region: block.region, signedAtMs: block.signedAtMs, certificateSm3: leaf ? sm3Hex(leaf.der) : '' } }), 'utf8');
}

function sign(content: Record<string, unknown>, signer: Signer, signedAtMs: number): SignatureBlock {
  const block = { algorithm: SIGNATURE_ALGORITHM, region: signer.region, signedAtMs, certificates: signer.certificatesPem } as const;
  const bytes = signedBytes(content, block);
  return { ...block, certificates: [...signer.certificatesPem], digestSm3: sm3Hex(bytes), value: sm2Sign(signer.keyPair, bytes).toString('base64') };
}

export function signReport<R extends { id: string; generatedBy: string }>(report: R, signer: Signer, signedAtMs: number): SignedReport<R> {
  if (report.generatedBy !== signer.region) throw new ComplianceError(ComplianceErrorCode.Report, `the report names ${report.generatedBy} as its region, the signer is ${signer.region}`);
  return { report, signature: sign({ report }, signer, signedAtMs) };
}

export function signDetached(file: string, bytes: Buffer, signed: SignedReport<{ id: string }>, signer: Signer, signedAtMs: number): DetachedSignature {
  const content: Omit<DetachedSignature, 'signature'> = { format: DETACHED_FORMAT, version: 1, file, fileSm3: sm3Hex(bytes), reportId: signed.report.id, reportDigestSm3: signed.signature.digestSm3 };
  return { ...content, signature: sign(content as unknown as Record<string, unknown>, signer, signedAtMs) };
}

export interface Verification {
  ok: boolean;
  /** What failed, one line each; empty when ok. */
  problems: string[];
  region: string | null;
  signer: string | null;
  signedAtMs: number | null;
  digestSm3: string | null;
  /** The chain from the signer to the trusted CA, as subject names. */
  chain: string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkBlock(content: Record<string, unknown>, block: unknown, caPem: string, problems: string[]): Verification {
  const result: Verification = { ok: false, problems, region: null, signer: null, signedAtMs: null, digestSm3: null, chain: [] };
  if (!isRecord(block)) {
    problems.push('no signature');
    return result;
  }
  const { algorithm, region, signedAtMs, certificates, digestSm3, value } = block;
  if (algorithm !== SIGNATURE_ALGORITHM) problems.push(`signature algorithm ${JSON.stringify(algorithm)} (expected ${SIGNATURE_ALGORITHM})`);
  if (typeof region !== 'string' || typeof signedAtMs !== 'number' || !Array.isArray(certificates) || !certificates.every((c) => typeof c === 'string') || typeof digestSm3 !== 'string' || typeof value !== 'string') {
    problems.push('the signature block is incomplete (region, signedAtMs, certificates, digestSm3, value)');
    return result;
  }
  result.region = region;
  result.signedAtMs = signedAtMs;
  result.digestSm3 = digestSm3;
  let chain: Sm2Certificate[];
  try {
    chain = (certificates as string[]).flatMap((c) => parseCertificatesPem(c));
  } catch (error) {
    problems.push(`the signer's certificates do not parse: ${(error as Error).message}`);
    return result;
  }
  const leaf = chain[0];
  if (!leaf) {
    problems.push('the signature carries no certificate');
    return result;
  }
  result.signer = formatName(leaf.subject);
  if (leaf.subject.OU !== region) problems.push(`the certificate ${formatName(leaf.subject)} names region "${leaf.subject.OU ?? ''}", the signature says "${region}"`);
  try {
    const ca = parseCertificatesPem(caPem);
    if (ca.length === 0) throw new Error('the CA file holds no certificate');
    const path = verifyCertificateChain(leaf, { ca, intermediates: chain.slice(1), role: 'sign', now: new Date(signedAtMs) });
    result.chain = path.map((c) => formatName(c.subject));
  } catch (error) {
    problems.push(`certificate chain: ${(error as Error).message}`);
  }
  const bytes = signedBytes(content, { algorithm: SIGNATURE_ALGORITHM, region, signedAtMs, certificates: certificates as string[] });
  const digest = sm3Hex(bytes);
  if (digest !== digestSm3) problems.push(`the content does not match its digest (SM3 ${digest}, signed ${digestSm3}): it was changed after signing`);
  if (!sm2Verify(leaf.publicKey, bytes, Buffer.from(value, 'base64'))) problems.push(`the SM2 signature does not verify with ${formatName(leaf.subject)}'s key`);
  result.ok = problems.length === 0;
  return result;
}

/** Verifies a signed JSON report (the file's parsed content) against the trusted CA (PEM). */
export function verifySignedReport(doc: unknown, caPem: string): Verification {
  const problems: string[] = [];
  if (!isRecord(doc) || !isRecord(doc.report)) {
    problems.push('not a signed admq report (no "report" object)');
    return { ok: false, problems, region: null, signer: null, signedAtMs: null, digestSm3: null, chain: [] };
  }
  const result = checkBlock({ report: doc.report }, doc.signature, caPem, problems);
  if (doc.report.generatedBy !== result.region && result.region !== null) {
    problems.push(`the report names ${String(doc.report.generatedBy)} as its region, the signature ${result.region}`);
    result.ok = false;
  }
  return result;
}

/** Verifies a file against its detached signature (the .sig file's parsed content). */
export function verifyDetached(fileBytes: Buffer, doc: unknown, caPem: string): Verification {
  const problems: string[] = [];
  if (!isRecord(doc) || doc.format !== DETACHED_FORMAT || doc.version !== 1) {
    problems.push(`not an admq detached signature (format ${DETACHED_FORMAT}, version 1)`);
    return { ok: false, problems, region: null, signer: null, signedAtMs: null, digestSm3: null, chain: [] };
  }
  const { file, fileSm3, reportId, reportDigestSm3 } = doc;
  const content = { format: DETACHED_FORMAT, version: 1, file, fileSm3, reportId, reportDigestSm3 };
  const actual = sm3Hex(fileBytes);
  if (actual !== fileSm3) problems.push(`the file does not match the signature (SM3 ${actual}, signed ${String(fileSm3)}): it was changed after signing`);
  return checkBlock(content, doc.signature, caPem, problems);
}
