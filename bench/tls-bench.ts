/**
 * TLCP benchmark: record-layer throughput over loopback (SM4-CBC-SM3,
 * SM4-GCM-SM3) against plain TCP and Node's TLS 1.3 AES-128-GCM in the same
 * run, and full handshakes per second for the ECC and ECDHE suites.
 *
 * The server side runs in a separate process (tls/bench-peer.ts), so client
 * and server each have their own event loop and, on a machine with two or
 * more cores, their own core. The client (this process) sends; the peer
 * receives and counts. Every loop is bounded by both time and bytes or count,
 * and every measurement is repeated; the median is reported with the range.
 * The machine may be shared: each run first waits (up to quietWaitMs) for a
 * quiet second, and a run disturbed by other processes (measured from
 * /proc/stat) is discarded and repeated, at most noisyRunsMax times per
 * figure. With the defaults a full run takes ~4 minutes on a quiet machine
 * and at most ~20 on a busy one.
 *
 *   npx tsx bench/tls-bench.ts [--seconds N] [--repeats N] [--only throughput|handshakes] [--json FILE]
 *
 * To profile both sides: `ADMQ_BENCH_PEER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/peer'
 * node --cpu-prof --cpu-prof-dir=/tmp/client --import tsx bench/tls-bench.ts ...`
 * (the variable's words go to the peer's node command line).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import forge from 'node-forge';
import type { BenchPeerCredentials, BenchPeerMode } from '../tls/bench-peer.ts';
import { createCa, issueDoubleCertificate } from '../tls/cert-tool.ts';
import { clearVerifiedSignatureCache } from '../tls/certificates.ts';
import { clearSm2PublicKeyCache } from '../tls/sm2.ts';
import { connect } from '../tls/tlcp-socket.ts';

export interface TlsBenchOptions {
  /** Length of one throughput or handshake run; default 3 s. */
  readonly runSeconds?: number;
  /** Bytes sent in one throughput run at most; default 2 GiB. */
  readonly runBytesMax?: number;
  /** Handshakes in one run at most; default 2000. */
  readonly runHandshakesMax?: number;
  /** Runs per figure; the median is reported. Default 3. */
  readonly repeats?: number;
  /** Handshakes kept in flight for the concurrent figure; default 4. */
  readonly handshakeConcurrency?: number;
  /** Which part to run; default both. */
  readonly parts?: readonly ('throughput' | 'handshakes')[];
  /**
   * A run during which the rest of the machine used more than this many
   * cores is discarded and repeated (the machine may be shared); default 0.25.
   */
  readonly othersCoresMax?: number;
  /** Runs discarded per figure at most; after that noisy runs are kept (and show in `others`). Default 4. */
  readonly noisyRunsMax?: number;
  /**
   * Before each run, wait up to this long for one second in which the
   * machine (our processes being idle) used at most `othersCoresMax` cores;
   * default 10000 ms.
   */
  readonly quietWaitMs?: number;
}

/** CPU use during one run, in cores (CPU seconds per wall second). */
export interface CpuShare {
  /** This process: the client side, which sends. */
  readonly client: number;
  /** tls/bench-peer.ts: the server side, which receives. */
  readonly server: number;
  /** Everything else on the machine (from /proc/stat), i.e. the noise; undefined off Linux. */
  readonly others: number | undefined;
}

/** One figure: the median of `runs`, with the CPU shares of the median run and the noisiest run's `others`. */
export interface Figure {
  readonly median: number;
  readonly runs: readonly number[];
  readonly cpu: CpuShare;
  readonly othersMax: number | undefined;
  /** Runs thrown away because others used more than `othersCoresMax`. */
  readonly discarded: number;
  /** CPU shares of each kept run, in the order of `runs`. */
  readonly runCpu: readonly CpuShare[];
}

export interface TlsBenchResult {
  readonly machine: string;
  readonly runSeconds: number;
  readonly repeats: number;
  readonly handshakeConcurrency: number;
  readonly othersCoresMax: number;
  readonly quietWaitMs: number;
  /** MB/s (10^6 bytes) of application data, client -> server process. */
  readonly throughputMBps: Record<string, Figure>;
  /** One handshake at a time: client work + server work + round trips. */
  readonly handshakesPerSecondSequential: Record<string, Figure>;
  /** `handshakeConcurrency` in flight: bounded by the busier process. */
  readonly handshakesPerSecondConcurrent: Record<string, Figure>;
  /** Milliseconds of the first handshake with every cache cold in both processes. */
  readonly firstHandshakeMs: Record<string, number>;
}

const CHUNK = Buffer.alloc(256 * 1024, 0x61);
const END_OF_STREAM = Buffer.from([0x00]);
const PEER_SCRIPT = fileURLToPath(new URL('../tls/bench-peer.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const PEER_START_TIMEOUT_MS = 30_000;
const TLCP_SUITES = ['ECC_SM4_CBC_SM3', 'ECC_SM4_GCM_SM3', 'ECDHE_SM4_CBC_SM3', 'ECDHE_SM4_GCM_SM3'] as const;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

interface Run {
  readonly value: number;
  readonly cpu: CpuShare;
}

/** Repeats `measure` until `repeats` runs were not disturbed by the rest of the machine (bounded). */
async function measureFigure(measure: () => Promise<Run>, options: Required<TlsBenchOptions>): Promise<Figure> {
  const runs: Run[] = [];
  let discarded = 0;
  while (runs.length < options.repeats) {
    await waitForQuiet(options);
    const run = await measure();
    if (run.cpu.others !== undefined && run.cpu.others > options.othersCoresMax && discarded < options.noisyRunsMax) discarded++;
    else runs.push(run);
  }
  const sorted = [...runs].sort((a, b) => a.value - b.value);
  const others = runs.map((run) => run.cpu.others).filter((value): value is number => value !== undefined);
  return {
    median: median(runs.map((run) => run.value)),
    runs: runs.map((run) => run.value),
    cpu: sorted[sorted.length >> 1]!.cpu,
    othersMax: others.length > 0 ? Math.max(...others) : undefined,
    discarded,
    runCpu: runs.map((run) => run.cpu),
  };
}

/** See TlsBenchOptions.quietWaitMs. Bounded; returns at once where /proc/stat is missing. */
async function waitForQuiet(options: Required<TlsBenchOptions>): Promise<void> {
  const deadline = performance.now() + options.quietWaitMs;
  while (performance.now() < deadline) {
    const start = machineBusyMicros();
    if (start === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if ((machineBusyMicros()! - start) / 1e6 <= options.othersCoresMax) return;
  }
}

/** Busy CPU time of the whole machine in microseconds, from /proc/stat; undefined where there is none. */
function machineBusyMicros(): number | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    const busyTicks = fields.reduce((sum, value, index) => (index === 3 || index === 4 ? sum : sum + value), 0);
    return (busyTicks * 1e6) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** USER_HZ; 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/** Measures what a run cost the client, the server and everyone else. */
async function cpuMeter(peer: Peer): Promise<() => Promise<CpuShare>> {
  const clientStart = process.cpuUsage();
  const serverStart = await peer.cpuMicros();
  const machineStart = machineBusyMicros();
  const start = performance.now();
  return async () => {
    const seconds = (performance.now() - start) / 1000;
    const machineEnd = machineBusyMicros();
    const client = process.cpuUsage(clientStart);
    const clientMicros = client.user + client.system;
    const serverMicros = (await peer.cpuMicros()) - serverStart;
    const othersMicros = machineStart === undefined || machineEnd === undefined ? undefined : Math.max(0, machineEnd - machineStart - clientMicros - serverMicros);
    return { client: clientMicros / 1e6 / seconds, server: serverMicros / 1e6 / seconds, others: othersMicros === undefined ? undefined : othersMicros / 1e6 / seconds };
  };
}

// --- credentials --------------------------------------------------------------

interface Credentials {
  readonly peer: BenchPeerCredentials;
  readonly tlsClient: { readonly cert: string; readonly key: string };
  readonly tlcpClient: ReturnType<typeof issueDoubleCertificate>;
  readonly tlcpCa: ReturnType<typeof createCa>;
}

/** A throwaway self-signed RSA certificate for Node's TLS 1.3 (forge uses native key generation). */
function selfSignedTls(): { cert: string; key: string } {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: 'localhost' }]);
  cert.setIssuer([{ name: 'commonName', value: 'localhost' }]);
  cert.setExtensions([{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { key: forge.pki.privateKeyToPem(keys.privateKey), cert: forge.pki.certificateToPem(cert) };
}

function makeCredentials(): Credentials {
  const tlcpCa = createCa({ commonName: 'bench root' });
  const server = issueDoubleCertificate(tlcpCa, { region: 'bench', nodeId: 'server', dnsNames: ['localhost'] });
  const tlcpClient = issueDoubleCertificate(tlcpCa, { region: 'bench', nodeId: 'client' });
  const tlsCredentials = selfSignedTls();
  return {
    peer: {
      tlcp: { ca: tlcpCa.certificatePem, signCert: server.sign.certificatePem, signKey: server.sign.keyPem, encCert: server.enc.certificatePem, encKey: server.enc.keyPem },
      tls: tlsCredentials,
    },
    tlsClient: tlsCredentials,
    tlcpClient,
    tlcpCa,
  };
}

// --- the peer process -----------------------------------------------------------

interface Peer {
  readonly port: number;
  /** The peer process's CPU time so far. */
  cpuMicros(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts tls/bench-peer.ts and waits for its port; it exits when its stdin closes. */
async function startPeer(mode: BenchPeerMode, credentials: BenchPeerCredentials, suite?: string): Promise<Peer> {
  const nodeArgs = (process.env['ADMQ_BENCH_PEER_NODE_ARGS'] ?? '').split(/\s+/).filter((word) => word !== '');
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', PEER_SCRIPT, mode, ...(suite ? [suite] : [])], { cwd: REPO_ROOT, stdio: 'pipe' });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  // stdout carries one JSON document per line: the port, then CPU answers in order.
  const lines: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let partial = '';
  child.stdout.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    for (let newline = partial.indexOf('\n'); newline >= 0; newline = partial.indexOf('\n')) {
      const line = partial.slice(0, newline);
      partial = partial.slice(newline + 1);
      const waiter = waiting.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  const nextLine = (what: string): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const queued = lines.shift();
      if (queued !== undefined) return resolve(queued);
      const timer = setTimeout(() => reject(new Error(`bench-peer ${mode}: no ${what} within ${PEER_START_TIMEOUT_MS} ms: ${stderr}`)), PEER_START_TIMEOUT_MS);
      const onExit = (code: number | null): void => {
        clearTimeout(timer);
        reject(new Error(`bench-peer ${mode} exited with ${code}: ${stderr}`));
      };
      child.once('exit', onExit);
      waiting.push((line) => {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve(line);
      });
    });
  child.stdin.write(`${JSON.stringify(credentials)}\n`);
  const port = (JSON.parse(await nextLine('port')) as { port: number }).port;
  return {
    port,
    async cpuMicros() {
      const answer = nextLine('cpu answer');
      child.stdin.write('cpu\n');
      return (JSON.parse(await answer) as { cpuMicros: number }).cpuMicros;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin.end();
      await exited;
    },
  };
}

// --- throughput ----------------------------------------------------------------

/**
 * Writes CHUNKs for a bounded time and byte count, then the end byte, and
 * stops the clock when the peer's count arrives: that is, once every byte
 * has been received and (for TLCP/TLS) decrypted and checked by the peer.
 * Returns MB/s.
 */
async function measureStream(socket: Duplex, runSeconds: number, runBytesMax: number): Promise<number> {
  let reply = '';
  const counted = new Promise<string>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\n')) resolve(reply.trim());
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`connection closed before the peer's count (${reply})`)));
  });
  const start = performance.now();
  const deadline = start + runSeconds * 1000;
  let sent = 0;
  while (performance.now() < deadline && sent + CHUNK.length <= runBytesMax) {
    sent += CHUNK.length;
    if (!socket.write(CHUNK)) await once(socket, 'drain');
  }
  socket.write(END_OF_STREAM);
  const received = Number(await counted) - END_OF_STREAM.length;
  const seconds = (performance.now() - start) / 1000;
  if (received !== sent) throw new Error(`peer counted ${received} bytes, ${sent} were sent`);
  return sent / seconds / 1e6;
}

type Connector = (port: number) => Promise<Duplex>;

async function throughput(mode: BenchPeerMode, suite: string | undefined, connector: Connector, credentials: Credentials, options: Required<TlsBenchOptions>): Promise<Figure> {
  const peer = await startPeer(mode, credentials.peer, suite);
  try {
    // One short run first, so that both processes have compiled the code paths.
    const warmUp = await connector(peer.port);
    await measureStream(warmUp, 0.3, options.runBytesMax);
    warmUp.destroy();
    return await measureFigure(async () => {
      const socket = await connector(peer.port);
      const meter = await cpuMeter(peer);
      const value = await measureStream(socket, options.runSeconds, options.runBytesMax);
      const cpu = await meter();
      socket.destroy();
      return { value, cpu };
    }, options);
  } finally {
    await peer.stop();
  }
}

const tcpConnector: Connector = async (port) => {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  await once(socket, 'connect');
  return socket;
};

function tlsConnector(credentials: Credentials): Connector {
  return async (port) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: [credentials.tlsClient.cert], cert: credentials.tlsClient.cert, key: credentials.tlsClient.key, minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' });
    await once(socket, 'secureConnect');
    socket.setNoDelay(true);
    return socket;
  };
}

function tlcpConnector(credentials: Credentials, suite: string): Connector {
  return async (port) => {
    const socket = connect({ port, servername: 'localhost', ca: [credentials.tlcpCa.certificate], sign: credentials.tlcpClient.sign, enc: credentials.tlcpClient.enc, cipherSuites: [suite] });
    await once(socket, 'secureConnect');
    return socket;
  };
}

// --- handshakes ----------------------------------------------------------------

/** Full handshakes (connect, handshake, close) for a bounded time and count; returns handshakes/s. */
async function handshakeRun(connector: Connector, port: number, concurrency: number, options: Required<TlsBenchOptions>): Promise<number> {
  const start = performance.now();
  const deadline = start + options.runSeconds * 1000;
  let started = 0;
  let completed = 0;
  const lane = async (): Promise<void> => {
    while (performance.now() < deadline && started < options.runHandshakesMax) {
      started++;
      const socket = await connector(port);
      socket.destroy();
      completed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return completed / ((performance.now() - start) / 1000);
}

interface HandshakeFigures {
  readonly sequential: Figure;
  readonly concurrent: Figure;
  readonly firstMs: number;
}

async function handshakes(mode: BenchPeerMode, suite: string | undefined, connector: Connector, credentials: Credentials, options: Required<TlsBenchOptions>): Promise<HandshakeFigures> {
  // The peer process is new, so its caches are cold; empty the client's too.
  clearVerifiedSignatureCache();
  clearSm2PublicKeyCache();
  const peer = await startPeer(mode, credentials.peer, suite);
  try {
    const firstStart = performance.now();
    (await connector(peer.port)).destroy();
    const firstMs = performance.now() - firstStart;
    // A few more before the clock runs, so that both processes have compiled
    // the code paths and met every key twice (see SM2_PRECOMPUTED_KEYS_MAX).
    for (let warmUp = 0; warmUp < 3; warmUp++) (await connector(peer.port)).destroy();
    const run = (concurrency: number) => async (): Promise<Run> => {
      const meter = await cpuMeter(peer);
      const value = await handshakeRun(connector, peer.port, concurrency, options);
      return { value, cpu: await meter() };
    };
    const sequential = await measureFigure(run(1), options);
    const concurrent = await measureFigure(run(options.handshakeConcurrency), options);
    return { sequential, concurrent, firstMs };
  } finally {
    await peer.stop();
  }
}

// --- entry points --------------------------------------------------------------

export function describeMachine(): string {
  const cpus = os.cpus();
  const load = os.loadavg().map((value) => value.toFixed(2)).join(' ');
  return `${cpus.length} cores (${cpus[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${os.release()}, Node ${process.version}, OpenSSL ${process.versions.openssl}; load average ${load} at the start`;
}

export async function runTlsBench(input: TlsBenchOptions = {}): Promise<TlsBenchResult> {
  const options: Required<TlsBenchOptions> = {
    runSeconds: input.runSeconds ?? 3,
    runBytesMax: input.runBytesMax ?? 2 * 1024 ** 3,
    runHandshakesMax: input.runHandshakesMax ?? 2000,
    repeats: input.repeats ?? 3,
    handshakeConcurrency: input.handshakeConcurrency ?? 4,
    parts: input.parts ?? ['throughput', 'handshakes'],
    othersCoresMax: input.othersCoresMax ?? 0.25,
    noisyRunsMax: input.noisyRunsMax ?? 4,
    quietWaitMs: input.quietWaitMs ?? 10_000,
  };
  const machine = describeMachine();
  const credentials = makeCredentials();
  const throughputMBps: Record<string, Figure> = {};
  if (options.parts.includes('throughput')) {
    throughputMBps['plain TCP'] = await throughput('tcp-sink', undefined, tcpConnector, credentials, options);
    throughputMBps['Node TLS 1.3 AES-128-GCM'] = await throughput('tls-sink', undefined, tlsConnector(credentials), credentials, options);
    for (const suite of ['ECC_SM4_CBC_SM3', 'ECC_SM4_GCM_SM3']) {
      throughputMBps[`TLCP ${suite}`] = await throughput('tlcp-sink', suite, tlcpConnector(credentials, suite), credentials, options);
    }
  }
  const handshakesPerSecondSequential: Record<string, Figure> = {};
  const handshakesPerSecondConcurrent: Record<string, Figure> = {};
  const firstHandshakeMs: Record<string, number> = {};
  const record = (name: string, result: HandshakeFigures): void => {
    handshakesPerSecondSequential[name] = result.sequential;
    handshakesPerSecondConcurrent[name] = result.concurrent;
    firstHandshakeMs[name] = result.firstMs;
  };
  if (options.parts.includes('handshakes')) {
    for (const suite of TLCP_SUITES) record(`TLCP ${suite}`, await handshakes('tlcp-accept', suite, tlcpConnector(credentials, suite), credentials, options));
    record('Node TLS 1.3 (RSA-2048)', await handshakes('tls-accept', undefined, tlsConnector(credentials), credentials, options));
  }
  return {
    machine,
    runSeconds: options.runSeconds,
    repeats: options.repeats,
    handshakeConcurrency: options.handshakeConcurrency,
    othersCoresMax: options.othersCoresMax,
    quietWaitMs: options.quietWaitMs,
    throughputMBps,
    handshakesPerSecondSequential,
    handshakesPerSecondConcurrent,
    firstHandshakeMs,
  };
}

function range(value: Figure, digits: number): string {
  return `${Math.min(...value.runs).toFixed(digits)}–${Math.max(...value.runs).toFixed(digits)}`;
}

function cores(value: number | undefined): string {
  return value === undefined ? 'n/a' : value.toFixed(2);
}

export function formatTlsBench(result: TlsBenchResult): string {
  const lines = [
    `Machine: ${result.machine}.`,
    `Server side in a separate process (tls/bench-peer.ts); each figure is the median of ${result.repeats} runs of ${result.runSeconds} s.`,
    'CPU columns are in cores (CPU seconds per second) during the median run; "others" is the rest of the machine (/proc/stat), the highest of the kept runs;',
    `Each run waits (up to ${result.quietWaitMs / 1000} s) for a quiet second first; a run during which others used more than ${result.othersCoresMax} cores was discarded and repeated ("discarded"), a bounded number of times.`,
  ];
  if (Object.keys(result.throughputMBps).length > 0) {
    lines.push('', '| Record layer over loopback, client -> server (256 KiB writes) | MB/s | runs | client CPU | server CPU | others | discarded |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const [name, value] of Object.entries(result.throughputMBps)) {
      lines.push(`| ${name} | ${value.median.toFixed(1)} | ${range(value, 1)} | ${cores(value.cpu.client)} | ${cores(value.cpu.server)} | ${cores(value.othersMax)} | ${value.discarded} |`);
    }
  }
  if (Object.keys(result.handshakesPerSecondSequential).length > 0) {
    lines.push(
      '',
      `| Full handshakes, mutual authentication | first (cold) ms | 1 at a time /s | runs | client / server CPU | ${result.handshakeConcurrency} in flight /s | runs | client / server CPU | others | discarded |`,
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const [name, sequential] of Object.entries(result.handshakesPerSecondSequential)) {
      const concurrent = result.handshakesPerSecondConcurrent[name]!;
      const others = Math.max(sequential.othersMax ?? 0, concurrent.othersMax ?? 0);
      lines.push(
        `| ${name} | ${result.firstHandshakeMs[name]!.toFixed(0)} | ${sequential.median.toFixed(1)} | ${range(sequential, 0)} | ${cores(sequential.cpu.client)} / ${cores(sequential.cpu.server)} | ${concurrent.median.toFixed(1)} | ${range(concurrent, 0)} | ${cores(concurrent.cpu.client)} / ${cores(concurrent.cpu.server)} | ${cores(sequential.othersMax === undefined ? undefined : others)} | ${sequential.discarded + concurrent.discarded} |`,
      );
    }
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argument = (name: string): string | undefined => {
    const at = process.argv.indexOf(name);
    return at >= 0 ? process.argv[at + 1] : undefined;
  };
  const started = new Date().toISOString();
  const seconds = argument('--seconds');
  const repeats = argument('--repeats');
  const only = argument('--only') as 'throughput' | 'handshakes' | undefined;
  const result = await runTlsBench({ ...(seconds ? { runSeconds: Number(seconds) } : {}), ...(repeats ? { repeats: Number(repeats) } : {}), ...(only ? { parts: [only] } : {}) });
  console.log(formatTlsBench(result));
  const jsonPath = argument('--json');
  if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify({ started, result }, null, 2)}\n`);
}
