// A regional cluster for tests and benchmarks (DESIGN §4), all real processes on loopback:
// one etcd, storage nodes (`admq storage-node`) and brokers (`admq start --metadata-store`).
// Each broker reaches etcd through its own fault proxy, so a test can cut one broker off
// from the metadata store while clients still reach it. Ports are fixed per member, so a
// killed member restarts where clients and the registry expect it.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { startEtcd, type EtcdProcess } from './etcd.ts';
import { ADMQ_CLI, freePorts, startNodeProcess, type NodeProcess } from './processes.ts';
import { ProxyProcess } from './proxy-process.ts';
import { removeTempDir, tempDir } from './temp-dir.ts';

export interface StorageNodeMember {
  id: string;
  port: number;
  /** Between the brokers and this node, when the cluster was started with storageProxies. */
  proxy: ProxyProcess | undefined;
  dataDir: string;
  child: ChildProcess | undefined;
  exited: Promise<unknown>;
  output: string;
}

export interface BrokerMember {
  id: string;
  grpcPort: number;
  adminPort: number;
  dataDir: string;
  /** Between this broker and etcd (its own process, so a partition's leftovers die with it). */
  etcdProxy: ProxyProcess;
  node: NodeProcess | undefined;
  /** The region's name (default "cluster"). */
  region: string;
  /** Further `admq start` arguments, e.g. a topology that lists this broker. */
  extraArgs: string[];
}

/** A broker placed by the test: its ports, region and further arguments (e.g. a topology naming it). */
export interface BrokerPlacement {
  grpcPort?: number;
  adminPort?: number;
  region?: string;
  args?: string[];
}

export interface RegionClusterOptions {
  storageNodes: number;
  brokers: number;
  /** Ownership lease TTL of the brokers, ms (default 3000: faster tests than the 5000 default). */
  ownershipLeaseMs?: number;
  /** E/Qw/Qa (default 3/3/2). */
  quorum?: [number, number, number];
  /** Storage nodes' registry lease TTL, ms (default 2000). */
  storageLeaseMs?: number;
  /** fsync on storage nodes (default true). */
  sync?: boolean;
  /** Brokers reach each storage node through its own proxy (which it advertises), so a test can cut one off. */
  storageProxies?: boolean;
  log?: (line: string) => void;
}

export class RegionCluster {
  readonly storageNodes = new Map<string, StorageNodeMember>();
  readonly brokers = new Map<string, BrokerMember>();
  readonly #root: string;

  private constructor(
    readonly etcd: EtcdProcess,
    readonly options: RegionClusterOptions,
  ) {
    this.#root = tempDir('admq-region-cluster-');
  }

  static async start(options: RegionClusterOptions): Promise<RegionCluster> {
    const etcd = await startEtcd();
    const cluster = new RegionCluster(etcd, options);
    try {
      for (let i = 1; i <= options.storageNodes; i++) await cluster.addStorageNode(`s${i}`);
      for (let i = 1; i <= options.brokers; i++) await cluster.addBroker(`b${i}`);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get metadataUrl(): string {
    return `etcd://${this.etcd.endpoint}`;
  }

  /** A gRPC target naming every broker (clients bootstrap through whichever answers). */
  serviceUrl(): string {
    return `ipv4:${[...this.brokers.values()].map((b) => `127.0.0.1:${b.grpcPort}`).join(',')}`;
  }

  broker(id: string): BrokerMember {
    const b = this.brokers.get(id);
    if (!b) throw new Error(`no broker ${id}`);
    return b;
  }

  adminUrl(id: string): string {
    return `http://127.0.0.1:${this.broker(id).adminPort}`;
  }

  async addStorageNode(id: string): Promise<StorageNodeMember> {
    const [port] = (await freePorts(1)) as [number];
    const proxy = this.options.storageProxies ? await ProxyProcess.start('127.0.0.1', port, `brokers->${id}`) : undefined;
    const member: StorageNodeMember = { id, port, proxy, dataDir: join(this.#root, id), child: undefined, exited: Promise.resolve(), output: '' };
    this.storageNodes.set(id, member);
    await this.startStorageNode(id);
    return member;
  }

  async startStorageNode(id: string): Promise<void> {
    const member = this.storageNodes.get(id);
    if (!member) throw new Error(`no storage node ${id}`);
    const args = [ADMQ_CLI, 'storage-node', '--data-dir', member.dataDir, '--port', String(member.port), '--node-id', id, '--metadata-store', this.metadataUrl, '--lease-ttl-ms', String(this.options.storageLeaseMs ?? 2000)];
    if (this.options.sync === false) args.push('--no-sync');
    if (member.proxy) args.push('--advertised-address', member.proxy.address);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    member.child = child;
    member.output = '';
    member.exited = new Promise((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`storage node ${id} did not start:\n${member.output}`)), 30_000);
      const onData = (chunk: Buffer): void => {
        member.output += chunk.toString();
        if (/storage-node \S+ listening on/.test(member.output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (c: Buffer) => (member.output += c.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`storage node ${id} exited with ${code}:\n${member.output}`));
      });
    });
  }

  async killStorageNode(id: string): Promise<void> {
    const member = this.storageNodes.get(id);
    if (!member?.child) return;
    member.child.kill('SIGKILL');
    await member.exited;
    member.child = undefined;
  }

  async addBroker(id: string, placement: BrokerPlacement = {}): Promise<BrokerMember> {
    const [freeGrpc, freeAdmin] = (await freePorts(2)) as [number, number];
    const grpcPort = placement.grpcPort ?? freeGrpc;
    const adminPort = placement.adminPort ?? freeAdmin;
    const [host, port] = this.etcd.endpoint.split(':') as [string, string];
    const etcdProxy = await ProxyProcess.start(host, Number(port), `${id}->etcd`);
    const member: BrokerMember = { id, grpcPort, adminPort, dataDir: join(this.#root, id), etcdProxy, node: undefined, region: placement.region ?? 'cluster', extraArgs: placement.args ?? [] };
    this.brokers.set(id, member);
    await this.startBroker(id);
    return member;
  }

  async startBroker(id: string): Promise<NodeProcess> {
    const member = this.broker(id);
    const quorum = this.options.quorum ?? [3, 3, 2];
    member.node = await startNodeProcess([
      '--region', member.region, '--data-dir', member.dataDir,
      '--grpc-port', String(member.grpcPort), '--admin-port', String(member.adminPort),
      '--metadata-store', `etcd://${member.etcdProxy.address}`, '--broker-id', id,
      '--ownership-lease-ms', String(this.options.ownershipLeaseMs ?? 3000), '--quorum', quorum.join('/'),
      ...member.extraArgs,
    ]);
    return member.node;
  }

  async killBroker(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const member = this.broker(id);
    if (!member.node) return;
    member.node.child.kill(signal);
    await member.node.exited;
    member.node = undefined;
  }

  async stop(): Promise<void> {
    for (const b of this.brokers.values()) {
      if (b.node) {
        b.node.child.kill('SIGKILL');
        await b.node.exited;
      }
      await b.etcdProxy.stop();
    }
    for (const s of this.storageNodes.values()) {
      if (s.child) {
        s.child.kill('SIGKILL');
        await s.exited;
      }
      await s.proxy?.stop();
    }
    await this.etcd.stop();
    removeTempDir(this.#root);
  }
}
