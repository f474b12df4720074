/**
 * Server side of bench/tls-bench.ts, run as a separate process so that the
 * client and the server do not share one event loop (or one core).
 *
 *   node --import tsx tls/bench-peer.ts <mode> [suite]   (credentials as JSON on stdin)
 *
 * Modes:
 * - `tcp-sink`, `tls-sink`, `tlcp-sink`: accept connections and count the
 *   bytes received; a stream ends with one 0x00 byte (everything before it is
 *   0x61), on which the sink answers `<count>\n` so that the client can stop
 *   its clock when the last byte has been received and processed.
 * - `tls-accept`, `tlcp-accept`: complete handshakes and nothing else.
 *
 * Prints `{"port": N}` on stdout once listening; afterwards each line `cpu`
 * on stdin is answered with `{"cpuMicros": N}`, the process's CPU time so
 * far. Exits when stdin closes or on SIGTERM.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { parseCertificatesPem } from './certificates.ts';
import { createServer } from './tlcp-socket.ts';

export interface BenchPeerCredentials {
  /** TLCP: PEMs of the CA and the server's double certificate. */
  readonly tlcp?: { readonly ca: string; readonly signCert: string; readonly signKey: string; readonly encCert: string; readonly encKey: string };
  /** Node TLS: a self-signed certificate that is also the CA. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

export type BenchPeerMode = 'tcp-sink' | 'tls-sink' | 'tlcp-sink' | 'tls-accept' | 'tlcp-accept';

export const END_OF_STREAM_BYTE = 0x00;

function sink(socket: Duplex): void {
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (chunk[chunk.length - 1] === END_OF_STREAM_BYTE) socket.write(`${received}\n`);
  });
  socket.on('error', () => socket.destroy());
}

/** One JSON document followed by a newline; stdin stays open afterwards. */
function readStdinLine(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      if (!chunk.includes(0x0a)) return;
      process.stdin.off('data', onData);
      process.stdin.pause();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    process.stdin.on('data', onData);
    process.stdin.once('end', () => reject(new Error('bench-peer: stdin closed before the credentials')));
  });
}

async function main(): Promise<void> {
  const [mode, suite] = process.argv.slice(2);
  const credentials = JSON.parse(await readStdinLine()) as BenchPeerCredentials;
  let server: net.Server | tls.Server;
  let listen: (callback: () => void) => void;
  let address: () => net.AddressInfo;
  switch (mode) {
    case 'tcp-sink': {
      const tcp = net.createServer((socket) => {
        socket.setNoDelay(true);
        sink(socket);
      });
      server = tcp;
      listen = (callback) => tcp.listen(0, '127.0.0.1', callback);
      address = () => tcp.address() as net.AddressInfo;
      break;
    }
    case 'tls-sink':
    case 'tls-accept': {
      const { cert, key } = credentials.tls!;
      const secure = tls.createServer({ cert, key, ca: [cert], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' }, (socket) => {
        socket.setNoDelay(true);
        if (mode === 'tls-sink') sink(socket);
        else socket.on('error', () => socket.destroy());
      });
      secure.on('tlsClientError', () => undefined);
      server = secure;
      listen = (callback) => secure.listen(0, '127.0.0.1', callback);
      address = () => secure.address() as net.AddressInfo;
      break;
    }
    case 'tlcp-sink':
    case 'tlcp-accept': {
      const c = credentials.tlcp!;
      const tlcp = createServer({
        ca: parseCertificatesPem(c.ca),
        signCert: c.signCert,
        signKey: c.signKey,
        encCert: c.encCert,
        encKey: c.encKey,
        requestCert: true,
        ...(suite ? { cipherSuites: [suite] } : {}),
      }, (socket) => {
        if (mode === 'tlcp-sink') sink(socket);
        else socket.on('error', () => socket.destroy());
      });
      tlcp.on('tlsClientError', () => undefined);
      server = tlcp.netServer;
      listen = (callback) => tlcp.listen(0, '127.0.0.1', callback);
      address = () => tlcp.address();
      break;
    }
    default:
      throw new Error(`bench-peer: unknown mode ${mode}`);
  }
  listen(() => process.stdout.write(`${JSON.stringify({ port: address().port })}\n`));
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  // Each `cpu` line on stdin is answered with this process's CPU time so
  // far, so that the client can tell how busy the server side was in a run.
  let pending = '';
  process.stdin.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
      const command = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (command === 'cpu') {
        const cpu = process.cpuUsage();
        process.stdout.write(`${JSON.stringify({ cpuMicros: cpu.user + cpu.system })}\n`);
      }
    }
  });
  process.stdin.on('end', stop);
  process.stdin.resume();
  process.on('SIGTERM', stop);
}

await main();
