// Bundle ownership: a broker owns a bundle while the key `MetadataKeys.bundleOwner(bundle)`,
// which it created (create-only compare-and-set), lives on its session's lease. Whoever
// created the key is the owner; nobody else can create it until it is deleted, which
// happens when the owner releases it or when the owner's lease expires in the store.
//
// No split brain: `owns()` is true only while the session is valid, i.e. before the local
// deadline of lease-session.ts, which passes strictly before the store can expire the lease.
// So by the time another broker can create the key, this broker has already stopped
// answering true (and its `onLost` listeners have been told), even if it cannot reach the
// store at all. See README.md for the argument in full.
//
// Epoch: the owner key's version, i.e. the store's revision when the key was created. Every
// new ownership of a bundle is created at a later revision, so epochs of a bundle only grow;
// a writer can stamp it on what it writes (e.g. ledger metadata) to fence older owners.
import type { MetadataStore } from '../metadata-store/index.ts';
import { ClusterError, ClusterErrorCode } from './errors.ts';
import { MetadataKeys } from './keys.ts';
import type { LeaseSession } from './lease-session.ts';
import { PrefixMirror, encodeJson, jsonDecoder, type MirrorEntry } from './prefix-mirror.ts';

/** The value of an owner key. */
export interface OwnerRecord {
  brokerId: string;
  grpcAddress: string;
  /** The owner's session (lease id): tells a broker's current ownership from one of its dead sessions. */
  sessionId: string;
}

export interface Ownership {
  bundle: string;
  owner: OwnerRecord;
  /** The owner key's version (see the file comment). */
  epoch: number;
}

export type AcquireResult = { acquired: true; epoch: number } | { acquired: false; owner: Ownership | undefined };

export function isOwnerRecord(value: unknown): value is OwnerRecord {
  const v = value as Partial<OwnerRecord> | null;
  return typeof v === 'object' && v !== null && typeof v.brokerId === 'string' && typeof v.grpcAddress === 'string' && typeof v.sessionId === 'string';
}

export const decodeOwnerRecord = jsonDecoder(isOwnerRecord);

/** The bundle of an owner key, or undefined if the key is not one. */
export function bundleOfOwnerKey(key: string): string | undefined {
  return key.startsWith(MetadataKeys.bundlesPrefix) ? key.slice(MetadataKeys.bundlesPrefix.length) : undefined;
}

/** All owner keys of the region, kept current by a watch. */
export function watchOwners(store: MetadataStore): Promise<PrefixMirror<OwnerRecord>> {
  return PrefixMirror.open(store, MetadataKeys.bundlesPrefix, decodeOwnerRecord);
}

export function toOwnership(entry: MirrorEntry<OwnerRecord>): Ownership {
  return { bundle: bundleOfOwnerKey(entry.key) ?? entry.key, owner: entry.value, epoch: entry.version };
}

export type OwnershipLostListener = (bundle: string, reason: string) => void;

/** One broker's ownerships on one session. A new session needs a new OwnershipManager. */
export class OwnershipManager {
  readonly brokerId: string;
  readonly grpcAddress: string;
  readonly #store: MetadataStore;
  readonly #session: LeaseSession;
  readonly #owners: PrefixMirror<OwnerRecord>;
  /** Bundle → version of the owner key this manager created. */
  readonly #held = new Map<string, number>();
  readonly #listeners = new Set<OwnershipLostListener>();
  readonly #unsubscribe: () => void;
  #closed = false;

  /**
   * `owners` is a mirror of the owner keys (watchOwners), shared with the rest of the broker;
   * through it this manager also notices its key being deleted behind its back (an operator,
   * or a session already expired in the store).
   */
  constructor(store: MetadataStore, session: LeaseSession, identity: { brokerId: string; grpcAddress: string }, owners: PrefixMirror<OwnerRecord>) {
    this.#store = store;
    this.#session = session;
    this.brokerId = identity.brokerId;
    this.grpcAddress = identity.grpcAddress;
    this.#owners = owners;
    session.onLost((reason) => this.#loseAll(`session ended: ${reason}`));
    this.#unsubscribe = owners.onChange((key, entry, _previous, changeVersion) => {
      const bundle = bundleOfOwnerKey(key);
      if (bundle === undefined) return;
      const version = this.#held.get(bundle);
      // A change older than our key (the predecessor's delete, seen late) is not about us.
      if (version === undefined || changeVersion <= version) return;
      if (entry === undefined) this.#lose(bundle, 'owner key deleted');
      else if (entry.version !== version && entry.value.sessionId !== this.#session.id) this.#lose(bundle, `owner key replaced by ${entry.value.brokerId}`);
    });
  }

  get session(): LeaseSession {
    return this.#session;
  }

  /**
   * Creates the owner key if nobody holds it. Resolves `{ acquired: true }` if this broker
   * owns the bundle now (also if it already did), else who owns it. Rejects with the store's
   * ADMQ_ERR_METADATA_* error if the store cannot be reached.
   */
  async acquire(bundle: string): Promise<AcquireResult> {
    this.#checkUsable();
    if (this.owns(bundle)) return { acquired: true, epoch: this.#held.get(bundle) as number };
    const record: OwnerRecord = { brokerId: this.brokerId, grpcAddress: this.grpcAddress, sessionId: this.#session.id };
    const key = MetadataKeys.bundleOwner(bundle);
    const result = await this.#store.put(key, encodeJson(record), { expectedVersion: 0, lease: this.#session.lease });
    if (result.ok) {
      // The session may have ended while the put was in flight; then the key dies with
      // the lease and this broker must not count itself owner.
      if (!this.#session.isValid() || this.#closed) return { acquired: false, owner: undefined };
      this.#held.set(bundle, result.version);
      return { acquired: true, epoch: result.version };
    }
    const current = result.current && { ...result.current, value: decodeOwnerRecord(result.current.value) };
    if (current?.value !== undefined && current.value.sessionId === this.#session.id && this.#session.isValid()) {
      // Our own key from an earlier attempt whose answer was lost: adopt it.
      this.#held.set(bundle, current.version);
      return { acquired: true, epoch: current.version };
    }
    return { acquired: false, owner: current?.value === undefined ? undefined : { bundle, owner: current.value, epoch: current.version } };
  }

  /**
   * Stops owning the bundle: `owns()` is false at once, then the key is deleted (only at the
   * version this manager created, so a successor's key is never touched). The caller stops
   * serving the bundle *before* releasing it.
   */
  async release(bundle: string): Promise<void> {
    const version = this.#held.get(bundle);
    if (version === undefined) return;
    this.#held.delete(bundle);
    await this.#store.delete(MetadataKeys.bundleOwner(bundle), { expectedVersion: version });
  }

  /** True only while this broker holds the bundle's key and its session is valid (see the file comment). */
  owns(bundle: string): boolean {
    return !this.#closed && this.#held.has(bundle) && this.#session.isValid();
  }

  /** Throws ClusterError ADMQ_ERR_NOT_OWNER unless `owns(bundle)`: call it before accepting a write. */
  assertOwner(bundle: string): void {
    if (this.owns(bundle)) return;
    const reason = !this.#session.isValid() ? `its session ended (${this.#session.lostReason ?? 'deadline passed'})` : 'it does not hold the bundle';
    throw new ClusterError(ClusterErrorCode.NotOwner, `broker ${this.brokerId} does not own bundle ${bundle}: ${reason}`);
  }

  /** The epoch of a held bundle, if `owns(bundle)`. */
  epochOf(bundle: string): number | undefined {
    return this.owns(bundle) ? this.#held.get(bundle) : undefined;
  }

  ownedBundles(): string[] {
    return this.#session.isValid() && !this.#closed ? [...this.#held.keys()].sort() : [];
  }

  /** Called for every bundle this manager stops owning without `release` (session end, key deleted). */
  onLost(listener: OwnershipLostListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Forgets every ownership (without deleting keys: they go with the lease). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#loseAll('ownership manager closed');
    this.#closed = true;
    this.#unsubscribe();
  }

  #checkUsable(): void {
    if (this.#closed) throw new ClusterError(ClusterErrorCode.Closed, `ownership manager of ${this.brokerId} is closed`);
    if (!this.#session.isValid()) {
      throw new ClusterError(ClusterErrorCode.SessionLost, `broker ${this.brokerId}: session ${this.#session.id} ended (${this.#session.lostReason ?? 'deadline passed'})`);
    }
  }

  #loseAll(reason: string): void {
    for (const bundle of [...this.#held.keys()]) this.#lose(bundle, reason);
  }

  #lose(bundle: string, reason: string): void {
    if (!this.#held.delete(bundle)) return;
    for (const listener of [...this.#listeners]) {
      try {
        listener(bundle, reason);
      } catch (error) {
        console.error(`[cluster][${this.brokerId}] ownership lost listener failed`, error);
      }
    }
  }
}
