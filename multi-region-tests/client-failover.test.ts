// Client failover (DESIGN §8): a client configured with a tenant's regions, home first,
// keeps producing through a kill -9 of its home region by moving to the next one, with
// the same producer and sequence ids; nothing acked is lost or stored twice; once the
// home region is back, the client returns to it.
import test from 'ava';
import { AdmqClient, type Producer } from '../client/index.ts';
import { waitFor } from '../test-support/processes.ts';
import { Cluster } from './cluster.ts';
import { FaultProxy } from './fault-proxy.ts';
import { History, checkHistory, formatViolations } from './history.ts';
import { recordStoredEverywhere } from './workload.ts';

const REGIONS = ['shanghai', 'beijing'];

test.serial('client failover: the home region is killed mid-stream; sends go on in the next region; the client switches back once home is up', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/failover-client';
  await cluster.createTopic('shanghai', topic);
  const client = new AdmqClient({
    regions: REGIONS.map((name) => ({ name, serviceUrl: cluster.grpcAddress(name) })),
    failover: { failoverAfterMs: 500, switchBackAfterMs: 1000, checkIntervalMs: 100 },
    backoffInitialMs: 50,
    backoffMaxMs: 500,
  });
  t.teardown(() => client.close());
  t.is(client.region, 'shanghai', 'home first');
  const producer = (await client.createProducer({ topic, producerName: 'roaming', sendTimeoutMs: 60_000 })) as Producer;
  const history = new History();
  const send = async (i: number): Promise<void> => {
    const sequenceId = producer.lastSequenceId + 1;
    try {
      const id = await producer.send({ payload: `m${i}` });
      history.recordProduce({ region: id.region, topic, producer: 'roaming', sequenceId: id.sequenceId, payload: `m${i}`, acked: true, originRegion: id.region, originPosition: id.offset, offset: id.offset, hlc: id.hlc, atMs: Date.now() });
    } catch {
      history.recordProduce({ region: client.region, topic, producer: 'roaming', sequenceId, payload: `m${i}`, acked: false, atMs: Date.now() });
    }
  };
  let i = 0;
  const burst = async (count: number): Promise<void> => {
    const sends: Array<Promise<void>> = [];
    for (let n = 0; n < count; n++) {
      sends.push(send(i++));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await Promise.all(sends);
  };
  await burst(100);
  await cluster.kill('shanghai');
  await burst(200); // these wait out the failover, then go to beijing
  t.is(client.region, 'beijing');
  await cluster.startRegion('shanghai');
  await waitFor(() => client.region === 'shanghai', 30_000, 'the client to return home');
  await burst(100);
  await cluster.waitConverged(topic, 60_000);
  t.is(history.produces().filter((p) => p.acked).length, 400, 'every send acknowledged');
  await recordStoredEverywhere(cluster, history, topic);
  const stored = history.stored().filter((s) => s.region === 'beijing').map((s) => s.sequenceId).sort((a, b) => a - b);
  t.deepEqual(stored, Array.from({ length: 400 }, (_, n) => n), 'each sequence id exactly once');
  const violations = checkHistory(history, { regions: REGIONS });
  t.deepEqual(violations, [], formatViolations(violations));
});

test.serial('client failover: a silent partition (no reset) from the home region is noticed through missed keepalives; no spurious failover while healthy', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/failover-partition';
  await cluster.createTopic('shanghai', topic);
  // The client reaches each region through a proxy of its own, so the test can cut it off.
  const proxies = await Promise.all(
    REGIONS.map((name) => FaultProxy.start({ targetHost: '127.0.0.1', targetPort: Number(cluster.grpcAddress(name).split(':')[1]), name: `client->${name}` })),
  );
  t.teardown(async () => {
    for (const p of proxies) await p.close();
  });
  const client = new AdmqClient({
    regions: REGIONS.map((name, i) => ({ name, serviceUrl: (proxies[i] as FaultProxy).address })),
    failover: { failoverAfterMs: 1500, switchBackAfterMs: 1000, checkIntervalMs: 100, switchBack: false },
    backoffInitialMs: 50,
    backoffMaxMs: 500,
  });
  t.teardown(() => client.close());
  const producer = (await client.createProducer({ topic, producerName: 'steady', sendTimeoutMs: 60_000 })) as Producer;
  // Healthy for a few keepalive periods: the client stays home.
  for (let i = 0; i < 40; i++) {
    await producer.send({ payload: `before-${i}` });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.is(client.region, 'shanghai', 'no failover while the home region answers');
  (proxies[0] as FaultProxy).blackhole('both');
  const cutAt = Date.now();
  const pending = Array.from({ length: 20 }, (_, i) => producer.send({ payload: `after-${i}` }));
  await waitFor(() => client.region === 'beijing', 20_000, 'failover through missed keepalives');
  t.log(`failed over ${Date.now() - cutAt} ms after the cut`);
  const ids = await Promise.all(pending);
  t.is(ids.length, 20);
  await cluster.waitConverged(topic, 30_000);
  const stored = (await cluster.readAll('beijing', topic)).filter((m) => m.producerName === 'steady').map((m) => m.sequenceId).sort((a, b) => a - b);
  t.deepEqual(stored, Array.from({ length: 60 }, (_, n) => n), 'every send once');
});

test.serial('client for a pinned tenant: learns its regions from any region, home first, and never lists a region outside its allowed set', async (t) => {
  const regions = ['shanghai', 'beijing', 'shenzhen'];
  const cluster = await Cluster.start({
    regions,
    transport: 'insecure',
    tenants: { public: { allowedRegions: regions }, bank: { allowedRegions: ['beijing', 'shanghai'], homeRegion: 'beijing' } },
    namespaces: { 'public/default': { replicationSet: regions }, 'bank/pay': { replicationSet: ['shanghai', 'beijing'] } },
  });
  t.teardown(() => cluster.stop());
  // Asked in shenzhen, which holds none of the tenant's data.
  const learned = (await cluster.admin('shenzhen').call('GET', '/tenants/bank/regions')) as Array<{ name: string; serviceUrl: string; home: boolean }>;
  t.deepEqual(learned.map((r) => [r.name, r.home]), [['beijing', true], ['shanghai', false]]);
  t.is(learned[0]?.serviceUrl, cluster.grpcAddress('beijing'));
  const client = await AdmqClient.forTenant(`http://127.0.0.1:${cluster.regions.get('shenzhen')?.adminPort}`, 'bank', { failover: { failoverAfterMs: 500, checkIntervalMs: 100 } });
  t.teardown(() => client.close());
  t.is(client.region, 'beijing');
  const topic = 'persistent://bank/pay/ledger';
  await cluster.createTopic('beijing', topic, { regions: ['shanghai', 'beijing'] });
  const producer = await client.createProducer({ topic, producerName: 'teller' });
  await producer.send({ payload: 'deposit' });
  await cluster.kill('beijing');
  await waitFor(() => client.region === 'shanghai', 20_000, 'failover to the other allowed region');
  await producer.send({ payload: 'withdrawal' });
  t.is(client.region, 'shanghai', 'the next allowed region, never shenzhen');
  await t.throwsAsync(cluster.admin('shenzhen').call('GET', '/tenants/nobody/regions'), { message: /not in the topology/ });
});
