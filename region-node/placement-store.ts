// Runtime placement of a region node in a topology: tenants' allowed and home regions,
// namespaces' replication sets, and planned-failover fences.
//
// Changes are records in a keyed system topic (topology/placement.ts PLACEMENT_TOPIC,
// namespace __admq/control, replicated to every region). The keyed table resolves each
// record's versions last-writer-wins by (HLC, origin), so every region ends with the same
// placement whatever order the changes arrive in. The topology file is the base; a record
// replaces the whole entry of its tenant or namespace.
//
// Shrinking a replication set stops replication to the removed region and refuses new
// local writes to the namespace there; the data already there stays (never deleted
// silently) and can be read, or deleted explicitly with the admin API.
//
// A region that is a cluster: the placement topic is served (and replicated) by one broker,
// like any topic. That broker publishes the resolved records in the region's catalog
// (etcd, key PLACEMENT_CATALOG_KEY), and every broker lays the mirrored copy over the
// topology, so residency checks, write guards and replication discovery agree on every
// broker. Each broker keeps trying to serve the topic (only the owner of its bundle
// succeeds), so that it is served again soon after its broker dies. Changes go through the
// serving broker (others answer ADMQ_ERR_TOPIC_MOVED naming it); fencing for a planned
// failover is refused in a cluster, because the other brokers would learn of the fence
// only after it is durable, and could accept writes meanwhile.
import { ErrorCode } from '../proto/index.ts';
import {
  CONTROL_NAMESPACE,
  PLACEMENT_TOPIC,
  Placement,
  PlacementError,
  SYSTEM_TENANT,
  decodePlacementRecord,
  encodePlacementRecord,
  placementKey,
  type NamespacePlacement,
  type PlacementRecord,
  type TenantPlacement,
  type Topology,
} from '../topology/index.ts';
import type { Broker } from './broker/broker.ts';
import type { Catalog } from './broker/catalog.ts';
import { parseTopicName } from './names.ts';
import type { Topic } from './broker/topic.ts';
import { AdmqError } from './errors.ts';

/** A placement record as stored: which region wrote the winning version, and when (HLC). */
export interface StampedPlacementRecord {
  key: string;
  record: PlacementRecord;
  originRegion: string;
  hlc: string;
}

/** Where a cluster's serving broker publishes the placement records for the others. */
export const PLACEMENT_CATALOG_KEY = ['placement', 'records'] as const;

/** How often a broker of a cluster tries to serve the placement topic when nobody does here. */
const SERVE_RETRY_MS = 1_000;

interface PublishedPlacement {
  records: StampedPlacementRecord[];
  /** The placement topic's durable end when published: a stale publisher never overwrites a newer copy. */
  throughOffset: number;
}

export class PlacementStore {
  readonly #broker: Broker;
  readonly #base: Placement;
  readonly #log: (line: string) => void;
  #current: Placement;
  #records: StampedPlacementRecord[] = [];
  #topic: Topic | undefined;
  #writes: Promise<unknown> = Promise.resolve();
  /** Tenants being fenced here: refused before their fence record is durable. */
  readonly #fencing = new Set<string>();
  readonly #listeners = new Set<(placement: Placement) => void>();
  /** A cluster's shared catalog; undefined standalone. */
  readonly #catalog: Catalog | undefined;
  #serveTimer: NodeJS.Timeout | undefined;
  #serving = false;
  #stopWatching: (() => void) | undefined;
  #publishing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(topology: Topology, broker: Broker, log: (line: string) => void, cluster?: { catalog: Catalog }) {
    this.#broker = broker;
    this.#base = Placement.fromTopology(topology);
    this.#current = this.#base;
    this.#log = log;
    this.#catalog = cluster?.catalog;
  }

  get region(): string {
    return this.#broker.region;
  }

  get current(): Placement {
    return this.#current;
  }

  /** The records laid over the topology, with their stamps. */
  get records(): readonly StampedPlacementRecord[] {
    return this.#records;
  }

  /** Creates the system namespace and placement topic here if missing, and loads the records. */
  async open(): Promise<void> {
    const md = this.#broker.metadata;
    const [, controlNs] = CONTROL_NAMESPACE.split('/') as [string, string];
    // In a cluster another broker may be creating the same records at the same moment.
    if (!md.getTenant(SYSTEM_TENANT)) await md.createTenant(SYSTEM_TENANT, { allowedRegions: [...this.#base.regions] }).catch(ignoreExists);
    if (!md.getNamespace(SYSTEM_TENANT, controlNs)) await md.createNamespace(SYSTEM_TENANT, controlNs).catch(ignoreExists);
    if (!md.getTopic(PLACEMENT_TOPIC)) await this.#broker.createTopic(PLACEMENT_TOPIC, 0, { keyed: true }).catch(ignoreExists);
    const catalog = this.#catalog;
    if (catalog) {
      this.#stopWatching = catalog.onChange((change) => {
        if (change.key.join('/') === PLACEMENT_CATALOG_KEY.join('/')) this.#refresh();
      });
      this.#refresh();
      await this.#ensureLocalMetadata();
      await this.#tryToServe();
      this.#serveTimer = setInterval(() => void this.#tryToServe(), SERVE_RETRY_MS);
      this.#serveTimer.unref();
      return;
    }
    this.#topic = this.#broker.topic(PLACEMENT_TOPIC);
    this.#topic.log.onDurable(() => this.#refresh());
    this.#refresh();
    await this.#ensureLocalMetadata();
  }

  /**
   * Cluster: serves the placement topic here if this broker owns it (a lookup otherwise
   * answers at once that another broker does); on a new log, follows its commits. Runs
   * every SERVE_RETRY_MS; with the topic already followed it only refreshes.
   */
  async #tryToServe(): Promise<void> {
    const name = parseTopicName(PLACEMENT_TOPIC);
    if (this.#closed || this.#serving) return;
    this.#serving = true;
    try {
      // The topic may also have been taken over here by a replication link's hello: then
      // only the following of its log is missing.
      if (this.#broker.needsPreparing(name)) await this.#broker.prepareTopic(name);
      const topic = this.#broker.topic(name);
      if (topic !== this.#topic) {
        this.#topic = topic;
        topic.log.onDurable(() => this.#refresh());
        this.#log(`[placement] this broker serves ${PLACEMENT_TOPIC}; publishing its records to the region's catalog`);
      }
      this.#refresh();
    } catch (error) {
      if ((error as AdmqError).code !== ErrorCode.TopicMoved && (error as AdmqError).code !== ErrorCode.ShuttingDown) {
        this.#log(`[placement] cannot serve ${PLACEMENT_TOPIC} here now: ${(error as Error).message}`);
      }
    } finally {
      this.#serving = false;
    }
  }

  /** The loaded placement topic when this node serves it (always standalone). */
  #servedTopic(): Topic | undefined {
    const topic = this.#topic;
    if (!topic || !this.#catalog) return topic;
    return this.#broker.loadedTopics().includes(topic) ? topic : undefined;
  }

  close(): void {
    this.#closed = true;
    if (this.#serveTimer) clearInterval(this.#serveTimer);
    this.#stopWatching?.();
  }

  /** Called with the new placement whenever it changes. */
  onChange(listener: (placement: Placement) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Refuses a local write to `topic` when this region is fenced for its tenant or outside its namespace's replication set. */
  assertWritable(tenant: string, namespace: string): void {
    const p = this.#current;
    if (tenant === SYSTEM_TENANT) return;
    if (p.fencedIn(tenant, this.region) || this.#fencing.has(tenant)) {
      throw new AdmqError(ErrorCode.TenantFenced, `tenant ${tenant} is fenced in ${this.region} for a planned failover; retry shortly (clients follow the new home region)`);
    }
    const full = `${tenant}/${namespace}`;
    const ns = p.namespaces.get(full);
    if (ns && !p.mayHold(full, this.region)) {
      throw new AdmqError(ErrorCode.Residency, `namespace ${full} may not be written in ${this.region}: its replication set is ${ns.replicationSet.join(', ')}`);
    }
  }

  /** Sets a tenant's allowed regions and home region (a new tenant needs allowedRegions). */
  async setTenant(name: string, change: { allowedRegions?: string[]; homeRegion?: string }): Promise<TenantPlacement> {
    const before = this.#current.tenants.get(name);
    const allowedRegions = change.allowedRegions ?? before?.allowedRegions;
    if (!allowedRegions) throw new PlacementError('allowedRegions', `tenant ${name} has no placement yet; give its allowed regions`);
    const next: TenantPlacement = {
      name,
      allowedRegions,
      homeRegion: change.homeRegion ?? (before && allowedRegions.includes(before.homeRegion) ? before.homeRegion : (allowedRegions[0] as string)),
      ...(before?.fencedIn !== undefined && { fencedIn: before.fencedIn }),
    };
    this.#current.checkTenantChange(next);
    await this.#write({ kind: 'tenant', tenant: next });
    return next;
  }

  /** Sets a namespace's replication set. */
  async setNamespace(name: string, replicationSet: string[]): Promise<NamespacePlacement> {
    const [tenant] = name.split('/') as [string, string];
    const next: NamespacePlacement = { name, tenant, replicationSet };
    this.#current.checkNamespaceChange(next);
    await this.#write({ kind: 'namespace', namespace: next });
    return next;
  }

  /**
   * Fences the tenant's writes in this region, its home: from now on local writes are
   * refused. Resolves once every write accepted before is durable, with the HLC below
   * which all of them lie (replicated everywhere once every region's watermark for this
   * origin has passed it).
   */
  async fence(name: string): Promise<{ tenant: string; region: string; fencedAtHlc: bigint }> {
    if (this.#catalog) {
      throw new AdmqError(ErrorCode.BadRequest, `a planned failover out of ${this.region} is not supported yet: it is a regional cluster, whose other brokers would learn of the fence only after it is durable`);
    }
    const before = this.#current.tenants.get(name);
    if (!before) throw new PlacementError('tenant', `tenant ${name} has no placement`);
    if (before.homeRegion !== this.region) {
      throw new PlacementError('tenant', `tenant ${name}'s home is ${before.homeRegion}; fence it there, not in ${this.region}`);
    }
    // The fence holds from this moment. Every write that passed the check before is
    // already queued in the log store, ahead of the fence record, and commits flush in
    // queue order: once the record is durable, so are they.
    this.#fencing.add(name);
    try {
      await this.#write({ kind: 'tenant', tenant: { ...before, fencedIn: this.region } });
    } finally {
      this.#fencing.delete(name);
    }
    return { tenant: name, region: this.region, fencedAtHlc: this.#broker.store.localWatermark() };
  }

  /** Lifts a fence (wherever it is). */
  async unfence(name: string): Promise<TenantPlacement> {
    const before = this.#current.tenants.get(name);
    if (!before) throw new PlacementError('tenant', `tenant ${name} has no placement`);
    const { fencedIn: _lifted, ...next } = before;
    await this.#write({ kind: 'tenant', tenant: next });
    return next;
  }

  /** Records are written one after another, so that two never take the same sequence id. */
  #write(record: PlacementRecord): Promise<void> {
    const producerName = `__placement-${this.region}`;
    const done = this.#writes.then(async () => {
      // In a cluster only the serving broker writes; another answers ADMQ_ERR_TOPIC_MOVED naming it.
      if (this.#catalog) await this.#broker.prepareTopic(parseTopicName(PLACEMENT_TOPIC));
      const topic = this.#catalog ? this.#broker.topic(PLACEMENT_TOPIC) : this.#topic;
      if (!topic) throw new AdmqError(ErrorCode.Internal, 'placement store is not open');
      await this.#broker.store.append(topic.log, [
        { producerName, sequenceId: topic.lastSequenceId(producerName) + 1, key: placementKey(record), properties: {}, payload: encodePlacementRecord(record), eventTimeMs: 0 },
      ]);
      this.#refresh();
      await this.#ensureLocalMetadata();
    });
    this.#writes = done.catch(() => {});
    return done;
  }

  #refresh(): void {
    const served = this.#servedTopic();
    let records: StampedPlacementRecord[];
    if (served?.table) {
      records = this.#tableRecords(served);
      if (this.#catalog) this.#publish(records, served.log.durableNextOffset);
    } else if (this.#catalog) {
      const published = this.#catalog.get<PublishedPlacement>(PLACEMENT_CATALOG_KEY);
      if (!published) return;
      records = [];
      for (const r of published.records) {
        try {
          // Decoded again: a record is checked wherever it is used, as it is from the log.
          records.push({ ...r, record: decodePlacementRecord(r.key, encodePlacementRecord(r.record)) });
        } catch (error) {
          this.#log(`[placement] ignored published record ${r.key}: ${(error as Error).message}`);
        }
      }
    } else {
      return;
    }
    const next = this.#base.with(records.map((r) => r.record));
    const changed = JSON.stringify(records) !== JSON.stringify(this.#records);
    this.#records = records;
    if (!changed) return;
    this.#current = next;
    for (const listener of this.#listeners) listener(next);
    void this.#ensureLocalMetadata().catch((error: Error) => this.#log(`[placement] cannot create local metadata: ${error.message}`));
  }

  #tableRecords(topic: Topic): StampedPlacementRecord[] {
    const records: StampedPlacementRecord[] = [];
    for (const row of topic.table?.rows() ?? []) {
      if (!row.value) continue;
      try {
        records.push({ key: row.key, record: decodePlacementRecord(row.key, row.value), originRegion: row.originRegion, hlc: row.hlc.toString() });
      } catch (error) {
        this.#log(`[placement] ignored record ${row.key} from ${row.originRegion}: ${(error as Error).message}`);
      }
    }
    return records;
  }

  /** Cluster: the serving broker's copy for the others; one write at a time, never over a newer one. */
  #publish(records: StampedPlacementRecord[], throughOffset: number): void {
    const catalog = this.#catalog;
    if (!catalog) return;
    this.#publishing = this.#publishing.then(async () => {
      const published = catalog.get<PublishedPlacement>(PLACEMENT_CATALOG_KEY);
      if (published && (published.throughOffset > throughOffset || JSON.stringify(published.records) === JSON.stringify(records))) return;
      await catalog.write([{ type: 'put', key: PLACEMENT_CATALOG_KEY, value: { records, throughOffset } satisfies PublishedPlacement }]).catch((error: Error) => {
        this.#log(`[placement] cannot publish the placement to the region's catalog: ${error.message}`);
      });
    });
  }

  /** Tenants and namespaces this region may hold exist here (never removed automatically). */
  async #ensureLocalMetadata(): Promise<void> {
    const md = this.#broker.metadata;
    const p = this.#current;
    for (const t of p.tenants.values()) {
      if (t.allowedRegions.includes(this.region) && !md.getTenant(t.name)) {
        await md.createTenant(t.name, { allowedRegions: t.allowedRegions }).catch(ignoreExists);
      }
    }
    for (const ns of p.namespaces.values()) {
      if (!p.mayHold(ns.name, this.region)) continue;
      const [tenant, namespace] = ns.name.split('/') as [string, string];
      if (md.getTenant(tenant) && !md.getNamespace(tenant, namespace)) await md.createNamespace(tenant, namespace).catch(ignoreExists);
    }
  }
}

function ignoreExists(error: AdmqError): void {
  if (error.code !== ErrorCode.AlreadyExists) throw error;
}
