// Runs several regions as real region-node processes on loopback, from a generated
// topology, with a fault-injecting proxy on every directed replication link. Tests use it
// to partition, delay, kill -9, restart and skew regions, and to read every region's log.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdminClient, AdmqClient, type Message } from '../client/index.ts';
import { prepareDev } from '../cli/dev.ts';
import { freePorts, startNodeProcess, waitFor, type NodeProcess } from '../test-support/processes.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';
import { FaultProxy } from './fault-proxy.ts';
import { NetworkProcess, type LinkProxy } from './network-process.ts';

export interface ClusterOptions {
  /** Environment of every region's process (e.g. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). */
  env?: Record<string, string>;
  regions: string[];
  /** Undirected links; default full mesh. */
  links?: Array<[string, string]>;
  transport?: 'tlcp' | 'tls' | 'insecure';
  tenants?: Record<string, { allowedRegions: string[]; homeRegion?: string }>;
  namespaces?: Record<string, { replicationSet: string[]; conflictPolicy?: unknown }>;
  maxClockOffsetMs?: number;
  subscriptionSyncIntervalMs?: number;
  /** The topology's lagHistory settings (compliance/), e.g. a finer downsampled resolution. */
  lagHistory?: Record<string, number>;
  /** Per-region clock skew in ms, through the node's injected clock. */
  clockSkewMs?: Record<string, number>;
  log?: (line: string) => void;
  /**
   * Where the link proxies run: in this process (the default; changes apply at once), or
   * in a process of their own (`process`), so that this process's load cannot add jitter
   * to the simulated network (benchmarks; await `networkSettled()` after a change).
   */
  network?: 'in-process' | 'process';
}

interface RegionRuntime {
  name: string;
  grpcPort: number;
  adminPort: number;
  replicationPort: number;
  process: NodeProcess | undefined;
  client: AdmqClient | undefined;
}

export class Cluster {
  readonly dir: string;
  readonly topologyPath: string;
  readonly regions = new Map<string, RegionRuntime>();
  /** Proxy of each directed link, keyed "from->to". */
  readonly proxies = new Map<string, LinkProxy>();
  #network: NetworkProcess | undefined;
  readonly #options: ClusterOptions;
  #skew: Record<string, number>;
  /** Bumped whenever a region moves ports and the topology file is rewritten. */
  #topologyVersion = 0;
  /** The topology version each region's process read when it started. */
  readonly #startedWith = new Map<string, number>();

  /** The topology as written to `topologyPath`; rewritten when a region has to move to new ports. */
  readonly #topology: { regions: Record<string, { grpc: string; admin: string; replication: string }> };

  private constructor(options: ClusterOptions, dir: string, topologyPath: string, topology: { regions: Record<string, { grpc: string; admin: string; replication: string }> }) {
    this.#options = options;
    this.#topology = topology;
    this.dir = dir;
    this.topologyPath = topologyPath;
    this.#skew = { ...(options.clockSkewMs ?? {}) };
  }

  static async start(options: ClusterOptions): Promise<Cluster> {
    const dir = tempDir('admq-cluster-');
    const transport = options.transport ?? 'tlcp';
    // Certificates come from the same code as `admq dev`.
    if (transport !== 'insecure') await prepareDev({ dir, regions: options.regions, basePort: 1, transport });
    const ports = new Map<string, { grpc: number; admin: number; replication: number }>();
    const picked = await freePorts(options.regions.length * 3);
    options.regions.forEach((r, i) => ports.set(r, { grpc: picked[3 * i] as number, admin: picked[3 * i + 1] as number, replication: picked[3 * i + 2] as number }));
    const links = options.links ?? options.regions.flatMap((a, i) => options.regions.slice(i + 1).map((b) => [a, b] as [string, string]));
    const proxies = new Map<string, LinkProxy>();
    const network = options.network === 'process' ? NetworkProcess.start() : undefined;
    try {
      for (const [a, b] of links) {
        for (const [from, to] of [[a, b], [b, a]] as Array<[string, string]>) {
          const targetPort = (ports.get(to) as { replication: number }).replication;
          const name = `${from}->${to}`;
          proxies.set(name, network ? await network.proxy(name, targetPort) : await FaultProxy.start({ targetHost: '127.0.0.1', targetPort, name }));
        }
      }
    } catch (error) {
      for (const proxy of proxies.values()) await proxy.close();
      await network?.stop();
      throw error;
    }
    const topology = {
      regions: Object.fromEntries(
        options.regions.map((r) => {
          const p = ports.get(r) as { grpc: number; admin: number; replication: number };
          return [r, { grpc: `127.0.0.1:${p.grpc}`, admin: `127.0.0.1:${p.admin}`, replication: `127.0.0.1:${p.replication}`, dataDir: r }];
        }),
      ),
      links,
      endpoints: Object.fromEntries([...proxies].map(([key, proxy]) => [key, proxy.address])),
      transport: transport === 'insecure' ? { kind: 'insecure' } : { kind: transport, certDir: 'certs' },
      tenants: options.tenants ?? { public: { allowedRegions: options.regions } },
      namespaces: options.namespaces ?? { 'public/default': { replicationSet: options.regions } },
      maxClockOffsetMs: options.maxClockOffsetMs ?? 500,
      ...(options.subscriptionSyncIntervalMs !== undefined ? { subscriptionSyncIntervalMs: options.subscriptionSyncIntervalMs } : {}),
      ...(options.lagHistory !== undefined ? { lagHistory: options.lagHistory } : {}),
    };
    const topologyPath = join(dir, 'topology.json');
    writeFileSync(topologyPath, JSON.stringify(topology, null, 2));
    const cluster = new Cluster(options, dir, topologyPath, topology);
    for (const [key, proxy] of proxies) cluster.proxies.set(key, proxy);
    cluster.#network = network;
    for (const r of options.regions) {
      const p = ports.get(r) as { grpc: number; admin: number; replication: number };
      cluster.regions.set(r, { name: r, grpcPort: p.grpc, adminPort: p.admin, replicationPort: p.replication, process: undefined, client: undefined });
    }
    let started = await Promise.allSettled(options.regions.map((r) => cluster.startRegion(r)));
    // A region that had to move ports rewrote the topology after others had read it: those
    // would hand out its old endpoints (GET /tenants/T/regions), so they start again.
    const stale = options.regions.filter((r) => (cluster.#startedWith.get(r) ?? 0) < cluster.#topologyVersion && cluster.regions.get(r)?.process);
    if (stale.length > 0 && !started.some((s) => s.status === 'rejected')) {
      started = await Promise.allSettled(
        stale.map(async (r) => {
          const p = cluster.regions.get(r)?.process;
          p?.child.kill('SIGTERM');
          await p?.exited;
          await cluster.startRegion(r);
        }),
      );
    }
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      // Leave no region process behind when the cluster cannot start whole.
      await cluster.stop();
      throw failed.reason;
    }
    return cluster;
  }

  #region(name: string): RegionRuntime {
    const r = this.regions.get(name);
    if (!r) throw new Error(`no region ${name} in this cluster`);
    return r;
  }

  async startRegion(name: string): Promise<void> {
    const r = this.#region(name);
    const skew = this.#skew[name] ?? 0;
    const env: Record<string, string> = { ...(this.#options.env ?? {}), ...(skew !== 0 ? { ADMQ_CLOCK_SKEW_MS: String(skew) } : {}) };
    for (let attempt = 1; ; attempt++) {
      try {
        const version = this.#topologyVersion;
        r.process = await startNodeProcess(['--topology', this.topologyPath, '--region', name], 60_000, env);
        this.#startedWith.set(name, version);
        break;
      } catch (error) {
        // Ports are picked free before the nodes start, so another process may take one in
        // between (an outgoing loopback connection's ephemeral port, say). On a first start
        // (no client bound to the old port yet) move to new ports. On a restart, clients
        // keep the gRPC port: move only the admin port (tests reach it through admin()), or
        // wait for the short-lived holder of the other port to let it go.
        const message = (error as Error).message;
        if (!/EADDRINUSE/.test(message) || attempt >= 5) throw error;
        if (!r.client) await this.#movePorts(name);
        else if (/admin API/.test(message)) await this.#moveAdminPort(name);
        else await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    r.process.child.stdout?.on('data', (c: Buffer) => this.#options.log?.(`[${name}] ${c.toString().trimEnd()}`));
  }

  async #movePorts(name: string): Promise<void> {
    const r = this.#region(name);
    [r.grpcPort, r.adminPort, r.replicationPort] = (await freePorts(3)) as [number, number, number];
    this.#topology.regions[name] = { ...this.#topology.regions[name], grpc: `127.0.0.1:${r.grpcPort}`, admin: `127.0.0.1:${r.adminPort}`, replication: `127.0.0.1:${r.replicationPort}` };
    writeFileSync(this.topologyPath, JSON.stringify(this.#topology, null, 2));
    this.#topologyVersion++;
    for (const [key, proxy] of this.proxies) if (key.endsWith(`->${name}`)) proxy.retarget(r.replicationPort);
  }

  async #moveAdminPort(name: string): Promise<void> {
    const r = this.#region(name);
    [r.adminPort] = (await freePorts(1)) as [number];
    this.#topology.regions[name] = { ...this.#topology.regions[name], grpc: `127.0.0.1:${r.grpcPort}`, admin: `127.0.0.1:${r.adminPort}`, replication: `127.0.0.1:${r.replicationPort}` };
    writeFileSync(this.topologyPath, JSON.stringify(this.#topology, null, 2));
    this.#topologyVersion++;
  }

  /** SIGKILL: no shutdown, no flush beyond what the node already made durable. */
  async kill(name: string): Promise<void> {
    const r = this.#region(name);
    const p = r.process;
    r.process = undefined;
    if (!p) return;
    p.child.kill('SIGKILL');
    await p.exited;
  }

  async restart(name: string, options: { clockSkewMs?: number } = {}): Promise<void> {
    await this.kill(name);
    if (options.clockSkewMs !== undefined) this.#skew[name] = options.clockSkewMs;
    await this.startRegion(name);
  }

  /** Cuts every link to and from `name`, both ways. */
  partition(name: string): void {
    for (const [key, proxy] of this.proxies) {
      const [from, to] = key.split('->');
      if (from === name || to === name) proxy.blackhole('both');
    }
  }

  heal(): void {
    for (const proxy of this.proxies.values()) proxy.heal();
  }

  setDelay(oneWayMs: number): void {
    for (const proxy of this.proxies.values()) proxy.setDelay(oneWayMs);
  }

  grpcAddress(name: string): string {
    return `127.0.0.1:${this.#region(name).grpcPort}`;
  }

  admin(name: string): AdminClient {
    return new AdminClient(`http://127.0.0.1:${this.#region(name).adminPort}`);
  }

  /** A client bound to one region (reconnects by itself across restarts). */
  client(name: string): AdmqClient {
    const r = this.#region(name);
    r.client ??= new AdmqClient({ serviceUrl: this.grpcAddress(name), backoffInitialMs: 50, backoffMaxMs: 1000 });
    return r.client;
  }

  /** Reads a topic's whole log in `region` with a fresh subscription. */
  async readAll(region: string, topic: string, timeoutMs = 30_000): Promise<Message[]> {
    const stats = (await this.admin(region).topicStats(topic)) as { entries: number };
    let consumer: Awaited<ReturnType<AdmqClient['subscribe']>> | undefined;
    // A region restarted a moment ago: its admin API answers, but this client's channel may
    // still be waiting out a reconnect backoff, and a new call fails fast meanwhile.
    await waitFor(
      async () => {
        try {
          consumer = await this.client(region).subscribe({ topic, subscription: `read-${Date.now()}-${Math.random().toString(36).slice(2)}`, initialPosition: 'earliest', receiverQueueSize: 5000 });
          return true;
        } catch (error) {
          if ((error as { code?: string }).code !== 'ADMQ_ERR_CONNECTION') throw error;
          return false;
        }
      },
      timeoutMs,
      `a consumer of ${topic} in ${region}`,
    );
    if (!consumer) throw new Error(`no consumer of ${topic} in ${region}`);
    const out: Message[] = [];
    try {
      while (out.length < stats.entries) out.push(await consumer.receive(timeoutMs));
    } finally {
      await consumer.close();
    }
    return out;
  }

  /** Waits until every region holds `count` entries of `topic`. */
  async waitForEntries(topic: string, count: number, timeoutMs: number): Promise<void> {
    await waitFor(
      async () => {
        for (const name of this.regions.keys()) {
          try {
            const stats = (await this.admin(name).topicStats(topic)) as { entries: number };
            if (stats.entries < count) return false;
          } catch {
            return false;
          }
        }
        return true;
      },
      timeoutMs,
      `${count} entries of ${topic} in every region`,
    );
  }

  /**
   * Creates a topic in one region and waits until every region in `regions` (default: all)
   * has it. The admin API waits for the neighbours; a relay's spokes get it one hop later.
   */
  async createTopic(inRegion: string, topic: string, options: { partitions?: number; keyed?: boolean; regions?: string[]; timeoutMs?: number } = {}): Promise<void> {
    await this.admin(inRegion).createTopic(topic, options.partitions ?? 0, { keyed: options.keyed === true });
    const regions = options.regions ?? [...this.regions.keys()];
    await waitFor(
      async () => {
        for (const name of regions) {
          try {
            await this.admin(name).topicStats(topic);
          } catch {
            return false;
          }
        }
        return true;
      },
      options.timeoutMs ?? 30_000,
      `${topic} to exist in ${regions.join(', ')}`,
    );
  }

  /**
   * Waits until the topic has converged: every region holds the same number of entries and
   * every link of the topic is connected with an empty backlog (equal counts alone can be
   * a coincidence while a link still has entries to ship).
   */
  async waitConverged(topic: string, timeoutMs: number): Promise<void> {
    await waitFor(
      async () => {
        const counts: number[] = [];
        for (const name of this.regions.keys()) {
          const stats = (await this.admin(name).topicStats(topic)) as { entries: number };
          counts.push(stats.entries);
          const links = (await this.replicationStatus(name)).links.filter((l) => l.topic === topic);
          if (links.some((l) => l.state !== 'connected' || Number(l.backlogEntries) > 0)) return false;
        }
        return counts.every((c) => c === counts[0]) && (counts[0] ?? 0) > 0;
      },
      timeoutMs,
      `${topic} to converge in every region`,
    );
  }

  async replicationStatus(name: string): Promise<{ links: Array<Record<string, unknown>>; receiver: Record<string, number>; watermarks: Record<string, Record<string, string>> }> {
    return this.admin(name).call('GET', '/replication/status');
  }

  async stop(): Promise<void> {
    for (const r of this.regions.values()) {
      await r.client?.close();
      r.client = undefined;
      if (r.process) {
        r.process.child.kill('SIGTERM');
        await r.process.exited;
        r.process = undefined;
      }
    }
    for (const proxy of this.proxies.values()) await proxy.close();
    await this.#network?.stop();
    // The regions' LMDB files can reach a gigabyte in a benchmark; ADMQ_KEEP_TEST_DATA=1 keeps them.
    removeTempDir(this.dir);
  }

  /** Resolves once every proxy change so far is in force (at once for in-process proxies). */
  async networkSettled(): Promise<void> {
    await this.#network?.settled();
  }
}
