// Public surface of topology/: the model, its validation and loading, and routing.
export { TopologyError } from './errors.ts';
export { linkKey, neighbours, replicationAddress, validateTopology } from './topology.ts';
export type { NamespaceSpec, RegionSpec, TenantSpec, Topology, TransportKind, TransportSpec } from './topology.ts';
export { loadTopology } from './load.ts';
export { mayHold, nextHops, pathTo, replicationSetOf, spanningTree } from './routing.ts';
