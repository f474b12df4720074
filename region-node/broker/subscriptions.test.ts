// Subscription semantics against a real node: types, acks, redelivery, seek, flow control.
import test from 'ava';
import { AdmqClientError, ErrorCode, type AnyProducer, type Message } from '../../client/index.ts';
import { receiveMany, startFixture, type Fixture } from '../../test-support/node-fixture.ts';

let f: Fixture;
test.before(async () => {
  f = await startFixture({ negativeAckRedeliveryDelayMs: 50 });
});
test.after.always(() => f.close());

async function fill(topic: string, count: number, key?: (i: number) => string): Promise<AnyProducer> {
  const producer = await f.client.createProducer({ topic });
  await Promise.all(Array.from({ length: count }, (_, i) => producer.send({ payload: `m${i}`, key: key?.(i) })));
  return producer;
}

test('exclusive: a second consumer is refused with ADMQ_ERR_CONSUMER_BUSY', async (t) => {
  const topic = await f.topic();
  const first = await f.client.subscribe({ topic, subscription: 'x', subscriptionType: 'exclusive' });
  const error = await t.throwsAsync(f.client.subscribe({ topic, subscription: 'x', subscriptionType: 'exclusive' }), { instanceOf: AdmqClientError });
  t.is(error?.code, ErrorCode.ConsumerBusy);
  await first.close();
  const again = await f.client.subscribe({ topic, subscription: 'x', subscriptionType: 'exclusive' });
  await again.close();
});

test('entries carry every origin field; HLC and offsets increase along the log', async (t) => {
  const topic = await f.topic();
  const producer = await f.client.createProducer({ topic, producerName: 'fields' });
  await producer.send({ payload: 'a', key: 'k', properties: { p: '1' }, eventTimeMs: 42 });
  await producer.send({ payload: 'b' });
  const consumer = await f.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest' });
  const [a, b] = (await receiveMany(consumer, 2)) as [Message, Message];
  t.like(a, { offset: 0, originRegion: 'standalone', originPosition: 0, producerName: 'fields', sequenceId: 0, key: 'k', properties: { p: '1' }, eventTimeMs: 42 });
  t.is(a.payload.toString(), 'a');
  t.is(b.key, undefined);
  t.true(b.hlc > a.hlc);
  t.true(b.publishTimeMs >= a.publishTimeMs && a.publishTimeMs > 0);
  await consumer.close();
});

test('individual ack: only unacked messages come back after the consumer reconnects', async (t) => {
  const topic = await f.topic();
  await fill(topic, 10);
  const c1 = await f.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest' });
  const got = await receiveMany(c1, 10);
  for (const m of got) if (m.offset % 2 === 0) c1.ack(m);
  await c1.close();
  const c2 = await f.client.subscribe({ topic, subscription: 's' });
  const again = await receiveMany(c2, 5);
  t.deepEqual(again.map((m) => m.offset), [1, 3, 5, 7, 9]);
  t.true(again.every((m) => m.redeliveryCount >= 1));
  await c2.close();
});

test('cumulative ack: acknowledges everything up to the message', async (t) => {
  const topic = await f.topic();
  await fill(topic, 10);
  const c1 = await f.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest' });
  const got = await receiveMany(c1, 10);
  c1.ackCumulative(got[6] as Message);
  await c1.close();
  const c2 = await f.client.subscribe({ topic, subscription: 's' });
  t.deepEqual((await receiveMany(c2, 3)).map((m) => m.offset), [7, 8, 9]);
  await c2.close();
});

test('negative ack: the message comes back with a higher redelivery count', async (t) => {
  const topic = await f.topic();
  await fill(topic, 3);
  const c = await f.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest', negativeAckRedeliveryDelayMs: 20 });
  const [m0, m1, m2] = (await receiveMany(c, 3)) as [Message, Message, Message];
  c.ack(m0);
  c.nack(m1);
  c.ack(m2);
  const back = await c.receive(5000);
  t.is(back.offset, 1);
  t.is(back.redeliveryCount, 1);
  await c.close();
});

test('ack timeout: an unacked message is redelivered after ackTimeoutMs', async (t) => {
  const topic = await f.topic();
  await fill(topic, 1);
  const c = await f.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest', ackTimeoutMs: 200 });
  const first = await c.receive(5000);
  const again = await c.receive(5000);
  t.is(again.offset, first.offset);
  t.is(again.redeliveryCount, 1);
  c.ack(again);
  await c.close();
});

test('seek: by offset and by publish time', async (t) => {
  const topic = await f.topic();
  const producer = await f.client.createProducer({ topic });
  for (let i = 0; i < 5; i++) await producer.send({ payload: `early${i}` });
  await new Promise((r) => setTimeout(r, 20)); // publish times are ms; make a gap to seek into
  const boundary = Date.now();
  await new Promise((r) => setTimeout(r, 5));
  for (let i = 0; i < 5; i++) await producer.send({ payload: `late${i}` });
  const c = await f.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest' });
  for (const m of await receiveMany(c, 10)) c.ack(m);
  await c.seek({ offset: 2 });
  t.deepEqual((await receiveMany(c, 8)).map((m) => m.offset), [2, 3, 4, 5, 6, 7, 8, 9]);
  await c.seek({ publishTimeMs: boundary });
  const afterTime = await c.receive(5000);
  t.is(afterTime.payload.toString(), 'late0');
  await c.close();
});

test('flow control: the node never sends more than receiverQueueSize ahead of the application', async (t) => {
  const topic = await f.topic();
  await fill(topic, 100);
  const c = await f.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest', receiverQueueSize: 10 });
  const statsSub = async () => ((await f.admin.topicStats(topic)) as { subscriptions: Record<string, { consumers: Array<{ delivered: number; permits: number }> }> }).subscriptions.s;
  // Wait until the first window is delivered, then check that no more was sent.
  for (let i = 0; i < 100 && ((await statsSub())?.consumers[0]?.delivered ?? 0) < 10; i++) await new Promise((r) => setTimeout(r, 20));
  const before = await statsSub();
  t.is(before?.consumers[0]?.delivered, 10);
  t.is(before?.consumers[0]?.permits, 0);
  await receiveMany(c, 5); // half the queue consumed: permits are granted back
  for (let i = 0; i < 100 && ((await statsSub())?.consumers[0]?.delivered ?? 0) < 15; i++) await new Promise((r) => setTimeout(r, 20));
  t.is((await statsSub())?.consumers[0]?.delivered, 15);
  await c.close();
});

test('failover: only the active consumer receives; when it leaves the other takes over, nothing lost', async (t) => {
  const topic = await f.topic();
  const a = await f.client.subscribe({ topic, subscription: 'fo', subscriptionType: 'failover', consumerName: 'a', initialPosition: 'earliest' });
  const b = await f.client.subscribe({ topic, subscription: 'fo', subscriptionType: 'failover', consumerName: 'b' });
  await fill(topic, 20);
  const fromA = await receiveMany(a, 10);
  for (const m of fromA) a.ack(m);
  await t.throwsAsync(b.receive(300), { instanceOf: AdmqClientError }, 'the standby receives nothing');
  await a.close();
  const fromB = await receiveMany(b, 10);
  t.deepEqual(fromB.map((m) => m.offset), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  await b.close();
});

test('shared: 4 consumers share 400 messages, each one delivered, all consumers used', async (t) => {
  const topic = await f.topic();
  const consumers = await Promise.all([0, 1, 2, 3].map((i) => f.client.subscribe({ topic, subscription: 'sh', subscriptionType: 'shared', consumerName: `c${i}`, receiverQueueSize: 20, initialPosition: 'earliest' })));
  await fill(topic, 400);
  const seen = new Map<number, number>();
  const per = [0, 0, 0, 0];
  await Promise.all(
    consumers.map(async (c, i) => {
      for (;;) {
        let m: Message;
        try {
          m = await c.receive(1000);
        } catch {
          return;
        }
        seen.set(m.offset, (seen.get(m.offset) ?? 0) + 1);
        per[i] = (per[i] ?? 0) + 1;
        c.ack(m);
      }
    }),
  );
  t.is(seen.size, 400);
  t.true([...seen.values()].every((n) => n === 1));
  t.true(per.every((n) => n > 0), `every consumer received some (${per.join(', ')})`);
  await Promise.all(consumers.map((c) => c.close()));
});

test('key_shared: a key sticks to one consumer, and per-key order holds while consumers join and leave', async (t) => {
  const topic = await f.topic();
  const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
  const history: Array<{ consumer: string; key: string; offset: number }> = [];
  const run = (name: string) =>
    f.client.subscribe({ topic, subscription: 'ks', subscriptionType: 'key_shared', consumerName: name, receiverQueueSize: 50, initialPosition: 'earliest' }).then((c) => {
      let open = true;
      const loop = (async () => {
        while (open) {
          let m: Message;
          try {
            m = await c.receive(300);
          } catch {
            continue;
          }
          history.push({ consumer: name, key: m.key ?? '', offset: m.offset });
          c.ack(m);
        }
      })();
      return { close: async () => { open = false; await loop; await c.close(); } };
    });
  const a = await run('a');
  const producer = await f.client.createProducer({ topic });
  const sendSome = (n: number, from: number) => Promise.all(Array.from({ length: n }, (_, i) => producer.send({ payload: `${from + i}`, key: keys[(from + i) % keys.length] })));
  await sendSome(300, 0);
  const b = await run('b'); // joins with messages in flight
  await sendSome(300, 300);
  const c = await run('c');
  await sendSome(300, 600);
  for (let i = 0; i < 300 && new Set(history.map((h) => h.offset)).size < 900; i++) await new Promise((r) => setTimeout(r, 20));
  await a.close(); // leaves; its keys move
  await sendSome(300, 900);
  for (let i = 0; i < 300 && new Set(history.map((h) => h.offset)).size < 1200; i++) await new Promise((r) => setTimeout(r, 20));
  await b.close();
  await c.close();
  const firstDelivery = new Map<number, { key: string }>();
  for (const h of history) if (!firstDelivery.has(h.offset)) firstDelivery.set(h.offset, h);
  t.is(firstDelivery.size, 1200, 'every message delivered');
  // Per key, first deliveries appear in offset order.
  const lastOffsetByKey = new Map<string, number>();
  let violations = 0;
  for (const h of history) {
    if (firstDelivery.get(h.offset) !== h) continue;
    if ((lastOffsetByKey.get(h.key) ?? -1) > h.offset) violations++;
    lastOffsetByKey.set(h.key, h.offset);
  }
  t.is(violations, 0, 'per-key order preserved across joins and leaves');
  // While membership is stable (a, b and c present), each key is served by exactly one consumer.
  const owners = new Map<string, Set<string>>();
  for (const h of history) {
    if (h.offset < 600 || h.offset >= 900 || firstDelivery.get(h.offset) !== h) continue;
    const set = owners.get(h.key) ?? new Set<string>();
    set.add(h.consumer);
    owners.set(h.key, set);
  }
  t.is(owners.size, keys.length);
  t.true([...owners.values()].every((set) => set.size === 1), 'one consumer per key');
  const usedConsumers = new Set(history.map((h) => h.consumer));
  t.deepEqual([...usedConsumers].sort(), ['a', 'b', 'c']);
});

test('partitioned topic: 3 partitions, keys pin to partitions, 5 shared consumers receive everything', async (t) => {
  const topic = await f.topic(undefined, 3);
  const consumers = await Promise.all([0, 1, 2, 3, 4].map((i) => f.client.subscribe({ topic, subscription: 'p', subscriptionType: 'shared', consumerName: `c${i}`, initialPosition: 'earliest', receiverQueueSize: 10 })));
  const producer = await f.client.createProducer({ topic });
  const ids = await Promise.all(Array.from({ length: 300 }, (_, i) => producer.send({ payload: `${i}`, key: `k${i % 10}` })));
  const partitionOfKey = new Map<string, string>();
  ids.forEach((id, i) => {
    const key = `k${i % 10}`;
    const known = partitionOfKey.get(key);
    if (known) t.is(id.topic, known, `${key} stays on one partition`);
    partitionOfKey.set(key, id.topic);
  });
  const seen = new Set<string>();
  const per = [0, 0, 0, 0, 0];
  await Promise.all(consumers.map(async (c, i) => {
    for (;;) {
      let m: Message;
      try {
        m = await c.receive(1000);
      } catch {
        return;
      }
      seen.add(m.payload.toString());
      per[i] = (per[i] ?? 0) + 1;
      c.ack(m);
    }
  }));
  t.is(seen.size, 300);
  t.true(per.every((n) => n > 0), `more consumers than partitions, all used (${per.join(', ')})`);
});
