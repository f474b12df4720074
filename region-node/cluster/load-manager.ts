// The region's load manager: one leader among the brokers decides which broker serves each
// bundle, and writes it as `MetadataKeys.assignment(bundle)` = { brokerId }.
//
// Election: every broker's LoadManager tries to create `MetadataKeys.loadManagerLeader`
// (create-only) on its session's lease. The one that succeeds leads until its session ends;
// then the key goes away with the lease and the others, watching it, try again.
//
// Requests (the scheme chosen for "a bundle nobody has asked for"): the leader is the only
// writer of assignments. A broker whose lookup finds a bundle unassigned writes
// `ClusterKeys.assignmentRequest(bundle)` (lookup.ts); the leader sees it through its watch,
// assigns the bundle to the least loaded broker and deletes the request. A request written
// while there is no leader waits in the store for the next one. Rejected: letting the
// requester write the assignment itself with a deterministic choice — two writers of
// assignments, each with its own, possibly stale, view of the load.
//
// Safety does not rest on the leader: an assignment only says where a bundle *should* be;
// a broker serves a bundle only while it holds the owner key (ownership.ts). A stale leader
// that has not yet noticed its end can at worst write an assignment the new leader then
// corrects; every assignment write is a compare-and-set on the version the leader read.
//
// Rounds: the leader runs planMoves (load-balancing.ts) whenever a broker, an assignment or
// a request changes — load reports are broker key writes, so they trigger rounds too. No
// timer polls the store.
import { performance } from 'node:perf_hooks';
import type { MetadataStore } from '../metadata-store/index.ts';
import type { BrokerInfo } from './broker-registry.ts';
import { ClusterKeys, MetadataKeys } from './keys.ts';
import type { LeaseSession } from './lease-session.ts';
import { BALANCER_SETTINGS_DEFAULT, overloadedBrokers, planMoves, type BalancerSettings, type BundleMove } from './load-balancing.ts';
import { PrefixMirror, encodeJson, jsonDecoder } from './prefix-mirror.ts';

export interface AssignmentRecord {
  brokerId: string;
  /** Why the leader placed it there (for operators). */
  reason?: string;
}

export interface LeaderRecord {
  brokerId: string;
  sessionId: string;
}

export interface AssignmentRequestRecord {
  requestedBy: string;
}

export const decodeAssignment = jsonDecoder((v: unknown): v is AssignmentRecord => typeof v === 'object' && v !== null && typeof (v as AssignmentRecord).brokerId === 'string');
export const decodeLeader = jsonDecoder(
  (v: unknown): v is LeaderRecord => typeof v === 'object' && v !== null && typeof (v as LeaderRecord).brokerId === 'string' && typeof (v as LeaderRecord).sessionId === 'string',
);
export const decodeRequest = jsonDecoder((v: unknown): v is AssignmentRequestRecord => typeof v === 'object' && v !== null && typeof (v as AssignmentRequestRecord).requestedBy === 'string');

export function bundleOfAssignmentKey(key: string): string | undefined {
  return key.startsWith(MetadataKeys.assignmentsPrefix) ? key.slice(MetadataKeys.assignmentsPrefix.length) : undefined;
}

/** The mirrors a LoadManager reads (the coordinator owns them; they outlive sessions). */
export interface LoadManagerMirrors {
  brokers: PrefixMirror<BrokerInfo>;
  assignments: PrefixMirror<AssignmentRecord>;
  requests: PrefixMirror<AssignmentRequestRecord>;
  leader: PrefixMirror<LeaderRecord>;
}

export interface LoadManagerOptions {
  brokerId: string;
  balancer?: Partial<BalancerSettings>;
  /** Monotonic ms for move cooldowns; default performance.now. */
  nowMs?: () => number;
  /** Called after every round that moved something (for logs and tests). */
  onMoves?: (moves: BundleMove[]) => void;
}

const RETRY_DELAY_MS_MIN = 100;
const RETRY_DELAY_MS_MAX = 5000;

/** One broker's part in load management, for one session. */
export class LoadManager {
  readonly #store: MetadataStore;
  readonly #session: LeaseSession;
  readonly #mirrors: LoadManagerMirrors;
  readonly #options: LoadManagerOptions;
  readonly #settings: BalancerSettings;
  readonly #nowMs: () => number;
  readonly #unsubscribes: (() => void)[] = [];
  readonly #leadershipListeners = new Set<(leader: boolean) => void>();
  /** Bundle → when the leader last moved it (this leader's memory only: a new leader starts afresh). */
  readonly #movedAtMs = new Map<string, number>();
  readonly #overloadedSinceMs = new Map<string, number>();
  /** Assignments this leader wrote that its mirror has not shown yet: bundle → record and version. */
  readonly #written = new Map<string, { brokerId: string; version: number }>();
  #leaderVersion: number | undefined;
  #electing = false;
  #running: Promise<void> | undefined;
  #dirty = false;
  #retryDelayMs = RETRY_DELAY_MS_MIN;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(store: MetadataStore, session: LeaseSession, mirrors: LoadManagerMirrors, options: LoadManagerOptions) {
    this.#store = store;
    this.#session = session;
    this.#mirrors = mirrors;
    this.#options = options;
    this.#settings = { ...BALANCER_SETTINGS_DEFAULT, ...options.balancer };
    this.#nowMs = options.nowMs ?? (() => performance.now());
  }

  /** Joins the election, and from then on leads whenever this broker wins it. */
  start(): void {
    this.#unsubscribes.push(
      this.#mirrors.leader.onChange((key, entry, _previous, version) => {
        if (key !== MetadataKeys.loadManagerLeader) return;
        if (this.#leaderVersion !== undefined && version > this.#leaderVersion && entry?.value.sessionId !== this.#session.id) {
          this.#setLeader(undefined);
        }
        if (entry === undefined) void this.#elect();
      }),
      this.#mirrors.brokers.onChange(() => this.#schedule()),
      this.#mirrors.requests.onChange(() => this.#schedule()),
      this.#mirrors.assignments.onChange((key, entry) => {
        const bundle = bundleOfAssignmentKey(key);
        const written = bundle === undefined ? undefined : this.#written.get(bundle);
        if (bundle !== undefined && written !== undefined && (entry === undefined || entry.version >= written.version)) this.#written.delete(bundle);
        this.#schedule();
      }),
    );
    this.#session.onLost(() => this.#setLeader(undefined));
    void this.#elect();
  }

  isLeader(): boolean {
    return !this.#closed && this.#leaderVersion !== undefined && this.#session.isValid();
  }

  onLeadershipChange(listener: (leader: boolean) => void): () => void {
    this.#leadershipListeners.add(listener);
    return () => this.#leadershipListeners.delete(listener);
  }

  /** Leaves the election (the leader key goes with the session's lease). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#setLeader(undefined);
    this.#closed = true;
    for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
  }

  async #elect(): Promise<void> {
    if (this.#closed || this.#electing || this.#leaderVersion !== undefined || !this.#session.isValid()) return;
    if (this.#mirrors.leader.get(MetadataKeys.loadManagerLeader) !== undefined) return;
    this.#electing = true;
    try {
      const record: LeaderRecord = { brokerId: this.#options.brokerId, sessionId: this.#session.id };
      const result = await this.#store.put(MetadataKeys.loadManagerLeader, encodeJson(record), { expectedVersion: 0, lease: this.#session.lease });
      if (result.ok && this.#session.isValid() && !this.#closed) this.#setLeader(result.version);
    } catch (error) {
      // Unreachable store: the next change of the leader key (or the next session) retries.
      console.warn(`[cluster][${this.#options.brokerId}] load manager election failed: ${(error as Error).message}`);
      this.#retryLater(() => void this.#elect());
    } finally {
      this.#electing = false;
    }
  }

  #setLeader(version: number | undefined): void {
    const was = this.#leaderVersion !== undefined;
    this.#leaderVersion = version;
    if (version === undefined) {
      this.#movedAtMs.clear();
      this.#overloadedSinceMs.clear();
      this.#written.clear();
    }
    if (was !== (version !== undefined)) {
      for (const listener of [...this.#leadershipListeners]) listener(version !== undefined);
      if (version !== undefined) {
        console.log(`[cluster][${this.#options.brokerId}] load manager leader (session ${this.#session.id})`);
        this.#schedule();
      }
    }
  }

  #schedule(): void {
    if (!this.isLeader()) return;
    this.#dirty = true;
    if (this.#running !== undefined || this.#retryTimer !== undefined) return;
    this.#running = (async () => {
      try {
        while (this.#dirty && this.isLeader()) {
          this.#dirty = false;
          await this.#round();
        }
        this.#retryDelayMs = RETRY_DELAY_MS_MIN;
      } catch (error) {
        console.warn(`[cluster][${this.#options.brokerId}] load manager round failed: ${(error as Error).message}`);
        this.#dirty = true;
        this.#retryLater(() => this.#schedule());
      } finally {
        this.#running = undefined;
      }
    })();
  }

  #retryLater(action: () => void): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    const delayMs = this.#retryDelayMs;
    this.#retryDelayMs = Math.min(RETRY_DELAY_MS_MAX, this.#retryDelayMs * 2);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      action();
    }, delayMs);
    this.#retryTimer.unref();
  }

  /** One decision round: plan on the mirrors (plus our own unseen writes), then apply. */
  async #round(): Promise<void> {
    const assignments = new Map<string, string>();
    const versions = new Map<string, number>();
    for (const entry of this.#mirrors.assignments.entries()) {
      const bundle = bundleOfAssignmentKey(entry.key);
      if (bundle === undefined) continue;
      assignments.set(bundle, entry.value.brokerId);
      versions.set(bundle, entry.version);
    }
    for (const [bundle, written] of this.#written) {
      assignments.set(bundle, written.brokerId);
      versions.set(bundle, written.version);
    }
    const requested: string[] = [];
    for (const entry of this.#mirrors.requests.entries()) requested.push(entry.key.slice(ClusterKeys.assignmentRequestsPrefix.length));
    const brokers = this.#mirrors.brokers.entries().map((e) => ({ brokerId: e.value.brokerId, load: e.value.load }));
    const nowMs = this.#nowMs();
    // Since when each broker has been overloaded without a break (a burst moves nothing).
    const overloaded = overloadedBrokers(brokers, this.#settings);
    for (const id of [...this.#overloadedSinceMs.keys()]) if (!overloaded.has(id)) this.#overloadedSinceMs.delete(id);
    for (const id of overloaded) if (!this.#overloadedSinceMs.has(id)) this.#overloadedSinceMs.set(id, nowMs);
    const moves = planMoves({ brokers, assignments, requested, movedAtMs: this.#movedAtMs, nowMs, overloadedSinceMs: this.#overloadedSinceMs }, this.#settings);

    const applied: BundleMove[] = [];
    for (const move of moves) {
      if (!this.isLeader()) return;
      const record: AssignmentRecord = { brokerId: move.to, reason: move.reason };
      const result = await this.#store.put(MetadataKeys.assignment(move.bundle), encodeJson(record), { expectedVersion: versions.get(move.bundle) ?? 0 });
      if (result.ok) {
        this.#written.set(move.bundle, { brokerId: move.to, version: result.version });
        // Only balancing moves start a cooldown: a bundle placed for the first time or
        // rescued from a dead broker may still be moved to even out the counts.
        if (move.reason === 'bundle-count' || move.reason === 'throughput') this.#movedAtMs.set(move.bundle, nowMs);
        applied.push(move);
      } else {
        // Someone else wrote it (a stale leader, an operator): the mirror will show it and
        // the round it triggers decides again.
        this.#dirty = true;
      }
    }
    if (applied.length > 0) {
      console.log(`[cluster][${this.#options.brokerId}] load manager moved ${applied.map((m) => `${m.bundle} ${m.from ?? '-'} --> ${m.to} (${m.reason})`).join('; ')}`);
      this.#options.onMoves?.(applied);
    }
    // Requests that are answered: delete them (at the version read, so a newer one stays).
    for (const entry of this.#mirrors.requests.entries()) {
      const bundle = entry.key.slice(ClusterKeys.assignmentRequestsPrefix.length);
      if (!assignments.has(bundle) && !this.#written.has(bundle)) continue;
      if (!this.isLeader()) return;
      await this.#store.delete(entry.key, { expectedVersion: entry.version });
    }
  }
}
