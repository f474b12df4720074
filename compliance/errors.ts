// Typed errors of compliance/: every one carries a stable code (listed in compliance/README.md).

export const ComplianceErrorCode = {
  /** Bytes of the lag history that do not decode: a damaged record, or a bad admin API answer. */
  HistoryCorrupt: 'ADMQ_ERR_HISTORY_CORRUPT',
  /** A lag-history query that cannot be answered as asked (bad period, unknown namespace). */
  HistoryQuery: 'ADMQ_ERR_HISTORY_QUERY',
  /** A report that cannot be built: no region answered, a key does not match its certificate. */
  Report: 'ADMQ_ERR_REPORT',
  /** A report or signature file that is not one admq wrote (format, version, fields). */
  ReportFormat: 'ADMQ_ERR_REPORT_FORMAT',
} as const;

export type ComplianceErrorCodeValue = (typeof ComplianceErrorCode)[keyof typeof ComplianceErrorCode];

export class ComplianceError extends Error {
  readonly code: ComplianceErrorCodeValue;
  constructor(code: ComplianceErrorCodeValue, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ComplianceError';
    this.code = code;
  }
}

export class HistoryCorruptError extends ComplianceError {
  constructor(message: string) {
    super(ComplianceErrorCode.HistoryCorrupt, message);
    this.name = 'HistoryCorruptError';
  }
}
