// Live brokers of a region. Each broker keeps `MetadataKeys.broker(id)` on its session's
// lease, so the key disappears when the broker dies (its lease expires) — that deletion is
// how the load manager learns of a death. The value is the broker's address and its latest
// load report, rewritten every `loadReportIntervalMs`.
import type { MetadataStore } from '../metadata-store/index.ts';
import { requirePositive } from './errors.ts';
import { MetadataKeys } from './keys.ts';
import type { LeaseSession } from './lease-session.ts';
import { PrefixMirror, encodeJson, jsonDecoder } from './prefix-mirror.ts';

export interface BrokerLoad {
  /** Topics this broker serves. */
  topics: number;
  /** Bundles this broker owns (the coordinator fills this in). */
  bundles: number;
  /** Messages per second in (published) and out (dispatched). */
  msgRateIn: number;
  msgRateOut: number;
  /** Process CPU use, 0..1 of one core × cores (as the broker measures it). */
  cpu: number;
  /** Resident memory in bytes, if known. */
  memoryBytes?: number;
  /** Messages per second (in + out) per owned bundle, if known: lets the leader move the right bundle. */
  bundleMsgRates?: Record<string, number>;
}

export interface BrokerInfo {
  brokerId: string;
  /** host:port of the broker's gRPC API. */
  grpcAddress: string;
  adminUrl: string;
  load: BrokerLoad;
  /** Wall-clock ms of this report (for operators; decisions never compare clocks of two hosts). */
  updatedAtMs: number;
}

export const LOAD_REPORT_INTERVAL_MS_DEFAULT = 2000;

export function emptyLoad(): BrokerLoad {
  return { topics: 0, bundles: 0, msgRateIn: 0, msgRateOut: 0, cpu: 0 };
}

export function isBrokerInfo(value: unknown): value is BrokerInfo {
  const v = value as Partial<BrokerInfo> | null;
  return (
    typeof v === 'object' && v !== null &&
    typeof v.brokerId === 'string' && typeof v.grpcAddress === 'string' && typeof v.adminUrl === 'string' &&
    typeof v.updatedAtMs === 'number' && typeof v.load === 'object' && v.load !== null &&
    typeof v.load.bundles === 'number' && typeof v.load.msgRateIn === 'number' && typeof v.load.msgRateOut === 'number'
  );
}

export const decodeBrokerInfo = jsonDecoder(isBrokerInfo);

/** Every live broker now (one read). */
export async function listBrokers(store: MetadataStore): Promise<BrokerInfo[]> {
  const brokers: BrokerInfo[] = [];
  for (const kv of await store.list(MetadataKeys.brokersPrefix)) {
    const info = decodeBrokerInfo(kv.value);
    if (info) brokers.push(info);
  }
  return brokers;
}

/** The live brokers, kept current by a watch (close it when done). */
export function watchBrokers(store: MetadataStore): Promise<PrefixMirror<BrokerInfo>> {
  return PrefixMirror.open(store, MetadataKeys.brokersPrefix, decodeBrokerInfo);
}

export interface BrokerRegistrationOptions {
  brokerId: string;
  grpcAddress: string;
  adminUrl: string;
  /** Default 2000 ms. */
  loadReportIntervalMs?: number;
  /** Wall-clock ms for `updatedAtMs`; default Date.now. */
  wallClockMs?: () => number;
}

/** This broker's key in the registry, on one session's lease. */
export class BrokerRegistration {
  readonly #store: MetadataStore;
  readonly #session: LeaseSession;
  readonly #options: BrokerRegistrationOptions;
  readonly #wallClockMs: () => number;
  #load: BrokerLoad;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(store: MetadataStore, session: LeaseSession, options: BrokerRegistrationOptions, load: BrokerLoad) {
    this.#store = store;
    this.#session = session;
    this.#options = options;
    this.#wallClockMs = options.wallClockMs ?? Date.now;
    this.#load = load;
  }

  /**
   * Writes the broker's key (a plain put, not create-only: a restarted broker replaces the key
   * of its previous, dying session, which then no longer deletes it). Broker ids must be
   * unique in a region.
   */
  static async register(store: MetadataStore, session: LeaseSession, options: BrokerRegistrationOptions, load: BrokerLoad = emptyLoad()): Promise<BrokerRegistration> {
    const intervalMs = requirePositive('loadReportIntervalMs', options.loadReportIntervalMs ?? LOAD_REPORT_INTERVAL_MS_DEFAULT);
    const registration = new BrokerRegistration(store, session, options, load);
    await registration.#write();
    registration.#timer = setInterval(() => {
      registration.#writing = registration.#writing.then(() => registration.#write()).catch((error: unknown) => {
        // The next report retries; a store that stays away ends the session instead.
        console.warn(`[cluster][${options.brokerId}] load report failed: ${(error as Error).message}`);
      });
    }, intervalMs);
    registration.#timer.unref();
    return registration;
  }

  info(): BrokerInfo {
    return { brokerId: this.#options.brokerId, grpcAddress: this.#options.grpcAddress, adminUrl: this.#options.adminUrl, load: this.#load, updatedAtMs: this.#wallClockMs() };
  }

  /** Replaces the load that the next report carries. */
  setLoad(load: BrokerLoad): void {
    this.#load = load;
  }

  /** Writes the current load now (the periodic report goes on). */
  reportNow(): Promise<void> {
    const written = this.#writing.then(() => this.#write());
    this.#writing = written.catch(() => {});
    return written;
  }

  /** Stops reporting; the key stays until the session's lease ends or is revoked. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  async #write(): Promise<void> {
    if (this.#closed || !this.#session.isValid()) return;
    await this.#store.put(MetadataKeys.broker(this.#options.brokerId), encodeJson(this.info()), { lease: this.#session.lease });
  }
}
