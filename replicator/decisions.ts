// The replicator's pure decisions: which entries a link ships, and how lag is reported.
// Functions of (state, input, now); no I/O, no timers.
import type { LogEntry } from './log.ts';

export interface SelectionInput {
  entries: readonly LogEntry[];
  /** The receiver's highest stored origin position per origin. */
  marks: ReadonlyMap<string, number>;
  /** Whether an entry of this origin travels over this link (routing). */
  routes: (origin: string) => boolean;
  /** Whether the remote region may hold this topic's data (residency). */
  remoteMayHold: boolean;
}

export interface Selection {
  ship: LogEntry[];
  /** Entries the receiver already has (resume from the receiver). */
  alreadyThere: number;
  /** Entries that do not travel over this link. */
  notRouted: number;
  /** Entries withheld because the remote may not hold them (residency). */
  residencyBlocked: number;
}

export function selectEntries(input: SelectionInput): Selection {
  const out: Selection = { ship: [], alreadyThere: 0, notRouted: 0, residencyBlocked: 0 };
  for (const entry of input.entries) {
    if (!input.routes(entry.originRegion)) {
      out.notRouted++;
      continue;
    }
    if (!input.remoteMayHold) {
      out.residencyBlocked++;
      continue;
    }
    const mark = input.marks.get(entry.originRegion);
    if (mark !== undefined && entry.originPosition <= mark) {
      out.alreadyThere++;
      continue;
    }
    out.ship.push(entry);
  }
  return out;
}

export type LinkState = 'starting' | 'connecting' | 'connected' | 'backing-off' | 'stopped';

/**
 * Age of the oldest entry not yet acknowledged by the remote. A link that is not
 * connected never reports zero: its delay is at least the time since it was last in
 * contact, because entries may be waiting that it cannot see acknowledged.
 */
export function replicationDelayMs(input: {
  state: LinkState;
  nowMs: number;
  oldestUnackedPublishMs: number | undefined;
  lastContactMs: number | undefined;
  startedMs: number;
  /**
   * A connected link that has heard nothing (no ack, no heartbeat answer) for longer than
   * this may be cut off without knowing it yet: it reports the silence too.
   */
  staleAfterMs?: number;
}): number {
  const age = input.oldestUnackedPublishMs === undefined ? 0 : Math.max(0, input.nowMs - input.oldestUnackedPublishMs);
  const silence = input.nowMs - (input.lastContactMs ?? input.startedMs);
  if (input.state === 'connected') return input.staleAfterMs !== undefined && silence > input.staleAfterMs ? Math.max(age, silence) : age;
  return Math.max(1, age, silence);
}

/**
 * Reconnect delay: exponential from 100 ms, capped at 5 s. The cap is low on purpose: a
 * link between regions is few and precious, and every second it waits after the network
 * heals is a second of replication lag (RPO exposure).
 */
export const BACKOFF_MAX_MS = 5_000;

export function backoffMs(attempt: number, random: number): number {
  const base = Math.min(BACKOFF_MAX_MS, 100 * 2 ** Math.min(attempt, 20));
  return Math.round(base / 2 + (base / 2) * random);
}

/**
 * How long new entries wait before they ship, in ms (0: at once). With nothing in flight
 * they go at once; otherwise no sooner than the linger after the last batch, so that the
 * commits of a few milliseconds travel as one batch (one record to encrypt, one commit at
 * the receiver) instead of one each. A link that keeps a batch in flight all the time (a
 * long round trip) but sends rarely ships each entry at once.
 */
export function lingerMs(input: { inflightBatches: number; lastBatchAtMs: number; nowMs: number; batchLingerMs: number }): number {
  if (input.inflightBatches === 0) return 0;
  return Math.max(0, input.lastBatchAtMs + input.batchLingerMs - input.nowMs);
}
