// Benchmark of a regional cluster (issue 8) against a standalone node, in the same run:
// durable publish throughput and send→ack latency, and how long a topic is unavailable
// after its broker is killed.
//
// The cluster is 3 brokers and 3 storage nodes (plus etcd), every one its own process, on
// this machine: its 2 cores are shared by all of them and by the load generator. The
// standalone node fsyncs its own LMDB; in the cluster a send is acknowledged once 2 of 3
// storage nodes have fsynced it (E/Qw/Qa = 3/3/2), which costs a network round trip per
// group commit and three copies of every byte.
import { AdminClient, AdmqClient, type Producer } from '../client/index.ts';
import { runProduceLoad, type ProduceLoadResult } from '../cli/perf.ts';
import { startNodeProcess } from '../test-support/processes.ts';
import { RegionCluster } from '../test-support/region-cluster.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';

export interface ClusterBenchResult {
  partitions: number;
  producers: number;
  standalone: ProduceLoadResult;
  cluster: ProduceLoadResult;
  leaseMs: number;
  /** Per kill: ms from SIGKILL of the owner to the first send acknowledged by the new owner. */
  failoverMs: number[];
}

const PARTITIONS = 6;
const PRODUCERS = 8;
const WINDOW = 2_000;

const progress = (label: string) => (p: { elapsedMs: number; ratePerSecond: number }) =>
  console.error(`  ${label} [${(p.elapsedMs / 1000).toFixed(0)}s] ${p.ratePerSecond.toFixed(0)} msg/s`);

async function publish(serviceUrl: string, admin: AdminClient, label: string, durationMs: number): Promise<ProduceLoadResult> {
  const topic = 'public/default/bench-cluster';
  await admin.createTopic(topic, PARTITIONS);
  return runProduceLoad({ serviceUrl, topic, producers: PRODUCERS, payloadBytes: 1024, ratePerSecond: 0, durationMs, messagesMax: 50_000_000, inflightMax: Math.floor(WINDOW / PRODUCERS), warmupMs: 1_000, onProgress: progress(label) });
}

/** Sends at `rate` msg/s; kills the topic's owner; returns the time until the first ack after the kill. */
async function failoverOnce(leaseMs: number, round: number): Promise<number> {
  const cluster = await RegionCluster.start({ storageNodes: 3, brokers: 3, ownershipLeaseMs: leaseMs });
  try {
    const admin = new AdminClient(cluster.adminUrl('b1'));
    const topic = `public/default/failover-${round}`;
    await admin.createTopic(topic);
    const client = new AdmqClient({ serviceUrl: cluster.serviceUrl(), backoffMaxMs: 200 });
    try {
      const producer = (await client.createProducer({ topic, sendTimeoutMs: 60_000 })) as Producer;
      const owner = await admin.call<{ brokerId: string }>('GET', `/cluster/lookup/${topic}`);
      let killedAt = 0;
      let firstAckAfterKill = 0;
      const deadline = Date.now() + 60_000;
      const pending = new Set<Promise<unknown>>();
      for (let i = 0; Date.now() < deadline && (firstAckAfterKill === 0 || i < 3_000); i++) {
        // Only messages sent once the old owner is dead count: an ack of an earlier one may
        // still have been on its way from the old owner when it was killed.
        const afterKill = killedAt > 0;
        const p = producer.send({ payload: `m${i}` }).then(() => {
          if (afterKill && firstAckAfterKill === 0) firstAckAfterKill = performance.now();
        });
        pending.add(p);
        void p.finally(() => pending.delete(p));
        if (i === 1_000) {
          const node = cluster.broker(owner.brokerId).node;
          killedAt = performance.now();
          node?.child.kill('SIGKILL');
          await node?.exited;
        }
        if (pending.size >= 100) await Promise.race(pending);
        await new Promise((r) => setTimeout(r, 1)); // about 1,000 msg/s
      }
      await Promise.allSettled(pending);
      return firstAckAfterKill - killedAt;
    } finally {
      await client.close();
    }
  } finally {
    await cluster.stop();
  }
}

export async function runClusterBench(options: { quick?: boolean } = {}): Promise<ClusterBenchResult> {
  const durationMs = options.quick ? 4_000 : 10_000;
  console.error(`standalone node: durable publish, ${PRODUCERS} producers on ${PARTITIONS} partitions, 1 KiB`);
  const dataDir = tempDir('admq-bench-standalone-');
  const node = await startNodeProcess(['--data-dir', dataDir, '--grpc-port', '0', '--admin-port', '0']);
  let standalone: ProduceLoadResult;
  try {
    standalone = await publish(node.grpcAddress, new AdminClient(node.adminUrl), 'standalone', durationMs);
  } finally {
    node.child.kill('SIGTERM');
    await node.exited;
    removeTempDir(dataDir);
  }

  console.error('cluster of 3 brokers and 3 storage nodes (3/3/2): the same load');
  const cluster = await RegionCluster.start({ storageNodes: 3, brokers: 3 });
  let clustered: ProduceLoadResult;
  try {
    clustered = await publish(cluster.serviceUrl(), new AdminClient(cluster.adminUrl('b1')), 'cluster', durationMs);
  } finally {
    await cluster.stop();
  }

  const leaseMs = 5_000;
  const failoverMs: number[] = [];
  for (let round = 0; round < (options.quick ? 1 : 3); round++) {
    console.error(`failover after SIGKILL of the owning broker (lease ${leaseMs} ms), round ${round + 1}`);
    failoverMs.push(await failoverOnce(leaseMs, round));
    console.error(`  ${failoverMs.at(-1)?.toFixed(0)} ms`);
  }
  return { partitions: PARTITIONS, producers: PRODUCERS, standalone, cluster: clustered, leaseMs, failoverMs };
}

export function formatClusterBench(r: ClusterBenchResult): string {
  const f = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const row = (label: string, p: ProduceLoadResult) =>
    `| ${label} | ${f(p.messagesPerSecond)} msg/s, ${f(p.megabytesPerSecond, 1)} MB/s | p50 ${f(p.sendLatency.p50Ms, 2)} ms, p99 ${f(p.sendLatency.p99Ms, 2)} ms | ${f(p.errors)} |`;
  return [
    `## Regional cluster vs standalone (durable publish, 1 KiB, ${r.producers} producers on a ${r.partitions}-partition topic, ${f(WINDOW)} in flight)`,
    '',
    '| deployment | throughput | send→ack latency | failed sends |',
    '|---|---|---|---|',
    row('standalone node (fsync)', r.standalone),
    row('3 brokers + 3 storage nodes, E/Qw/Qa 3/3/2 (fsync on each storage node)', r.cluster),
    '',
    `## Topic failover after SIGKILL of its broker (3 brokers, ownership lease ${f(r.leaseMs)} ms, about 1,000 msg/s)`,
    '',
    '| measurement | result | target |',
    '|---|---|---|',
    `| SIGKILL → first acknowledgement of a send made after the old owner died | ${r.failoverMs.map((ms) => `${f(ms)} ms`).join(', ')} | ≤ lease + 1 s = ${f(r.leaseMs + 1000)} ms |`,
    '',
  ].join('\n');
}
