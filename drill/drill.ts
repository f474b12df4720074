// runDrill: a fault scenario against a running deployment, with canary clients running, in
// phases:
//
//   prepare    resolve the tenant's regions and the scenario, check that the target can
//              inject the fault (refused here, before anything runs), create the canary topic
//   warm-up    canaries run until every producer is acked and every consumer is delivered to
//   fault      inject; the RPO snapshot (entry counts of the observers' logs); hold
//   recovery   undo the fault (restart, heal, clock back)
//   catch-up   until every region holds every entry acked by the end of the recovery
//   observe    canaries keep running a little (clients move back home)
//   drain      stop producers, wait until every region and consumer has everything, read
//              every region's whole log
//   verify     checkHistory on the history, residency through the admin API, the report
//
// Every wait is bounded; a fault still in force when the drill fails or is aborted is undone
// on the way out. Figures come from report.ts, computed from what was recorded.
import { AdminClient, type FailoverOptions } from '../client/index.ts';
import { History, checkHistory, type StoredRecord } from '../multi-region-tests/history.ts';
import { Canary, canaryNames, type CanaryStats } from './canary.ts';
import {
  buildReport,
  catchUpResult,
  computeRto,
  evaluateResidency,
  missingAcked,
  type DrillReport,
  type FailoverSummary,
  type LogIndex,
  type NotApplicable,
  type PhaseName,
  type PhaseRecord,
  type RegionStatusSample,
  type ResidencyRegion,
  type ResidencyResult,
  type RpoPlan,
  type RtoSpec,
  type TimelineEvent,
  type TimelineEventKind,
} from './report.ts';
import { resolveScenario, type Injected, type PlannedFailoverFn, type Scenario, type ScenarioContext, type ScenarioRequest } from './scenarios.ts';
import { DrillError, type DrillTarget } from './target.ts';
import { plannedFailover as runPlannedFailover } from '../operations/planned-failover.ts';

export interface DrillOptions {
  scenario: ScenarioRequest;
  /** tenant/namespace of the canary topic. Default public/default. */
  namespace?: string;
  /** Names the canary topic and clients; default derived from the time. [a-z0-9-], ≤ 40 characters. */
  runId?: string;
  /** Messages per second per canary producer (one per region of the tenant). Default 50. */
  ratePerProducer?: number;
  /** Canary running before the fault, in ms. Default 3,000 (at least two subscription syncs). */
  warmupMs?: number;
  /** How long the fault is held, in ms. Default 10,000. */
  faultMs?: number;
  /** Canary running after catch-up, in ms. Default 3,000. */
  observeMs?: number;
  /** Bound on catch-up after recovery, in ms. Default 120,000. */
  catchUpTimeoutMs?: number;
  /** Bound on the final drain (everything everywhere, every log read), in ms. Default 60,000. */
  drainTimeoutMs?: number;
  /** Bound on each producer's sends. Default 100,000. */
  messagesMaxPerProducer?: number;
  /** Canary send timeout, in ms. Default 30,000. */
  sendTimeoutMs?: number;
  /** Region failover of the canary clients. Default the SDK's timing, checked every 250 ms. */
  failover?: FailoverOptions;
  /** Progress, for a live display. */
  onProgress?: (progress: DrillProgress) => void;
  /** Stops the drill (the fault is undone on the way out). */
  signal?: AbortSignal;
  /** The planned-failover function; default: operations/planned-failover.ts, loaded on demand. */
  plannedFailover?: PlannedFailoverFn;
  /** The clock (ms since the epoch). Default Date.now. */
  now?: () => number;
}

export type DrillProgress =
  | { type: 'phase'; phase: PhaseName; atMs: number; note: string }
  | { type: 'status'; phase: PhaseName; atMs: number; phaseElapsedMs: number; canary: CanaryStats; rtoProduceMs?: number; rtoConsumeMs?: number; note: string }
  | { type: 'event'; event: TimelineEvent }
  | { type: 'done'; atMs: number; report: DrillReport };

export interface DrillOutcome {
  report: DrillReport;
  /** Every produce attempt, delivery and final log entry the report was computed from. */
  history: History;
}

const RUN_ID = /^[a-z0-9][a-z0-9-]{0,39}$/;
const NAME_PART = /^[a-zA-Z0-9_.=-]+$/;

interface Settings {
  namespace: string;
  tenant: string;
  runId: string;
  ratePerProducer: number;
  warmupMs: number;
  faultMs: number;
  observeMs: number;
  catchUpTimeoutMs: number;
  drainTimeoutMs: number;
  messagesMaxPerProducer: number;
  sendTimeoutMs: number;
  failover: FailoverOptions;
}

function positiveInteger(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `${name} must be an integer ≥ ${min}; got ${String(value)}`);
  return v;
}

function settingsOf(options: DrillOptions, now: () => number): Settings {
  const namespace = options.namespace ?? 'public/default';
  const parts = namespace.split('/');
  if (parts.length !== 2 || !parts.every((p) => NAME_PART.test(p))) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `namespace must be tenant/namespace ([a-zA-Z0-9_.=-]); got "${namespace}"`);
  const runId = options.runId ?? `${now().toString(36)}-${Math.floor(Math.random() * 36 ** 4).toString(36).padStart(4, '0')}`;
  if (!RUN_ID.test(runId)) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `runId must be lowercase letters, digits and "-", at most 40 characters; got "${runId}"`);
  return {
    namespace,
    tenant: parts[0] as string,
    runId,
    ratePerProducer: positiveInteger('ratePerProducer', options.ratePerProducer, 50),
    warmupMs: positiveInteger('warmupMs', options.warmupMs, 3000, 0),
    faultMs: positiveInteger('faultMs', options.faultMs, 10_000),
    observeMs: positiveInteger('observeMs', options.observeMs, 3000, 0),
    catchUpTimeoutMs: positiveInteger('catchUpTimeoutMs', options.catchUpTimeoutMs, 120_000),
    drainTimeoutMs: positiveInteger('drainTimeoutMs', options.drainTimeoutMs, 60_000),
    messagesMaxPerProducer: positiveInteger('messagesMaxPerProducer', options.messagesMaxPerProducer, 100_000),
    sendTimeoutMs: positiveInteger('sendTimeoutMs', options.sendTimeoutMs, 30_000),
    failover: { checkIntervalMs: 250, ...(options.failover ?? {}) },
  };
}

/** Waits without blocking; an abort ends the wait with ADMQ_ERR_DRILL_ABORTED. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DrillError('ADMQ_ERR_DRILL_ABORTED', 'the drill was aborted'));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new DrillError('ADMQ_ERR_DRILL_ABORTED', 'the drill was aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Polls `condition` until it holds (true) or `timeoutMs` passes (false). */
async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number, now: () => number, signal: AbortSignal | undefined, pollMs = 100): Promise<boolean> {
  const deadline = now() + timeoutMs;
  for (;;) {
    try {
      if (await condition()) return true;
    } catch {
      // A region that does not answer yet is "not yet".
    }
    if (now() >= deadline) return false;
    await sleep(Math.min(pollMs, Math.max(0, deadline - now())), signal);
  }
}

function entriesOf(stats: Record<string, unknown>): number {
  const n = Number(stats.nextOffset ?? stats.entries);
  if (!Number.isSafeInteger(n) || n < 0) throw new DrillError('ADMQ_ERR_DRILL_TARGET', `topic stats without a usable nextOffset: ${JSON.stringify(stats).slice(0, 200)}`);
  return n;
}

/** Runs the drill and returns its report (and the raw history it was computed from). */
export async function runDrill(target: DrillTarget, options: DrillOptions): Promise<DrillOutcome> {
  const now = options.now ?? Date.now;
  const s = settingsOf(options, now);
  const signal = options.signal;
  const emit = (p: DrillProgress): void => {
    try {
      options.onProgress?.(p);
    } catch {
      // A broken display must not break the drill.
    }
  };
  const admin = (region: string): AdminClient => new AdminClient(target.adminUrl(region));
  const startedAtMs = now();
  const phases: PhaseRecord[] = [];
  const events: TimelineEvent[] = [];
  const notes: string[] = [];
  let current: PhaseRecord | undefined;
  let statusNote = '';
  const phase = (name: PhaseName, note = ''): void => {
    const at = now();
    if (current) current.endedAtMs = at;
    current = { phase: name, startedAtMs: at, endedAtMs: at, note };
    phases.push(current);
    statusNote = '';
    emit({ type: 'phase', phase: name, atMs: at, note });
  };
  const event = (kind: TimelineEventKind, text: string, region?: string, atMs = now()): void => {
    const e: TimelineEvent = { atMs, kind, text, ...(region !== undefined ? { region } : {}) };
    events.push(e);
    emit({ type: 'event', event: e });
  };

  // --- prepare ---------------------------------------------------------------------------
  phase('prepare', `namespace ${s.namespace}`);
  const topology = target.topology;
  const nsSpec = topology.namespaces.get(s.namespace);
  if (!nsSpec) {
    throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `namespace ${s.namespace} is not in the topology: it has no replication set, so there is no replication to drill (namespaces: ${[...topology.namespaces.keys()].join(', ') || 'none'})`);
  }
  const placement = await placementOf(target, s.tenant, s.namespace);
  // Runtime placement (admin API) wins over the file: replication sets may have changed since it was written.
  const observedRegions = placement.replicationSet ?? [...nsSpec.replicationSet];
  const tenantRegions = await tenantRegionsOf(target, s.tenant);
  const canaryRegions = tenantRegions.filter((r) => observedRegions.includes(r));
  if (canaryRegions.length < 2) {
    throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `tenant ${s.tenant} has ${canaryRegions.length} region(s) in ${s.namespace}'s replication set (${canaryRegions.join(', ') || 'none'}); a drill needs at least two`);
  }
  const homeRegion = canaryRegions[0] as string;
  const allowedRegions = placement.allowedRegions ?? (await allowedRegionsOf(target, s.tenant, tenantRegions));
  const scenario: Scenario = resolveScenario(options.scenario, {
    regions: [...topology.regions.keys()],
    canaryRegions,
    observedRegions,
    homeRegion,
    maxClockOffsetMs: topology.maxClockOffsetMs,
    faultMs: s.faultMs,
  });
  for (const f of scenario.faults) await target.preflight(f.fault, f.regions, scenario.name);
  const plannedFailover = scenario.name === 'planned-failover' ? (options.plannedFailover ?? runPlannedFailover) : undefined;
  const topic = `persistent://${s.namespace}/__drill-${s.runId}`;
  try {
    await admin(homeRegion).createTopic(topic);
  } catch (error) {
    throw new DrillError('ADMQ_ERR_DRILL_TARGET', `cannot create the canary topic ${topic} in ${homeRegion}: ${(error as Error).message}`, { cause: error });
  }
  const everywhere = await waitUntil(
    async () => {
      for (const r of observedRegions) await admin(r).topicStats(topic);
      return true;
    },
    30_000,
    now,
    signal,
  );
  if (!everywhere) throw new DrillError('ADMQ_ERR_DRILL_TIMEOUT', `the canary topic ${topic} did not reach every region of ${observedRegions.join(', ')} within 30 s`);
  const refusalsAtStart = await sampleRefusals(target);

  const history = new History();
  // Every loop of the canary ends by this deadline, even if the drill itself got stuck.
  const deadlineMs = now() + s.warmupMs + 30_000 + s.faultMs + 60_000 + s.catchUpTimeoutMs + s.observeMs + s.drainTimeoutMs + s.sendTimeoutMs;
  const canary = await Canary.create({
    runId: s.runId,
    topic,
    regions: canaryRegions,
    observeRegions: observedRegions,
    clientAddress: (r) => target.clientAddress(r),
    grpcAddress: (r) => target.grpcAddress(r),
    history,
    ratePerProducer: s.ratePerProducer,
    messagesMaxPerProducer: s.messagesMaxPerProducer,
    inflightMax: 1000,
    sendTimeoutMs: s.sendTimeoutMs,
    failover: s.failover,
    deadlineMs,
    now,
    onEvent: (e) => event(e.kind, e.text, e.region, e.atMs),
    // In a planned failover the client of the tenant's home follows the move, as an application's would.
    ...(scenario.name === 'planned-failover' ? { followTenant: { tenant: s.tenant, home: homeRegion, adminUrl: target.adminUrl(homeRegion) } } : {}),
  }).catch((error: unknown) => {
    throw new DrillError('ADMQ_ERR_DRILL_TARGET', `cannot make the canary clients: ${(error as Error).message}`, { cause: error });
  });
  const observerIndexes = (regions: string[]): Map<string, LogIndex> => new Map(regions.map((r) => [r, (canary.observers.get(r) as { index: LogIndex }).index]));
  const names = (region: string) => canaryNames(s.runId, region);

  let faultInForce = false;
  let status: NodeJS.Timeout | undefined;
  try {
    canary.start();
    const rtoSpecOf = (faultAtMs: number): RtoSpec | NotApplicable =>
      'notApplicable' in scenario.rto
        ? { applicable: false, reason: scenario.rto.notApplicable }
        : { definition: scenario.rto.definition, faultAtMs, region: scenario.rto.region, producer: names(scenario.rto.region).producer, subscription: names(scenario.rto.region).subscription, mustMove: scenario.rto.mustMove };
    let liveRto: RtoSpec | undefined;
    status = setInterval(() => {
      const at = now();
      const rto = liveRto ? computeRto(liveRto, history.produces(), history.consumes()) : undefined;
      emit({
        type: 'status',
        phase: current?.phase ?? 'prepare',
        atMs: at,
        phaseElapsedMs: at - (current?.startedAtMs ?? at),
        canary: canary.stats(),
        ...(rto?.produce ? { rtoProduceMs: rto.produce.ms } : {}),
        ...(rto?.consume ? { rtoConsumeMs: rto.consume.ms } : {}),
        note: statusNote,
      });
    }, 500);
    status.unref();

    // --- warm-up -------------------------------------------------------------------------
    phase('warm-up', `${canaryRegions.length} producers × ${s.ratePerProducer} msg/s, ${canaryRegions.length} consumers, ${observedRegions.length} log readers`);
    await sleep(s.warmupMs, signal);
    const going = await waitUntil(() => canary.producers.every((p) => p.acked > 0) && canary.consumers.every((c) => c.deliveries > 0), 30_000, now, signal);
    if (!going) {
      const stats = canary.stats();
      throw new DrillError('ADMQ_ERR_DRILL_TIMEOUT', `the canary did not get going within 30 s of the warm-up (acked ${stats.acked}, failed ${stats.failed}, delivered ${stats.deliveries}); is every region up?`);
    }

    // --- fault ---------------------------------------------------------------------------
    phase('fault', scenario.summary.title);
    const snapshot = async (regions: string[]): Promise<{ atMs: number; entriesAt: Record<string, number> }> => {
      const atMs = now();
      const entriesAt: Record<string, number> = {};
      await Promise.all(regions.map(async (r) => (entriesAt[r] = entriesOf(await admin(r).topicStats(topic)))));
      event('snapshot', `RPO snapshot: ${Object.entries(entriesAt).map(([r, n]) => `${r} ${n} entries`).join(', ')}`, undefined, atMs);
      return { atMs, entriesAt };
    };
    const ctx: ScenarioContext = {
      target,
      tenant: s.tenant,
      now,
      event: (kind, text, region) => event(kind, text, region),
      snapshot,
      ...(plannedFailover ? { plannedFailover } : {}),
    };
    let faultAtMs = now();
    event('fault', scenario.summary.title, scenario.summary.region);
    faultInForce = scenario.holds;
    liveRto = 'notApplicable' in scenario.rto ? undefined : (rtoSpecOf(faultAtMs) as RtoSpec);
    const injected: Injected = await scenario.inject(ctx);
    if (injected.faultAtMs !== undefined) {
      faultAtMs = injected.faultAtMs;
      if (liveRto) liveRto = { ...liveRto, faultAtMs };
    }
    if (scenario.holds) event('fault-in-force', 'fault in force', scenario.summary.region);
    const rpoObservers = 'notApplicable' in scenario.rpo ? [] : [...new Set(scenario.rpo.pairs.flatMap((p) => p.observers))];
    let taken = injected.snapshot;
    if (!('notApplicable' in scenario.rpo) && scenario.rpo.at === 'fault') taken = await snapshot(rpoObservers);
    let statusBeforeRecovery: RegionStatusSample[] = [];
    let recoveredAtMs: number;
    if (scenario.holds) {
      const holdUntil = faultAtMs + s.faultMs;
      while (now() < holdUntil) {
        const rto = liveRto ? computeRto(liveRto, history.produces(), history.consumes()) : undefined;
        statusNote = rto ? `RTO produce ${rto.produce ? `${rto.produce.ms} ms` : '…'}, consume ${rto.consume ? `${rto.consume.ms} ms` : '…'}` : `${Math.ceil((holdUntil - now()) / 1000)} s left`;
        await sleep(Math.min(250, holdUntil - now()), signal);
      }
      if (!('notApplicable' in scenario.rpo) && scenario.rpo.at === 'before-recovery') taken = await snapshot(rpoObservers);
      statusBeforeRecovery = await sampleStatus(target, topic);

      // --- recovery ----------------------------------------------------------------------
      phase('recovery');
      event('recovery', `undoing: ${scenario.summary.title}`, scenario.summary.region);
      await scenario.recover(ctx);
      faultInForce = false;
      recoveredAtMs = now();
      event('recovered', 'recovered', scenario.summary.region, recoveredAtMs);
    } else {
      recoveredAtMs = injected.recoveredAtMs ?? now();
      event('recovered', 'scenario complete', scenario.summary.to ?? scenario.summary.region, recoveredAtMs);
    }
    const rtoAtFault = liveRto;
    if (rtoAtFault) {
      const rto = computeRto(rtoAtFault, history.produces(), history.consumes());
      if (rto.produce) event('first-produce', `first acked send of ${rtoAtFault.producer} after the fault (${rto.produce.region}, ${rto.produce.ms} ms)`, rto.produce.region, rto.produce.atMs);
      if (rto.consume) event('first-consume', `first delivery to ${rtoAtFault.subscription} after the fault (${rto.consume.region}, ${rto.consume.ms} ms)`, rto.consume.region, rto.consume.atMs);
    }

    // --- catch-up ------------------------------------------------------------------------
    phase('catch-up', 'until every region holds every entry acked by the end of the recovery');
    const ackedByRecovery = history.produces().filter((p) => p.acked && p.atMs <= recoveredAtMs);
    const observers = observerIndexes(observedRegions);
    let missing = missingAcked(ackedByRecovery, observers);
    const caughtUp = await waitUntil(
      () => {
        missing = missingAcked(ackedByRecovery, observers);
        statusNote = `${missing.length} acked ${missing.length === 1 ? 'entry' : 'entries'} still missing somewhere`;
        return missing.length === 0;
      },
      s.catchUpTimeoutMs,
      now,
      signal,
      50,
    );
    const caughtUpAtMs = caughtUp ? now() : null;
    if (caughtUpAtMs !== null) event('caught-up', `every region holds the ${ackedByRecovery.length} entries acked by the recovery`, undefined, caughtUpAtMs);
    const catchUp = catchUpResult({ fromMs: recoveredAtMs, caughtUpAtMs, timeoutMs: s.catchUpTimeoutMs, ackedEntries: ackedByRecovery.length, missing });

    // --- observe -------------------------------------------------------------------------
    phase('observe');
    await sleep(s.observeMs, signal);

    // --- drain ---------------------------------------------------------------------------
    phase('drain', 'producers stop; every region and consumer gets everything; every log is read');
    const drainDeadline = now() + s.drainTimeoutMs;
    const left = (): number => Math.max(0, drainDeadline - now());
    statusNote = 'waiting for outstanding sends';
    await canary.stopProducers();
    const acked = history.produces().filter((p) => p.acked);
    const everywhereAcked = await waitUntil(
      () => {
        const m = missingAcked(acked, observers);
        statusNote = `${m.length} acked ${m.length === 1 ? 'entry' : 'entries'} not yet everywhere`;
        return m.length === 0;
      },
      left(),
      now,
      signal,
    );
    if (!everywhereAcked) notes.push(`drain: some acked entries were still missing somewhere after ${s.drainTimeoutMs} ms; the invariant check below lists them`);
    const ackedPayloads = acked.map((p) => p.payload);
    const delivered = await waitUntil(
      () => {
        const behind = canary.consumers.filter((c) => ackedPayloads.some((p) => !c.payloads.has(p)));
        statusNote = behind.length === 0 ? '' : `consumers still behind: ${behind.map((c) => c.subscription).join(', ')}`;
        return behind.length === 0;
      },
      left(),
      now,
      signal,
      200,
    );
    if (!delivered) notes.push('drain: some canary consumers had not been delivered every acked message by the end (see "undelivered")');
    await canary.stopConsumers();
    // Unacked sends may be stored too; every log must hold the same entries before it is read whole.
    const converged = await waitUntil(() => linksDrained(target, topic, observedRegions), left(), now, signal, 200);
    if (!converged) notes.push(`drain: replication links of the canary topic still had a backlog after ${s.drainTimeoutMs} ms`);
    const entriesAtEnd: Record<string, number> = {};
    for (const r of observedRegions) entriesAtEnd[r] = entriesOf(await admin(r).topicStats(topic));
    const read = await waitUntil(() => observedRegions.every((r) => (canary.observers.get(r)?.contiguous ?? 0) >= (entriesAtEnd[r] ?? 0)), Math.max(5000, left()), now, signal);
    if (!read) notes.push(`drain: the drill could not read every region's whole log (read ${observedRegions.map((r) => `${r} ${canary.observers.get(r)?.contiguous}/${entriesAtEnd[r]}`).join(', ')})`);
    await canary.stopObservers();

    // --- verify --------------------------------------------------------------------------
    phase('verify');
    const finalLogs = new Map<string, StoredRecord[]>();
    const arrivedAtMs = new Map<string, ReadonlyMap<number, number>>();
    for (const r of observedRegions) {
      const observer = canary.observers.get(r);
      const log = (observer?.log() ?? []).slice(0, entriesAtEnd[r]);
      finalLogs.set(r, log);
      if (observer) arrivedAtMs.set(r, observer.arrivedAtMs);
      for (const record of log) history.recordStored(record);
    }
    const violations = checkHistory(history, { regions: observedRegions, allowedRegions: () => allowedRegions });
    const residency = await checkResidency(target, s.tenant, allowedRegions, topic, refusalsAtStart);
    let rpoPlan: RpoPlan | NotApplicable;
    if ('notApplicable' in scenario.rpo) rpoPlan = { applicable: false, reason: scenario.rpo.notApplicable };
    else if (!taken) rpoPlan = { applicable: false, reason: 'no snapshot was taken' };
    else {
      rpoPlan = {
        basis: scenario.rpo.basis,
        snapshotAtMs: taken.atMs,
        ackedByMs: injected.rpoAckedByMs ?? taken.atMs,
        entriesAt: taken.entriesAt,
        pairs: scenario.rpo.pairs,
      };
    }
    const failover: FailoverSummary | null = injected.failover
      ? { ...injected.failover, progress: (injected.failoverProgress ?? []).map((p) => ({ phase: p.phase, elapsedMs: p.elapsedMs, atMs: p.atMs, ...(p.backlogEntries !== undefined ? { backlogEntries: p.backlogEntries } : {}), ...(p.topicsPending !== undefined ? { topicsPending: p.topicsPending } : {}) })) }
      : null;
    if (failover) notes.push(`planned failover: tenant ${failover.tenant}'s home region is now ${failover.to} (the drill does not move it back)`);
    if (scenario.name === 'clock-skew' && target.kind === 'harness') notes.push('clock-skew on the harness restarts the region\'s process to change its clock (ADMQ_CLOCK_SKEW_MS), once to skew and once to set it back');
    notes.push('Duplicates and order are judged per canary subscription from what its consumer received; a consumer that fails over resumes from the replicated subscription, which may redeliver what was acked in the last sync interval.');
    const finishedAtMs = now();
    if (current) current.endedAtMs = finishedAtMs;
    const report = buildReport({
      runId: s.runId,
      scenario: scenario.summary,
      target: { kind: target.kind, description: target.description, regions: [...topology.regions.keys()] },
      tenant: s.tenant,
      namespace: s.namespace,
      topic,
      homeRegion,
      allowedRegions,
      canaryRegions,
      observedRegions,
      startedAtMs,
      finishedAtMs,
      settings: {
        ratePerProducer: s.ratePerProducer,
        warmupMs: s.warmupMs,
        faultMs: s.faultMs,
        observeMs: s.observeMs,
        catchUpTimeoutMs: s.catchUpTimeoutMs,
        drainTimeoutMs: s.drainTimeoutMs,
        sendTimeoutMs: s.sendTimeoutMs,
        failoverAfterMs: s.failover.failoverAfterMs ?? 3000,
        switchBackAfterMs: s.failover.switchBackAfterMs ?? 5000,
        switchBack: s.failover.switchBack ?? true,
        maxClockOffsetMs: topology.maxClockOffsetMs,
      },
      phases,
      events,
      produces: history.produces(),
      consumes: history.consumes(),
      producerHomes: canary.producerHomes(),
      consumerHomes: canary.consumerHomes(),
      producerErrors: canary.producerErrors(),
      finalLogs,
      arrivedAtMs,
      rpoPlan,
      rtoSpec: rtoSpecOf(faultAtMs),
      recoveredAtMs,
      catchUp,
      residency,
      violations,
      statusBeforeRecovery,
      failover,
      notes,
    });
    emit({ type: 'done', atMs: finishedAtMs, report });
    return { report, history };
  } finally {
    if (status) clearInterval(status);
    if (faultInForce) {
      // A drill that fails mid-fault must not leave a region down or cut off.
      try {
        await scenario.recover({ target, tenant: s.tenant, now, event: () => {}, snapshot: async () => ({ atMs: now(), entriesAt: {} }) });
      } catch (error) {
        emit({ type: 'event', event: { atMs: now(), kind: 'note', text: `could not undo the fault: ${(error as Error).message}` } });
      }
    }
    await canary.close();
  }
}

/**
 * The tenant's allowed regions and the namespace's replication set from the runtime
 * placement (GET /admin/v1/placement) of the first region that answers; undefined where the
 * deployment has no such API or does not know them.
 */
async function placementOf(target: DrillTarget, tenant: string, namespace: string): Promise<{ allowedRegions?: string[]; replicationSet?: string[] }> {
  for (const region of target.topology.regions.keys()) {
    let view: { tenants?: Array<{ name?: unknown; allowedRegions?: unknown }>; namespaces?: Array<{ name?: unknown; replicationSet?: unknown }> };
    try {
      view = await new AdminClient(target.adminUrl(region)).call('GET', '/placement');
    } catch {
      continue;
    }
    const strings = (v: unknown): string[] | undefined => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined);
    const allowedRegions = strings(view.tenants?.find((t) => t.name === tenant)?.allowedRegions);
    const replicationSet = strings(view.namespaces?.find((n) => n.name === namespace)?.replicationSet);
    return { ...(allowedRegions ? { allowedRegions } : {}), ...(replicationSet ? { replicationSet } : {}) };
  }
  return {};
}

/** The tenant's regions, home first, from the first region whose admin API answers. */
async function tenantRegionsOf(target: DrillTarget, tenant: string): Promise<string[]> {
  const errors: string[] = [];
  for (const region of target.topology.regions.keys()) {
    try {
      const regions = await new AdminClient(target.adminUrl(region)).call<Array<{ name: string; home?: boolean }>>('GET', `/tenants/${encodeURIComponent(tenant)}/regions`);
      return [...regions].sort((a, b) => Number(b.home === true) - Number(a.home === true)).map((r) => r.name);
    } catch (error) {
      errors.push(`${region}: ${(error as Error).message}`);
    }
  }
  throw new DrillError('ADMQ_ERR_DRILL_TARGET', `no region could tell tenant ${tenant}'s regions (${errors.join('; ')})`);
}

/** The tenant's allowed regions from the admin API (runtime changes included), else the topology's. */
async function allowedRegionsOf(target: DrillTarget, tenant: string, fallback: string[]): Promise<string[]> {
  for (const region of target.topology.regions.keys()) {
    try {
      const record = await new AdminClient(target.adminUrl(region)).call<{ allowedRegions?: unknown }>('GET', `/tenants/${encodeURIComponent(tenant)}`);
      if (Array.isArray(record.allowedRegions) && record.allowedRegions.every((r) => typeof r === 'string')) return record.allowedRegions as string[];
    } catch {
      // The tenant may not exist in a region it is not allowed in: ask the next.
    }
  }
  return target.topology.tenants.get(tenant)?.allowedRegions ?? fallback;
}

interface ReplicationStatus {
  links: Array<Record<string, unknown>>;
  receiver: Record<string, number>;
}

async function replicationStatus(target: DrillTarget, region: string): Promise<ReplicationStatus> {
  return new AdminClient(target.adminUrl(region)).call<ReplicationStatus>('GET', '/replication/status');
}

async function sampleRefusals(target: DrillTarget): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  await Promise.all(
    [...target.topology.regions.keys()].map(async (r) => {
      try {
        out.set(r, Number((await replicationStatus(target, r)).receiver.residencyRefusals ?? 0));
      } catch {
        // Unknown: shown as "—".
      }
    }),
  );
  return out;
}

async function sampleStatus(target: DrillTarget, topic: string): Promise<RegionStatusSample[]> {
  return Promise.all(
    [...target.topology.regions.keys()].map(async (region): Promise<RegionStatusSample> => {
      try {
        const status = await replicationStatus(target, region);
        return {
          region,
          receiver: status.receiver,
          links: status.links
            .filter((l) => l.topic === topic)
            .map((l) => ({ to: String(l.to), state: String(l.state), backlogEntries: Number(l.backlogEntries), replicationDelayMs: Number(l.replicationDelayMs), clockSkewAlert: l.clockSkewAlert === true })),
        };
      } catch (error) {
        return { region, error: (error as Error).message };
      }
    }),
  );
}

/** Every link of the topic from every region is connected with nothing left to ship. */
async function linksDrained(target: DrillTarget, topic: string, regions: string[]): Promise<boolean> {
  for (const region of regions) {
    const links = (await replicationStatus(target, region)).links.filter((l) => l.topic === topic);
    if (links.some((l) => l.state !== 'connected' || Number(l.backlogEntries) > 0)) return false;
  }
  return true;
}

/** Which regions hold the tenant's topics (admin API), against its allowed regions; plus refusal counters. */
async function checkResidency(target: DrillTarget, tenant: string, allowedRegions: string[], canaryTopic: string, refusalsAtStart: Map<string, number>): Promise<ResidencyResult> {
  const regions = await Promise.all(
    [...target.topology.regions.keys()].map(async (region): Promise<ResidencyRegion> => {
      const admin = new AdminClient(target.adminUrl(region));
      const base: ResidencyRegion = {
        region,
        allowed: allowedRegions.includes(region),
        reachable: true,
        tenantPresent: false,
        topics: [],
        canaryEntries: null,
        residencyRefusalsAtStart: refusalsAtStart.get(region) ?? null,
        residencyRefusals: null,
        withheldEntries: null,
      };
      try {
        const tenants = await admin.listTenants();
        base.tenantPresent = tenants.includes(tenant);
        if (base.tenantPresent) {
          for (const namespace of await admin.listNamespaces(tenant)) {
            for (const t of await admin.listTopics(namespace)) base.topics.push(t.name);
          }
        }
      } catch (error) {
        return { ...base, reachable: false, error: (error as Error).message };
      }
      try {
        base.canaryEntries = entriesOf(await admin.topicStats(canaryTopic));
      } catch {
        base.canaryEntries = null;
      }
      try {
        const status = await replicationStatus(target, region);
        base.residencyRefusals = Number(status.receiver.residencyRefusals ?? 0);
        base.withheldEntries = status.links.filter((l) => String(l.topic).startsWith(`persistent://${tenant}/`)).reduce((n, l) => n + Number(l.residencyBlocked ?? 0), 0);
      } catch {
        // A node without replication has no counters.
      }
      return base;
    }),
  );
  return evaluateResidency(tenant, allowedRegions, regions);
}
