// The metadata store of a region (DESIGN §4): versioned keys, compare-and-set, watches and
// leases, behind one interface with two implementations — a real etcd for a regional
// cluster (etcd-store.ts) and an embedded LMDB store for a standalone node
// (lmdb-store.ts). Ledger metadata and topic ownership (issue 8) live here.
//
// Versions: every write gets a new version from a store-wide counter (etcd's revision), so
// a key's version only grows, and a compare-and-set on it detects any change since a read.
// Version 0 means "absent": a put expecting 0 creates only.

export interface VersionedValue {
  key: string;
  value: Buffer;
  /** Store-wide revision of the key's last write (> 0). */
  version: number;
  /** The lease the key is attached to, if any: it goes away with the lease. */
  leaseId?: string;
}

export type WatchEvent = { type: 'put'; key: string; value: Buffer; version: number } | { type: 'delete'; key: string; version: number };

export interface Lease {
  readonly id: string;
  readonly ttlMs: number;
  /** Called once if the lease is lost (expired, revoked elsewhere, or unreachable store past its TTL). */
  onLost(listener: (reason: string) => void): void;
  /** Ends the lease now; the keys attached to it are deleted. */
  revoke(): Promise<void>;
}

export type PutResult = { ok: true; version: number } | { ok: false; current: VersionedValue | undefined };

export interface MetadataStore {
  readonly kind: 'etcd' | 'lmdb';
  get(key: string): Promise<VersionedValue | undefined>;
  /** Keys starting with `prefix`, in key order. */
  list(prefix: string): Promise<VersionedValue[]>;
  /**
   * Writes `value`. With `expectedVersion`, only if the key's version is that now (0: the key
   * must not exist); otherwise nothing is written and the current value is returned.
   */
  put(key: string, value: Buffer, options?: { expectedVersion?: number; lease?: Lease }): Promise<PutResult>;
  /** Deletes the key (if `expectedVersion` is given, only at that version). True if it was deleted. */
  delete(key: string, options?: { expectedVersion?: number }): Promise<boolean>;
  /** Every change under `prefix` from now on, in order. Resolves once the watch is active; call the result to stop. */
  watch(prefix: string, listener: (event: WatchEvent) => void): Promise<() => Promise<void>>;
  /** A lease kept alive by this process until revoked, lost, or the store closes. */
  grantLease(ttlMs: number): Promise<Lease>;
  close(): Promise<void>;
}

export class MetadataStoreError extends Error {
  constructor(
    readonly code: 'ADMQ_ERR_METADATA_UNAVAILABLE' | 'ADMQ_ERR_METADATA_CLOSED' | 'ADMQ_ERR_METADATA_LEASE',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MetadataStoreError';
  }
}
