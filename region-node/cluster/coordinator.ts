// One broker's part in the regional cluster: its session (lease), its registry key and
// load reports, its ownerships, its vote in the load manager's election (and the load
// manager itself while it leads), and the lookup every broker answers.
//
// Each bundle assigned to this broker goes through a small loop, run again whenever its
// assignment or owner key changes, ownership is lost, or the session changes (never on a
// timer, except to retry after a store error):
//
//   assigned here, not owned  → acquire the owner key (wait, if another broker still holds
//                               it, for its release or expiry), then onBundleAssigned
//   not assigned here (moved away, session ended, closing) while serving
//                             → onBundleUnassigned (stop serving), then release the key
//   serving but ownership lost (lease deadline, key gone)
//                             → onBundleUnassigned at once; then try again if still assigned
//
// A session that ends (lease deadline passed, lease lost) ends everything tied to it — the
// ownerships, the registry key, the leadership — and the coordinator opens a new session
// (retrying with backoff) and starts again; the old lease is revoked if the store answers,
// so its keys go away without waiting for the TTL.
import type { MetadataStore } from '../metadata-store/index.ts';
import { BrokerRegistration, emptyLoad, watchBrokers, LOAD_REPORT_INTERVAL_MS_DEFAULT, type BrokerInfo, type BrokerLoad } from './broker-registry.ts';
import { BUNDLES_PER_NAMESPACE_DEFAULT } from './bundles.ts';
import { ClusterError, ClusterErrorCode, requirePositive } from './errors.ts';
import { ClusterKeys, MetadataKeys } from './keys.ts';
import { LeaseSession } from './lease-session.ts';
import type { BalancerSettings, BundleMove } from './load-balancing.ts';
import {
  LoadManager,
  bundleOfAssignmentKey,
  decodeAssignment,
  decodeLeader,
  decodeRequest,
  type AssignmentRecord,
  type AssignmentRequestRecord,
  type LeaderRecord,
} from './load-manager.ts';
import { TopicLookup, type LookupResult } from './lookup.ts';
import { OwnershipManager, bundleOfOwnerKey, watchOwners, type OwnerRecord } from './ownership.ts';
import { PrefixMirror } from './prefix-mirror.ts';

export const LEASE_TTL_MS_DEFAULT = 5000;

export interface BrokerCoordinatorOptions {
  metadata: MetadataStore;
  brokerId: string;
  grpcAddress: string;
  adminUrl: string;
  /** Lease TTL (ms), default 5000: a dead broker's bundles move within about this long. */
  leaseTtlMs?: number;
  /** See lease-session.ts; default max(200, leaseTtlMs / 5). */
  safetyMarginMs?: number;
  /** Default 2000 ms. */
  loadReportIntervalMs?: number;
  /** Default 16; the same value on every broker of a region. */
  bundlesPerNamespace?: number;
  /** Default 10,000 ms. */
  lookupTimeoutMs?: number;
  balancer?: Partial<BalancerSettings>;
  /** The bundle is owned by this broker now: load its topics. A rejection releases it (retried later). */
  onBundleAssigned?: (bundle: string) => Promise<void>;
  /** Stop serving the bundle's topics now; the coordinator releases the ownership afterwards. */
  onBundleUnassigned?: (bundle: string, reason: string) => Promise<void>;
  /** Observability and tests: everything the coordinator does, in order. */
  onEvent?: (event: CoordinatorEvent) => void;
  /** Monotonic ms; default performance.now. */
  nowMs?: () => number;
}

export type CoordinatorEvent =
  | { type: 'session-started'; brokerId: string; sessionId: string }
  | { type: 'session-lost'; brokerId: string; sessionId: string; reason: string }
  | { type: 'bundle-owned'; brokerId: string; bundle: string; epoch: number }
  | { type: 'bundle-serving'; brokerId: string; bundle: string }
  | { type: 'bundle-unloaded'; brokerId: string; bundle: string; reason: string }
  | { type: 'bundle-released'; brokerId: string; bundle: string }
  | { type: 'bundle-lost'; brokerId: string; bundle: string; reason: string }
  | { type: 'leader'; brokerId: string; leader: boolean }
  | { type: 'moves'; brokerId: string; moves: BundleMove[] };

interface BundleState {
  serving: boolean;
  dirty: boolean;
  retryTimer: NodeJS.Timeout | undefined;
  retryDelayMs: number;
}

const RETRY_DELAY_MS_MIN = 100;
const RETRY_DELAY_MS_MAX = 5000;

export class BrokerCoordinator {
  readonly brokerId: string;
  readonly #options: BrokerCoordinatorOptions;
  readonly #store: MetadataStore;
  readonly #brokers: PrefixMirror<BrokerInfo>;
  readonly #owners: PrefixMirror<OwnerRecord>;
  readonly #assignments: PrefixMirror<AssignmentRecord>;
  readonly #requests: PrefixMirror<AssignmentRequestRecord>;
  readonly #leader: PrefixMirror<LeaderRecord>;
  readonly #lookup: TopicLookup;
  readonly #bundles = new Map<string, BundleState>();
  /** The bundle loops running now (at most one per bundle). */
  readonly #runs = new Map<string, Promise<void>>();
  readonly #unsubscribes: (() => void)[] = [];
  #session: LeaseSession | undefined;
  #ownership: OwnershipManager | undefined;
  #registration: BrokerRegistration | undefined;
  #loadManager: LoadManager | undefined;
  #load: BrokerLoad = emptyLoad();
  #opening: Promise<void> | undefined;
  #openRetryDelayMs = RETRY_DELAY_MS_MIN;
  #openRetryTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    options: BrokerCoordinatorOptions,
    mirrors: {
      brokers: PrefixMirror<BrokerInfo>;
      owners: PrefixMirror<OwnerRecord>;
      assignments: PrefixMirror<AssignmentRecord>;
      requests: PrefixMirror<AssignmentRequestRecord>;
      leader: PrefixMirror<LeaderRecord>;
    },
  ) {
    this.#options = options;
    this.brokerId = options.brokerId;
    this.#store = options.metadata;
    this.#brokers = mirrors.brokers;
    this.#owners = mirrors.owners;
    this.#assignments = mirrors.assignments;
    this.#requests = mirrors.requests;
    this.#leader = mirrors.leader;
    this.#lookup = new TopicLookup(this.#store, { assignments: this.#assignments, owners: this.#owners }, {
      requesterId: options.brokerId,
      bundlesPerNamespace: options.bundlesPerNamespace ?? BUNDLES_PER_NAMESPACE_DEFAULT,
      ...(options.lookupTimeoutMs !== undefined && { lookupTimeoutMs: options.lookupTimeoutMs }),
    });
  }

  /** Validates the options, opens the mirrors and the first session. Rejects if the store cannot be reached. */
  static async start(options: BrokerCoordinatorOptions): Promise<BrokerCoordinator> {
    for (const field of ['brokerId', 'grpcAddress', 'adminUrl'] as const) {
      if (typeof options[field] !== 'string' || options[field] === '') throw new ClusterError(ClusterErrorCode.Config, `${field} must be a non-empty string`);
    }
    if (options.brokerId.includes('/')) throw new ClusterError(ClusterErrorCode.Config, `brokerId must not contain "/", got ${options.brokerId}`);
    requirePositive('leaseTtlMs', options.leaseTtlMs ?? LEASE_TTL_MS_DEFAULT);
    requirePositive('loadReportIntervalMs', options.loadReportIntervalMs ?? LOAD_REPORT_INTERVAL_MS_DEFAULT);
    const store = options.metadata;
    const opened: { close(): Promise<void> }[] = [];
    try {
      const brokers = await watchBrokers(store);
      opened.push(brokers);
      const owners = await watchOwners(store);
      opened.push(owners);
      const assignments = await PrefixMirror.open(store, MetadataKeys.assignmentsPrefix, decodeAssignment);
      opened.push(assignments);
      const requests = await PrefixMirror.open(store, ClusterKeys.assignmentRequestsPrefix, decodeRequest);
      opened.push(requests);
      const leader = await PrefixMirror.open(store, MetadataKeys.loadManagerLeader, decodeLeader);
      opened.push(leader);
      const coordinator = new BrokerCoordinator(options, { brokers, owners, assignments, requests, leader });
      coordinator.#subscribe();
      await coordinator.#openSession();
      return coordinator;
    } catch (error) {
      for (const mirror of opened) await mirror.close();
      throw error;
    }
  }

  /** Where `topic` is served (see lookup.ts). */
  lookup(topic: string): Promise<LookupResult> {
    this.#checkOpen();
    return this.#lookup.lookup(topic);
  }

  bundleOf(topic: string): string {
    return this.#lookup.bundleOf(topic);
  }

  /** True only while this broker owns the topic's bundle (see ownership.ts). */
  owns(topic: string): boolean {
    return this.#ownership?.owns(this.bundleOf(topic)) ?? false;
  }

  /** Throws ClusterError ADMQ_ERR_NOT_OWNER unless this broker owns the topic's bundle. Call before accepting a write. */
  assertOwner(topic: string): void {
    const bundle = this.bundleOf(topic);
    if (this.#ownership === undefined) throw new ClusterError(ClusterErrorCode.NotOwner, `broker ${this.brokerId} does not own bundle ${bundle}: no session`);
    this.#ownership.assertOwner(bundle);
  }

  /** Bundles this broker owns now. */
  ownedBundles(): string[] {
    return this.#ownership?.ownedBundles() ?? [];
  }

  /** Bundles this broker owns and has loaded (onBundleAssigned done). */
  servingBundles(): string[] {
    return [...this.#bundles].filter(([, s]) => s.serving).map(([b]) => b).sort();
  }

  /** The version of this broker's owner key of the topic's bundle (undefined when not owned). */
  epochOf(topic: string): number | undefined {
    return this.#ownership?.epochOf(this.bundleOf(topic));
  }

  /**
   * Whether this broker's session with the metadata store is alive now. A broker cut off
   * from the store cannot know who owns anything, so it answers lookups at once that the
   * client should ask another broker.
   */
  get connected(): boolean {
    return this.#session?.isValid() ?? false;
  }

  isLoadManagerLeader(): boolean {
    return this.#loadManager?.isLeader() ?? false;
  }

  /** The live brokers as this broker sees them. */
  brokers(): BrokerInfo[] {
    return this.#brokers.entries().map((e) => e.value);
  }

  /** Bundle → broker id, as assigned now. */
  assignments(): Map<string, string> {
    const map = new Map<string, string>();
    for (const entry of this.#assignments.entries()) {
      const bundle = bundleOfAssignmentKey(entry.key);
      if (bundle !== undefined) map.set(bundle, entry.value.brokerId);
    }
    return map;
  }

  /** Replaces the load figures of the next report (`bundles` is counted by the coordinator). */
  reportLoad(load: Partial<BrokerLoad>): void {
    this.#load = { ...this.#load, ...load };
    this.#registration?.setLoad(this.#currentLoad());
  }

  /** Unloads every bundle (onBundleUnassigned, release), leaves the cluster and stops. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#openRetryTimer !== undefined) clearTimeout(this.#openRetryTimer);
    for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
    this.#loadManager?.close();
    this.#registration?.close();
    // Graceful unload: every bundle loop now sees "not assigned here" and hands its bundle
    // back (stop serving, release), bounded by one TTL — past it the lease would be going anyway.
    const ttlMs = this.#options.leaseTtlMs ?? LEASE_TTL_MS_DEFAULT;
    const unloads = [...this.#bundles.keys()].map((bundle) => this.#settle(bundle));
    await Promise.race([Promise.all(unloads), new Promise((resolve) => setTimeout(resolve, ttlMs).unref())]);
    for (const state of this.#bundles.values()) if (state.retryTimer !== undefined) clearTimeout(state.retryTimer);
    this.#ownership?.close();
    await this.#session?.close({ revoke: true, revokeTimeoutMs: ttlMs });
    for (const mirror of [this.#brokers, this.#owners, this.#assignments, this.#requests, this.#leader]) await mirror.close();
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw new ClusterError(ClusterErrorCode.Closed, `coordinator of ${this.brokerId} is closed`);
  }

  #emit(event: CoordinatorEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch (error) {
      console.error(`[cluster][${this.brokerId}] onEvent listener failed`, error);
    }
  }

  #currentLoad(): BrokerLoad {
    return { ...this.#load, bundles: this.ownedBundles().length };
  }

  #subscribe(): void {
    this.#unsubscribes.push(
      this.#assignments.onChange((key, entry, previous) => {
        const bundle = bundleOfAssignmentKey(key);
        if (bundle === undefined) return;
        if (entry?.value.brokerId === this.brokerId || previous?.value.brokerId === this.brokerId || this.#bundles.has(bundle)) this.#kick(bundle);
      }),
      this.#owners.onChange((key) => {
        const bundle = bundleOfOwnerKey(key);
        // Another broker's key going away may be what an acquiring bundle waits for.
        if (bundle !== undefined && (this.#bundles.has(bundle) || this.#assignedHere(bundle))) this.#kick(bundle);
      }),
    );
  }

  #assignedHere(bundle: string): boolean {
    return this.#assignments.get(MetadataKeys.assignment(bundle))?.value.brokerId === this.brokerId;
  }

  // ---- sessions ----

  async #openSession(): Promise<void> {
    const options = this.#options;
    const session = await LeaseSession.open(this.#store, {
      ttlMs: options.leaseTtlMs ?? LEASE_TTL_MS_DEFAULT,
      ...(options.safetyMarginMs !== undefined && { safetyMarginMs: options.safetyMarginMs }),
      ...(options.nowMs !== undefined && { nowMs: options.nowMs }),
    });
    const ownership = new OwnershipManager(this.#store, session, { brokerId: this.brokerId, grpcAddress: options.grpcAddress }, this.#owners);
    let registration: BrokerRegistration;
    try {
      registration = await BrokerRegistration.register(
        this.#store,
        session,
        {
          brokerId: this.brokerId,
          grpcAddress: options.grpcAddress,
          adminUrl: options.adminUrl,
          loadReportIntervalMs: options.loadReportIntervalMs ?? LOAD_REPORT_INTERVAL_MS_DEFAULT,
        },
        this.#currentLoad(),
      );
    } catch (error) {
      ownership.close();
      await session.close({ revoke: true });
      throw error;
    }
    if (this.#closing !== undefined) {
      registration.close();
      ownership.close();
      await session.close({ revoke: true });
      return;
    }
    this.#session = session;
    this.#ownership = ownership;
    this.#registration = registration;
    ownership.onLost((bundle, reason) => {
      this.#emit({ type: 'bundle-lost', brokerId: this.brokerId, bundle, reason });
      this.#kick(bundle);
    });
    const loadManager = new LoadManager(this.#store, session, { brokers: this.#brokers, assignments: this.#assignments, requests: this.#requests, leader: this.#leader }, {
      brokerId: this.brokerId,
      ...(options.balancer !== undefined && { balancer: options.balancer }),
      ...(options.nowMs !== undefined && { nowMs: options.nowMs }),
      onMoves: (moves) => this.#emit({ type: 'moves', brokerId: this.brokerId, moves }),
    });
    loadManager.onLeadershipChange((leader) => this.#emit({ type: 'leader', brokerId: this.brokerId, leader }));
    this.#loadManager = loadManager;
    session.onLost((reason) => this.#onSessionLost(session, reason));
    this.#emit({ type: 'session-started', brokerId: this.brokerId, sessionId: session.id });
    loadManager.start();
    for (const entry of this.#assignments.entries()) {
      const bundle = bundleOfAssignmentKey(entry.key);
      if (bundle !== undefined && entry.value.brokerId === this.brokerId) this.#kick(bundle);
    }
  }

  #onSessionLost(session: LeaseSession, reason: string): void {
    if (session !== this.#session) return;
    console.warn(`[cluster][${this.brokerId}] session ${session.id} ended: ${reason}`);
    this.#emit({ type: 'session-lost', brokerId: this.brokerId, sessionId: session.id, reason });
    this.#loadManager?.close();
    this.#registration?.close();
    // The ownership manager has already told every bundle loop (its own onLost listener).
    this.#ownership?.close();
    // If the store answers, its keys go now instead of at expiry; never waited for.
    void session.close({ revoke: true });
    if (this.#closing === undefined) this.#reopen();
  }

  #reopen(): void {
    if (this.#opening !== undefined || this.#openRetryTimer !== undefined || this.#closing !== undefined) return;
    this.#opening = this.#openSession()
      .then(() => {
        this.#openRetryDelayMs = RETRY_DELAY_MS_MIN;
      })
      .catch((error: unknown) => {
        console.warn(`[cluster][${this.brokerId}] new session failed, retrying in ${this.#openRetryDelayMs} ms: ${(error as Error).message}`);
        this.#openRetryTimer = setTimeout(() => {
          this.#openRetryTimer = undefined;
          this.#reopen();
        }, this.#openRetryDelayMs);
        this.#openRetryTimer.unref();
        this.#openRetryDelayMs = Math.min(RETRY_DELAY_MS_MAX, this.#openRetryDelayMs * 2);
      })
      .finally(() => {
        this.#opening = undefined;
      });
  }

  // ---- bundle loops ----

  #kick(bundle: string): void {
    void this.#settle(bundle);
  }

  /** Runs the bundle's loop (again) until nothing changes; resolves when that run ends. */
  #settle(bundle: string): Promise<void> {
    let state = this.#bundles.get(bundle);
    if (state === undefined) {
      state = { serving: false, dirty: false, retryTimer: undefined, retryDelayMs: RETRY_DELAY_MS_MIN };
      this.#bundles.set(bundle, state);
    }
    state.dirty = true;
    // A run in progress takes another turn because of `dirty`; its promise covers that turn.
    const current = this.#runs.get(bundle);
    if (current !== undefined) return current;
    const loopState = state;
    const run = (async () => {
      try {
        while (loopState.dirty) {
          loopState.dirty = false;
          await this.#step(bundle, loopState);
        }
        loopState.retryDelayMs = RETRY_DELAY_MS_MIN;
      } catch (error) {
        this.#retryBundle(bundle, loopState, error);
      } finally {
        this.#runs.delete(bundle);
        if (!loopState.serving && loopState.retryTimer === undefined && !this.#assignedHere(bundle)) this.#bundles.delete(bundle);
      }
    })();
    this.#runs.set(bundle, run);
    return run;
  }

  #retryBundle(bundle: string, state: BundleState, error: unknown): void {
    if (this.#closing !== undefined && !state.serving) return;
    console.warn(`[cluster][${this.brokerId}] bundle ${bundle}: ${(error as Error).message}; retrying in ${state.retryDelayMs} ms`);
    if (state.retryTimer !== undefined) return;
    state.retryTimer = setTimeout(() => {
      state.retryTimer = undefined;
      this.#kick(bundle);
    }, state.retryDelayMs);
    state.retryTimer.unref();
    state.retryDelayMs = Math.min(RETRY_DELAY_MS_MAX, state.retryDelayMs * 2);
  }

  async #step(bundle: string, state: BundleState): Promise<void> {
    const ownership = this.#ownership;
    const session = this.#session;
    const wanted = this.#closing === undefined && session !== undefined && session.isValid() && this.#assignedHere(bundle);
    const owned = ownership !== undefined && ownership.owns(bundle);

    if (state.serving && (!wanted || !owned)) {
      // Stop serving first: after a move, the successor must not acquire while we still
      // accept writes; after a loss, we may already not be the owner.
      const reason = !owned ? 'ownership lost' : this.#closing !== undefined ? 'broker closing' : 'assigned elsewhere';
      state.serving = false;
      await this.#options.onBundleUnassigned?.(bundle, reason);
      this.#emit({ type: 'bundle-unloaded', brokerId: this.brokerId, bundle, reason });
    }
    if (!wanted) {
      if (ownership !== undefined && ownership.owns(bundle)) {
        await ownership.release(bundle);
        this.#emit({ type: 'bundle-released', brokerId: this.brokerId, bundle });
        this.#registration?.setLoad(this.#currentLoad());
      }
      return;
    }
    if (ownership === undefined) return;
    if (!ownership.owns(bundle)) {
      const holder = this.#owners.get(MetadataKeys.bundleOwner(bundle));
      // Held by another broker (or a dead session of ours): its release or expiry changes
      // the owner key, and that change runs this loop again.
      if (holder !== undefined && holder.value.sessionId !== ownership.session.id) return;
      const result = await ownership.acquire(bundle);
      if (!result.acquired) return;
      this.#emit({ type: 'bundle-owned', brokerId: this.brokerId, bundle, epoch: result.epoch });
      this.#registration?.setLoad(this.#currentLoad());
    }
    if (!state.serving) {
      try {
        await this.#options.onBundleAssigned?.(bundle);
      } catch (error) {
        // Could not load: hand the bundle back so that the loop (or, if it keeps failing,
        // the operator) can try again; never own a bundle nobody serves.
        await ownership.release(bundle);
        this.#emit({ type: 'bundle-released', brokerId: this.brokerId, bundle });
        throw error;
      }
      // Ownership may have been lost while loading; the next turn unloads it then.
      state.serving = true;
      this.#emit({ type: 'bundle-serving', brokerId: this.brokerId, bundle });
      if (!ownership.owns(bundle)) state.dirty = true;
    }
  }
}
