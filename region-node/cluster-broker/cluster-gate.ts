// Which topics a broker of a regional cluster serves (DESIGN §4). A topic is served by the
// broker that holds its bundle's ownership lease; before serving it, that broker takes the
// topic's ledgers over and rebuilds its local log from them, and from then on every
// commit of the topic reaches its ledger on a quorum of storage nodes before it is
// acknowledged. A broker asked for a topic it does not own answers ADMQ_ERR_TOPIC_MOVED
// naming the owner, which is how clients find it through any broker.
import { ErrorCode } from '../../proto/index.ts';
import type { Broker, TopicGate } from '../broker/broker.ts';
import { AdmqError } from '../errors.ts';
import type { MetadataStore } from '../metadata-store/index.ts';
import type { TopicName } from '../names.ts';
import { TopicLedgers, type LedgerAccess } from './topic-ledgers.ts';

/** What the gate needs of the cluster's ownership (the broker coordinator provides it). */
export interface TopicOwnership {
  readonly brokerId: string;
  /** Which broker serves the topic; has it assigned first if nobody does. */
  lookup(topic: string): Promise<{ brokerId: string; grpcAddress: string }>;
  /** Holds the lease of the topic's bundle here (acquires it if assigned here), or throws. */
  ensureOwned(topic: string): Promise<void>;
  /** Whether this broker holds the topic's bundle lease now (and is sure nobody else can). */
  owns(topic: string): boolean;
  /** The version of this broker's owner key of the topic's bundle (changes whenever ownership is lost and taken again). */
  epochOf(topic: string): number | undefined;
  bundleOf(topic: string): string;
}

interface Served {
  name: TopicName;
  bundle: string;
  ledgers: TopicLedgers;
  topicId: number;
}

/** ADMQ_ERR_TOPIC_MOVED; names the serving broker when known (its id too, for replication redirects). */
export class TopicMovedError extends AdmqError {
  /**
   * The serving broker's id, as the topology lists it: a replication receiver sends it back
   * (replicator/receiver.ts reads `owner`), and the link reconnects to that broker.
   */
  readonly owner: string | undefined;
  /** The topic that is served elsewhere, as given. */
  readonly topic: string;
  constructor(topic: string, owner?: { brokerId: string; grpcAddress: string }) {
    super(ErrorCode.TopicMoved, owner ? `topic ${topic} is served by another broker: owner=${owner.grpcAddress}` : `topic ${topic} is not served by this broker now; look it up again`);
    this.owner = owner?.brokerId;
    this.topic = topic;
  }
}

export function topicMoved(topic: string, owner?: { brokerId: string; grpcAddress: string }): AdmqError {
  return new TopicMovedError(topic, owner);
}

export class ClusterGate implements TopicGate {
  readonly #served = new Map<string, Served>();
  readonly #byTopicId = new Map<number, Served>();
  readonly #preparing = new Map<string, Promise<void>>();
  /** Per topic, how many times this broker started serving it (replication links restart on a change). */
  readonly #generations = new Map<string, number>();
  readonly #servingListeners = new Set<(topic: string, serving: boolean) => void>();
  #closed = false;

  constructor(
    private readonly broker: Broker,
    private readonly ownership: TopicOwnership,
    private readonly metadata: MetadataStore,
    private readonly ledgers: LedgerAccess,
    private readonly log: (line: string) => void,
  ) {
    // Cursors live in the metadata store, where the next owner finds them.
    broker.store.onCursorSaved = (topicId, subscription, value) => this.#byTopicId.get(topicId)?.ledgers.saveCursor(subscription, value);
    // A topic deleted through another broker: stop serving it here too.
    this.#stopWatchingCatalog = broker.metadata.catalog.onChange((change) => {
      if (change.type !== 'remove' || change.key[0] !== 'topic') return;
      const full = `persistent://${change.key.slice(1).join('/')}`;
      if (this.#served.has(full)) void this.unload(full, new AdmqError(ErrorCode.TopicNotFound, `topic ${full} was deleted`), false);
    });
  }

  readonly #stopWatchingCatalog: () => void;

  prepare(name: TopicName): Promise<void> {
    if (this.served(name)) return Promise.resolve();
    let pending = this.#preparing.get(name.full);
    if (!pending) {
      pending = this.#take(name)
        .catch((error: unknown) => {
          // The cluster could not settle who serves the topic right now (lookup timed out,
          // a lease is changing hands, too few storage nodes): the client should try again.
          if (error instanceof AdmqError) throw error;
          const code = (error as { code?: string }).code ?? 'unknown';
          throw new AdmqError(ErrorCode.TopicMoved, `topic ${name.full} cannot be served now (${code}: ${(error as Error).message}); look it up again`, { cause: error });
        })
        .finally(() => this.#preparing.delete(name.full));
      this.#preparing.set(name.full, pending);
    }
    return pending;
  }

  async #take(name: TopicName): Promise<void> {
    if (this.#closed) throw new AdmqError(ErrorCode.ShuttingDown, 'the broker is shutting down');
    const record = this.broker.metadata.requireTopic(name);
    if (record.partitions > 0) {
      throw new AdmqError(ErrorCode.BadRequest, `topic "${name.full}" is partitioned (${record.partitions} partitions); address a partition such as ${name.full}-partition-0`);
    }
    const owner = await this.ownership.lookup(name.full);
    if (owner.brokerId !== this.ownership.brokerId) throw topicMoved(name.full, owner);
    await this.ownership.ensureOwned(name.full);
    // Ownership must hold, unbroken, from before the takeover until the topic is served: an
    // epoch that changed means another broker may have owned (and written) it meanwhile.
    const epoch = this.ownership.epochOf(name.full);
    const stillOwned = (): boolean => this.ownership.owns(name.full) && this.ownership.epochOf(name.full) === epoch && !this.#closed;
    const started = Date.now();
    const ledgers = await TopicLedgers.acquire(name.full, this.metadata, this.ledgers, this.ownership.brokerId);
    try {
      if (!stillOwned()) throw topicMoved(name.full);
      const log = await this.broker.store.restoreLog(record.id, name.full, ledgers.chunks(), ledgers.cursors());
      if (!stillOwned()) throw topicMoved(name.full);
      const served: Served = { name, bundle: this.ownership.bundleOf(name.full), ledgers, topicId: record.id };
      log.sink = {
        persist: (chunk) => ledgers.persist(chunk),
        // The ledger was fenced (another broker took the topic) or lost its quorum.
        failed: (error) => this.unload(name.full, error, false),
      };
      this.#served.set(name.full, served);
      this.#byTopicId.set(record.id, served);
      this.#generations.set(name.full, (this.#generations.get(name.full) ?? 0) + 1);
      this.broker.topic(name);
      this.#announce(name.full, true);
      this.log(`[cluster] ${name.full}: serving from offset ${log.firstOffset} to ${log.nextOffset} (taken over in ${Date.now() - started} ms)`);
    } catch (error) {
      await ledgers.close(false);
      throw error;
    }
  }

  served(name: TopicName): boolean {
    return this.#served.has(name.full) && this.ownership.owns(name.full);
  }

  notServed(name: TopicName): AdmqError {
    return topicMoved(name.full);
  }

  async deleted(name: TopicName): Promise<void> {
    const served = this.#served.get(name.full);
    if (served) {
      this.#served.delete(name.full);
      this.#byTopicId.delete(served.topicId);
      this.#announce(name.full, false);
      await served.ledgers.close(true);
    }
    // A topic created again under this name starts with no ledgers and no cursors.
    await TopicLedgers.remove(name.full, this.metadata, this.ledgers);
  }

  /** How many times this broker started serving the topic (0: never). */
  generation(topic: string): number {
    return this.#generations.get(topic) ?? 0;
  }

  /**
   * Called when this broker starts or stops serving a topic. A stop is announced before the
   * topic's log is unloaded, so that what reads the log (replication links) can stop first.
   */
  onServingChange(listener: (topic: string, serving: boolean) => void): () => void {
    this.#servingListeners.add(listener);
    return () => this.#servingListeners.delete(listener);
  }

  #announce(topic: string, serving: boolean): void {
    for (const listener of this.#servingListeners) {
      try {
        listener(topic, serving);
      } catch (error) {
        this.log(`[cluster] ${topic}: a serving listener failed: ${(error as Error).message}`);
      }
    }
  }

  /** Topics served now (for load reports and tests). */
  servedTopics(): string[] {
    return [...this.#served.keys()];
  }

  /**
   * Stops serving a topic: its streams end with `reason` and the log refuses what is still
   * queued. With `release` (a planned move) the ledger is closed and cursors written, so the
   * next owner starts at once; without (ownership lost), nothing more is written.
   */
  unload(topic: string, reason: AdmqError, release: boolean): Promise<void> {
    const served = this.#served.get(topic);
    if (!served) return Promise.resolve();
    this.#served.delete(topic);
    this.#byTopicId.delete(served.topicId);
    this.#announce(topic, false);
    this.broker.unloadTopic(topic, reason);
    this.log(`[cluster] ${topic}: no longer served here (${reason.message})`);
    return served.ledgers.close(release);
  }

  /** Unloads every topic of a bundle (moved by the load manager, or its lease lost). */
  async unloadBundle(bundle: string, release: boolean): Promise<void> {
    const topics = [...this.#served.values()].filter((s) => s.bundle === bundle).map((s) => s.name.full);
    await Promise.all(topics.map((topic) => this.unload(topic, topicMoved(topic), release)));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopWatchingCatalog();
    await Promise.allSettled([...this.#preparing.values()]);
    await Promise.all([...this.#served.keys()].map((topic) => this.unload(topic, new AdmqError(ErrorCode.ShuttingDown, 'the broker is shutting down'), true)));
  }
}
