// The broker of a standalone region node: resolves topic names to loaded topics and
// carries out the admin operations that change them.
import { ErrorCode } from '../../proto/index.ts';
import { AdmqError } from '../errors.ts';
import { parseTopicName, partitionName, type TopicName } from '../names.ts';
import type { LogStore } from '../storage/log-store.ts';
import { MetadataManager, type TopicRecord } from './metadata.ts';
import type { SubscriptionDeps } from './subscription.ts';
import { Topic, type TopicStats } from './topic.ts';

export interface BrokerOptions {
  messageBytesMax: number;
  replayEntriesMax: number;
  dispatchBatchMax: number;
  negativeAckRedeliveryDelayMs: number;
  nowMs: () => number;
}

export class Broker {
  readonly metadata: MetadataManager;
  readonly #topics = new Map<string, Topic>();
  readonly #deps: SubscriptionDeps & { messageBytesMax: number };

  constructor(
    readonly store: LogStore,
    readonly options: BrokerOptions,
  ) {
    this.metadata = new MetadataManager(store, options.nowMs);
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
    if (record.partitions > 0) {
      throw new AdmqError(
        ErrorCode.BadRequest,
        `topic "${name.full}" is partitioned (${record.partitions} partitions); address a partition such as ${name.full}-partition-0`,
      );
    }
    const topic = new Topic(name.full, this.store.openLog(record.id, name.full), this.store, this.#deps);
    this.#topics.set(name.full, topic);
    return topic;
  }

  topicRecord(full: string): TopicRecord {
    return this.metadata.requireTopic(parseTopicName(full));
  }

  async createTopic(full: string, partitions: number): Promise<TopicRecord> {
    return this.metadata.createTopic(parseTopicName(full), partitions);
  }

  async deleteTopic(full: string, force: boolean): Promise<void> {
    const name = parseTopicName(full);
    const record = this.metadata.requireTopic(name);
    const names = record.partitions > 0 ? Array.from({ length: record.partitions }, (_, i) => partitionName(name, i)) : [name];
    const topics = names.map((n) => this.topic(n));
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
  }

  stats(full: string): TopicStats | { topic: string; partitions: number; partitionStats: TopicStats[] } {
    const name = parseTopicName(full);
    const record = this.metadata.requireTopic(name);
    if (record.partitions === 0) return this.topic(name).stats(this.options.nowMs());
    const partitionStats = Array.from({ length: record.partitions }, (_, i) => this.topic(partitionName(name, i)).stats(this.options.nowMs()));
    return { topic: name.full, partitions: record.partitions, partitionStats };
  }

  close(): void {
    for (const topic of this.#topics.values()) topic.close();
    this.#topics.clear();
  }
}
