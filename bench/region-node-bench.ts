// Benchmarks of a standalone region node (issue 2): durable publish throughput, publish-to-
// consume latency at a fixed rate, and draining a large backlog. The node runs as its own
// process with durability "fsync"; the load runs in this process, as a client would.
//
// Why a child process: in one process the load generator and the node would share one
// event loop, so every client callback would delay the node and the figures would
// measure neither. As separate processes they still share this machine's cores (two on
// the reference machine), so a figure is what one node serves next to its load.
//
// Publish windows: a few group commits' worth of messages in flight keeps the node busy;
// more only queues (Little's law: latency = in flight / throughput). 2,000 in flight
// across the producers gives the same throughput as 20,000 did, at a tenth of the
// send→ack latency or less.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AdminClient } from '../client/index.ts';
import { runConsumeLoad, runProduceLoad, type ConsumeLoadResult, type ProduceLoadResult } from '../cli/perf.ts';
import { startNodeProcess } from '../test-support/processes.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';

export interface RegionNodeBenchResult {
  publish1: ProduceLoadResult;
  publish16: ProduceLoadResult;
  latencyAt5k: ConsumeLoadResult & { producer: ProduceLoadResult };
  latencyAt5kNoFsync: ConsumeLoadResult & { producer: ProduceLoadResult };
  fsync: { commitP50Ms: number; commitP99Ms: number; commitMaxMs: number };
  drain: ConsumeLoadResult & { backlog: number; fillSeconds: number };
}

async function withNode<T>(run: (serviceUrl: string, admin: AdminClient) => Promise<T>, durability: 'fsync' | 'none' = 'fsync'): Promise<T> {
  const dataDir = tempDir('admq-bench-');
  const node = await startNodeProcess(['--data-dir', dataDir, '--grpc-port', '0', '--admin-port', '0', '--durability', durability]);
  try {
    return await run(node.grpcAddress, new AdminClient(node.adminUrl));
  } finally {
    node.child.kill('SIGTERM');
    await node.exited;
    removeTempDir(dataDir);
  }
}

/** The latency runs discard their first seconds: JIT compilation and connection set-up. */
const WARMUP_MS = 2_000;

/** Messages in flight across all producers in the throughput runs (see the header). */
const PUBLISH_WINDOW = 2_000;

const execFileAsync = promisify(execFile);

const progress = (label: string) => (p: { elapsedMs: number; ratePerSecond: number }) =>
  console.error(`  ${label} [${(p.elapsedMs / 1000).toFixed(0)}s] ${p.ratePerSecond.toFixed(0)} msg/s`);

export async function runRegionNodeBench(options: { durationMs?: number; backlog?: number } = {}): Promise<RegionNodeBenchResult> {
  const durationMs = options.durationMs ?? 10_000;
  const backlog = options.backlog ?? 1_000_000;

  console.error('publish throughput, 1 producer, 1 KiB, durable');
  const publish1 = await withNode(async (serviceUrl, admin) => {
    await admin.createTopic('public/default/bench-1');
    return runProduceLoad({ serviceUrl, topic: 'public/default/bench-1', producers: 1, payloadBytes: 1024, ratePerSecond: 0, durationMs, messagesMax: 50_000_000, inflightMax: PUBLISH_WINDOW, onProgress: progress('1 producer') });
  });

  console.error('publish throughput, 16 producers, 1 KiB, durable');
  const publish16 = await withNode(async (serviceUrl, admin) => {
    await admin.createTopic('public/default/bench-16');
    return runProduceLoad({ serviceUrl, topic: 'public/default/bench-16', producers: 16, payloadBytes: 1024, ratePerSecond: 0, durationMs, messagesMax: 50_000_000, inflightMax: PUBLISH_WINDOW / 16, onProgress: progress('16 producers') });
  });

  console.error('LMDB durable commit latency (one small commit every ms, no load)');
  const fsync = await measureFsync();

  const latencyRun = async (serviceUrl: string, admin: AdminClient) => {
    const topic = 'public/default/bench-latency';
    await admin.createTopic(topic);
    let ready: () => void = () => {};
    const subscribed = new Promise<void>((r) => (ready = r));
    const total = (5_000 * (durationMs + WARMUP_MS)) / 1000;
    const consuming = runConsumeLoad({ serviceUrl, topic, subscription: 'lat', subscriptionType: 'exclusive', initialPosition: 'latest', durationMs: durationMs + WARMUP_MS + 5_000, messagesMax: total, onReady: ready });
    await subscribed;
    const producer = await runProduceLoad({ serviceUrl, topic, producers: 1, payloadBytes: 1024, ratePerSecond: 5_000, durationMs: durationMs + WARMUP_MS, messagesMax: total, inflightMax: 5_000, warmupMs: WARMUP_MS });
    return { ...(await consuming), producer };
  };
  console.error('publish-to-consume latency at 5,000 msg/s (fsync)');
  const latencyAt5k = await withNode(latencyRun, 'fsync');
  console.error('publish-to-consume latency at 5,000 msg/s (durability none, to separate the pipeline from the disk)');
  const latencyAt5kNoFsync = await withNode(latencyRun, 'none');

  console.error(`consume throughput draining a ${backlog}-message backlog`);
  const drain = await withNode(async (serviceUrl, admin) => {
    const topic = 'public/default/bench-drain';
    await admin.createTopic(topic);
    await admin.createSubscription(topic, 'drain', 'earliest');
    const fillStart = performance.now();
    const filled = await runProduceLoad({ serviceUrl, topic, producers: 4, payloadBytes: 1024, ratePerSecond: 0, durationMs: 300_000, messagesMax: backlog, inflightMax: 5_000, onProgress: progress('fill') });
    const fillSeconds = (performance.now() - fillStart) / 1000;
    const result = await runConsumeLoad({ serviceUrl, topic, subscription: 'drain', subscriptionType: 'exclusive', initialPosition: 'earliest', durationMs: 300_000, messagesMax: filled.acked, receiverQueueSize: 5_000, onProgress: (p) => console.error(`  drain [${(p.elapsedMs / 1000).toFixed(0)}s] ${p.received} received, ${p.ratePerSecond.toFixed(0)} msg/s`) });
    return { ...result, backlog: filled.acked, fillSeconds };
  });

  return { publish1, publish16, latencyAt5k, latencyAt5kNoFsync, fsync, drain };
}

export function formatRegionNodeBench(r: RegionNodeBenchResult): string {
  const f = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const lat = r.latencyAt5k.endToEndLatency;
  return [
    '## Region node (standalone, durability fsync, 1 KiB payloads)',
    '',
    '| measurement | result | target |',
    '|---|---|---|',
    `| durable publish, 1 producer, ${f(PUBLISH_WINDOW)} in flight | ${f(r.publish1.messagesPerSecond)} msg/s, ${f(r.publish1.megabytesPerSecond, 1)} MB/s (send→ack p50 ${f(r.publish1.sendLatency.p50Ms, 2)} ms, p99 ${f(r.publish1.sendLatency.p99Ms, 2)} ms) | ≥ 150,000 msg/s |`,
    `| durable publish, 16 producers, ${f(PUBLISH_WINDOW / 16)} in flight each | ${f(r.publish16.messagesPerSecond)} msg/s, ${f(r.publish16.megabytesPerSecond, 1)} MB/s (send→ack p50 ${f(r.publish16.sendLatency.p50Ms, 2)} ms, p99 ${f(r.publish16.sendLatency.p99Ms, 2)} ms) | ≥ 150,000 msg/s |`,
    `| publish→consume latency at 5,000 msg/s (${f(lat.count)} messages after a ${WARMUP_MS / 1000} s warm-up) | p50 ${f(lat.p50Ms, 2)} ms, p99 ${f(lat.p99Ms, 2)} ms, p99.9 ${f(lat.p999Ms, 2)} ms, max ${f(lat.maxMs, 2)} ms | p99 < 5 ms |`,
    `| same, durability none (pipeline without the disk) | p50 ${f(r.latencyAt5kNoFsync.endToEndLatency.p50Ms, 2)} ms, p99 ${f(r.latencyAt5kNoFsync.endToEndLatency.p99Ms, 2)} ms, p99.9 ${f(r.latencyAt5kNoFsync.endToEndLatency.p999Ms, 2)} ms | — |`,
    `| raw LMDB durable commit on this disk (2,000 commits) | p50 ${f(r.fsync.commitP50Ms, 2)} ms, p99 ${f(r.fsync.commitP99Ms, 2)} ms, max ${f(r.fsync.commitMaxMs, 2)} ms | — |`,
    `| drain a ${f(r.drain.backlog)}-message backlog | ${f(r.drain.messagesPerSecond)} msg/s, ${f(r.drain.megabytesPerSecond, 1)} MB/s (${f(r.drain.received)} received in ${f(r.drain.elapsedMs / 1000, 1)} s; filling took ${f(r.drain.fillSeconds, 1)} s) | — |`,
    '',
  ].join('\n');
}

/**
 * The disk's own durable-commit latency through LMDB: the floor under publish latency.
 *
 * Measured in a child process. Run in this process, it left the load generator's heap in
 * a state where V8 ran a full mark-compact every ~0.3 s for the rest of the bench (31–39
 * in the latency run instead of 3; incremental marking started by task with 23 MB of
 * old-generation slack), and those pauses doubled or tripled the publish→consume p99
 * measured next (paired runs: 6–20 ms after it, 3.1–3.5 ms without it).
 */
async function measureFsync(): Promise<{ commitP50Ms: number; commitP99Ms: number; commitMaxMs: number }> {
  const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '--eval', FSYNC_PROBE], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    timeout: 120_000,
  });
  return JSON.parse(stdout) as { commitP50Ms: number; commitP99Ms: number; commitMaxMs: number };
}

/** 2,000 small durable commits, one every millisecond; prints the latency percentiles as JSON. */
const FSYNC_PROBE = `
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { open } from 'lmdb';
const dir = mkdtempSync(join(tmpdir(), 'admq-fsync-'));
const env = open({ path: join(dir, 'x.mdb'), eventTurnBatching: false, pageSize: 8192 });
const db = env.openDB({ name: 'c', keyEncoding: 'binary', encoding: 'binary' });
const samples = [];
const value = Buffer.alloc(5 * 1024, 1);
for (let i = 0; i < 2000; i++) {
  const key = Buffer.alloc(8);
  key.writeUInt32BE(i, 4);
  const t0 = performance.now();
  await db.transaction(() => db.putSync(key, value));
  await env.flushed;
  samples.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, 1));
}
await env.close();
rmSync(dir, { recursive: true, force: true });
samples.sort((a, b) => a - b);
console.log(JSON.stringify({ commitP50Ms: samples[1000] ?? 0, commitP99Ms: samples[1980] ?? 0, commitMaxMs: samples[samples.length - 1] ?? 0 }));
`;
