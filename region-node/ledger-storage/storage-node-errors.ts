// Typed errors of the storage node service. Every failure a caller of a storage node sees —
// refused by the node, lost connection, deadline, malformed bytes — is a StorageNodeError
// whose `code` is a StorageNodeErrorCode; callers match on the code, never on the message.
import type { StorageNodeErrorCode } from './ledger-types.ts';

export const STORAGE_NODE_ERROR_CODES: readonly StorageNodeErrorCode[] = [
  'ADMQ_ERR_LEDGER_FENCED',
  'ADMQ_ERR_NO_SUCH_ENTRY',
  'ADMQ_ERR_NO_SUCH_LEDGER',
  'ADMQ_ERR_LEDGER_WRITER',
  'ADMQ_ERR_STORAGE',
  'ADMQ_ERR_STORAGE_UNAVAILABLE',
  'ADMQ_ERR_BAD_REQUEST',
];

const known = new Set<string>(STORAGE_NODE_ERROR_CODES);

export function isStorageNodeErrorCode(value: unknown): value is StorageNodeErrorCode {
  return typeof value === 'string' && known.has(value);
}

export class StorageNodeError extends Error {
  constructor(
    readonly code: StorageNodeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageNodeError';
  }

  /**
   * Rebuilds an error that came over the wire. A code this build does not know (a newer
   * node) becomes ADMQ_ERR_STORAGE, keeping the original code in the message.
   */
  static parse(code: string, message: string): StorageNodeError {
    if (isStorageNodeErrorCode(code)) return new StorageNodeError(code, message);
    return new StorageNodeError('ADMQ_ERR_STORAGE', `${code || 'no code'}: ${message}`);
  }

  /** Any error raised while serving a request: a typed one keeps its code, anything else is a storage failure. */
  static from(error: unknown): StorageNodeError {
    if (error instanceof StorageNodeError) return error;
    const code = (error as { code?: unknown } | null)?.code;
    const message = error instanceof Error ? error.message : String(error);
    if (isStorageNodeErrorCode(code)) return new StorageNodeError(code, message, { cause: error });
    return new StorageNodeError('ADMQ_ERR_STORAGE', message, { cause: error });
  }
}

/** An invalid setting of the server, client or directory; the message names the field. */
export class StorageNodeConfigError extends Error {
  readonly code = 'ADMQ_ERR_CONFIG' as const;
  constructor(message: string) {
    super(message);
    this.name = 'StorageNodeConfigError';
  }
}
