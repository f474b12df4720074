// Public surface of the regional cluster layer (issue 8): bundles, the broker registry,
// bundle ownership with its no-split-brain lease deadline, the load manager, lookup, and
// BrokerCoordinator, which puts them together for one broker. See README.md.
export { BrokerCoordinator, LEASE_TTL_MS_DEFAULT } from './coordinator.ts';
export type { BrokerCoordinatorOptions, CoordinatorEvent } from './coordinator.ts';
export {
  BUNDLES_PER_NAMESPACE_DEFAULT,
  BUNDLES_PER_NAMESPACE_MAX,
  bundleBoundaries,
  bundleName,
  bundleOfTopic,
  fnv1a32,
  namespaceBundles,
  parseBundleName,
} from './bundles.ts';
export type { ParsedBundle } from './bundles.ts';
export { BrokerRegistration, LOAD_REPORT_INTERVAL_MS_DEFAULT, emptyLoad, listBrokers, watchBrokers } from './broker-registry.ts';
export type { BrokerInfo, BrokerLoad, BrokerRegistrationOptions } from './broker-registry.ts';
export { ClusterError, ClusterErrorCode } from './errors.ts';
export type { ClusterErrorCodeValue } from './errors.ts';
export { ClusterKeys, MetadataKeys } from './keys.ts';
export { LeaseSession } from './lease-session.ts';
export type { LeaseSessionOptions } from './lease-session.ts';
export { BALANCER_SETTINGS_DEFAULT, planMoves } from './load-balancing.ts';
export type { BalancerBroker, BalancerInput, BalancerSettings, BundleMove, MoveReason } from './load-balancing.ts';
export { LoadManager } from './load-manager.ts';
export type { AssignmentRecord, LeaderRecord, LoadManagerMirrors, LoadManagerOptions } from './load-manager.ts';
export { LOOKUP_TIMEOUT_MS_DEFAULT, TopicLookup } from './lookup.ts';
export type { LookupResult, TopicLookupOptions } from './lookup.ts';
export { OwnershipManager, watchOwners } from './ownership.ts';
export type { AcquireResult, OwnerRecord, Ownership, OwnershipLostListener } from './ownership.ts';
export { PrefixMirror } from './prefix-mirror.ts';
export type { MirrorEntry } from './prefix-mirror.ts';
