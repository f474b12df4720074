// A real etcd server (Debian's etcd-server) for tests: its own data directory and ports on
// loopback, started as a child process; SIGKILL-able like any node.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePorts, waitFor } from './processes.ts';
import { removeTempDir, tempDir } from './temp-dir.ts';

export interface EtcdProcess {
  endpoint: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

const ETCD = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => existsSync(p));

export function etcdAvailable(): boolean {
  return ETCD !== undefined;
}

export async function startEtcd(): Promise<EtcdProcess> {
  if (!ETCD) throw new Error('etcd is not installed: apt-get install -y etcd-server (.ci/run does)');
  const dir = tempDir('admq-etcd-');
  const [client, peer] = (await freePorts(2)) as [number, number];
  const endpoint = `127.0.0.1:${client}`;
  let out = '';
  const child = spawn(
    ETCD,
    [
      '--name', 'test', '--data-dir', dir,
      '--listen-client-urls', `http://${endpoint}`, '--advertise-client-urls', `http://${endpoint}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `test=http://127.0.0.1:${peer}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}:\n${out}`);
      try {
        return (await fetch(`http://${endpoint}/health`)).ok;
      } catch {
        return false;
      }
    }, 30_000, `etcd on ${endpoint}`);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    endpoint,
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      removeTempDir(dir);
    },
  };
}
