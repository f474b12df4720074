// Public surface of topology/: the model, its validation and loading, and routing.
export { TopologyError } from './errors.ts';
export { linkKey, neighbours, nodeLinkKey, nodeReplicationAddress, regionServiceUrl, replicationEntryAddresses, unreachableWithin, validateTopology } from './topology.ts';
export type { NamespaceSpec, NodeSpec, RegionSpec, TenantSpec, Topology, TransportKind, TransportSpec } from './topology.ts';
export { loadTopology } from './load.ts';
export { DEFAULT_LAG_HISTORY, DEFAULT_RPO_TARGET_MS, SAMPLES_PER_CHUNK, parseLagHistorySettings, parseRpoTargetMs } from './lag-history.ts';
export type { LagHistorySettings } from './lag-history.ts';
export { nextHops, pathTo, spanningTree } from './routing.ts';
export {
  CONTROL_NAMESPACE,
  PLACEMENT_TOPIC,
  Placement,
  PlacementError,
  SYSTEM_TENANT,
  decodePlacementRecord,
  encodePlacementRecord,
  placementKey,
} from './placement.ts';
export type { NamespacePlacement, PlacementRecord, TenantPlacement } from './placement.ts';
