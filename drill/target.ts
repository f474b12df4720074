// Where a drill runs, and the faults it can inject there. Two kinds of target:
//
// - HarnessTarget: a multi-region-tests Cluster (real region processes on loopback, a fault
//   proxy on every replication link). The drill adds one more proxy per region in front of
//   its client API, so that a region can also be cut off from clients. Every fault works.
// - TopologyTarget: any deployment described by a topology file. A region outage by kill
//   works when the node runs on this host (its pid comes from the admin API) and the user
//   says how to restart it; partitions and clock skew need powers over the network and the
//   nodes' clocks that the drill does not have, so they are refused up front, by name.
//
// The drill itself only sees the DrillTarget interface.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { AdminClient } from '../client/index.ts';
import { Cluster } from '../multi-region-tests/cluster.ts';
import { FaultProxy } from '../multi-region-tests/fault-proxy.ts';
import { loadTopology, type Topology } from '../topology/index.ts';

export type DrillErrorCode =
  /** The scenario cannot run against this target (the message says why and what to do instead). */
  | 'ADMQ_ERR_DRILL_UNSUPPORTED'
  /** A drill option is wrong (the message names it). */
  | 'ADMQ_ERR_DRILL_CONFIG'
  /** The deployment did not do what the drill asked: unreachable, kill or restart failed. */
  | 'ADMQ_ERR_DRILL_TARGET'
  /** A bounded wait ran out (the message says what for). */
  | 'ADMQ_ERR_DRILL_TIMEOUT'
  /** A capability the scenario needs is not in this build (planned failover). */
  | 'ADMQ_ERR_DRILL_UNAVAILABLE'
  /** The drill was interrupted (SIGINT, or its AbortSignal); the fault was undone. */
  | 'ADMQ_ERR_DRILL_ABORTED';

export class DrillError extends Error {
  readonly code: DrillErrorCode;
  constructor(code: DrillErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DrillError';
    this.code = code;
  }
}

/** The faults a scenario may ask a target for. */
export type FaultKind = 'kill' | 'isolate' | 'cut-link' | 'skew-clock';

export interface DrillTarget {
  readonly kind: 'harness' | 'topology';
  /** One line for the report: what was drilled. */
  readonly description: string;
  /** Regions, tenants, namespaces (replication sets) and maxClockOffsetMs. */
  readonly topology: Topology;
  /** host:port where canary clients reach the region (through fault injection, if any). */
  clientAddress(region: string): string;
  /** host:port of the region's client API, directly: the drill's own observers read logs here. */
  grpcAddress(region: string): string;
  /** http://host:port of the region's admin API. */
  adminUrl(region: string): string;
  /**
   * Checks, before anything runs, that the target can inject `fault` on `regions`; throws a
   * DrillError (ADMQ_ERR_DRILL_UNSUPPORTED or ADMQ_ERR_DRILL_TARGET) naming the scenario
   * and why not.
   */
  preflight(fault: FaultKind, regions: string[], scenario: string): Promise<void>;
  /** SIGKILL of the region's process; resolves once it is gone. */
  kill(region: string): Promise<void>;
  /** Brings a killed region back; resolves once its admin API answers. */
  restart(region: string): Promise<void>;
  /** Cuts the region off from the other regions and from clients, both ways. */
  isolate(region: string): Promise<void>;
  /** Cuts the replication link between a and b, both ways. */
  cutLink(a: string, b: string): Promise<void>;
  /** Lifts every isolation and cut link. */
  heal(): Promise<void>;
  /** Runs the region's clock `skewMs` ahead (0: back to true time). */
  skewClock(region: string, skewMs: number): Promise<void>;
  /** Releases what the target made for the drill (and stops a harness it started). Idempotent. */
  close(): Promise<void>;
}

function requireRegion(topology: Topology, region: string): void {
  if (!topology.regions.has(region)) {
    throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `region "${region}" is not in the topology (regions: ${[...topology.regions.keys()].join(', ')})`);
  }
}

// ---------------------------------------------------------------------------------------
// The multi-region test harness

export interface HarnessStartOptions {
  regions?: string[];
  /** One-way delay on every replication link, in ms. Default 30. */
  linkDelayMs?: number;
  transport?: 'tlcp' | 'tls' | 'insecure';
  log?: (line: string) => void;
}

export const HARNESS_REGIONS = ['shanghai', 'beijing', 'shenzhen'];

export class HarnessTarget implements DrillTarget {
  readonly kind = 'harness';
  readonly description: string;
  readonly topology: Topology;
  readonly cluster: Cluster;
  /** Client-side proxy of each region: canary clients connect here, so they can be cut off. */
  readonly #clientProxies: Map<string, FaultProxy>;
  readonly #owned: boolean;
  #closing: Promise<void> | undefined;

  private constructor(cluster: Cluster, clientProxies: Map<string, FaultProxy>, owned: boolean, description: string) {
    this.cluster = cluster;
    this.#clientProxies = clientProxies;
    this.#owned = owned;
    // The harness writes a real topology file: the drill reads it like any other.
    this.topology = loadTopology(cluster.topologyPath);
    this.description = description;
  }

  /** Starts a harness of its own (stopped by close()): by default the three regions of `admq dev`, TLCP, 30 ms. */
  static async start(options: HarnessStartOptions = {}): Promise<HarnessTarget> {
    const regions = options.regions ?? HARNESS_REGIONS;
    const transport = options.transport ?? 'tlcp';
    const delayMs = options.linkDelayMs ?? 30;
    const cluster = await Cluster.start({ regions, transport, ...(options.log ? { log: options.log } : {}) });
    try {
      cluster.setDelay(delayMs);
      return await HarnessTarget.#wrap(cluster, true, `harness: ${regions.join(', ')} on loopback, ${transport} links, ${delayMs} ms one-way delay (started by the drill)`);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** Drills a Cluster someone else started (and stops): tests use this. */
  static async wrap(cluster: Cluster, description = `harness: ${[...cluster.regions.keys()].join(', ')} on loopback`): Promise<HarnessTarget> {
    return HarnessTarget.#wrap(cluster, false, description);
  }

  static async #wrap(cluster: Cluster, owned: boolean, description: string): Promise<HarnessTarget> {
    const proxies = new Map<string, FaultProxy>();
    try {
      for (const region of cluster.regions.keys()) {
        proxies.set(region, await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: portOf(cluster.grpcAddress(region)), name: `clients->${region}` }));
      }
    } catch (error) {
      for (const proxy of proxies.values()) await proxy.close();
      throw error;
    }
    return new HarnessTarget(cluster, proxies, owned, description);
  }

  #proxy(region: string): FaultProxy {
    const proxy = this.#clientProxies.get(region);
    if (!proxy) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `region "${region}" is not in this harness (regions: ${[...this.#clientProxies.keys()].join(', ')})`);
    return proxy;
  }

  clientAddress(region: string): string {
    return this.#proxy(region).address;
  }

  grpcAddress(region: string): string {
    requireRegion(this.topology, region);
    return this.cluster.grpcAddress(region);
  }

  adminUrl(region: string): string {
    requireRegion(this.topology, region);
    return this.cluster.admin(region).adminUrl;
  }

  async preflight(fault: FaultKind, regions: string[]): Promise<void> {
    for (const region of regions) requireRegion(this.topology, region);
    if (fault === 'cut-link') {
      const [a, b] = regions as [string, string];
      if (!this.cluster.proxies.has(`${a}->${b}`)) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `there is no replication link between ${a} and ${b} in this harness`);
    }
  }

  async kill(region: string): Promise<void> {
    requireRegion(this.topology, region);
    await this.cluster.kill(region);
  }

  async restart(region: string): Promise<void> {
    requireRegion(this.topology, region);
    await this.cluster.startRegion(region);
    this.#followPort(region);
  }

  /** A region that had to move to new ports on restart: its client proxy follows. */
  #followPort(region: string): void {
    this.#proxy(region).retarget(portOf(this.cluster.grpcAddress(region)));
  }

  async isolate(region: string): Promise<void> {
    const proxy = this.#proxy(region);
    this.cluster.partition(region);
    proxy.blackhole('both');
  }

  async cutLink(a: string, b: string): Promise<void> {
    const forward = this.cluster.proxies.get(`${a}->${b}`);
    const backward = this.cluster.proxies.get(`${b}->${a}`);
    if (!forward || !backward) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `there is no replication link between ${a} and ${b} in this harness`);
    forward.blackhole('both');
    backward.blackhole('both');
  }

  async heal(): Promise<void> {
    this.cluster.heal();
    for (const proxy of this.#clientProxies.values()) proxy.heal();
  }

  /** The node reads its skew at start (ADMQ_CLOCK_SKEW_MS), so this restarts the region's process. */
  async skewClock(region: string, skewMs: number): Promise<void> {
    requireRegion(this.topology, region);
    await this.cluster.restart(region, { clockSkewMs: skewMs });
    this.#followPort(region);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const proxy of this.#clientProxies.values()) await proxy.close();
      if (this.#owned) await this.cluster.stop();
    })();
    return this.#closing;
  }
}

function portOf(address: string): number {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `"${address}" is not host:port`);
  return port;
}

// ---------------------------------------------------------------------------------------
// A deployment described by a topology file

export interface TopologyTargetOptions {
  /**
   * Shell command that brings a killed region back, `{region}` replaced by its name (run by
   * /bin/sh, detached: it may be the node itself, or `systemctl start …`).
   */
  restartCommand?: string;
  /** How long a restarted region may take until its admin API answers, in ms. Default 60,000. */
  restartTimeoutMs?: number;
  /** Where the restart command's output goes (restart-<region>.log). Default: the current directory. */
  logDir?: string;
}

const WHY_NOT: Record<Exclude<FaultKind, 'kill'>, string> = {
  'isolate':
    'cutting a region off from the other regions and from clients needs firewall rules on the region hosts; admq does not change your network. Use --mode kill, or run the scenario against --harness',
  'cut-link':
    'cutting one replication link needs firewall rules on the two region hosts; admq does not change your network. Run it against --harness, or cut the link yourself and watch `admq replication status`',
  'skew-clock':
    'skewing a node\'s clock needs control of the node process: it reads ADMQ_CLOCK_SKEW_MS only when it starts, and the environment of a restart command (say, a service manager) is not the drill\'s to set. Run it against --harness',
};

export class TopologyTarget implements DrillTarget {
  readonly kind = 'topology';
  readonly description: string;
  readonly topology: Topology;
  readonly #options: TopologyTargetOptions;

  constructor(path: string, options: TopologyTargetOptions = {}) {
    this.topology = loadTopology(path);
    this.#options = options;
    if (options.restartCommand !== undefined && !options.restartCommand.includes('{region}') && this.topology.regions.size > 1) {
      throw new DrillError('ADMQ_ERR_DRILL_CONFIG', '--restart-command must contain {region} (it is replaced by the name of the region to restart)');
    }
    this.description = `topology ${path}: ${[...this.topology.regions.keys()].join(', ')}`;
  }

  #region(region: string): { grpc: string; admin: string } {
    const spec = this.topology.regions.get(region);
    if (!spec) throw new DrillError('ADMQ_ERR_DRILL_CONFIG', `region "${region}" is not in the topology (regions: ${[...this.topology.regions.keys()].join(', ')})`);
    return spec;
  }

  clientAddress(region: string): string {
    return this.#region(region).grpc;
  }

  grpcAddress(region: string): string {
    return this.#region(region).grpc;
  }

  adminUrl(region: string): string {
    return `http://${this.#region(region).admin}`;
  }

  async preflight(fault: FaultKind, regions: string[], scenario: string): Promise<void> {
    for (const region of regions) this.#region(region);
    if (fault !== 'kill') throw new DrillError('ADMQ_ERR_DRILL_UNSUPPORTED', `${scenario} cannot run against a deployment from a topology file: ${WHY_NOT[fault]}`);
    if (!this.#options.restartCommand) {
      throw new DrillError('ADMQ_ERR_DRILL_UNSUPPORTED', `${scenario} kills a region's node and must bring it back: give --restart-command (e.g. "systemctl start admq@{region}")`);
    }
    for (const region of regions) await this.#localPid(region, scenario);
  }

  /** The pid of the region's node, checked to be a process of this host that runs admq. */
  async #localPid(region: string, scenario: string): Promise<number> {
    const admin = this.#region(region).admin;
    const host = admin.slice(0, admin.lastIndexOf(':'));
    if (!isLocalHost(host)) {
      throw new DrillError(
        'ADMQ_ERR_DRILL_UNSUPPORTED',
        `${scenario}: region ${region}'s node is on ${host}, not on this host; the drill kills a node by the pid from its admin API, which is only possible on the same host. Run the drill on ${host}`,
      );
    }
    let info: { pid?: unknown; region?: unknown };
    try {
      info = await new AdminClient(this.adminUrl(region)).call('GET', '/node');
    } catch (error) {
      throw new DrillError('ADMQ_ERR_DRILL_TARGET', `${scenario}: cannot ask region ${region} for its pid: ${(error as Error).message}`, { cause: error });
    }
    if (info.region !== region) throw new DrillError('ADMQ_ERR_DRILL_TARGET', `${scenario}: the admin API at ${admin} belongs to region ${String(info.region)}, not ${region}`);
    const pid = info.pid;
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 1) throw new DrillError('ADMQ_ERR_DRILL_TARGET', `${scenario}: region ${region}'s admin API gave no usable pid (${JSON.stringify(pid)})`);
    // A node in a container reports the pid of its own namespace: make sure the pid is ours to kill.
    const commandLine = readCommandLine(pid);
    if (commandLine === null) throw new DrillError('ADMQ_ERR_DRILL_UNSUPPORTED', `${scenario}: region ${region}'s node reports pid ${pid}, and no such process runs on this host (is it in a container or on another host?)`);
    if (commandLine !== undefined && !commandLine.includes('admq')) {
      throw new DrillError('ADMQ_ERR_DRILL_UNSUPPORTED', `${scenario}: region ${region}'s node reports pid ${pid}, but that process on this host is not admq ("${commandLine.slice(0, 120)}"); is the node in a container?`);
    }
    return pid;
  }

  async kill(region: string): Promise<void> {
    const pid = await this.#localPid(region, 'kill');
    try {
      process.kill(pid, 'SIGKILL');
    } catch (error) {
      throw new DrillError('ADMQ_ERR_DRILL_TARGET', `cannot SIGKILL region ${region}'s node (pid ${pid}): ${(error as Error).message}`, { cause: error });
    }
    // Gone when the admin API stops answering.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (!(await this.#answers(region))) return;
      await sleep(50);
    }
    throw new DrillError('ADMQ_ERR_DRILL_TARGET', `region ${region} still answers 10 s after SIGKILL of pid ${pid}`);
  }

  async #answers(region: string): Promise<boolean> {
    try {
      const health = await new AdminClient(this.adminUrl(region)).health();
      return health.region === region;
    } catch {
      return false;
    }
  }

  async restart(region: string): Promise<void> {
    const template = this.#options.restartCommand;
    if (!template) throw new DrillError('ADMQ_ERR_DRILL_UNSUPPORTED', `cannot restart region ${region}: no --restart-command`);
    const command = template.replaceAll('{region}', region);
    const dir = this.#options.logDir ?? '.';
    mkdirSync(dir, { recursive: true });
    const logPath = join(dir, `restart-${region}.log`);
    const fd = openSync(logPath, 'a');
    // Detached: the command may be the node itself, which must outlive the drill.
    const child = spawn('/bin/sh', ['-c', command], { detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    let exit: { code: number | null; error?: Error } | undefined;
    child.once('exit', (code) => (exit = { code }));
    child.once('error', (error) => (exit = { code: null, error }));
    child.unref();
    const timeoutMs = this.#options.restartTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await this.#answers(region)) return;
      if (exit && (exit.error || exit.code !== 0)) {
        throw new DrillError('ADMQ_ERR_DRILL_TARGET', `restart command for ${region} failed (${exit.error?.message ?? `exit ${exit.code}`}): ${command}\n${tail(logPath)}`);
      }
      await sleep(100);
    }
    throw new DrillError('ADMQ_ERR_DRILL_TIMEOUT', `region ${region} did not answer within ${timeoutMs} ms of its restart command: ${command}\n${tail(logPath)}`);
  }

  async isolate(): Promise<void> {
    throw new DrillError('ADMQ_ERR_DRILL_UNSUPPORTED', `region-outage --mode partition: ${WHY_NOT.isolate}`);
  }

  async cutLink(): Promise<void> {
    throw new DrillError('ADMQ_ERR_DRILL_UNSUPPORTED', `link-partition: ${WHY_NOT['cut-link']}`);
  }

  /** Nothing to heal: this target never partitions. */
  async heal(): Promise<void> {}

  async skewClock(): Promise<void> {
    throw new DrillError('ADMQ_ERR_DRILL_UNSUPPORTED', `clock-skew: ${WHY_NOT['skew-clock']}`);
  }

  async close(): Promise<void> {}
}

/** Whether `host` names this machine: loopback, its hostname, or one of its interface addresses. */
export function isLocalHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare === '0.0.0.0' || bare === '::' || bare === '::1' || bare.startsWith('127.')) return true;
  if (bare === hostname().toLowerCase()) return true;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.address.toLowerCase() === bare) return true;
  }
  return false;
}

/** The process's command line; null when no such process exists; undefined when it cannot be read (no /proc). */
function readCommandLine(pid: number): string | null | undefined {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists, but belongs to someone else; the kill would fail the same way, and say so.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return undefined;
  }
}

function tail(path: string): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.length > 2000 ? `…${text.slice(-2000)}` : text;
  } catch {
    return '';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
