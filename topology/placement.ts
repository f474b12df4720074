// Placement: where each tenant's data may live and where each namespace replicates, as it
// is now. The topology file seeds it; runtime changes made through the admin API override
// it record by record (region-node/placement-store.ts replicates them between regions as
// keyed metadata, last-writer-wins by HLC). Pure: no I/O.
//
// Residency rules a change must keep (checkTenantChange, checkNamespaceChange):
// - a tenant's home region is one of its allowed regions;
// - a namespace's replication set lies inside its tenant's allowed regions, and is
//   connected by links that stay inside it (data never transits a region that may not
//   hold it);
// - a tenant's allowed regions cannot shrink below a replication set of its namespaces
//   (shrink the namespace first).
// Two changes made concurrently in different regions are each checked against what their
// own region knew, so the merged result could break these rules; the replicator and the
// receiver therefore decide with mayHold() at the moment an entry would move, which
// requires both the replication set and the tenant's allowed regions.
import type { Topology } from './topology.ts';
import { unreachableWithin } from './topology.ts';

/** The system tenant and namespace that carry placement records to every region. */
export const SYSTEM_TENANT = '__admq';
export const CONTROL_NAMESPACE = `${SYSTEM_TENANT}/control`;
export const PLACEMENT_TOPIC = `persistent://${CONTROL_NAMESPACE}/placement`;

export interface TenantPlacement {
  name: string;
  allowedRegions: string[];
  homeRegion: string;
  /** Planned failover: the region where the tenant's writes are refused for now. */
  fencedIn?: string;
}

export interface NamespacePlacement {
  /** tenant/namespace */
  name: string;
  tenant: string;
  replicationSet: string[];
}

export type PlacementRecord = { kind: 'tenant'; tenant: TenantPlacement } | { kind: 'namespace'; namespace: NamespacePlacement };

export class PlacementError extends Error {
  readonly code = 'ADMQ_ERR_RESIDENCY';
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'PlacementError';
  }
}

/** The key of a record in the placement topic. */
export function placementKey(record: PlacementRecord): string {
  return record.kind === 'tenant' ? `tenant/${record.tenant.name}` : `namespace/${record.namespace.name}`;
}

export function encodePlacementRecord(record: PlacementRecord): Buffer {
  return Buffer.from(JSON.stringify(record.kind === 'tenant' ? record.tenant : record.namespace));
}

function stringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((r) => typeof r === 'string');
}

/** Parses a record read from the placement topic; throws on anything admq did not write. */
export function decodePlacementRecord(key: string, value: Buffer): PlacementRecord {
  const doc = JSON.parse(value.toString('utf8')) as Record<string, unknown>;
  if (key.startsWith('tenant/')) {
    const name = key.slice('tenant/'.length);
    if (doc.name !== name || !stringList(doc.allowedRegions) || typeof doc.homeRegion !== 'string') throw new Error(`malformed tenant record ${key}`);
    if (doc.fencedIn !== undefined && typeof doc.fencedIn !== 'string') throw new Error(`malformed fencedIn in ${key}`);
    return { kind: 'tenant', tenant: { name, allowedRegions: doc.allowedRegions, homeRegion: doc.homeRegion, ...(doc.fencedIn !== undefined && { fencedIn: doc.fencedIn as string }) } };
  }
  if (key.startsWith('namespace/')) {
    const name = key.slice('namespace/'.length);
    if (doc.name !== name || typeof doc.tenant !== 'string' || !name.startsWith(`${doc.tenant}/`) || !stringList(doc.replicationSet)) throw new Error(`malformed namespace record ${key}`);
    return { kind: 'namespace', namespace: { name, tenant: doc.tenant, replicationSet: doc.replicationSet } };
  }
  throw new Error(`unknown placement key ${key}`);
}

export class Placement {
  private constructor(
    readonly regions: readonly string[],
    readonly links: ReadonlyArray<readonly [string, string]>,
    readonly tenants: ReadonlyMap<string, TenantPlacement>,
    readonly namespaces: ReadonlyMap<string, NamespacePlacement>,
  ) {}

  /**
   * The topology's tenants and namespaces, plus the system namespace that carries
   * placement records: allowed in, and replicated to, every region.
   */
  static fromTopology(topology: Topology): Placement {
    const regions = [...topology.regions.keys()];
    const tenants = new Map<string, TenantPlacement>([[SYSTEM_TENANT, { name: SYSTEM_TENANT, allowedRegions: regions, homeRegion: regions[0] as string }]]);
    for (const t of topology.tenants.values()) tenants.set(t.name, { name: t.name, allowedRegions: [...t.allowedRegions], homeRegion: t.homeRegion });
    const namespaces = new Map<string, NamespacePlacement>([[CONTROL_NAMESPACE, { name: CONTROL_NAMESPACE, tenant: SYSTEM_TENANT, replicationSet: regions }]]);
    for (const n of topology.namespaces.values()) namespaces.set(n.name, { name: n.name, tenant: n.tenant, replicationSet: [...n.replicationSet] });
    return new Placement(regions, topology.links, tenants, namespaces);
  }

  /** This placement with `records` laid over it (records for the system tenant are ignored). */
  with(records: Iterable<PlacementRecord>): Placement {
    const tenants = new Map(this.tenants);
    const namespaces = new Map(this.namespaces);
    for (const record of records) {
      if (record.kind === 'tenant') {
        if (record.tenant.name !== SYSTEM_TENANT) tenants.set(record.tenant.name, record.tenant);
      } else if (record.namespace.tenant !== SYSTEM_TENANT) namespaces.set(record.namespace.name, record.namespace);
    }
    return new Placement(this.regions, this.links, tenants, namespaces);
  }

  /** The namespace's replication set; a namespace not declared stays in `localRegion`. */
  replicationSet(namespace: string, localRegion: string): string[] {
    return this.namespaces.get(namespace)?.replicationSet ?? [localRegion];
  }

  /** Whether `region` may hold the namespace's data: in its replication set, and allowed for its tenant. */
  mayHold(namespace: string, region: string): boolean {
    const ns = this.namespaces.get(namespace);
    if (!ns) return false;
    return ns.replicationSet.includes(region) && (this.tenants.get(ns.tenant)?.allowedRegions.includes(region) ?? false);
  }

  /** Whether local writes of the tenant are refused in `region` (planned failover's fence). */
  fencedIn(tenant: string, region: string): boolean {
    return this.tenants.get(tenant)?.fencedIn === region;
  }

  /** The tenant's allowed regions, home first. */
  tenantRegions(tenant: string): { home: string; regions: string[] } | undefined {
    const t = this.tenants.get(tenant);
    if (!t) return undefined;
    return { home: t.homeRegion, regions: [t.homeRegion, ...t.allowedRegions.filter((r) => r !== t.homeRegion)] };
  }

  #regionList(field: string, value: readonly string[]): void {
    if (value.length === 0) throw new PlacementError(field, 'must list at least one region');
    value.forEach((r, i) => {
      if (!this.regions.includes(r)) throw new PlacementError(`${field}[${i}]`, `unknown region "${r}" (the topology has ${this.regions.join(', ')})`);
      if (value.indexOf(r) !== i) throw new PlacementError(`${field}[${i}]`, `region "${r}" is listed twice`);
    });
  }

  /** Throws PlacementError when setting `next` would break a residency rule. */
  checkTenantChange(next: TenantPlacement): void {
    if (next.name === SYSTEM_TENANT) throw new PlacementError('tenant', `${SYSTEM_TENANT} is the system tenant; its placement is every region`);
    this.#regionList('allowedRegions', next.allowedRegions);
    if (!next.allowedRegions.includes(next.homeRegion)) {
      throw new PlacementError('homeRegion', `"${next.homeRegion}" is outside tenant ${next.name}'s allowed regions (${next.allowedRegions.join(', ')})`);
    }
    if (next.fencedIn !== undefined && !this.regions.includes(next.fencedIn)) throw new PlacementError('fencedIn', `unknown region "${next.fencedIn}"`);
    for (const ns of this.namespaces.values()) {
      if (ns.tenant !== next.name) continue;
      const outside = ns.replicationSet.filter((r) => !next.allowedRegions.includes(r));
      if (outside.length > 0) {
        throw new PlacementError(
          'allowedRegions',
          `namespace ${ns.name} replicates to ${outside.join(', ')}, which would no longer be allowed; remove ${outside.length === 1 ? 'it' : 'them'} from its replication set first`,
        );
      }
    }
  }

  /** Throws PlacementError when setting `next` would break a residency rule. */
  checkNamespaceChange(next: NamespacePlacement): void {
    if (next.tenant === SYSTEM_TENANT) throw new PlacementError('namespace', `${next.name} belongs to the system tenant; its replication set is every region`);
    const tenant = this.tenants.get(next.tenant);
    if (!tenant) throw new PlacementError('tenant', `tenant "${next.tenant}" has no placement; set its allowed regions first`);
    this.#regionList('replicationSet', next.replicationSet);
    const outside = next.replicationSet.filter((r) => !tenant.allowedRegions.includes(r));
    if (outside.length > 0) {
      throw new PlacementError('replicationSet', `${outside.join(', ')} ${outside.length === 1 ? 'is' : 'are'} outside tenant ${tenant.name}'s allowed regions (${tenant.allowedRegions.join(', ')})`);
    }
    const cut = unreachableWithin(this.links, next.replicationSet);
    if (cut.length > 0) {
      throw new PlacementError('replicationSet', `${cut.join(', ')} cannot be reached through links that stay inside the replication set (data may not transit other regions)`);
    }
  }
}
