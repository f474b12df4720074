// Helpers for tests that run region nodes as real child processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ADMQ_CLI = fileURLToPath(new URL('../cli/admq.mjs', import.meta.url));

/** A free loopback port, reserved for this process (so a restarted node can reuse it). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

// Ports handed to tests come from below the kernel's ephemeral range, so that no outgoing
// connection (of any process) can take one while its node is down between a kill and a
// restart. Test processes running side by side share the range through lock files, one
// per port, holding the owner's pid; a lock whose owner is dead is taken over.
const PORT_LOCK_DIR = join(tmpdir(), 'admq-test-ports');
const PORT_RANGE_LOW = 20_000;
const heldPorts = new Set<number>();

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > PORT_RANGE_LOW + 1000) return low;
  } catch {
    // Not Linux: fall through to the IANA dynamic range's start.
  }
  return 32_768;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the port's lock file for this process; false if a live process holds it. */
export function lockPort(port: number): boolean {
  const file = join(PORT_LOCK_DIR, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue; // released in the meantime: try again
      }
      const owner = Number(text);
      // Empty: its owner has created it and not yet written its pid.
      if (!(Number.isInteger(owner) && owner > 0) || pidAlive(owner)) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}

function releaseHeldPorts(): void {
  for (const port of heldPorts) rmSync(join(PORT_LOCK_DIR, String(port)), { force: true });
  heldPorts.clear();
}

function canListen(port: number): Promise<boolean> {
  const server: Server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * `count` different loopback ports that are free now and that no other test process will be
 * given while this one lives. They lie below the ephemeral range, so the kernel never hands
 * them to an outgoing connection either: a node killed and restarted gets its port back.
 */
export async function freePorts(count: number): Promise<number[]> {
  if (heldPorts.size === 0) {
    mkdirSync(PORT_LOCK_DIR, { recursive: true });
    process.once('exit', releaseHeldPorts);
  }
  const high = ephemeralLow();
  const span = high - PORT_RANGE_LOW;
  const ports: number[] = [];
  let candidate = PORT_RANGE_LOW + Math.floor(Math.random() * span);
  for (let tried = 0; ports.length < count; tried++) {
    if (tried >= span) throw new Error(`no free loopback port left in ${PORT_RANGE_LOW}-${high - 1} (locks in ${PORT_LOCK_DIR})`);
    candidate = PORT_RANGE_LOW + ((candidate - PORT_RANGE_LOW + 1) % span);
    if (heldPorts.has(candidate) || !lockPort(candidate)) continue;
    heldPorts.add(candidate);
    if (await canListen(candidate)) ports.push(candidate);
  }
  return ports;
}

export interface NodeProcess {
  child: ChildProcess;
  grpcAddress: string;
  adminUrl: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts `admq start` in a child process and waits until it prints its endpoints. */
export async function startNodeProcess(args: string[], timeoutMs = 30_000, env: Record<string, string> = {}): Promise<NodeProcess> {
  // ADMQ_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") goes to node itself, for profiling.
  const nodeArgs = (process.env.ADMQ_NODE_ARGS ?? '').split(' ').filter((a) => a.length > 0);
  const child = spawn(process.execPath, [...nodeArgs, ADMQ_CLI, 'start', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<{ grpcAddress: string; adminUrl: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const grpc = /gRPC API\s+(\S+)/.exec(out);
      const admin = /admin API\s+(\S+)\/admin\/v1/.exec(out);
      if (grpc?.[1] && admin?.[1]) {
        clearTimeout(timer);
        resolve({ grpcAddress: grpc[1], adminUrl: admin[1] });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code} before it was ready:\n${out}`));
    });
  });
  const endpoints = await ready;
  return { child, ...endpoints, output: () => out, exited };
}

/** Polls `condition` every few ms until it holds or `timeoutMs` passes. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
