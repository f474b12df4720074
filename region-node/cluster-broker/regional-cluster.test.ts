// A regional cluster end to end (issue 8), all real: one etcd, storage node processes and
// broker processes on loopback, gRPC clients. Faults are real too: SIGKILL, SIGSTOP, and a
// blackholed TCP proxy between a broker and etcd. Every scenario records each send (acked
// or not) and reads the whole log back at the end; the multi-region checker then proves
// that no acknowledged message was lost or stored twice and that offsets stay dense.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { createStub } from '../../client/connection.ts';
import { AdminClient, AdmqClient, type Producer } from '../../client/index.ts';
import { History, checkHistory, formatViolations } from '../../multi-region-tests/history.ts';
import { RegionCluster } from '../../test-support/region-cluster.ts';
import { ADMQ_CLI, waitFor } from '../../test-support/processes.ts';
import { MetadataKeys, type LedgerMetadata } from '../ledger-storage/ledger-types.ts';
import { decodeLedgerMetadata } from '../ledger-storage/ledger-metadata.ts';
import { StorageNodeClient } from '../ledger-storage/storage-node-client.ts';
import { EtcdMetadataStore } from '../metadata-store/index.ts';

const REGION = 'cluster';
/** Why sends failed, for assertion messages. */
const failures: string[] = [];
const noFailedSend = (history: History): [boolean, string] => [history.produces().every((p) => p.acked), `failed sends: ${failures.slice(0, 5).join('; ')}`];

interface LookupAnswer {
  brokerId: string;
  grpcAddress: string;
}

async function owner(cluster: RegionCluster, via: string, topic: string): Promise<LookupAnswer> {
  return new AdminClient(cluster.adminUrl(via)).call<LookupAnswer>('GET', `/cluster/lookup/${topic}`);
}

/** Sends `count` messages, at most `inflight` at a time, recording every attempt; bounded by `deadlineMs`. */
async function produce(producer: Producer, history: History, topic: string, o: { count: number; first?: number; inflight?: number; deadlineMs?: number; onSent?: (i: number) => Promise<void> | void }): Promise<number> {
  const deadline = Date.now() + (o.deadlineMs ?? 60_000);
  const pending = new Set<Promise<void>>();
  let acked = 0;
  for (let i = o.first ?? 0; i < (o.first ?? 0) + o.count && Date.now() < deadline; i++) {
    const payload = `m-${i}`;
    const sequenceId = producer.lastSequenceId + 1;
    const p = producer.send({ payload }).then(
      (id) => {
        acked++;
        history.recordProduce({ region: REGION, topic, producer: producer.producerName, sequenceId: id.sequenceId, payload, acked: true, originRegion: REGION, originPosition: id.offset, offset: id.offset, hlc: id.hlc, atMs: Date.now() });
      },
      (error: { code?: string; message?: string }) => {
        failures.push(`${payload}: ${error.code}: ${error.message}`);
        history.recordProduce({ region: REGION, topic, producer: producer.producerName, sequenceId, payload, acked: false, atMs: Date.now() });
      },
    );
    pending.add(p);
    void p.finally(() => pending.delete(p));
    if (pending.size >= (o.inflight ?? 20)) await Promise.race(pending);
    await o.onSent?.(i);
  }
  await Promise.all(pending);
  return acked;
}

/** Reads the whole topic from the start into the history (a fresh subscription), bounded. */
async function recordLog(client: AdmqClient, history: History, topic: string, expectedAtLeast: number): Promise<number> {
  const consumer = await client.subscribe({ topic, subscription: `audit-${Date.now()}`, initialPosition: 'earliest' });
  let n = 0;
  const seen = new Set<number>();
  for (;;) {
    const m = await consumer.receive(n >= expectedAtLeast ? 2_000 : 30_000).catch(() => undefined);
    if (!m) break;
    consumer.ack(m);
    if (seen.has(m.offset)) continue; // a redelivery after a reconnect, not a second entry
    seen.add(m.offset);
    n++;
    history.recordStored({ region: REGION, topic, offset: m.offset, originRegion: m.originRegion, originPosition: m.originPosition, producer: m.producerName, sequenceId: m.sequenceId, payload: m.payload.toString(), hlc: m.hlc });
  }
  await consumer.close();
  return n;
}

function assertHistory(t: ExecutionContext, history: History): void {
  // The origin region of a cluster's own writes is the region itself; the checker wants
  // every acked send present once, offsets dense, per-producer order kept.
  const violations = checkHistory(history, { regions: [REGION] });
  t.deepEqual(violations, [], formatViolations(violations));
}

async function ledgersOf(cluster: RegionCluster, topic: string): Promise<LedgerMetadata[]> {
  const store = new EtcdMetadataStore([cluster.etcd.endpoint]);
  try {
    const list = await store.get(MetadataKeys.topicLedgers(`persistent://${topic}`));
    if (!list) return [];
    const ids = (JSON.parse(list.value.toString()) as { ledgers: number[] }).ledgers;
    const out: LedgerMetadata[] = [];
    for (const id of ids) {
      const value = await store.get(MetadataKeys.ledger(id));
      if (value) out.push(decodeLedgerMetadata(value.value, id));
    }
    return out;
  } finally {
    await store.close();
  }
}

test.serial('any broker answers a client: lookup leads it to the owner, whose ledger is on a quorum of storage nodes', async (t) => {
  const cluster = await RegionCluster.start({ storageNodes: 3, brokers: 2 });
  t.teardown(() => cluster.stop());
  const topic = 'public/default/any-broker';
  await new AdminClient(cluster.adminUrl('b1')).createTopic(topic);
  const o = await owner(cluster, 'b2', topic);
  t.deepEqual(await owner(cluster, 'b1', topic), o, 'every broker names the same owner');
  // The client knows only the broker that does NOT own the topic.
  const other = o.brokerId === 'b1' ? 'b2' : 'b1';
  const client = new AdmqClient({ serviceUrl: `127.0.0.1:${cluster.broker(other).grpcPort}` });
  t.teardown(() => client.close());
  const producer = (await client.createProducer({ topic, producerName: 'p' })) as Producer;
  const history = new History();
  t.is(await produce(producer, history, topic, { count: 300 }), 300);
  t.is(await recordLog(client, history, topic, 300), 300);
  assertHistory(t, history);
  const [ledger] = await ledgersOf(cluster, topic);
  t.truthy(ledger, 'the topic has a ledger');
  // The operator's view: admq cluster lookup / status through the other broker.
  const cli = (...args: string[]) => promisify(execFile)(process.execPath, [ADMQ_CLI, 'cluster', ...args, '--admin-url', cluster.adminUrl(other)]);
  t.regex((await cli('lookup', topic)).stdout, new RegExp(`broker ${o.brokerId} at ${o.grpcAddress}`));
  const status = (await cli('status')).stdout;
  t.regex(status, /storage nodes: s1 .*s2 .*s3 /);
  t.regex(status, new RegExp(`^${o.brokerId}\t${o.grpcAddress}\t1\t`, 'm'), 'the owner holds one bundle');
  t.is(new Set(ledger?.ensembles.at(-1)?.nodes).size, 3, 'E = 3 distinct storage nodes');
  t.is(ledger?.ackQuorum, 2);

  // Deleted through the broker that does not own it, then created again: the new topic
  // starts empty (nothing of the old one comes back) and is stored in ledgers again.
  await new AdminClient(cluster.adminUrl(other)).deleteTopic(topic, true);
  await new AdminClient(cluster.adminUrl(other)).createTopic(topic);
  t.deepEqual(await ledgersOf(cluster, topic), [], 'the old ledgers are gone with the topic');
  const again = new History();
  const reborn = (await client.createProducer({ topic, producerName: 'p2' })) as Producer;
  t.is(await produce(reborn, again, topic, { count: 10 }), 10);
  t.is(await recordLog(client, again, topic, 10), 10);
  assertHistory(t, again);
  t.is((await ledgersOf(cluster, topic)).length, 1);

  // An open naming a partitioned topic's parent gets a typed error; the broker keeps serving.
  await new AdminClient(cluster.adminUrl('b1')).createTopic('public/default/parted', 2);
  const stub = createStub(o.grpcAddress, credentials.createInsecure(), 1 << 20);
  t.teardown(() => stub.close());
  const refusal = await new Promise<string>((resolve) => {
    const stream = stub.Produce();
    stream.on('error', (error: ServiceError) => resolve(String(error.metadata?.get('admq-error-code')?.[0] ?? error.message)));
    stream.on('data', () => resolve('opened'));
    stream.write({ open: { topic: 'persistent://public/default/parted', producerName: 'raw' } });
  });
  t.is(refusal, 'ADMQ_ERR_BAD_REQUEST');
  t.is(await produce(reborn, again, topic, { count: 10, first: 10 }), 10, 'the broker still serves');
});

test.serial('SIGKILL of a storage node while producing: writes go on, nothing acked is lost, re-replication restores every copy', async (t) => {
  const cluster = await RegionCluster.start({ storageNodes: 4, brokers: 2 });
  t.teardown(() => cluster.stop());
  const topic = 'public/default/storage-kill';
  await new AdminClient(cluster.adminUrl('b1')).createTopic(topic);
  const client = new AdmqClient({ serviceUrl: cluster.serviceUrl() });
  t.teardown(() => client.close());
  const producer = (await client.createProducer({ topic, producerName: 'p', sendTimeoutMs: 60_000 })) as Producer;
  const history = new History();
  let victim = '';
  const acked = await produce(producer, history, topic, {
    count: 2000,
    onSent: async (i) => {
      if (i !== 700) return;
      const [ledger] = await ledgersOf(cluster, topic);
      victim = ledger?.ensembles.at(-1)?.nodes[0] ?? '';
      await cluster.killStorageNode(victim);
    },
  });
  t.not(victim, '');
  t.is(acked, 2000, 'every send was acknowledged despite the lost storage node');
  t.is(await recordLog(client, history, topic, 2000), 2000);
  assertHistory(t, history);
  const before = await ledgersOf(cluster, topic);
  t.true(before.some((l) => l.ensembles.length > 1), 'the ensemble changed when the node died');

  // Handing the topic over closes its ledger; the load manager's leader then re-replicates
  // every closed ledger that still names the lost node.
  const o = await owner(cluster, 'b1', topic);
  await cluster.killBroker(o.brokerId, 'SIGTERM');
  await cluster.startBroker(o.brokerId);
  await waitFor(async () => {
    const ledgers = await ledgersOf(cluster, topic);
    return ledgers.length > 0 && ledgers.filter((l) => l.state === 'closed').every((l) => l.ensembles.every((s) => !s.nodes.includes(victim)));
  }, 60_000, `no closed ledger of ${topic} naming ${victim}`);
  // Every entry of every closed ledger is on each node of its write set (read from the nodes themselves).
  const clients = new Map([...cluster.storageNodes.values()].filter((s) => s.child).map((s) => [s.id, new StorageNodeClient(s.id, `127.0.0.1:${s.port}`)]));
  t.teardown(() => Promise.all([...clients.values()].map((c) => c.close())));
  let copies = 0;
  for (const ledger of (await ledgersOf(cluster, topic)).filter((l) => l.state === 'closed')) {
    for (let entry = 0; entry <= ledger.lastEntryId; entry++) {
      const segment = [...ledger.ensembles].reverse().find((s) => s.firstEntryId <= entry);
      const nodes = segment?.nodes ?? [];
      for (let i = 0; i < ledger.writeQuorum; i++) {
        const node = nodes[(entry + i) % nodes.length] as string;
        await t.notThrowsAsync((clients.get(node) as StorageNodeClient).read(ledger.ledgerId, entry), `ledger ${ledger.ledgerId} entry ${entry} on ${node}`);
        copies++;
      }
    }
  }
  t.true(copies > 0);
});

test.serial('a storage node cut off silently while producing: writes go on, the ensemble changes, nothing acked is lost', async (t) => {
  const cluster = await RegionCluster.start({ storageNodes: 4, brokers: 1, storageProxies: true });
  t.teardown(() => cluster.stop());
  const topic = 'public/default/storage-partition';
  await new AdminClient(cluster.adminUrl('b1')).createTopic(topic);
  const client = new AdmqClient({ serviceUrl: cluster.serviceUrl() });
  t.teardown(() => client.close());
  const producer = (await client.createProducer({ topic, producerName: 'p', sendTimeoutMs: 60_000 })) as Producer;
  const history = new History();
  let victim = '';
  const acked = await produce(producer, history, topic, {
    count: 1500,
    onSent: async (i) => {
      if (i === 500) {
        const [ledger] = await ledgersOf(cluster, topic);
        victim = ledger?.ensembles.at(-1)?.nodes[0] ?? '';
        // Nothing is closed or reset: the node's traffic just stops, both ways.
        await cluster.storageNodes.get(victim)?.proxy?.blackhole();
      }
      if (i > 500 && i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
    },
  });
  t.not(victim, '');
  t.is(acked, 1500, `every send was acknowledged: ${failures.slice(0, 3).join('; ')}`);
  // Its unanswered adds fail (missed keepalive pings, or their deadline), and the writer replaces it.
  await waitFor(async () => !(await ledgersOf(cluster, topic))[0]?.ensembles.at(-1)?.nodes.includes(victim), 20_000, `${victim} to leave the ensemble`);
  t.is(await recordLog(client, history, topic, 1500), 1500);
  assertHistory(t, history);
});

test.serial('SIGKILL of the owning broker: another broker takes the topic over; nothing acked is lost or stored twice', async (t) => {
  const cluster = await RegionCluster.start({ storageNodes: 3, brokers: 3, ownershipLeaseMs: 3000 });
  t.teardown(() => cluster.stop());
  const topic = 'public/default/broker-kill';
  await new AdminClient(cluster.adminUrl('b1')).createTopic(topic);
  const first = await owner(cluster, 'b1', topic);
  const client = new AdmqClient({ serviceUrl: cluster.serviceUrl(), backoffMaxMs: 500 });
  t.teardown(() => client.close());
  const producer = (await client.createProducer({ topic, producerName: 'p', sendTimeoutMs: 60_000 })) as Producer;
  const history = new History();
  let killedAtMs = 0;
  let resumedAtMs = 0;
  await produce(producer, history, topic, {
    count: 1500,
    onSent: async (i) => {
      if (i === 500) {
        await cluster.killBroker(first.brokerId);
        killedAtMs = Date.now();
      }
      if (i > 500 && i % 10 === 0) await new Promise((r) => setTimeout(r, 20));
    },
  });
  resumedAtMs = Math.min(...history.produces().filter((p) => p.acked && p.atMs > killedAtMs).map((p) => p.atMs));
  t.log(`owner ${first.brokerId} killed; first ack after the kill ${resumedAtMs - killedAtMs} ms later (lease 3000 ms)`);
  const survivor = [...cluster.brokers.keys()].find((b) => b !== first.brokerId) as string;
  const next = await owner(cluster, survivor, topic);
  t.not(next.brokerId, first.brokerId, 'another broker owns the topic');
  const [allAcked, why] = noFailedSend(history);
  t.true(allAcked, `the client resent through the new owner; no send failed — ${why}`);
  t.is(await recordLog(client, history, topic, 1500), 1500);
  assertHistory(t, history);
});

test.serial('a paused owner (SIGSTOP) loses the topic; resumed, it cannot write: its ledger is fenced and its sends go to the new owner', async (t) => {
  const cluster = await RegionCluster.start({ storageNodes: 3, brokers: 2, ownershipLeaseMs: 3000 });
  t.teardown(() => cluster.stop());
  const topic = 'public/default/paused-owner';
  await new AdminClient(cluster.adminUrl('b1')).createTopic(topic);
  const first = await owner(cluster, 'b1', topic);
  const other = first.brokerId === 'b1' ? 'b2' : 'b1';
  // One client talks only to the old owner, so its sends are stuck there while it is paused.
  const stuck = new AdmqClient({ serviceUrl: first.grpcAddress, backoffMaxMs: 500 });
  const fresh = new AdmqClient({ serviceUrl: `127.0.0.1:${cluster.broker(other).grpcPort}`, backoffMaxMs: 500 });
  t.teardown(async () => {
    await stuck.close();
    await fresh.close();
  });
  const history = new History();
  const old = (await stuck.createProducer({ topic, producerName: 'old', sendTimeoutMs: 60_000 })) as Producer;
  t.is(await produce(old, history, topic, { count: 200 }), 200);
  const paused = cluster.broker(first.brokerId).node;
  paused?.child.kill('SIGSTOP');
  // Sends to the paused broker wait in its socket buffers.
  const oldSends = produce(old, history, topic, { count: 100, first: 200 });
  await waitFor(async () => (await owner(cluster, other, topic).catch(() => undefined))?.brokerId === other, 30_000, `${other} to own ${topic}`);
  const newer = (await fresh.createProducer({ topic, producerName: 'new', sendTimeoutMs: 60_000 })) as Producer;
  t.is(await produce(newer, history, topic, { count: 200 }), 200);
  paused?.child.kill('SIGCONT');
  await oldSends;
  t.true(history.produces().every((p) => p.acked), 'the paused broker\u2019s sends were acknowledged in the end — by the new owner');
  const status = await new AdminClient(cluster.adminUrl(first.brokerId)).call<{ servedTopics: string[] }>('GET', '/cluster');
  t.false(status.servedTopics.includes(`persistent://${topic}`), 'the resumed broker no longer serves the topic');
  t.is(await recordLog(fresh, history, topic, 500), 500);
  assertHistory(t, history);
});

test.serial('a broker cut off from etcd stops serving before another takes over: no split brain in the recorded history', async (t) => {
  const cluster = await RegionCluster.start({ storageNodes: 3, brokers: 2, ownershipLeaseMs: 3000 });
  t.teardown(() => cluster.stop());
  const topic = 'public/default/etcd-partition';
  await new AdminClient(cluster.adminUrl('b1')).createTopic(topic);
  const first = await owner(cluster, 'b1', topic);
  const other = first.brokerId === 'b1' ? 'b2' : 'b1';
  const client = new AdmqClient({ serviceUrl: cluster.serviceUrl(), backoffMaxMs: 500 });
  t.teardown(() => client.close());
  const producer = (await client.createProducer({ topic, producerName: 'p', sendTimeoutMs: 60_000 })) as Producer;
  const history = new History();
  await produce(producer, history, topic, {
    count: 1500,
    onSent: async (i) => {
      if (i === 400) await cluster.broker(first.brokerId).etcdProxy.blackhole();
      // Paced, so that sending spans the isolated broker's lease deadline and the takeover.
      if (i > 400 && i % 10 === 0) await new Promise((r) => setTimeout(r, 50));
    },
  });
  t.is((await owner(cluster, other, topic)).brokerId, other, 'the broker that can reach etcd owns the topic');
  const isolated = cluster.broker(first.brokerId).node?.output() ?? '';
  t.regex(isolated, /no longer served here/, 'the isolated broker unloaded the topic');
  t.true(...noFailedSend(history));
  t.is(await recordLog(client, history, topic, 1500), 1500);
  assertHistory(t, history);
});

test.serial('a broker that joins gets bundles moved to it, and clients follow them', async (t) => {
  const cluster = await RegionCluster.start({ storageNodes: 3, brokers: 1 });
  t.teardown(() => cluster.stop());
  const admin = new AdminClient(cluster.adminUrl('b1'));
  const topics = Array.from({ length: 12 }, (_, i) => `public/default/spread-${i}`);
  for (const topic of topics) await admin.createTopic(topic);
  const client = new AdmqClient({ serviceUrl: cluster.serviceUrl(), backoffMaxMs: 500 });
  t.teardown(() => client.close());
  const history = new History();
  const producers = await Promise.all(topics.map(async (topic) => (await client.createProducer({ topic, producerName: 'p', sendTimeoutMs: 60_000 })) as Producer));
  await Promise.all(producers.map((p, i) => produce(p, history, topics[i] as string, { count: 20 })));
  await cluster.addBroker('b2');
  // Moved means handed over: the old owner released the bundle and b2 holds its owner key.
  const b2 = new AdminClient(cluster.adminUrl('b2'));
  await waitFor(async () => (await b2.call<{ ownedBundles: string[] }>('GET', '/cluster')).ownedBundles.length > 0, 30_000, 'a bundle owned by b2');
  // Sends after the move reach the new owners (through ADMQ_ERR_TOPIC_MOVED and a reconnect).
  await Promise.all(producers.map((p, i) => produce(p, history, topics[i] as string, { count: 20, first: 20 })));
  const served = await b2.call<{ servedTopics: string[] }>('GET', '/cluster');
  t.true(served.servedTopics.length > 0, 'b2 serves topics now');
  t.true(history.produces().every((p) => p.acked));
  for (const topic of topics) t.is(await recordLog(client, history, topic, 40), 40);
  assertHistory(t, history);
});
