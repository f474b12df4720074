// AdmqClient: one connection to a region node, from which producers and consumers are made.
import * as grpc from '@grpc/grpc-js';
import type { Tracer } from '@opentelemetry/api';
import { ErrorCode } from '../proto/index.ts';
import { AdminClient } from './admin.ts';
import { createStub, topicMetadata, type BrokerStub } from './connection.ts';
import { RegionSelector, type FailoverOptions, type RegionEndpoint } from './regions.ts';
import { Consumer, type AdmqConsumer, type ConsumerOptions } from './consumer.ts';
import { AdmqClientError } from './errors.ts';
import { PartitionedConsumer, PartitionedProducer } from './partitioned.ts';
import { Producer, nonNegative, positive, type ProducerOptions } from './producer.ts';

export interface ClientOptions {
  /**
   * An OpenTelemetry tracer: every send gets a span whose context travels in the message's
   * `traceparent` property, and every received traced message a receive span in that trace.
   */
  tracer?: Tracer;
  /** host:port of a region node's gRPC API. Default 127.0.0.1:6650. */
  serviceUrl?: string;
  /** Transport credentials; default plaintext (the node's default listener). */
  credentials?: grpc.ChannelCredentials;
  /** Largest message the client accepts to send, in bytes. Default 5 MiB (the node's default). */
  messageBytesMax?: number;
  /** First reconnect delay, in ms. Default 100. */
  backoffInitialMs?: number;
  /** Longest reconnect delay, in ms. Default 60,000. */
  backoffMaxMs?: number;
  /** Timeout of lookups and seeks, in ms. Default 30,000. */
  operationTimeoutMs?: number;
  /**
   * A tenant's regions, the home region first (list only regions the tenant may use):
   * the client talks to the first one that is up and fails over to the next. Replaces
   * `serviceUrl`.
   */
  regions?: RegionEndpoint[];
  /** Failover timing (with `regions`). */
  failover?: FailoverOptions;
}

export type AnyProducer = Producer | PartitionedProducer;

export class AdmqClient {
  readonly serviceUrl: string;
  readonly #regions: RegionSelector;
  readonly #messageBytesMax: number;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #operationTimeoutMs: number;
  readonly #producers = new Set<AnyProducer>();
  readonly #consumers = new Set<AdmqConsumer>();
  #closed = false;
  #onTenantFenced: (() => void) | undefined;
  readonly #tracer: Tracer | undefined;
  #placementTimer: NodeJS.Timeout | undefined;
  /** Regional cluster: the broker that owns each topic, as the brokers said (host:port). */
  readonly #owners = new Map<string, string>();
  /** Per topic, how many times no broker could name its owner: which broker of the service URL to ask next. */
  readonly #bootstrapTurn = new Map<string, number>();
  /** Channels to owning brokers, by address. */
  readonly #ownerStubs = new Map<string, BrokerStub>();
  readonly #credentials: grpc.ChannelCredentials;

  constructor(options: ClientOptions = {}) {
    this.serviceUrl = options.serviceUrl ?? options.regions?.[0]?.serviceUrl ?? '127.0.0.1:6650';
    this.#messageBytesMax = positive('messageBytesMax', options.messageBytesMax ?? 5 * 1024 * 1024);
    this.#backoffInitialMs = positive('backoffInitialMs', options.backoffInitialMs ?? 100);
    this.#backoffMaxMs = positive('backoffMaxMs', options.backoffMaxMs ?? 60_000);
    this.#operationTimeoutMs = nonNegative('operationTimeoutMs', options.operationTimeoutMs ?? 30_000);
    this.#tracer = options.tracer;
    if (this.#backoffMaxMs < this.#backoffInitialMs) {
      throw new AdmqClientError(ErrorCode.Config, `backoffMaxMs (${this.#backoffMaxMs}) must be at least backoffInitialMs (${this.#backoffInitialMs})`);
    }
    const regions = options.regions ?? [{ name: 'default', serviceUrl: this.serviceUrl }];
    if (options.regions && options.serviceUrl) throw new AdmqClientError(ErrorCode.Config, 'give either serviceUrl or regions, not both');
    this.#credentials = options.credentials ?? grpc.credentials.createInsecure();
    this.#regions = new RegionSelector(regions, this.#credentials, this.#messageBytesMax, options.failover);
    // Moving region: every producer and consumer reconnects through the new region's channel.
    this.#regions.onSwitch((_region, reason) => {
      // Owners were brokers of the old region.
      this.#owners.clear();
      this.#bootstrapTurn.clear();
      // Out of a live region, producers let their in-flight sends be acked there first.
      for (const p of this.#producers) {
        for (const part of p instanceof PartitionedProducer ? p.partitions : [p]) {
          if (reason === 'preference') void part.moveGracefully();
          else part.reconnect();
        }
      }
      for (const c of this.#consumers) for (const part of c instanceof PartitionedConsumer ? c.partitions : [c as Consumer]) part.reconnect();
    });
  }

  /**
   * A client for one tenant that learns the tenant's regions (home first, only those it
   * may use) from any region's admin API, and fails over between them.
   */
  static async forTenant(adminUrl: string, tenant: string, options: Omit<ClientOptions, 'serviceUrl' | 'regions'> & { placementRefreshMs?: number } = {}): Promise<AdmqClient> {
    const regions = await fetchTenantRegions([adminUrl], tenant);
    const client = new AdmqClient({ ...options, regions: regions.map((r) => ({ name: r.name, serviceUrl: r.serviceUrl })) });
    client.#followTenant(tenant, [adminUrl, ...regions.map((r) => r.adminUrl).filter((u): u is string => typeof u === 'string' && u !== adminUrl)], options.placementRefreshMs ?? 30_000);
    return client;
  }

  /**
   * Keeps the preference order on the tenant's current home region: looked up every
   * `refreshMs`, and at once (at most every 200 ms) while a node refuses the tenant's
   * writes for a planned failover, so producers follow the move without a restart.
   */
  #followTenant(tenant: string, adminUrls: string[], refreshMs: number): void {
    let inFlight = false;
    let lastMs = 0;
    let later: NodeJS.Timeout | undefined;
    const refresh = (): void => {
      if (this.#closed) return;
      // One lookup at a time, at most every 200 ms; a request meanwhile runs once, after it.
      const waitMs = inFlight ? 200 : lastMs + 200 - Date.now();
      if (waitMs > 0) {
        later ??= setTimeout(() => {
          later = undefined;
          refresh();
        }, waitMs).unref();
        return;
      }
      inFlight = true;
      lastMs = Date.now();
      fetchTenantRegions(adminUrls, tenant)
        .then((regions) => this.#regions.setPreference(regions.map((r) => r.name)))
        .catch(() => {}) // every region's admin API unreachable: keep the order we have
        .finally(() => {
          inFlight = false;
        });
    };
    this.#onTenantFenced = refresh;
    this.#placementTimer = setInterval(refresh, refreshMs);
    this.#placementTimer.unref();
  }

  /** The region this client talks to now (with `regions`; "default" otherwise). */
  get region(): string {
    return this.#regions.current;
  }

  get #stub(): BrokerStub {
    return this.#regions.stub();
  }

  #context() {
    const regions = this.#regions;
    return {
      get stub(): BrokerStub {
        return regions.stub();
      },
      messageBytesMax: this.#messageBytesMax,
      backoffInitialMs: this.#backoffInitialMs,
      backoffMaxMs: this.#backoffMaxMs,
      operationTimeoutMs: this.#operationTimeoutMs,
      onTenantFenced: () => this.#onTenantFenced?.(),
      stubFor: (topic: string) => this.#ownerStub(topic),
      topicMoved: (topic: string, owner: string | undefined) => {
        if (owner) {
          this.#owners.set(topic, owner);
          return;
        }
        // No owner named (the broker could not tell, or the owner we had is gone): ask the
        // next broker of the service URL, not the same one again.
        this.#owners.delete(topic);
        this.#bootstrapTurn.set(topic, (this.#bootstrapTurn.get(topic) ?? 0) + 1);
      },
      ...(this.#tracer && { tracer: this.#tracer }),
    };
  }

  /**
   * Regional cluster: a topic is served by the broker that owns it. Any broker answers an
   * open for a topic it does not own with ADMQ_ERR_TOPIC_MOVED naming the owner; the
   * client then talks to that broker for the topic (one channel per broker).
   */
  #ownerStub(topic: string): BrokerStub {
    let owner = this.#owners.get(topic);
    if (!owner) {
      const turn = this.#bootstrapTurn.get(topic) ?? 0;
      const brokers = this.#regions.serviceUrl.replace(/^ipv4:/, '').split(',');
      if (turn === 0 || brokers.length < 2) return this.#regions.stub();
      owner = brokers[turn % brokers.length] as string;
    }
    let stub = this.#ownerStubs.get(owner);
    if (!stub) {
      stub = createStub(owner, this.#credentials, this.#messageBytesMax);
      this.#ownerStubs.set(owner, stub);
    }
    return stub;
  }

  #assertOpen(): void {
    if (this.#closed) throw new AdmqClientError(ErrorCode.Closed, 'client is closed');
  }

  /** Number of partitions of a topic (0: not partitioned). */
  async partitions(topic: string): Promise<number> {
    this.#assertOpen();
    return (await topicMetadata(this.#stub, topic, this.#operationTimeoutMs)).partitions;
  }

  async createProducer(options: ProducerOptions): Promise<AnyProducer> {
    this.#assertOpen();
    const meta = await topicMetadata(this.#stub, options.topic, this.#operationTimeoutMs);
    let producer: AnyProducer;
    if (meta.partitions === 0) {
      producer = await new Producer(this.#context(), { ...options, topic: meta.topic }).open();
    } else {
      const parts = await Promise.all(
        Array.from({ length: meta.partitions }, (_, i) =>
          new Producer(this.#context(), { ...options, topic: `${meta.topic}-partition-${i}` }).open(),
        ),
      );
      producer = new PartitionedProducer(meta.topic, parts);
    }
    this.#producers.add(producer);
    return producer;
  }

  async subscribe(options: ConsumerOptions): Promise<AdmqConsumer> {
    this.#assertOpen();
    const meta = await topicMetadata(this.#stub, options.topic, this.#operationTimeoutMs);
    let consumer: AdmqConsumer;
    if (meta.partitions === 0) {
      consumer = await new Consumer(this.#context(), { ...options, topic: meta.topic }).open();
    } else {
      const parts = await Promise.all(
        Array.from({ length: meta.partitions }, (_, i) =>
          new Consumer(this.#context(), { ...options, topic: `${meta.topic}-partition-${i}` }).open(),
        ),
      );
      consumer = new PartitionedConsumer(meta.topic, parts);
    }
    this.#consumers.add(consumer);
    return consumer;
  }

  /** Closes every producer (after their pending sends) and consumer, then the channel. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#placementTimer) clearInterval(this.#placementTimer);
    await Promise.allSettled([...this.#producers].map((p) => p.close()));
    await Promise.allSettled([...this.#consumers].map((c) => c.close()));
    this.#regions.close();
    for (const stub of this.#ownerStubs.values()) stub.close();
  }
}

/** A tenant's regions, home first, from the first of `adminUrls` that answers. */
async function fetchTenantRegions(adminUrls: readonly string[], tenant: string): Promise<Array<RegionEndpoint & { adminUrl?: string; home?: boolean }>> {
  let last: unknown;
  for (const url of adminUrls) {
    try {
      return await new AdminClient(url).call<Array<RegionEndpoint & { adminUrl?: string; home?: boolean }>>('GET', `/tenants/${encodeURIComponent(tenant)}/regions`);
    } catch (error) {
      last = error;
    }
  }
  throw last;
}
