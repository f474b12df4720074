import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import test from 'ava';
import { AdminClient, AdmqClient, type Producer } from '../client/index.ts';
import { freePorts } from '../test-support/processes.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';
import { start } from './index.ts';

test('restart: messages, cursors, producer sequence and the HLC survive a clean restart, even with the clock set back', async (t) => {
  const dataDir = tempDir('admq-restart-');
  let physical = 2_000_000_000_000;
  const clock = () => physical;
  let node = await start({ dataDir, grpcPort: 0, adminPort: 0 }, { log: () => {}, readPhysicalMs: clock });
  await new AdminClient(node.adminUrl).createTopic('public/default/r');
  let client = new AdmqClient({ serviceUrl: node.grpcAddress });
  const producer = (await client.createProducer({ topic: 'public/default/r', producerName: 'keep' })) as Producer;
  const before = await Promise.all(Array.from({ length: 50 }, (_, i) => producer.send({ payload: `m${i}` })));
  const consumer = await client.subscribe({ topic: 'public/default/r', subscription: 's', initialPosition: 'earliest' });
  for (let i = 0; i < 20; i++) consumer.ack(await consumer.receive(5000));
  await client.close();
  await node.close();
  await node.close(); // idempotent

  physical -= 60_000; // the machine's clock jumps back a minute across the restart
  node = await start({ dataDir, grpcPort: 0, adminPort: 0 }, { log: () => {}, readPhysicalMs: clock });
  client = new AdmqClient({ serviceUrl: node.grpcAddress });
  const again = (await client.createProducer({ topic: 'public/default/r', producerName: 'keep' })) as Producer;
  t.is(again.lastSequenceId, 49, 'the producer continues its sequence');
  const after = await again.send({ payload: 'after' });
  t.is(after.offset, 50);
  t.true(after.hlc > (before[49]?.hlc ?? 0n), 'the HLC never goes backwards across a restart');
  const resumed = await client.subscribe({ topic: 'public/default/r', subscription: 's' });
  const first = await resumed.receive(5000);
  t.true(first.offset >= 20 && first.offset < 50, `delivery resumes after the acknowledged prefix (got ${first.offset})`);
  await client.close();
  await node.close();
});

test('start: durability "none" is accepted and serves', async (t) => {
  const node = await start({ dataDir: tempDir('admq-nosync-'), grpcPort: 0, adminPort: 0, durability: 'none' }, { log: () => {} });
  const client = new AdmqClient({ serviceUrl: node.grpcAddress });
  await new AdminClient(node.adminUrl).createTopic('public/default/n');
  const producer = await client.createProducer({ topic: 'public/default/n' });
  t.is((await producer.send({ payload: 'x' })).offset, 0);
  await client.close();
  await node.close();
});

test('start: a replication port already in use fails the start with the address named, and nothing runs on after it', async (t) => {
  const dir = tempDir('admq-busy-port-');
  const [grpcA, adminA, grpcB, adminB, replicationB] = await freePorts(5);
  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  const busy = (squatter.address() as AddressInfo).port;
  const topology = {
    regions: {
      a: { grpc: `127.0.0.1:${grpcA}`, admin: `127.0.0.1:${adminA}`, replication: `127.0.0.1:${busy}` },
      b: { grpc: `127.0.0.1:${grpcB}`, admin: `127.0.0.1:${adminB}`, replication: `127.0.0.1:${replicationB}` },
    },
    transport: { kind: 'insecure' },
  };
  const topologyPath = join(dir, 'topology.json');
  writeFileSync(topologyPath, JSON.stringify(topology));
  const lines: string[] = [];
  await t.throwsAsync(start({ dataDir: join(dir, 'a'), topology: topologyPath, region: 'a' }, { log: (line) => lines.push(line) }), { message: new RegExp(`${busy}`) });
  // Before the fix the links toward b (down) kept retrying and read the closed log a few
  // tens of milliseconds later, which threw in a timer and took the whole process down.
  const linesAtFailure = lines.length;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.is(lines.length, linesAtFailure, `no link logged after the failed start:\n${lines.slice(linesAtFailure).join('\n')}`);
  squatter.close();
  removeTempDir(dir);
});
