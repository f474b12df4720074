// Active-active replication under real faults: processes on loopback, TLCP links through
// fault-injecting proxies, SIGKILL, partitions, relays, residency and clock skew. Every
// scenario records a history and checks DESIGN §10's invariants 1–5 on it.
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { loadReplicationPackageDefinition } from '../proto/index.ts';
import { waitFor } from '../test-support/processes.ts';
import { Cluster } from './cluster.ts';
import { History, checkHistory, formatViolations } from './history.ts';
import { recordStoredEverywhere, runProducers } from './workload.ts';

const REGIONS = ['shanghai', 'beijing', 'shenzhen'];

async function converge(cluster: Cluster, topic: string, timeoutMs: number): Promise<void> {
  await cluster.waitConverged(topic, timeoutMs);
}

test.serial('replication: partition of one region heals (3 regions, full mesh, TLCP) — every acked entry everywhere once, in order', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/partition';
  await cluster.createTopic('shanghai', topic);
  const history = new History();
  // 400 msg/s per region for about 7 s; shenzhen is cut off for 4 s of it.
  const work = runProducers(cluster, history, { topic, regions: REGIONS, messagesMax: 2800, durationMs: 60_000, ratePerRegion: 400 });
  await waitFor(() => work.acked() >= 300, 30_000, 'first acks');
  cluster.partition('shenzhen');
  const atPartition = work.acked();
  await new Promise((resolve) => setTimeout(resolve, 4000));
  await waitFor(() => work.acked() >= atPartition + 600, 30_000, 'writes during the partition');
  const status = await cluster.replicationStatus('shanghai');
  const toShenzhen = status.links.filter((l) => l.topic === topic && l.to === 'shenzhen');
  t.true(toShenzhen.length > 0);
  for (const link of toShenzhen) {
    t.true(Number(link.backlogEntries) > 0, 'entries wait for the cut-off region');
    t.true(Number(link.replicationDelayMs) > 0, 'a cut-off link never reports zero delay');
  }
  cluster.heal();
  await work.stop();
  await converge(cluster, topic, 60_000);
  await recordStoredEverywhere(cluster, history, topic);
  const violations = checkHistory(history, { regions: REGIONS });
  t.deepEqual(violations, [], formatViolations(violations));
  t.true(history.produces().filter((p) => p.acked).length >= 900);
});

test.serial('replication: while a region is down, a third region passes over the entries it would never send it (full mesh), and all arrive after its restart', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/pass-over';
  await cluster.createTopic('shanghai', topic);
  type Link = { state: string; ackedOffset: number; tail: number; backlogEntries: number };
  const linkOf = async (from: string): Promise<Link | undefined> =>
    (await cluster.replicationStatus(from)).links.find((l) => l.topic === topic && l.to === 'shenzhen') as unknown as Link | undefined;
  await waitFor(async () => (await linkOf('beijing'))?.state === 'connected', 30_000, "beijing's link to shenzhen");
  await cluster.kill('shenzhen');
  await waitFor(async () => (await linkOf('beijing'))?.state !== 'connected' && (await linkOf('shanghai'))?.state !== 'connected', 30_000, 'the links to shenzhen going down');
  const history = new History();
  // Only shanghai writes: in a full mesh its entries reach shenzhen from shanghai, never from beijing.
  const work = runProducers(cluster, history, { topic, regions: ['shanghai'], messagesMax: 600, durationMs: 60_000, ratePerRegion: 300 });
  await work.finished();
  const acked = history.produces().filter((p) => p.acked).length;
  t.true(acked > 0);
  await waitFor(async () => ((await cluster.admin('beijing').topicStats(topic)) as { entries: number }).entries >= acked, 30_000, "beijing holding shanghai's entries");
  await waitFor(async () => (await linkOf('beijing'))?.backlogEntries === 0, 15_000, "beijing's link to shenzhen passing over shanghai's entries while down");
  const fromBeijing = (await linkOf('beijing')) as Link;
  t.not(fromBeijing.state, 'connected', 'shenzhen is still down');
  t.true(fromBeijing.ackedOffset >= acked && fromBeijing.ackedOffset === fromBeijing.tail, `cursor ${fromBeijing.ackedOffset} at the tail ${fromBeijing.tail}`);
  const fromShanghai = (await linkOf('shanghai')) as Link;
  t.true(fromShanghai.backlogEntries >= acked, `shanghai's link still owes shenzhen its ${acked} entries (backlog ${fromShanghai.backlogEntries})`);
  await cluster.startRegion('shenzhen');
  await converge(cluster, topic, 60_000);
  await recordStoredEverywhere(cluster, history, topic);
  const violations = checkHistory(history, { regions: REGIONS });
  t.deepEqual(violations, [], formatViolations(violations));
});

test.serial('replication: SIGKILL of a region mid-stream, then restart — nothing acked lost, no duplicates', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/kill';
  await cluster.createTopic('beijing', topic);
  const history = new History();
  const work = runProducers(cluster, history, { topic, regions: REGIONS, messagesMax: 2500, durationMs: 60_000, ratePerRegion: 400 });
  await waitFor(() => work.acked() >= 500, 30_000, 'first acks');
  await cluster.kill('beijing');
  const atKill = work.acked();
  await waitFor(() => work.acked() >= atKill + 300, 30_000, 'writes while beijing is down');
  await cluster.startRegion('beijing');
  await work.stop();
  await converge(cluster, topic, 60_000);
  await recordStoredEverywhere(cluster, history, topic);
  const violations = checkHistory(history, { regions: REGIONS });
  t.deepEqual(violations, [], formatViolations(violations));
});

test.serial('replication: hub and spoke — spokes reach each other only through the hub, exactly once', async (t) => {
  const regions = ['hub', 'east', 'west'];
  const cluster = await Cluster.start({ regions, links: [['east', 'hub'], ['hub', 'west']], transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/relay';
  await cluster.createTopic('east', topic);
  const history = new History();
  const work = runProducers(cluster, history, { topic, regions: ['east', 'west'], messagesMax: 500, durationMs: 30_000 });
  await work.finished();
  await converge(cluster, topic, 60_000);
  await recordStoredEverywhere(cluster, history, topic);
  const violations = checkHistory(history, { regions });
  t.deepEqual(violations, [], formatViolations(violations));
  // East has no link to west; the hub relays, and no proxy between the spokes exists.
  t.false(cluster.proxies.has('east->west'));
  const eastLinks = (await cluster.replicationStatus('east')).links.map((l) => l.to);
  t.deepEqual([...new Set(eastLinks)], ['hub']);
  const west = await cluster.readAll('west', topic);
  t.is(west.filter((m) => m.originRegion === 'east').length, 500);
});

test.serial('residency: a pinned tenant’s data never appears outside its allowed regions; the receiver refuses it too', async (t) => {
  const cluster = await Cluster.start({
    regions: REGIONS,
    transport: 'insecure',
    tenants: { public: { allowedRegions: REGIONS }, bank: { allowedRegions: ['shanghai', 'beijing'] } },
    namespaces: { 'public/default': { replicationSet: REGIONS }, 'bank/pay': { replicationSet: ['shanghai', 'beijing'] } },
  });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://bank/pay/ledger';
  await cluster.createTopic('shanghai', topic, { regions: ['shanghai', 'beijing'] });
  const history = new History();
  const work = runProducers(cluster, history, { topic, regions: ['shanghai', 'beijing'], messagesMax: 300, durationMs: 30_000 });
  await work.finished();
  // Both allowed regions must hold all 600 before their logs are read.
  for (const region of ['beijing', 'shanghai']) {
    await waitFor(async () => ((await cluster.admin(region).topicStats(topic)) as { entries: number }).entries === 600, 30_000, `replication between the allowed regions (${region})`);
  }
  const shenzhenTenants = await cluster.admin('shenzhen').listTenants();
  t.false(shenzhenTenants.includes('bank'), 'the tenant does not even exist in shenzhen');
  // Defense in depth: a sender that ignores the rules is refused by the receiver.
  const pkg = grpc.loadPackageDefinition(loadReplicationPackageDefinition()) as unknown as { admq: { replication: { v1: { Replication: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { Replicate(): grpc.ClientDuplexStream<unknown, { response?: string; error?: { code: string } }> } } } } };
  const shenzhenReplication = JSON.parse((await import('node:fs')).readFileSync(cluster.topologyPath, 'utf8')).regions.shenzhen.replication as string;
  const rogue = new pkg.admq.replication.v1.Replication(shenzhenReplication, grpc.credentials.createInsecure());
  const call = rogue.Replicate();
  const answer = new Promise<{ response?: string; error?: { code: string } }>((resolve) => call.once('data', resolve));
  call.on('error', () => {});
  call.write({ hello: { fromRegion: 'shanghai', topic } });
  t.is((await answer).error?.code, 'ADMQ_ERR_RESIDENCY');
  call.cancel();
  rogue.close();
  t.is((await cluster.replicationStatus('shenzhen')).receiver.residencyRefusals, 1);
  for (const region of ['shanghai', 'beijing']) {
    for (const m of await cluster.readAll(region, topic)) {
      history.recordStored({ region, topic, offset: m.offset, originRegion: m.originRegion, originPosition: m.originPosition, producer: m.producerName, sequenceId: m.sequenceId, payload: m.payload.toString(), hlc: m.hlc });
    }
  }
  const violations = checkHistory(history, { regions: ['shanghai', 'beijing'], allowedRegions: () => ['shanghai', 'beijing'] });
  t.deepEqual(violations, [], formatViolations(violations));
});

test.serial('clock skew: a region 3 s ahead is refused with an alert, then converges once the skew is gone', async (t) => {
  const cluster = await Cluster.start({ regions: ['shanghai', 'beijing'], transport: 'insecure', maxClockOffsetMs: 500, clockSkewMs: { beijing: 3000 } });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/skew';
  await cluster.createTopic('shanghai', topic);
  const history = new History();
  const work = runProducers(cluster, history, { topic, regions: ['beijing'], messagesMax: 100, durationMs: 20_000 });
  await work.finished();
  await waitFor(async () => Number((await cluster.replicationStatus('shanghai')).receiver.clockSkewRefusals) > 0, 30_000, 'shanghai to refuse the skewed batch');
  const link = (await cluster.replicationStatus('beijing')).links.find((l) => l.topic === topic && l.to === 'shanghai');
  t.is(link?.clockSkewAlert, true);
  t.true(Number(link?.replicationDelayMs) > 0, 'a refused link never reports zero delay');
  t.is(((await cluster.admin('shanghai').topicStats(topic)) as { entries: number }).entries, 0, 'nothing accepted while skewed');
  await cluster.restart('beijing', { clockSkewMs: 0 });
  await converge(cluster, topic, 60_000);
  await recordStoredEverywhere(cluster, history, topic);
  const violations = checkHistory(history, { regions: ['shanghai', 'beijing'] });
  t.deepEqual(violations, [], formatViolations(violations));
});

test.serial('topics: a partitioned topic created in one region is partitioned in its neighbours when the admin call returns, and replicates', async (t) => {
  const cluster = await Cluster.start({ regions: ['shanghai', 'beijing'], transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/orders';
  const created = (await cluster.admin('shanghai').createTopic(topic, 3)) as { partitions: number; replication: Array<{ topic: string; to: string; state: string }> };
  t.is(created.partitions, 3);
  t.deepEqual(
    created.replication.map((l) => `${l.topic} ${l.to} ${l.state}`).sort(),
    [0, 1, 2].map((i) => `${topic}-partition-${i} beijing connected`),
  );
  // No waiting: the topic is there, partitioned, the moment the call returned.
  const inBeijing = (await cluster.admin('beijing').call('GET', '/topics/public/default/orders')) as { partitions: number };
  t.is(inBeijing.partitions, 3);
  const producer = await cluster.client('beijing').createProducer({ topic, producerName: 'bj' });
  await Promise.all(Array.from({ length: 30 }, (_, i) => producer.send({ payload: `m${i}`, key: `k${i % 7}` })));
  await waitFor(
    async () => {
      const stats = (await cluster.admin('shanghai').topicStats(topic)) as { partitionStats: Array<{ entries: number }> };
      return stats.partitionStats.reduce((n, p) => n + p.entries, 0) === 30;
    },
    30_000,
    'the 30 messages in shanghai',
  );
});

test.serial('watermarks: idle links send heartbeats, so every region’s HLC watermark for every origin passes the last write', async (t) => {
  const cluster = await Cluster.start({ regions: ['shanghai', 'beijing', 'shenzhen'], transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/idle';
  await cluster.createTopic('shanghai', topic);
  const producer = await cluster.client('shanghai').createProducer({ topic, producerName: 'once' });
  const id = await producer.send({ payload: 'the only write' });
  // No more writes anywhere: only heartbeats can move the watermarks past the write's HLC.
  for (const region of ['beijing', 'shenzhen']) {
    await waitFor(
      async () => {
        const marks = (await cluster.replicationStatus(region)).watermarks as Record<string, Record<string, string>>;
        const known = marks[topic] ?? {};
        return ['shanghai', 'beijing', 'shenzhen'].every((origin) => BigInt(known[origin] ?? '0') > id.hlc);
      },
      15_000,
      `${region}'s watermarks for every origin past the write`,
    );
  }
  const marks = (await cluster.replicationStatus('shenzhen')).watermarks as Record<string, Record<string, string>>;
  t.true(BigInt(marks[topic]?.shanghai ?? '0') > id.hlc);
  t.true(BigInt(marks[topic]?.beijing ?? '0') > id.hlc, 'beijing never wrote, yet its watermark advances through heartbeats');
});

test.serial('transport tls: regions replicate over Node’s TLS 1.3 with standard certificates (admq certs create-tls), mutually authenticated', async (t) => {
  const cluster = await Cluster.start({ regions: ['shanghai', 'beijing'], transport: 'tls' });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/over-tls';
  await cluster.createTopic('shanghai', topic);
  const history = new History();
  const work = runProducers(cluster, history, { topic, regions: ['shanghai', 'beijing'], messagesMax: 200, durationMs: 30_000 });
  await work.finished();
  await cluster.waitConverged(topic, 30_000);
  await recordStoredEverywhere(cluster, history, topic);
  const violations = checkHistory(history, { regions: ['shanghai', 'beijing'] });
  t.deepEqual(violations, [], formatViolations(violations));
  t.is((await cluster.replicationStatus('beijing')).receiver.unauthorizedRefusals, 0, 'the caller’s certificate names its region');
});

test.serial('lag of an idle link: heartbeats are answered, so a partition after a quiet spell reports the silence since the cut, not the idle time', async (t) => {
  const cluster = await Cluster.start({ regions: ['shanghai', 'beijing'], transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/idle';
  await cluster.createTopic('shanghai', topic);
  await (await cluster.client('shanghai').createProducer({ topic })).send({ payload: 'one' });
  await cluster.waitConverged(topic, 20_000);
  // Quiet for 6 s: only heartbeats on the link. Then a 1 s partition.
  await new Promise((resolve) => setTimeout(resolve, 6000));
  cluster.partition('beijing');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const link = (await cluster.replicationStatus('shanghai')).links.find((l) => l.topic === topic && l.to === 'beijing');
  const delay = Number(link?.replicationDelayMs);
  t.true(delay > 0, 'a cut link never reports zero delay');
  t.true(delay < 4000, `delay ${delay} ms reflects the cut (about 1 s), not the 7 s since the last batch was acked`);
  cluster.heal();
});
