// The embedded metadata store of a standalone node: an LMDB environment of its own
// (`<dir>/metadata`), one writer (this process). Compare-and-set runs inside a synchronous
// write transaction, so it is atomic; each write takes the next store-wide revision.
//
// Leases live as long as this process keeps them: a lease can only be lost by revoking it
// or by the process going away. Keys attached to a lease therefore do not survive a
// restart: opening the store deletes them, as etcd would once their lease expired.
import { open, type Database, type RootDatabase } from 'lmdb';
import { MetadataStoreError, type Lease, type MetadataStore, type PutResult, type VersionedValue, type WatchEvent } from './store.ts';

interface StoredRecord {
  value: Buffer;
  version: number;
  leaseId?: string;
}

const REVISION_KEY = 'revision';

class LocalLease implements Lease {
  readonly #lost = new Set<(reason: string) => void>();
  constructor(
    readonly id: string,
    readonly ttlMs: number,
    private readonly end: (lease: LocalLease) => Promise<void>,
  ) {}
  onLost(listener: (reason: string) => void): void {
    this.#lost.add(listener);
  }
  revoke(): Promise<void> {
    return this.end(this);
  }
}

export class LmdbMetadataStore implements MetadataStore {
  readonly kind = 'lmdb' as const;
  readonly #root: RootDatabase;
  readonly #kv: Database<StoredRecord, string>;
  readonly #counters: Database<number, string>;
  readonly #watchers = new Set<{ prefix: string; listener: (event: WatchEvent) => void }>();
  readonly #leases = new Map<string, LocalLease>();
  #nextLease = 1;
  #closed = false;

  private constructor(dir: string) {
    this.#root = open({ path: dir, name: undefined, maxDbs: 4 });
    this.#kv = this.#root.openDB<StoredRecord, string>({ name: 'kv' });
    this.#counters = this.#root.openDB<number, string>({ name: 'counters' });
  }

  /** Opens (or creates) the store in `dir`, dropping keys whose leases died with the last process. */
  static open(dir: string): LmdbMetadataStore {
    const store = new LmdbMetadataStore(dir);
    store.#root.transactionSync(() => {
      for (const { key, value } of store.#kv.getRange({})) if (value.leaseId !== undefined) store.#kv.removeSync(key);
    });
    return store;
  }

  #assertOpen(): void {
    if (this.#closed) throw new MetadataStoreError('ADMQ_ERR_METADATA_CLOSED', 'the metadata store is closed');
  }

  #nextRevision(): number {
    const next = (this.#counters.get(REVISION_KEY) ?? 0) + 1;
    this.#counters.putSync(REVISION_KEY, next);
    return next;
  }

  #emit(event: WatchEvent): void {
    for (const w of this.#watchers) if (event.key.startsWith(w.prefix)) w.listener(event);
  }

  async get(key: string): Promise<VersionedValue | undefined> {
    this.#assertOpen();
    const record = this.#kv.get(key);
    return record && toVersioned(key, record);
  }

  async list(prefix: string): Promise<VersionedValue[]> {
    this.#assertOpen();
    const out: VersionedValue[] = [];
    for (const { key, value } of this.#kv.getRange({ start: prefix })) {
      if (!key.startsWith(prefix)) break;
      out.push(toVersioned(key, value));
    }
    return out;
  }

  async put(key: string, value: Buffer, options: { expectedVersion?: number; lease?: Lease } = {}): Promise<PutResult> {
    this.#assertOpen();
    if (options.lease && !this.#leases.has(options.lease.id)) throw new MetadataStoreError('ADMQ_ERR_METADATA_LEASE', `lease ${options.lease.id} is not held`);
    let result: PutResult = { ok: false, current: undefined };
    this.#root.transactionSync(() => {
      const current = this.#kv.get(key);
      if (options.expectedVersion !== undefined && (current?.version ?? 0) !== options.expectedVersion) {
        result = { ok: false, current: current && toVersioned(key, current) };
        return;
      }
      const version = this.#nextRevision();
      this.#kv.putSync(key, { value: Buffer.from(value), version, ...(options.lease && { leaseId: options.lease.id }) });
      result = { ok: true, version };
    });
    const written = result as PutResult;
    if (written.ok) this.#emit({ type: 'put', key, value: Buffer.from(value), version: written.version });
    return written;
  }

  async delete(key: string, options: { expectedVersion?: number } = {}): Promise<boolean> {
    this.#assertOpen();
    let deleted: number | undefined;
    this.#root.transactionSync(() => {
      const current = this.#kv.get(key);
      if (!current) return;
      if (options.expectedVersion !== undefined && current.version !== options.expectedVersion) return;
      this.#kv.removeSync(key);
      deleted = this.#nextRevision();
    });
    if (deleted !== undefined) this.#emit({ type: 'delete', key, version: deleted });
    return deleted !== undefined;
  }

  async watch(prefix: string, listener: (event: WatchEvent) => void): Promise<() => Promise<void>> {
    this.#assertOpen();
    const entry = { prefix, listener };
    this.#watchers.add(entry);
    return async () => {
      this.#watchers.delete(entry);
    };
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    this.#assertOpen();
    const lease = new LocalLease(`lmdb-${process.pid}-${this.#nextLease++}`, ttlMs, (l) => this.#endLease(l));
    this.#leases.set(lease.id, lease);
    return lease;
  }

  async #endLease(lease: LocalLease): Promise<void> {
    if (!this.#leases.delete(lease.id) || this.#closed) return;
    const removed: Array<{ key: string; version: number }> = [];
    this.#root.transactionSync(() => {
      for (const { key, value } of this.#kv.getRange({})) {
        if (value.leaseId !== lease.id) continue;
        this.#kv.removeSync(key);
        removed.push({ key, version: this.#nextRevision() });
      }
    });
    for (const r of removed) this.#emit({ type: 'delete', key: r.key, version: r.version });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watchers.clear();
    this.#leases.clear();
    await this.#root.close();
  }
}

function toVersioned(key: string, record: StoredRecord): VersionedValue {
  return { key, value: Buffer.from(record.value), version: record.version, ...(record.leaseId !== undefined && { leaseId: record.leaseId }) };
}
