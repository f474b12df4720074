// What the replicator needs from a region's log. The region node implements it; the
// replicator never imports region-node (DESIGN §1).

/** An entry as it travels between regions: its origin fields never change. */
export interface ReplicatedEntry {
  originRegion: string;
  originPosition: number;
  hlc: bigint;
  producerName: string;
  sequenceId: number;
  publishTimeMs: number;
  eventTimeMs: number;
  key: string | undefined;
  properties: Record<string, string>;
  payload: Buffer;
}

/** A stored entry: a replicated entry plus its local position. */
export interface LogEntry extends ReplicatedEntry {
  offset: number;
}

export interface AppendOutcome {
  appended: number;
  duplicates: number;
}

/**
 * A subscription's acked frontier for one origin region, in origin positions: every entry
 * at or below `through` is acked (-1: none), and so is every position in `acked`.
 */
export interface OriginFrontier {
  through: number;
  acked: Array<[number, number]>;
}

/** Replicated subscriptions: one subscription's acked frontier per origin region. */
export interface SubscriptionFrontier {
  name: string;
  origins: Record<string, OriginFrontier>;
}

/** How a topic is laid out: a partition names its partitioned parent. */
export interface TopicShape {
  partitionOf?: { parent: string; partitions: number };
  keyed?: boolean;
}

export interface ReplicationLog {
  readonly region: string;
  /** Local topics this node ships (full names, partitions as their own topics); in a regional cluster, those it serves. */
  listTopics(): string[];
  /**
   * Changes whenever this node starts serving the topic anew (a regional cluster: the topic
   * moved away and back), so that its links start afresh on the new log. Optional.
   */
  topicGeneration?(topic: string): number;
  /** Durable entries from `fromOffset` on, at most `max`. */
  read(topic: string, fromOffset: number, max: number): LogEntry[];
  /**
   * Passes over durable entries whose origin region `skip` accepts, from `fromOffset` and
   * over at most `max` of them, without decoding them; returns the offset reached (the
   * first entry not skipped, the durable end, or the bound).
   */
  skipOrigins(topic: string, fromOffset: number, max: number, skip: (origin: string) => boolean): number;
  /** The durable end of the topic's log (the next offset). */
  tail(topic: string): number;
  /** Average stored entry size, for backlog byte estimates. */
  averageEntryBytes(topic: string): number;
  /** Calls `listener` whenever new entries become durable; returns an unsubscribe function. */
  onAppend(topic: string, listener: () => void): () => void;
  /** The topic's layout (sender side), sent in the hello so that the receiver can recreate it. */
  topicShape(topic: string): TopicShape;
  /**
   * Creates the topic locally if it is missing (receiver side), as a partition of its
   * parent when the shape says so; resolves true when it created something. Throws a
   * typed error if it cannot. In a regional cluster it also makes this node serve the
   * topic, or throws code ADMQ_ERR_TOPIC_MOVED with `owner`, the id of the node that does
   * (when known).
   */
  ensureTopic(topic: string, shape: TopicShape): Promise<boolean>;
  /** Throws ClockSkewError (synchronously) when a batch is too far ahead of this region's clock. */
  checkClockSkew(entries: ReplicatedEntry[]): void;
  /** Appends with dedupe on (origin region, origin position), atomically and durably. */
  appendReplicated(topic: string, entries: ReplicatedEntry[]): Promise<AppendOutcome>;
  /** Highest stored origin position per origin region. */
  originMarks(topic: string): Map<string, number>;
  /**
   * HLC watermarks per origin region: every entry of that origin with an HLC at or below
   * it is durable in this region's log of the topic. This region's own is its local
   * watermark; others come from the entries received and from heartbeats.
   */
  watermarks(topic: string): Map<string, bigint>;
  /** Receiver side: watermarks a sender's heartbeat vouches for (kept if higher). */
  noteWatermarks(topic: string, watermarks: Map<string, bigint>): void;
  /** Sender side: the acked frontiers of the topic's subscriptions in this region. */
  subscriptionFrontiers(topic: string): SubscriptionFrontier[];
  /** Receiver side: entries inside these frontiers count as acked here (subscriptions created as needed). */
  applySubscriptionFrontiers(topic: string, frontiers: SubscriptionFrontier[]): void;
  /** The sender's durable cursor towards `remote` (0 when none). */
  loadCursor(topic: string, remote: string): number;
  saveCursor(topic: string, remote: string, offset: number): void;
}
