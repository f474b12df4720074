// Configuration of a region node. Validated once at start-up; every error names the field.
// docs: README.md "Configuration" lists each field with its unit and default.
import { resolve } from 'node:path';
import { ConfigError } from './errors.ts';
import type { Durability } from './storage/log-store.ts';

export interface RegionNodeConfig {
  /** Region name, lowercase. Default "standalone". */
  region: string;
  /** Directory of the node's LMDB environment. Default "./data/<region>". */
  dataDir: string;
  /** Host and port of the gRPC client API. Port 0 picks a free port. Default 127.0.0.1:6650. */
  grpcHost: string;
  grpcPort: number;
  /** Host and port of the admin REST API. Default 127.0.0.1:8080. */
  adminHost: string;
  adminPort: number;
  /** "fsync" (default): a send is acknowledged only after fsync. "none": no fsync — tests and benchmarks only. */
  durability: Durability;
  /** Largest message (payload, key and properties), in bytes. Default 5 MiB. */
  messageBytesMax: number;
  /** Largest accepted skew of a remote HLC ahead of local time, in ms. Default 500. */
  maxClockOffsetMs: number;
  /** Entries a subscription may hold back for redelivery or key ordering. Default 10,000. */
  replayEntriesMax: number;
  /** Entries handed out per dispatch round before yielding to I/O. Default 1,000. */
  dispatchBatchMax: number;
  /** Decoded entries, and their chunks' stored bytes, kept in memory for readers of recent entries, all topics together. Default 4,096 and 8 MiB. */
  chunkCacheEntriesMax: number;
  chunkCacheBytesMax: number;
  /** Default delay before a negatively acked message is redelivered, in ms. Default 1,000. */
  negativeAckRedeliveryDelayMs: number;
  /** Tenant/namespace created on first start so that a new node is usable at once; "" for none. Default "public/default". */
  bootstrapNamespace: string;
  /** Time given to in-flight calls on shutdown before they are cancelled, in ms. Default 5,000. */
  shutdownGraceMs: number;
  /**
   * Topology file (YAML or JSON). When set, the node is region `region` of that topology:
   * its endpoints and data directory come from the file (unless given explicitly), and it
   * replicates to the other regions. "" (default): a standalone node.
   */
  topology: string;
  /**
   * Regional cluster (DESIGN §4): "etcd://host:port[,host:port…]" makes this node one broker
   * of a cluster whose metadata (catalog, topic ownership, ledgers) lives in that etcd and
   * whose topics are stored on the storage nodes registered there (`admq storage-node`).
   * "" (default): standalone, everything in the node's own LMDB.
   */
  metadataStore: string;
  /** Cluster: this broker's id, unique in the region. Default "broker-<grpc port>". */
  brokerId: string;
  /** Cluster: the gRPC address clients are sent to for topics this broker owns. Default grpcHost:port. */
  advertisedAddress: string;
  /** Cluster: TTL of the broker's ownership lease, in ms; a dead broker's topics move after about this long. Default 5,000. */
  ownershipLeaseMs: number;
  /** Cluster: storage nodes per ledger (E), copies per entry (Qw), and copies fsynced before an ack (Qa). Default 3/3/2. */
  ensembleSize: number;
  writeQuorum: number;
  ackQuorum: number;
}

export const DEFAULT_CONFIG: RegionNodeConfig = {
  region: 'standalone',
  dataDir: '',
  grpcHost: '127.0.0.1',
  grpcPort: 6650,
  adminHost: '127.0.0.1',
  adminPort: 8080,
  durability: 'fsync',
  messageBytesMax: 5 * 1024 * 1024,
  maxClockOffsetMs: 500,
  replayEntriesMax: 10_000,
  dispatchBatchMax: 1_000,
  chunkCacheEntriesMax: 4_096,
  chunkCacheBytesMax: 8 * 1024 * 1024,
  negativeAckRedeliveryDelayMs: 1_000,
  bootstrapNamespace: 'public/default',
  shutdownGraceMs: 5_000,
  topology: '',
  metadataStore: '',
  brokerId: '',
  advertisedAddress: '',
  ownershipLeaseMs: 5_000,
  ensembleSize: 3,
  writeQuorum: 3,
  ackQuorum: 2,
};

function integer(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${field} must be an integer from ${min} to ${max}; got ${JSON.stringify(value)}`);
  }
  return value;
}

function text(field: string, value: unknown): string {
  if (typeof value !== 'string') throw new ConfigError(`${field} must be a string; got ${JSON.stringify(value)}`);
  return value;
}

/** Fills defaults and validates. Unknown fields are refused: a typo must not pass silently. */
export function validateConfig(input: Partial<RegionNodeConfig> & Record<string, unknown>): RegionNodeConfig {
  for (const key of Object.keys(input)) {
    if (!(key in DEFAULT_CONFIG)) throw new ConfigError(`unknown setting "${key}"`);
  }
  const merged = { ...DEFAULT_CONFIG, ...stripUndefined(input) } as RegionNodeConfig;
  const region = text('region', merged.region);
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(region)) {
    throw new ConfigError(`region must be a lowercase name of letters, digits and '-' starting with a letter; got "${region}"`);
  }
  const durability = merged.durability;
  if (durability !== 'fsync' && durability !== 'none') {
    throw new ConfigError(`durability must be "fsync" or "none"; got ${JSON.stringify(durability)}`);
  }
  const bootstrap = text('bootstrapNamespace', merged.bootstrapNamespace);
  if (bootstrap !== '' && !/^[a-zA-Z0-9_.=-]+\/[a-zA-Z0-9_.=-]+$/.test(bootstrap)) {
    throw new ConfigError(`bootstrapNamespace must be "tenant/namespace" or ""; got "${bootstrap}"`);
  }
  const config: RegionNodeConfig = {
    region,
    dataDir: resolve(text('dataDir', merged.dataDir) || `./data/${region}`),
    grpcHost: text('grpcHost', merged.grpcHost),
    grpcPort: integer('grpcPort', merged.grpcPort, 0, 65535),
    adminHost: text('adminHost', merged.adminHost),
    adminPort: integer('adminPort', merged.adminPort, 0, 65535),
    durability,
    messageBytesMax: integer('messageBytesMax', merged.messageBytesMax, 1, 64 * 1024 * 1024),
    maxClockOffsetMs: integer('maxClockOffsetMs', merged.maxClockOffsetMs, 1, 3_600_000),
    replayEntriesMax: integer('replayEntriesMax', merged.replayEntriesMax, 1, 10_000_000),
    dispatchBatchMax: integer('dispatchBatchMax', merged.dispatchBatchMax, 1, 100_000),
    chunkCacheEntriesMax: integer('chunkCacheEntriesMax', merged.chunkCacheEntriesMax, 1, 10_000_000),
    chunkCacheBytesMax: integer('chunkCacheBytesMax', merged.chunkCacheBytesMax, 1, 64 * 1024 * 1024 * 1024),
    negativeAckRedeliveryDelayMs: integer('negativeAckRedeliveryDelayMs', merged.negativeAckRedeliveryDelayMs, 0, 86_400_000),
    bootstrapNamespace: bootstrap,
    shutdownGraceMs: integer('shutdownGraceMs', merged.shutdownGraceMs, 0, 600_000),
    topology: text('topology', merged.topology),
    metadataStore: text('metadataStore', merged.metadataStore),
    brokerId: text('brokerId', merged.brokerId),
    advertisedAddress: text('advertisedAddress', merged.advertisedAddress),
    ownershipLeaseMs: integer('ownershipLeaseMs', merged.ownershipLeaseMs, 1000, 600_000),
    ensembleSize: integer('ensembleSize', merged.ensembleSize, 1, 32),
    writeQuorum: integer('writeQuorum', merged.writeQuorum, 1, 32),
    ackQuorum: integer('ackQuorum', merged.ackQuorum, 1, 32),
  };
  if (config.metadataStore !== '' && !/^etcd:\/\/[^,\s]+(,[^,\s]+)*$/.test(config.metadataStore)) {
    throw new ConfigError(`metadataStore must be "" (standalone) or "etcd://host:port[,host:port…]"; got "${config.metadataStore}"`);
  }
  if (!(config.ackQuorum <= config.writeQuorum && config.writeQuorum <= config.ensembleSize)) {
    throw new ConfigError(`ackQuorum ≤ writeQuorum ≤ ensembleSize must hold; got ${config.ackQuorum}/${config.writeQuorum}/${config.ensembleSize}`);
  }
  if (config.brokerId !== '' && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(config.brokerId)) {
    throw new ConfigError(`brokerId must be letters, digits, '_', '.' or '-'; got "${config.brokerId}"`);
  }
  if (config.grpcPort !== 0 && config.grpcPort === config.adminPort && config.grpcHost === config.adminHost) {
    throw new ConfigError(`grpcPort and adminPort are both ${config.grpcPort}; they must differ`);
  }
  return config;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
