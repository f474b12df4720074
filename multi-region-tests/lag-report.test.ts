// Lag history and compliance reports against real faults: two regions as real processes
// with TLCP links through fault proxies. The test injects a known delay, a partition and a
// kill -9, keeps its own record of when every message was published in shanghai and
// arrived in beijing, and checks the signed report that `admq report` writes from the
// nodes' histories against what it injected.
//
// The model the figures are checked against: the report's lag is the sender's (age of the
// oldest entry not yet acknowledged), so an entry counts from its publish time until its
// ack is back in shanghai — its arrival in beijing (a consumer there sees it) plus the
// one-way delay in force on the way back. Tolerances: the report samples once a second,
// so a time or a peak may be off by one sample interval, plus 500 ms for the consumer's,
// the proxy's and the event loops' own delays: ±1.5 s on breach start, end and peak, and
// on max and p99; ±300 ms on the lag seen during the delay phase.
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Producer } from '../client/index.ts';
import { cmdReport } from '../compliance/cli.ts';
import type { LagReport } from '../compliance/report.ts';
import { waitFor } from '../test-support/processes.ts';
import { Cluster } from './cluster.ts';

const TOPIC = 'persistent://public/default/lag';
const TARGET_MS = 3000;
const DELAY_MS = 400;
const TOLERANCE_MS = 1500;

interface Arrival {
  publishMs: number;
  arrivedMs: number;
}

/** When the delay on shanghai->beijing changed, so the ack's way back can be modelled. */
class DelaySchedule {
  readonly #changes: Array<{ atMs: number; delayMs: number }> = [{ atMs: 0, delayMs: 0 }];
  set(atMs: number, delayMs: number): void {
    this.#changes.push({ atMs, delayMs });
  }
  at(ms: number): number {
    let delay = 0;
    for (const c of this.#changes) if (c.atMs <= ms) delay = c.delayMs;
    return delay;
  }
}

/** The sender's lag at `t` by the model: the oldest entry published by then whose ack is not back. */
function modelLag(arrivals: readonly Arrival[], schedule: DelaySchedule, t: number): number {
  let lag = 0;
  for (const a of arrivals) {
    const ackMs = a.arrivedMs + schedule.at(a.arrivedMs);
    if (a.publishMs <= t && t < ackMs) lag = Math.max(lag, t - a.publishMs);
  }
  return lag;
}

function nearestRank(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1] as number;
}

async function silenced<T>(work: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (line: string) => lines.push(String(line));
  console.error = (line: string) => lines.push(String(line));
  try {
    return { value: await work(), lines };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('lag report: injected delay, partition and kill -9 (2 regions, TLCP) — p99, max, breaches and gaps match; the signed report verifies, a tampered one does not', async (t) => {
  t.timeout(300_000);
  // A 2 s downsampled resolution: the report's period aligns to 2 s instead of a whole minute.
  const cluster = await Cluster.start({ regions: ['shanghai', 'beijing'], lagHistory: { downsampledResolutionMs: 2000 } });
  t.teardown(() => cluster.stop());
  await cluster.createTopic('shanghai', TOPIC);
  const proxy = cluster.proxies.get('shanghai->beijing');
  if (!proxy) return t.fail('no proxy for shanghai->beijing');

  // Ground truth: every message's publish time (shanghai's clock, the same host's) and arrival in beijing.
  const arrivals: Arrival[] = [];
  const consumer = await cluster.client('beijing').subscribe({ topic: TOPIC, subscription: 'truth', initialPosition: 'earliest' });
  let reading = true;
  const reader = (async () => {
    while (reading) {
      try {
        const m = await consumer.receive(500);
        arrivals.push({ publishMs: m.publishTimeMs, arrivedMs: Date.now() });
        consumer.ack(m);
      } catch {
        // A receive timeout (nothing arrived in 500 ms), or a consumer that failed: yield to
        // timers either way, so that a failing receive can never spin the event loop.
        await sleep(10);
      }
    }
  })();
  const producer = (await cluster.client('shanghai').createProducer({ topic: TOPIC, producerName: 'paced' })) as Producer;
  let producing = true;
  let sent = 0;
  const pending = new Set<Promise<unknown>>();
  const pacer = (async () => {
    while (producing) {
      const p = producer.send({ payload: `m-${sent++}` });
      pending.add(p);
      void p.finally(() => pending.delete(p)).catch(() => {});
      await sleep(50);
    }
  })();
  await waitFor(() => arrivals.length >= 20, 30_000, 'the first messages in beijing');
  // The period starts once both links are up and the history has a few samples.
  await cluster.waitConverged(TOPIC, 30_000);
  const fromMs = Date.now();
  const schedule = new DelaySchedule();

  await sleep(5000);
  const delayAt = Date.now();
  proxy.setDelay(DELAY_MS);
  schedule.set(delayAt, DELAY_MS);
  await sleep(8000);
  const partitionAt = Date.now();
  proxy.setDelay(0);
  schedule.set(partitionAt, 0);
  proxy.blackhole('both');
  await sleep(10_000);
  const healAt = Date.now();
  proxy.heal();
  await waitFor(async () => (await cluster.replicationStatus('shanghai')).links.some((l) => l.topic === TOPIC && l.to === 'beijing' && l.state === 'connected' && Number(l.backlogEntries) === 0), 60_000, 'shanghai -> beijing caught up');
  await sleep(3000);

  // Kill -9 of shanghai with nothing in flight: its history must show a gap, not zero lag.
  producing = false;
  await pacer;
  await Promise.allSettled([...pending]);
  await waitFor(() => arrivals.length >= sent, 30_000, 'every message in beijing');
  await sleep(1500);
  const killAt = Date.now();
  await cluster.kill('shanghai');
  await sleep(6000);
  const restartAt = Date.now();
  await cluster.startRegion('shanghai');
  const readyAt = Date.now();
  await waitFor(async () => (await cluster.replicationStatus('beijing')).links.some((l) => l.topic === TOPIC && l.to === 'shanghai' && l.state === 'connected'), 60_000, 'beijing -> shanghai reconnected');
  await sleep(3000);
  const toMs = Date.now();
  reading = false;
  await reader;
  t.log(`sent ${sent}, arrived ${arrivals.length}; delay at +${delayAt - fromMs} ms, partition +${partitionAt - fromMs}, heal +${healAt - fromMs}, kill +${killAt - fromMs}, restart +${restartAt - fromMs}..+${readyAt - fromMs}, end +${toMs - fromMs}`);

  const out = join(cluster.dir, 'report');
  const made = await silenced(() =>
    cmdReport(['--topology', cluster.topologyPath, '--region', 'shanghai', '--namespace', 'public/default', '--from', String(fromMs), '--to', String(toMs), '--rpo-target-ms', String(TARGET_MS), '--out', out]),
  );
  t.is(made.value, 0, made.lines.join('\n'));
  const file = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { report: LagReport };
  const report = file.report;
  const ns = report.namespaces[0];
  const toBeijing = ns?.pairs.find((p) => p.from === 'shanghai' && p.to === 'beijing');
  const toShanghai = ns?.pairs.find((p) => p.from === 'beijing' && p.to === 'shanghai');
  if (!ns || !toBeijing || !toShanghai || !toBeijing.lag) return t.fail(`pairs missing: ${JSON.stringify(report.findings)}`);
  t.log(`report: shanghai->beijing p50 ${toBeijing.lag.p50Ms} p99 ${toBeijing.lag.p99Ms} max ${toBeijing.lag.maxMs}; breaches ${JSON.stringify(toBeijing.breaches.map((b) => [b.startMs - fromMs, b.endMs - fromMs, b.peakMs]))}; gaps ${JSON.stringify(toBeijing.gaps.map((g) => [g.startMs - fromMs, g.endMs - fromMs, g.cause]))}`);
  t.is(ns.rpoTargetMs, TARGET_MS);

  // The model, over the time shanghai was up and sampling.
  const up = (ms: number): boolean => ms >= report.period.fromMs && ms < toMs && !(ms >= killAt - 1000 && ms < readyAt + 1000);
  const fine: Array<{ t: number; lag: number }> = [];
  for (let ms = report.period.fromMs; ms < toMs; ms += 10) if (up(ms)) fine.push({ t: ms, lag: modelLag(arrivals, schedule, ms) });
  const modelMax = Math.max(...fine.map((p) => p.lag));
  const perSecond: number[] = [];
  for (let ms = report.period.fromMs; ms < toMs; ms += 1000) if (up(ms)) perSecond.push(modelLag(arrivals, schedule, ms + 5));
  const modelP99 = nearestRank(perSecond, 0.99);
  const modelP50 = nearestRank(perSecond, 0.5);
  t.log(`model: p50 ${modelP50} p99 ${modelP99} max ${modelMax}`);

  // max and p99: within one sample interval plus 500 ms of the model.
  t.true(Math.abs(toBeijing.lag.maxMs - modelMax) <= TOLERANCE_MS, `max ${toBeijing.lag.maxMs} vs model ${modelMax}`);
  t.true(Math.abs(toBeijing.lag.p99Ms - modelP99) <= TOLERANCE_MS, `p99 ${toBeijing.lag.p99Ms} vs model ${modelP99}`);
  t.true(Math.abs(toBeijing.lag.p50Ms - modelP50) <= 300, `p50 ${toBeijing.lag.p50Ms} vs model ${modelP50}`);

  // Breaches: the partition's, and nothing else, where the model puts it.
  const modelBreaches: Array<{ start: number; end: number; peak: number }> = [];
  let open: { start: number; end: number; peak: number } | undefined;
  for (const p of fine) {
    if (p.lag > TARGET_MS) {
      if (!open) open = { start: p.t, end: p.t + 10, peak: p.lag };
      open.end = p.t + 10;
      open.peak = Math.max(open.peak, p.lag);
    } else if (open) {
      modelBreaches.push(open);
      open = undefined;
    }
  }
  if (open) modelBreaches.push(open);
  t.is(modelBreaches.length, 1, `the model has one breach: ${JSON.stringify(modelBreaches)}`);
  t.is(toBeijing.breaches.length, 1, `one breach reported: ${JSON.stringify(toBeijing.breaches)}`);
  const [breach, expected] = [toBeijing.breaches[0], modelBreaches[0]];
  if (breach && expected) {
    t.true(Math.abs(breach.startMs - expected.start) <= TOLERANCE_MS, `breach starts at +${breach.startMs - fromMs} ms, model +${expected.start - fromMs}`);
    t.true(Math.abs(breach.endMs - expected.end) <= TOLERANCE_MS, `breach ends at +${breach.endMs - fromMs} ms, model +${expected.end - fromMs}`);
    t.true(Math.abs(breach.peakMs - expected.peak) <= TOLERANCE_MS, `peak ${breach.peakMs}, model ${expected.peak}`);
    t.true(breach.startMs > partitionAt && breach.startMs < healAt, 'the breach begins during the partition');
    t.is(breach.aboveTargetMs, breach.endMs - breach.startMs);
  }
  t.true(Math.abs(toBeijing.timeAboveTargetMs - (expected ? expected.end - expected.start : 0)) <= 2 * TOLERANCE_MS);

  // The delay phase: every second of it shows the round trip the proxy added.
  const step = report.settings.seriesResolutionMs;
  t.is(step, 1000);
  const inDelay = toBeijing.series.filter((p) => p.t >= delayAt + 1500 && p.t + step <= partitionAt && p.lagMaxMs !== null);
  t.true(inDelay.length >= 5, `${inDelay.length} points in the delay phase`);
  for (const p of inDelay) {
    const model = modelLag(arrivals, schedule, p.t + 5);
    t.true(Math.abs((p.lagMaxMs as number) - model) <= 300, `delay phase at +${p.t - fromMs}: reported ${p.lagMaxMs}, model ${model}`);
    t.true((p.lagMaxMs as number) >= 2 * DELAY_MS - 300, 'about the round trip');
  }

  // The kill: a gap of cause node-down, where shanghai was down; nothing in it counts, nothing reads as zero.
  const downGaps = toBeijing.gaps.filter((g) => g.cause === 'node-down');
  t.is(downGaps.length, 1, JSON.stringify(toBeijing.gaps));
  const gap = downGaps[0];
  if (gap) {
    t.true(gap.startMs > killAt - TOLERANCE_MS && gap.startMs <= killAt + 1000, `gap starts at +${gap.startMs - fromMs}, kill at +${killAt - fromMs}`);
    // The first sample after the restart comes at the next whole second, later if the node's event loop is busy starting.
    t.true(gap.endMs >= restartAt && gap.endMs <= readyAt + 1000 + TOLERANCE_MS, `gap ends at +${gap.endMs - fromMs}, restart +${restartAt - fromMs}..+${readyAt - fromMs}`);
    const inside = toBeijing.series.filter((p) => p.t >= gap.startMs && p.t + step <= gap.endMs);
    t.true(inside.length >= 4);
    t.true(inside.every((p) => p.lagMaxMs === null && p.coverage === 0), 'no lag value inside the gap');
  }
  t.true(toBeijing.coverage.ratio < 1);
  t.is(toBeijing.lag.samples * 1000, toBeijing.coverage.observedMs);

  // beijing -> shanghai lost its link while shanghai was down: uptime below 100%, a down window over the kill.
  t.true(toShanghai.uptime.ratio !== null && toShanghai.uptime.ratio < 1, `uptime ${toShanghai.uptime.ratio}`);
  const down = toShanghai.uptime.downtimes.find((d) => d.startMs <= killAt + 2000 && d.endMs >= restartAt);
  t.truthy(down, `a down window over the kill: ${JSON.stringify(toShanghai.uptime.downtimes.map((d) => [d.startMs - fromMs, d.endMs - fromMs]))}`);
  if (down) t.true(down.startMs >= killAt - 1000 && down.endMs <= readyAt + 7000, `down +${down.startMs - fromMs}..+${down.endMs - fromMs}`);
  t.deepEqual(toShanghai.gaps.filter((g) => g.cause === 'node-down'), [], 'beijing sampled throughout');

  // The watermark series: beijing's record of shanghai's writes only moves forward, and reaches the last one.
  const marks = toBeijing.series.flatMap((p) => (p.watermarkHlc === null ? [] : [BigInt(p.watermarkHlc)]));
  t.true(marks.length > 20);
  t.true(marks.every((m, i) => i === 0 || m >= (marks[i - 1] as bigint)), 'watermarks never go back');
  const lastPublish = Math.max(...arrivals.map((a) => a.publishMs));
  t.true(Number((marks[marks.length - 1] as bigint) >> 16n) >= lastPublish, 'the last watermark covers the last message');
  t.true((ns.clockSkew.aheadMs ?? 0) <= 100, `no clock skew was injected; seen ${ns.clockSkew.aheadMs} ms`);
  t.deepEqual(ns.residency.violations, []);
  t.deepEqual(ns.residency.heldBy, ['shanghai', 'beijing']);
  t.true(report.findings.some((f) => f.severity === 'fail' && /shanghai → beijing: 1 breach/.test(f.text)));

  // Signed: the report and both renderings verify against the deployment's CA; a tampered report does not.
  const verify = async (path: string): Promise<{ value: number; lines: string[] }> => silenced(() => cmdReport(['verify', path, '--topology', cluster.topologyPath]));
  for (const name of ['report.json', 'report.csv', 'report.html']) {
    const result = await verify(join(out, name));
    t.is(result.value, 0, `${name}: ${result.lines.join('\n')}`);
  }
  const tampered = join(out, 'tampered.json');
  const doc = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { report: LagReport };
  const pair = doc.report.namespaces[0]?.pairs.find((p) => p.from === 'shanghai' && p.to === 'beijing');
  if (pair?.lag) pair.lag.p99Ms = 100;
  if (pair) pair.breaches = [];
  writeFileSync(tampered, JSON.stringify(doc, null, 2));
  const failed = await verify(tampered);
  t.is(failed.value, 1);
  t.true(failed.lines.some((l) => /changed after signing/.test(l)), failed.lines.join('\n'));

  // The admin route refuses what it cannot answer, with a typed error.
  const admin = cluster.admin('beijing');
  for (const [query, pattern] of [
    ['namespace=public&fromMs=1&toMs=2', /namespace must be tenant\/namespace/],
    ['namespace=public/default&fromMs=5&toMs=5', /toMs must be after fromMs/],
    ['namespace=public/default&fromMs=-1&toMs=5', /fromMs must be a time in ms/],
    ['namespace=public/default&fromMs=1&toMs=5&after=bogus', /cursor/],
  ] as const) {
    const error = await admin.call('GET', `/lag-history?${query}`).then(() => undefined, (e: Error & { code?: string }) => e);
    t.is(error?.code, 'ADMQ_ERR_BAD_REQUEST', query);
    t.regex(error?.message ?? '', pattern);
  }
});
