// Helpers for tests that run region nodes as real child processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';

export const ADMQ_CLI = fileURLToPath(new URL('../cli/admq.mjs', import.meta.url));

/** Asks the kernel for a free loopback port (so a restarted node can reuse it). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

/**
 * Asks the kernel for `count` free loopback ports, all different: every listener stays
 * open until the last is bound (ports taken one at a time, each closed at once, can
 * repeat).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
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
