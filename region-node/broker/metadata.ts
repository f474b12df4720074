// Tenants, namespaces and topics of a region: their rules (names, emptiness before delete,
// partitions) over a Catalog, which is the node's own LMDB metadata table (LocalCatalog) or,
// in a regional cluster, the shared metadata store mirrored in memory (ClusterCatalog).
import { ErrorCode } from '../../proto/index.ts';
import { AdmqError, BadRequestError, NotFoundError } from '../errors.ts';
import { PARTITION_SUFFIX, parseTopicName, partitionName, validateNamespaceName, validateTenantName, type TopicName } from '../names.ts';
import type { LogStore } from '../storage/log-store.ts';
import { LocalCatalog, type Catalog, type CatalogOp } from './catalog.ts';

export interface TenantRecord {
  name: string;
  allowedRegions: string[];
  createdAtMs: number;
}

export interface NamespaceRecord {
  tenant: string;
  namespace: string;
  createdAtMs: number;
}

export interface TopicRecord {
  name: string;
  /** 0 for a partitioned topic's parent record, which has no log of its own. */
  id: number;
  partitions: number;
  createdAtMs: number;
  /** Keyed topic: messages are versions of their key, resolved by the namespace's conflict policy. */
  keyed?: boolean;
}

export const PARTITIONS_MAX = 1024;

/**
 * A catalog create that lost to a concurrent one (another broker of the cluster, or another
 * request here) comes back from the catalog naming its key; callers get the object's name.
 */
async function writeCreate(catalog: Catalog, ops: CatalogOp[], what: string): Promise<void> {
  try {
    await catalog.write(ops);
  } catch (error) {
    if (error instanceof AdmqError && error.code === ErrorCode.AlreadyExists) {
      throw new AdmqError(ErrorCode.AlreadyExists, `${what} already exists`, { cause: error });
    }
    throw error;
  }
}

export class MetadataManager {
  /** Where the records live; subscribe with `catalog.onChange` to hear of changes made elsewhere. */
  readonly catalog: Catalog;

  constructor(
    private readonly store: LogStore,
    private readonly nowMs: () => number,
    catalog?: Catalog,
  ) {
    this.catalog = catalog ?? new LocalCatalog(store);
  }

  listTenants(): TenantRecord[] {
    return this.catalog.range<TenantRecord>(['tenant']).map((e) => e.value);
  }

  getTenant(name: string): TenantRecord | undefined {
    return this.catalog.get<TenantRecord>(['tenant', name]);
  }

  requireTenant(name: string): TenantRecord {
    const tenant = this.getTenant(validateTenantName(name));
    if (!tenant) throw new NotFoundError(ErrorCode.TenantNotFound, `tenant "${name}" does not exist`);
    return tenant;
  }

  async createTenant(name: string, options: { allowedRegions?: string[] } = {}): Promise<TenantRecord> {
    validateTenantName(name);
    if (this.getTenant(name)) throw new AdmqError(ErrorCode.AlreadyExists, `tenant "${name}" already exists`);
    const allowedRegions = options.allowedRegions ?? [this.store.region];
    if (!Array.isArray(allowedRegions) || allowedRegions.some((r) => typeof r !== 'string' || !/^[a-z][a-z0-9-]*$/.test(r))) {
      throw new BadRequestError('allowedRegions must be a list of lowercase region names');
    }
    const record: TenantRecord = { name, allowedRegions, createdAtMs: this.nowMs() };
    await writeCreate(this.catalog, [{ type: 'put', key: ['tenant', name], value: record, ifAbsent: true }], `tenant "${name}"`);
    return record;
  }

  async deleteTenant(name: string): Promise<void> {
    this.requireTenant(name);
    const namespaces = this.listNamespaces(name);
    if (namespaces.length > 0) {
      throw new AdmqError(ErrorCode.NotEmpty, `tenant "${name}" still has ${namespaces.length} namespace(s); delete them first`);
    }
    await this.catalog.write([{ type: 'remove', key: ['tenant', name] }]);
  }

  listNamespaces(tenant: string): NamespaceRecord[] {
    this.requireTenant(tenant);
    return this.catalog.range<NamespaceRecord>(['namespace', tenant]).map((e) => e.value);
  }

  getNamespace(tenant: string, namespace: string): NamespaceRecord | undefined {
    return this.catalog.get<NamespaceRecord>(['namespace', tenant, namespace]);
  }

  requireNamespace(tenant: string, namespace: string): NamespaceRecord {
    this.requireTenant(tenant);
    validateNamespaceName(tenant, namespace);
    const record = this.getNamespace(tenant, namespace);
    if (!record) throw new NotFoundError(ErrorCode.NamespaceNotFound, `namespace "${tenant}/${namespace}" does not exist`);
    return record;
  }

  async createNamespace(tenant: string, namespace: string): Promise<NamespaceRecord> {
    this.requireTenant(tenant);
    validateNamespaceName(tenant, namespace);
    if (this.getNamespace(tenant, namespace)) {
      throw new AdmqError(ErrorCode.AlreadyExists, `namespace "${tenant}/${namespace}" already exists`);
    }
    const record: NamespaceRecord = { tenant, namespace, createdAtMs: this.nowMs() };
    await writeCreate(this.catalog, [{ type: 'put', key: ['namespace', tenant, namespace], value: record, ifAbsent: true }], `namespace "${tenant}/${namespace}"`);
    return record;
  }

  async deleteNamespace(tenant: string, namespace: string): Promise<void> {
    this.requireNamespace(tenant, namespace);
    const topics = this.listTopics(tenant, namespace);
    if (topics.length > 0) {
      throw new AdmqError(ErrorCode.NotEmpty, `namespace "${tenant}/${namespace}" still has ${topics.length} topic(s); delete them first`);
    }
    await this.catalog.write([{ type: 'remove', key: ['namespace', tenant, namespace] }]);
  }

  /** Topics of a namespace, without the partitions of partitioned topics. */
  listTopics(tenant: string, namespace: string): TopicRecord[] {
    this.requireNamespace(tenant, namespace);
    return this.catalog
      .range<TopicRecord>(['topic', tenant, namespace])
      .map((e) => e.value)
      .filter((t) => parseTopicName(t.name).partitionOf === undefined || !this.isPartitionOfParent(t.name));
  }

  private isPartitionOfParent(name: string): boolean {
    const parsed = parseTopicName(name);
    if (!parsed.partitionOf) return false;
    const parent = this.getTopic(`persistent://${parsed.tenant}/${parsed.namespace}/${parsed.partitionOf.topic}`);
    return parent !== undefined && parent.partitions > parsed.partitionOf.index;
  }

  getTopic(fullName: string): TopicRecord | undefined {
    const name = parseTopicName(fullName);
    return this.catalog.get<TopicRecord>(['topic', name.tenant, name.namespace, name.topic]);
  }

  /** For a partition of a partitioned topic: its parent's name and partition count. */
  partitionParent(fullName: string): { parent: string; partitions: number } | undefined {
    const at = fullName.lastIndexOf(PARTITION_SUFFIX);
    if (at < 0) return undefined;
    const parent = this.getTopic(fullName.slice(0, at));
    return parent && parent.partitions > 0 ? { parent: parent.name, partitions: parent.partitions } : undefined;
  }

  requireTopic(name: TopicName): TopicRecord {
    this.requireNamespace(name.tenant, name.namespace);
    const record = this.getTopic(name.full);
    if (!record) throw new NotFoundError(ErrorCode.TopicNotFound, `topic "${name.full}" does not exist`);
    return record;
  }

  async createTopic(name: TopicName, partitions: number, options: { keyed?: boolean } = {}): Promise<TopicRecord> {
    const keyed = options.keyed === true ? { keyed: true } : {};
    this.requireNamespace(name.tenant, name.namespace);
    if (!Number.isInteger(partitions) || partitions < 0 || partitions > PARTITIONS_MAX) {
      throw new BadRequestError(`partitions must be an integer from 0 to ${PARTITIONS_MAX}; got ${partitions}`);
    }
    if (this.getTopic(name.full)) throw new AdmqError(ErrorCode.AlreadyExists, `topic "${name.full}" already exists`);
    const now = this.nowMs();
    // A partitioned topic's parent has no log (id 0); each partition gets an id of its own.
    const ids = await this.catalog.allocateTopicIds(Math.max(partitions, 1));
    const ops: CatalogOp[] = [];
    // Partitions first and the parent last: a catalog without multi-key transactions
    // (ClusterCatalog) makes the last record the commit point, so that a visible parent
    // implies its partitions.
    for (let i = 0; i < partitions; i++) {
      const part = partitionName(name, i);
      const partRecord: TopicRecord = { name: part.full, id: ids[i] as number, partitions: 0, createdAtMs: now, ...keyed };
      ops.push({ type: 'put', key: ['topic', part.tenant, part.namespace, part.topic], value: partRecord, ifAbsent: true });
    }
    const record: TopicRecord = { name: name.full, id: partitions === 0 ? (ids[0] as number) : 0, partitions, createdAtMs: now, ...keyed };
    ops.push({ type: 'put', key: ['topic', name.tenant, name.namespace, name.topic], value: record, ifAbsent: true });
    await writeCreate(this.catalog, ops, `topic "${name.full}"`);
    return record;
  }

  async removeTopicRecords(name: TopicName, record: TopicRecord): Promise<void> {
    // The parent first: once it is gone the topic is, whatever happens to the partitions'
    // removal after it (ClusterCatalog writes one key at a time).
    const ops: CatalogOp[] = [{ type: 'remove', key: ['topic', name.tenant, name.namespace, name.topic] }];
    for (let i = 0; i < record.partitions; i++) {
      const part = partitionName(name, i);
      ops.push({ type: 'remove', key: ['topic', part.tenant, part.namespace, part.topic] });
    }
    await this.catalog.write(ops);
  }
}
