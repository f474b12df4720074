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
import type { Topic } from './broker/topic.ts';
import { AdmqError } from './errors.ts';

/** A placement record as stored: which region wrote the winning version, and when (HLC). */
export interface StampedPlacementRecord {
  key: string;
  record: PlacementRecord;
  originRegion: string;
  hlc: string;
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

  constructor(topology: Topology, broker: Broker, log: (line: string) => void) {
    this.#broker = broker;
    this.#base = Placement.fromTopology(topology);
    this.#current = this.#base;
    this.#log = log;
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
    if (!md.getTenant(SYSTEM_TENANT)) await md.createTenant(SYSTEM_TENANT, { allowedRegions: [...this.#base.regions] });
    if (!md.getNamespace(SYSTEM_TENANT, controlNs)) await md.createNamespace(SYSTEM_TENANT, controlNs);
    if (!md.getTopic(PLACEMENT_TOPIC)) await this.#broker.createTopic(PLACEMENT_TOPIC, 0, { keyed: true });
    this.#topic = this.#broker.topic(PLACEMENT_TOPIC);
    this.#topic.log.onDurable(() => this.#refresh());
    this.#refresh();
    await this.#ensureLocalMetadata();
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
    const topic = this.#topic;
    if (!topic) throw new AdmqError(ErrorCode.Internal, 'placement store is not open');
    const producerName = `__placement-${this.region}`;
    const done = this.#writes.then(async () => {
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
    const table = this.#topic?.table;
    if (!table) return;
    const records: StampedPlacementRecord[] = [];
    for (const row of table.rows()) {
      if (!row.value) continue;
      try {
        records.push({ key: row.key, record: decodePlacementRecord(row.key, row.value), originRegion: row.originRegion, hlc: row.hlc.toString() });
      } catch (error) {
        this.#log(`[placement] ignored record ${row.key} from ${row.originRegion}: ${(error as Error).message}`);
      }
    }
    const next = this.#base.with(records.map((r) => r.record));
    const changed = JSON.stringify(records) !== JSON.stringify(this.#records);
    this.#records = records;
    if (!changed) return;
    this.#current = next;
    for (const listener of this.#listeners) listener(next);
    void this.#ensureLocalMetadata().catch((error: Error) => this.#log(`[placement] cannot create local metadata: ${error.message}`));
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
