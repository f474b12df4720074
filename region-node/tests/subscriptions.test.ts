// Subscription types: exclusive, failover, shared, key_shared (including joins and leaves).
import test from 'ava';
import { AdmqClientError, ErrorCode, type AdmqConsumer, type Consumer, type Message, type Producer } from '../../client/index.ts';
import { prng, receiveN, seedFromEnv, silentFor, startNode, stats, waitFor, type TestNode } from './helpers.ts';

let n: TestNode;
test.before(async () => {
  n = await startNode();
});
test.after.always(async () => {
  await n?.close();
});

async function produce(topic: string, count: number, key?: (i: number) => string | undefined): Promise<void> {
  const producer = (await n.client.createProducer({ topic })) as Producer;
  await Promise.all(Array.from({ length: count }, (_, i) => producer.send({ payload: `m${i}`, key: key?.(i) })));
  await producer.close();
}

interface Delivery {
  consumer: string;
  offset: number;
  key: string | undefined;
  redeliveryCount: number;
  topic: string;
}

/**
 * Runs one receive loop per consumer until `done()` or the deadline; every message is
 * recorded in arrival order and acked. Bounded in time.
 */
async function consumeAll(consumers: Array<[string, AdmqConsumer]>, done: () => boolean, history: Delivery[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await Promise.all(
    consumers.map(async ([name, c]) => {
      while (!done() && Date.now() < deadline) {
        let m: Message;
        try {
          m = await c.receive(100);
        } catch (error) {
          if ((error as AdmqClientError).code === ErrorCode.Timeout) continue;
          throw error;
        }
        history.push({ consumer: name, offset: m.offset, key: m.key, redeliveryCount: m.redeliveryCount, topic: m.topic });
        c.ack(m);
      }
    }),
  );
}

// ------------------------------------------------------------------ exclusive

test('exclusive: a second consumer on the subscription gets ADMQ_ERR_CONSUMER_BUSY; the first keeps receiving', async (t) => {
  const topic = await n.topic('excl');
  const first = await n.client.subscribe({ topic, subscription: 's', subscriptionType: 'exclusive' });
  const err = await t.throwsAsync(n.newClient().subscribe({ topic, subscription: 's', subscriptionType: 'exclusive' }), { instanceOf: AdmqClientError });
  t.is(err?.code, ErrorCode.ConsumerBusy);
  await produce(topic, 3);
  t.deepEqual(
    (await receiveN(first, 3)).map((m) => m.offset),
    [0, 1, 2],
  );
  // Another subscription on the same topic is independent.
  const other = await n.newClient().subscribe({ topic, subscription: 'other', subscriptionType: 'exclusive', initialPosition: 'earliest' });
  t.is((await other.receive(5000)).offset, 0);
  // Once the first leaves, a new exclusive consumer may attach.
  await first.close();
  const next = await n.newClient().subscribe({ topic, subscription: 's', subscriptionType: 'exclusive' });
  t.truthy(next);
});

test('exclusive: attaching a consumer of another type to a subscription in use gets ADMQ_ERR_SUBSCRIPTION_TYPE', async (t) => {
  const topic = await n.topic('typemix');
  await n.client.subscribe({ topic, subscription: 's', subscriptionType: 'shared' });
  const err = await t.throwsAsync(n.newClient().subscribe({ topic, subscription: 's', subscriptionType: 'exclusive' }), { instanceOf: AdmqClientError });
  t.is(err?.code, ErrorCode.SubscriptionTypeMismatch);
});

// ------------------------------------------------------------------ failover

test('failover: only the active consumer receives; when it closes the other takes over and no message is lost', async (t) => {
  const topic = await n.topic('failover');
  const cA = n.newClient();
  const cB = n.newClient();
  const a = (await cA.subscribe({ topic, subscription: 'f', subscriptionType: 'failover', consumerName: 'fa', initialPosition: 'earliest', receiverQueueSize: 10 })) as Consumer;
  const b = (await cB.subscribe({ topic, subscription: 'f', subscriptionType: 'failover', consumerName: 'fb', initialPosition: 'earliest', receiverQueueSize: 10 })) as Consumer;
  await produce(topic, 50);
  const fromA = await receiveN(a, 20);
  t.deepEqual(
    fromA.map((m) => m.offset),
    Array.from({ length: 20 }, (_, i) => i),
  );
  for (const m of fromA.slice(0, 12)) a.ack(m);
  const sub = await waitFor('acks applied', async () => {
    const s = (await stats(n.admin, topic)).subscriptions.f;
    return s && s.backlog === 38 ? s : undefined;
  });
  const byName = Object.fromEntries(sub.consumers.map((c) => [c.name, c]));
  t.true(byName.fa?.active);
  t.false(byName.fb?.active);
  t.is(byName.fb?.delivered, 0, 'the standby consumer received nothing');
  t.true(await silentFor(b, 150));

  await a.close();
  const fromB = await receiveN(b, 38);
  t.deepEqual(
    fromB.map((m) => m.offset).sort((x, y) => x - y),
    Array.from({ length: 38 }, (_, i) => 12 + i),
    'every unacked message reaches the new active consumer',
  );
  await waitFor('b told it is active', () => b.isActive);
  for (const m of fromB) b.ack(m);
  await waitFor('all acked', async () => (await stats(n.admin, topic)).subscriptions.f?.backlog === 0);
  t.pass();
});

test('failover: the consumer with the lowest priority level is active even if it joins later', async (t) => {
  const topic = await n.topic('failover-prio');
  const low = (await n.newClient().subscribe({ topic, subscription: 'f', subscriptionType: 'failover', consumerName: 'second-choice', priorityLevel: 5 })) as Consumer;
  const high = (await n.newClient().subscribe({ topic, subscription: 'f', subscriptionType: 'failover', consumerName: 'first-choice', priorityLevel: 1 })) as Consumer;
  await produce(topic, 5);
  t.deepEqual(
    (await receiveN(high, 5)).map((m) => m.offset),
    [0, 1, 2, 3, 4],
  );
  t.true(await silentFor(low, 150));
});

test('failover: a consumer that joins as standby reports isActive false', async (t) => {
  const topic = await n.topic('failover-flag');
  const a = (await n.newClient().subscribe({ topic, subscription: 'f', subscriptionType: 'failover', consumerName: 'fa' })) as Consumer;
  const b = (await n.newClient().subscribe({ topic, subscription: 'f', subscriptionType: 'failover', consumerName: 'fb' })) as Consumer;
  const s = await waitFor('both attached', async () => {
    const sub = (await stats(n.admin, topic)).subscriptions.f;
    return sub?.consumers.length === 2 ? sub : undefined;
  });
  t.deepEqual(
    s.consumers.map((c) => [c.name, c.active]),
    [
      ['fa', true],
      ['fb', false],
    ],
  );
  t.true(a.isActive);
  t.false(b.isActive, 'the standby must not claim to be active');
});

// ------------------------------------------------------------------ shared

test('shared: messages spread across 4 consumers; every message delivered exactly once, none lost', async (t) => {
  const topic = await n.topic('shared');
  const consumers: Array<[string, AdmqConsumer]> = [];
  for (let i = 0; i < 4; i++) {
    consumers.push([`s${i}`, await n.newClient().subscribe({ topic, subscription: 'sh', subscriptionType: 'shared', consumerName: `s${i}`, receiverQueueSize: 20 })]);
  }
  await produce(topic, 400);
  const history: Delivery[] = [];
  const seen = new Set<number>();
  await consumeAll(consumers, () => history.length >= 400, history);
  for (const d of history) seen.add(d.offset);
  t.is(seen.size, 400, 'every message delivered');
  t.is(history.length, 400, 'no message delivered twice');
  for (const [name] of consumers) t.true(history.some((d) => d.consumer === name), `${name} received some`);
  await waitFor('backlog drained', async () => (await stats(n.admin, topic)).subscriptions.sh?.backlog === 0);
  t.pass();
});

test('shared: a consumer that leaves with unacked messages loses none; the others get them', async (t) => {
  const topic = await n.topic('shared-leave');
  const leaving = await n.newClient().subscribe({ topic, subscription: 'sh', subscriptionType: 'shared', consumerName: 'leaving', receiverQueueSize: 30 });
  const staying = await n.newClient().subscribe({ topic, subscription: 'sh', subscriptionType: 'shared', consumerName: 'staying', receiverQueueSize: 30 });
  await produce(topic, 100);
  const got = await receiveN(leaving, 5);
  for (const m of got.slice(0, 2)) leaving.ack(m);
  await leaving.close(); // 3 received but unacked, plus whatever sat in its queue
  const acked = new Set(got.slice(0, 2).map((m) => m.offset));
  const history: Delivery[] = [];
  const seen = new Set<number>(acked);
  await consumeAll(
    [['staying', staying]],
    () => {
      for (const d of history) seen.add(d.offset);
      return seen.size >= 100;
    },
    history,
  );
  t.is(seen.size, 100, 'nothing lost');
  for (const m of got.slice(2)) t.true(history.some((d) => d.offset === m.offset && d.redeliveryCount >= 1), `offset ${m.offset} redelivered`);
});

test('shared: 5 consumers on a 2-partition topic all receive; nothing lost', async (t) => {
  const topic = await n.topic('shared-parts', 2);
  const consumers: Array<[string, AdmqConsumer]> = [];
  for (let i = 0; i < 5; i++) {
    consumers.push([`p${i}`, await n.newClient().subscribe({ topic, subscription: 'sh', subscriptionType: 'shared', consumerName: `p${i}`, receiverQueueSize: 10 })]);
  }
  await produce(topic, 300);
  const history: Delivery[] = [];
  const seen = new Set<string>();
  await consumeAll(
    consumers,
    () => {
      for (const d of history) seen.add(`${d.topic}@${d.offset}`);
      return seen.size >= 300;
    },
    history,
  );
  t.is(seen.size, 300);
  for (const [name] of consumers) t.true(history.some((d) => d.consumer === name), `${name} received some`);
});

// ------------------------------------------------------------------ key_shared

test('key_shared: same key always reaches the same consumer (3 consumers, 30 keys)', async (t) => {
  const topic = await n.topic('ks');
  const consumers: Array<[string, AdmqConsumer]> = [];
  for (let i = 0; i < 3; i++) {
    consumers.push([`k${i}`, await n.newClient().subscribe({ topic, subscription: 'ks', subscriptionType: 'key_shared', consumerName: `k${i}`, receiverQueueSize: 50 })]);
  }
  await produce(topic, 600, (i) => `key-${i % 30}`);
  const history: Delivery[] = [];
  await consumeAll(consumers, () => history.length >= 600, history);
  t.is(new Set(history.map((d) => d.offset)).size, 600);
  const owner = new Map<string, string>();
  for (const d of history) {
    const o = owner.get(d.key ?? '');
    if (o === undefined) owner.set(d.key ?? '', d.consumer);
    else if (o !== d.consumer) t.fail(`key ${d.key} went to ${o} and ${d.consumer}`);
  }
  t.is(owner.size, 30);
  t.true(new Set(owner.values()).size >= 2, 'keys are spread over more than one consumer');
  // Per key, delivery follows offset order.
  const last = new Map<string, number>();
  for (const d of history) {
    const k = d.key ?? '';
    t.true((last.get(k) ?? -1) < d.offset, `key ${k}: ${d.offset} after ${last.get(k)}`);
    last.set(k, d.offset);
  }
});

/** For every key, the offsets in order of first delivery must increase. Returns violations. */
function orderViolations(history: Delivery[]): string[] {
  const firstSeen = new Set<number>();
  const lastFirst = new Map<string, number>();
  const out: string[] = [];
  for (const d of history) {
    if (firstSeen.has(d.offset)) continue;
    firstSeen.add(d.offset);
    const k = d.key ?? '';
    const prev = lastFirst.get(k);
    if (prev !== undefined && prev > d.offset) out.push(`key ${k}: offset ${d.offset} first delivered (to ${d.consumer}) after ${prev}`);
    lastFirst.set(k, Math.max(prev ?? -1, d.offset));
  }
  return out;
}

test('key_shared: a consumer that joins while entries are held for their owner gets no key ahead of that owner (deterministic)', async (t) => {
  const topic = await n.topic('ks-join');
  const history: Delivery[] = [];
  const a = await n.newClient().subscribe({ topic, subscription: 'ks', subscriptionType: 'key_shared', consumerName: 'owner-a', initialPosition: 'earliest', receiverQueueSize: 10 });
  const b = await n.newClient().subscribe({ topic, subscription: 'ks', subscriptionType: 'key_shared', consumerName: 'owner-b', initialPosition: 'earliest', receiverQueueSize: 200 });
  await produce(topic, 60, (i) => `key-${i % 20}`);
  const before = await waitFor('A holds 10, B takes its keys, A\'s other entries are held back', async () => {
    const s = (await stats(n.admin, topic)).subscriptions.ks;
    const ca = s?.consumers.find((c) => c.name === 'owner-a');
    return s && ca?.delivered === 10 && s.readPosition === 60 && s.pendingRedelivery > 0 ? s : undefined;
  });
  t.log(`held for owner-a before the join: ${before.pendingRedelivery}`);
  const c = await n.newClient().subscribe({ topic, subscription: 'ks', subscriptionType: 'key_shared', consumerName: 'joiner-c', receiverQueueSize: 100 });
  // The newcomer's app handles whatever it is given first (bounded), then the others catch up.
  await consumeAll([['joiner-c', c]], () => history.length >= 1, history, 1500);
  await consumeAll(
    [
      ['owner-a', a],
      ['owner-b', b],
      ['joiner-c', c],
    ],
    () => new Set(history.map((d) => d.offset)).size >= 60,
    history,
  );
  t.is(new Set(history.map((d) => d.offset)).size, 60, 'every message delivered');
  t.deepEqual(orderViolations(history), []);
});

test('key_shared: per-key order of first deliveries holds while consumers join and leave (randomized)', async (t) => {
  const seed = seedFromEnv();
  t.log(`seed ${seed} (replay with ADMQ_SEED=${seed})`);
  const random = prng(seed);
  const topic = await n.topic('ks-churn');
  const total = 600;
  const keys = 25;
  const history: Delivery[] = [];
  const seen = new Set<number>();
  const record = (name: string, m: Message): void => {
    history.push({ consumer: name, offset: m.offset, key: m.key, redeliveryCount: m.redeliveryCount, topic: m.topic });
    seen.add(m.offset);
  };
  const active = new Map<string, { c: AdmqConsumer; stop: boolean; loop?: Promise<void> }>();
  const deadline = Date.now() + 25_000;
  const join = async (name: string): Promise<void> => {
    const c = await n.newClient().subscribe({
      topic,
      subscription: 'ks',
      subscriptionType: 'key_shared',
      consumerName: name,
      initialPosition: 'earliest',
      receiverQueueSize: 1 + Math.floor(random() * 20),
    });
    const entry: { c: AdmqConsumer; stop: boolean; loop?: Promise<void> } = { c, stop: false };
    const ackDelayMs = Math.floor(random() * 4);
    entry.loop = (async () => {
      while (!entry.stop && seen.size < total && Date.now() < deadline) {
        let m: Message;
        try {
          m = await c.receive(100);
        } catch (error) {
          const code = (error as AdmqClientError).code;
          if (code === ErrorCode.Timeout) continue;
          if (code === ErrorCode.Closed) return;
          throw error;
        }
        record(name, m);
        if (ackDelayMs === 0) c.ack(m);
        else setTimeout(() => c.ack(m), ackDelayMs);
      }
    })();
    active.set(name, entry);
  };
  const leave = async (name: string): Promise<void> => {
    const entry = active.get(name);
    if (!entry) return;
    entry.stop = true;
    active.delete(name);
    await entry.c.close();
    await entry.loop;
  };

  await join('c0');
  await join('c1');
  const producer = (await n.client.createProducer({ topic, batchingMaxMessages: 10 })) as Producer;
  const sends: Array<Promise<unknown>> = [];
  let next = 2;
  for (let i = 0; i < total; i++) {
    sends.push(producer.send({ payload: `m${i}`, key: `key-${Math.floor(random() * keys)}` }));
    if (i % 100 === 99) {
      await Promise.all(sends);
      // Churn: a consumer joins, or one leaves (keeping at least one).
      if (random() < 0.6 || active.size < 2) await join(`c${next++}`);
      else await leave([...active.keys()][Math.floor(random() * active.size)]!);
    }
  }
  await Promise.all(sends);
  await waitFor('every message delivered', () => seen.size >= total, Math.max(1000, deadline - Date.now()), 20);
  for (const name of [...active.keys()]) await leave(name);
  t.is(seen.size, total);
  const violations = orderViolations(history);
  t.deepEqual(violations.slice(0, 10), [], `seed ${seed}: ${violations.length} per-key order violations`);
});
