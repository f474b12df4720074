// Ack state, messages and producer sequences survive a node restart on the same data directory.
import test from 'ava';
import { type Producer } from '../../client/index.ts';
import { receiveN, silentFor, startNode, stats, waitFor, type TestNode } from './helpers.ts';

let n: TestNode;
test.before(async () => {
  n = await startNode();
});
test.after.always(async () => {
  await n?.close();
});

test.serial('restart: acked messages are not redelivered after a restart; unacked ones are (individual and cumulative acks)', async (t) => {
  const topicA = await n.topic('restart-indiv');
  const topicB = await n.topic('restart-cumul');
  const producerA = (await n.client.createProducer({ topic: topicA, producerName: 'pa' })) as Producer;
  const producerB = (await n.client.createProducer({ topic: topicB, producerName: 'pb' })) as Producer;
  await Promise.all(Array.from({ length: 30 }, (_, i) => producerA.send({ payload: `a${i}` })));
  await Promise.all(Array.from({ length: 30 }, (_, i) => producerB.send({ payload: `b${i}` })));

  // Shared subscription with a pattern of individual acks (non-contiguous).
  const ca = await n.client.subscribe({ topic: topicA, subscription: 'sa', subscriptionType: 'shared', initialPosition: 'earliest' });
  const gotA = await receiveN(ca, 30);
  const ackedA = new Set<number>();
  for (const m of gotA) {
    if (m.offset < 10 || m.offset % 3 === 0) {
      ca.ack(m);
      ackedA.add(m.offset);
    }
  }
  // Exclusive subscription acked cumulatively up to 14, plus one individual ack above.
  const cb = await n.client.subscribe({ topic: topicB, subscription: 'sb', initialPosition: 'earliest' });
  const gotB = await receiveN(cb, 30);
  cb.ackCumulative(gotB[14]!);
  cb.ack(gotB[20]!);
  await waitFor('acks applied before the restart', async () => {
    const a = (await stats(n.admin, topicA)).subscriptions.sa;
    const b = (await stats(n.admin, topicB)).subscriptions.sb;
    return a?.backlog === 30 - ackedA.size && b?.backlog === 14;
  });

  await n.restart();

  const sa = (await stats(n.admin, topicA)).subscriptions.sa;
  t.is(sa?.backlog, 30 - ackedA.size, 'backlog of the individual-ack subscription survives');
  const ca2 = await n.client.subscribe({ topic: topicA, subscription: 'sa', subscriptionType: 'shared' });
  const againA = await receiveN(ca2, 30 - ackedA.size);
  const expectedA = Array.from({ length: 30 }, (_, i) => i).filter((o) => !ackedA.has(o));
  t.deepEqual(
    againA.map((m) => m.offset).sort((x, y) => x - y),
    expectedA,
  );
  for (const m of againA) t.is(m.payload.toString(), `a${m.offset}`);
  t.true(await silentFor(ca2, 200), 'no acked message comes back');

  const cb2 = await n.client.subscribe({ topic: topicB, subscription: 'sb' });
  const againB = await receiveN(cb2, 14);
  t.deepEqual(
    againB.map((m) => m.offset),
    [15, 16, 17, 18, 19, 21, 22, 23, 24, 25, 26, 27, 28, 29],
  );
  t.true(await silentFor(cb2, 200));

  // Producers continue their sequences; the log continues its offsets.
  const pa = (await n.client.createProducer({ topic: topicA, producerName: 'pa' })) as Producer;
  t.is(pa.lastSequenceId, 29);
  const next = await pa.send({ payload: 'after-restart' });
  t.is(next.offset, 30);
  t.is(next.sequenceId, 30);
  t.true(next.hlc > (gotA[29]?.hlc ?? 0n), 'HLC keeps increasing across the restart');
  const m = await ca2.receive(5000);
  t.is(m.offset, 30);
});

test.serial('restart: close is idempotent and topics, tenants and namespaces are still there afterwards', async (t) => {
  await n.admin.createTenant('rt');
  await n.admin.createNamespace('rt/ns');
  await n.admin.createTopic('rt/ns/part', 3);
  await n.node.close();
  await n.node.close();
  await n.restart();
  t.true((await n.admin.listTenants()).includes('rt'));
  t.true((await n.admin.listTenants()).includes('public'), 'bootstrap tenant kept');
  t.deepEqual(await n.admin.listNamespaces('rt'), ['rt/ns']);
  t.deepEqual(
    (await n.admin.listTopics('rt/ns')).map((x) => [x.name, x.partitions]),
    [['persistent://rt/ns/part', 3]],
  );
});
