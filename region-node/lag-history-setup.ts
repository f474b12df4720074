// A region node's lag history (compliance/): the store in the node's data directory, the
// sampler fed by the replicator's status and the node's namespaces, and the counter of
// local writes refused for residency, which only the node's write guard sees.
import { LagHistoryStore, queryHistory, startLagHistorySampler, type HistoryPageWire, type NamespaceObservation } from '../compliance/index.ts';
import { ErrorCode } from '../proto/index.ts';
import type { ReplicatorHandle } from '../replicator/index.ts';
import { SYSTEM_TENANT, neighbours, type Topology } from '../topology/index.ts';
import { CONFLICT_FEED_TOPIC, type Broker } from './broker/broker.ts';
import type { Durability } from './storage/log-store.ts';
import type { PlacementStore } from './placement-store.ts';

/** Local writes refused because this region may not hold the namespace, per namespace, since start. */
export class ResidencyWriteRefusals {
  readonly #counts = new Map<string, number>();

  /** Runs the write guard `check` for tenant/namespace, counting its residency refusals. */
  guard(tenant: string, namespace: string, check: () => void): void {
    try {
      check();
    } catch (error) {
      if ((error as { code?: unknown }).code === ErrorCode.Residency) {
        const key = `${tenant}/${namespace}`;
        this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
      }
      throw error;
    }
  }

  get(namespace: string): number {
    return this.#counts.get(namespace) ?? 0;
  }
}

export interface LagHistoryRuntime {
  query(q: { namespace: string; fromMs: number; toMs: number; after?: string }): HistoryPageWire;
  close(): Promise<void>;
}

export async function startLagHistory(o: {
  topology: Topology;
  region: string;
  dataDir: string;
  durability: Durability;
  broker: Broker;
  placement: PlacementStore;
  replicator: ReplicatorHandle;
  refusals: ResidencyWriteRefusals;
  readPhysicalMs: () => number;
  log: (line: string) => void;
}): Promise<LagHistoryRuntime> {
  const store = await LagHistoryStore.open({ dataDir: o.dataDir, settings: o.topology.lagHistory, durability: o.durability, logLine: o.log });
  const near = neighbours(o.topology, o.region);
  const md = o.broker.metadata;
  const conflictsRecorded = (namespace: string): number => {
    const feed = `persistent://${namespace}/${CONFLICT_FEED_TOPIC}`;
    if (!md.getTopic(feed)) return 0;
    // The feed's producer of this region numbers its records from 0.
    return o.broker.topic(feed).lastSequenceId(`${CONFLICT_FEED_TOPIC}-${o.region}`) + 1;
  };
  const observeNamespaces = (): NamespaceObservation[] => {
    const placement = o.placement.current;
    const names = new Set<string>();
    for (const ns of placement.namespaces.values()) if (ns.tenant !== SYSTEM_TENANT && ns.replicationSet.includes(o.region)) names.add(ns.name);
    const topics = new Map<string, number>();
    for (const tenant of md.listTenants()) {
      if (tenant.name === SYSTEM_TENANT) continue;
      for (const ns of md.listNamespaces(tenant.name)) {
        const name = `${ns.tenant}/${ns.namespace}`;
        const count = md.listTopics(ns.tenant, ns.namespace).length;
        topics.set(name, count);
        if (count > 0) names.add(name);
      }
    }
    return [...names].sort().map((namespace) => ({
      namespace,
      replicationSet: placement.replicationSet(namespace, o.region),
      mayHold: placement.mayHold(namespace, o.region),
      topics: topics.get(namespace) ?? 0,
      conflictsRecorded: conflictsRecorded(namespace),
      writesRefusedResidency: o.refusals.get(namespace),
    }));
  };
  const sampler = startLagHistorySampler({
    store,
    nowMs: o.readPhysicalMs,
    logLine: o.log,
    observe: () => {
      const status = o.replicator.status();
      return { region: o.region, nowMs: o.readPhysicalMs(), neighbours: near, links: status.links, receiver: status.receiver, watermarks: status.watermarks, namespaces: observeNamespaces() };
    },
  });
  let closing: Promise<void> | undefined;
  return {
    query: (q) => queryHistory(store, o.region, o.readPhysicalMs(), q),
    close: () =>
      (closing ??= (async () => {
        await sampler.close();
        await store.close();
      })()),
  };
}
