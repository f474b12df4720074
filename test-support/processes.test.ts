import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { freePorts, lockPort } from './processes.ts';

test('freePorts: distinct, bindable, below the ephemeral range, and locked for this process', async (t) => {
  const ports = await freePorts(24);
  t.is(new Set(ports).size, 24);
  const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  for (const port of ports) {
    t.true(port >= 1024 && port < ephemeralLow, `port ${port} lies below the ephemeral range (${ephemeralLow})`);
    t.is(readFileSync(join(tmpdir(), 'admq-test-ports', String(port)), 'utf8'), String(process.pid));
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  const more = await freePorts(8);
  t.deepEqual(more.filter((p) => ports.includes(p)), [], 'a port is never handed out twice');
});

test('lockPort: a lock of a dead process is taken over; one of a live process, or one still empty, is not', (t) => {
  const dir = join(tmpdir(), 'admq-test-ports');
  // Ports below the range freePorts hands out, so no other test process uses these locks.
  const [dead, live, empty] = [19_991, 19_992, 19_993];
  mkdirSync(dir, { recursive: true });
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  const deadPid = Number(child.stdout.toString());
  t.true(deadPid > 0);
  writeFileSync(join(dir, String(dead)), String(deadPid));
  writeFileSync(join(dir, String(live)), String(process.ppid));
  writeFileSync(join(dir, String(empty)), '');
  try {
    t.true(lockPort(dead), 'the dead owner’s lock is taken over');
    t.is(readFileSync(join(dir, String(dead)), 'utf8'), String(process.pid));
    t.false(lockPort(live), 'a live owner keeps its lock');
    t.is(readFileSync(join(dir, String(live)), 'utf8'), String(process.ppid));
    t.false(lockPort(empty), 'a lock being written is held');
  } finally {
    for (const port of [dead, live, empty]) rmSync(join(dir, String(port)), { force: true });
  }
});
