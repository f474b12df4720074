// The region node's implementation of the replicator's log interface.
import type { ReplicatedEntry, ReplicationLog, LogEntry, TopicShape } from '../replicator/index.ts';
import { ErrorCode } from '../proto/index.ts';
import type { Broker } from './broker/broker.ts';
import { AdmqError } from './errors.ts';
import { parseTopicName } from './names.ts';
import type { Entry } from './storage/entry-codec.ts';
import type { TopicLog } from './storage/log-store.ts';

/**
 * A broker of a regional cluster replicates only the topics it serves (cluster-gate.ts):
 * their logs are loaded here, and the broker that serves a topic is the only one that
 * writes it, so it is also the one that receives replicated entries for it.
 */
export interface ClusterServing {
  servedTopics(): string[];
  generation(topic: string): number;
}

export function createReplicationLog(broker: Broker, cluster?: ClusterServing): ReplicationLog {
  const store = broker.store;
  const logOf = (topic: string): TopicLog => broker.topic(topic).log;
  const ensureRecord = async (topic: string, shape: TopicShape): Promise<boolean> => {
    const name = parseTopicName(topic);
    if (broker.metadata.getTopic(name.full)) return false;
    if (!broker.metadata.getNamespace(name.tenant, name.namespace)) {
      throw new AdmqError(ErrorCode.NamespaceNotFound, `namespace ${name.tenant}/${name.namespace} does not exist in ${store.region}`);
    }
    // A partition arrives with its parent's shape: create the partitioned topic whole.
    const [create, partitions] = shape.partitionOf ? [parseTopicName(shape.partitionOf.parent).full, shape.partitionOf.partitions] : [name.full, 0];
    try {
      await broker.createTopic(create, partitions, { keyed: shape.keyed === true });
    } catch (error) {
      if ((error as AdmqError).code !== ErrorCode.AlreadyExists) throw error;
    }
    if (!broker.metadata.getTopic(name.full)) {
      throw new AdmqError(ErrorCode.BadRequest, `${topic} is not a partition of ${create} in ${store.region} (the partition counts differ)`);
    }
    return true;
  };
  return {
    region: store.region,
    listTopics: () =>
      cluster
        ? cluster.servedTopics()
        : store
            .metaRange<{ name: string; id: number; partitions: number }>(['topic'])
            .map((e) => e.value)
            .filter((t) => t.id > 0)
            .map((t) => t.name),
    ...(cluster && { topicGeneration: (topic: string) => cluster.generation(topic) }),
    read: (topic, fromOffset, max) => store.read(logOf(topic), fromOffset, max) as LogEntry[],
    skipOrigins: (topic, fromOffset, max, skip) => store.skipOrigins(logOf(topic), fromOffset, max, skip),
    tail: (topic) => logOf(topic).durableNextOffset,
    averageEntryBytes: (topic) => {
      const log = logOf(topic);
      return log.entriesAppended > 0 ? log.bytesAppended / log.entriesAppended : 1024;
    },
    onAppend: (topic, listener) => logOf(topic).onDurable(listener),
    topicShape: (topic) => {
      const parent = broker.metadata.partitionParent(topic);
      const keyed = broker.metadata.getTopic(topic)?.keyed === true ? { keyed: true } : {};
      return parent ? { partitionOf: parent, ...keyed } : keyed;
    },
    ensureTopic: async (topic, shape) => {
      const name = parseTopicName(topic);
      const created = await ensureRecord(topic, shape);
      // Only the broker serving the topic may append to it: take it over, or fail with a
      // TopicMovedError whose `owner` the receiver sends back so that the link goes there.
      if (cluster) await broker.prepareTopic(name);
      return created;
    },
    appendReplicated: async (topic, entries: ReplicatedEntry[]) => {
      // The replicator hands the decoded entries over: they become the stored entries, and
      // the store sets each one's local offset (no copy per entry).
      return store.appendReplicated(logOf(topic), entries as Entry[]);
    },
    checkClockSkew: (entries) => store.checkClockSkew(entries),
    originMarks: (topic) => store.originMarks(logOf(topic)),
    watermarks: (topic) => {
      const log = logOf(topic);
      const out = new Map<string, bigint>();
      // Only what is durable: an HLC-ordered subscription releases up to these, and it reads
      // durable entries only, so a mark of a commit not yet flushed would let later entries
      // overtake an earlier one still on its way to disk.
      for (const [origin, mark] of log.durableOrigins) out.set(origin, BigInt(mark.hlc));
      for (const [origin, hlc] of log.heartbeatWatermarks) if (hlc > (out.get(origin) ?? -1n)) out.set(origin, hlc);
      out.set(store.region, store.localWatermark());
      return out;
    },
    noteWatermarks: (topic, watermarks) => {
      const log = logOf(topic);
      for (const [origin, hlc] of watermarks) {
        if (origin === store.region) continue;
        if (hlc > (log.heartbeatWatermarks.get(origin) ?? -1n)) log.heartbeatWatermarks.set(origin, hlc);
      }
    },
    subscriptionFrontiers: (topic) =>
      [...broker.topic(parseTopicName(topic)).subscriptions.values()].map((sub) => ({ name: sub.name, origins: sub.frontier() })),
    applySubscriptionFrontiers: (topic, frontiers) => {
      const t = broker.topic(parseTopicName(topic));
      for (const f of frontiers) {
        // A subscription replicated from another region starts at the beginning: what that
        // region acked is skipped, everything else is still to be delivered here.
        t.subscription(f.name, 'exclusive', 'earliest', true).applyRemoteFrontier(f.origins);
      }
    },
    loadCursor: (topic, remote) => store.loadReplicationCursor(logOf(topic).id, remote),
    saveCursor: (topic, remote, offset) => store.saveReplicationCursor(logOf(topic).id, remote, offset),
  };
}
