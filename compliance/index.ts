// Public surface of compliance/: the lag history a region node keeps (store, sampler, the
// admin API's wire format), and replication-lag compliance reports (model, rendering,
// signing). `admq report` is compliance/cli.ts.
export { ComplianceError, ComplianceErrorCode, HistoryCorruptError } from './errors.ts';
export { LagSketch, SKETCH_RELATIVE_ACCURACY } from './sketch.ts';
export { LinkStateValue, SCHEMAS, decodeChunk, encodeChunk, mergeCells, seriesKeyText } from './series.ts';
export type { Cell, Chunk, Sample, SeriesKey, SeriesKind } from './series.ts';
export { LagHistoryStore } from './history-store.ts';
export type { EncodedChunk, HistoryInfo, HistoryPage, HistoryQuery, LagHistoryStoreOptions, MaintenanceResult } from './history-store.ts';
export { HISTORY_PAGE_BYTES_MAX, parseHistoryPage, queryHistory } from './history-wire.ts';
export type { HistoryPageWire, WireChunk } from './history-wire.ts';
export { buildSamples, startLagHistorySampler } from './sampler.ts';
export type { Counters, NamespaceObservation, Observation, SamplerHandle, SamplerOptions } from './sampler.ts';
export { REPORT_FORMAT, REPORT_VERSION, buildLagReport, classifyGaps, decodeRegionHistory, findBreaches, findDowntimes, missingIntervals, reportPeriod, seriesResolution } from './report.ts';
export type { Breach, Downtime, Finding, Gap, GapCause, LagReport, NamespaceReport, PairReport, RegionHistory, RegionResidency, ReportInput, SeriesPoint, SourceStatus } from './report.ts';
export { findDrills, summarizeDrill } from './drills.ts';
export type { DrillSummary } from './drills.ts';
export { renderCsv } from './render-csv.ts';
export { renderHtml } from './render-html.ts';
export { DETACHED_FORMAT, SIGNATURE_ALGORITHM, canonicalJson, loadSigner, signDetached, signReport, sm3Hex, verifyDetached, verifySignedReport } from './signing.ts';
export type { DetachedSignature, SignatureBlock, SignedReport, Signer, Verification } from './signing.ts';
