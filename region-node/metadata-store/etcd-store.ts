// The metadata store of a regional cluster: a real etcd (Debian's etcd-server) through the
// `etcd3` client. Versions are etcd's mod revisions; compare-and-set is an etcd transaction
// on the key's mod revision (create revision 0 for "must not exist"); leases are etcd
// leases kept alive by the client, whose keys etcd deletes when they expire.
import { Etcd3, type Lease as EtcdLease } from 'etcd3';
import { MetadataStoreError, type Lease, type MetadataStore, type PutResult, type VersionedValue, type WatchEvent } from './store.ts';

interface RawKv {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  lease: string;
}

function toVersioned(kv: RawKv): VersionedValue {
  return { key: kv.key.toString(), value: Buffer.from(kv.value), version: Number(kv.mod_revision), ...(kv.lease !== '0' && kv.lease !== '' && { leaseId: kv.lease }) };
}

function unavailable(error: unknown, what: string): MetadataStoreError {
  return new MetadataStoreError('ADMQ_ERR_METADATA_UNAVAILABLE', `etcd ${what} failed: ${(error as Error).message}`, { cause: error });
}

class EtcdHeldLease implements Lease {
  constructor(
    readonly id: string,
    readonly ttlMs: number,
    readonly lease: EtcdLease,
  ) {}
  onLost(listener: (reason: string) => void): void {
    this.lease.on('lost', (error) => listener(error.message));
  }
  revoke(): Promise<void> {
    return this.lease.revoke();
  }
}

export class EtcdMetadataStore implements MetadataStore {
  readonly kind = 'etcd' as const;
  readonly #client: Etcd3;
  readonly #leases = new Set<EtcdLease>();
  readonly #watchers = new Set<{ cancel(): Promise<void> }>();

  constructor(endpoints: string[], options: { dialTimeoutMs?: number } = {}) {
    this.#client = new Etcd3({ hosts: endpoints, dialTimeout: options.dialTimeoutMs ?? 5000 });
  }

  async get(key: string): Promise<VersionedValue | undefined> {
    try {
      const response = await this.#client.get(key).exec();
      const kv = response.kvs[0] as RawKv | undefined;
      return kv && toVersioned(kv);
    } catch (error) {
      throw unavailable(error, `get ${key}`);
    }
  }

  async list(prefix: string): Promise<VersionedValue[]> {
    try {
      const response = await this.#client.getAll().prefix(prefix).sort('Key', 'Ascend').exec();
      return (response.kvs as RawKv[]).map(toVersioned);
    } catch (error) {
      throw unavailable(error, `list ${prefix}`);
    }
  }

  async put(key: string, value: Buffer, options: { expectedVersion?: number; lease?: Lease } = {}): Promise<PutResult> {
    const write = this.#client.put(key).value(value);
    if (options.lease) write.lease(options.lease.id);
    try {
      if (options.expectedVersion === undefined) {
        const response = await write.exec();
        return { ok: true, version: Number(response.header.revision) };
      }
      const guard =
        options.expectedVersion === 0 ? this.#client.if(key, 'Create', '==', 0) : this.#client.if(key, 'Mod', '==', options.expectedVersion);
      const response = await guard.then(write).else(this.#client.get(key)).commit();
      if (response.succeeded) return { ok: true, version: Number(response.header.revision) };
      const kv = response.responses[0]?.response_range?.kvs[0] as RawKv | undefined;
      return { ok: false, current: kv && toVersioned(kv) };
    } catch (error) {
      throw unavailable(error, `put ${key}`);
    }
  }

  async delete(key: string, options: { expectedVersion?: number } = {}): Promise<boolean> {
    try {
      if (options.expectedVersion === undefined) return Number((await this.#client.delete().key(key).exec()).deleted) > 0;
      const response = await this.#client.if(key, 'Mod', '==', options.expectedVersion).then(this.#client.delete().key(key)).commit();
      return response.succeeded && Number(response.responses[0]?.response_delete_range?.deleted ?? 0) > 0;
    } catch (error) {
      throw unavailable(error, `delete ${key}`);
    }
  }

  async watch(prefix: string, listener: (event: WatchEvent) => void): Promise<() => Promise<void>> {
    try {
      const watcher = await this.#client.watch().prefix(prefix).create();
      watcher.on('put', (kv) => listener({ type: 'put', key: kv.key.toString(), value: Buffer.from(kv.value), version: Number(kv.mod_revision) }));
      watcher.on('delete', (kv) => listener({ type: 'delete', key: kv.key.toString(), version: Number(kv.mod_revision) }));
      this.#watchers.add(watcher);
      return async () => {
        this.#watchers.delete(watcher);
        await watcher.cancel();
      };
    } catch (error) {
      throw unavailable(error, `watch ${prefix}`);
    }
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    const lease = this.#client.lease(Math.max(1, Math.ceil(ttlMs / 1000)));
    try {
      const id = await lease.grant();
      this.#leases.add(lease);
      return new EtcdHeldLease(id, ttlMs, lease);
    } catch (error) {
      throw unavailable(error, 'lease grant');
    }
  }

  /** Stops keeping this process's leases alive (etcd expires them after their TTL) and disconnects. */
  async close(): Promise<void> {
    for (const watcher of this.#watchers) await watcher.cancel().catch(() => {});
    this.#watchers.clear();
    for (const lease of this.#leases) lease.release();
    this.#leases.clear();
    this.#client.close();
  }
}
