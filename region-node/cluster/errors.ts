// Typed errors of the regional cluster layer (ownership, lookup, load manager). Callers match
// on `code`; the codes are listed in README.md. Metadata store failures keep their own
// MetadataStoreError (ADMQ_ERR_METADATA_*) and pass through unchanged.

export const ClusterErrorCode = {
  /** This broker does not own the topic's bundle (or can no longer prove that it does). */
  NotOwner: 'ADMQ_ERR_NOT_OWNER',
  /** No owner was found for a topic's bundle within the lookup's bounded wait. */
  LookupTimeout: 'ADMQ_ERR_LOOKUP_TIMEOUT',
  /** A setting passed to the cluster layer is invalid; the message names it. */
  Config: 'ADMQ_ERR_CLUSTER_CONFIG',
  /** The coordinator (or one of its parts) was closed. */
  Closed: 'ADMQ_ERR_CLUSTER_CLOSED',
  /** The broker's lease (its session with the metadata store) ended. */
  SessionLost: 'ADMQ_ERR_SESSION_LOST',
} as const;

export type ClusterErrorCodeValue = (typeof ClusterErrorCode)[keyof typeof ClusterErrorCode];

export class ClusterError extends Error {
  constructor(
    readonly code: ClusterErrorCodeValue,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ClusterError';
  }
}

/** Throws ADMQ_ERR_CLUSTER_CONFIG naming `field` unless `value` is a positive finite number. */
export function requirePositive(field: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ClusterError(ClusterErrorCode.Config, `${field} must be a finite number > 0, got ${String(value)}`);
  }
  return value;
}
