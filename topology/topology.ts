// The topology model: regions and their endpoints, the links between them, tenants with
// their allowed regions, and namespaces with their replication sets. Pure: validation
// takes a parsed document and returns a checked, normalised Topology or throws a
// TopologyError that names the field.
import { parseConflictPolicySpec, type ConflictPolicySpec } from '../conflict/index.ts';
import { TopologyError } from './errors.ts';
import { DEFAULT_RPO_TARGET_MS, parseLagHistorySettings, parseRpoTargetMs, type LagHistorySettings } from './lag-history.ts';

export type TransportKind = 'tlcp' | 'tls' | 'insecure';

/** One node of a region: a standalone region node, or one broker of a regional cluster. */
export interface NodeSpec {
  /** The region's name for a single-node region; the broker id (`--broker-id`) in a cluster. */
  id: string;
  /** Client gRPC API, host:port. */
  grpc: string;
  /** Admin REST API, host:port. */
  admin: string;
  /** Replication listener, host:port: where other regions' replicators connect. */
  replication: string;
  dataDir?: string;
}

export interface RegionSpec {
  name: string;
  /** The first node's endpoints (the region's only node unless it is a cluster). */
  grpc: string;
  admin: string;
  replication: string;
  dataDir?: string;
  /**
   * The region's nodes, at least one. Several: the region is a regional cluster whose
   * brokers each serve (and replicate) the topics they own.
   */
  nodes: NodeSpec[];
  /** Whether the document listed `nodes` (a cluster), rather than one node's endpoints. */
  clustered: boolean;
}

export interface TenantSpec {
  name: string;
  allowedRegions: string[];
  homeRegion: string;
}

export interface NamespaceSpec {
  /** tenant/namespace */
  name: string;
  tenant: string;
  replicationSet: string[];
  /** How concurrent writes to one key of a keyed topic resolve (default last-writer-wins). */
  conflictPolicy: ConflictPolicySpec;
  /** Replication lag this namespace must stay under, in ms (compliance reports); default the topology's `rpoTargetMs`. */
  rpoTargetMs: number;
}

export interface TransportSpec {
  kind: TransportKind;
  /** Directory of certificates made by `admq certs` (tlcp and tls). */
  certDir?: string;
}

export interface Topology {
  regions: Map<string, RegionSpec>;
  /** Undirected links; a full mesh unless the document lists links. */
  links: Array<[string, string]>;
  /** Per directed link, the address the sender dials instead of the receiver's own (a proxy, a relay box). */
  endpoints: Map<string, string>;
  tenants: Map<string, TenantSpec>;
  namespaces: Map<string, NamespaceSpec>;
  transport: TransportSpec;
  maxClockOffsetMs: number;
  /** Replicated subscriptions: how often acked frontiers are sent to the other regions (default 1,000 ms). */
  subscriptionSyncIntervalMs: number;
  /** The lag history each region node keeps (compliance/). */
  lagHistory: LagHistorySettings;
  /** RPO target of namespaces that set none, in ms (default 5,000). */
  rpoTargetMs: number;
}

const REGION_NAME = /^[a-z][a-z0-9-]{0,62}$/;
const NAME_PART = /^[a-zA-Z0-9_.=-]+$/;
const HOST_PORT = /^[^\s:]+:(\d{1,5})$/;
const NODE_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hostPort(field: string, value: unknown): string {
  if (typeof value !== 'string' || !HOST_PORT.test(value) || Number(HOST_PORT.exec(value)?.[1]) > 65535) {
    throw new TopologyError(field, `must be "host:port"; got ${JSON.stringify(value)}`);
  }
  return value;
}

function regionList(field: string, value: unknown, regions: Map<string, RegionSpec>): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new TopologyError(field, 'must be a non-empty list of region names');
  const out: string[] = [];
  value.forEach((r, i) => {
    if (typeof r !== 'string' || !regions.has(r)) throw new TopologyError(`${field}[${i}]`, `unknown region ${JSON.stringify(r)}`);
    if (out.includes(r)) throw new TopologyError(`${field}[${i}]`, `region "${r}" is listed twice`);
    out.push(r);
  });
  return out;
}

/**
 * The regions of `members` that cannot be reached from its first region through links
 * whose both ends are members ([] when the set is connected by itself).
 */
export function unreachableWithin(links: ReadonlyArray<readonly [string, string]>, members: readonly string[]): string[] {
  if (members.length === 0) return [];
  const reached = new Set<string>([members[0] as string]);
  const queue = [members[0] as string];
  while (queue.length > 0) {
    const at = queue.shift() as string;
    for (const [a, b] of links) {
      const next = a === at ? b : b === at ? a : undefined;
      if (next === undefined || !members.includes(next) || reached.has(next)) continue;
      reached.add(next);
      queue.push(next);
    }
  }
  return members.filter((r) => !reached.has(r));
}

export function linkKey(from: string, to: string): string {
  return `${from}->${to}`;
}

/** Checks a parsed topology document and returns the model. */
export function validateTopology(doc: unknown): Topology {
  if (!isRecord(doc)) throw new TopologyError('(document)', 'must be a mapping');
  for (const key of Object.keys(doc)) {
    if (!['regions', 'links', 'endpoints', 'tenants', 'namespaces', 'transport', 'maxClockOffsetMs', 'subscriptionSyncIntervalMs', 'lagHistory', 'rpoTargetMs'].includes(key)) {
      throw new TopologyError(key, 'unknown field');
    }
  }
  if (!isRecord(doc.regions) || Object.keys(doc.regions).length === 0) throw new TopologyError('regions', 'must map region names to their endpoints');
  const regions = new Map<string, RegionSpec>();
  const seen = new Map<string, string>();
  const node = (field: string, id: string, spec: unknown, strict: boolean): NodeSpec => {
    if (!isRecord(spec)) throw new TopologyError(field, 'must be a mapping with grpc, admin and replication');
    // The single-node form never refused extra fields; existing files must keep loading.
    for (const key of strict ? Object.keys(spec) : []) {
      if (!['grpc', 'admin', 'replication', 'dataDir'].includes(key)) throw new TopologyError(`${field}.${key}`, 'unknown field');
    }
    const out: NodeSpec = {
      id,
      grpc: hostPort(`${field}.grpc`, spec.grpc),
      admin: hostPort(`${field}.admin`, spec.admin),
      replication: hostPort(`${field}.replication`, spec.replication),
    };
    if (spec.dataDir !== undefined) {
      if (typeof spec.dataDir !== 'string') throw new TopologyError(`${field}.dataDir`, 'must be a path');
      out.dataDir = spec.dataDir;
    }
    for (const endpoint of ['grpc', 'admin', 'replication'] as const) {
      const address = out[endpoint];
      if (!address.endsWith(':0')) {
        const other = seen.get(address);
        if (other) throw new TopologyError(`${field}.${endpoint}`, `address ${address} is also ${other}`);
        seen.set(address, `${field}.${endpoint}`);
      }
    }
    return out;
  };
  for (const [name, spec] of Object.entries(doc.regions)) {
    if (!REGION_NAME.test(name)) throw new TopologyError(`regions.${name}`, 'a region name is lowercase letters, digits and "-", starting with a letter');
    if (!isRecord(spec)) throw new TopologyError(`regions.${name}`, 'must be a mapping with grpc, admin and replication, or with nodes');
    let nodes: NodeSpec[];
    if (spec.nodes === undefined) {
      // One node: the form every topology had before regions could be clusters.
      nodes = [node(`regions.${name}`, name, spec, false)];
    } else {
      const extra = Object.keys(spec).find((key) => key !== 'nodes');
      if (extra !== undefined) throw new TopologyError(`regions.${name}.${extra}`, 'a region with nodes sets endpoints per node, under nodes');
      if (!isRecord(spec.nodes) || Object.keys(spec.nodes).length === 0) {
        throw new TopologyError(`regions.${name}.nodes`, 'must map broker ids to their endpoints (grpc, admin, replication)');
      }
      nodes = Object.entries(spec.nodes).map(([id, nodeSpec]) => {
        if (!NODE_ID.test(id)) throw new TopologyError(`regions.${name}.nodes.${id}`, "a node id (the broker id) is letters, digits, '_', '.' or '-'");
        return node(`regions.${name}.nodes.${id}`, id, nodeSpec, true);
      });
    }
    const first = nodes[0] as NodeSpec;
    regions.set(name, {
      name,
      grpc: first.grpc,
      admin: first.admin,
      replication: first.replication,
      ...(first.dataDir !== undefined && { dataDir: first.dataDir }),
      nodes,
      clustered: spec.nodes !== undefined,
    });
  }

  const names = [...regions.keys()].sort();
  let links: Array<[string, string]> = [];
  if (doc.links === undefined) {
    for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) links.push([names[i] as string, names[j] as string]);
  } else {
    if (!Array.isArray(doc.links)) throw new TopologyError('links', 'must be a list of [regionA, regionB] pairs');
    links = doc.links.map((pair, i) => {
      if (!Array.isArray(pair) || pair.length !== 2) throw new TopologyError(`links[${i}]`, 'must be a pair [regionA, regionB]');
      const [a, b] = regionList(`links[${i}]`, pair, regions) as [string, string];
      return a < b ? [a, b] : [b, a];
    });
  }

  const endpoints = new Map<string, string>();
  if (doc.endpoints !== undefined) {
    if (!isRecord(doc.endpoints)) throw new TopologyError('endpoints', 'must map "from->to" (or "from->to/node") to host:port');
    for (const [key, value] of Object.entries(doc.endpoints)) {
      const [from, target] = key.split('->');
      const [to, nodeId, ...rest] = (target ?? '').split('/');
      if (!from || !to || rest.length > 0 || !regions.has(from) || !regions.has(to)) throw new TopologyError(`endpoints.${key}`, 'key must be "from->to" or "from->to/node" with known regions');
      if (nodeId !== undefined && !regions.get(to)?.nodes.some((n) => n.id === nodeId)) {
        throw new TopologyError(`endpoints.${key}`, `region ${to} has no node "${nodeId}"`);
      }
      endpoints.set(nodeId === undefined ? linkKey(from, to) : nodeLinkKey(from, to, nodeId), hostPort(`endpoints.${key}`, value));
    }
  }

  let transport: TransportSpec = { kind: 'tlcp' };
  if (doc.transport !== undefined) {
    if (!isRecord(doc.transport)) throw new TopologyError('transport', 'must be a mapping with kind (tlcp, tls or insecure)');
    const kind = doc.transport.kind;
    if (kind !== 'tlcp' && kind !== 'tls' && kind !== 'insecure') throw new TopologyError('transport.kind', `must be tlcp, tls or insecure; got ${JSON.stringify(kind)}`);
    transport = { kind };
    if (doc.transport.certDir !== undefined) {
      if (typeof doc.transport.certDir !== 'string') throw new TopologyError('transport.certDir', 'must be a path');
      transport.certDir = doc.transport.certDir;
    }
  }
  if (transport.kind !== 'insecure' && !transport.certDir) throw new TopologyError('transport.certDir', `is required for ${transport.kind} links (make one with "admq certs")`);

  const tenants = new Map<string, TenantSpec>();
  if (doc.tenants !== undefined) {
    if (!isRecord(doc.tenants)) throw new TopologyError('tenants', 'must map tenant names to their allowed regions');
    for (const [name, spec] of Object.entries(doc.tenants)) {
      if (!NAME_PART.test(name)) throw new TopologyError(`tenants.${name}`, 'a tenant name uses [a-zA-Z0-9_.=-]');
      if (!isRecord(spec)) throw new TopologyError(`tenants.${name}`, 'must be a mapping with allowedRegions and homeRegion');
      const allowedRegions = regionList(`tenants.${name}.allowedRegions`, spec.allowedRegions, regions);
      const homeRegion = spec.homeRegion ?? allowedRegions[0];
      if (typeof homeRegion !== 'string' || !allowedRegions.includes(homeRegion)) {
        throw new TopologyError(`tenants.${name}.homeRegion`, `must be one of the allowed regions (${allowedRegions.join(', ')})`);
      }
      tenants.set(name, { name, allowedRegions, homeRegion });
    }
  }

  const rpoTargetMs = parseRpoTargetMs('rpoTargetMs', doc.rpoTargetMs, DEFAULT_RPO_TARGET_MS);
  const namespaces = new Map<string, NamespaceSpec>();
  if (doc.namespaces !== undefined) {
    if (!isRecord(doc.namespaces)) throw new TopologyError('namespaces', 'must map tenant/namespace to a replication set');
    for (const [name, spec] of Object.entries(doc.namespaces)) {
      const parts = name.split('/');
      if (parts.length !== 2 || !parts.every((p) => NAME_PART.test(p))) throw new TopologyError(`namespaces.${name}`, 'a namespace is named tenant/namespace');
      const tenant = parts[0] as string;
      const tenantSpec = tenants.get(tenant);
      if (!tenantSpec) throw new TopologyError(`namespaces.${name}`, `tenant "${tenant}" is not declared under tenants`);
      if (!isRecord(spec)) throw new TopologyError(`namespaces.${name}`, 'must be a mapping with replicationSet');
      const replicationSet = regionList(`namespaces.${name}.replicationSet`, spec.replicationSet, regions);
      for (const r of replicationSet) {
        if (!tenantSpec.allowedRegions.includes(r)) {
          throw new TopologyError(`namespaces.${name}.replicationSet`, `region "${r}" is outside tenant ${tenant}'s allowed regions (${tenantSpec.allowedRegions.join(', ')})`);
        }
      }
      // Data may only travel through regions that may hold it: the set must be connected by itself.
      const cut = unreachableWithin(links, replicationSet);
      if (cut.length > 0) {
        throw new TopologyError(`namespaces.${name}.replicationSet`, `regions ${cut.join(', ')} cannot be reached through links that stay inside the replication set`);
      }
      const conflictPolicy = parseConflictPolicySpec(spec.conflictPolicy, `namespaces.${name}.conflictPolicy`);
      namespaces.set(name, { name, tenant, replicationSet, conflictPolicy, rpoTargetMs: parseRpoTargetMs(`namespaces.${name}.rpoTargetMs`, spec.rpoTargetMs, rpoTargetMs) });
    }
  }

  const maxClockOffsetMs = doc.maxClockOffsetMs ?? 500;
  if (typeof maxClockOffsetMs !== 'number' || !Number.isInteger(maxClockOffsetMs) || maxClockOffsetMs < 1) {
    throw new TopologyError('maxClockOffsetMs', 'must be a positive integer (ms)');
  }
  const subscriptionSyncIntervalMs = doc.subscriptionSyncIntervalMs ?? 1000;
  if (typeof subscriptionSyncIntervalMs !== 'number' || !Number.isInteger(subscriptionSyncIntervalMs) || subscriptionSyncIntervalMs < 10 || subscriptionSyncIntervalMs > 600_000) {
    throw new TopologyError('subscriptionSyncIntervalMs', 'must be an integer from 10 to 600,000 (ms)');
  }
  const lagHistory = parseLagHistorySettings(doc.lagHistory);
  return { regions, links, endpoints, tenants, namespaces, transport, maxClockOffsetMs, subscriptionSyncIntervalMs, lagHistory, rpoTargetMs };
}

export function nodeLinkKey(from: string, to: string, node: string): string {
  return `${from}->${to}/${node}`;
}

/**
 * The address region `from` dials to reach node `node` of region `to` (a broker that
 * serves a topic): the topology's `from->to/node` endpoint, else the node's own listener;
 * for a single-node region the `from->to` endpoint applies too. Undefined for an unknown node.
 */
export function nodeReplicationAddress(topology: Topology, from: string, to: string, node: string): string | undefined {
  const region = topology.regions.get(to);
  const spec = region?.nodes.find((n) => n.id === node);
  if (!region || !spec) return undefined;
  return topology.endpoints.get(nodeLinkKey(from, to, node)) ?? (region.clustered ? undefined : topology.endpoints.get(linkKey(from, to))) ?? spec.replication;
}

/**
 * Where region `from` may open a link into `to`, in the order to try them: the `from->to`
 * endpoint alone when the topology sets one (a proxy or balancer in front of the region),
 * otherwise every node of the region (any broker redirects to the one serving the topic).
 */
export function replicationEntryAddresses(topology: Topology, from: string, to: string): string[] {
  const region = topology.regions.get(to) as RegionSpec;
  const fixed = topology.endpoints.get(linkKey(from, to));
  if (fixed !== undefined) return [fixed];
  return region.nodes.map((n) => nodeReplicationAddress(topology, from, to, n.id) as string);
}

/**
 * The gRPC service URL clients use for a region: its one node's address, or every broker
 * of a cluster in the `ipv4:host:port,host:port` form (a client asks the next on failure).
 */
export function regionServiceUrl(region: RegionSpec): string {
  return region.nodes.length === 1 ? region.grpc : `ipv4:${region.nodes.map((n) => n.grpc).join(',')}`;
}

export function neighbours(topology: Topology, region: string): string[] {
  const out: string[] = [];
  for (const [a, b] of topology.links) {
    if (a === region) out.push(b);
    else if (b === region) out.push(a);
  }
  return out.sort();
}
