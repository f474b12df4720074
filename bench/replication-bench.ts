// Replication benchmarks (issue 4): three regions on this machine, TLCP links through
// proxies adding 30 ms one-way delay. Measures replication throughput, replication delay
// at a steady 2,000 msg/s per region, and the catch-up rate after a long partition.
import { runProduceLoad } from '../cli/perf.ts';
import { Cluster } from '../multi-region-tests/cluster.ts';
import { waitFor } from '../test-support/processes.ts';

const REGIONS = ['shanghai', 'beijing', 'shenzhen'];
const DELAY_MS = 30;
/** Writes per second in the partitioned-away topic while the partition lasts. */
const CATCH_UP_FILL_RATE = 5_000;

export interface ReplicationBenchResult {
  oneWayDelayMs: number;
  throughput: { entries: number; seconds: number; entriesPerSecond: number; megabytesPerSecond: number };
  steady: { ratePerRegion: number; seconds: number; delayP50Ms: number; delayP99Ms: number; delayMaxMs: number; samples: number };
  catchUp: { partitionSeconds: number; backlog: number; seconds: number; entriesPerSecond: number };
}

async function entries(cluster: Cluster, region: string, topic: string): Promise<number> {
  return ((await cluster.admin(region).topicStats(topic)) as { entries: number }).entries;
}

/** Commit-to-commit delay (origin publish → durable in the receiver), the worst origin and receiver. */
async function receiverDelays(cluster: Cluster): Promise<{ p50: number; p99: number; max: number; count: number }> {
  let worst = { p50: 0, p99: 0, max: 0, count: 0 };
  for (const region of REGIONS) {
    const byOrigin = (await cluster.replicationStatus(region)).receiver.delayFromOriginMs as unknown as Record<string, { p50: number; p99: number; max: number; count: number }>;
    for (const h of Object.values(byOrigin)) {
      worst = { p50: Math.max(worst.p50, h.p50), p99: Math.max(worst.p99, h.p99), max: Math.max(worst.max, h.max), count: worst.count + h.count };
    }
  }
  return worst;
}

async function withCluster<T>(run: (cluster: Cluster) => Promise<T>): Promise<T> {
  // A fresh cluster per phase, so that each phase's histograms hold only its own traffic.
  // The link proxies run in a process of their own: in this one, every lag of its event
  // loop behind the load generators would be added to the injected delay.
  const cluster = await Cluster.start({ regions: REGIONS, network: 'process' });
  try {
    cluster.setDelay(DELAY_MS);
    await cluster.networkSettled();
    return await run(cluster);
  } finally {
    await cluster.stop();
  }
}

export async function runReplicationBench(options: { quick?: boolean } = {}): Promise<ReplicationBenchResult> {
  const throughput = await withCluster(async (cluster) => {
    // 1. Throughput: fill shanghai as fast as it takes, measure until the others hold it all.
    const topicA = 'persistent://public/default/bench-repl-throughput';
    await cluster.createTopic('shanghai', topicA);
    const count = options.quick ? 20_000 : 100_000;
    console.error(`replication throughput: ${count} × 1 KiB from shanghai, ${DELAY_MS} ms one-way delay, TLCP`);
    const started = performance.now();
    await runProduceLoad({ serviceUrl: cluster.grpcAddress('shanghai'), topic: topicA, producers: 4, payloadBytes: 1024, ratePerSecond: 0, durationMs: 300_000, messagesMax: count, inflightMax: 2000 });
    await waitFor(async () => (await entries(cluster, 'beijing', topicA)) >= count && (await entries(cluster, 'shenzhen', topicA)) >= count, 600_000, 'replication of the throughput run');
    const seconds = (performance.now() - started) / 1000;
    return { entries: count, seconds, entriesPerSecond: count / seconds, megabytesPerSecond: (count * 1024) / seconds / 1e6 };
  });
  const steady = await withCluster(async (cluster) => {
    // 2. Steady state: 2,000 msg/s in every region; the links' commit-to-commit delay histograms.
    const topicB = 'persistent://public/default/bench-repl-steady';
    await cluster.createTopic('shanghai', topicB);
    const steadySeconds = options.quick ? 5 : 20;
    console.error(`replication delay: 2,000 msg/s per region for ${steadySeconds} s`);
    await waitFor(async () => (await cluster.replicationStatus('beijing')).links.some((l) => l.topic === topicB), 30_000, 'links for the steady topic');
    // Warm-up at the same rate (connections, JIT), then the histograms start afresh.
    const warmups = await Promise.all(REGIONS.map((r) => runProduceLoad({ serviceUrl: cluster.grpcAddress(r), topic: topicB, producers: 1, payloadBytes: 1024, ratePerSecond: 2000, durationMs: 3000, messagesMax: 6000, inflightMax: 5000 })));
    const warmed = warmups.reduce((n, l) => n + l.acked, 0);
    await waitFor(async () => (await Promise.all(REGIONS.map((r) => entries(cluster, r, topicB)))).every((n) => n >= warmed), 60_000, 'warm-up replicated');
    for (const r of REGIONS) await cluster.admin(r).call('POST', '/replication/histograms/reset');
    const loads = await Promise.all(REGIONS.map((r) => runProduceLoad({ serviceUrl: cluster.grpcAddress(r), topic: topicB, producers: 1, payloadBytes: 1024, ratePerSecond: 2000, durationMs: steadySeconds * 1000, messagesMax: 2000 * steadySeconds, inflightMax: 5000 })));
    // What was acknowledged (a paced run may end a little short of its cap), everywhere.
    const total = warmed + loads.reduce((n, l) => n + l.acked, 0);
    await waitFor(async () => (await Promise.all(REGIONS.map((r) => entries(cluster, r, topicB)))).every((n) => n >= total), 120_000, 'steady run replicated');
    const d = await receiverDelays(cluster);
    return { ratePerRegion: 2000, seconds: steadySeconds, delayP50Ms: d.p50, delayP99Ms: d.p99, delayMaxMs: d.max, samples: d.count };
  });
  const catchUp = await withCluster(async (cluster) => {
    // 3. Catch-up: partition shenzhen while shanghai keeps writing, then heal and time the drain.
    const topicC = 'persistent://public/default/bench-repl-catchup';
    await cluster.createTopic('shanghai', topicC);
    await waitFor(async () => (await cluster.replicationStatus('shanghai')).links.some((l) => l.topic === topicC && l.to === 'shenzhen'), 30_000, 'links for the catch-up topic');
    const partitionSeconds = options.quick ? 10 : 60;
    console.error(`catch-up: shenzhen partitioned for ${partitionSeconds} s while shanghai writes ${CATCH_UP_FILL_RATE} msg/s`);
    cluster.partition('shenzhen');
    await cluster.networkSettled();
    // A steady production rate during the partition (as in a real outage), not a flood:
    // the backlog is what a busy topic accumulates, and the disk stays bounded.
    const filled = await runProduceLoad({ serviceUrl: cluster.grpcAddress('shanghai'), topic: topicC, producers: 4, payloadBytes: 1024, ratePerSecond: CATCH_UP_FILL_RATE, durationMs: partitionSeconds * 1000, messagesMax: CATCH_UP_FILL_RATE * partitionSeconds, inflightMax: 2000 });
    const before = await entries(cluster, 'shenzhen', topicC);
    const healStart = performance.now();
    cluster.heal();
    await cluster.networkSettled();
    await waitFor(async () => (await entries(cluster, 'shenzhen', topicC)) >= filled.acked, 900_000, 'catch-up');
    const catchSeconds = (performance.now() - healStart) / 1000;
    return { partitionSeconds, backlog: filled.acked - before, seconds: catchSeconds, entriesPerSecond: (filled.acked - before) / catchSeconds };
  });
  return { oneWayDelayMs: DELAY_MS, throughput, steady, catchUp };
}

export function formatReplicationBench(r: ReplicationBenchResult): string {
  const f = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  return [
    `## Replication (3 regions on this machine, TLCP links, ${r.oneWayDelayMs} ms injected one-way delay per link by proxies in their own process, 1 KiB)`,
    '',
    '| measurement | result | target |',
    '|---|---|---|',
    `| replication throughput (${f(r.throughput.entries)} entries from one region to two) | ${f(r.throughput.entriesPerSecond)} msg/s, ${f(r.throughput.megabytesPerSecond, 1)} MB/s (first send to last replica: ${f(r.throughput.seconds, 1)} s) | — |`,
    `| replication delay at 2,000 msg/s per region (${f(r.steady.samples)} entries; commit in origin → durable in receiver, worst pair) | p50 ${f(r.steady.delayP50Ms)} ms, p99 ${f(r.steady.delayP99Ms)} ms, max ${f(r.steady.delayMaxMs)} ms | p99 ≤ ${r.oneWayDelayMs + 20} ms |`,
    `| catch-up after a ${r.catchUp.partitionSeconds} s partition (${f(r.catchUp.backlog)} entries behind, written at ${f(CATCH_UP_FILL_RATE)} msg/s) | ${f(r.catchUp.entriesPerSecond)} msg/s (${f(r.catchUp.seconds, 1)} s) | ≥ 50,000 msg/s |`,
    '',
  ].join('\n');
}

