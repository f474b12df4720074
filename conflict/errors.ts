// Typed errors of the conflict module. Each carries a stable code that callers match on.

export class ConflictError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A remote timestamp is further ahead of local physical time than maxClockOffsetMs allows. */
export class ClockSkewError extends ConflictError {
  readonly skewMs: number;
  readonly maxClockOffsetMs: number;
  constructor(skewMs: number, maxClockOffsetMs: number) {
    super(
      'ADMQ_ERR_CLOCK_SKEW',
      `remote hybrid logical clock is ${skewMs} ms ahead of local physical time; ` +
        `maxClockOffsetMs is ${maxClockOffsetMs}`,
    );
    this.skewMs = skewMs;
    this.maxClockOffsetMs = maxClockOffsetMs;
  }
}

/**
 * Bad input that names the offending field: a path into the value being parsed, e.g.
 * `conflictPolicy.regions[2]` or `winner.hlc`. The subclasses below fix the code, so that
 * callers can match on `code` without knowing which parser ran.
 */
export class ConflictInputError extends ConflictError {
  readonly field: string;
  constructor(code: string, subject: string, field: string, reason: string, options?: { cause?: unknown }) {
    super(code, `${subject}: ${field}: ${reason}`, options);
    this.field = field;
  }
}

/** A sequence id or a persisted sequence set (producer dedupe) is malformed. */
export class SequenceSetError extends ConflictInputError {
  constructor(field: string, reason: string, options?: { cause?: unknown }) {
    super('ADMQ_ERR_SEQUENCE_SET', 'sequence set', field, reason, options);
  }
}

/** A version vector (or its text form from message properties) is malformed. */
export class VersionVectorError extends ConflictInputError {
  constructor(field: string, reason: string, options?: { cause?: unknown }) {
    super('ADMQ_ERR_VERSION_VECTOR', 'version vector', field, reason, options);
  }
}

/** A version of a keyed value is malformed, e.g. its version vector omits its own write. */
export class KeyedVersionError extends ConflictInputError {
  constructor(field: string, reason: string, options?: { cause?: unknown }) {
    super('ADMQ_ERR_KEYED_VERSION', 'keyed version', field, reason, options);
  }
}

/** A conflict policy spec (namespace configuration) is invalid. */
export class ConflictPolicyError extends ConflictInputError {
  constructor(field: string, reason: string, options?: { cause?: unknown }) {
    super('ADMQ_ERR_CONFLICT_POLICY', 'conflict policy', field, reason, options);
  }
}

/** A user-supplied resolver threw or returned something other than 'a' or 'b'. */
export class ConflictResolverError extends ConflictError {
  readonly resolverName: string;
  constructor(resolverName: string, reason: string, options?: { cause?: unknown }) {
    super('ADMQ_ERR_CONFLICT_RESOLVER', `custom conflict resolver ${resolverName}: ${reason}`, options);
    this.resolverName = resolverName;
  }
}

/** A conflict feed record does not decode or does not validate. */
export class ConflictRecordError extends ConflictInputError {
  constructor(field: string, reason: string, options?: { cause?: unknown }) {
    super('ADMQ_ERR_CONFLICT_RECORD', 'conflict record', field, reason, options);
  }
}
