// Consumer: flow control, individual/cumulative/negative acks, ack timeout, seek.
import test from 'ava';
import { AdmqClientError, ErrorCode, type Producer } from '../../client/index.ts';
import { type ConsumeResponse, type WireMessage } from '../../proto/index.ts';
import { rawStub, RawStream, receiveN, silentFor, startNode, stats, waitFor, type TestNode } from './helpers.ts';

let n: TestNode;
test.before(async () => {
  n = await startNode({ negativeAckRedeliveryDelayMs: 100 });
});
test.after.always(async () => {
  await n?.close();
});

async function fill(topic: string, count: number, prefix = 'm'): Promise<void> {
  const producer = (await n.client.createProducer({ topic })) as Producer;
  await Promise.all(Array.from({ length: count }, (_, i) => producer.send({ payload: `${prefix}${i}`, key: `k${i % 5}` })));
  await producer.close();
}

/** Collects the messages of a raw consume stream until `count` arrived (bounded by timeoutMs). */
async function rawMessages(s: RawStream<ConsumeResponse>, count: number, timeoutMs = 5000): Promise<WireMessage[]> {
  const out: WireMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count) {
    const r = await s.next(Math.max(1, deadline - Date.now()));
    if (r.response === 'messages') out.push(...(r.messages?.messages ?? []));
  }
  return out;
}

test('flow control: a raw Consume stream granted K permits gets exactly K messages, then K more after another flow', async (t) => {
  const topic = await n.topic('rawflow');
  await fill(topic, 50);
  const stub = rawStub(n.node.grpcAddress);
  try {
    const s = new RawStream<ConsumeResponse>(stub.Consume());
    s.write({ subscribe: { topic, subscription: 'raw', type: 'EXCLUSIVE', consumerName: 'raw-c', initialPosition: 'EARLIEST' } });
    const subscribed = await s.next();
    t.is(subscribed.response, 'subscribed');
    t.is(subscribed.subscribed?.region, 'standalone');
    t.true(await waitFor('no delivery without permits', async () => (await stats(n.admin, topic)).subscriptions.raw?.consumers.length === 1));
    t.is(s.responses.length, 0, 'nothing is delivered before any flow');

    s.write({ flow: { permits: 7 } });
    const first = await rawMessages(s, 7);
    t.is(first.length, 7, 'exactly 7 messages for 7 permits');
    t.deepEqual(
      first.map((m) => Number(m.offset)),
      [0, 1, 2, 3, 4, 5, 6],
    );
    const st = await waitFor('permits used up', async () => {
      const c = (await stats(n.admin, topic)).subscriptions.raw?.consumers[0];
      return c && c.permits === 0 && c.delivered === 7 ? c : undefined;
    });
    t.is(st.unacked, 7);
    // A bounded observation window: nothing beyond the permits arrives.
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.is(s.responses.length, 0, 'no message beyond the granted permits');
    t.is((await stats(n.admin, topic)).subscriptions.raw?.consumers[0]?.delivered, 7);

    s.write({ flow: { permits: 3 } });
    const second = await rawMessages(s, 3);
    t.is(second.length, 3);
    t.deepEqual(
      second.map((m) => Number(m.offset)),
      [7, 8, 9],
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.is(s.responses.length, 0, 'still no message beyond the permits');
    s.end();
    await s.status;
  } finally {
    stub.close();
  }
});

test('flow control: with receiverQueueSize 10 the node never has more than 10 messages outstanding beyond what the app received', async (t) => {
  const topic = await n.topic('queue');
  await fill(topic, 120);
  const consumer = await n.client.subscribe({ topic, subscription: 'q', initialPosition: 'earliest', receiverQueueSize: 10 });
  const full = await waitFor('queue full', async () => {
    const c = (await stats(n.admin, topic)).subscriptions.q?.consumers[0];
    return c && c.delivered === 10 ? c : undefined;
  });
  t.is(full.permits, 0);
  t.is(full.unacked, 10);
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.is((await stats(n.admin, topic)).subscriptions.q?.consumers[0]?.delivered, 10, 'the node holds back beyond the queue size');

  let received = 0;
  for (let round = 0; round < 40 && received < 120; round++) {
    const batch = await receiveN(consumer, Math.min(3, 120 - received));
    for (const m of batch) consumer.ack(m);
    received += batch.length;
    const c = (await stats(n.admin, topic)).subscriptions.q?.consumers[0];
    t.truthy(c);
    t.true(c!.delivered - received <= 10, `delivered ${c!.delivered} with ${received} received: at most 10 outstanding`);
  }
  t.is(received, 120);
  await consumer.close();
});

test('ack: individually acked messages are not redelivered to the next consumer; the unacked ones are, with redeliveryCount >= 1', async (t) => {
  const topic = await n.topic('indiv');
  await fill(topic, 10);
  const c1 = await n.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest' });
  const got = await receiveN(c1, 10);
  for (const m of got) if (m.offset % 2 === 0) c1.ack(m);
  await waitFor('acks applied', async () => (await stats(n.admin, topic)).subscriptions.s?.backlog === 5);
  await c1.close();
  const c2 = await n.client.subscribe({ topic, subscription: 's' });
  const again = await receiveN(c2, 5);
  t.deepEqual(
    again.map((m) => m.offset).sort((a, b) => a - b),
    [1, 3, 5, 7, 9],
  );
  for (const m of again) t.true(m.redeliveryCount >= 1, `offset ${m.offset} redeliveryCount ${m.redeliveryCount}`);
  for (const m of again) c2.ack(m);
  t.true(await silentFor(c2, 200));
  await waitFor('backlog empty', async () => (await stats(n.admin, topic)).subscriptions.s?.backlog === 0);
  t.pass();
  await c2.close();
});

for (const type of ['exclusive', 'failover'] as const) {
  test(`ack: cumulative ack on a ${type} subscription acknowledges everything up to the message`, async (t) => {
    const topic = await n.topic(`cumul-${type}`);
    await fill(topic, 20);
    const c1 = await n.client.subscribe({ topic, subscription: 's', subscriptionType: type, initialPosition: 'earliest' });
    const got = await receiveN(c1, 20);
    c1.ackCumulative(got[11]!);
    const sub = await waitFor('cumulative ack applied', async () => {
      const s = (await stats(n.admin, topic)).subscriptions.s;
      return s && s.ackedBelow === 12 ? s : undefined;
    });
    t.is(sub.backlog, 8);
    t.is(sub.unacked, 8);
    await c1.close();
    const c2 = await n.client.subscribe({ topic, subscription: 's', subscriptionType: type });
    const rest = await receiveN(c2, 8);
    t.deepEqual(
      rest.map((m) => m.offset),
      [12, 13, 14, 15, 16, 17, 18, 19],
    );
    t.true(await silentFor(c2, 200));
    await c2.close();
  });
}

test('ack: cumulative ack on a shared subscription is refused with ADMQ_ERR_BAD_REQUEST and acks nothing', async (t) => {
  const topic = await n.topic('cumul-shared');
  await fill(topic, 5);
  const c = await n.client.subscribe({ topic, subscription: 's', subscriptionType: 'shared', initialPosition: 'earliest' });
  const got = await receiveN(c, 5);
  c.ackCumulative(got[4]!);
  const err = await t.throwsAsync(c.receive(5000), { instanceOf: AdmqClientError });
  t.is(err?.code, ErrorCode.BadRequest);
  t.is((await stats(n.admin, topic)).subscriptions.s?.backlog, 5);
  await c.close();
});

test('nack: a negatively acked message comes back with redeliveryCount >= 1; others are not disturbed', async (t) => {
  const topic = await n.topic('nack');
  await fill(topic, 3);
  const c = await n.client.subscribe({ topic, subscription: 's', subscriptionType: 'shared', initialPosition: 'earliest', negativeAckRedeliveryDelayMs: 50 });
  const got = await receiveN(c, 3);
  c.ack(got[0]!);
  c.ack(got[2]!);
  c.nack(got[1]!);
  const back = await c.receive(5000);
  t.is(back.offset, 1);
  t.is(back.payload.toString(), 'm1');
  t.true(back.redeliveryCount >= 1);
  c.nack(back);
  const twice = await c.receive(5000);
  t.is(twice.offset, 1);
  t.true(twice.redeliveryCount >= 2, `second redelivery counts up (${twice.redeliveryCount})`);
  c.ack(twice);
  await waitFor('all acked', async () => (await stats(n.admin, topic)).subscriptions.s?.backlog === 0);
  t.true(await silentFor(c, 200));
  await c.close();
});

test('nack: the node default negativeAckRedeliveryDelayMs applies when the consumer sets none', async (t) => {
  const topic = await n.topic('nack-default');
  await fill(topic, 1);
  const c = await n.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest' });
  const m = await c.receive(5000);
  c.nack(m);
  const back = await c.receive(5000); // node default here is 100 ms
  t.is(back.offset, m.offset);
  t.true(back.redeliveryCount >= 1);
  await c.close();
});

test('ack timeout: a message not acked within ackTimeoutMs is redelivered; an acked one is not', async (t) => {
  const topic = await n.topic('acktimeout');
  await fill(topic, 2);
  const c = await n.client.subscribe({ topic, subscription: 's', subscriptionType: 'shared', initialPosition: 'earliest', ackTimeoutMs: 300 });
  const [a, b] = (await receiveN(c, 2)) as [Awaited<ReturnType<typeof c.receive>>, Awaited<ReturnType<typeof c.receive>>];
  c.ack(a);
  const back = await c.receive(5000);
  t.is(back.offset, b.offset);
  t.true(back.redeliveryCount >= 1);
  c.ack(back);
  await waitFor('acked', async () => (await stats(n.admin, topic)).subscriptions.s?.backlog === 0);
  t.true(await silentFor(c, 500), 'nothing more after both are acked');
  await c.close();
});

test('seek: by offset, the next message received is that offset; earlier ones count as acked', async (t) => {
  const topic = await n.topic('seekoff');
  await fill(topic, 30);
  const c = await n.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest', receiverQueueSize: 5 });
  const first = await receiveN(c, 3);
  t.deepEqual(
    first.map((m) => m.offset),
    [0, 1, 2],
  );
  await c.seek({ offset: 20 });
  const after = await receiveN(c, 10);
  t.deepEqual(
    after.map((m) => m.offset),
    Array.from({ length: 10 }, (_, i) => 20 + i),
  );
  // Seek backwards replays.
  await c.seek({ offset: 5 });
  const back = await c.receive(5000);
  t.is(back.offset, 5);
  t.is(back.payload.toString(), 'm5');
  await c.close();
});

test('seek: by publish time, delivery resumes at the first message published at or after that time', async (t) => {
  const topic = await n.topic('seektime');
  const producer = (await n.client.createProducer({ topic })) as Producer;
  const early = await Promise.all(Array.from({ length: 10 }, (_, i) => producer.send({ payload: `early${i}` })));
  const c = await n.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest' });
  const earlyMsgs = await receiveN(c, 10);
  const lastEarly = Math.max(...earlyMsgs.map((m) => m.publishTimeMs));
  // Let the wall clock move past the early batch (bounded).
  await waitFor('clock to advance', () => Date.now() > lastEarly + 2, 2000, 1);
  const late = await Promise.all(Array.from({ length: 10 }, (_, i) => producer.send({ payload: `late${i}` })));
  const lateMsgs = await receiveN(c, 10);
  const cut = lateMsgs[0]!.publishTimeMs;
  t.true(cut > lastEarly);
  await c.seek({ publishTimeMs: cut });
  const resumed = await c.receive(5000);
  t.is(resumed.offset, late[0]!.offset, 'first message at or after the time');
  await c.seek({ publishTimeMs: 0 });
  t.is((await c.receive(5000)).offset, early[0]!.offset, 'time 0 seeks to the start');
  await c.seek({ publishTimeMs: lateMsgs[9]!.publishTimeMs + 60_000 });
  t.true(await silentFor(c, 200), 'a time after the last message seeks to the end');
  await producer.send({ payload: 'future' });
  t.is((await c.receive(5000)).payload.toString(), 'future');
  await c.close();
});

test('redeliverUnacknowledged: unacked messages come back and the consumer keeps receiving', async (t) => {
  const topic = await n.topic('redeliver');
  await fill(topic, 4);
  const c = await n.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest', receiverQueueSize: 4 });
  const got = await receiveN(c, 4);
  c.ack(got[0]!);
  c.redeliverUnacknowledged();
  const again = await receiveN(c, 3);
  t.deepEqual(
    again.map((m) => m.offset),
    [1, 2, 3],
  );
  for (const m of again) t.true(m.redeliveryCount >= 1);
  await c.close();
});

test('redeliverUnacknowledged: with messages still buffered in the client, they are redelivered (no stall)', async (t) => {
  const topic = await n.topic('redeliver-buffered');
  await fill(topic, 4);
  const c = await n.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest', receiverQueueSize: 4 });
  await waitFor('client queue full', async () => (await stats(n.admin, topic)).subscriptions.s?.consumers[0]?.delivered === 4);
  const first = await c.receive(5000);
  t.is(first.offset, 0);
  c.redeliverUnacknowledged();
  const again = await receiveN(c, 4, 3000);
  t.deepEqual(
    again.map((m) => m.offset),
    [0, 1, 2, 3],
  );
  await c.close();
});
