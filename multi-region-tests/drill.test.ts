// `admq drill` through its orchestration (drill/drill.ts) against real region processes.
// Each test recomputes the report's figures on its own: it reads every region's final log
// itself (Cluster.readAll, not the drill's readers), runs checkHistory on the drill's
// recorded produce attempts plus those logs, and derives the RPO list, the arrivals, the
// duplicates and the out-of-order deliveries from the raw records with code of its own.
import test, { type ExecutionContext } from 'ava';
import { runDrill } from '../drill/drill.ts';
import type { DrillReport } from '../drill/report.ts';
import { DrillError, HarnessTarget, TopologyTarget } from '../drill/target.ts';
import { ADMQ_CLI, waitFor } from '../test-support/processes.ts';
import { tempDir } from '../test-support/temp-dir.ts';
import { Cluster } from './cluster.ts';
import { History, checkHistory, formatViolations, globalIdOf, type ConsumeRecord, type ProduceRecord, type StoredRecord } from './history.ts';

const REGIONS = ['shanghai', 'beijing', 'shenzhen'];
const TIMING = { warmupMs: 2000, observeMs: 1000, catchUpTimeoutMs: 30_000, drainTimeoutMs: 30_000, ratePerProducer: 50, failover: { failoverAfterMs: 500, switchBackAfterMs: 1000, checkIntervalMs: 100 } };

/** The drill's history with the final logs as this test reads them. */
async function independentHistory(cluster: Cluster, drilled: History, topic: string): Promise<{ history: History; logs: Map<string, StoredRecord[]> }> {
  const history = new History();
  for (const p of drilled.produces()) history.recordProduce(p);
  for (const c of drilled.consumes()) history.recordConsume(c);
  const logs = new Map<string, StoredRecord[]>();
  for (const region of REGIONS) {
    const records = (await cluster.readAll(region, topic)).map(
      (m): StoredRecord => ({ region, topic, offset: m.offset, originRegion: m.originRegion, originPosition: m.originPosition, producer: m.producerName, sequenceId: m.sequenceId, payload: m.payload.toString(), hlc: m.hlc }),
    );
    logs.set(region, records);
    for (const r of records) history.recordStored(r);
  }
  return { history, logs };
}

function holds(records: readonly StoredRecord[], p: ProduceRecord): boolean {
  return p.originPosition !== undefined && p.originPosition >= 0
    ? records.some((r) => r.originRegion === p.originRegion && r.originPosition === p.originPosition)
    : records.some((r) => r.producer === p.producer && r.sequenceId === p.sequenceId);
}

function idOf(e: { originRegion?: string; originPosition?: number; producer: string; sequenceId: number }): string {
  return `${e.originRegion}:${e.originPosition} ${e.producer}#${e.sequenceId}`;
}

/** Acked entries of each origin its observers lacked at the snapshot (the first entriesAt offsets of their final logs). */
function expectedRpo(report: DrillReport, produces: readonly ProduceRecord[], logs: Map<string, StoredRecord[]>): Array<{ id: string; missingAt: string[]; arrivedEverywhere: boolean }> {
  if (!report.rpo.applicable) throw new Error('no RPO in the report');
  const rpo = report.rpo;
  const out: Array<{ id: string; missingAt: string[]; arrivedEverywhere: boolean }> = [];
  for (const { origin, observers } of rpo.pairs) {
    for (const p of produces) {
      if (!p.acked || p.region !== origin || p.atMs > rpo.ackedByMs) continue;
      const missingAt = observers.filter((r) => !holds((logs.get(r) ?? []).filter((e) => e.offset < (rpo.entriesAt[r] ?? 0)), p));
      if (missingAt.length > 0) out.push({ id: idOf(p), missingAt, arrivedEverywhere: missingAt.every((r) => holds(logs.get(r) ?? [], p)) });
    }
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** The snapshot's moment: `what` ('fault': right after the fault; 'recovery': just before it), acks counted up to it. */
function snapshotMoment(report: DrillReport, what: 'fault' | 'recovery'): { ok: boolean; detail: string } {
  if (!report.rpo.applicable) return { ok: false, detail: 'no RPO' };
  const at = (kind: string): number => report.events.find((e) => e.kind === kind)?.atMs ?? NaN;
  const { snapshotAtMs, ackedByMs } = report.rpo;
  const ok = what === 'fault' ? snapshotAtMs >= at('fault') && snapshotAtMs - at('fault') < 1000 : snapshotAtMs <= at('recovery') && snapshotAtMs > at('fault');
  return { ok: ok && ackedByMs === snapshotAtMs, detail: `snapshot ${snapshotAtMs}, acked by ${ackedByMs}, fault ${at('fault')}, recovery ${at('recovery')}` };
}

function reportedRpo(report: DrillReport): Array<{ id: string; missingAt: string[]; arrivedEverywhere: boolean }> {
  if (!report.rpo.applicable) throw new Error('no RPO in the report');
  return report.rpo.entries.map((e) => ({ id: idOf(e), missingAt: e.missingAt, arrivedEverywhere: e.arrivedEverywhere })).sort((a, b) => a.id.localeCompare(b.id));
}

/** Deliveries beyond the first of each payload, per subscription. */
function expectedDuplicates(consumes: readonly ConsumeRecord[]): number {
  const counts = new Map<string, number>();
  for (const c of consumes) counts.set(`${c.subscription} ${c.payload}`, (counts.get(`${c.subscription} ${c.payload}`) ?? 0) + 1);
  return [...counts.values()].reduce((sum, n) => sum + n - 1, 0);
}

/** First deliveries below the producer's highest sequence already delivered to the subscription. */
function expectedOutOfOrder(consumes: readonly ConsumeRecord[]): string[] {
  const seen = new Set<string>();
  const highest = new Map<string, number>();
  const out: string[] = [];
  for (const c of [...consumes].sort((a, b) => a.atMs - b.atMs)) {
    if (seen.has(`${c.subscription} ${c.payload}`)) continue;
    seen.add(`${c.subscription} ${c.payload}`);
    const key = `${c.subscription} ${c.producer}`;
    const max = highest.get(key) ?? -1;
    if (c.sequenceId < max) out.push(`${c.subscription} ${c.producer}#${c.sequenceId} ${globalIdOf(c)}`);
    highest.set(key, Math.max(max, c.sequenceId));
  }
  return out;
}

function reportedOutOfOrder(report: DrillReport): string[] {
  return report.deliveryOrder.list.map((v) => `${v.subscription} ${v.producer}#${v.sequenceId} ${v.globalId}`);
}

/** The report's out-of-order deliveries are the expected ones: all counted, the first ones listed (the list is bounded). */
function assertOutOfOrder(t: ExecutionContext, report: DrillReport, consumes: readonly ConsumeRecord[]): void {
  const expected = expectedOutOfOrder(consumes);
  const listed = reportedOutOfOrder(report);
  t.is(report.deliveryOrder.count, expected.length);
  t.is(report.deliveryOrder.omitted, expected.length - listed.length);
  t.deepEqual(listed, expected.slice(0, listed.length));
}

test.serial('drill: region-outage by SIGKILL of shanghai (3 regions) — RPO, arrivals, RTO, duplicates and order agree with checkHistory on the final logs', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  let target: HarnessTarget | undefined;
  try {
    cluster.setDelay(30);
    // Shanghai's entries take 1.5 s to reach the others: some are acked but not yet
    // replicated at the kill. The snapshot reads the survivors' logs after the kill, and
    // entries still in the proxy keep arriving meanwhile; with 250 ms, a CI run whose reads
    // took longer than that found them all there (RPO 0).
    for (const to of ['beijing', 'shenzhen']) cluster.proxies.get(`shanghai->${to}`)?.setDelay(1500);
    target = await HarnessTarget.wrap(cluster);
    const { report, history } = await runDrill(target, { ...TIMING, scenario: { name: 'region-outage', region: 'shanghai', mode: 'kill' }, faultMs: 5000, runId: 'kill-test' });
    t.log(`RPO ${report.rpo.applicable ? report.rpo.count : '-'}, duplicates ${report.duplicates.count}, out of order ${report.deliveryOrder.count}, catch-up ${report.catchUp.applicable ? report.catchUp.ms : '-'} ms`);
    const { history: mine, logs } = await independentHistory(cluster, history, report.topic);

    // Invariants: the drill's verdict is checkHistory's on logs this test read itself.
    const violations = checkHistory(mine, { regions: REGIONS, allowedRegions: () => REGIONS });
    t.deepEqual(report.invariants.violations, violations, formatViolations(violations));
    // Nothing acked is lost through a kill -9: every region holds every acked message (a
    // resend after the failover may be another copy of it, under another global id).
    const lost = history.produces().filter((p) => p.acked && REGIONS.some((r) => !holds(logs.get(r) ?? [], p) && !(logs.get(r) ?? []).some((e) => e.producer === p.producer && e.sequenceId === p.sequenceId)));
    t.deepEqual(lost.map(idOf), []);

    // RPO: the acked shanghai entries the survivors lacked at the snapshot, by id.
    const moment = snapshotMoment(report, 'fault');
    t.true(moment.ok, `the snapshot is taken right after the kill: ${moment.detail}`);
    const rpo = expectedRpo(report, history.produces(), logs);
    t.true(rpo.length > 0, 'with 1.5 s of delay, entries acked just before the kill were not yet replicated');
    t.deepEqual(reportedRpo(report), rpo);
    t.true(rpo.every((e) => e.arrivedEverywhere), 'every entry at risk arrived once shanghai was back');
    t.true(report.rpo.applicable && report.rpo.notArrived === 0 && report.rpo.entries.every((e) => e.originRegion === 'shanghai'));

    // RTO: the shanghai-homed client produced and consumed through another region, within the outage.
    const rto = report.rto;
    if (!rto.applicable) {
      t.fail('a region outage has an RTO');
      return;
    }
    const firstProduce = history.produces().filter((p) => p.acked && p.producer === rto.producer && p.atMs > rto.faultAtMs && p.region !== 'shanghai').sort((a, b) => a.atMs - b.atMs)[0];
    const firstConsume = history.consumes().filter((c) => c.subscription === rto.subscription && c.atMs > rto.faultAtMs && c.region !== 'shanghai').sort((a, b) => a.atMs - b.atMs)[0];
    t.deepEqual(rto.produce, firstProduce ? { atMs: firstProduce.atMs, ms: firstProduce.atMs - rto.faultAtMs, region: firstProduce.region } : null);
    t.deepEqual(rto.consume, firstConsume ? { atMs: firstConsume.atMs, ms: firstConsume.atMs - rto.faultAtMs, region: firstConsume.region } : null);
    t.true(rto.produce !== null && rto.produce.ms < 5000, 'the client produced in another region during the outage');
    t.true(rto.consume !== null && rto.consume.ms < 5000, 'the client consumed in another region during the outage');

    // Duplicates and order as the canary consumers saw them.
    t.is(report.duplicates.count, expectedDuplicates(history.consumes()));
    assertOutOfOrder(t, report, history.consumes());

    // Catch-up: measured, and by then every region held every entry acked by the recovery.
    t.true(report.catchUp.applicable && report.catchUp.caughtUpAtMs !== null);
    t.deepEqual(report.residency.violations, []);
    t.true(report.residency.regions.every((r) => r.topics.includes(report.topic)), 'the canary topic is in every allowed region');
  } finally {
    await target?.close();
    await cluster.stop();
  }
});

test.serial('drill: link-partition shanghai ⇹ beijing (3 regions) — entries stranded by the cut all arrive after the heal; clients never notice', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  let target: HarnessTarget | undefined;
  try {
    cluster.setDelay(30);
    target = await HarnessTarget.wrap(cluster);
    const { report, history } = await runDrill(target, { ...TIMING, scenario: { name: 'link-partition', link: ['shanghai', 'beijing'] }, faultMs: 3000, runId: 'link-test' });
    const { history: mine, logs } = await independentHistory(cluster, history, report.topic);

    const violations = checkHistory(mine, { regions: REGIONS, allowedRegions: () => REGIONS });
    t.deepEqual(violations, [], formatViolations(violations));
    t.deepEqual(report.invariants.violations, violations);

    // Each side's acked entries the other side lacked just before the heal.
    const moment = snapshotMoment(report, 'recovery');
    t.true(moment.ok, `the snapshot is taken just before the heal: ${moment.detail}`);
    const stranded = expectedRpo(report, history.produces(), logs);
    t.true(stranded.length > 0, 'three seconds of cut link strand entries on both sides');
    t.deepEqual(reportedRpo(report), stranded);
    t.true(stranded.every((e) => e.arrivedEverywhere));
    t.deepEqual([...new Set(stranded.map((e) => e.id.split(':')[0]))].sort(), ['beijing', 'shanghai'], 'both directions of the link held entries back');

    // Clients are not affected by a cut between two regions.
    t.false(report.rto.applicable);
    t.is(history.produces().filter((p) => !p.acked).length, 0, 'no send failed');
    t.is(report.duplicates.count, expectedDuplicates(history.consumes()));
    t.is(report.duplicates.count, 0, 'no consumer moved, so nothing was delivered twice');
    assertOutOfOrder(t, report, history.consumes());
    t.deepEqual(reportedOutOfOrder(report), [], 'each producer writes to one region, so its order holds everywhere');
    t.true(report.catchUp.applicable && report.catchUp.caughtUpAtMs !== null);

    // The same deployment, driven from its topology file: what needs network or clock powers is refused up front.
    const external = new TopologyTarget(cluster.topologyPath);
    const refusals: Array<[Parameters<typeof runDrill>[1]['scenario'], RegExp]> = [
      [{ name: 'link-partition' }, /^link-partition cannot run against a deployment from a topology file: .*firewall/],
      [{ name: 'region-outage', mode: 'partition' }, /^region-outage cannot run .*firewall/],
      [{ name: 'clock-skew' }, /^clock-skew cannot run .*ADMQ_CLOCK_SKEW_MS/],
      [{ name: 'region-outage', mode: 'kill' }, /--restart-command/],
    ];
    for (const [scenario, message] of refusals) {
      const error = await t.throwsAsync(runDrill(external, { scenario, runId: 'refused' }), { instanceOf: DrillError, message });
      t.is(error?.code, 'ADMQ_ERR_DRILL_UNSUPPORTED');
    }
    const topics = (await cluster.admin('shanghai').listTopics('public/default')).map((x) => x.name);
    t.false(topics.some((name) => name.includes('__drill-refused')), 'refused before the canary topic was made');
    // With a restart command, a kill is possible: the nodes run on this host, and their pids are admq processes.
    await t.notThrowsAsync(new TopologyTarget(cluster.topologyPath, { restartCommand: 'true {region}' }).preflight('kill', ['beijing'], 'region-outage'));
  } finally {
    await target?.close();
    await cluster.stop();
  }
});

test.serial('drill: planned-failover of the home region shanghai → beijing — nothing acked before the drain is missing in beijing; the home client follows the move', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  let target: HarnessTarget | undefined;
  try {
    cluster.setDelay(30);
    target = await HarnessTarget.wrap(cluster);
    const { report, history } = await runDrill(target, { ...TIMING, scenario: { name: 'planned-failover', to: 'beijing' }, faultMs: 1000, runId: 'planned-test' });
    const { history: mine, logs } = await independentHistory(cluster, history, report.topic);

    t.truthy(report.failover, 'the failover result is in the report');
    t.true(report.rpo.applicable && report.rpo.pairs.length === 1 && report.rpo.pairs[0]?.origin === 'shanghai' && report.rpo.pairs[0]?.observers.join() === 'beijing');
    // Shanghai's acks up to the end of the drain were all in beijing's log when the drain ended.
    t.deepEqual(expectedRpo(report, history.produces(), logs), [], 'RPO 0');
    t.deepEqual(reportedRpo(report), []);
    t.true(report.failover !== null && report.rpo.applicable && report.rpo.ackedByMs === report.failover.drainedAtMs);
    t.true(report.failover !== null && report.failover.fencedAtMs <= report.failover.drainedAtMs && report.failover.drainedAtMs <= report.failover.unfencedAtMs && report.failover.unfencedAtMs <= report.finishedAtMs, 'the failover’s moments are on the drill’s clock');
    const acksBeforeDrain = history.produces().filter((p) => p.acked && p.region === 'shanghai' && report.failover !== null && p.atMs <= report.failover.drainedAtMs);
    t.true(acksBeforeDrain.length > 0, 'the RPO check covered real acks');

    const violations = checkHistory(mine, { regions: REGIONS, allowedRegions: () => REGIONS });
    t.deepEqual(report.invariants.violations, violations, formatViolations(violations));
    t.is(report.duplicates.count, expectedDuplicates(history.consumes()));
    assertOutOfOrder(t, report, history.consumes());
    // The client of the old home produced again, through the new home.
    t.true(report.rto.applicable && report.rto.produce?.region === 'beijing', JSON.stringify(report.rto));
  } finally {
    await target?.close();
    await cluster.stop();
  }
});

test.serial('drill: region-outage by kill against a topology file — SIGKILL by the pid from the admin API, back through --restart-command', async (t) => {
  const cluster = await Cluster.start({ regions: REGIONS, transport: 'insecure' });
  const pidOf = async (region: string): Promise<number> => ((await cluster.admin(region).call('GET', '/node')) as { pid: number }).pid;
  const before = await pidOf('beijing');
  let restarted: number | undefined;
  try {
    const target = new TopologyTarget(cluster.topologyPath, {
      restartCommand: `'${process.execPath}' '${ADMQ_CLI}' start --topology '${cluster.topologyPath}' --region {region}`,
      logDir: tempDir('admq-drill-'),
    });
    const { report, history } = await runDrill(target, { ...TIMING, scenario: { name: 'region-outage', region: 'beijing', mode: 'kill' }, faultMs: 4000, runId: 'external-kill' });
    restarted = await pidOf('beijing');
    t.not(restarted, before, 'beijing runs as a new process, started by the restart command');
    t.is(cluster.regions.get('beijing')?.process?.child.signalCode, 'SIGKILL', 'the node the harness started died of the drill’s SIGKILL');
    const { history: mine, logs } = await independentHistory(cluster, history, report.topic);
    const violations = checkHistory(mine, { regions: REGIONS, allowedRegions: () => REGIONS });
    t.deepEqual(report.invariants.violations, violations, formatViolations(violations));
    t.deepEqual(reportedRpo(report), expectedRpo(report, history.produces(), logs));
    t.true(report.rpo.applicable && report.rpo.notArrived === 0);
    t.true(report.rto.applicable && report.rto.produce !== null && report.rto.produce.region !== 'beijing', JSON.stringify(report.rto));
    t.true(report.catchUp.applicable && report.catchUp.caughtUpAtMs !== null);
  } finally {
    // The restarted node is not the harness's child: stop it by its pid.
    const pid = restarted ?? (await pidOf('beijing').catch(() => undefined));
    if (pid !== undefined && pid !== before) {
      process.kill(pid, 'SIGTERM');
      await waitFor(async () => !(await cluster.admin('beijing').health().then(() => true, () => false)), 20_000, 'the restarted beijing node to stop');
    }
    await cluster.stop();
  }
});
