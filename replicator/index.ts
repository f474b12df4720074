// Public surface of replicator/: start a replicator over a log it is given.
export { startReplicator } from './replicator.ts';
export type { ReplicatorConfig, ReplicatorDeps, ReplicatorHandle } from './replicator.ts';
export type { AppendOutcome, LogEntry, OriginFrontier, ReplicatedEntry, ReplicationLog, SubscriptionFrontier, TopicShape } from './log.ts';
export type { LinkStatus } from './sender.ts';
export type { ReceiverStats } from './receiver.ts';
export { replicationDelayMs, selectEntries, backoffMs, lingerMs } from './decisions.ts';
export { ReplicationError, ReplicationErrorCode } from './errors.ts';
