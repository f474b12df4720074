import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { AdminClient, AdmqClient, type Producer } from '../client/index.ts';
import { start } from './index.ts';

test('restart: messages, cursors, producer sequence and the HLC survive a clean restart, even with the clock set back', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'admq-restart-'));
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
  const node = await start({ dataDir: mkdtempSync(join(tmpdir(), 'admq-nosync-')), grpcPort: 0, adminPort: 0, durability: 'none' }, { log: () => {} });
  const client = new AdmqClient({ serviceUrl: node.grpcAddress });
  await new AdminClient(node.adminUrl).createTopic('public/default/n');
  const producer = await client.createProducer({ topic: 'public/default/n' });
  t.is((await producer.send({ payload: 'x' })).offset, 0);
  await client.close();
  await node.close();
});
