// The fault scenarios a drill can run. Each resolves its defaults and checks its regions
// against the deployment (resolveScenario), names the faults it needs so that the target
// can refuse it before anything runs, says what its RPO and RTO mean, and injects and
// undoes its fault. The drill (drill.ts) runs the phases around them.
import type { FaultKind, DrillTarget } from './target.ts';
import { DrillError } from './target.ts';
import type { ScenarioSummary, TimelineEventKind } from './report.ts';
import { plannedFailover as runPlannedFailover, type FailoverProgress, type FailoverResult } from '../operations/planned-failover.ts';

export const SCENARIO_NAMES = ['region-outage', 'link-partition', 'clock-skew', 'planned-failover'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export type ScenarioRequest =
  | { name: 'region-outage'; region?: string; mode?: 'kill' | 'partition' }
  | { name: 'link-partition'; link?: [string, string] }
  | { name: 'clock-skew'; region?: string; skewMs?: number }
  | { name: 'planned-failover'; to?: string; timeoutMs?: number };

// --- planned failover (operations/planned-failover.ts) --------------------------------------

export type { FailoverProgress, FailoverResult };
export type PlannedFailoverFn = typeof runPlannedFailover;

// --- what a scenario is -------------------------------------------------------------------

/** What the drill lends a scenario while it runs. */
export interface ScenarioContext {
  target: DrillTarget;
  tenant: string;
  now(): number;
  event(kind: TimelineEventKind, text: string, region?: string): void;
  /** Reads the entry counts of the canary topic in `regions` (the RPO snapshot). */
  snapshot(regions: string[]): Promise<{ atMs: number; entriesAt: Record<string, number> }>;
  plannedFailover?: PlannedFailoverFn;
}

/** What inject() may hand back to the drill (planned failover sets its own moments). */
export interface Injected {
  /** The fault's true start, when it is not the moment inject() was called (the fence). */
  faultAtMs?: number;
  /** When the scenario finished its own recovery (the unfence). */
  recoveredAtMs?: number;
  /** Taken by the scenario itself at the right moment (after the drain). */
  snapshot?: { atMs: number; entriesAt: Record<string, number> };
  /** Only acks recorded by then count for the RPO (the drain's end). */
  rpoAckedByMs?: number;
  failover?: FailoverResult;
  failoverProgress?: Array<FailoverProgress & { atMs: number }>;
}

export interface RpoSpec {
  /** When the observers' logs are measured. */
  at: 'fault' | 'before-recovery' | 'by-scenario';
  pairs: Array<{ origin: string; observers: string[] }>;
  basis: string;
}

export interface RtoSpecOfScenario {
  region: string;
  mustMove: boolean;
  definition: string;
}

export interface Scenario {
  readonly name: ScenarioName;
  readonly summary: ScenarioSummary;
  /** Checked with the target before the drill starts anything. */
  readonly faults: Array<{ fault: FaultKind; regions: string[] }>;
  readonly rpo: RpoSpec | { notApplicable: string };
  readonly rto: RtoSpecOfScenario | { notApplicable: string };
  /** Whether the fault is held for faultMs and then undone by recover() (not so for planned failover). */
  readonly holds: boolean;
  inject(ctx: ScenarioContext): Promise<Injected>;
  recover(ctx: ScenarioContext): Promise<void>;
}

export interface ResolveContext {
  /** Every region of the deployment. */
  regions: string[];
  /** The canary tenant's regions in the replication set, home first. */
  canaryRegions: string[];
  /** The namespace's replication set: the regions whose logs are read. */
  observedRegions: string[];
  homeRegion: string;
  maxClockOffsetMs: number;
  faultMs: number;
}

function pickRegion(option: string, region: string | undefined, fallback: string, ctx: ResolveContext): string {
  const chosen = region ?? fallback;
  if (!ctx.regions.includes(chosen)) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `${option}: region "${chosen}" is not in the deployment (regions: ${ctx.regions.join(', ')})`);
  if (!ctx.canaryRegions.includes(chosen)) {
    throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `${option}: region "${chosen}" holds none of the canary's data (the tenant's regions in the namespace's replication set: ${ctx.canaryRegions.join(', ')})`);
  }
  return chosen;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** Fills the request's defaults from the deployment and checks it; throws ADMQ_ERR_DRILL_CONFIG naming the option. */
export function resolveScenario(request: ScenarioRequest, ctx: ResolveContext): Scenario {
  switch (request.name) {
    case 'region-outage':
      return regionOutage(pickRegion('--region', request.region, ctx.homeRegion, ctx), request.mode ?? 'kill', ctx);
    case 'link-partition': {
      const [a, b] = request.link ?? [ctx.homeRegion, ctx.canaryRegions.find((r) => r !== ctx.homeRegion) as string];
      const first = pickRegion('--link', a, ctx.homeRegion, ctx);
      const second = pickRegion('--link', b, ctx.homeRegion, ctx);
      if (first === second) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `--link: a link joins two different regions; got ${first},${second}`);
      return linkPartition(first, second, ctx);
    }
    case 'clock-skew': {
      const region = pickRegion('--region', request.region, ctx.homeRegion, ctx);
      const skewMs = request.skewMs ?? Math.max(2000, 3 * ctx.maxClockOffsetMs);
      if (!Number.isInteger(skewMs) || skewMs <= ctx.maxClockOffsetMs) {
        throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `--skew-ms must be an integer above maxClockOffsetMs (${ctx.maxClockOffsetMs} ms), or the receivers would accept the skewed clock; got ${skewMs}`);
      }
      return clockSkew(region, skewMs, ctx);
    }
    case 'planned-failover': {
      const to = pickRegion('--to', request.to, ctx.canaryRegions.find((r) => r !== ctx.homeRegion) as string, ctx);
      if (to === ctx.homeRegion) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `--to: ${to} is already the tenant's home region`);
      return plannedFailover(ctx.homeRegion, to, request.timeoutMs ?? 60_000);
    }
    default:
      throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `unknown scenario "${(request as { name: string }).name}" (scenarios: ${SCENARIO_NAMES.join(', ')})`);
  }
}

function others(ctx: ResolveContext, region: string): string[] {
  const rest = ctx.observedRegions.filter((r) => r !== region);
  if (rest.length === 0) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `region ${region} is the only region of the namespace's replication set: nothing to fail over to`);
  return rest;
}

function regionOutage(region: string, mode: 'kill' | 'partition', ctx: ResolveContext): Scenario {
  if (mode !== 'kill' && mode !== 'partition') throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `--mode must be kill or partition; got ${String(mode)}`);
  const survivors = others(ctx, region);
  return {
    name: 'region-outage',
    summary: { name: 'region-outage', title: `region-outage: ${mode === 'kill' ? 'SIGKILL of' : 'partition of'} ${region} for ${seconds(ctx.faultMs)}`, region, mode, faultMs: ctx.faultMs },
    faults: [{ fault: mode === 'kill' ? 'kill' : 'isolate', regions: [region] }],
    rpo: { at: 'fault', pairs: [{ origin: region, observers: survivors }], basis: `entries acked in ${region} that ${survivors.join(' or ')} did not hold right after the fault` },
    rto: { region, mustMove: true, definition: `from the fault to the first acked send and the first delivery of the canary client homed in ${region} (with region failover) through another region` },
    holds: true,
    async inject(s) {
      if (mode === 'kill') await s.target.kill(region);
      else await s.target.isolate(region);
      return {};
    },
    async recover(s) {
      if (mode === 'kill') await s.target.restart(region);
      else await s.target.heal();
    },
  };
}

function linkPartition(a: string, b: string, ctx: ResolveContext): Scenario {
  return {
    name: 'link-partition',
    summary: { name: 'link-partition', title: `link-partition: ${a} ⇹ ${b} cut both ways for ${seconds(ctx.faultMs)}`, link: [a, b], faultMs: ctx.faultMs },
    faults: [{ fault: 'cut-link', regions: [a, b] }],
    rpo: {
      at: 'before-recovery',
      pairs: [
        { origin: a, observers: [b] },
        { origin: b, observers: [a] },
      ],
      basis: `entries acked on one side of the cut link (${a}, ${b}) that the other side did not hold just before the link healed`,
    },
    rto: { notApplicable: 'no region fails: clients keep their regions, only replication between two regions stops' },
    holds: true,
    async inject(s) {
      await s.target.cutLink(a, b);
      return {};
    },
    async recover(s) {
      await s.target.heal();
    },
  };
}

function clockSkew(region: string, skewMs: number, ctx: ResolveContext): Scenario {
  const survivors = others(ctx, region);
  return {
    name: 'clock-skew',
    summary: { name: 'clock-skew', title: `clock-skew: ${region} ${skewMs} ms ahead (maxClockOffsetMs ${ctx.maxClockOffsetMs}) for ${seconds(ctx.faultMs)}`, region, skewMs, faultMs: ctx.faultMs },
    faults: [{ fault: 'skew-clock', regions: [region] }],
    rpo: {
      at: 'before-recovery',
      pairs: [{ origin: region, observers: survivors }],
      basis: `entries acked in ${region} that ${survivors.join(' or ')} did not hold just before its clock was set back (receivers refuse batches from a clock too far ahead)`,
    },
    rto: { region, mustMove: false, definition: `from the skew to the first acked send and the first delivery of the canary client homed in ${region}, in any region (setting a node's clock restarts its process)` },
    holds: true,
    async inject(s) {
      await s.target.skewClock(region, skewMs);
      return {};
    },
    async recover(s) {
      await s.target.skewClock(region, 0);
    },
  };
}

function plannedFailover(from: string, to: string, timeoutMs: number): Scenario {
  return {
    name: 'planned-failover',
    summary: { name: 'planned-failover', title: `planned-failover: home ${from} → ${to}`, region: from, to },
    faults: [],
    rpo: { at: 'by-scenario', pairs: [{ origin: from, observers: [to] }], basis: `entries acked in ${from} before the drain ended that ${to} did not hold once it had (RPO must be 0)` },
    rto: {
      region: from,
      mustMove: true,
      definition: `from the fence to the first acked send and the first delivery of the canary client of the tenant's home (${from}; made by AdmqClient.forTenant, it follows the move) in another region`,
    },
    holds: false,
    async inject(s) {
      const run = s.plannedFailover;
      if (!run) throw new DrillError('ADMQ_ERR_DRILL_UNAVAILABLE', 'planned-failover: no plannedFailover function was loaded');
      const adminUrls = Object.fromEntries([...s.target.topology.regions.keys()].map((r) => [r, s.target.adminUrl(r)]));
      const progress: Array<FailoverProgress & { atMs: number }> = [];
      const calledAtMs = s.now();
      // The snapshot is taken as soon as the drain is over (the move begins), not after the
      // unfence: later writes in `from` are not the drain's business.
      let snapshot: Promise<{ atMs: number; entriesAt: Record<string, number> }> | undefined;
      const result = await run({
        adminUrls,
        tenant: s.tenant,
        to,
        timeoutMs,
        onProgress: (p) => {
          progress.push({ ...p, atMs: s.now() });
          if (progress.length === 1 || progress[progress.length - 2]?.phase !== p.phase) {
            s.event('failover-phase', `planned failover: ${p.phase}${p.backlogEntries !== undefined ? ` (backlog ${p.backlogEntries})` : ''}`, p.phase === 'done' ? to : from);
          }
          if ((p.phase === 'move' || p.phase === 'unfence' || p.phase === 'done') && !snapshot) snapshot = s.snapshot([to]);
          // A failing snapshot surfaces where it is awaited below.
          snapshot?.catch(() => {});
        },
      });
      const taken = await (snapshot ?? s.snapshot([to]));
      // plannedFailover's moments count from its own start (elapsedMs of its progress
      // reports); the first report ties that start to the drill's clock.
      const epoch = failoverClock(calledAtMs, progress);
      const at = {
        fencedAtMs: epoch(result.fencedAtMs),
        drainedAtMs: epoch(result.drainedAtMs),
        movedAtMs: epoch(result.movedAtMs),
        unfencedAtMs: epoch(result.unfencedAtMs),
      };
      return {
        faultAtMs: at.fencedAtMs,
        recoveredAtMs: at.unfencedAtMs,
        snapshot: taken,
        rpoAckedByMs: at.drainedAtMs,
        failover: { ...result, ...at },
        failoverProgress: progress,
      };
    },
    async recover() {
      // The failover is its own recovery: the tenant is unfenced in its new home.
    },
  };
}

/**
 * Turns a moment reported by plannedFailover into the drill's clock. Moments are ms since
 * the failover began (its progress reports carry elapsedMs since the same start), so the
 * first report, stamped on arrival, gives the start; without reports, the call's start.
 * A value already on the epoch (beyond 2001) is kept as it is.
 */
export function failoverClock(calledAtMs: number, progress: ReadonlyArray<{ atMs: number; elapsedMs: number }>): (ms: number) => number {
  const first = progress[0];
  const startMs = first ? first.atMs - first.elapsedMs : calledAtMs;
  return (ms) => (ms > 1e12 ? ms : startMs + ms);
}
