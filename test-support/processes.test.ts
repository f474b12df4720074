import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { freePorts } from './processes.ts';

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
