// Replicated subscriptions (DESIGN §6): a consumer that fails over to another region after
// its region is killed resumes where it left off. It may see again only what was acked in
// the last sync interval before the kill, and it never misses a message.
import test from 'ava';
import type { Message } from '../client/index.ts';
import { waitFor } from '../test-support/processes.ts';
import { Cluster } from './cluster.ts';

const REGIONS = ['shanghai', 'beijing'];
const TOTAL = 1000;

interface SubscriptionView {
  backlog: number;
}

async function subscriptionIn(cluster: Cluster, region: string, topic: string, name: string): Promise<SubscriptionView | undefined> {
  const stats = (await cluster.admin(region).topicStats(topic)) as { subscriptions: Record<string, SubscriptionView> };
  return stats.subscriptions[name];
}

async function receiveAcking(consumer: { receive(ms?: number): Promise<Message>; ack(m: Message): void }, count: number): Promise<Message[]> {
  const out: Message[] = [];
  for (let i = 0; i < count; i++) {
    const m = await consumer.receive(10_000);
    consumer.ack(m);
    out.push(m);
  }
  return out;
}

test.serial('replicated subscription: after a kill -9 the consumer resumes in the other region; duplicates only from the last sync interval, nothing missed', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/orders';
  await cluster.createTopic('shanghai', topic);
  const producer = await cluster.client('shanghai').createProducer({ topic, producerName: 'orders-feed' });
  await Promise.all(Array.from({ length: TOTAL }, (_, i) => producer.send({ payload: `order-${i}` })));
  await cluster.waitForEntries(topic, TOTAL, 30_000);

  const consumer = await cluster.client('shanghai').subscribe({ topic, subscription: 'billing', subscriptionType: 'shared', initialPosition: 'earliest' });
  const synced = await receiveAcking(consumer, 600);
  // The sync interval is 1 s: beijing's copy of the subscription catches up with the acks.
  await waitFor(async () => (await subscriptionIn(cluster, 'beijing', topic, 'billing'))?.backlog === TOTAL - 600, 15_000, 'beijing to learn the 600 acks');
  // 100 more acked just before the kill: these may come again in beijing (the last interval).
  const unsynced = await receiveAcking(consumer, 100);
  await cluster.kill('shanghai');

  const failedOver = await cluster.client('beijing').subscribe({ topic, subscription: 'billing', subscriptionType: 'shared', initialPosition: 'latest' });
  const seenInBeijing = new Set<string>();
  // Drained when beijing's subscription has nothing left unacknowledged (acks are
  // asynchronous, so an empty receive only prompts another look at the node).
  await waitFor(
    async () => {
      try {
        const m = await failedOver.receive(200);
        failedOver.ack(m);
        seenInBeijing.add(m.payload.toString());
        return false;
      } catch {
        return (await subscriptionIn(cluster, 'beijing', topic, 'billing'))?.backlog === 0;
      }
    },
    30_000,
    'beijing to deliver and see acked everything left',
  );
  const ackedBeforeSync = new Set(synced.map((m) => m.payload.toString()));
  const ackedLastInterval = new Set(unsynced.map((m) => m.payload.toString()));
  const redeliveredOld = [...seenInBeijing].filter((p) => ackedBeforeSync.has(p));
  t.deepEqual(redeliveredOld, [], 'nothing acked before the last sync comes again');
  const missing = Array.from({ length: TOTAL }, (_, i) => `order-${i}`).filter((p) => !ackedBeforeSync.has(p) && !ackedLastInterval.has(p) && !seenInBeijing.has(p));
  t.deepEqual(missing, [], 'every message not acked in shanghai is delivered in beijing (never a start at "latest")');
  const duplicates = [...seenInBeijing].filter((p) => ackedLastInterval.has(p)).length;
  // Every duplicate is one of the last interval's acks (no older one came again, above).
  t.log(`duplicates after failover: ${duplicates} of the ${ackedLastInterval.size} acked in the last interval`);
});
