// Failover benchmarks (issue 6), three regions on this machine's loopback, TLCP links with
// 30 ms one-way delay:
// - unplanned: the RTO a client sees at its default failover settings when its home region
//   dies (kill -9) or goes silent (a partition between client and region, no reset): from
//   the fault to the first acknowledged send and the first delivery through another region;
// - planned: `admq failover` (fence, drain, move, unfence) while the tenant's producer
//   writes 2,000 msg/s.
import { performance } from 'node:perf_hooks';
import { AdmqClient, type AdmqConsumer, type Producer } from '../client/index.ts';
import { Cluster } from '../multi-region-tests/cluster.ts';
import { FaultProxy } from '../multi-region-tests/fault-proxy.ts';
import { plannedFailover } from '../operations/planned-failover.ts';
import { waitFor } from '../test-support/processes.ts';

const REGIONS = ['shanghai', 'beijing', 'shenzhen'];
const DELAY_MS = 30;

export interface FailoverBenchResult {
  oneWayDelayMs: number;
  unplanned: Array<{ fault: 'kill' | 'silent'; produceRtoMs: number; consumeRtoMs: number; failedSends: number }>;
  planned: Array<{ ratePerSecond: number; from: string; to: string; totalMs: number; drainMs: number; moveAndUnfenceMs: number; failedSends: number }>;
}

/** A producer at `rate` msg/s, recording the time and region of every ack; bounded in time and count. */
function paced(producer: Producer, rate: number, maxMs: number): { stop(): Promise<void>; acks: Array<{ atMs: number; region: string }>; failed: () => number } {
  const acks: Array<{ atMs: number; region: string }> = [];
  let failed = 0;
  let stopping = false;
  const loop = (async () => {
    const started = performance.now();
    const inflight = new Set<Promise<void>>();
    for (let i = 0; i < rate * (maxMs / 1000) && !stopping; i++) {
      const p = producer.send({ payload: `m${i}` }).then(
        (id) => void acks.push({ atMs: performance.now(), region: id.region }),
        () => void failed++,
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      const due = started + ((i + 1) * 1000) / rate;
      if (due > performance.now()) await new Promise((resolve) => setTimeout(resolve, due - performance.now()));
    }
    await Promise.all(inflight);
  })();
  return {
    stop: async () => {
      stopping = true;
      await loop;
    },
    acks,
    failed: () => failed,
  };
}

async function unplannedOnce(fault: 'kill' | 'silent'): Promise<FailoverBenchResult['unplanned'][number]> {
  const cluster = await Cluster.start({ regions: REGIONS });
  const proxies: FaultProxy[] = [];
  try {
    cluster.setDelay(DELAY_MS);
    const topic = 'persistent://public/default/failover-rto';
    await cluster.createTopic('shanghai', topic);
    // The client reaches each region through a proxy of its own, so that "silent" can cut
    // it off without a reset, as a real partition would.
    for (const name of REGIONS) {
      proxies.push(await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: Number(cluster.grpcAddress(name).split(':')[1]), name: `client->${name}` }));
    }
    // Default failover settings: what a user gets without tuning.
    const client = new AdmqClient({ regions: REGIONS.map((name, i) => ({ name, serviceUrl: (proxies[i] as FaultProxy).address })) });
    try {
      const producer = (await client.createProducer({ topic, producerName: `rto-${fault}`, sendTimeoutMs: 120_000 })) as Producer;
      const consumer: AdmqConsumer = await client.subscribe({ topic, subscription: 'rto', initialPosition: 'earliest' });
      const received: Array<{ atMs: number; region: string }> = [];
      let consuming = true;
      const consumeLoop = (async () => {
        while (consuming) {
          try {
            const m = await consumer.receive(500);
            received.push({ atMs: performance.now(), region: client.region });
            consumer.ack(m);
          } catch {
            // a receive timeout while the client fails over (or a failure: never spin)
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }
      })();
      const load = paced(producer, 500, 60_000);
      await waitFor(() => load.acks.length >= 1000, 30_000, 'load before the fault');
      const faultAt = performance.now();
      if (fault === 'kill') await cluster.kill('shanghai');
      else (proxies[0] as FaultProxy).blackhole('both');
      await waitFor(() => load.acks.some((a) => a.atMs > faultAt && a.region !== 'shanghai') && received.some((r) => r.atMs > faultAt && r.region !== 'shanghai'), 60_000, 'produce and consume in another region');
      const firstAck = load.acks.find((a) => a.atMs > faultAt && a.region !== 'shanghai') as { atMs: number };
      const firstReceive = received.find((r) => r.atMs > faultAt && r.region !== 'shanghai') as { atMs: number };
      await load.stop();
      consuming = false;
      await consumeLoop;
      return { fault, produceRtoMs: firstAck.atMs - faultAt, consumeRtoMs: firstReceive.atMs - faultAt, failedSends: load.failed() };
    } finally {
      await client.close();
    }
  } finally {
    for (const p of proxies) await p.close();
    await cluster.stop();
  }
}

async function plannedRuns(rounds: number, rate: number): Promise<FailoverBenchResult['planned']> {
  const cluster = await Cluster.start({
    regions: REGIONS,
    tenants: { public: { allowedRegions: REGIONS }, bank: { allowedRegions: REGIONS, homeRegion: 'shanghai' } },
    namespaces: { 'public/default': { replicationSet: REGIONS }, 'bank/pay': { replicationSet: REGIONS } },
  });
  const out: FailoverBenchResult['planned'] = [];
  try {
    cluster.setDelay(DELAY_MS);
    const topic = 'persistent://bank/pay/planned';
    await cluster.createTopic('shanghai', topic);
    const adminUrls = Object.fromEntries(REGIONS.map((r) => [r, `http://127.0.0.1:${cluster.regions.get(r)?.adminPort}`]));
    const client = await AdmqClient.forTenant(adminUrls.shenzhen as string, 'bank');
    try {
      const producer = (await client.createProducer({ topic, producerName: 'planned', sendTimeoutMs: 120_000 })) as Producer;
      const load = paced(producer, rate, 600_000);
      await waitFor(() => load.acks.length >= rate * 2, 30_000, 'load before the first failover');
      for (let i = 0; i < rounds; i++) {
        const to = i % 2 === 0 ? 'beijing' : 'shanghai';
        const r = await plannedFailover({ adminUrls, tenant: 'bank', to });
        out.push({ ratePerSecond: rate, from: r.from, to: r.to, totalMs: r.totalMs, drainMs: r.drainMs, moveAndUnfenceMs: r.unfencedAtMs - r.drainedAtMs, failedSends: load.failed() });
        console.error(`planned failover ${r.from} → ${r.to}: ${r.totalMs} ms (drain ${r.drainMs} ms)`);
        // The producer follows, then runs a while in the new home before the next move.
        await waitFor(() => client.region === to, 30_000, `the client to follow to ${to}`);
        const settled = load.acks.length;
        await waitFor(() => load.acks.length >= settled + rate * 2, 30_000, 'load in the new home');
      }
      await load.stop();
    } finally {
      await client.close();
    }
  } finally {
    await cluster.stop();
  }
  return out;
}

export async function runFailoverBench(options: { quick?: boolean } = {}): Promise<FailoverBenchResult> {
  const unplanned: FailoverBenchResult['unplanned'] = [];
  const trials = options.quick ? 1 : 3;
  for (const fault of ['kill', 'silent'] as const) {
    for (let i = 0; i < trials; i++) {
      const r = await unplannedOnce(fault);
      console.error(`unplanned (${fault}): produce RTO ${r.produceRtoMs.toFixed(0)} ms, consume RTO ${r.consumeRtoMs.toFixed(0)} ms`);
      unplanned.push(r);
    }
  }
  const planned = await plannedRuns(options.quick ? 2 : 6, 2000);
  return { oneWayDelayMs: DELAY_MS, unplanned, planned };
}

export function formatFailoverBench(r: FailoverBenchResult): string {
  const f = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const lines = [
    `## Failover (3 regions on this machine, TLCP links, ${r.oneWayDelayMs} ms injected one-way delay per link)`,
    '',
    'Unplanned: the client’s home region (shanghai) fails under 500 msg/s of load; the client runs its default failover settings (failoverAfterMs 2,000, keepalive 1,000 ms). RTO is from the fault to the first acknowledged send and the first delivery through another region.',
    '',
    '| fault | produce RTO | consume RTO | failed sends | target |',
    '|---|---|---|---|---|',
    ...r.unplanned.map((u) => `| ${u.fault === 'kill' ? 'kill -9 of the region' : 'silent partition (client ↔ region, no reset)'} | ${f(u.produceRtoMs)} ms | ${f(u.consumeRtoMs)} ms | ${u.failedSends} | ≤ 5,000 ms |`),
    '',
    `Planned (\`admq failover\`), the tenant’s producer writing ${f(r.planned[0]?.ratePerSecond ?? 0)} msg/s throughout; the home moves back and forth between shanghai and beijing:`,
    '',
    '| move | total | drain | move + unfence + seen by the target | failed sends | target |',
    '|---|---|---|---|---|---|',
    ...r.planned.map((p) => `| ${p.from} → ${p.to} | ${f(p.totalMs)} ms | ${f(p.drainMs)} ms | ${f(p.moveAndUnfenceMs)} ms | ${p.failedSends} | ≤ 2,000 ms + drain |`),
    '',
    `Medians: unplanned produce RTO ${f(median(r.unplanned.filter((u) => u.fault === 'kill').map((u) => u.produceRtoMs)))} ms after a kill, ${f(median(r.unplanned.filter((u) => u.fault === 'silent').map((u) => u.produceRtoMs)))} ms after a silent partition; planned failover ${f(median(r.planned.map((p) => p.totalMs)))} ms total, of which drain ${f(median(r.planned.map((p) => p.drainMs)))} ms.`,
    '',
  ];
  return lines.join('\n');
}
