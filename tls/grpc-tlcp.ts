/**
 * gRPC over TLCP. The client side is a grpc-js ChannelCredentials whose
 * secure connector runs a TLCP handshake over the TCP socket grpc-js opened;
 * the server side runs a TlcpServer and hands each finished connection to
 * `Server.createConnectionInjector()`.
 *
 * Handlers find the caller's verified identity with `tlcpPeerIdentity(call)`:
 * grpc-js reports the connection's remote address through `call.getPeer()`,
 * and the server side keeps a map from that address to the identity for as
 * long as the connection lives.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Socket } from 'node:net';
import { once } from 'node:events';
import grpc from '@grpc/grpc-js';
import type { CallCredentials } from '@grpc/grpc-js';
import type { Sm2Certificate } from './certificates.ts';
import { TlcpConfigError } from './errors.ts';
import { connect, createServer, resolveSecureOptions, type TlcpConnectOptions, type TlcpServerOptions, type TlcpSocket } from './tlcp-socket.ts';

export interface TlcpPeerIdentity {
  readonly commonName: string | undefined;
  readonly organizationalUnit: string | undefined;
  readonly dnsNames: readonly string[];
  readonly uris: readonly string[];
  readonly signCertificate: Sm2Certificate;
  readonly cipherSuite: string;
}

type SecureConnector = ReturnType<grpc.ChannelCredentials['_createSecureConnector']>;

/** grpc-js channel credentials that speak TLCP. */
export class TlcpChannelCredentials extends grpc.ChannelCredentials {
  constructor(private readonly options: Omit<TlcpConnectOptions, 'host' | 'port' | 'socket'>) {
    super();
    // Validate once, when the credentials are made, not per connection.
    resolveSecureOptions(options, 'client');
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(_target: unknown, _options: unknown, callCredentials?: CallCredentials): SecureConnector {
    const options = this.options;
    return {
      connect(socket: Socket) {
        return new Promise((resolve, reject) => {
          const secure = connect({ ...options, socket });
          secure.once('secureConnect', () => {
            secure.off('error', reject);
            resolve({ socket: secure as unknown as Socket, secure: true });
          });
          secure.once('error', reject);
        });
      },
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => callCredentials ?? grpc.credentials.createEmpty(),
      destroy: () => undefined,
    };
  }
}

export function createTlcpChannelCredentials(options: Omit<TlcpConnectOptions, 'host' | 'port' | 'socket'>): grpc.ChannelCredentials {
  return new TlcpChannelCredentials(options);
}

const peers = new Map<string, TlcpPeerIdentity>();

/**
 * Node's http2 wraps a non-native stream in an internal socket that has no
 * remote address, so `call.getPeer()` says "unknown" for injected
 * connections. The identity therefore also travels in async context: the
 * HTTP/2 session of a connection is created inside `peerContext.run()`, and
 * every handler callback of that session runs in that context.
 */
const peerContext = new AsyncLocalStorage<TlcpPeerIdentity | undefined>();

function peerKey(address: string | undefined, port: number | undefined): string {
  return port === undefined ? `${address}` : `${address}:${port}`;
}

/** The verified TLCP identity of the caller, or undefined (no client certificate). */
export function tlcpPeerIdentity(call: { getPeer(): string }): TlcpPeerIdentity | undefined {
  return peers.get(call.getPeer()) ?? peerContext.getStore();
}

/**
 * grpc-js records each new HTTP/2 session synchronously in its (private)
 * `sessions` map during injectConnection(). The session's socket is Node's
 * internal wrapper around our TlcpSocket, whose remote address is empty;
 * setting its `_peername` makes `call.getPeer()` report the TCP peer, which
 * is the key of the identity map. If grpc-js changes shape this degrades to
 * the async-context lookup, never to a crash.
 */
function givePeerAddress(server: grpc.Server, socket: TlcpSocket): void {
  const sessions = (server as unknown as { sessions?: Map<{ socket?: { remoteAddress?: string; _peername?: unknown } }, unknown> }).sessions;
  if (!(sessions instanceof Map) || sessions.size === 0) return;
  const last = [...sessions.keys()].at(-1);
  const wrapped = last?.socket;
  if (wrapped && !wrapped.remoteAddress && socket.remoteAddress) {
    wrapped._peername = { address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteAddress.includes(':') ? 'IPv6' : 'IPv4' };
  }
}

export interface TlcpGrpcBinding {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `server` over TLCP on host:port (port 0 picks a free one).
 * Client certificates are requested by default so handlers can authorize.
 */
export async function bindTlcpGrpcServer(server: grpc.Server, options: TlcpServerOptions & { host?: string; port?: number }): Promise<TlcpGrpcBinding> {
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port >= 0 && options.port < 65536)) {
    throw new TlcpConfigError(`port must be an integer in [0, 65535], got ${options.port}`);
  }
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const tlcpServer = createServer({ requestCert: true, ...options }, (socket: TlcpSocket) => {
    const key = peerKey(socket.remoteAddress, socket.remotePort);
    const sign = socket.peerCertificates?.sign;
    const identity: TlcpPeerIdentity | undefined = sign && {
      commonName: sign.subject.CN,
      organizationalUnit: sign.subject.OU,
      dnsNames: sign.dnsNames,
      uris: sign.uris,
      signCertificate: sign,
      cipherSuite: socket.cipherSuite ?? '',
    };
    if (identity) {
      peers.set(key, identity);
      socket.once('close', () => peers.delete(key));
    }
    peerContext.run(identity, () => injector.injectConnection(socket));
    givePeerAddress(server, socket);
  });
  // A failed client handshake is that client's problem; keep serving.
  tlcpServer.on('tlsClientError', () => undefined);
  tlcpServer.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  await once(tlcpServer, 'listening');
  return {
    port: tlcpServer.address().port,
    close: () =>
      new Promise<void>((resolve) => {
        injector.destroy();
        tlcpServer.close(() => resolve());
      }),
  };
}
