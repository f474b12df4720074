// Typed errors of the replicator; the codes travel in the replication protocol's Error.

export class ReplicationError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReplicationError';
    this.code = code;
  }
}

export const ReplicationErrorCode = {
  Residency: 'ADMQ_ERR_RESIDENCY',
  Unauthorized: 'ADMQ_ERR_UNAUTHORIZED',
  ClockSkew: 'ADMQ_ERR_CLOCK_SKEW',
  BadRequest: 'ADMQ_ERR_BAD_REQUEST',
  Connection: 'ADMQ_ERR_CONNECTION',
  /** The receiving node does not serve the topic (a regional cluster); the refusal names the node that does. */
  TopicMoved: 'ADMQ_ERR_TOPIC_MOVED',
} as const;
