// A broker of a regional cluster (DESIGN §4), put together: the shared catalog in etcd, the
// storage nodes found through their registry, the ledger client, the broker coordinator
// (session lease, bundle ownership, load manager, lookup) and the gate that serves a topic
// only where it is owned. The re-replicator runs on the broker that leads the load manager.
import { ClusterCatalog } from '../broker/catalog.ts';
import type { Broker } from '../broker/broker.ts';
import { BrokerCoordinator } from '../cluster/index.ts';
import { LedgerClient } from '../ledger-storage/ledger-client.ts';
import { ReReplicator } from '../ledger-storage/re-replication.ts';
import { StorageNodeDirectory } from '../ledger-storage/storage-node-client.ts';
import { EtcdMetadataStore, type MetadataStore } from '../metadata-store/index.ts';
import { AdmqError } from '../errors.ts';
import { ErrorCode } from '../../proto/index.ts';
import { ClusterGate, topicMoved, type TopicOwnership } from './cluster-gate.ts';
import { ledgerAccess } from './topic-ledgers.ts';

/** How long a topic's open waits for this broker's own acquisition of the bundle lookup named it owner of. */
const OWNED_WAIT_MS = 2_000;

/** How often a broker reports its load to the load manager. */
const LOAD_REPORT_INTERVAL_MS = 2_000;

export interface ClusterSettings {
  /** etcd://host:port[,host:port…] */
  metadataStore: string;
  brokerId: string;
  ownershipLeaseMs: number;
  ensembleSize: number;
  writeQuorum: number;
  ackQuorum: number;
}

/** Opened before the broker exists: the broker's catalog comes from it. */
export async function openClusterMetadata(url: string): Promise<{ metadata: MetadataStore; catalog: ClusterCatalog }> {
  const endpoints = url.replace(/^etcd:\/\//, '').split(',');
  const metadata = new EtcdMetadataStore(endpoints);
  try {
    const catalog = await ClusterCatalog.open(metadata);
    return { metadata, catalog };
  } catch (error) {
    await metadata.close();
    throw new AdmqError(ErrorCode.Config, `cannot open the cluster's metadata store ${url}: ${(error as Error).message}`, { cause: error });
  }
}

export interface ClusterRuntime {
  readonly gate: ClusterGate;
  /** Starts taking part once the gRPC API listens (its address is what clients are sent to). */
  join(addresses: { grpcAddress: string; adminUrl: string }): Promise<void>;
  readonly coordinator: BrokerCoordinator | undefined;
  /** For the admin API (GET /admin/v1/cluster). */
  status(): unknown;
  close(): Promise<void>;
}

export async function startCluster(o: {
  settings: ClusterSettings;
  metadata: MetadataStore;
  catalog: ClusterCatalog;
  broker: Broker;
  log: (line: string) => void;
}): Promise<ClusterRuntime> {
  const { settings, metadata, broker, log } = o;
  const directory = await StorageNodeDirectory.open(metadata);
  const ledgers = new LedgerClient({
    metadata,
    pool: { available: () => directory.available().map((n) => n.nodeId), connect: (nodeId) => directory.connect(nodeId) },
    writerId: settings.brokerId,
    quorum: { ensembleSize: settings.ensembleSize, writeQuorum: settings.writeQuorum, ackQuorum: settings.ackQuorum },
  });
  let coordinator: BrokerCoordinator | undefined;
  /** Opens waiting for this broker's acquisition of a bundle (see ensureOwned). */
  const ownedWaiters = new Set<() => void>();
  let loadTimer: NodeJS.Timeout | undefined;
  let reReplicator: ReReplicator | undefined;
  // Until the coordinator runs (the gRPC port must be known first), nothing is served.
  const ownership: TopicOwnership = {
    brokerId: settings.brokerId,
    lookup: async (topic) => {
      if (!coordinator?.connected) throw topicMoved(topic);
      return coordinator.lookup(topic);
    },
    ensureOwned: (topic) =>
      new Promise<void>((resolve, reject) => {
        // Lookup may name this broker from the owner key a moment before the coordinator
        // has recorded its own acquisition: wait for that event, briefly.
        if (coordinator?.owns(topic)) return resolve();
        const check = (): void => {
          if (!coordinator?.owns(topic)) return;
          clearTimeout(timer);
          ownedWaiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          ownedWaiters.delete(check);
          reject(topicMoved(topic));
        }, OWNED_WAIT_MS);
        ownedWaiters.add(check);
      }),
    owns: (topic) => coordinator?.owns(topic) ?? false,
    epochOf: (topic) => coordinator?.epochOf(topic),
    bundleOf: (topic) => coordinator?.bundleOf(topic) ?? '',
  };
  const gate = new ClusterGate(broker, ownership, metadata, ledgerAccess(ledgers), log);
  broker.setTopicGate(gate);

  const join = async (addresses: { grpcAddress: string; adminUrl: string }): Promise<void> => {
    coordinator = await BrokerCoordinator.start({
      metadata,
      brokerId: settings.brokerId,
      grpcAddress: addresses.grpcAddress,
      adminUrl: addresses.adminUrl,
      leaseTtlMs: settings.ownershipLeaseMs,
      // Topics load when first asked for (gate.prepare); a bundle leaving stops them all.
      onBundleAssigned: async () => {},
      onBundleUnassigned: async (bundle, reason) => {
        // Still owned: a planned move, so hand over cleanly (ledger closed, cursors written).
        const release = coordinator?.ownedBundles().includes(bundle) ?? false;
        log(`[cluster] bundle ${bundle} leaves this broker (${reason})`);
        await gate.unloadBundle(bundle, release);
      },
      onEvent: (event) => {
        if (event.type === 'bundle-owned') for (const check of [...ownedWaiters]) check();
        if (event.type !== 'leader') return;
        // The leader also heals ledgers whose storage node was lost.
        if (event.leader && !reReplicator) {
          reReplicator = new ReReplicator({ metadata, pool: { available: () => directory.available().map((n) => n.nodeId), connect: (nodeId) => directory.connect(nodeId) }, log });
          reReplicator.start();
        } else if (!event.leader && reReplicator) {
          void reReplicator.close();
          reReplicator = undefined;
        }
      },
    });
    // Load reports: what the load manager balances on (topics, message rates, CPU).
    let last = { atMs: Date.now(), in: 0, out: 0, cpu: process.cpuUsage(), bundles: new Map<string, number>() };
    loadTimer = setInterval(() => {
      const now = Date.now();
      const seconds = Math.max(0.001, (now - last.atMs) / 1000);
      let msgIn = 0;
      let msgOut = 0;
      // Per bundle too, so that the load manager moves a bundle whose rate helps, rather
      // than one that just swaps the overload to another broker.
      const bundles = new Map<string, number>();
      for (const topic of broker.loadedTopics()) {
        const c = topic.counters();
        const out = Object.values(c.subscriptions).reduce((sum, sub) => sum + sub.msgOutCounter, 0);
        msgIn += c.msgInCounter;
        msgOut += out;
        const bundle = ownership.bundleOf(topic.name);
        bundles.set(bundle, (bundles.get(bundle) ?? 0) + c.msgInCounter + out);
      }
      const bundleMsgRates: Record<string, number> = {};
      for (const [bundle, count] of bundles) bundleMsgRates[bundle] = Math.max(0, (count - (last.bundles.get(bundle) ?? count)) / seconds);
      const cpu = process.cpuUsage(last.cpu);
      coordinator?.reportLoad({
        topics: gate.servedTopics().length,
        msgRateIn: Math.max(0, (msgIn - last.in) / seconds),
        msgRateOut: Math.max(0, (msgOut - last.out) / seconds),
        cpu: (cpu.user + cpu.system) / 1e6 / seconds,
        memoryBytes: process.memoryUsage.rss(),
        bundleMsgRates,
      });
      last = { atMs: now, in: msgIn, out: msgOut, cpu: process.cpuUsage(), bundles };
    }, LOAD_REPORT_INTERVAL_MS);
    loadTimer.unref();
    log(`[cluster] broker ${settings.brokerId} joined (${addresses.grpcAddress}); storage nodes: ${directory.available().map((n) => n.nodeId).join(', ') || 'none yet'}`);
  };

  let closing: Promise<void> | undefined;
  return {
    gate,
    join,
    get coordinator() {
      return coordinator;
    },
    status: () => ({
      brokerId: settings.brokerId,
      joined: coordinator !== undefined,
      loadManagerLeader: coordinator?.isLoadManagerLeader() ?? false,
      brokers: coordinator?.brokers() ?? [],
      assignments: Object.fromEntries(coordinator?.assignments() ?? []),
      ownedBundles: coordinator?.ownedBundles() ?? [],
      servedTopics: gate.servedTopics(),
      storageNodes: directory.available(),
    }),
    close: () =>
      (closing ??= (async () => {
        if (loadTimer) clearInterval(loadTimer);
        await gate.close();
        await reReplicator?.close();
        await coordinator?.close();
        await directory.close();
        await o.catalog.close();
        await metadata.close();
      })()),
  };
}
