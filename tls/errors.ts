/**
 * Typed errors of the tls/ module. Every class carries a stable `code` that
 * callers match on (never on the message), a `name`, and an optional `cause`.
 */

export type TlsErrorCode =
  | 'ADMQ_ERR_TLCP_ALERT'
  | 'ADMQ_ERR_TLCP_CERT'
  | 'ADMQ_ERR_TLCP_HANDSHAKE'
  | 'ADMQ_ERR_TLCP_RECORD'
  | 'ADMQ_ERR_TLCP_CRYPTO'
  | 'ADMQ_ERR_TLCP_CONFIG'
  | 'ADMQ_ERR_TLCP_CLOSED'
  | 'ADMQ_ERR_TRANSPORT_CONFIG';

export abstract class TlsModuleError extends Error {
  abstract readonly code: TlsErrorCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** TLCP alert descriptions (GB/T 38636-2020 §6.3.4.2 / RFC 5246 §7.2). */
export const AlertDescription = {
  close_notify: 0,
  unexpected_message: 10,
  bad_record_mac: 20,
  decryption_failed: 21,
  record_overflow: 22,
  decompression_failure: 30,
  handshake_failure: 40,
  bad_certificate: 42,
  unsupported_certificate: 43,
  certificate_revoked: 44,
  certificate_expired: 45,
  certificate_unknown: 46,
  illegal_parameter: 47,
  unknown_ca: 48,
  access_denied: 49,
  decode_error: 50,
  decrypt_error: 51,
  protocol_version: 70,
  insufficient_security: 71,
  internal_error: 80,
  user_canceled: 90,
  no_renegotiation: 100,
  unsupported_site2site: 200,
  no_area: 201,
  unsupported_areatype: 202,
  bad_ibcparam: 203,
  unsupported_ibcparam: 204,
  identity_need: 205,
} as const;

export type AlertName = keyof typeof AlertDescription;

export function alertName(description: number): string {
  for (const [name, value] of Object.entries(AlertDescription)) {
    if (value === description) return name;
  }
  return `unknown(${description})`;
}

/**
 * A fatal protocol failure. `alert` is the description that was sent to the
 * peer (`direction: 'sent'`) or received from it (`direction: 'received'`).
 */
export class TlcpAlertError extends TlsModuleError {
  readonly code = 'ADMQ_ERR_TLCP_ALERT' as const;
  override readonly name = 'TlcpAlertError';
  constructor(
    readonly alert: number,
    readonly direction: 'sent' | 'received',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${direction} alert ${alertName(alert)}: ${message}`, options);
  }
}

/** A certificate failed to parse, chain, or match its expected usage/name. */
export class TlcpCertificateError extends TlsModuleError {
  readonly code = 'ADMQ_ERR_TLCP_CERT' as const;
  override readonly name = 'TlcpCertificateError';
  constructor(
    message: string,
    readonly alert: number = AlertDescription.bad_certificate,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The peer broke the handshake rules (wrong order, bad encoding, ...). */
export class TlcpHandshakeError extends TlsModuleError {
  readonly code = 'ADMQ_ERR_TLCP_HANDSHAKE' as const;
  override readonly name = 'TlcpHandshakeError';
  constructor(
    message: string,
    readonly alert: number = AlertDescription.handshake_failure,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A record failed framing, MAC/tag or padding checks. */
export class TlcpRecordError extends TlsModuleError {
  readonly code = 'ADMQ_ERR_TLCP_RECORD' as const;
  override readonly name = 'TlcpRecordError';
  constructor(
    message: string,
    readonly alert: number = AlertDescription.bad_record_mac,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A cryptographic primitive rejected its input (bad key, bad ciphertext). */
export class TlcpCryptoError extends TlsModuleError {
  readonly code = 'ADMQ_ERR_TLCP_CRYPTO' as const;
  override readonly name = 'TlcpCryptoError';
}

/** Options given to connect/createServer/cert tooling are invalid. */
export class TlcpConfigError extends TlsModuleError {
  readonly code = 'ADMQ_ERR_TLCP_CONFIG' as const;
  override readonly name = 'TlcpConfigError';
}

/** Write or handshake attempted on a closed connection. */
export class TlcpClosedError extends TlsModuleError {
  readonly code = 'ADMQ_ERR_TLCP_CLOSED' as const;
  override readonly name = 'TlcpClosedError';
}

/** A TransportSecurity setting is invalid. */
export class TransportConfigError extends TlsModuleError {
  readonly code = 'ADMQ_ERR_TRANSPORT_CONFIG' as const;
  override readonly name = 'TransportConfigError';
}
