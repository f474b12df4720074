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

test('keyed topic: a compacted read delivers each key’s current value only, and refuses a topic that is not keyed', async (t) => {
  const n = await startNode();
  t.teardown(() => n.close());
  const topic = 'persistent://public/default/prices';
  await n.admin.createTopic(topic, 0, { keyed: true });
  const producer = await n.client.createProducer({ topic, producerName: 'feed' });
  for (const [key, value] of [['gold', '1'], ['silver', '2'], ['gold', '3'], ['copper', '4'], ['silver', '5'], ['gold', '6']] as const) {
    await producer.send({ key, payload: value });
  }
  const compacted = await n.client.subscribe({ topic, subscription: 'latest', initialPosition: 'earliest', readCompacted: true });
  const got: string[] = [];
  for (let i = 0; i < 3; i++) {
    const m = await compacted.receive(5000);
    compacted.ack(m);
    got.push(`${m.key}=${m.payload.toString()}`);
  }
  t.deepEqual(got, ['copper=4', 'silver=5', 'gold=6']);
  await t.throwsAsync(compacted.receive(300), undefined, 'nothing else');
  const stats = (await n.admin.topicStats(topic)) as { subscriptions: Record<string, { backlog: number }> };
  t.is(stats.subscriptions.latest?.backlog, 0, 'superseded versions count as acknowledged');
  const full = await n.client.subscribe({ topic, subscription: 'everything', initialPosition: 'earliest' });
  for (let i = 0; i < 6; i++) full.ack(await full.receive(5000));
  const plain = await n.topic('plain-compacted');
  await t.throwsAsync(n.client.subscribe({ topic: plain, subscription: 's', readCompacted: true }), { message: /needs a keyed topic/ });
});
