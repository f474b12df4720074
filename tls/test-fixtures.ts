/**
 * Shared test fixtures: one CA and one double certificate per party, built
 * once per test process (SM2 in JS makes per-test generation wasteful).
 */
import { prng } from '../test-support/random.ts';
import { once } from 'node:events';
import { createCa, issueDoubleCertificate, type DoubleCertificate, type Issued } from './cert-tool.ts';
import { createServer, type TlcpServer, type TlcpServerOptions } from './tlcp-socket.ts';

export interface Fixtures {
  readonly ca: Issued;
  readonly server: DoubleCertificate;
  readonly client: DoubleCertificate;
  readonly otherCa: Issued;
  readonly stranger: DoubleCertificate;
}

let cached: Fixtures | undefined;

export function fixtures(): Fixtures {
  if (!cached) {
    const ca = createCa({ commonName: 'admq test root' });
    const otherCa = createCa({ commonName: 'someone else root' });
    cached = {
      ca,
      otherCa,
      server: issueDoubleCertificate(ca, { region: 'cn-east', nodeId: 'n1', dnsNames: ['localhost'] }),
      client: issueDoubleCertificate(ca, { region: 'cn-west', nodeId: 'n7' }),
      stranger: issueDoubleCertificate(otherCa, { region: 'cn-east', nodeId: 'n1', dnsNames: ['localhost'] }),
    };
  }
  return cached;
}

export function serverOptions(extra: Partial<TlcpServerOptions> = {}): TlcpServerOptions {
  const f = fixtures();
  return { sign: f.server.sign, enc: f.server.enc, ca: [f.ca.certificate], ...extra };
}

export function clientCredentials(): { sign: DoubleCertificate['sign']; enc: DoubleCertificate['enc'] } {
  const f = fixtures();
  return { sign: f.client.sign, enc: f.client.enc };
}

/** Starts an echo server on 127.0.0.1:0. */
export async function startEchoServer(extra: Partial<TlcpServerOptions> = {}): Promise<{ server: TlcpServer; port: number }> {
  const server = createServer(serverOptions(extra), (socket) => socket.pipe(socket));
  server.listen(0);
  await once(server, 'listening');
  return { server, port: server.address().port };
}

/** Seeded PRNG (mulberry32) for reproducible fuzzing. */
export const seededRandom = prng;

export function testSeed(): number {
  const fromEnv = process.env['ADMQ_SEED'];
  return fromEnv !== undefined ? Number(fromEnv) : Math.floor(Math.random() * 2 ** 31);
}
