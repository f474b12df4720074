// What the ledger client needs of the storage nodes of its region: which are live, and a
// connection to one. In process (tests, standalone) the connections wrap BookieStores; in a
// regional cluster they are gRPC clients found through the storage node registry. The
// ledger client depends on nothing else, so either plugs in.
import { CallTimeoutError } from './ledger-errors.ts';
import type { StorageNodeConnection } from './ledger-types.ts';

export interface StorageNodePool {
  /** Ids of the storage nodes believed live now (registered, and not known to be down). */
  available(): string[];
  /**
   * A connection to the node (the pool may cache it; the ledger client never closes it).
   * Calls to a node that is down reject with ADMQ_ERR_STORAGE_UNAVAILABLE.
   */
  connect(nodeId: string): StorageNodeConnection;
}

/** Timers, injected so that tests (and simulations) can drive time. */
export interface Timers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (callback, delayMs) => {
    const handle = setTimeout(callback, delayMs);
    // A pending call timeout must never keep the process alive on its own.
    handle.unref();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** `promise`, or a rejection with a CallTimeoutError (code ADMQ_ERR_STORAGE_UNAVAILABLE) after `timeoutMs`. */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string, timers: Timers): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const handle = timers.setTimeout(() => reject(new CallTimeoutError(what, timeoutMs)), timeoutMs);
    promise.then(
      (value) => {
        timers.clearTimeout(handle);
        resolve(value);
      },
      (error: unknown) => {
        timers.clearTimeout(handle);
        reject(error);
      },
    );
  });
}

/** Fisher–Yates on a copy, with an injected source of randomness. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
