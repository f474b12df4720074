// The broker of a standalone region node: resolves topic names to loaded topics and
// carries out the admin operations that change them.
import { DEFAULT_CONFLICT_POLICY_SPEC, createConflictPolicy, encodeConflictRecord, type ConflictPolicy, type ConflictRecord } from '../../conflict/index.ts';
import { ErrorCode } from '../../proto/index.ts';
import { AdmqError } from '../errors.ts';
import { parseTopicName, partitionName, type TopicName } from '../names.ts';
import type { LogStore } from '../storage/log-store.ts';
import { KeyedTable, type TableRow } from './keyed-table.ts';
import type { Catalog } from './catalog.ts';
import { MetadataManager, type TopicRecord } from './metadata.ts';
import type { SubscriptionDeps } from './subscription.ts';
import { Topic, type TopicStats } from './topic.ts';

/** Each namespace's conflict feed: a topic of conflict records (conflict/conflict-record.ts). */
export const CONFLICT_FEED_TOPIC = '__conflicts';

export interface BrokerOptions {
  messageBytesMax: number;
  replayEntriesMax: number;
  dispatchBatchMax: number;
  negativeAckRedeliveryDelayMs: number;
  nowMs: () => number;
  /** Where tenants, namespaces and topics are kept (default: the node's own LMDB). */
  catalog?: Catalog;
}

/**
 * Regional cluster: which topics this broker may serve. `prepare` resolves once the topic
 * is owned here and its log restored from its ledgers (or throws ADMQ_ERR_TOPIC_MOVED
 * naming the owner); `served` says whether a loaded topic is still owned.
 */
export interface TopicGate {
  prepare(name: TopicName): Promise<void>;
  served(name: TopicName): boolean;
  /** The error for a topic not served here (names the owner when known). */
  notServed(name: TopicName): AdmqError;
  /** The topic was deleted: forget it and remove its ledgers and cursors from the cluster. */
  deleted(name: TopicName): Promise<void>;
}

export class Broker {
  readonly metadata: MetadataManager;
  readonly #topics = new Map<string, Topic>();
  readonly #deps: SubscriptionDeps & { messageBytesMax: number };
  #conflictPolicy: (namespace: string) => ConflictPolicy;
  /** Conflict records are appended one after another per namespace. */
  readonly #feedChains = new Map<string, Promise<void>>();
  #writeGuard: ((tenant: string, namespace: string) => void) | undefined;
  #gate: TopicGate | undefined;

  constructor(
    readonly store: LogStore,
    readonly options: BrokerOptions,
  ) {
    this.metadata = new MetadataManager(store, options.nowMs, options.catalog);
    this.#deps = {
      store,
      nowMs: options.nowMs,
      replayEntriesMax: options.replayEntriesMax,
      dispatchBatchMax: options.dispatchBatchMax,
      defaultNegativeAckDelayMs: options.negativeAckRedeliveryDelayMs,
      messageBytesMax: options.messageBytesMax,
      // Standalone, a topic's only region is this one.
      hlcReleaseFrontier: () => store.localWatermark(),
    };
    const lww = createConflictPolicy(DEFAULT_CONFLICT_POLICY_SPEC);
    this.#conflictPolicy = () => lww;
  }

  /** In a topology: each namespace's conflict policy for keyed topics (default last-writer-wins). */
  setConflictPolicies(policyOf: (namespace: string) => ConflictPolicy): void {
    this.#conflictPolicy = policyOf;
  }

  /** The resolved value of every key of a keyed topic (all partitions for a partitioned one). */
  table(full: string): TableRow[] {
    const name = parseTopicName(full);
    const record = this.metadata.requireTopic(name);
    if (!record.keyed) throw new AdmqError(ErrorCode.BadRequest, `topic "${name.full}" is not keyed; create it with keyed: true`);
    const names = record.partitions > 0 ? Array.from({ length: record.partitions }, (_, i) => partitionName(name, i)) : [name];
    return names.flatMap((n) => this.topic(n).table?.rows() ?? []).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  #recordConflict(name: TopicName, record: ConflictRecord): void {
    const namespace = `${name.tenant}/${name.namespace}`;
    const feed = parseTopicName(`${namespace}/${CONFLICT_FEED_TOPIC}`);
    const previous = this.#feedChains.get(namespace) ?? Promise.resolve();
    const next = previous.then(async () => {
      if (!this.metadata.getTopic(feed.full)) {
        await this.metadata.createTopic(feed, 0).catch((error: AdmqError) => {
          if (error.code !== ErrorCode.AlreadyExists) throw error;
        });
      }
      const topic = this.topic(feed);
      const producerName = `${CONFLICT_FEED_TOPIC}-${this.region}`;
      await this.store.append(topic.log, [
        { producerName, sequenceId: topic.lastSequenceId(producerName) + 1, key: record.pairId, properties: {}, payload: encodeConflictRecord(record), eventTimeMs: 0 },
      ]);
    });
    // A record that cannot be written is reported, not thrown at the writer whose entry caused it.
    this.#feedChains.set(
      namespace,
      next.catch((error: Error) => console.error(`[${feed.full}] conflict record ${record.pairId} not written: ${error.message}`)),
    );
  }

  /** Regional cluster: topics are served only where owned (see TopicGate). */
  setTopicGate(gate: TopicGate): void {
    this.#gate = gate;
  }

  /**
   * Makes the topic servable here: standalone it is always; in a cluster it waits for
   * ownership and the log's restore, or throws ADMQ_ERR_TOPIC_MOVED. Call before `topic()`
   * on every path a client opens.
   */
  /** Whether `prepareTopic` has work to do (a cluster broker not serving the topic yet). */
  needsPreparing(name: TopicName): boolean {
    if (this.#gate === undefined || this.#topics.has(name.full)) return false;
    // A partitioned topic's parent has no log: topic() refuses it with a typed error.
    return (this.metadata.getTopic(name.full)?.partitions ?? 0) === 0;
  }

  async prepareTopic(name: TopicName): Promise<void> {
    if (this.#gate) await this.#gate.prepare(name);
  }

  /**
   * Regional cluster: stops serving a topic this broker no longer owns. Its streams end
   * with `reason` (clients look the owner up again); its log leaves memory and refuses
   * writes still queued.
   */
  unloadTopic(full: string, reason: AdmqError): void {
    const topic = this.#topics.get(full);
    if (!topic) return;
    this.#topics.delete(full);
    this.store.forgetLog(topic.log, reason.message);
    topic.close(reason);
  }

  /** In a topology: refuses local writes where placement does not allow them (fences, residency). */
  setWriteGuard(guard: (tenant: string, namespace: string) => void): void {
    this.#writeGuard = guard;
  }

  /** Throws the typed error when local writes to the topic are refused here now. */
  assertWritable(name: TopicName): void {
    this.#writeGuard?.(name.tenant, name.namespace);
  }

  /** In a topology: HLC-ordered subscriptions release up to the replication set's lowest watermark. */
  setHlcReleaseFrontier(frontier: (topic: string) => bigint | undefined): void {
    this.#deps.hlcReleaseFrontier = frontier;
  }

  get region(): string {
    return this.store.region;
  }

  /** Looks up a non-partitioned topic (or one partition) and loads its log. */
  topic(nameOrFull: string | TopicName): Topic {
    const name = typeof nameOrFull === 'string' ? parseTopicName(nameOrFull) : nameOrFull;
    const loaded = this.#topics.get(name.full);
    if (loaded) return loaded;
    const record = this.metadata.requireTopic(name);
    if (this.#gate && record.partitions === 0 && !this.#gate.served(name)) throw this.#gate.notServed(name);
    if (record.partitions > 0) {
      throw new AdmqError(
        ErrorCode.BadRequest,
        `topic "${name.full}" is partitioned (${record.partitions} partitions); address a partition such as ${name.full}-partition-0`,
      );
    }
    const log = this.store.openLog(record.id, name.full);
    const table = record.keyed
      ? new KeyedTable(
          name.full,
          this.region,
          () => this.#conflictPolicy(`${name.tenant}/${name.namespace}`),
          (conflict) => this.#recordConflict(name, conflict),
          (line) => console.error(line),
        )
      : undefined;
    const topic = new Topic(name.full, log, this.store, this.#deps, table);
    this.#topics.set(name.full, topic);
    return topic;
  }

  topicRecord(full: string): TopicRecord {
    return this.metadata.requireTopic(parseTopicName(full));
  }

  async createTopic(full: string, partitions: number, options: { keyed?: boolean } = {}): Promise<TopicRecord> {
    return this.metadata.createTopic(parseTopicName(full), partitions, options);
  }

  async deleteTopic(full: string, force: boolean): Promise<void> {
    const name = parseTopicName(full);
    const record = this.metadata.requireTopic(name);
    const names = record.partitions > 0 ? Array.from({ length: record.partitions }, (_, i) => partitionName(name, i)) : [name];
    // In a cluster the partitions may be served by other brokers: those see the records go
    // (catalog watch) and stop serving them; only the ones loaded here are checked for use.
    const topics = this.#gate ? names.flatMap((n) => this.#topics.get(n.full) ?? []) : names.map((n) => this.topic(n));
    const busy = topics.find((t) => t.inUse);
    if (busy && !force) {
      throw new AdmqError(ErrorCode.InUse, `topic "${busy.name}" has connected producers or consumers; use force to delete anyway`);
    }
    await this.metadata.removeTopicRecords(name, record);
    for (const topic of topics) {
      topic.close();
      this.#topics.delete(topic.name);
      await this.store.deleteLog(topic.log);
    }
    for (const n of names) await this.#gate?.deleted(n);
  }

  stats(full: string): TopicStats | { topic: string; partitions: number; partitionStats: TopicStats[] } {
    const name = parseTopicName(full);
    const record = this.metadata.requireTopic(name);
    if (record.partitions === 0) return this.topic(name).stats(this.options.nowMs());
    const partitionStats = Array.from({ length: record.partitions }, (_, i) => this.topic(partitionName(name, i)).stats(this.options.nowMs()));
    return { topic: name.full, partitions: record.partitions, partitionStats };
  }

  /** The topics (and partitions) whose logs are loaded: what metrics report on. */
  loadedTopics(): Topic[] {
    return [...this.#topics.values()];
  }

  close(): void {
    for (const topic of this.#topics.values()) topic.close();
    this.#topics.clear();
  }
}
