// The admin REST API: JSON over HTTP, for the CLI, curl and the future console.
// Every route is listed in docs/admin-api.md. Errors are {"code": "ADMQ_ERR_…", "message": "…"}.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request } from 'undici';
import { ErrorCode } from '../proto/index.ts';
import type { Broker } from './broker/broker.ts';
import { AdmqError, BadRequestError, httpStatusOf, toAdmqError } from './errors.ts';
import { parseTopicName, validateNamespaceName, validateTenantName } from './names.ts';
import type { PlacementStore } from './placement-store.ts';

const BODY_BYTES_MAX = 1024 * 1024;

type Handler = (params: string[], body: unknown, query: URLSearchParams) => Promise<unknown> | unknown;

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_BYTES_MAX) {
        reject(new BadRequestError(`request body exceeds ${BODY_BYTES_MAX} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size === 0) return resolve(undefined);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (error) {
        reject(new BadRequestError(`request body is not valid JSON: ${(error as Error).message}`));
      }
    });
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const body = value === undefined ? '' : JSON.stringify(value, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function optionalRegions(body: Record<string, unknown>, field: string): string[] | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((r) => typeof r !== 'string' || !/^[a-z][a-z0-9-]*$/.test(r))) {
    throw new BadRequestError(`${field} must be a list of lowercase region names`);
  }
  return value as string[];
}

function optionalString(body: Record<string, unknown>, field: string): string | undefined {
  const value = body[field];
  if (value !== undefined && typeof value !== 'string') throw new BadRequestError(`${field} must be a string`);
  return value;
}

function objectBody(body: unknown): Record<string, unknown> {
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequestError('request body must be a JSON object');
  return body as Record<string, unknown>;
}

/** What the admin API asks of the node's replication, when the node runs in a topology. */
export interface AdminReplicationHooks {
  /** A tenant's regions from its current placement, home first, with their client and admin endpoints; undefined for an unknown tenant. */
  tenantRegions(tenant: string): Array<{ name: string; serviceUrl: string; adminUrl: string; home: boolean }> | undefined;
  /** Runtime placement: tenants' regions, namespaces' replication sets, fences. */
  placement: PlacementStore;
  status(): unknown;
  resetHistograms(): void;
  /** Starts a new topic's links and waits, bounded, until the neighbours hold the topic. */
  propagateTopic(topic: string, timeoutMs: number): Promise<unknown>;
  /** One page of the node's lag history of a namespace (compliance/history-wire.ts); undefined until it runs. */
  lagHistory(query: { namespace: string; fromMs: number; toMs: number; after?: string }): unknown;
}

/** What the admin API asks of a broker of a regional cluster. */
export interface AdminClusterHooks {
  /** Brokers, bundle assignments and this broker's owned bundles and served topics. */
  status(): unknown;
  /** Which broker serves a topic (assigning it first if nobody does). */
  lookup(topic: string): Promise<unknown>;
  /**
   * Where a write that failed with `error` goes instead: the admin URL of the broker that
   * serves the placement topic, when `error` says another broker serves it; else undefined.
   */
  placementOwnerAdminUrl(error: unknown): string | undefined;
}

/** Marks a request one broker passed to another, so that it is passed on at most once. */
const FORWARDED_HEADER = 'x-admq-forwarded-by';

/** Sends a write to the broker that can carry it out and relays its answer. */
async function forward(res: ServerResponse, target: string, method: string, pathAndQuery: string, body: unknown, from: string): Promise<void> {
  const answer = await request(`${target.replace(/\/+$/, '')}/admin/v1${pathAndQuery}`, {
    method: method as 'POST',
    headers: { 'content-type': 'application/json', [FORWARDED_HEADER]: from },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const text = await answer.body.text();
  res.writeHead(answer.statusCode, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function msParameter(query: URLSearchParams, name: string): number {
  const text = query.get(name);
  const value = Number(text);
  if (text === null || text === '' || !Number.isSafeInteger(value) || value < 0) throw new BadRequestError(`${name} must be a time in ms since the epoch`);
  return value;
}

function requireCluster(cluster: (() => AdminClusterHooks | undefined) | undefined): AdminClusterHooks {
  const hooks = cluster?.();
  if (!hooks) throw new AdmqError(ErrorCode.BadRequest, 'this node is not a broker of a regional cluster (start it with --metadata-store)');
  return hooks;
}

/** Longest wait for a new topic to reach the other regions (`?waitMs=`); default 5 s. */
const PROPAGATION_WAIT_MAX_MS = 60_000;
const PROPAGATION_WAIT_DEFAULT_MS = 5_000;

export function buildAdminRoutes(broker: Broker, info: () => Record<string, unknown>, replication?: AdminReplicationHooks, cluster?: () => AdminClusterHooks | undefined): Route[] {
  const seg = '([^/]+)';
  const topicName = (p: string[]): string => parseTopicName(`${p[0]}/${p[1]}/${p[2]}`).full;
  const r = (method: string, path: string, handler: Handler): Route => ({
    method,
    pattern: new RegExp(`^/admin/v1${path.replaceAll(':x', seg)}$`),
    handler,
  });
  const md = broker.metadata;
  const requirePlacement = (): PlacementStore => {
    if (!replication) throw new AdmqError(ErrorCode.BadRequest, 'this node runs without a topology: placement is this region only');
    return replication.placement;
  };
  return [
    r('GET', '/health', () => ({ status: 'ok', region: broker.region })),
    r('GET', '/node', () => info()),
    r('GET', '/cluster', () => requireCluster(cluster).status()),
    r('GET', '/cluster/lookup/:x/:x/:x', (p) => requireCluster(cluster).lookup(topicName(p))),
    r('GET', '/replication/status', () => {
      if (!replication) throw new AdmqError(ErrorCode.BadRequest, 'this node runs without a topology: no replication');
      return replication.status();
    }),
    r('GET', '/lag-history', (_p, _b, q) => {
      if (!replication) throw new AdmqError(ErrorCode.BadRequest, 'this node runs without a topology: no replication, no lag history');
      const namespace = q.get('namespace') ?? '';
      const [tenant, ns, ...rest] = namespace.split('/');
      if (!tenant || !ns || rest.length > 0) throw new BadRequestError('namespace must be tenant/namespace');
      validateNamespaceName(tenant, ns);
      const fromMs = msParameter(q, 'fromMs');
      const toMs = msParameter(q, 'toMs');
      if (toMs <= fromMs) throw new BadRequestError('toMs must be after fromMs');
      const after = q.get('after') ?? undefined;
      let page: unknown;
      try {
        page = replication.lagHistory({ namespace, fromMs, toMs, ...(after !== undefined && { after }) });
      } catch (error) {
        // A cursor this node did not give, a period it cannot answer: the caller's mistake.
        if ((error as { code?: unknown }).code === 'ADMQ_ERR_HISTORY_QUERY') throw new BadRequestError((error as Error).message);
        throw error;
      }
      if (page === undefined) throw new AdmqError(ErrorCode.ShuttingDown, 'the lag history is not running yet; retry');
      return page;
    }),
    r('POST', '/replication/histograms/reset', () => {
      if (!replication) throw new AdmqError(ErrorCode.BadRequest, 'this node runs without a topology: no replication');
      replication.resetHistograms();
      return { reset: true };
    }),
    r('GET', '/tenants', () => md.listTenants().map((t) => t.name)),
    r('GET', '/tenants/:x', (p) => md.requireTenant(p[0] as string)),
    r('GET', '/tenants/:x/regions', (p) => {
      // Where a client of this tenant may connect, home first: what AdmqClient.forTenant asks.
      const tenant = p[0] as string;
      if (!replication) return [{ name: broker.region, serviceUrl: String(info().grpcAddress), home: true }];
      const regions = replication.tenantRegions(tenant);
      if (!regions) throw new AdmqError(ErrorCode.TenantNotFound, `tenant "${tenant}" is not in the topology`);
      return regions;
    }),
    r('PUT', '/tenants/:x', async (p, body) => {
      const b = objectBody(body);
      const name = validateTenantName(p[0] as string);
      if (!replication) return md.createTenant(name, { allowedRegions: optionalRegions(b, 'allowedRegions') });
      // In a topology a new tenant's placement replicates, so that it exists in every region it allows.
      if (md.getTenant(name) || replication.placement.current.tenants.has(name)) throw new AdmqError(ErrorCode.AlreadyExists, `tenant "${name}" already exists`);
      const allowedRegions = optionalRegions(b, 'allowedRegions') ?? [broker.region];
      await replication.placement.setTenant(name, { allowedRegions, homeRegion: optionalString(b, 'homeRegion') ?? (allowedRegions.includes(broker.region) ? broker.region : allowedRegions[0]) });
      return md.getTenant(name) ?? { name, allowedRegions, createdAtMs: Date.now() };
    }),
    r('GET', '/placement', () => {
      const store = requirePlacement();
      const current = store.current;
      return {
        region: broker.region,
        tenants: [...current.tenants.values()],
        namespaces: [...current.namespaces.values()],
        records: store.records,
      };
    }),
    r('POST', '/tenants/:x/placement', async (p, body) => {
      const b = objectBody(body);
      const name = validateTenantName(p[0] as string);
      const allowedRegions = optionalRegions(b, 'allowedRegions');
      const homeRegion = optionalString(b, 'homeRegion');
      if (!allowedRegions && !homeRegion) throw new BadRequestError('give allowedRegions, homeRegion or both');
      return requirePlacement().setTenant(name, { ...(allowedRegions && { allowedRegions }), ...(homeRegion && { homeRegion }) });
    }),
    r('POST', '/tenants/:x/fence', async (p) => {
      const fenced = await requirePlacement().fence(validateTenantName(p[0] as string));
      return { ...fenced, fencedAtHlc: fenced.fencedAtHlc.toString() };
    }),
    r('DELETE', '/tenants/:x/fence', async (p) => requirePlacement().unfence(validateTenantName(p[0] as string))),
    r('POST', '/namespaces/:x/:x/placement', async (p, body) => {
      const b = objectBody(body);
      const tenant = p[0] as string;
      const namespace = validateNamespaceName(tenant, p[1] as string);
      const replicationSet = optionalRegions(b, 'replicationSet');
      if (!replicationSet) throw new BadRequestError('replicationSet is required: the regions the namespace replicates to');
      return requirePlacement().setNamespace(`${tenant}/${namespace}`, replicationSet);
    }),
    r('DELETE', '/tenants/:x', async (p) => {
      await md.deleteTenant(p[0] as string);
      return undefined;
    }),
    r('GET', '/namespaces/:x', (p) => md.listNamespaces(p[0] as string).map((n) => `${n.tenant}/${n.namespace}`)),
    r('GET', '/namespaces/:x/:x', (p) => md.requireNamespace(p[0] as string, p[1] as string)),
    r('PUT', '/namespaces/:x/:x', async (p, body) => {
      const replicationSet = optionalRegions(objectBody(body), 'replicationSet');
      if (!replicationSet) return md.createNamespace(p[0] as string, p[1] as string);
      // With a replication set, the namespace's placement replicates and creates it in those regions.
      const tenant = p[0] as string;
      const namespace = validateNamespaceName(tenant, p[1] as string);
      if (md.getNamespace(tenant, namespace)) throw new AdmqError(ErrorCode.AlreadyExists, `namespace "${tenant}/${namespace}" already exists`);
      await requirePlacement().setNamespace(`${tenant}/${namespace}`, replicationSet);
      return md.getNamespace(tenant, namespace) ?? { tenant, namespace, replicationSet };
    }),
    r('DELETE', '/namespaces/:x/:x', async (p) => {
      await md.deleteNamespace(p[0] as string, p[1] as string);
      return undefined;
    }),
    r('GET', '/topics/:x/:x', (p) =>
      md.listTopics(p[0] as string, p[1] as string).map((t) => ({ name: t.name, partitions: t.partitions })),
    ),
    r('GET', '/topics/:x/:x/:x', (p) => {
      const record = broker.topicRecord(topicName(p));
      return { name: record.name, partitions: record.partitions, keyed: record.keyed === true, createdAtMs: record.createdAtMs };
    }),
    r('PUT', '/topics/:x/:x/:x', async (p, body, q) => {
      const b = objectBody(body);
      const partitions = b.partitions ?? 0;
      if (typeof partitions !== 'number') throw new BadRequestError('partitions must be a number');
      const waitMs = Number(q.get('waitMs') ?? PROPAGATION_WAIT_DEFAULT_MS);
      if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > PROPAGATION_WAIT_MAX_MS) {
        throw new BadRequestError(`waitMs must be an integer from 0 to ${PROPAGATION_WAIT_MAX_MS}`);
      }
      const keyed = b.keyed ?? false;
      if (typeof keyed !== 'boolean') throw new BadRequestError('keyed must be true or false');
      const record = await broker.createTopic(topicName(p), partitions, { keyed });
      if (!replication) return { name: record.name, partitions: record.partitions, keyed: record.keyed === true };
      // In a topology the topic reaches the other regions of its replication set through
      // the links; wait (bounded) so that a producer there finds it, and say where it is.
      const links = await replication.propagateTopic(record.name, waitMs);
      return { name: record.name, partitions: record.partitions, keyed: record.keyed === true, replication: links };
    }),
    r('DELETE', '/topics/:x/:x/:x', async (p, _b, q) => {
      await broker.deleteTopic(topicName(p), q.get('force') === 'true');
      return undefined;
    }),
    r('GET', '/topics/:x/:x/:x/stats', (p) => broker.stats(topicName(p))),
    r('GET', '/topics/:x/:x/:x/table', (p) =>
      broker.table(topicName(p)).map((row) => {
        const text = row.value?.toString('utf8');
        const isText = row.value !== undefined && Buffer.from(text as string, 'utf8').equals(row.value);
        return {
          key: row.key,
          ...(row.value === undefined ? { deleted: true } : isText ? { value: text } : { valueBase64: row.value.toString('base64') }),
          originRegion: row.originRegion,
          originPosition: row.originPosition,
          hlc: row.hlc.toString(),
          concurrent: row.concurrent,
        };
      }),
    ),
    r('GET', '/topics/:x/:x/:x/subscriptions', (p) => [...broker.topic(topicName(p)).subscriptions.keys()]),
    r('PUT', '/topics/:x/:x/:x/subscriptions/:x', (p, body) => {
      const b = objectBody(body);
      const position = b.position ?? 'latest';
      if (position !== 'latest' && position !== 'earliest') throw new BadRequestError('position must be "earliest" or "latest"');
      const topic = broker.topic(topicName(p));
      if (topic.subscriptions.has(p[3] as string)) throw new AdmqError(ErrorCode.AlreadyExists, `subscription "${p[3]}" already exists`);
      const sub = topic.subscription(p[3] as string, 'exclusive', position, true);
      return { subscription: sub.name, ackedBelow: sub.ackedBelow };
    }),
    r('DELETE', '/topics/:x/:x/:x/subscriptions/:x', (p, _b, q) => {
      broker.topic(topicName(p)).deleteSubscription(p[3] as string, q.get('force') === 'true');
      return undefined;
    }),
  ];
}

export function startAdminServer(options: {
  broker: Broker;
  host: string;
  port: number;
  info: () => Record<string, unknown>;
  /** Only for a node in a topology; looked up per call, as replication starts after the admin API listens. */
  replication?: () => AdminReplicationHooks | undefined;
  /** Serves GET /metrics (Prometheus text format). */
  metrics?: { handle(req: IncomingMessage, res: ServerResponse): void };
  /** Only for a broker of a regional cluster; looked up per call, as it joins after the admin API listens. */
  cluster?: () => AdminClusterHooks | undefined;
  log: (line: string) => void;
}): Promise<Server> {
  const current = options.replication;
  const hooks: AdminReplicationHooks | undefined = current && {
    tenantRegions: (tenant) => current()?.tenantRegions(tenant),
    get placement(): PlacementStore {
      const r = current();
      if (!r) throw new AdmqError(ErrorCode.ShuttingDown, 'replication is not running yet; retry');
      return r.placement;
    },
    status: () => {
      const r = current();
      if (!r) throw new AdmqError(ErrorCode.BadRequest, 'this node runs without a topology: no replication');
      return r.status();
    },
    resetHistograms: () => current()?.resetHistograms(),
    propagateTopic: (topic, timeoutMs) => current()?.propagateTopic(topic, timeoutMs) ?? Promise.resolve([]),
    lagHistory: (query) => current()?.lagHistory(query),
  };
  const routes = buildAdminRoutes(options.broker, options.info, hooks, options.cluster);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    // Prometheus scrapes the node's OpenTelemetry metrics here (observability/metrics.ts).
    if (path === '/metrics' && req.method === 'GET' && options.metrics) {
      options.metrics.handle(req, res);
      return;
    }
    let matchedPath = false;
    for (const route of routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      matchedPath = true;
      if (route.method !== req.method) continue;
      const params = match.slice(1).map((s) => decodeURIComponent(s));
      let body: unknown;
      readBody(req)
        .then((read) => route.handler(params, (body = read), url.searchParams))
        .then(
          (value) => send(res, value === undefined ? 204 : req.method === 'PUT' ? 201 : 200, value),
          (error: unknown) => {
            // In a regional cluster a placement change is made by the broker that serves the
            // placement topic: any other broker passes the request on to it, once.
            const target = req.method !== 'GET' && req.headers[FORWARDED_HEADER] === undefined ? options.cluster?.()?.placementOwnerAdminUrl(error) : undefined;
            if (target) {
              forward(res, target, req.method ?? 'POST', `${path.replace(/^\/admin\/v1/, '')}${url.search}`, body, options.info().adminUrl as string).catch((failure: unknown) => {
                send(res, 502, { code: ErrorCode.Connection, message: `could not pass the request on to ${target}: ${(failure as Error).message}` });
              });
              return;
            }
            const typed = toAdmqError(error);
            if (typed.code === ErrorCode.Internal) options.log(`[admin] ${req.method} ${path} failed: ${typed.stack ?? typed.message}`);
            send(res, httpStatusOf(typed.code), { code: typed.code, message: typed.message });
          },
        );
      return;
    }
    if (matchedPath) send(res, 405, { code: ErrorCode.BadRequest, message: `method ${req.method} is not allowed on ${path}` });
    else send(res, 404, { code: ErrorCode.BadRequest, message: `no admin route ${req.method} ${path}` });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
