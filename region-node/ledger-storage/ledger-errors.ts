// Typed errors of the ledger client (ledger-client.ts, ledger-recovery.ts,
// re-replication.ts). Callers match on `code`, never on the message.
import type { StorageNodeErrorCode } from './ledger-types.ts';

export type LedgerErrorCode =
  /** Fewer live storage nodes than the quorum needs (create, ensemble change, recovery, reads). */
  | 'ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES'
  /** Another writer recovered the ledger: this writer may add nothing more. */
  | 'ADMQ_ERR_LEDGER_FENCED'
  /** The ledger (or this writer) is closed. */
  | 'ADMQ_ERR_LEDGER_CLOSED'
  /** The ledger's metadata changed under us in a way we cannot merge. */
  | 'ADMQ_ERR_METADATA_CONFLICT'
  /** Stored ledger metadata does not decode or breaks its own rules. */
  | 'ADMQ_ERR_LEDGER_METADATA'
  /** The metadata store did not answer (after retries). */
  | 'ADMQ_ERR_METADATA_UNAVAILABLE'
  | 'ADMQ_ERR_NO_SUCH_LEDGER'
  /** The entry is past the end (closed ledger) or past the last-add-confirmed (open ledger). */
  | 'ADMQ_ERR_NO_SUCH_ENTRY'
  /** No replica of the entry could be reached. */
  | 'ADMQ_ERR_STORAGE_UNAVAILABLE'
  /** Too many adds waiting for room in the in-flight window. */
  | 'ADMQ_ERR_QUEUE_FULL'
  | 'ADMQ_ERR_BAD_REQUEST'
  | 'ADMQ_ERR_CONFIG';

export class LedgerError extends Error {
  constructor(
    readonly code: LedgerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LedgerError';
  }
}

/** The stable code a storage node's (or the metadata store's) error carries, if any. */
export function errorCode(error: unknown): StorageNodeErrorCode | string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A call that did not answer within its time: treated like an unavailable node. */
export class CallTimeoutError extends Error {
  readonly code = 'ADMQ_ERR_STORAGE_UNAVAILABLE';
  constructor(what: string, timeoutMs: number) {
    super(`${what} did not answer within ${timeoutMs} ms`);
    this.name = 'CallTimeoutError';
  }
}
