// AdminClient: the admin REST API through undici, for the CLI and for applications.
import { request } from 'undici';
import { ErrorCode, isErrorCode } from '../proto/index.ts';
import { AdmqClientError } from './errors.ts';

export class AdminClient {
  constructor(readonly adminUrl: string = 'http://127.0.0.1:8080') {}

  async call<T = unknown>(method: 'GET' | 'PUT' | 'DELETE' | 'POST', path: string, body?: unknown): Promise<T> {
    let response;
    try {
      response = await request(`${this.adminUrl}/admin/v1${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
    } catch (error) {
      throw new AdmqClientError(ErrorCode.Connection, `cannot reach the admin API at ${this.adminUrl}: ${(error as Error).message}`, { cause: error });
    }
    const text = await response.body.text();
    const value = text ? (JSON.parse(text) as unknown) : undefined;
    if (response.statusCode >= 400) {
      const err = value as { code?: string; message?: string } | undefined;
      const code = err?.code && isErrorCode(err.code) ? err.code : ErrorCode.Admin;
      throw new AdmqClientError(code, err?.message ?? `admin API answered ${response.statusCode}`);
    }
    return value as T;
  }

  listTenants = (): Promise<string[]> => this.call('GET', '/tenants');
  createTenant = (tenant: string, options: { allowedRegions?: string[] } = {}): Promise<unknown> => this.call('PUT', `/tenants/${enc(tenant)}`, options);
  deleteTenant = (tenant: string): Promise<void> => this.call('DELETE', `/tenants/${enc(tenant)}`);
  listNamespaces = (tenant: string): Promise<string[]> => this.call('GET', `/namespaces/${enc(tenant)}`);
  createNamespace = (namespace: string): Promise<unknown> => this.call('PUT', `/namespaces/${path2(namespace)}`);
  deleteNamespace = (namespace: string): Promise<void> => this.call('DELETE', `/namespaces/${path2(namespace)}`);
  listTopics = (namespace: string): Promise<Array<{ name: string; partitions: number }>> => this.call('GET', `/topics/${path2(namespace)}`);
  createTopic = (topic: string, partitions = 0, options: { keyed?: boolean } = {}): Promise<unknown> =>
    this.call('PUT', `/topics/${path3(topic)}`, { partitions, ...(options.keyed ? { keyed: true } : {}) });
  /** A keyed topic's table: the resolved value of every key. */
  topicTable = (topic: string): Promise<unknown> => this.call('GET', `/topics/${path3(topic)}/table`);
  deleteTopic = (topic: string, force = false): Promise<void> => this.call('DELETE', `/topics/${path3(topic)}${force ? '?force=true' : ''}`);
  topicStats = (topic: string): Promise<Record<string, unknown>> => this.call('GET', `/topics/${path3(topic)}/stats`);
  listSubscriptions = (topic: string): Promise<string[]> => this.call('GET', `/topics/${path3(topic)}/subscriptions`);
  createSubscription = (topic: string, subscription: string, position: 'earliest' | 'latest' = 'latest'): Promise<unknown> =>
    this.call('PUT', `/topics/${path3(topic)}/subscriptions/${enc(subscription)}`, { position });
  deleteSubscription = (topic: string, subscription: string, force = false): Promise<void> =>
    this.call('DELETE', `/topics/${path3(topic)}/subscriptions/${enc(subscription)}${force ? '?force=true' : ''}`);
  health = (): Promise<{ status: string; region: string }> => this.call('GET', '/health');
  /** Runtime placement (topology deployments): tenants, namespaces, and the records laid over the topology. */
  placement = (): Promise<PlacementView> => this.call('GET', '/placement');
  setTenantPlacement = (tenant: string, change: { allowedRegions?: string[]; homeRegion?: string }): Promise<TenantPlacementView> =>
    this.call('POST', `/tenants/${enc(tenant)}/placement`, change);
  setNamespacePlacement = (namespace: string, replicationSet: string[]): Promise<unknown> => this.call('POST', `/namespaces/${path2(namespace)}/placement`, { replicationSet });
  fenceTenant = (tenant: string): Promise<{ tenant: string; region: string; fencedAtHlc: string }> => this.call('POST', `/tenants/${enc(tenant)}/fence`);
  unfenceTenant = (tenant: string): Promise<TenantPlacementView> => this.call('DELETE', `/tenants/${enc(tenant)}/fence`);
  replicationStatus = (): Promise<ReplicationStatusView> => this.call('GET', '/replication/status');
}

function enc(part: string): string {
  return encodeURIComponent(part);
}

function path2(namespace: string): string {
  const parts = namespace.split('/');
  if (parts.length !== 2) throw new AdmqClientError(ErrorCode.BadName, `namespace "${namespace}" must have the form tenant/namespace`);
  return parts.map(enc).join('/');
}

/** Accepts persistent://t/n/x or t/n/x. */
function path3(topic: string): string {
  const rest = topic.replace(/^persistent:\/\//, '');
  const parts = rest.split('/');
  if (parts.length !== 3) throw new AdmqClientError(ErrorCode.TopicName, `topic "${topic}" must have the form [persistent://]tenant/namespace/topic`);
  return parts.map(enc).join('/');
}

export interface TenantPlacementView {
  name: string;
  allowedRegions: string[];
  homeRegion: string;
  fencedIn?: string;
}

export interface PlacementView {
  region: string;
  tenants: TenantPlacementView[];
  namespaces: Array<{ name: string; tenant: string; replicationSet: string[] }>;
  records: Array<{ key: string; originRegion: string; hlc: string }>;
}

export interface ReplicationStatusView {
  region: string;
  links: Array<{ topic: string; to: string; state: string; backlogEntries: number; replicationDelayMs: number } & Record<string, unknown>>;
  receiver: Record<string, unknown>;
  /** Per topic, per origin region: the HLC (decimal) up to which that origin's writes are durable here. */
  watermarks: Record<string, Record<string, string>>;
}
