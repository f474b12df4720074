// Keyed topics on one node: each write is a version of its key stamped with what the region
// had seen of the key; the table shows the latest value per key, deletions included, and is
// rebuilt from the log after a restart.
import test from 'ava';
import { parseVersionVector } from '../conflict/index.ts';
import { startNode } from './tests/helpers.ts';

test('keyed topic: the table holds the latest value per key, a deletion removes it, and it survives a restart', async (t) => {
  const n = await startNode();
  t.teardown(() => n.close());
  const topic = 'persistent://public/default/accounts';
  t.like(await n.admin.createTopic(topic, 0, { keyed: true }), { keyed: true });
  const producer = await n.client.createProducer({ topic, producerName: 'ledger' });
  for (const [key, value] of [['alice', '10'], ['bob', '5'], ['alice', '12'], ['carol', '1'], ['carol', '']] as const) {
    await producer.send({ key, payload: value });
  }
  const table = async (): Promise<Record<string, unknown>> =>
    Object.fromEntries(((await n.admin.topicTable(topic)) as Array<{ key: string; value?: string; deleted?: boolean }>).map((r) => [r.key, r.deleted ? null : r.value]));
  t.deepEqual(await table(), { alice: '12', bob: '5', carol: null });
  // Each write carries its version vector: the second write to alice had seen the first.
  const consumer = await n.client.subscribe({ topic, subscription: 'audit', initialPosition: 'earliest' });
  const vectors: string[] = [];
  for (let i = 0; i < 5; i++) {
    const m = await consumer.receive(5000);
    vectors.push(m.properties['admq.vv'] ?? '');
  }
  t.deepEqual(
    vectors.map((v) => Object.fromEntries(parseVersionVector(v))),
    [{ standalone: 0 }, { standalone: 1 }, { standalone: 2 }, { standalone: 3 }, { standalone: 4 }],
  );
  await consumer.close();
  await n.restart();
  t.deepEqual(await table(), { alice: '12', bob: '5', carol: null }, 'rebuilt from the log');
  const error = await t.throwsAsync(n.admin.topicTable(await n.topic('plain')));
  t.regex(error?.message ?? '', /not keyed/);
});
