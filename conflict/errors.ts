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
