// Replication between regions when a region is a cluster (issue 8), all real processes:
// region "a" is a regional cluster (etcd, 3 storage nodes, brokers b1 and b2, each with its
// own replication listener listed in the topology), region "b" a standalone node. Links
// run over TLCP through fault proxies, one per directed link and per broker of "a".
// Producers in both regions send at once; every entry must end up in both regions exactly
// once with each origin's order identical (checkHistory). Then the broker of "a" that owns
// the topic is SIGKILLed mid-stream: the topic moves to the other broker, replication
// resumes in both directions through it, and the history still checks clean.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { AdminClient, AdmqClient, type Producer } from '../client/index.ts';
import { prepareDev } from '../cli/dev.ts';
import { RegionCluster } from '../test-support/region-cluster.ts';
import { freePorts, startNodeProcess, waitFor, type NodeProcess } from '../test-support/processes.ts';
import { prng, seedFromEnv } from '../test-support/random.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';
import { FaultProxy } from './fault-proxy.ts';
import { History, checkHistory, formatViolations } from './history.ts';

const REGIONS = ['a', 'b'];
const BROKERS = ['b1', 'b2'];
const TOPIC = 'public/default/clustered';

interface Deployment {
  cluster: RegionCluster;
  b: NodeProcess;
  bAdmin: AdminClient;
  clients: Record<string, AdmqClient>;
  proxies: FaultProxy[];
  brokerAdmin: (id: string) => AdminClient;
  stop: () => Promise<void>;
}

async function deploy(t: ExecutionContext): Promise<Deployment> {
  const dir = tempDir('admq-clustered-region-');
  await prepareDev({ dir, regions: REGIONS, basePort: 1, transport: 'tlcp' });
  const ports = (await freePorts(9)) as number[];
  const port = (i: number): number => ports[i] as number;
  const nodes = Object.fromEntries(BROKERS.map((id, i) => [id, { grpc: `127.0.0.1:${port(3 * i)}`, admin: `127.0.0.1:${port(3 * i + 1)}`, replication: `127.0.0.1:${port(3 * i + 2)}` }]));
  const proxies: FaultProxy[] = [];
  const endpoints: Record<string, string> = {};
  // b reaches each broker of a through its own proxy; a's brokers reach b through one.
  for (const [i, id] of BROKERS.entries()) {
    const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: port(3 * i + 2), name: `b->a/${id}` });
    proxies.push(proxy);
    endpoints[`b->a/${id}`] = proxy.address;
  }
  const toB = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: port(8), name: 'a->b' });
  proxies.push(toB);
  endpoints['a->b'] = toB.address;
  const topology = {
    regions: { a: { nodes }, b: { grpc: `127.0.0.1:${port(6)}`, admin: `127.0.0.1:${port(7)}`, replication: `127.0.0.1:${port(8)}`, dataDir: 'b' } },
    endpoints,
    transport: { kind: 'tlcp', certDir: 'certs' },
    tenants: { public: { allowedRegions: REGIONS } },
    namespaces: { 'public/default': { replicationSet: REGIONS } },
  };
  const topologyPath = join(dir, 'topology.json');
  writeFileSync(topologyPath, JSON.stringify(topology, null, 2));
  const cluster = await RegionCluster.start({ storageNodes: 3, brokers: 0, ownershipLeaseMs: 3000 });
  let b: NodeProcess | undefined;
  const stop = async (): Promise<void> => {
    for (const client of Object.values(clients)) await client.close();
    if (b) {
      b.child.kill('SIGKILL');
      await b.exited;
    }
    await cluster.stop();
    for (const proxy of proxies) await proxy.close();
    removeTempDir(dir);
  };
  const clients: Record<string, AdmqClient> = {};
  try {
    b = await startNodeProcess(['--topology', topologyPath, '--region', 'b'], 60_000);
    for (const [i, id] of BROKERS.entries()) {
      await cluster.addBroker(id, { grpcPort: port(3 * i), adminPort: port(3 * i + 1), region: 'a', args: ['--topology', topologyPath] });
    }
  } catch (error) {
    await stop();
    throw error;
  }
  t.log(`topology ${topologyPath}; a: ${BROKERS.map((id) => `${id} ${nodes[id]?.grpc}`).join(', ')}; b: ${b.grpcAddress}`);
  clients.a = new AdmqClient({ serviceUrl: cluster.serviceUrl(), backoffInitialMs: 50, backoffMaxMs: 1000 });
  clients.b = new AdmqClient({ serviceUrl: b.grpcAddress, backoffInitialMs: 50, backoffMaxMs: 1000 });
  return { cluster, b, bAdmin: new AdminClient(b.adminUrl), clients, proxies, brokerAdmin: (id) => new AdminClient(cluster.adminUrl(id)), stop };
}

/** The broker of region a that serves the topic now, as the cluster's lookup says (through any live broker). */
async function ownerOf(d: Deployment, topic: string): Promise<string | undefined> {
  for (const [id, member] of d.cluster.brokers) {
    if (!member.node) continue;
    try {
      return (await d.brokerAdmin(id).call<{ brokerId: string }>('GET', `/cluster/lookup/${topic}`)).brokerId;
    } catch {
      // This broker cannot answer now (it is joining, or cut off); ask the next.
    }
  }
  return undefined;
}

/** Entries of the topic in region a (on its serving broker) and in b, or undefined while a cannot say. */
async function entryCounts(d: Deployment, topic: string): Promise<{ a: number; b: number } | undefined> {
  const owner = await ownerOf(d, topic);
  if (!owner) return undefined;
  try {
    const a = (await d.brokerAdmin(owner).topicStats(topic)) as { entries: number };
    const b = (await d.bAdmin.topicStats(topic)) as { entries: number };
    return { a: a.entries, b: b.entries };
  } catch {
    return undefined;
  }
}

interface LinkView {
  topic: string;
  state: string;
  backlogEntries: number;
}

/** Converged: both regions hold the same count, at least `atLeast`, and the topic's links both ways are connected and drained. */
async function waitConverged(d: Deployment, topic: string, atLeast: number, timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      const counts = await entryCounts(d, topic);
      if (!counts || counts.a !== counts.b || counts.a < atLeast) return false;
      const owner = (await ownerOf(d, topic)) as string;
      for (const admin of [d.brokerAdmin(owner), d.bAdmin]) {
        const links = (await admin.call<{ links: LinkView[] }>('GET', '/replication/status')).links.filter((l) => l.topic === `persistent://${topic}`);
        if (links.length !== 1 || links.some((l) => l.state !== 'connected' || Number(l.backlogEntries) > 0)) return false;
      }
      return true;
    },
    timeoutMs,
    `${topic} to converge in a and b (at least ${atLeast} entries)`,
  );
}

/**
 * Sends `count` messages from `region`, at most 20 in flight, each recorded (acked or not);
 * bounded by `deadlineMs`. `onSent` runs after each send is queued.
 */
async function produce(producer: Producer, region: string, history: History, o: { count: number; deadlineMs: number; label: string; onSent?: (i: number) => Promise<void> | void }): Promise<number> {
  const deadline = Date.now() + o.deadlineMs;
  const pending = new Set<Promise<void>>();
  let acked = 0;
  for (let i = 0; i < o.count && Date.now() < deadline; i++) {
    const payload = `${o.label}-${i}`;
    const sequenceId = producer.lastSequenceId + 1;
    const p = producer.send({ payload }).then(
      (id) => {
        acked++;
        history.recordProduce({ region, topic: TOPIC, producer: producer.producerName, sequenceId: id.sequenceId, payload, acked: true, originRegion: region, originPosition: id.offset, offset: id.offset, hlc: id.hlc, atMs: Date.now() });
      },
      () => history.recordProduce({ region, topic: TOPIC, producer: producer.producerName, sequenceId, payload, acked: false, atMs: Date.now() }),
    );
    pending.add(p);
    void p.finally(() => pending.delete(p));
    if (pending.size >= 20) await Promise.race(pending);
    await o.onSent?.(i);
  }
  await Promise.all(pending);
  return acked;
}

/** Reads the topic's whole log in `region` with a fresh subscription into the history; bounded. */
async function recordStored(client: AdmqClient, region: string, history: History, count: number): Promise<void> {
  const consumer = await client.subscribe({ topic: TOPIC, subscription: `audit-${region}-${Date.now()}`, initialPosition: 'earliest', receiverQueueSize: 5000 });
  const seen = new Set<number>();
  try {
    while (seen.size < count) {
      const m = await consumer.receive(30_000);
      consumer.ack(m);
      if (seen.has(m.offset)) continue; // a redelivery after a reconnect, not a second entry
      seen.add(m.offset);
      history.recordStored({ region, topic: TOPIC, offset: m.offset, originRegion: m.originRegion, originPosition: m.originPosition, producer: m.producerName, sequenceId: m.sequenceId, payload: m.payload.toString(), hlc: m.hlc });
    }
  } finally {
    await consumer.close();
  }
}

async function assertHistory(t: ExecutionContext, d: Deployment, history: History): Promise<void> {
  const counts = (await entryCounts(d, TOPIC)) as { a: number; b: number };
  for (const region of REGIONS) await recordStored(d.clients[region] as AdmqClient, region, history, counts.a);
  const violations = checkHistory(history, { regions: REGIONS });
  t.deepEqual(violations, [], formatViolations(violations));
}

test.serial('replication: a clustered region (2 brokers, 3 storage nodes) and a standalone one, both ways; SIGKILL of the owning broker mid-stream', async (t) => {
  t.timeout(240_000);
  const seed = seedFromEnv();
  t.log(`seed ${seed} (replay with ADMQ_SEED=${seed})`);
  const random = prng(seed);
  const d = await deploy(t);
  t.teardown(() => d.stop());
  // Created in b: b's link opens the topic in a through whichever broker it reaches first,
  // which takes it over or redirects the link to the one that owns it.
  await d.bAdmin.createTopic(TOPIC);
  await waitFor(async () => (await ownerOf(d, TOPIC)) !== undefined && (await entryCounts(d, TOPIC)) !== undefined, 30_000, `${TOPIC} to be served in a`);
  const history = new History();
  const producers = {
    a: (await (d.clients.a as AdmqClient).createProducer({ topic: TOPIC, producerName: 'pa' })) as Producer,
    b: (await (d.clients.b as AdmqClient).createProducer({ topic: TOPIC, producerName: 'pb' })) as Producer,
  };

  // Phase 1: both regions write at once.
  const first = 400;
  const acked1 = await Promise.all(REGIONS.map((r) => produce(producers[r as 'a' | 'b'], r, history, { count: first, deadlineMs: 60_000, label: `${r}1` })));
  t.deepEqual(acked1, [first, first], 'every send of phase 1 is acknowledged');
  await waitConverged(d, TOPIC, 2 * first, 60_000);
  const owner = (await ownerOf(d, TOPIC)) as string;
  const survivor = BROKERS.find((id) => id !== owner) as string;
  t.log(`phase 1 converged; ${TOPIC} is served by ${owner}`);

  // A placement change made in b reaches a's broker that serves the placement topic by
  // replication, and the other broker through the catalog: every broker checks residency
  // against the same placement.
  await d.bAdmin.call('POST', '/tenants/bank/placement', { allowedRegions: REGIONS, homeRegion: 'b' });
  await waitFor(
    async () => {
      for (const id of BROKERS) {
        const placement = await d.brokerAdmin(id).call<{ tenants: Array<{ name: string; homeRegion: string }> }>('GET', '/placement');
        if (!placement.tenants.some((tenant) => tenant.name === 'bank' && tenant.homeRegion === 'b')) return false;
      }
      return true;
    },
    30_000,
    "tenant bank's placement on every broker of a",
  ).catch(async (error: unknown) => {
    for (const id of BROKERS) {
      t.log(`${id} placement: ${JSON.stringify(await d.brokerAdmin(id).call('GET', '/placement'))}`);
      t.log(`${id} output:\n${d.cluster.broker(id).node?.output().split('\n').filter((l) => /placement|cluster\]/.test(l)).slice(-30).join('\n')}`);
    }
    t.log(`b output:\n${d.b.output().split('\n').filter((l) => /placement/.test(l)).slice(-30).join('\n')}`);
    throw error;
  });

  // A change sent to the broker of a that does not serve the placement topic is passed on
  // to the one that does, and reaches b: an operator may use any broker's admin API.
  const placementServer = (await d.brokerAdmin(BROKERS[0] as string).call<{ brokerId: string }>('GET', '/cluster/lookup/__admq/control/placement')).brokerId;
  const notServing = BROKERS.find((id) => id !== placementServer) as string;
  await d.brokerAdmin(notServing).call('POST', '/tenants/treasury/placement', { allowedRegions: REGIONS, homeRegion: 'a' });
  await waitFor(
    async () => (await d.bAdmin.call<{ tenants: Array<{ name: string; homeRegion: string }> }>('GET', '/placement')).tenants.some((tenant) => tenant.name === 'treasury' && tenant.homeRegion === 'a'),
    30_000,
    `tenant treasury, set through ${notServing} (the placement topic is served by ${placementServer}), in b`,
  );

  // Phase 2: both write again, and the owner is SIGKILLed after a random number of a's sends.
  const second = 600;
  const killAfter = 100 + Math.floor(random() * 300);
  let killed: Promise<void> | undefined;
  const acked2 = await Promise.all(
    REGIONS.map((r) =>
      produce(producers[r as 'a' | 'b'], r, history, {
        count: second,
        deadlineMs: 120_000,
        label: `${r}2`,
        onSent: (i) => {
          if (r === 'a' && i === killAfter) {
            t.log(`SIGKILL ${owner} after ${i} sends of phase 2`);
            killed = d.cluster.killBroker(owner, 'SIGKILL');
          }
        },
      }),
    ),
  );
  await killed;
  t.log(`phase 2 acked: a ${acked2[0]}, b ${acked2[1]} of ${second} each`);
  t.is(acked2[1], second, "every send in b is acknowledged (b's node never failed)");
  await waitConverged(d, TOPIC, 2 * first + (acked2[0] ?? 0) + (acked2[1] ?? 0), 90_000);
  t.is(await ownerOf(d, TOPIC), survivor, `the topic moved to ${survivor}`);
  // Both directions run through the new owner: its link to b, and b's link to it.
  const links = (await d.brokerAdmin(survivor).call<{ links: Array<LinkView & { to: string }> }>('GET', '/replication/status')).links;
  t.true(links.some((l) => l.topic === `persistent://${TOPIC}` && l.to === 'b' && l.state === 'connected'), 'the new owner ships to b');
  await assertHistory(t, d, history);
  // Placement still flows after the kill (the placement topic is served again if it was on the killed broker).
  await d.bAdmin.call('POST', '/tenants/bank/placement', { homeRegion: 'a' });
  await waitFor(
    async () => (await d.brokerAdmin(survivor).call<{ tenants: Array<{ name: string; homeRegion: string }> }>('GET', '/placement')).tenants.some((tenant) => tenant.name === 'bank' && tenant.homeRegion === 'a'),
    30_000,
    `tenant bank's new home on ${survivor}`,
  );
  // How often b's links were sent to another broker of a (varies with who owned what when).
  t.log(`redirects received by b's links: ${(d.b.output().match(/refused by remote: ADMQ_ERR_TOPIC_MOVED/g) ?? []).length}`);
});
