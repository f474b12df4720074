// Planned failover of a tenant (DESIGN §8): move its home region with no loss (RPO 0).
//
//   1. fence: the current home refuses the tenant's writes from now on, and answers with
//      an HLC below which every write it accepted lies;
//   2. drain: wait until the target's watermark for the old home's entries passes that
//      HLC on every topic of the tenant that replicates to the target ("every write from
//      the old home with HLC <= T is durable in the target");
//   3. move: the tenant's home becomes the target;
//   4. unfence.
//
// Producers that were writing to the old home get ADMQ_ERR_TENANT_FENCED, keep their
// unacknowledged messages, look the tenant's home up again and resend to the new home with
// the same sequence ids (deduplicated across regions). If anything fails after the fence,
// the fence is lifted again, so a failed failover never leaves the tenant unwritable.
import { AdminClient, type ReplicationStatusView } from '../client/admin.ts';

export interface FailoverProgress {
  phase: 'fence' | 'drain' | 'move' | 'unfence' | 'done';
  tenant: string;
  from: string;
  to: string;
  /** Drain: entries of the tenant the old home has not yet shipped to the target. */
  backlogEntries?: number;
  /** Drain: topics whose watermark in the target has not passed the fence yet. */
  topicsPending?: number;
  elapsedMs: number;
}

export interface FailoverResult {
  tenant: string;
  from: string;
  to: string;
  fencedAtMs: number;
  drainedAtMs: number;
  movedAtMs: number;
  unfencedAtMs: number;
  /** From the fence request to the target knowing it is home. */
  totalMs: number;
  drainMs: number;
  /** The HLC (decimal) every drained write lies below. */
  fencedAtHlc: string;
  /** Topics drained to the target. */
  topics: string[];
  /** Namespaces of the tenant whose replication set leaves the target out: not drained, their data stays where it is. */
  namespacesNotReplicatedToTarget: string[];
}

export class FailoverError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FailoverError';
  }
}

export interface FailoverOptions {
  /** Admin API of every region, region name → http://host:port. */
  adminUrls: Record<string, string>;
  tenant: string;
  to: string;
  /** Longest wait for the drain and for the move to reach the target, ms. Default 300,000. */
  timeoutMs?: number;
  pollIntervalMs?: number;
  onProgress?: (progress: FailoverProgress) => void;
}

function admin(urls: Record<string, string>, region: string): AdminClient {
  const url = urls[region];
  if (!url) throw new FailoverError(`no admin URL for region "${region}" (known: ${Object.keys(urls).join(', ')})`);
  return new AdminClient(url);
}

/** The tenant's topics (partitions expanded) in namespaces that replicate to `to`. */
async function tenantTopics(source: AdminClient, tenant: string, namespaces: Array<{ name: string; tenant: string; replicationSet: string[] }>, to: string): Promise<{ topics: string[]; skipped: string[] }> {
  const topics: string[] = [];
  const skipped: string[] = [];
  for (const ns of namespaces.filter((n) => n.tenant === tenant)) {
    if (!ns.replicationSet.includes(to)) {
      skipped.push(ns.name);
      continue;
    }
    let listed: Array<{ name: string; partitions: number }>;
    try {
      listed = await source.listTopics(ns.name);
    } catch {
      continue; // the namespace does not exist in the old home: nothing to drain
    }
    for (const t of listed) {
      if (t.partitions > 0) for (let i = 0; i < t.partitions; i++) topics.push(`${t.name}-partition-${i}`);
      else topics.push(t.name);
    }
  }
  return { topics, skipped };
}

function pendingTopics(topics: readonly string[], status: ReplicationStatusView, from: string, fencedAtHlc: bigint): string[] {
  return topics.filter((topic) => {
    const mark = status.watermarks[topic]?.[from];
    return mark === undefined || BigInt(mark) < fencedAtHlc;
  });
}

export async function plannedFailover(options: FailoverOptions): Promise<FailoverResult> {
  const { tenant, to, adminUrls } = options;
  const timeoutMs = options.timeoutMs ?? 300_000;
  const pollMs = options.pollIntervalMs ?? 50;
  const target = admin(adminUrls, to);
  const placement = await target.placement();
  const spec = placement.tenants.find((t) => t.name === tenant);
  if (!spec) throw new FailoverError(`tenant "${tenant}" has no placement in ${to}`);
  if (!spec.allowedRegions.includes(to)) throw new FailoverError(`${to} is outside tenant ${tenant}'s allowed regions (${spec.allowedRegions.join(', ')})`);
  const from = spec.homeRegion;
  if (from === to) throw new FailoverError(`${to} is already tenant ${tenant}'s home region`);
  const source = admin(adminUrls, from);
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  const progress = (p: Omit<FailoverProgress, 'tenant' | 'from' | 'to' | 'elapsedMs'>): void => options.onProgress?.({ tenant, from, to, elapsedMs: elapsed(), ...p });

  progress({ phase: 'fence' });
  const fence = await source.fenceTenant(tenant);
  const fencedAtMs = elapsed();
  const fencedAtHlc = BigInt(fence.fencedAtHlc);
  try {
    const { topics, skipped } = await tenantTopics(source, tenant, placement.namespaces, to);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const status = await target.replicationStatus();
      const pending = pendingTopics(topics, status, from, fencedAtHlc);
      const sourceStatus = await source.replicationStatus();
      const backlogEntries = sourceStatus.links.filter((l) => l.to === to && topics.includes(l.topic)).reduce((n, l) => n + Number(l.backlogEntries), 0);
      progress({ phase: 'drain', backlogEntries, topicsPending: pending.length });
      if (pending.length === 0) break;
      if (performance.now() > deadline) {
        throw new FailoverError(`replication of tenant ${tenant} from ${from} to ${to} did not drain within ${timeoutMs} ms (${pending.length} topic(s) behind, ${backlogEntries} entries, e.g. ${pending[0]})`);
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    const drainedAtMs = elapsed();
    progress({ phase: 'move' });
    await source.setTenantPlacement(tenant, { homeRegion: to });
    const movedAtMs = elapsed();
    progress({ phase: 'unfence' });
    await source.unfenceTenant(tenant);
    // Done when the new home itself knows it: clients asking it are sent there.
    while (true) {
      const seen = (await target.placement()).tenants.find((t) => t.name === tenant);
      if (seen?.homeRegion === to && seen.fencedIn === undefined) break;
      if (performance.now() > deadline) throw new FailoverError(`the move of tenant ${tenant}'s home did not reach ${to} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    const unfencedAtMs = elapsed();
    progress({ phase: 'done' });
    return { tenant, from, to, fencedAtMs, drainedAtMs, movedAtMs, unfencedAtMs, totalMs: unfencedAtMs, drainMs: drainedAtMs - fencedAtMs, fencedAtHlc: fence.fencedAtHlc, topics, namespacesNotReplicatedToTarget: skipped };
  } catch (error) {
    // Never leave the tenant fenced: the old home takes writes again.
    await source.unfenceTenant(tenant).catch(() => {});
    throw error instanceof FailoverError ? error : new FailoverError(`planned failover of ${tenant} to ${to} failed, fence lifted: ${(error as Error).message}`, { cause: error });
  }
}
