/**
 * Certificate tooling behind `admq certs`: an SM2 root CA, and per region or
 * node a sign certificate (digitalSignature, nonRepudiation) and an enc
 * certificate (keyEncipherment, dataEncipherment, keyAgreement), written as
 * PEM files; plus inspect and verify.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  certificateRole,
  certificateToPem,
  formatName,
  issueCertificateDer,
  parseCertificateDer,
  parseCertificatesPem,
  parsePrivateKeyPem,
  privateKeyToPem,
  verifyCertificateChain,
  type NameAttributes,
  type Sm2Certificate,
} from './certificates.ts';
import { TlcpConfigError } from './errors.ts';
import { generateSm2KeyPair, type Sm2KeyPair } from './sm2.ts';

export interface Issued {
  readonly certificate: Sm2Certificate;
  readonly keyPair: Sm2KeyPair;
  readonly certificatePem: string;
  readonly keyPem: string;
}

function issued(der: Buffer, keyPair: Sm2KeyPair): Issued {
  const certificate = parseCertificateDer(der);
  return { certificate, keyPair, certificatePem: certificateToPem(der), keyPem: privateKeyToPem(keyPair) };
}

export interface CreateCaOptions {
  readonly commonName: string;
  readonly organization?: string;
  /** Validity in days; default 3650. */
  readonly validDays?: number;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

export function createCa(options: CreateCaOptions): Issued {
  if (!options.commonName) throw new TlcpConfigError('createCa: commonName is required');
  const keyPair = generateSm2KeyPair();
  const subject: NameAttributes = { CN: options.commonName, ...(options.organization ? { O: options.organization } : {}) };
  const der = issueCertificateDer({
    subject,
    publicKey: keyPair.publicKey,
    issuer: { keyPair, name: subject },
    role: 'ca',
    validDays: options.validDays ?? 3650,
    ...(options.notBefore ? { notBefore: options.notBefore } : {}),
    ...(options.notAfter ? { notAfter: options.notAfter } : {}),
  });
  return issued(der, keyPair);
}

export interface IdentityOptions {
  /** Region name, e.g. "cn-east"; becomes OU and a DNS name. */
  readonly region: string;
  /** Node id within the region; absent for a region-wide identity. */
  readonly nodeId?: string;
  readonly organization?: string;
  /** Extra DNS names (hostnames the node is reached at). */
  readonly dnsNames?: readonly string[];
  /** Validity in days; default 825. */
  readonly validDays?: number;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

export interface DoubleCertificate {
  readonly sign: Issued;
  readonly enc: Issued;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The names an identity carries: CN, DNS and an admq:// URI. */
export function identityNames(options: Pick<IdentityOptions, 'region' | 'nodeId'>): { commonName: string; dnsName: string; uri: string } {
  if (!LABEL.test(options.region)) throw new TlcpConfigError(`region must be a lowercase DNS label, got ${JSON.stringify(options.region)}`);
  if (options.nodeId !== undefined && !LABEL.test(options.nodeId)) throw new TlcpConfigError(`nodeId must be a lowercase DNS label, got ${JSON.stringify(options.nodeId)}`);
  const dnsName = options.nodeId === undefined ? `${options.region}.admq` : `${options.nodeId}.${options.region}.admq`;
  const uri = options.nodeId === undefined ? `admq://${options.region}` : `admq://${options.region}/${options.nodeId}`;
  return { commonName: dnsName, dnsName, uri };
}

/** Issues the sign and enc certificates of one region or node. */
export function issueDoubleCertificate(ca: Pick<Issued, 'certificate' | 'keyPair'>, options: IdentityOptions): DoubleCertificate {
  const names = identityNames(options);
  const make = (role: 'sign' | 'enc'): Issued => {
    const keyPair = generateSm2KeyPair();
    const der = issueCertificateDer({
      subject: { CN: names.commonName, OU: options.region, ...(options.organization ? { O: options.organization } : {}) },
      publicKey: keyPair.publicKey,
      issuer: { certificate: ca.certificate, keyPair: ca.keyPair },
      role,
      dnsNames: [names.dnsName, ...(options.dnsNames ?? [])],
      uris: [names.uri],
      validDays: options.validDays ?? 825,
      ...(options.notBefore ? { notBefore: options.notBefore } : {}),
      ...(options.notAfter ? { notAfter: options.notAfter } : {}),
    });
    return issued(der, keyPair);
  };
  return { sign: make('sign'), enc: make('enc') };
}

/** Writes `<base>.crt` and `<base>.key` (key file mode 0600). */
export async function writeIssued(directory: string, base: string, value: Issued): Promise<{ certificatePath: string; keyPath: string }> {
  await mkdir(directory, { recursive: true });
  const certificatePath = join(directory, `${base}.crt`);
  const keyPath = join(directory, `${base}.key`);
  await writeFile(certificatePath, value.certificatePem);
  await writeFile(keyPath, value.keyPem, { mode: 0o600 });
  return { certificatePath, keyPath };
}

export async function loadIssued(certificatePath: string, keyPath: string): Promise<Issued> {
  const certificatePem = await readFile(certificatePath, 'utf8');
  const keyPem = await readFile(keyPath, 'utf8');
  const certificate = parseCertificatesPem(certificatePem)[0]!;
  const keyPair = parsePrivateKeyPem(keyPem);
  if (!keyPair.publicKey.equals(certificate.publicKey)) throw new TlcpConfigError(`key ${keyPath} does not match certificate ${certificatePath}`);
  return { certificate, keyPair, certificatePem, keyPem };
}

/** Human-readable summary, in the spirit of `openssl x509 -text`. */
export function describeCertificate(certificate: Sm2Certificate): string {
  const lines = [
    `Subject:       ${formatName(certificate.subject)}`,
    `Issuer:        ${formatName(certificate.issuer)}`,
    `Serial:        ${certificate.serialNumber}`,
    `Not before:    ${certificate.notBefore.toISOString()}`,
    `Not after:     ${certificate.notAfter.toISOString()}`,
    `Role:          ${certificateRole(certificate)}`,
    `Key usage:     ${certificate.keyUsage ? [...certificate.keyUsage].join(', ') : '(none)'}`,
    `CA:            ${certificate.isCa}`,
    `DNS names:     ${certificate.dnsNames.join(', ') || '(none)'}`,
    `URIs:          ${certificate.uris.join(', ') || '(none)'}`,
    `Public key:    SM2 ${certificate.publicKey.toString('hex')}`,
    `Signature alg: ${certificate.signatureAlgorithm}`,
  ];
  return lines.join('\n');
}

export interface VerifyFileResult {
  readonly ok: boolean;
  readonly message: string;
}

export async function verifyCertificateFile(certificatePath: string, caPath: string, options: { role?: 'sign' | 'enc'; name?: string; now?: Date } = {}): Promise<VerifyFileResult> {
  const certificates = parseCertificatesPem(await readFile(certificatePath));
  const ca = parseCertificatesPem(await readFile(caPath));
  const [leaf, ...rest] = certificates;
  try {
    const path = verifyCertificateChain(leaf!, { ca, intermediates: rest, ...options });
    return { ok: true, message: `OK: ${path.map((item) => formatName(item.subject)).join(' <- ')}` };
  } catch (error) {
    return { ok: false, message: `FAILED: ${(error as Error).message}` };
  }
}
