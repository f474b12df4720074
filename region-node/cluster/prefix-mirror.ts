// A local copy of every key under a prefix of the metadata store, kept current by one watch.
// The coordinator's parts read assignments, owners and brokers from mirrors and wait on
// their change events instead of polling the store.
//
// Start-up without a gap: the watch is opened first and its events are held, then the
// prefix is listed, then the held events are applied. Each key remembers the highest
// version seen (a delete leaves a tombstone with its version), and an older version never
// overwrites a newer one, so the list and the events may overlap in any order.
import type { MetadataStore, WatchEvent } from '../metadata-store/index.ts';
import { ClusterError, ClusterErrorCode } from './errors.ts';

export interface MirrorEntry<T> {
  key: string;
  value: T;
  version: number;
  leaseId?: string;
}

type Slot<T> = { version: number; entry: MirrorEntry<T> | undefined };

/** `version`: the version of the change (of the put, or of the delete for `entry` undefined). */
export type MirrorListener<T> = (key: string, entry: MirrorEntry<T> | undefined, previous: MirrorEntry<T> | undefined, version: number) => void;

/** What waitFor needs of a mirror: change notifications, whatever the value type. */
export interface ChangeSource {
  onChange(listener: () => void): () => void;
}

export class PrefixMirror<T> implements ChangeSource {
  readonly prefix: string;
  readonly #decode: (value: Buffer, key: string) => T | undefined;
  readonly #slots = new Map<string, Slot<T>>();
  readonly #listeners = new Set<MirrorListener<T>>();
  #stopWatch: (() => Promise<void>) | undefined;
  #closed = false;

  private constructor(prefix: string, decode: (value: Buffer, key: string) => T | undefined) {
    this.prefix = prefix;
    this.#decode = decode;
  }

  /** Lists and watches `prefix`. `decode` returns undefined for a value it cannot read (treated as absent). */
  static async open<T>(store: MetadataStore, prefix: string, decode: (value: Buffer, key: string) => T | undefined): Promise<PrefixMirror<T>> {
    const mirror = new PrefixMirror<T>(prefix, decode);
    const held: WatchEvent[] = [];
    let live = false;
    const stop = await store.watch(prefix, (event) => {
      if (live) mirror.#apply(event.key, event.version, event.type === 'put' ? { value: event.value } : undefined);
      else held.push(event);
    });
    mirror.#stopWatch = stop;
    try {
      for (const kv of await store.list(prefix)) mirror.#apply(kv.key, kv.version, { value: kv.value, ...(kv.leaseId !== undefined && { leaseId: kv.leaseId }) });
    } catch (error) {
      await stop().catch(() => {});
      throw error;
    }
    for (const event of held) mirror.#apply(event.key, event.version, event.type === 'put' ? { value: event.value } : undefined);
    live = true;
    return mirror;
  }

  get(key: string): MirrorEntry<T> | undefined {
    return this.#slots.get(key)?.entry;
  }

  /** The live entries, in key order. */
  entries(): MirrorEntry<T>[] {
    const entries: MirrorEntry<T>[] = [];
    for (const slot of this.#slots.values()) if (slot.entry) entries.push(slot.entry);
    return entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Called after every change that this mirror applies. Returns a function that unsubscribes. */
  onChange(listener: MirrorListener<T>): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Resolves with `check()`'s first defined result, evaluated now and after every change of
   * any of `mirrors`; rejects with ADMQ_ERR_LOOKUP_TIMEOUT (message: `what`) after `timeoutMs`.
   */
  static waitFor<R>(mirrors: readonly ChangeSource[], check: () => R | undefined, timeoutMs: number, what: () => string): Promise<R> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<R>((resolve, reject) => {
      const unsubscribes: (() => void)[] = [];
      const finish = (): void => {
        clearTimeout(timer);
        for (const unsubscribe of unsubscribes) unsubscribe();
      };
      const timer = setTimeout(() => {
        finish();
        reject(new ClusterError(ClusterErrorCode.LookupTimeout, `timed out after ${timeoutMs} ms: ${what()}`));
      }, timeoutMs);
      const onChange = (): void => {
        let result: R | undefined;
        try {
          result = check();
        } catch (error) {
          finish();
          reject(error as Error);
          return;
        }
        if (result !== undefined) {
          finish();
          resolve(result);
        }
      };
      for (const mirror of mirrors) unsubscribes.push(mirror.onChange(onChange));
    });
  }

  /** Stops the watch. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    await this.#stopWatch?.().catch(() => {});
  }

  #apply(key: string, version: number, put: { value: Buffer; leaseId?: string } | undefined): void {
    if (this.#closed) return;
    const slot = this.#slots.get(key);
    if (slot !== undefined && slot.version >= version) return;
    let entry: MirrorEntry<T> | undefined;
    if (put !== undefined) {
      const value = this.#decode(put.value, key);
      if (value !== undefined) entry = { key, value, version, ...(put.leaseId !== undefined && { leaseId: put.leaseId }) };
      else console.warn(`[cluster] ${key}: value at version ${version} is not readable; treated as absent`);
    }
    const previous = slot?.entry;
    this.#slots.set(key, { version, entry });
    if (previous === undefined && entry === undefined) return;
    for (const listener of [...this.#listeners]) {
      try {
        listener(key, entry, previous, version);
      } catch (error) {
        console.error(`[cluster] mirror ${this.prefix}: listener failed`, error);
      }
    }
  }
}

/** Decodes a JSON object value; undefined if it is not JSON or `valid` refuses it. */
export function jsonDecoder<T>(valid: (value: unknown) => value is T): (value: Buffer) => T | undefined {
  return (value) => {
    try {
      const parsed: unknown = JSON.parse(value.toString('utf8'));
      return valid(parsed) ? parsed : undefined;
    } catch {
      return undefined;
    }
  };
}

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}
