// Typed errors of topology/: every validation error names the field and the reason.

export class TopologyError extends Error {
  readonly code = 'ADMQ_ERR_TOPOLOGY';
  readonly field: string;
  constructor(field: string, reason: string) {
    super(`topology: ${field}: ${reason}`);
    this.name = 'TopologyError';
    this.field = field;
  }
}
