// Producer: durable receipts, batching, per-producer order, entry fields, HLC, dedupe.
import test from 'ava';
import { type Producer } from '../../client/index.ts';
import { type ProduceResponse } from '../../proto/index.ts';
import { outbound, rawStub, RawStream, receiveN, silentFor, startNode, stats, type TestNode } from './helpers.ts';

let n: TestNode;
test.before(async () => {
  n = await startNode({ region: 'east-1' });
});
test.after.always(async () => {
  await n?.close();
});

test('producer: send resolves with a message id after commit; the entry is readable at once', async (t) => {
  const topic = await n.topic('durable');
  const producer = (await n.client.createProducer({ topic, producerName: 'p-durable' })) as Producer;
  const id = await producer.send({ payload: 'hello' });
  t.is(id.topic, topic);
  t.is(id.offset, 0);
  t.is(id.sequenceId, 0);
  t.false(id.duplicate);
  t.is(typeof id.hlc, 'bigint');
  t.true(id.hlc > 0n);
  // Committed means visible to the log: the topic already counts it.
  const s = await stats(n.admin, topic);
  t.is(s.nextOffset, 1);
  t.is(s.entries, 1);
});

test('producer: batching is on by default; 500 concurrent sends are stored in sequence order with increasing HLC', async (t) => {
  const topic = await n.topic('batch');
  const producer = (await n.client.createProducer({ topic, producerName: 'p-batch' })) as Producer;
  const ids = await Promise.all(Array.from({ length: 500 }, (_, i) => producer.send({ payload: `m${i}` })));
  ids.forEach((id, i) => {
    t.is(id.sequenceId, i);
    t.is(id.offset, i, `message ${i} stored at offset ${i}`);
    t.false(id.duplicate);
  });
  for (let i = 1; i < ids.length; i++) t.true(ids[i]!.hlc > ids[i - 1]!.hlc, `hlc strictly increases at ${i}`);
  // The node exposes no batch counter; what the spec makes observable is that the 500
  // sends queued in one tick (batched by default) all resolve, in order, stored once.
  const s = await stats(n.admin, topic);
  t.is(s.entries, 500);
});

test('producer: entries carry origin region, origin position, HLC, producer name, sequence id, publish time, key, properties, payload', async (t) => {
  const topic = await n.topic('fields');
  const producer = (await n.client.createProducer({ topic, producerName: 'p-fields' })) as Producer;
  const before = Date.now();
  const ids = [
    await producer.send({ payload: Buffer.from([0, 1, 2, 255]), key: 'k1', properties: { a: '1', b: 'two' }, eventTimeMs: 12345 }),
    await producer.send({ payload: 'second', key: '' }),
    await producer.send({ payload: 'third' }),
  ];
  const after = Date.now();
  const consumer = await n.client.subscribe({ topic, subscription: 'read', initialPosition: 'earliest' });
  const got = await receiveN(consumer, 3);
  t.deepEqual(
    got.map((m) => m.offset),
    ids.map((id) => id.offset),
  );
  const [a, b, c] = got as [(typeof got)[0], (typeof got)[0], (typeof got)[0]];
  t.is(a.originRegion, 'east-1');
  t.is(a.originPosition, a.offset);
  t.is(a.hlc, ids[0]!.hlc);
  t.is(a.producerName, 'p-fields');
  t.is(a.sequenceId, 0);
  t.true(a.publishTimeMs >= before - 1 && a.publishTimeMs <= after + 1, `publish time ${a.publishTimeMs} within [${before}, ${after}]`);
  t.is(a.eventTimeMs, 12345);
  t.is(a.key, 'k1');
  t.deepEqual(a.properties, { a: '1', b: 'two' });
  t.deepEqual([...a.payload], [0, 1, 2, 255]);
  t.is(a.redeliveryCount, 0);
  t.is(b.key, '', 'the empty key is kept distinct from no key');
  t.is(c.key, undefined);
  t.is(b.sequenceId, 1);
  t.is(c.sequenceId, 2);
  t.true(a.hlc < b.hlc && b.hlc < c.hlc);
  t.true(a.publishTimeMs <= b.publishTimeMs && b.publishTimeMs <= c.publishTimeMs);
  await consumer.close();
});

test('producer: two producers interleaved on one topic; each one is in order and the whole log has strictly increasing HLC', async (t) => {
  const topic = await n.topic('interleave');
  const p1 = (await n.client.createProducer({ topic, producerName: 'p-one' })) as Producer;
  const other = n.newClient();
  const p2 = (await other.createProducer({ topic, producerName: 'p-two', batchingMaxMessages: 7 })) as Producer;
  await Promise.all([
    ...Array.from({ length: 200 }, (_, i) => p1.send({ payload: `one-${i}` })),
    ...Array.from({ length: 200 }, (_, i) => p2.send({ payload: `two-${i}` })),
  ]);
  const consumer = await n.client.subscribe({ topic, subscription: 'all', initialPosition: 'earliest' });
  const got = await receiveN(consumer, 400);
  got.forEach((m, i) => t.is(m.offset, i));
  for (let i = 1; i < got.length; i++) t.true(got[i]!.hlc > got[i - 1]!.hlc, `hlc increases along the log at ${i}`);
  for (const name of ['p-one', 'p-two']) {
    const mine = got.filter((m) => m.producerName === name);
    t.is(mine.length, 200);
    t.deepEqual(
      mine.map((m) => m.sequenceId),
      Array.from({ length: 200 }, (_, i) => i),
      `${name}: sequence ids in log order`,
    );
    t.deepEqual(
      mine.map((m) => m.payload.toString()),
      Array.from({ length: 200 }, (_, i) => `${name === 'p-one' ? 'one' : 'two'}-${i}`),
    );
  }
  await consumer.close();
});

test('dedupe: a producer re-created with the same name continues its sequence; nothing is duplicated', async (t) => {
  const topic = await n.topic('resume');
  const c1 = n.newClient();
  const first = (await c1.createProducer({ topic, producerName: 'p-resume' })) as Producer;
  await Promise.all(Array.from({ length: 10 }, (_, i) => first.send({ payload: `a${i}` })));
  t.is(first.lastSequenceId, 9);
  await c1.close();

  const c2 = n.newClient();
  const second = (await c2.createProducer({ topic, producerName: 'p-resume' })) as Producer;
  t.is(second.lastSequenceId, 9, 'the node tells the producer its last stored sequence id');
  const next = await second.send({ payload: 'b0' });
  t.is(next.sequenceId, 10);
  t.is(next.offset, 10);
  t.false(next.duplicate);
  const consumer = await n.client.subscribe({ topic, subscription: 'check', initialPosition: 'earliest' });
  const got = await receiveN(consumer, 11);
  t.deepEqual(
    got.map((m) => m.payload.toString()),
    [...Array.from({ length: 10 }, (_, i) => `a${i}`), 'b0'],
  );
  t.true(await silentFor(consumer, 200), 'nothing beyond the 11 stored messages');
  await consumer.close();
});

test('dedupe: a second producer with a name already connected to the topic is refused (ADMQ_ERR_IN_USE)', async (t) => {
  const topic = await n.topic('samename');
  await n.client.createProducer({ topic, producerName: 'p-twice' });
  const err = await t.throwsAsync(n.newClient().createProducer({ topic, producerName: 'p-twice' }));
  t.is((err as { code?: string }).code, 'ADMQ_ERR_IN_USE');
});

test('dedupe: raw Produce stream resending stored sequence ids gets duplicate: true and the log stores each once', async (t) => {
  const topic = await n.topic('rawdedupe');
  const stub = rawStub(n.node.grpcAddress);
  try {
    const s = new RawStream<ProduceResponse>(stub.Produce());
    s.write({ open: { topic, producerName: 'raw-p' } });
    const opened = await s.next();
    t.is(opened.response, 'opened');
    t.is(String(opened.opened?.lastSequenceId), '-1');
    t.is(opened.opened?.region, 'east-1');

    s.write({ send: { requestId: 1, messages: [outbound(0, 's0'), outbound(1, 's1'), outbound(2, 's2')] } });
    const r1 = await s.next();
    t.deepEqual(
      r1.receipt?.results.map((r) => [String(r.sequenceId), String(r.offset), r.duplicate]),
      [
        ['0', '0', false],
        ['1', '1', false],
        ['2', '2', false],
      ],
    );
    // A resend of the last stored id, of an older one, a fresh one, and a duplicate inside the batch.
    s.write({ send: { requestId: 2, messages: [outbound(2, 's2-again'), outbound(1, 's1-again'), outbound(5, 's5'), outbound(5, 's5-again')] } });
    const r2 = await s.next();
    t.is(String(r2.receipt?.requestId), '2');
    const res = r2.receipt!.results;
    t.true(res[0]!.duplicate);
    t.is(String(res[0]!.offset), '2', 'the duplicate of the last stored id reports its stored offset');
    t.true(res[1]!.duplicate);
    t.false(res[2]!.duplicate);
    t.is(String(res[2]!.offset), '3');
    t.true(res[3]!.duplicate, 'a repeat inside the same batch is a duplicate too');
    s.end();
    await s.status;

    // A new stream with the same name learns where it stands.
    const s2 = new RawStream<ProduceResponse>(stub.Produce());
    s2.write({ open: { topic, producerName: 'raw-p' } });
    t.is(String((await s2.next()).opened?.lastSequenceId), '5');
    s2.write({ send: { requestId: 9, messages: [outbound(5, 'dup'), outbound(6, 's6')] } });
    const r3 = await s2.next();
    t.deepEqual(
      r3.receipt?.results.map((r) => r.duplicate),
      [true, false],
    );
    s2.end();
    await s2.status;
  } finally {
    stub.close();
  }
  const consumer = await n.client.subscribe({ topic, subscription: 'check', initialPosition: 'earliest' });
  const got = await receiveN(consumer, 5);
  t.deepEqual(
    got.map((m) => m.payload.toString()),
    ['s0', 's1', 's2', 's5', 's6'],
  );
  t.true(await silentFor(consumer, 200), 'no duplicate was stored');
  t.is((await stats(n.admin, topic)).entries, 5);
  await consumer.close();
});

test('producer: close waits for pending sends; a closed producer refuses new sends with ADMQ_ERR_CLOSED', async (t) => {
  const topic = await n.topic('close');
  const producer = (await n.client.createProducer({ topic })) as Producer;
  const pending = Array.from({ length: 50 }, (_, i) => producer.send({ payload: `c${i}` }));
  await producer.close();
  const ids = await Promise.all(pending);
  t.deepEqual(
    ids.map((id) => id.offset),
    Array.from({ length: 50 }, (_, i) => i),
  );
  const err = await t.throwsAsync(producer.send({ payload: 'late' }));
  t.is((err as { code?: string }).code, 'ADMQ_ERR_CLOSED');
  await producer.close(); // idempotent
});
