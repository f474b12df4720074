// The lag-history sampler. `buildSamples` is pure: from what the node observes at one
// instant (the replicator's status, the namespaces it holds) and the counters it read last
// time, it makes one sample per series and the counters to remember. The shell
// (`startLagHistorySampler`) runs it on every sample-interval boundary and writes to the
// store; it is the only part with timers.
import type { LinkStatus, ReceiverStats } from '../replicator/index.ts';
import type { LagHistoryStore } from './history-store.ts';
import { LinkStateValue, type Sample } from './series.ts';

/** What a sample needs of a link's status (replicator/sender.ts LinkStatus). */
export type LinkObservation = Pick<
  LinkStatus,
  'topic' | 'to' | 'state' | 'backlogEntries' | 'backlogBytesEstimate' | 'replicationDelayMs' | 'duplicatesAtRemote' | 'residencyBlocked' | 'clockSkewRefusals' | 'entriesShipped' | 'reconnects'
>;

export type ReceiverObservation = Pick<ReceiverStats, 'residencyRefusals' | 'unauthorizedRefusals' | 'clockSkewRefusals' | 'maxClockSkewMs' | 'entriesAppended' | 'duplicates'>;

export interface NamespaceObservation {
  /** tenant/namespace */
  namespace: string;
  /** Its replication set now (runtime placement). */
  replicationSet: string[];
  /** Whether this region may hold it now (in the set, and allowed for the tenant). */
  mayHold: boolean;
  /** Topics of the namespace stored here (a partitioned topic counts once). */
  topics: number;
  /** Conflict records this region has written to the namespace's feed, ever (durable). */
  conflictsRecorded: number;
  /** Local writes refused here because the region may not hold the namespace, since the process started. */
  writesRefusedResidency: number;
}

export interface Observation {
  region: string;
  nowMs: number;
  /** Regions this one has a link to (topology). */
  neighbours: readonly string[];
  links: readonly LinkObservation[];
  receiver: ReceiverObservation;
  /** Per replicated topic, this region's HLC watermark per origin (decimal strings). */
  watermarks: Readonly<Record<string, Readonly<Record<string, string>>>>;
  namespaces: readonly NamespaceObservation[];
}

/**
 * Cumulative counters as read at the previous sample. `volatile` restart from 0 with the
 * process (links, receiver); `durable` survive restarts (conflict feed marks) and are saved
 * with every sample, so the first sample after a restart counts from the last one before.
 */
export interface Counters {
  volatile: Record<string, number>;
  durable: Record<string, number>;
}

export function namespaceOfTopic(topic: string): string {
  const [tenant, namespace] = topic.replace(/^persistent:\/\//, '').split('/');
  return `${tenant}/${namespace}`;
}

/** An HLC's wall-clock part, in ms. */
export function hlcWallMs(hlc: bigint): number {
  return Number(hlc >> 16n);
}

/**
 * What a cumulative counter gained since the previous sample. A volatile counter seen for
 * the first time counts whole (it started with its link or the process, moments ago); a
 * durable one seen for the first time is only a baseline (what it counted before this
 * node kept a history is not attributed to the first sample).
 */
function delta(previous: Record<string, number>, next: Record<string, number>, key: string, value: number, durable = false): number {
  next[key] = value;
  const before = previous[key];
  if (before === undefined) return durable ? 0 : value;
  // A counter that went down was restarted (a link rebuilt, the process restarted): all of it is new.
  return value < before ? value : value - before;
}

export function buildSamples(o: Observation, previous: Counters): { samples: Sample[]; counters: Counters } {
  const counters: Counters = { volatile: {}, durable: { ...previous.durable } };
  const samples: Sample[] = [];
  const { region } = o;

  // out: per namespace and neighbour in its replication set, the links' worst lag and their sums.
  const pairs = new Map<string, { namespace: string; to: string; links: LinkObservation[] }>();
  for (const ns of o.namespaces) {
    if (!ns.mayHold || !ns.replicationSet.includes(region)) continue;
    for (const to of ns.replicationSet) {
      if (to !== region && o.neighbours.includes(to)) pairs.set(`${ns.namespace}|${to}`, { namespace: ns.namespace, to, links: [] });
    }
  }
  for (const link of o.links) {
    const namespace = namespaceOfTopic(link.topic);
    const key = `${namespace}|${link.to}`;
    let pair = pairs.get(key);
    // A link that placement no longer wants stops at the next discovery; until then it is still replication.
    if (!pair) pairs.set(key, (pair = { namespace, to: link.to, links: [] }));
    pair.links.push(link);
  }
  for (const { namespace, to, links } of pairs.values()) {
    let lagMs = 0;
    let backlogEntries = 0;
    let backlogBytes = 0;
    let connected = 0;
    const sums = { duplicates: 0, residencyWithheld: 0, clockSkewRefusals: 0, entriesShipped: 0, reconnects: 0 };
    for (const l of links) {
      lagMs = Math.max(lagMs, Math.round(l.replicationDelayMs));
      backlogEntries += l.backlogEntries;
      backlogBytes += l.backlogBytesEstimate;
      if (l.state === 'connected') connected++;
      const id = `link|${l.topic}|${l.to}`;
      sums.duplicates += delta(previous.volatile, counters.volatile, `${id}|dup`, l.duplicatesAtRemote);
      sums.residencyWithheld += delta(previous.volatile, counters.volatile, `${id}|res`, l.residencyBlocked);
      sums.clockSkewRefusals += delta(previous.volatile, counters.volatile, `${id}|skew`, l.clockSkewRefusals);
      sums.entriesShipped += delta(previous.volatile, counters.volatile, `${id}|ship`, l.entriesShipped);
      sums.reconnects += delta(previous.volatile, counters.volatile, `${id}|reconnect`, l.reconnects);
    }
    const linkState = links.length === 0 ? LinkStateValue.NoLinks : connected === links.length ? LinkStateValue.Up : LinkStateValue.Down;
    samples.push({
      series: { kind: 'out', namespace, from: region, to },
      values: { lagMs, backlogEntries, backlogBytes: Math.round(backlogBytes), links: links.length, linkState, ...sums },
    });
  }

  // in: per namespace and origin, the lowest watermark over its topics and the freshest one against our clock.
  const watermarksByNamespace = new Map<string, Map<string, { lowest: bigint; freshest: bigint }>>();
  for (const [topic, byOrigin] of Object.entries(o.watermarks)) {
    const namespace = namespaceOfTopic(topic);
    let origins = watermarksByNamespace.get(namespace);
    if (!origins) watermarksByNamespace.set(namespace, (origins = new Map()));
    for (const [origin, text] of Object.entries(byOrigin)) {
      if (origin === region) continue;
      let hlc: bigint;
      try {
        hlc = BigInt(text);
      } catch {
        continue;
      }
      if (hlc <= 0n) continue;
      const seen = origins.get(origin);
      origins.set(origin, seen ? { lowest: hlc < seen.lowest ? hlc : seen.lowest, freshest: hlc > seen.freshest ? hlc : seen.freshest } : { lowest: hlc, freshest: hlc });
    }
  }
  for (const [namespace, origins] of watermarksByNamespace) {
    for (const [origin, { lowest, freshest }] of origins) {
      samples.push({ series: { kind: 'in', namespace, from: origin, to: region }, values: { skewMs: Math.round(hlcWallMs(freshest) - o.nowMs) }, hlc: { watermarkHlc: lowest } });
    }
  }

  // ns: what this region holds of each namespace.
  for (const ns of o.namespaces) {
    samples.push({
      series: { kind: 'ns', namespace: ns.namespace, from: region, to: '' },
      values: {
        topics: ns.topics,
        mayHold: ns.mayHold ? 1 : 0,
        conflicts: delta(previous.durable, counters.durable, `conflicts|${ns.namespace}`, ns.conflictsRecorded, true),
        writesRefusedResidency: delta(previous.volatile, counters.volatile, `refused|${ns.namespace}`, ns.writesRefusedResidency),
      },
    });
  }

  // node: written on every sample, so that its gaps are the node's.
  const r = o.receiver;
  samples.push({
    series: { kind: 'node', namespace: '', from: region, to: '' },
    values: {
      residencyRefusals: delta(previous.volatile, counters.volatile, 'rx|residency', r.residencyRefusals),
      unauthorizedRefusals: delta(previous.volatile, counters.volatile, 'rx|unauthorized', r.unauthorizedRefusals),
      clockSkewRefusals: delta(previous.volatile, counters.volatile, 'rx|skew', r.clockSkewRefusals),
      maxClockSkewMs: Math.round(r.maxClockSkewMs),
      entriesAppended: delta(previous.volatile, counters.volatile, 'rx|appended', r.entriesAppended),
      duplicates: delta(previous.volatile, counters.volatile, 'rx|duplicates', r.duplicates),
    },
  });
  return { samples, counters };
}

export interface SamplerOptions {
  store: LagHistoryStore;
  /** What the node sees now; called once per sample. */
  observe: () => Observation;
  nowMs: () => number;
  logLine: (line: string) => void;
  /** How often downsampling, retention and the size bound run, in ms. Default: one raw chunk (60 samples). */
  maintenanceIntervalMs?: number;
}

export interface SamplerHandle {
  /** Takes a sample now, in the current slot (tests; the timer does it on every boundary). */
  sampleNow(): Promise<void>;
  /** Stops the timer and waits for the write in flight. Idempotent. */
  close(): Promise<void>;
}

/**
 * Samples on every boundary of the sample interval. A sample that fires late (a busy
 * event loop) lands in the slot it was taken in; the slots it missed stay gaps, because
 * nothing was observed in them.
 */
export function startLagHistorySampler(o: SamplerOptions): SamplerHandle {
  const interval = o.store.settings.sampleIntervalMs;
  const maintenanceMs = o.maintenanceIntervalMs ?? o.store.rawChunkMs;
  const stored = o.store.baselines();
  let counters: Counters = { volatile: {}, durable: { ...stored } };
  let lastSlot = -1;
  let lastMaintenance = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let inFlight: Promise<void> = Promise.resolve();
  let failures = 0;

  const sample = async (): Promise<void> => {
    const now = o.nowMs();
    const slot = Math.floor(now / interval) * interval;
    if (slot === lastSlot) return;
    lastSlot = slot;
    const built = buildSamples({ ...o.observe(), nowMs: now }, counters);
    const durableChanged = JSON.stringify(built.counters.durable) !== JSON.stringify(counters.durable);
    counters = built.counters;
    await o.store.record(slot, built.samples, durableChanged ? counters.durable : undefined);
    if (now - lastMaintenance >= maintenanceMs) {
      lastMaintenance = now;
      const m = await o.store.maintain(now);
      if (m.removedForSize > 0) o.logLine(`[lag-history] size bound: removed ${m.removedForSize} of the oldest chunks (${m.bytesUsed} bytes in use, bound ${o.store.settings.bytesMax})`);
    }
  };
  const run = (): void => {
    inFlight = sample().then(
      () => {
        failures = 0;
      },
      (error: Error) => {
        // The history is observability: a failed write is logged (once per streak) and the node serves on.
        if (failures++ === 0) o.logLine(`[lag-history] sample not recorded: ${error.message}`);
      },
    );
    void inFlight.then(schedule);
  };
  const schedule = (): void => {
    if (closed) return;
    const now = o.nowMs();
    timer = setTimeout(run, interval - (now % interval) + 2);
    timer.unref();
  };
  schedule();
  return {
    sampleNow: async () => {
      await inFlight;
      await sample();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      await inFlight;
    },
  };
}
