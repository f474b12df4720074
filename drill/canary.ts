// The drill's canary: in each of the tenant's regions, one client homed there (region
// failover, home first) with one producer and one consumer, so that both move together as
// an application's client would; and one observer per region that reads the region's whole
// log through a direct connection. For a planned failover the client homed in the tenant's
// home is made by AdmqClient.forTenant, which follows the tenant's home when it moves.
//
// - Producers send paced, uniquely named payloads and record every attempt, acked or not,
//   in a History, with the region whose node acked it (the client's current region: a
//   receipt only ever comes from the stream of the current region).
// - Consumers record every delivery (duplicates and order are judged from these) and ack it.
// - Observers are the drill's instrument, not clients under test: they bypass the client
//   fault injection, keep each region's log by offset with the time each entry was first
//   seen, and answer "does this region hold that entry" for the RPO snapshot and catch-up.
//
// Every loop stops at `deadlineMs` whatever happens, and every retry backs off.
import { AdmqClient, ErrorCode, type AdmqConsumer, type FailoverOptions, type Message, type Producer } from '../client/index.ts';
import type { History, StoredRecord } from '../multi-region-tests/history.ts';
import { RecordIndex, type TimelineEvent } from './report.ts';

export interface CanaryOptions {
  runId: string;
  topic: string;
  /** The tenant's regions the canary uses, home first; one producer and one consumer is homed in each. */
  regions: string[];
  /** Regions whose logs are read (the namespace's replication set). */
  observeRegions: string[];
  /** Where canary clients reach a region (through fault injection, if any). */
  clientAddress: (region: string) => string;
  /** Where observers reach a region directly. */
  grpcAddress: (region: string) => string;
  history: History;
  /** Messages per second, per producer. */
  ratePerProducer: number;
  messagesMaxPerProducer: number;
  /** Sends in flight per producer before the producer waits. */
  inflightMax: number;
  sendTimeoutMs: number;
  failover: FailoverOptions;
  /** Absolute time (ms) at which every loop stops, whatever happens. */
  deadlineMs: number;
  now: () => number;
  onEvent: (event: Omit<TimelineEvent, 'atMs'> & { atMs?: number }) => void;
  /** Make the client homed in `home` with AdmqClient.forTenant (it follows the tenant's home region). */
  followTenant?: { tenant: string; home: string; adminUrl: string };
}

export interface CanaryNames {
  client: string;
  producer: string;
  subscription: string;
  observer: string;
}

/** The names of the canary clients homed in (or observing) `region`. */
export function canaryNames(runId: string, region: string): CanaryNames {
  return { client: `client@${region}`, producer: `__drill-${runId}-p-${region}`, subscription: `__drill-${runId}-c-${region}`, observer: `__drill-${runId}-o-${region}` };
}

/** A failover client that prefers `home`, then the other regions in the tenant's order. */
function regionsFrom(home: string, regions: string[], address: (region: string) => string): Array<{ name: string; serviceUrl: string }> {
  return [home, ...regions.filter((r) => r !== home)].map((name) => ({ name, serviceUrl: address(name) }));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'ERROR';
}

const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 2000;

/** What a canary producer and a canary consumer share: a bounded loop and a retried creation. */
abstract class CanaryLoop {
  protected stopping = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly o: CanaryOptions,
    readonly home: string,
    readonly client: AdmqClient,
  ) {}

  start(): void {
    this.#loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.#loop;
  }

  /** Stops the loop without waiting; the shared client is closed by the Canary. */
  halt(): void {
    this.stopping = true;
  }

  protected live(): boolean {
    return !this.stopping && this.o.now() < this.o.deadlineMs;
  }

  protected abstract run(): Promise<void>;

  /** Calls `create` until it succeeds or the loop ends (undefined), backing off between failures. */
  protected async createWithRetry<T>(what: string, create: () => Promise<T>): Promise<T | undefined> {
    let waitMs = RETRY_INITIAL_MS;
    while (this.live()) {
      try {
        return await create();
      } catch (error) {
        this.o.onEvent({ kind: 'note', text: `${what} (${codeOf(error)}); retrying`, region: this.client.region });
        await sleep(waitMs);
        waitMs = Math.min(RETRY_MAX_MS, waitMs * 2);
      }
    }
    return undefined;
  }
}

class CanaryProducer extends CanaryLoop {
  readonly name: string;
  attempts = 0;
  acked = 0;
  failed = 0;
  readonly errors: Record<string, number> = {};
  #producer: Producer | undefined;

  constructor(o: CanaryOptions, home: string, client: AdmqClient) {
    super(o, home, client);
    this.name = canaryNames(o.runId, home).producer;
  }

  /** The producer, (re)created when needed; undefined once the canary stops. */
  async #ensure(): Promise<Producer | undefined> {
    this.#producer ??= (await this.createWithRetry(`${this.name}: cannot create the producer`, () =>
      this.client.createProducer({ topic: this.o.topic, producerName: this.name, sendTimeoutMs: this.o.sendTimeoutMs, maxPendingMessages: this.o.inflightMax * 2 }),
    )) as Producer | undefined;
    return this.#producer;
  }

  protected async run(): Promise<void> {
    const inflight = new Set<Promise<void>>();
    const startedMs = this.o.now();
    for (let i = 0; i < this.o.messagesMaxPerProducer && this.live(); i++) {
      const producer = await this.#ensure();
      if (!producer) break;
      this.#send(producer, `${this.name}#${i}`, inflight);
      while (inflight.size >= this.o.inflightMax && this.live()) await Promise.race([...inflight, sleep(100)]);
      // Paced, so that the sends span the whole drill instead of bursting.
      const dueMs = startedMs + ((i + 1) * 1000) / this.o.ratePerProducer;
      if (dueMs > this.o.now()) await sleep(Math.min(dueMs, this.o.deadlineMs) - this.o.now());
    }
    // Each send settles within sendTimeoutMs (the producer's own timer).
    await Promise.all(inflight);
    await this.#producer?.close().catch(() => {});
  }

  #send(producer: Producer, payload: string, inflight: Set<Promise<void>>): void {
    const o = this.o;
    const sequenceId = producer.lastSequenceId + 1;
    this.attempts++;
    const p = producer.send({ payload }).then(
      (id) => {
        this.acked++;
        const region = this.client.region;
        // A resend acked as a duplicate names the local offset of an entry whose origin may
        // be another region: it is identified by producer and sequence id instead.
        o.history.recordProduce({
          region,
          topic: o.topic,
          producer: this.name,
          sequenceId: id.sequenceId,
          payload,
          acked: true,
          originRegion: region,
          originPosition: id.duplicate ? -1 : id.offset,
          offset: id.offset,
          hlc: id.hlc,
          atMs: o.now(),
        });
      },
      (error: unknown) => {
        this.failed++;
        const code = codeOf(error);
        this.errors[code] = (this.errors[code] ?? 0) + 1;
        o.history.recordProduce({ region: this.client.region, topic: o.topic, producer: this.name, sequenceId, payload, acked: false, atMs: o.now() });
        // A producer that failed for good is made again (same name: it continues its sequence).
        if (code === ErrorCode.Closed && this.#producer === producer && !this.stopping) this.#producer = undefined;
      },
    );
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  }
}

class CanaryConsumer extends CanaryLoop {
  readonly subscription: string;
  deliveries = 0;
  readonly payloads = new Set<string>();
  #consumer: AdmqConsumer | undefined;

  constructor(o: CanaryOptions, home: string, client: AdmqClient) {
    super(o, home, client);
    this.subscription = canaryNames(o.runId, home).subscription;
  }

  async #ensure(): Promise<AdmqConsumer | undefined> {
    // Earliest: the topic is the drill's own, and a subscription must never start at "latest" after a failover.
    this.#consumer ??= await this.createWithRetry(`${this.subscription}: cannot subscribe`, () =>
      this.client.subscribe({ topic: this.o.topic, subscription: this.subscription, subscriptionType: 'exclusive', initialPosition: 'earliest' }),
    );
    return this.#consumer;
  }

  protected async run(): Promise<void> {
    while (this.live()) {
      const consumer = await this.#ensure();
      if (!consumer) break;
      let message: Message;
      try {
        message = await consumer.receive(250);
      } catch (error) {
        const code = codeOf(error);
        if (code === ErrorCode.Timeout) continue;
        if (code === ErrorCode.Closed || code === ErrorCode.ConsumerBusy) {
          if (this.#consumer === consumer) this.#consumer = undefined;
          await consumer.close().catch(() => {});
        }
        await sleep(100);
        continue;
      }
      this.deliveries++;
      const payload = message.payload.toString();
      this.payloads.add(payload);
      this.o.history.recordConsume({
        region: this.client.region,
        topic: this.o.topic,
        subscription: this.subscription,
        offset: message.offset,
        originRegion: message.originRegion,
        originPosition: message.originPosition,
        producer: message.producerName,
        sequenceId: message.sequenceId,
        payload,
        hlc: message.hlc,
        atMs: this.o.now(),
      });
      consumer.ack(message);
    }
    await this.#consumer?.close().catch(() => {});
  }
}

/** One region's log, read from offset 0 through a subscription of the drill's own. */
export class Observer {
  readonly region: string;
  readonly subscription: string;
  readonly client: AdmqClient;
  /** Everything read so far, by global id and by producer sequence. */
  readonly index = new RecordIndex();
  readonly #records: Array<StoredRecord | undefined> = [];
  /** When each offset was first read. */
  readonly arrivedAtMs = new Map<number, number>();
  #contiguous = 0;
  #stopping = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly o: CanaryOptions,
    region: string,
  ) {
    this.region = region;
    this.subscription = canaryNames(o.runId, region).observer;
    this.client = new AdmqClient({ serviceUrl: o.grpcAddress(region), backoffInitialMs: 50, backoffMaxMs: 500 });
  }

  /** Offsets 0 … contiguous-1 have all been read. */
  get contiguous(): number {
    return this.#contiguous;
  }

  /** The log as read, in offset order, up to the first gap. */
  log(): StoredRecord[] {
    return this.#records.slice(0, this.#contiguous) as StoredRecord[];
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#loop;
  }

  async #run(): Promise<void> {
    let consumer: AdmqConsumer | undefined;
    let waitMs = RETRY_INITIAL_MS;
    while (!this.#stopping && this.o.now() < this.o.deadlineMs) {
      if (!consumer) {
        try {
          consumer = await this.client.subscribe({ topic: this.o.topic, subscription: this.subscription, initialPosition: 'earliest', receiverQueueSize: 5000 });
          waitMs = RETRY_INITIAL_MS;
        } catch {
          // The region is down (an outage under drill): try again, backing off.
          await sleep(waitMs);
          waitMs = Math.min(RETRY_MAX_MS, waitMs * 2);
          continue;
        }
      }
      try {
        const message = await consumer.receive(250);
        this.#add(message);
        consumer.ack(message);
      } catch (error) {
        const code = codeOf(error);
        if (code === ErrorCode.Timeout) continue;
        if (code === ErrorCode.Closed || code === ErrorCode.ConsumerBusy) {
          await consumer.close().catch(() => {});
          consumer = undefined;
        }
        await sleep(100);
      }
    }
    await consumer?.close().catch(() => {});
  }

  #add(m: Message): void {
    // Redeliveries after a reconnect are the same offsets again.
    if (this.#records[m.offset] !== undefined) return;
    const record: StoredRecord = {
      region: this.region,
      topic: this.o.topic,
      offset: m.offset,
      originRegion: m.originRegion,
      originPosition: m.originPosition,
      producer: m.producerName,
      sequenceId: m.sequenceId,
      payload: m.payload.toString(),
      hlc: m.hlc,
    };
    this.#records[m.offset] = record;
    this.arrivedAtMs.set(m.offset, this.o.now());
    this.index.add(record);
    while (this.#records[this.#contiguous] !== undefined) this.#contiguous++;
  }

  async close(): Promise<void> {
    this.#stopping = true;
    await this.client.close();
  }
}

export interface CanaryStats {
  attempts: number;
  acked: number;
  failed: number;
  deliveries: number;
  /** Each canary client's current region, by its name. */
  regions: Record<string, string>;
}

export class Canary {
  /** The client homed in each region, shared by that region's producer and consumer. */
  readonly clients: Map<string, AdmqClient>;
  readonly producers: CanaryProducer[];
  readonly consumers: CanaryConsumer[];
  readonly observers: Map<string, Observer>;
  readonly #o: CanaryOptions;
  #watch: NodeJS.Timeout | undefined;
  readonly #lastRegion = new Map<string, string>();
  #closing: Promise<void> | undefined;

  private constructor(options: CanaryOptions, clients: Map<string, AdmqClient>) {
    this.#o = options;
    this.clients = clients;
    this.producers = options.regions.map((r) => new CanaryProducer(options, r, clients.get(r) as AdmqClient));
    this.consumers = options.regions.map((r) => new CanaryConsumer(options, r, clients.get(r) as AdmqClient));
    this.observers = new Map(options.observeRegions.map((r) => [r, new Observer(options, r)]));
  }

  /** Makes the clients (nothing runs until start()). */
  static async create(options: CanaryOptions): Promise<Canary> {
    if (options.regions.length === 0) throw new Error('canary: no regions');
    const clients = new Map<string, AdmqClient>();
    const settings = { failover: options.failover, backoffInitialMs: 50, backoffMaxMs: 1000 };
    try {
      for (const home of options.regions) {
        const follow = options.followTenant?.home === home ? options.followTenant : undefined;
        clients.set(home, follow ? await AdmqClient.forTenant(follow.adminUrl, follow.tenant, settings) : new AdmqClient({ regions: regionsFrom(home, options.regions, options.clientAddress), ...settings }));
      }
    } catch (error) {
      await Promise.allSettled([...clients.values()].map((c) => c.close()));
      throw error;
    }
    return new Canary(options, clients);
  }

  /** Starts every loop; they run until stopped or the deadline. */
  start(): void {
    for (const observer of this.observers.values()) observer.start();
    for (const consumer of this.consumers) consumer.start();
    for (const producer of this.producers) producer.start();
    for (const client of this.#clients()) this.#lastRegion.set(client.name, client.client.region);
    // Region switches of the failover clients, for the timeline.
    this.#watch = setInterval(() => {
      for (const { name, client } of this.#clients()) {
        const before = this.#lastRegion.get(name);
        if (before !== client.region) {
          this.#lastRegion.set(name, client.region);
          this.#o.onEvent({ kind: 'switch', text: `${name} moved ${before} → ${client.region}`, region: client.region });
        }
      }
    }, 100);
    this.#watch.unref();
  }

  #clients(): Array<{ name: string; client: AdmqClient }> {
    return [...this.clients].map(([home, client]) => ({ name: canaryNames(this.#o.runId, home).client, client }));
  }

  producerHomes(): Map<string, string> {
    return new Map(this.producers.map((p) => [p.name, p.home]));
  }

  consumerHomes(): Map<string, string> {
    return new Map(this.consumers.map((c) => [c.subscription, c.home]));
  }

  producerErrors(): Map<string, Record<string, number>> {
    return new Map(this.producers.map((p) => [p.name, { ...p.errors }]));
  }

  stats(): CanaryStats {
    const regions: Record<string, string> = {};
    for (const { name, client } of this.#clients()) regions[name] = client.region;
    return {
      attempts: this.producers.reduce((n, p) => n + p.attempts, 0),
      acked: this.producers.reduce((n, p) => n + p.acked, 0),
      failed: this.producers.reduce((n, p) => n + p.failed, 0),
      deliveries: this.consumers.reduce((n, c) => n + c.deliveries, 0),
      regions,
    };
  }

  /** Stops sending and waits until every send has settled (each within sendTimeoutMs). */
  async stopProducers(): Promise<void> {
    await Promise.all(this.producers.map((p) => p.stop()));
  }

  async stopConsumers(): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.stop()));
  }

  async stopObservers(): Promise<void> {
    await Promise.all([...this.observers.values()].map((o) => o.stop()));
  }

  /** Stops everything and closes every client. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#watch) clearInterval(this.#watch);
      for (const x of [...this.producers, ...this.consumers]) x.halt();
      await Promise.allSettled([...[...this.clients.values()].map((c) => c.close()), ...[...this.observers.values()].map((o) => o.close())]);
    })();
    return this.#closing;
  }
}
