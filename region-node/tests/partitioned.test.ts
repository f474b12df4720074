// Partitioned topics: keys pin to partitions, everything is consumed, nothing lost.
import test from 'ava';
import { AdmqClientError, ErrorCode, partitionForKey, type PartitionedProducer } from '../../client/index.ts';
import { receiveN, startNode, stats, waitFor, type TestNode } from './helpers.ts';

let n: TestNode;
test.before(async () => {
  n = await startNode();
});
test.after.always(async () => {
  await n?.close();
});

test('partitioned: a topic created with 4 partitions reports 4; each partition is its own topic', async (t) => {
  const topic = await n.topic('parts', 4);
  t.is(await n.client.partitions(topic), 4);
  for (let i = 0; i < 4; i++) t.is(await n.client.partitions(`${topic}-partition-${i}`), 0);
  const s = (await n.admin.topicStats(topic)) as { partitions: number; partitionStats: Array<{ topic: string }> };
  t.is(s.partitions, 4);
  t.deepEqual(
    s.partitionStats.map((p) => p.topic),
    [0, 1, 2, 3].map((i) => `${topic}-partition-${i}`),
  );
  // The parent has no log of its own: a producer goes through the client's partitioned producer.
  const err = await t.throwsAsync(n.client.createProducer({ topic: `${topic}-partition-4` }), { instanceOf: AdmqClientError });
  t.is(err?.code, ErrorCode.TopicNotFound);
});

test('partitioned: same key always lands in the same partition; keyed and unkeyed messages all consumed, nothing lost', async (t) => {
  const topic = await n.topic('keyed', 3);
  const producer = (await n.client.createProducer({ topic })) as PartitionedProducer;
  const keys = Array.from({ length: 12 }, (_, i) => `user-${i}`);
  const ids = await Promise.all(
    Array.from({ length: 300 }, (_, i) => producer.send({ payload: `p${i}`, key: i < 240 ? keys[i % keys.length] : undefined })),
  );
  const partitionOfKey = new Map<string, string>();
  ids.slice(0, 240).forEach((id, i) => {
    const key = keys[i % keys.length]!;
    const seen = partitionOfKey.get(key);
    if (seen === undefined) partitionOfKey.set(key, id.topic);
    else t.is(id.topic, seen, `key ${key} stays on one partition`);
    t.is(id.topic, `${topic}-partition-${partitionForKey(key, 3)}`);
  });
  const used = new Set(ids.map((id) => id.topic));
  t.is(used.size, 3, 'all partitions used');

  const consumer = await n.client.subscribe({ topic, subscription: 'all', initialPosition: 'earliest' });
  const got = await receiveN(consumer, 300);
  const byIndex = (a: string, b: string): number => Number(a.slice(1)) - Number(b.slice(1));
  t.deepEqual(
    [...new Set(got.map((m) => m.payload.toString()))].sort(byIndex),
    Array.from({ length: 300 }, (_, i) => `p${i}`),
    'nothing lost',
  );
  t.is(new Set(got.map((m) => `${m.topic}@${m.offset}`)).size, 300, 'nothing duplicated');
  // Per key, order follows the send order (one partition, increasing offsets).
  const lastIndex = new Map<string, number>();
  for (const m of got) {
    if (m.key === undefined) continue;
    const index = Number(m.payload.toString().slice(1));
    t.true((lastIndex.get(m.key) ?? -1) < index, `key ${m.key} in order`);
    lastIndex.set(m.key, index);
  }
  for (const m of got) consumer.ack(m);
  await waitFor('every partition acked', async () => {
    const s = (await n.admin.topicStats(topic)) as { partitionStats: Array<{ subscriptions: Record<string, { backlog: number }> }> };
    return s.partitionStats.every((p) => p.subscriptions.all?.backlog === 0);
  });
  t.pass();
  await consumer.close();
});

test('partitioned: seek by publish time applies to every partition; seek by offset is refused', async (t) => {
  const topic = await n.topic('pseek', 2);
  const producer = (await n.client.createProducer({ topic })) as PartitionedProducer;
  await Promise.all(Array.from({ length: 20 }, (_, i) => producer.send({ payload: `s${i}` })));
  const consumer = await n.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest' });
  await receiveN(consumer, 20);
  const err = await t.throwsAsync(consumer.seek({ offset: 0 }), { instanceOf: AdmqClientError });
  t.is(err?.code, ErrorCode.BadRequest);
  await consumer.seek({ publishTimeMs: 0 });
  const again = await receiveN(consumer, 20);
  t.is(new Set(again.map((m) => m.payload.toString())).size, 20);
  await consumer.close();
});

test('flow control: on a partitioned topic the node holds back beyond receiverQueueSize per partition when the app does not receive', async (t) => {
  const topic = await n.topic('pflow', 2);
  const producer = (await n.client.createProducer({ topic })) as PartitionedProducer;
  await Promise.all(Array.from({ length: 400 }, (_, i) => producer.send({ payload: `f${i}` })));
  const consumer = await n.client.subscribe({ topic, subscription: 'f', initialPosition: 'earliest', receiverQueueSize: 10 });
  // Wait until each partition has delivered its first permits' worth, then observe a bounded window.
  await waitFor('first deliveries', async () => {
    const s = (await n.admin.topicStats(topic)) as { partitionStats: Array<{ subscriptions: Record<string, { consumers: Array<{ delivered: number }> }> }> };
    return s.partitionStats.every((p) => (p.subscriptions.f?.consumers[0]?.delivered ?? 0) >= 10);
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (let i = 0; i < 2; i++) {
    const s = await stats(n.admin, `${topic}-partition-${i}`);
    const delivered = s.subscriptions.f?.consumers[0]?.delivered ?? 0;
    t.true(delivered <= 10, `partition ${i}: ${delivered} delivered while the app received none (receiverQueueSize 10)`);
  }
  await consumer.close();
});
