// Benchmarks of cross-region consistency (issue 5), on this machine's loopback:
// - duplicates a consumer sees after failing over to another region, against the
//   subscription sync interval;
// - the latency HLC-ordered delivery adds over arrival order, at 30 ms one-way delay;
// - conflict resolution throughput of a keyed topic's table, and keyed writes end to end.
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import type { AdmqConsumer, Message } from '../client/index.ts';
import { createConflictPolicy, formatVersionVector, versionVector } from '../conflict/index.ts';
import { Cluster } from '../multi-region-tests/cluster.ts';
import { KeyedTable } from '../region-node/broker/keyed-table.ts';
import type { Entry } from '../region-node/storage/entry-codec.ts';

export interface ConsistencyBenchResult {
  failover: Array<{ syncIntervalMs: number; ackRatePerSecond: number; ackedBeforeKill: number; duplicates: number; missing: number }>;
  ordering: { oneWayDelayMs: number; ratePerRegion: number; arrival: Percentiles; hlc: Percentiles };
  conflicts: { versions: number; seconds: number; versionsPerSecond: number; conflictsDetected: number };
}

interface Percentiles {
  p50: number;
  p99: number;
  max: number;
  count: number;
}

function histogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

function percentiles(h: hdr.Histogram): Percentiles {
  return { p50: h.getValueAtPercentile(50), p99: h.getValueAtPercentile(99), max: h.maxValue, count: h.totalCount };
}

/** A consumer acks at a steady rate in shanghai; shanghai is killed; the consumer resumes in beijing. */
async function failoverDuplicates(syncIntervalMs: number, ackRatePerSecond: number): Promise<ConsistencyBenchResult['failover'][number]> {
  const cluster = await Cluster.start({ regions: ['shanghai', 'beijing'], transport: 'insecure', subscriptionSyncIntervalMs: syncIntervalMs });
  try {
    const topic = 'persistent://public/default/failover-bench';
    await cluster.createTopic('shanghai', topic);
    const total = 20_000;
    const producer = await cluster.client('shanghai').createProducer({ topic, producerName: 'feed' });
    for (let i = 0; i < total; i += 1000) await Promise.all(Array.from({ length: 1000 }, (_, j) => producer.send({ payload: `m${i + j}` })));
    await cluster.waitForEntries(topic, total, 60_000);
    const consumer = await cluster.client('shanghai').subscribe({ topic, subscription: 'bench', subscriptionType: 'shared', initialPosition: 'earliest' });
    const acked = new Set<string>();
    const started = performance.now();
    // Acks for a few sync intervals, then the kill lands at an arbitrary point of one.
    const runMs = Math.max(3000, syncIntervalMs * 4) + Math.random() * syncIntervalMs;
    while (performance.now() - started < runMs) {
      const m = await consumer.receive(10_000);
      consumer.ack(m);
      acked.add(m.payload.toString());
      const due = started + (acked.size * 1000) / ackRatePerSecond;
      if (due > performance.now()) await new Promise((resolve) => setTimeout(resolve, due - performance.now()));
    }
    await new Promise((resolve) => setTimeout(resolve, 20)); // the last acks reach the node
    await cluster.kill('shanghai');
    const resumed = await cluster.client('beijing').subscribe({ topic, subscription: 'bench', subscriptionType: 'shared', initialPosition: 'latest' });
    const seen = new Set<string>();
    for (;;) {
      let m: Message;
      try {
        m = await resumed.receive(3000);
      } catch {
        break;
      }
      resumed.ack(m);
      seen.add(m.payload.toString());
    }
    let duplicates = 0;
    for (const p of seen) if (acked.has(p)) duplicates++;
    let missing = 0;
    for (let i = 0; i < total; i++) if (!acked.has(`m${i}`) && !seen.has(`m${i}`)) missing++;
    return { syncIntervalMs, ackRatePerSecond, ackedBeforeKill: acked.size, duplicates, missing };
  } finally {
    await cluster.stop();
  }
}

async function receiveLatencies(consumer: AdmqConsumer, count: number, h: hdr.Histogram, skip: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const m = await consumer.receive(60_000);
    consumer.ack(m);
    if (i >= skip) h.recordValue(Math.max(1, Date.now() - m.publishTimeMs));
  }
}

/** Publish (in any region) → delivery in shanghai, for an arrival-order and an HLC-ordered subscription side by side. */
async function orderingLatency(oneWayDelayMs: number, ratePerRegion: number, seconds: number): Promise<ConsistencyBenchResult['ordering']> {
  const regions = ['shanghai', 'beijing', 'shenzhen'];
  const cluster = await Cluster.start({ regions, transport: 'insecure' });
  try {
    cluster.setDelay(oneWayDelayMs);
    const topic = 'persistent://public/default/ordering-bench';
    await cluster.createTopic('shanghai', topic);
    const arrival = await cluster.client('shanghai').subscribe({ topic, subscription: 'arrival', initialPosition: 'earliest', receiverQueueSize: 5000 });
    const ordered = await cluster.client('shanghai').subscribe({ topic, subscription: 'hlc', initialPosition: 'earliest', receiverQueueSize: 5000, deliveryOrder: 'hlc' });
    const perRegion = ratePerRegion * seconds;
    const total = perRegion * regions.length;
    const hArrival = histogram();
    const hOrdered = histogram();
    const skip = Math.floor(total / 10); // warm-up
    const receiving = Promise.all([receiveLatencies(arrival, total, hArrival, skip), receiveLatencies(ordered, total, hOrdered, skip)]);
    await Promise.all(
      regions.map(async (r) => {
        const producer = await cluster.client(r).createProducer({ topic, producerName: `p-${r}` });
        const start = performance.now();
        const sends: Array<Promise<unknown>> = [];
        for (let i = 0; i < perRegion; i++) {
          const due = start + (i * 1000) / ratePerRegion;
          if (due > performance.now()) await new Promise((resolve) => setTimeout(resolve, due - performance.now()));
          sends.push(producer.send({ payload: Buffer.alloc(256, 97) }));
        }
        await Promise.all(sends);
      }),
    );
    await receiving;
    return { oneWayDelayMs, ratePerRegion, arrival: percentiles(hArrival), hlc: percentiles(hOrdered) };
  } finally {
    await cluster.stop();
  }
}

/** Applies replicated keyed versions from three regions, a third of them concurrent, to a table. */
function conflictThroughput(versions: number): ConsistencyBenchResult['conflicts'] {
  const policy = createConflictPolicy({ kind: 'max-json-path', path: '$.balance' });
  const table = new KeyedTable('persistent://bench/keyed/t', 'shanghai', () => policy, () => {}, () => {});
  const regions = ['beijing', 'shenzhen', 'guangzhou'];
  const positions = new Map(regions.map((r) => [r, 0]));
  const seenPerKey = new Map<string, Map<string, number>>();
  const entries: Entry[] = [];
  for (let i = 0; i < versions; i++) {
    const region = regions[i % regions.length] as string;
    const key = `k${(i * 7919) % 1000}`;
    const position = (positions.get(region) as number) + 1;
    positions.set(region, position);
    // Two writes in three have seen everything before them; every third has seen nothing
    // of the key from the other regions: it is concurrent with what they wrote.
    const seen = i % 3 === 0 ? new Map<string, number>() : new Map(seenPerKey.get(key) ?? []);
    seen.set(region, position);
    seenPerKey.set(key, new Map([...(seenPerKey.get(key) ?? []), [region, position]]));
    const vv = versionVector([...seen]);
    entries.push({
      offset: i,
      originRegion: region,
      originPosition: position,
      hlc: BigInt(1_700_000_000_000 + i) << 16n,
      producerName: `w-${region}`,
      sequenceId: position,
      publishTimeMs: 0,
      eventTimeMs: 0,
      key,
      properties: { 'admq.vv': formatVersionVector(vv) },
      payload: Buffer.from(JSON.stringify({ balance: (i * 31) % 997 })),
    });
  }
  const started = performance.now();
  for (const entry of entries) table.apply(entry, true);
  const seconds = (performance.now() - started) / 1000;
  return { versions, seconds, versionsPerSecond: versions / seconds, conflictsDetected: table.conflictsDetected };
}

export async function runConsistencyBench(options: { quick?: boolean } = {}): Promise<ConsistencyBenchResult> {
  const failover: ConsistencyBenchResult['failover'] = [];
  for (const interval of options.quick ? [1000] : [250, 1000, 2000]) {
    console.error(`consumer failover: sync every ${interval} ms, 1,000 acks/s`);
    failover.push(await failoverDuplicates(interval, 1000));
  }
  console.error('HLC-ordered vs arrival delivery: 3 regions, 30 ms one way');
  const ordering = await orderingLatency(30, 300, options.quick ? 5 : 15);
  console.error('conflict resolution throughput');
  const conflicts = conflictThroughput(options.quick ? 30_000 : 200_000);
  return { failover, ordering, conflicts };
}

export function formatConsistencyBench(r: ConsistencyBenchResult): string {
  const f = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const p = (x: Percentiles) => `p50 ${f(x.p50)} ms, p99 ${f(x.p99)} ms, max ${f(x.max)} ms (${f(x.count)} messages)`;
  return [
    '## Consistency across regions (loopback, insecure links; see the replication benchmark for TLCP)',
    '',
    '| measurement | result |',
    '|---|---|',
    ...r.failover.map(
      (x) => `| consumer failover after kill -9, sync every ${f(x.syncIntervalMs)} ms, acking ${f(x.ackRatePerSecond)} msg/s | ${f(x.duplicates)} duplicates (≈ ${f((x.duplicates / x.ackRatePerSecond) * 1000)} ms of acks), ${f(x.missing)} missing, ${f(x.ackedBeforeKill)} acked before the kill |`,
    ),
    `| delivery latency, arrival order (3 regions writing ${f(r.ordering.ratePerRegion)} msg/s each, ${r.ordering.oneWayDelayMs} ms one way) | ${p(r.ordering.arrival)} |`,
    `| delivery latency, HLC order (same run) | ${p(r.ordering.hlc)} |`,
    `| conflict resolution (keyed table, max-json-path, 3 origins, a third concurrent) | ${f(r.conflicts.versionsPerSecond)} versions/s, ${f(r.conflicts.conflictsDetected)} conflicts detected in ${f(r.conflicts.versions)} versions |`,
    '',
  ].join('\n');
}
