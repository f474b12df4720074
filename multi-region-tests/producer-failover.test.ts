// Cross-region producer dedupe (DESIGN §6): a producer fails over from shanghai to
// beijing mid-stream and resends what it had not seen acknowledged, with the same producer
// name and sequence ids. When shanghai's copies arrive by replication, every region keeps
// exactly one copy of each message, and a consumer in every region sees each once.
import test from 'ava';
import type { ProduceResponse } from '../proto/index.ts';
import { RawStream, outbound, rawStub } from '../region-node/tests/helpers.ts';
import { Cluster } from './cluster.ts';

const REGIONS = ['shanghai', 'beijing', 'shenzhen'];

async function sendRaw(address: string, topic: string, producerName: string, ids: number[]): Promise<boolean[]> {
  const stub = rawStub(address);
  const stream = new RawStream<ProduceResponse>(stub.Produce());
  try {
    stream.write({ open: { topic, producerName } });
    const opened = await stream.next(10_000);
    if (!opened.opened) throw new Error(`open refused: ${JSON.stringify(opened)}`);
    stream.write({ send: { requestId: 1, messages: ids.map((id) => outbound(id, `mover-${id}`)) } });
    const receipt = await stream.next(10_000);
    return (receipt.receipt?.results ?? []).map((r) => r.duplicate);
  } finally {
    stream.end();
    stub.close();
  }
}

test.serial('producer failover between regions: the resent messages are stored once in every region, none lost', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/mover';
  await cluster.createTopic('shanghai', topic);
  // Shanghai stores 0..99, but is cut off before anything replicates (its acks for 90..99
  // are the ones the producer never saw).
  cluster.partition('shanghai');
  const inShanghai = await sendRaw(cluster.grpcAddress('shanghai'), topic, 'mover', Array.from({ length: 100 }, (_, i) => i));
  t.false(inShanghai.some((d) => d));
  // The producer fails over to beijing and resends from 90, then goes on to 149.
  const inBeijing = await sendRaw(cluster.grpcAddress('beijing'), topic, 'mover', Array.from({ length: 60 }, (_, i) => 90 + i));
  t.false(inBeijing.some((d) => d), 'beijing has not seen shanghai’s copies yet');
  cluster.heal();
  await cluster.waitConverged(topic, 60_000);
  for (const region of REGIONS) {
    const messages = await cluster.readAll(region, topic);
    const ids = messages.filter((m) => m.producerName === 'mover').map((m) => m.sequenceId);
    t.deepEqual(
      [...ids].sort((a, b) => a - b),
      Array.from({ length: 150 }, (_, i) => i),
      `${region}: every sequence id exactly once`,
    );
    // Each copy kept carries its own origin; both origins stay in their own order.
    for (const origin of ['shanghai', 'beijing']) {
      const positions = messages.filter((m) => m.originRegion === origin).map((m) => m.originPosition);
      t.deepEqual(positions, [...positions].sort((a, b) => a - b), `${region}: ${origin}'s entries in origin order`);
    }
  }
  // The copies that lost the race were counted as duplicates by the receivers.
  const duplicates = await Promise.all(REGIONS.map(async (r) => Number((await cluster.replicationStatus(r)).receiver.duplicates)));
  t.true(duplicates.reduce((a, b) => a + b, 0) >= 10, `duplicates skipped: ${duplicates.join(', ')}`);
});
