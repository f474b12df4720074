/**
 * Transport security settings for admq's gRPC links: TLCP (GMTLS, the
 * default for cross-region links), standard TLS 1.3 on Node's own stack, or
 * plain TCP, which must be chosen explicitly.
 */
import grpc from '@grpc/grpc-js';
import { TransportConfigError } from './errors.ts';
import { bindTlcpGrpcServer, createTlcpChannelCredentials } from './grpc-tlcp.ts';
import { CIPHER_SUITES } from './record-layer.ts';

export type TransportSecurity =
  | {
      readonly kind: 'tlcp';
      /** PEM of the trust anchors. */
      readonly caPem: string;
      readonly signCertPem: string;
      readonly signKeyPem: string;
      readonly encCertPem: string;
      readonly encKeyPem: string;
      readonly cipherSuites?: readonly string[];
      /** Name the server's sign certificate must carry (client side). */
      readonly servername?: string;
    }
  | {
      readonly kind: 'tls';
      readonly caPem: string;
      readonly certPem: string;
      readonly keyPem: string;
      readonly servername?: string;
    }
  | { readonly kind: 'insecure' };

function requireString(value: Record<string, unknown>, field: string, kind: string): void {
  if (typeof value[field] !== 'string' || (value[field] as string).length === 0) {
    throw new TransportConfigError(`transport.${field} is required for kind "${kind}" (PEM text)`);
  }
}

/** Checks a setting read from configuration; every error names its field. */
export function validateTransportSecurity(value: unknown): TransportSecurity {
  if (typeof value !== 'object' || value === null) throw new TransportConfigError('transport must be an object with a "kind" field');
  const record = value as Record<string, unknown>;
  switch (record['kind']) {
    case 'tlcp':
      for (const field of ['caPem', 'signCertPem', 'signKeyPem', 'encCertPem', 'encKeyPem']) requireString(record, field, 'tlcp');
      if (record['cipherSuites'] !== undefined) {
        const suites = record['cipherSuites'];
        if (!Array.isArray(suites) || suites.length === 0) throw new TransportConfigError('transport.cipherSuites must be a non-empty array');
        for (const suite of suites) {
          if (!CIPHER_SUITES.some((known) => known.name === suite)) throw new TransportConfigError(`transport.cipherSuites: unknown suite ${String(suite)}`);
        }
      }
      return record as TransportSecurity;
    case 'tls':
      for (const field of ['caPem', 'certPem', 'keyPem']) requireString(record, field, 'tls');
      return record as TransportSecurity;
    case 'insecure':
      return { kind: 'insecure' };
    default:
      throw new TransportConfigError(`transport.kind must be "tlcp", "tls" or "insecure", got ${JSON.stringify(record['kind'])}`);
  }
}

export function channelCredentials(security: TransportSecurity): grpc.ChannelCredentials {
  switch (security.kind) {
    case 'tlcp':
      return createTlcpChannelCredentials({
        ca: security.caPem,
        signCert: security.signCertPem,
        signKey: security.signKeyPem,
        encCert: security.encCertPem,
        encKey: security.encKeyPem,
        ...(security.cipherSuites ? { cipherSuites: security.cipherSuites } : {}),
        ...(security.servername ? { servername: security.servername } : {}),
      });
    case 'tls':
      return grpc.credentials.createSsl(Buffer.from(security.caPem), Buffer.from(security.keyPem), Buffer.from(security.certPem), {});
    case 'insecure':
      return grpc.credentials.createInsecure();
  }
}

/** Channel options to pass with channelCredentials (TLS name override). */
export function channelOptions(security: TransportSecurity): grpc.ChannelOptions {
  return security.kind === 'tls' && security.servername ? { 'grpc.ssl_target_name_override': security.servername } : {};
}

export interface ServerBinding {
  readonly port: number;
  close(): Promise<void>;
}

/** Binds `server` on host:port with the given security; port 0 picks one. */
export async function bindGrpcServer(server: grpc.Server, security: TransportSecurity, address: { host?: string; port: number }): Promise<ServerBinding> {
  const host = address.host ?? '127.0.0.1';
  if (security.kind === 'tlcp') {
    return bindTlcpGrpcServer(server, {
      host,
      port: address.port,
      ca: security.caPem,
      signCert: security.signCertPem,
      signKey: security.signKeyPem,
      encCert: security.encCertPem,
      encKey: security.encKeyPem,
      ...(security.cipherSuites ? { cipherSuites: security.cipherSuites } : {}),
    });
  }
  const credentials = security.kind === 'tls'
    ? grpc.ServerCredentials.createSsl(Buffer.from(security.caPem), [{ private_key: Buffer.from(security.keyPem), cert_chain: Buffer.from(security.certPem) }], true)
    : grpc.ServerCredentials.createInsecure();
  const target = `${host}:${address.port}`;
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(target, credentials, (error, bound) => (error ? reject(error) : resolve(bound))));
  return {
    port,
    close: async () => {
      server.unbind(`${host}:${port}`);
    },
  };
}
