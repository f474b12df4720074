// The replicator: for every replicated topic and every neighbouring region that routing
// says should receive something, one LinkSender; plus the receiving service. Runs inside a
// region node by default (it is given the node's log), or as its own daemon.
import * as grpc from '@grpc/grpc-js';
import { releaseFrontier } from '../conflict/index.ts';
import { loadReplicationPackageDefinition } from '../proto/index.ts';
import { Placement, neighbours, nextHops, nodeReplicationAddress, replicationEntryAddresses, type Topology } from '../topology/index.ts';
import type { Tracer } from '../observability/tracing.ts';
import type { ReplicationLog } from './log.ts';
import { createReceiver, type ReceiverStats } from './receiver.ts';
import { decodeBatchRequest } from './batch-codec.ts';
import type { LinkState } from './decisions.ts';
import { LinkSender, type LinkStatus } from './sender.ts';

export interface ReplicatorConfig {
  topology: Topology;
  region: string;
  /**
   * Tenants' allowed regions and namespaces' replication sets as they are now (runtime
   * changes included); read at every discovery and for every hello. Default: the topology's.
   */
  placement?: () => Placement;
  /** How often new local topics are looked for, in ms. Default 500. */
  discoveryIntervalMs?: number;
  /** Entries in one batch. Default 1,000. */
  batchEntriesMax?: number;
  /** Payload bytes in one batch. Default 1 MiB. */
  batchBytesMax?: number;
  /**
   * The window of a link: batches, entries and payload bytes sent but not yet acknowledged.
   * Defaults 64, 20,000 and 16 MiB. A window that is small for the round trip makes
   * entries wait for acks: at 30 ms one way, 4 batches in flight doubled the delay.
   */
  inflightBatchesMax?: number;
  inflightEntriesMax?: number;
  inflightBytesMax?: number;
  /** Replicated subscriptions: how often acked frontiers go to the other regions, in ms. Default 1,000. */
  subscriptionSyncIntervalMs?: number;
  /** How often an idle link sends its watermarks, in ms. Default 200. */
  heartbeatIntervalMs?: number;
  /** How long new entries may wait to join a batch while others are in flight, in ms. Default 2. */
  batchLingerMs?: number;
}

export interface ReplicatorDeps {
  log: ReplicationLog;
  /** Credentials for the link to `remote` (TLCP checks the remote's certificate name). */
  channelCredentials: (remote: string) => grpc.ChannelCredentials;
  /** Name the remote's certificate must carry, per remote region (TLCP/TLS). */
  channelOptions?: (remote: string) => grpc.ChannelOptions;
  peerRegion: (call: grpc.ServerDuplexStream<unknown, unknown>) => string | undefined;
  nowMs?: () => number;
  random?: () => number;
  logLine?: (line: string) => void;
  /** Each replicated entry once durable here: its commit-to-commit delay in ms (metrics). */
  observeDelay?: (topic: string, origin: string, ms: number) => void;
  /** Spans for traced entries (observability/tracing.ts). */
  tracer?: Tracer;
}

export interface ReplicatorHandle {
  /** Looks again at topics and placement now (after a placement change), rather than at the next discovery. */
  rediscover(): void;
  /** The receiving service, to be added to the node's replication gRPC server. */
  readonly service: { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation };
  /**
   * Links, receiver counters, and per replicated topic this region's HLC watermarks by
   * origin ("every write from that origin with HLC ≤ T is durable here").
   */
  status(): { region: string; links: LinkStatus[]; receiver: ReceiverStats; watermarks: Record<string, Record<string, string>> };
  /**
   * Starts the links of a newly created local topic (and its partitions) now rather than
   * at the next discovery, and waits, at most `timeoutMs`, until every neighbour in the
   * replication set has accepted them (so the topic exists there). Resolves with each
   * link's state; a neighbour that is down shows as not connected, and its link keeps
   * retrying in the background.
   */
  /**
   * HLC-ordered delivery: the HLC up to which a topic's entries may be released here, the
   * lowest watermark over its replication set (undefined while a region has none yet).
   */
  releaseFrontier(topic: string): bigint | undefined;
  /** Starts every delay histogram afresh (links and receiver). */
  resetHistograms(): void;
  propagate(topic: string, timeoutMs: number): Promise<Array<{ topic: string; to: string; state: LinkState }>>;
  close(): Promise<void>;
}

type ReplicationConstructor = (new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => ReplicationClient) & { service: grpc.ServiceDefinition };

/**
 * The Replication service with the hand-written batch codec (batch-codec.ts): a sender
 * writes batches already encoded, as Buffers, which the serializer passes through, and
 * the receiver decodes batches itself; every other message goes through proto-loader.
 */
function withBatchCodec(generated: ReplicationConstructor): ReplicationConstructor {
  const methods: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(generated.service)) {
    methods[name] = {
      ...method,
      requestSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : method.requestSerialize(value)),
      requestDeserialize: (bytes: Buffer) => decodeBatchRequest(bytes) ?? method.requestDeserialize(bytes),
    };
  }
  return grpc.makeClientConstructor(methods, 'Replication') as unknown as ReplicationConstructor;
}

function namespaceOf(topic: string): string {
  const [tenant, namespace] = topic.replace(/^persistent:\/\//, '').split('/');
  return `${tenant}/${namespace}`;
}

type ReplicationClient = grpc.Client & { Replicate(options?: grpc.CallOptions): grpc.ClientDuplexStream<unknown, unknown> };

export function startReplicator(config: ReplicatorConfig, deps: ReplicatorDeps): ReplicatorHandle {
  const { topology, region } = config;
  const fixedPlacement = Placement.fromTopology(topology);
  const placement = config.placement ?? (() => fixedPlacement);
  const nowMs = deps.nowMs ?? Date.now;
  const random = deps.random ?? Math.random;
  const logLine = deps.logLine ?? ((line: string) => console.log(line));
  const pkg = grpc.loadPackageDefinition(loadReplicationPackageDefinition()) as unknown as {
    admq: { replication: { v1: { Replication: (new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => ReplicationClient) & { service: grpc.ServiceDefinition } } } };
  };
  const Replication = withBatchCodec(pkg.admq.replication.v1.Replication);
  const receiver = createReceiver({
    log: deps.log,
    knownRegion: (r) => topology.regions.has(r) && r !== region,
    mayHoldHere: (topic) => placement().mayHold(namespaceOf(topic), region),
    peerRegion: deps.peerRegion,
    logLine,
    nowMs,
    topicCreated: () => discover(),
    ...(deps.observeDelay && { observeDelay: deps.observeDelay }),
    ...(deps.tracer && { tracer: deps.tracer }),
  });
  // One channel per address: a remote region that is a cluster has one per broker.
  const clients = new Map<string, ReplicationClient>();
  const client = (remote: string, address: string): ReplicationClient => {
    let c = clients.get(address);
    if (!c) {
      c = new Replication(address, deps.channelCredentials(remote), {
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        'grpc.max_send_message_length': 64 * 1024 * 1024,
        'grpc-node.flow_control_window': 16 * 1024 * 1024,
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.initial_reconnect_backoff_ms': 100,
        // At most four connection attempts a second per remote region: still cheap (an
        // attempt into a partition hangs until the handshake times out, one refused by a
        // down host costs a SYN), and a region that comes back is noticed within a
        // quarter of a second, its links then retrying at once. Every second of waiting
        // after the network heals is replication lag.
        'grpc.max_reconnect_backoff_ms': 250,
        ...(deps.channelOptions?.(remote) ?? {}),
      });
      clients.set(address, c);
      watchReady(remote, c.getChannel());
    }
    return c;
  };
  const links = new Map<string, LinkSender>();
  let closed = false;
  // When a remote's channel becomes ready again, its links stop waiting out their backoff.
  const watchReady = (remote: string, channel: ReturnType<grpc.Client['getChannel']>): void => {
    let last = channel.getConnectivityState(false);
    const watch = (): void => {
      if (closed) return;
      channel.watchConnectivityState(last, Infinity, () => {
        const now = channel.getConnectivityState(false);
        if (now === grpc.connectivityState.READY && last !== grpc.connectivityState.READY) {
          for (const link of links.values()) if (link.remote === remote) link.retryNow();
        }
        // An idle channel would wait for the next call; ask it to keep trying the remote.
        if (now === grpc.connectivityState.IDLE && links.size > 0) channel.getConnectivityState(true);
        last = now;
        watch();
      });
    };
    watch();
  };
  // Whether an origin's entries go over the link to `remote`: a spanning tree per origin,
  // computed once per (replication set, remote, origin) rather than per entry.
  const routesOver = (members: string[], remote: string): ((origin: string) => boolean) => {
    const memo = new Map<string, boolean>();
    return (origin) => {
      let routed = memo.get(origin);
      if (routed === undefined) memo.set(origin, (routed = nextHops(topology.links, members, origin, region).includes(remote)));
      return routed;
    };
  };
  /**
   * How a link reaches its remote: the node a redirect named, else the region's entry
   * addresses in turn (a cluster's brokers, so that one that is down is not retried alone).
   */
  const streamOpener = (remote: string): ((node?: string) => grpc.ClientDuplexStream<unknown, unknown>) => {
    const entries = replicationEntryAddresses(topology, region, remote);
    let next = 0;
    return (node) => {
      const redirected = node === undefined ? undefined : nodeReplicationAddress(topology, region, remote, node);
      if (node !== undefined && redirected === undefined) logLine(`[${region} --> ${remote}] redirect to node ${node}, which the topology does not list; trying an entry node`);
      const address = redirected ?? (entries[next++ % entries.length] as string);
      return client(remote, address).Replicate();
    };
  };
  const discover = (): void => {
    const p = placement();
    const wanted = new Map<string, { topic: string; remote: string; members: string[]; remoteMayHold: boolean }>();
    for (const topic of deps.log.listTopics()) {
      const namespace = namespaceOf(topic);
      const members = p.replicationSet(namespace, region);
      if (members.length < 2 || !p.mayHold(namespace, region)) continue;
      for (const remote of neighbours(topology, region)) {
        if (!members.includes(remote)) continue;
        const remoteMayHold = p.mayHold(namespace, remote);
        // A link is rebuilt when its replication set or the remote's right to hold the
        // data changes; the new one resumes from the remote's marks like any reconnection.
        // In a cluster, also when this node starts serving the topic anew (a new log).
        const generation = deps.log.topicGeneration?.(topic) ?? 0;
        wanted.set(`${topic}\u0000${remote}\u0000${members.join(',')}\u0000${remoteMayHold}\u0000${generation}`, { topic, remote, members, remoteMayHold });
      }
    }
    // Placement changed (a region left a replication set, or a topic was deleted): stop
    // the links nobody wants any more, before their successors start. Nothing is deleted.
    for (const [key, link] of links) {
      if (wanted.has(key)) continue;
      link.stop();
      links.delete(key);
      logLine(`[${link.topic}][${region} --> ${link.remote}] link stopped: placement changed or the topic is no longer served here`);
    }
    for (const [key, { topic, remote, members, remoteMayHold }] of wanted) {
      if (links.has(key)) continue;
      const link = new LinkSender({
        topic,
        local: region,
        remote,
        log: deps.log,
        openStream: streamOpener(remote),
        routes: routesOver(members, remote),
        remoteMayHold,
        nowMs,
        random,
        logLine,
        batchEntriesMax: config.batchEntriesMax ?? 1000,
        batchBytesMax: config.batchBytesMax ?? 1024 * 1024,
        inflightBatchesMax: config.inflightBatchesMax ?? 64,
        inflightEntriesMax: config.inflightEntriesMax ?? 20_000,
        inflightBytesMax: config.inflightBytesMax ?? 16 * 1024 * 1024,
        subscriptionSyncIntervalMs: config.subscriptionSyncIntervalMs ?? 1000,
        heartbeatIntervalMs: config.heartbeatIntervalMs ?? 200,
        batchLingerMs: config.batchLingerMs ?? 2,
        ...(deps.tracer && { tracer: deps.tracer }),
      });
      links.set(key, link);
      link.start();
    }
  };
  discover();
  const timer = setInterval(discover, config.discoveryIntervalMs ?? 500);
  const linksOf = (topic: string): LinkSender[] =>
    [...links.values()].filter((l) => l.topic === topic || l.topic.startsWith(`${topic}-partition-`));
  const propagate = async (topic: string, timeoutMs: number): Promise<Array<{ topic: string; to: string; state: LinkState }>> => {
    discover();
    const deadline = nowMs() + timeoutMs;
    while (!closed && nowMs() < deadline && linksOf(topic).some((l) => l.state !== 'connected')) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return linksOf(topic).map((l) => ({ topic: l.topic, to: l.remote, state: l.state }));
  };
  return {
    service: { definition: Replication.service, implementation: { Replicate: receiver.handler as grpc.UntypedHandleCall } },
    propagate,
    rediscover: () => {
      if (!closed) discover();
    },
    resetHistograms: () => {
      for (const link of links.values()) link.resetHistogram();
      receiver.resetHistograms();
    },
    releaseFrontier: (topic) => {
      const members = placement().replicationSet(namespaceOf(topic), region);
      return releaseFrontier(deps.log.watermarks(topic), members.includes(region) ? members : [region]);
    },
    status: () => ({
      region,
      links: [...links.values()].map((l) => l.status()),
      receiver: receiver.stats(),
      watermarks: Object.fromEntries(
        [...new Set([...links.values()].map((l) => l.topic))].map((topic) => [topic, Object.fromEntries([...deps.log.watermarks(topic)].map(([o, h]) => [o, h.toString()]))]),
      ),
    }),
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      for (const link of links.values()) link.stop();
      for (const c of clients.values()) c.close();
    },
  };
}
