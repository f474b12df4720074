// Client-side region failover (DESIGN §8): a client that knows a tenant's regions (the
// home region first) talks to the most preferred region that is up. Each region has its
// own gRPC channel; a region is up while its channel is READY. When the current region has
// been down for `failoverAfterMs` and another is up, the client moves there: producers
// reconnect and resend what was not acknowledged with the same sequence ids (the regions
// dedupe them), consumers resume on their replicated subscriptions. With `switchBack`, it
// returns once a more preferred region has been up for `switchBackAfterMs`.
import * as grpc from '@grpc/grpc-js';
import { ErrorCode } from '../proto/index.ts';
import { createStub, type BrokerStub } from './connection.ts';
import { AdmqClientError } from './errors.ts';

export interface RegionEndpoint {
  /** The region's name, e.g. "shanghai". */
  name: string;
  /** host:port of the region's gRPC API. */
  serviceUrl: string;
}

/** Why the client moved: its region was down, or a more preferred region is up (the old one still is). */
export type SwitchReason = 'outage' | 'preference';

export interface FailoverOptions {
  /** How long the current region may be unreachable before the client moves, in ms. Default 2,000 (with keepalives every 1,000 ms, a silent partition is noticed within about 4 s). */
  failoverAfterMs?: number;
  /** Move back to a more preferred region once it is up again. Default true. */
  switchBack?: boolean;
  /** How long a more preferred region must be up before the client moves back, in ms. Default 5,000. */
  switchBackAfterMs?: number;
  /** How often the regions' channels are checked, in ms. Default 500. */
  checkIntervalMs?: number;
}

interface RegionState {
  endpoint: RegionEndpoint;
  stub: BrokerStub;
  /** Since when the channel has been READY (undefined: it is not). */
  upSinceMs: number | undefined;
  /** When the channel was last READY. */
  lastUpMs: number;
}

export class RegionSelector {
  #regions: RegionState[];
  #current = 0;
  readonly #failoverAfterMs: number;
  readonly #switchBack: boolean;
  readonly #switchBackAfterMs: number;
  readonly #timer: NodeJS.Timeout;
  readonly #listeners = new Set<(region: string, reason: SwitchReason) => void>();

  constructor(regions: RegionEndpoint[], credentials: grpc.ChannelCredentials, messageBytesMax: number, options: FailoverOptions = {}) {
    if (regions.length === 0) throw new AdmqClientError(ErrorCode.Config, 'regions must list at least one region');
    const names = new Set(regions.map((r) => r.name));
    if (names.size !== regions.length) throw new AdmqClientError(ErrorCode.Config, 'regions lists a region twice');
    const now = Date.now();
    this.#failoverAfterMs = options.failoverAfterMs ?? 2000;
    // Missed keepalive pings take a channel out of READY: a region cut off by a partition
    // (no reset, no close) is noticed within about failoverAfterMs, not after minutes.
    const heartbeatMs = Math.max(500, Math.floor(this.#failoverAfterMs / 2));
    const channelOptions: grpc.ChannelOptions = regions.length > 1 ? { 'grpc.keepalive_time_ms': heartbeatMs, 'grpc.keepalive_timeout_ms': heartbeatMs, 'grpc.keepalive_permit_without_calls': 1 } : {};
    this.#regions = regions.map((endpoint) => ({ endpoint, stub: createStub(endpoint.serviceUrl, credentials, messageBytesMax, channelOptions), upSinceMs: undefined, lastUpMs: now }));
    this.#switchBack = options.switchBack ?? true;
    this.#switchBackAfterMs = options.switchBackAfterMs ?? 5000;
    this.#timer = setInterval(() => this.#check(), options.checkIntervalMs ?? 500);
    this.#timer.unref();
    this.#check();
  }

  /** The region the client talks to now. */
  get current(): string {
    return (this.#regions[this.#current] as RegionState).endpoint.name;
  }

  /** The current region's service URL (a regional cluster's may list several brokers). */
  get serviceUrl(): string {
    return (this.#regions[this.#current] as RegionState).endpoint.serviceUrl;
  }

  stub(): BrokerStub {
    return (this.#regions[this.#current] as RegionState).stub;
  }

  /** The regions in preference order. */
  get preference(): string[] {
    return this.#regions.map((r) => r.endpoint.name);
  }

  /**
   * A new preference order (the tenant's home moved). Regions not named keep their order
   * after the named ones; names this client has no channel for are ignored. When the new
   * first region is up, the client moves there at once: a planned move, not an outage.
   */
  setPreference(names: readonly string[]): void {
    const rank = (r: RegionState): number => {
      const i = names.indexOf(r.endpoint.name);
      return i < 0 ? names.length : i;
    };
    const current = this.#regions[this.#current] as RegionState;
    this.#regions = [...this.#regions].sort((a, b) => rank(a) - rank(b));
    this.#current = this.#regions.indexOf(current);
    const first = this.#regions[0] as RegionState;
    if (first !== current && first.upSinceMs !== undefined) this.#switchTo(0, 'preference');
  }

  /** Called with the new region's name whenever the client moves. */
  onSwitch(listener: (region: string, reason: SwitchReason) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #check(): void {
    const now = Date.now();
    for (const r of this.#regions) {
      // `true` asks an idle channel to connect, so every region's state stays known.
      const up = r.stub.getChannel().getConnectivityState(true) === grpc.connectivityState.READY;
      if (up) {
        r.upSinceMs ??= now;
        r.lastUpMs = now;
      } else r.upSinceMs = undefined;
    }
    const current = this.#regions[this.#current] as RegionState;
    if (current.upSinceMs === undefined && now - current.lastUpMs >= this.#failoverAfterMs) {
      // The first region, in preference order, that is up.
      const next = this.#regions.findIndex((r) => r.upSinceMs !== undefined);
      if (next >= 0) this.#switchTo(next, 'outage');
      return;
    }
    if (this.#switchBack) {
      const preferred = this.#regions.findIndex((r, i) => i < this.#current && r.upSinceMs !== undefined && now - r.upSinceMs >= this.#switchBackAfterMs);
      if (preferred >= 0) this.#switchTo(preferred, 'preference');
    }
  }

  #switchTo(index: number, reason: SwitchReason): void {
    if (index === this.#current) return;
    this.#current = index;
    for (const listener of this.#listeners) listener(this.current, reason);
  }

  close(): void {
    clearInterval(this.#timer);
    for (const r of this.#regions) r.stub.close();
  }
}
