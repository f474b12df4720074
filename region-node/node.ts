// Composition of a standalone region node: storage, broker, gRPC API and admin API.
import type { Server as HttpServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { Broker } from './broker/broker.ts';
import { validateConfig, type RegionNodeConfig } from './config.ts';
import { startAdminServer } from './admin-http.ts';
import { buildBrokerService } from './grpc-service.ts';
import { LogStore } from './storage/log-store.ts';
import { AdmqError } from './errors.ts';
import { ErrorCode } from '../proto/index.ts';
import { installHttp2ServerWindows } from './http2-window.ts';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_CONFLICT_POLICY_SPEC, createConflictPolicy, type ConflictPolicy } from '../conflict/index.ts';
import { PLACEMENT_TOPIC, loadTopology, regionServiceUrl, type NodeSpec, type Topology } from '../topology/index.ts';
import { parseTopicName } from './names.ts';
import { ConfigError } from './errors.ts';
import { startReplication, type ReplicationRuntime } from './replication-setup.ts';
import { PlacementStore } from './placement-store.ts';
import { ResidencyWriteRefusals, startLagHistory, type LagHistoryRuntime } from './lag-history-setup.ts';
import { NodeMetrics } from '../observability/metrics.ts';
import { createNodeTracer } from '../observability/tracing.ts';
import { openClusterMetadata, startCluster } from './cluster-broker/cluster-setup.ts';
import { TopicMovedError } from './cluster-broker/cluster-gate.ts';

export interface RegionNodeDeps {
  /** Physical time source for the HLC and timestamps; tests inject a skewed one. */
  readPhysicalMs?: () => number;
  log?: (line: string) => void;
}

export interface RegionNodeHandle {
  readonly config: RegionNodeConfig;
  /** host:port of the gRPC API, with the real port when 0 was asked for. */
  readonly grpcAddress: string;
  /** http://host:port of the admin API. */
  readonly adminUrl: string;
  /** host:port of the replication listener, when the node runs in a topology. */
  readonly replicationAddress: string | undefined;
  readonly broker: Broker;
  /** Stops serving, waits for queued writes to reach disk, closes storage. Idempotent. */
  close(): Promise<void>;
}

export async function start(input: Partial<RegionNodeConfig>, deps: RegionNodeDeps = {}): Promise<RegionNodeHandle> {
  let config = validateConfig(input);
  let topology: Topology | undefined;
  /** This node's entry in the topology (its replication listener). */
  let replicationNode: NodeSpec | undefined;
  if (config.topology) {
    topology = loadTopology(config.topology);
    const region = topology.regions.get(config.region);
    if (!region) throw new ConfigError(`region "${config.region}" is not one of the topology's regions (${[...topology.regions.keys()].join(', ')})`);
    // A region that lists its nodes is a cluster: this node is the one named by brokerId.
    let spec: NodeSpec = region.nodes[0] as NodeSpec;
    if (region.clustered) {
      if (!config.metadataStore) throw new ConfigError(`metadataStore is required: region "${config.region}" lists nodes in the topology, so it is a regional cluster (etcd://…)`);
      const named = region.nodes.find((n) => n.id === config.brokerId);
      if (!named) throw new ConfigError(`brokerId must name one of region ${config.region}'s nodes in the topology (${region.nodes.map((n) => n.id).join(', ')}); got "${config.brokerId}"`);
      spec = named;
    }
    replicationNode = spec;
    // The topology gives the endpoints and data directory unless the caller set them.
    const [grpcHost, grpcPort] = spec.grpc.split(':') as [string, string];
    const [adminHost, adminPort] = spec.admin.split(':') as [string, string];
    config = validateConfig({
      ...input,
      ...(input.grpcHost === undefined && { grpcHost }),
      ...(input.grpcPort === undefined && { grpcPort: Number(grpcPort) }),
      ...(input.adminHost === undefined && { adminHost }),
      ...(input.adminPort === undefined && { adminPort: Number(adminPort) }),
      ...(input.dataDir === undefined && spec.dataDir !== undefined && { dataDir: resolve(dirname(config.topology), spec.dataDir) }),
      maxClockOffsetMs: input.maxClockOffsetMs ?? topology.maxClockOffsetMs,
    });
  }
  if (topology && config.metadataStore && !topology.regions.get(config.region)?.clustered && !config.brokerId) {
    // A one-node cluster in the single-node form: its broker is the region's only node.
    config = { ...config, brokerId: config.region };
  }
  const readPhysicalMs = deps.readPhysicalMs ?? Date.now;
  const log = deps.log ?? ((line: string) => console.log(line));
  // A broker of a regional cluster shares its catalog through etcd, and its local LMDB is
  // only a cache of the topics' ledgers: what is acknowledged is on a quorum of storage
  // nodes, each of which fsyncs, so the cache needs no fsync of its own.
  const clusterMetadata = config.metadataStore ? await openClusterMetadata(config.metadataStore) : undefined;
  const store = LogStore.open({
    dataDir: config.dataDir,
    region: config.region,
    durability: clusterMetadata ? 'none' : config.durability,
    readPhysicalMs,
    maxClockOffsetMs: config.maxClockOffsetMs,
    chunkCacheEntriesMax: config.chunkCacheEntriesMax,
    chunkCacheBytesMax: config.chunkCacheBytesMax,
  });
  const broker = new Broker(store, {
    messageBytesMax: config.messageBytesMax,
    replayEntriesMax: config.replayEntriesMax,
    dispatchBatchMax: config.dispatchBatchMax,
    negativeAckRedeliveryDelayMs: config.negativeAckRedeliveryDelayMs,
    nowMs: readPhysicalMs,
    ...(clusterMetadata && { catalog: clusterMetadata.catalog }),
  });
  const cluster = clusterMetadata
    ? await startCluster({
        settings: { ...config, brokerId: config.brokerId || `broker-${config.grpcPort}` },
        metadata: clusterMetadata.metadata,
        catalog: clusterMetadata.catalog,
        broker,
        log,
      })
    : undefined;
  let placement: PlacementStore | undefined;
  const refusals = new ResidencyWriteRefusals();
  if (topology && config.topology) {
    broker.setConflictPolicies(await loadConflictPolicies(topology, dirname(resolve(config.topology))));
    // Tenants and namespaces exist in every region that may hold them (the topology's,
    // then runtime changes as they arrive).
    placement = new PlacementStore(topology, broker, log, clusterMetadata && { catalog: clusterMetadata.catalog });
    await placement.open();
    const guard = placement;
    broker.setWriteGuard((tenant, namespace) => refusals.guard(tenant, namespace, () => guard.assertWritable(tenant, namespace)));
  }
  if (config.bootstrapNamespace) {
    const [tenant, namespace] = config.bootstrapNamespace.split('/') as [string, string];
    // In a cluster another broker may be creating the same records at the same moment.
    const unlessExists = (error: AdmqError): void => {
      if (error.code !== ErrorCode.AlreadyExists) throw error;
    };
    if (!broker.metadata.getTenant(tenant)) await broker.metadata.createTenant(tenant).catch(unlessExists);
    if (!broker.metadata.getNamespace(tenant, namespace)) await broker.metadata.createNamespace(tenant, namespace).catch(unlessExists);
  }

  let replication: ReplicationRuntime | undefined;
  let lagHistory: LagHistoryRuntime | undefined;
  // ADMQ_METRICS=off: no metrics at all (to measure what they cost); /metrics answers 404.
  const metrics =
    process.env.ADMQ_METRICS === 'off'
      ? undefined
      : new NodeMetrics({
          region: config.region,
          sources: {
            topics: () => broker.loadedTopics().map((t) => t.counters()),
            replication: () => replication?.replicator.status(),
            chunkCache: () => store.chunkCacheStats(),
          },
          ...(process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT && { otlpUrl: process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT }),
        });
  // Traces: spans for messages that carry a traceparent, exported when an OTLP endpoint is set.
  const tracing = createNodeTracer(config.region, process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  const service = buildBrokerService({ broker, nowMs: readPhysicalMs, log, ...(tracing.tracer && { tracer: tracing.tracer }) });
  // A batch may hold one message of messageBytesMax plus framing; allow twice that so an
  // oversize message still reaches our own check and gets a typed error.
  installHttp2ServerWindows();
  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': config.messageBytesMax * 2 + 1024 * 1024,
    'grpc.max_send_message_length': config.messageBytesMax * 2 + 1024 * 1024,
  });
  grpcServer.addService(service.definition, service.implementation);
  let grpcPort: number;
  let httpServer: HttpServer;
  try {
    grpcPort = await new Promise<number>((resolve, reject) => {
      grpcServer.bindAsync(`${config.grpcHost}:${config.grpcPort}`, grpc.ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(new AdmqError(ErrorCode.Config, `cannot listen for gRPC on ${config.grpcHost}:${config.grpcPort}: ${error.message}`)) : resolve(port),
      );
    });
    httpServer = await startAdminServer({
      broker,
      host: config.adminHost,
      port: config.adminPort,
      log,
      ...(metrics && { metrics }),
      ...(cluster && {
        cluster: () => ({
          status: () => cluster.status(),
          lookup: async (topic: string) => {
            if (!cluster.coordinator) throw new AdmqError(ErrorCode.ShuttingDown, 'the broker has not joined its cluster yet; retry');
            return cluster.coordinator.lookup(topic);
          },
          placementOwnerAdminUrl: (error: unknown) => {
            if (!(error instanceof TopicMovedError) || !error.owner || parseTopicName(error.topic).full !== parseTopicName(PLACEMENT_TOPIC).full) return undefined;
            const owner = error.owner;
            return cluster.coordinator?.brokers().find((b) => b.brokerId === owner)?.adminUrl;
          },
        }),
      }),
      info: () => ({ region: config.region, dataDir: config.dataDir, durability: config.durability, grpcAddress, adminUrl, replicationAddress: replication?.address, pid: process.pid }),
      ...(topology && {
        replication: () =>
          replication && {
            tenantRegions: (tenant: string) => {
              const regions = placement?.current.tenantRegions(tenant);
              if (!regions) return undefined;
              return regions.regions.map((name) => {
                const region = topology.regions.get(name);
                return { name, serviceUrl: region ? regionServiceUrl(region) : '', adminUrl: `http://${region?.admin ?? ''}`, home: name === regions.home };
              });
            },
            placement: placement as PlacementStore,
            status: () => replication?.replicator.status(),
            resetHistograms: () => replication?.replicator.resetHistograms(),
            propagateTopic: (topic: string, timeoutMs: number) => replication?.replicator.propagate(topic, timeoutMs) ?? Promise.resolve([]),
            lagHistory: (query: { namespace: string; fromMs: number; toMs: number; after?: string }) => lagHistory?.query(query),
          },
      }),
    }).catch((error: Error) => {
      throw new AdmqError(ErrorCode.Config, `cannot listen for the admin API on ${config.adminHost}:${config.adminPort}: ${error.message}`);
    });
  } catch (error) {
    grpcServer.forceShutdown();
    await cluster?.close();
    broker.close();
    await store.close();
    throw error;
  }
  if (cluster) {
    const address = httpServer.address();
    const port = typeof address === 'object' && address ? address.port : config.adminPort;
    try {
      await cluster.join({ grpcAddress: config.advertisedAddress || `${config.grpcHost}:${grpcPort}`, adminUrl: `http://${config.adminHost}:${port}` });
    } catch (error) {
      grpcServer.forceShutdown();
      httpServer.close();
      await cluster.close();
      broker.close();
      await store.close();
      throw new AdmqError(ErrorCode.Config, `cannot join the cluster: ${(error as Error).message}`, { cause: error });
    }
  }
  if (topology) {
    try {
      const store = placement as PlacementStore;
      replication = await startReplication({
        topology,
        topologyDir: dirname(resolve(config.topology)),
        region: config.region,
        listenAddress: (replicationNode as NodeSpec).replication,
        ...(cluster && { cluster: cluster.gate }),
        broker, readPhysicalMs, log, placement: () => store.current, ...(tracing.tracer && { tracer: tracing.tracer }), ...(metrics && { observeDelay: (topic: string, origin: string, ms: number) => metrics.observeReplicationDelay(topic, origin, ms) }) });
      const replicator = replication.replicator;
      store.onChange(() => replicator.rediscover());
      // A topic this broker starts or stops serving: its links start, or stop before its log goes.
      cluster?.gate.onServingChange(() => replicator.rediscover());
      broker.setHlcReleaseFrontier((topic) => replicator.releaseFrontier(topic));
      lagHistory = await startLagHistory({ topology, region: config.region, dataDir: config.dataDir, durability: config.durability, broker, placement: store, replicator, refusals, readPhysicalMs, log });
    } catch (error) {
      await replication?.close();
      grpcServer.forceShutdown();
      httpServer.close();
      await cluster?.close();
      broker.close();
      await store.close();
      throw error;
    }
  }
  const address = httpServer.address();
  const adminPort = typeof address === 'object' && address ? address.port : config.adminPort;
  const grpcAddress = `${config.grpcHost}:${grpcPort}`;
  const adminUrl = `http://${config.adminHost}:${adminPort}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      placement?.close();
      await lagHistory?.close();
      await replication?.close();
      // Hands this broker's topics over (ledgers closed, cursors written) while clients can still be told.
      await cluster?.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          grpcServer.forceShutdown();
          resolve();
        }, config.shutdownGraceMs);
        service.closeAll();
        grpcServer.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
      broker.close();
      await store.close();
      await metrics?.shutdown();
      await tracing.shutdown();
    })();
    return closing;
  };

  return { config, grpcAddress, adminUrl, replicationAddress: replication?.address, broker, close };
}

/**
 * Each namespace's conflict policy, from the topology; a custom resolver module is loaded
 * (relative to the topology file) once, at start, so every keyed write uses the same one.
 */
async function loadConflictPolicies(topology: Topology, topologyDir: string): Promise<(namespace: string) => ConflictPolicy> {
  const policies = new Map<string, ConflictPolicy>();
  for (const ns of topology.namespaces.values()) {
    const spec = ns.conflictPolicy;
    let resolver: unknown;
    if (spec.kind === 'custom') {
      const url = pathToFileURL(resolve(topologyDir, spec.module)).href;
      try {
        resolver = ((await import(url)) as Record<string, unknown>)[spec.export];
      } catch (error) {
        throw new ConfigError(`namespaces.${ns.name}.conflictPolicy.module: cannot load ${spec.module}: ${(error as Error).message}`);
      }
    }
    policies.set(ns.name, createConflictPolicy(spec, { resolver }));
  }
  const fallback = createConflictPolicy(DEFAULT_CONFLICT_POLICY_SPEC);
  return (namespace) => policies.get(namespace) ?? fallback;
}
