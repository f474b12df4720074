// Tenants and residency at runtime, and planned failover (DESIGN §8): placement changes
// made through any region's admin API replicate to every region as keyed metadata,
// last-writer-wins by HLC; a change that would break residency is refused; a replication
// set that grows ships the history, one that shrinks stops shipping and keeps the data;
// `admq failover` moves a tenant's home under load with RPO 0 and clients follow.
import test, { type ExecutionContext } from 'ava';
import { AdminClient, AdmqClient, AdmqClientError, type Producer } from '../client/index.ts';
import { plannedFailover } from '../operations/planned-failover.ts';
import { execFile } from 'node:child_process';
import { ADMQ_CLI, startNodeProcess, waitFor } from '../test-support/processes.ts';
import { tempDir } from '../test-support/temp-dir.ts';
import { Cluster } from './cluster.ts';
import { History, checkHistory, formatViolations } from './history.ts';
import { recordStoredEverywhere } from './workload.ts';

const REGIONS = ['shanghai', 'beijing', 'shenzhen'];

type Placement = { tenants: Array<{ name: string; allowedRegions: string[]; homeRegion: string; fencedIn?: string }>; namespaces: Array<{ name: string; replicationSet: string[] }> };

async function placementOf(cluster: Cluster, region: string): Promise<Placement> {
  return (await cluster.admin(region).call('GET', '/placement')) as Placement;
}

async function expectCode(t: ExecutionContext, call: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  try {
    await call;
    t.fail(`expected ${code}`);
  } catch (error) {
    t.is((error as AdmqClientError).code as string, code, (error as Error).message);
    t.is(pattern.test((error as Error).message), true, `message "${(error as Error).message}" names ${pattern}`);
  }
}

test.serial('placement: runtime tenants and namespaces replicate to every region; residency violations are refused with the field named', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const shanghai = cluster.admin('shanghai');
  await shanghai.call('PUT', '/tenants/acme', { allowedRegions: ['shanghai', 'beijing'], homeRegion: 'shanghai' });
  await shanghai.call('PUT', '/namespaces/acme/orders', { replicationSet: ['shanghai', 'beijing'] });
  // Every region learns the placement, shenzhen included (it holds no data of acme).
  for (const region of REGIONS) {
    await waitFor(async () => (await placementOf(cluster, region)).namespaces.some((n) => n.name === 'acme/orders'), 20_000, `placement in ${region}`);
    const p = await placementOf(cluster, region);
    t.deepEqual(p.tenants.find((x) => x.name === 'acme'), { name: 'acme', allowedRegions: ['shanghai', 'beijing'], homeRegion: 'shanghai' });
  }
  // The tenant and namespace exist where they may, and not elsewhere.
  await waitFor(async () => (await cluster.admin('beijing').listNamespaces('acme').catch((): string[] => [])).includes('acme/orders'), 20_000, 'namespace in beijing');
  await expectCode(t, cluster.admin('shenzhen').call('GET', '/tenants/acme'), 'ADMQ_ERR_TENANT_NOT_FOUND', /acme/);

  // Residency: each refusal names what is wrong, and nothing changes.
  await expectCode(t, shanghai.setNamespacePlacement('acme/orders', ['shanghai', 'shenzhen']), 'ADMQ_ERR_RESIDENCY', /replicationSet.*shenzhen.*outside tenant acme's allowed regions/);
  await expectCode(t, shanghai.setTenantPlacement('acme', { homeRegion: 'shenzhen' }), 'ADMQ_ERR_RESIDENCY', /homeRegion.*shenzhen.*outside/);
  await expectCode(t, shanghai.setTenantPlacement('acme', { allowedRegions: ['shanghai'] }), 'ADMQ_ERR_RESIDENCY', /allowedRegions.*acme\/orders replicates to beijing/);
  await expectCode(t, shanghai.setNamespacePlacement('acme/orders', ['shanghai', 'atlantis']), 'ADMQ_ERR_RESIDENCY', /unknown region "atlantis"/);
  // A fence only where the tenant's home is.
  await expectCode(t, cluster.admin('beijing').fenceTenant('acme'), 'ADMQ_ERR_RESIDENCY', /home is shanghai/);
  const after = await placementOf(cluster, 'beijing');
  t.deepEqual(after.namespaces.find((n) => n.name === 'acme/orders')?.replicationSet, ['shanghai', 'beijing']);
  t.is(after.tenants.find((x) => x.name === 'acme')?.homeRegion, 'shanghai');
});

test.serial('placement: a replication set that grows ships the history; one that shrinks stops shipping, keeps the data there and refuses new writes there', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const shanghai = cluster.admin('shanghai');
  await shanghai.call('PUT', '/tenants/acme', { allowedRegions: ['shanghai', 'beijing'] });
  await shanghai.call('PUT', '/namespaces/acme/orders', { replicationSet: ['shanghai', 'beijing'] });
  await waitFor(async () => (await cluster.admin('beijing').listNamespaces('acme').catch((): string[] => [])).includes('acme/orders'), 20_000, 'namespace in beijing');
  const topic = 'persistent://acme/orders/pay';
  await cluster.createTopic('shanghai', topic, { regions: ['shanghai', 'beijing'] });
  const client = cluster.client('shanghai');
  const producer = (await client.createProducer({ topic, producerName: 'p' })) as Producer;
  for (let i = 0; i < 50; i++) await producer.send({ payload: `before-${i}` });
  await waitFor(async () => ((await cluster.admin('beijing').topicStats(topic)) as { entries: number }).entries === 50, 20_000, 'beijing has the first 50');

  // Grow: shenzhen may hold acme now, and joins the set; it receives the history.
  await cluster.admin('beijing').setTenantPlacement('acme', { allowedRegions: REGIONS });
  await waitFor(async () => (await placementOf(cluster, 'shanghai')).tenants.find((x) => x.name === 'acme')?.allowedRegions.length === 3, 20_000, 'allowed regions everywhere');
  await shanghai.setNamespacePlacement('acme/orders', REGIONS);
  await waitFor(async () => ((await cluster.admin('shenzhen').topicStats(topic).catch(() => ({ entries: 0 }))) as { entries: number }).entries === 50, 30_000, 'shenzhen receives the history');

  // Shrink: shenzhen leaves the set. New writes stop reaching it; what it has stays.
  await shanghai.setNamespacePlacement('acme/orders', ['shanghai', 'beijing']);
  await waitFor(async () => (await placementOf(cluster, 'shenzhen')).namespaces.find((n) => n.name === 'acme/orders')?.replicationSet.length === 2, 20_000, 'shenzhen learns it left');
  for (let i = 0; i < 30; i++) await producer.send({ payload: `after-${i}` });
  await waitFor(async () => ((await cluster.admin('beijing').topicStats(topic)) as { entries: number }).entries === 80, 20_000, 'beijing still replicates');
  await new Promise((resolve) => setTimeout(resolve, 1000)); // a second for anything that might still leak
  t.is(((await cluster.admin('shenzhen').topicStats(topic)) as { entries: number }).entries, 50, 'shenzhen keeps its data and gets nothing new');
  const kept = await cluster.readAll('shenzhen', topic);
  t.deepEqual(kept.map((m) => m.payload.toString()), Array.from({ length: 50 }, (_, i) => `before-${i}`));
  // A local write in the region that left is refused with a typed error.
  const outside = cluster.client('shenzhen');
  await expectCode(t, outside.createProducer({ topic, producerName: 'q' }), 'ADMQ_ERR_RESIDENCY', /acme\/orders may not be written in shenzhen/);
  const status = await cluster.replicationStatus('shanghai');
  t.false(status.links.some((l) => l.topic === topic && l.to === 'shenzhen'), 'no link to a region outside the set');
});

test.serial('placement: concurrent changes in two partitioned regions converge everywhere on the later one (last writer wins by HLC)', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  t.teardown(() => cluster.stop());
  await cluster.admin('shanghai').call('PUT', '/tenants/acme', { allowedRegions: REGIONS, homeRegion: 'shanghai' });
  for (const region of REGIONS) await waitFor(async () => (await placementOf(cluster, region)).tenants.some((x) => x.name === 'acme'), 20_000, `acme in ${region}`);
  cluster.partition('beijing');
  await cluster.admin('shanghai').setTenantPlacement('acme', { homeRegion: 'shenzhen' });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await cluster.admin('beijing').setTenantPlacement('acme', { homeRegion: 'beijing' });
  // While cut off, each side sees its own change.
  t.is((await placementOf(cluster, 'beijing')).tenants.find((x) => x.name === 'acme')?.homeRegion, 'beijing');
  await waitFor(async () => (await placementOf(cluster, 'shenzhen')).tenants.find((x) => x.name === 'acme')?.homeRegion === 'shenzhen', 20_000, 'shenzhen sees shanghai’s change');
  cluster.heal();
  for (const region of REGIONS) {
    await waitFor(async () => (await placementOf(cluster, region)).tenants.find((x) => x.name === 'acme')?.homeRegion === 'beijing', 30_000, `${region} converges on the later write`);
  }
  const records = ((await cluster.admin('shenzhen').call('GET', '/placement')) as { records: Array<{ key: string; originRegion: string }> }).records;
  t.is(records.find((r) => r.key === 'tenant/acme')?.originRegion, 'beijing');
});

test.serial('planned failover under load: RPO 0 (every write the old home acked is in the new home when it returns), producers follow without a restart, no loss, no duplicates', async (t) => {
  const cluster = await Cluster.start({
    regions: REGIONS,
    transport: 'insecure',
    tenants: { public: { allowedRegions: REGIONS }, bank: { allowedRegions: REGIONS, homeRegion: 'shanghai' } },
    namespaces: { 'public/default': { replicationSet: REGIONS }, 'bank/pay': { replicationSet: REGIONS } },
  });
  t.teardown(() => cluster.stop());
  cluster.setDelay(30);
  const topic = 'persistent://bank/pay/ledger';
  await cluster.createTopic('shanghai', topic);
  const adminUrls = Object.fromEntries(REGIONS.map((r) => [r, `http://127.0.0.1:${cluster.regions.get(r)?.adminPort}`]));
  const client = await AdmqClient.forTenant(adminUrls.shenzhen as string, 'bank', { failover: { checkIntervalMs: 100 }, backoffInitialMs: 50, backoffMaxMs: 500 });
  t.teardown(() => client.close());
  t.is(client.region, 'shanghai');
  const producer = (await client.createProducer({ topic, producerName: 'teller', sendTimeoutMs: 60_000 })) as Producer;
  const history = new History();
  let stop = false;
  // About 500 msg/s for the whole failover, each send recorded with the region that took it.
  const load = (async () => {
    const inflight = new Set<Promise<void>>();
    for (let i = 0; i < 20_000 && !stop; i++) {
      const payload = `m${i}`;
      const sequenceId = producer.lastSequenceId + 1;
      const p = producer.send({ payload }).then(
        // A resend the new home already had (its ack was lost to the fence) is acked as a
        // duplicate; its original's position is not reported, so the history says unknown.
        (id) => history.recordProduce({ region: id.region, topic, producer: 'teller', sequenceId: id.sequenceId, payload, acked: true, originRegion: id.region, originPosition: id.duplicate ? -1 : id.offset, offset: id.offset, hlc: id.duplicate ? 0n : id.hlc, atMs: Date.now() }),
        () => history.recordProduce({ region: client.region, topic, producer: 'teller', sequenceId, payload, acked: false, atMs: Date.now() }),
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await Promise.all(inflight);
  })();
  await waitFor(() => history.produces().length >= 300, 20_000, 'load before the failover');
  const phases: string[] = [];
  const result = await plannedFailover({ adminUrls, tenant: 'bank', to: 'beijing', onProgress: (p) => phases.push(p.phase) });
  // RPO 0: every entry the old home acked before the fence (its HLC is below the fence's)
  // is in the new home when the failover returns. After the unfence the old home takes
  // writes again (active-active) until the client has moved; those replicate as usual.
  const fencedAt = BigInt(result.fencedAtHlc);
  const ackedInShanghai = history.produces().filter((p) => p.acked && p.originRegion === 'shanghai' && p.originPosition !== -1 && (p.hlc as bigint) < fencedAt);
  const inBeijing = new Set((await cluster.readAll('beijing', topic)).filter((m) => m.originRegion === 'shanghai').map((m) => m.originPosition));
  const missing = ackedInShanghai.filter((p) => !inBeijing.has(p.originPosition as number));
  t.deepEqual(missing, [], 'entries acked in the old home but missing in the new one');
  t.true(ackedInShanghai.length >= 300);
  t.deepEqual([...new Set(phases)], ['fence', 'drain', 'move', 'unfence', 'done']);
  t.is(result.from, 'shanghai');
  t.log(`planned failover: ${result.totalMs} ms (drain ${result.drainMs} ms) at about 500 msg/s`);
  // Producers follow the new home without a restart.
  await waitFor(() => client.region === 'beijing', 20_000, 'the client to follow the new home');
  const before = history.produces().filter((p) => p.acked && p.region === 'beijing').length;
  await waitFor(() => history.produces().filter((p) => p.acked && p.region === 'beijing').length >= before + 200, 20_000, 'sends acked in the new home');
  stop = true;
  await load;
  t.is(history.produces().filter((p) => !p.acked).length, 0, 'no send failed: the fence only delays');
  await cluster.waitConverged(topic, 60_000);
  await recordStoredEverywhere(cluster, history, topic);
  const violations = checkHistory(history, { regions: REGIONS });
  t.deepEqual(violations, [], formatViolations(violations));
  const sequenceIds = history.stored().filter((s) => s.region === 'shenzhen').map((s) => s.sequenceId).sort((a, b) => a - b);
  t.deepEqual(sequenceIds, Array.from({ length: sequenceIds.length }, (_, n) => n), 'each sequence id once');
  t.is(sequenceIds.length, history.produces().length);
  const p = (await placementOf(cluster, 'shenzhen')).tenants.find((x) => x.name === 'bank');
  t.is(p?.homeRegion, 'beijing');
  t.is(p?.fencedIn, undefined);
});

test('placement admin API without a topology: a clear error', async (t) => {
  const dir = tempDir('admq-placement-');
  const node = await startNodeProcess(['--data-dir', dir, '--grpc-port', '0', '--admin-port', '0']);
  t.teardown(async () => {
    node.child.kill('SIGTERM');
    await node.exited;
  });
  const admin = new AdminClient(node.adminUrl);
  await expectCode(t, admin.placement(), 'ADMQ_ERR_BAD_REQUEST', /without a topology/);
  await expectCode(t, admin.fenceTenant('public'), 'ADMQ_ERR_BAD_REQUEST', /without a topology/);
});

test.serial('cli: admq tenants/namespaces placement commands and admq failover, as an operator runs them', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const adminUrl = `http://127.0.0.1:${cluster.regions.get('shenzhen')?.adminPort}`;
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [ADMQ_CLI, ...args, '--admin-url', adminUrl], (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr })),
    );
  t.is((await run(['tenants', 'create', 'bank', '--allowed-regions', 'shanghai,beijing', '--home-region', 'shanghai'])).code, 0);
  const made = await run(['namespaces', 'create', 'bank/pay', '--replication-set', 'shanghai,beijing']);
  t.is(made.code, 0, made.stderr);
  const refused = await run(['namespaces', 'set-replication', 'bank/pay', '--replication-set', 'shanghai,shenzhen']);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /ADMQ_ERR_RESIDENCY.*shenzhen.*outside tenant bank's allowed regions/);
  await waitFor(async () => (await placementOf(cluster, 'beijing')).namespaces.some((n) => n.name === 'bank/pay'), 20_000, 'placement in beijing');
  await cluster.createTopic('shanghai', 'persistent://bank/pay/ledger', { regions: ['shanghai', 'beijing'] });
  const moved = await run(['failover', '--tenant', 'bank', '--to', 'beijing']);
  t.is(moved.code, 0, moved.stderr);
  t.regex(moved.stdout, /tenant bank moved from shanghai to beijing in \d+ ms/);
  t.regex(moved.stderr, /fence bank: shanghai → beijing[\s\S]*drain[\s\S]*move[\s\S]*done/);
  const regions = JSON.parse((await run(['tenants', 'regions', 'bank'])).stdout) as Array<{ name: string; home: boolean }>;
  t.deepEqual(regions.map((r) => [r.name, r.home]), [['beijing', true], ['shanghai', false]]);
  const again = await run(['failover', '--tenant', 'bank', '--to', 'beijing']);
  t.is(again.code, 1);
  t.regex(again.stderr, /already tenant bank's home region/);
});
