// A broker's session with the metadata store: one lease, plus a local deadline that says
// until when this process may still believe the lease is alive.
//
// Why a local deadline: etcd deletes a lease's keys TTL after the last keepalive it
// received. A broker cut off from etcd keeps running and, unless it stops by itself, keeps
// accepting writes for bundles whose owner keys etcd has already deleted and another broker
// has re-created: split brain. etcd3's own "lost" event comes only after 2 × TTL without a
// keepalive, far too late. So the session records, for every keepalive that etcd answered,
// the time at which that keepalive was *sent* (read before sending). etcd renewed the lease
// when it *received* it, which is later, so
//
//     etcd's expiry  ≥  sendTime + TTL  >  sendTime + TTL − safetyMargin  =  local deadline.
//
// Past the local deadline the session is lost for good (`isValid()` is false at once, the
// `onLost` listeners run from a timer), even if the store answers again later: the broker
// then opens a new session, as with an expired ZooKeeper session. The margin covers the
// drift between the two clocks' rates and the time between a broker's ownership check and
// the write it guards; the timer being late never matters, because `isValid()` compares with
// the clock itself.
//
// The keepalives that count are sent by this class (every `renewIntervalMs`), through the
// etcd lease's `keepaliveOnce()`: the store's Lease interface (store.ts) does not say when a
// renewal was sent, and the etcd3 client's own keepalive loop only reports when an answer
// came back. See README.md, "A needed change in metadata-store", for the small interface
// addition that would remove the duck typing in `renewerOf`.
import { performance } from 'node:perf_hooks';
import type { Lease, MetadataStore } from '../metadata-store/index.ts';
import { ClusterError, ClusterErrorCode, requirePositive } from './errors.ts';

export interface LeaseSessionOptions {
  /** Lease TTL in ms (etcd rounds it up to whole seconds, which only makes us safer). */
  ttlMs: number;
  /** How long before the earliest possible expiry the session gives up. Default max(200, ttlMs / 5). */
  safetyMarginMs?: number;
  /** How often the session renews (and so proves) the lease. Default ttlMs / 4. */
  renewIntervalMs?: number;
  /** Monotonic ms; default performance.now. Injected so tests can control it. */
  nowMs?: () => number;
}

type Renewer = () => Promise<void>;

/**
 * How to send one keepalive for `lease`, and whether its deadline matters at all.
 * - etcd (etcd-store.ts): the etcd3 Lease behind it has `keepaliveOnce()`.
 * - lmdb (lmdb-store.ts): the lease lives in this process; it cannot become unreachable,
 *   so there is no deadline (it can still be lost by revoking it).
 */
function renewerOf(store: MetadataStore, lease: Lease): Renewer | 'in-process' {
  if (store.kind === 'lmdb') return 'in-process';
  const inner = (lease as unknown as { lease?: { keepaliveOnce?: unknown } }).lease;
  if (inner !== undefined && typeof inner.keepaliveOnce === 'function') {
    const keepaliveOnce = inner.keepaliveOnce as () => Promise<unknown>;
    return async () => {
      await keepaliveOnce.call(inner);
    };
  }
  throw new ClusterError(
    ClusterErrorCode.Config,
    `a ${store.kind} lease must expose a way to renew it once (etcd3's keepaliveOnce); see region-node/cluster/README.md`,
  );
}

export class LeaseSession {
  readonly lease: Lease;
  readonly ttlMs: number;
  readonly safetyMarginMs: number;
  readonly #nowMs: () => number;
  readonly #renew: Renewer | undefined;
  readonly #renewIntervalMs: number;
  readonly #listeners: ((reason: string) => void)[] = [];
  #deadlineMs: number;
  #lostReason: string | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  /** Renewals sent and not yet answered; bounded so a hung store does not pile them up. */
  #renewalsInFlight = 0;
  static readonly RENEWALS_IN_FLIGHT_MAX = 3;

  private constructor(lease: Lease, startedAtMs: number, renew: Renewer | undefined, options: Required<LeaseSessionOptions>) {
    this.lease = lease;
    this.ttlMs = options.ttlMs;
    this.safetyMarginMs = options.safetyMarginMs;
    this.#nowMs = options.nowMs;
    this.#renew = renew;
    this.#renewIntervalMs = options.renewIntervalMs;
    this.#deadlineMs = renew === undefined ? Number.POSITIVE_INFINITY : startedAtMs + this.ttlMs - this.safetyMarginMs;
  }

  /** Grants a lease and starts renewing it. Rejects with the store's error if it cannot. */
  static async open(store: MetadataStore, options: LeaseSessionOptions): Promise<LeaseSession> {
    const ttlMs = requirePositive('leaseTtlMs', options.ttlMs);
    const safetyMarginMs = requirePositive('safetyMarginMs', options.safetyMarginMs ?? Math.max(200, ttlMs / 5));
    const renewIntervalMs = requirePositive('renewIntervalMs', options.renewIntervalMs ?? ttlMs / 4);
    // A renewal must land well inside the window, or the session would lapse while healthy.
    if (renewIntervalMs * 2 > ttlMs - safetyMarginMs) {
      throw new ClusterError(
        ClusterErrorCode.Config,
        `renewIntervalMs (${renewIntervalMs}) must be at most half of leaseTtlMs − safetyMarginMs (${ttlMs} − ${safetyMarginMs})`,
      );
    }
    const nowMs = options.nowMs ?? (() => performance.now());
    // Read before the grant is sent: etcd starts the TTL when it receives the grant.
    const startedAtMs = nowMs();
    const lease = await store.grantLease(ttlMs);
    let renewer: Renewer | 'in-process';
    try {
      renewer = renewerOf(store, lease);
    } catch (error) {
      await lease.revoke().catch(() => {});
      throw error;
    }
    const session = new LeaseSession(lease, startedAtMs, renewer === 'in-process' ? undefined : renewer, { ttlMs, safetyMarginMs, renewIntervalMs, nowMs });
    session.#start();
    return session;
  }

  get id(): string {
    return this.lease.id;
  }

  /** True while the lease is held and its local deadline has not passed. */
  isValid(): boolean {
    return this.#lostReason === undefined && this.#nowMs() < this.#deadlineMs;
  }

  /** Monotonic time (nowMs) until which the session is valid; Infinity for an in-process lease. */
  validUntilMs(): number {
    return this.#lostReason === undefined ? this.#deadlineMs : Number.NEGATIVE_INFINITY;
  }

  get lostReason(): string | undefined {
    return this.#lostReason;
  }

  /** Called once when the session ends (deadline passed, lease lost or closed); at once if it has. */
  onLost(listener: (reason: string) => void): void {
    if (this.#lostReason !== undefined) {
      queueMicrotask(() => listener(this.#lostReason as string));
      return;
    }
    this.#listeners.push(listener);
  }

  /** Ends the session; with `revoke`, asks the store to delete the lease's keys now (bounded by `revokeTimeoutMs`). */
  async close(options: { revoke?: boolean; revokeTimeoutMs?: number } = {}): Promise<void> {
    this.#lose('session closed');
    if (options.revoke) await withTimeout(this.lease.revoke(), options.revokeTimeoutMs ?? this.ttlMs).catch(() => {});
  }

  #start(): void {
    this.lease.onLost((reason) => this.#lose(`lease lost: ${reason}`));
    if (this.#renew === undefined) return;
    this.#renewTimer = setInterval(() => this.#renewOnce(), this.#renewIntervalMs);
    this.#renewTimer.unref();
    this.#armDeadline();
  }

  #renewOnce(): void {
    if (this.#lostReason !== undefined || this.#renew === undefined) return;
    // A renewal that hangs (partitioned store) is not cancelled: if it is answered at last,
    // its send time is still a true lower bound. But only a few may be outstanding at once.
    if (this.#renewalsInFlight >= LeaseSession.RENEWALS_IN_FLIGHT_MAX) return;
    const sentAtMs = this.#nowMs();
    this.#renewalsInFlight++;
    this.#renew().then(
      () => {
        this.#renewalsInFlight--;
        if (this.#lostReason !== undefined) return;
        // Past the deadline the session is over even if its timer has not fired yet:
        // validity never comes back once `isValid()` may have answered false.
        if (this.#nowMs() >= this.#deadlineMs) {
          this.#lose(`no renewal of lease ${this.lease.id} acknowledged within ${this.ttlMs - this.safetyMarginMs} ms`);
          return;
        }
        const deadlineMs = sentAtMs + this.ttlMs - this.safetyMarginMs;
        if (deadlineMs > this.#deadlineMs) {
          this.#deadlineMs = deadlineMs;
          this.#armDeadline();
        }
      },
      () => {
        // An unreachable store or an expired lease: no extension. An expired lease also
        // fires the lease's onLost, which ends the session.
        this.#renewalsInFlight--;
      },
    );
  }

  #armDeadline(): void {
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    const delayMs = Math.max(0, this.#deadlineMs - this.#nowMs());
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = undefined;
      if (this.#nowMs() >= this.#deadlineMs) this.#lose(`no renewal of lease ${this.lease.id} acknowledged within ${this.ttlMs - this.safetyMarginMs} ms`);
      else this.#armDeadline();
    }, delayMs + 1);
    this.#deadlineTimer.unref();
  }

  #lose(reason: string): void {
    if (this.#lostReason !== undefined) return;
    this.#lostReason = reason;
    if (this.#renewTimer !== undefined) clearInterval(this.#renewTimer);
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    for (const listener of this.#listeners.splice(0)) {
      try {
        listener(reason);
      } catch (error) {
        console.error(`[cluster] session ${this.lease.id}: onLost listener failed`, error);
      }
    }
  }
}

/** `promise`, or a rejection after `ms` (the promise itself is not cancelled). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error as Error);
      },
    );
  });
}
