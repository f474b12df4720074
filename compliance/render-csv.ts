// The report as CSV: one table in long form, one row per figure, so that a spreadsheet or
// a script can filter it by `section` without knowing the report's nesting. Times are
// ms since the epoch and ISO 8601 (UTC).
import type { LagReport } from './report.ts';

const HEADER = ['section', 'namespace', 'from', 'to', 'start_ms', 'start_iso', 'end_ms', 'end_iso', 'metric', 'value', 'unit', 'note'] as const;

type Row = Partial<Record<(typeof HEADER)[number], string | number | null | undefined>>;

/** RFC 4180 quoting; text that a spreadsheet would run as a formula is prefixed with '. */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text) && !/^-?\d+(\.\d+)?$/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function iso(ms: number | null | undefined): string | undefined {
  return ms === null || ms === undefined ? undefined : new Date(ms).toISOString();
}

export function renderCsv(report: LagReport): string {
  const rows: Row[] = [];
  const add = (row: Row): void => {
    rows.push(row);
  };
  add({ section: 'report', metric: 'id', value: report.id });
  add({ section: 'report', metric: 'generated_by', value: report.generatedBy, start_ms: report.generatedAtMs, start_iso: iso(report.generatedAtMs) });
  add({ section: 'report', metric: 'period', start_ms: report.period.fromMs, start_iso: iso(report.period.fromMs), end_ms: report.period.toMs, end_iso: iso(report.period.toMs) });
  add({ section: 'report', metric: 'sample_interval', value: report.settings.sampleIntervalMs, unit: 'ms' });
  add({ section: 'report', metric: 'downsampled_resolution', value: report.settings.downsampledResolutionMs, unit: 'ms' });
  add({ section: 'report', metric: 'percentile_method', note: report.settings.percentileMethod });
  for (const f of report.findings) add({ section: 'finding', metric: f.severity, note: f.text });
  for (const ns of report.namespaces) {
    const n = ns.namespace;
    add({ section: 'namespace', namespace: n, metric: 'rpo_target', value: ns.rpoTargetMs, unit: 'ms' });
    add({ section: 'namespace', namespace: n, metric: 'replication_set', note: ns.replicationSet.join(' ') });
    add({ section: 'namespace', namespace: n, metric: 'allowed_regions', note: ns.allowedRegions.join(' ') });
    add({ section: 'namespace', namespace: n, metric: 'duplicates', value: ns.dedupe.duplicates, unit: 'entries' });
    add({ section: 'namespace', namespace: n, metric: 'conflicts', value: ns.conflicts.total, unit: 'conflicts' });
    add({ section: 'namespace', namespace: n, metric: 'clock_ahead_max', value: ns.clockSkew.aheadMs, unit: 'ms', from: ns.clockSkew.ahead, to: ns.clockSkew.behind, note: 'lower bound from watermarks: from-region clock ahead of to-region' });
    add({ section: 'namespace', namespace: n, metric: 'clock_skew_refusals', value: ns.clockSkew.refusals, unit: 'batches', note: `largest refused skew ${ns.clockSkew.largestRefusedMs} ms` });
    for (const p of ns.pairs) {
      const base = { namespace: n, from: p.from, to: p.to };
      const pair = (metric: string, value: number | null | undefined, unit: string, note?: string): void => add({ section: 'pair', ...base, metric, value, unit, note });
      pair('direct_link', p.direct ? 1 : 0, 'bool');
      pair('coverage', p.coverage.ratio, 'ratio', `${p.coverage.observedMs} ms sampled of ${p.coverage.periodMs} ms`);
      pair('lag_p50', p.lag?.p50Ms, 'ms');
      pair('lag_p99', p.lag?.p99Ms, 'ms');
      pair('lag_max', p.lag?.maxMs, 'ms', p.lag ? `at ${iso(p.lag.maxAtMs)}` : undefined);
      pair('lag_samples', p.lag?.samples ?? 0, 'samples');
      pair('time_above_target', p.timeAboveTargetMs, 'ms');
      pair('breaches', p.breaches.length, 'count');
      pair('uptime', p.uptime.ratio, 'ratio', `${p.uptime.connectedMs} ms connected of ${p.uptime.withLinksMs} ms with links`);
      pair('backlog_entries_max', p.backlog.entriesMax, 'entries');
      pair('backlog_bytes_max', p.backlog.bytesMax, 'bytes');
      pair('duplicates', p.counters.duplicates, 'entries');
      pair('residency_withheld', p.counters.residencyWithheld, 'entries');
      pair('clock_skew_refusals', p.counters.clockSkewRefusals, 'batches');
      pair('entries_shipped', p.counters.entriesShipped, 'entries');
      pair('reconnects', p.counters.reconnects, 'count');
      pair('clock_ahead', p.clockAheadMs, 'ms', 'lower bound: watermark of from minus the clock of to');
      pair('watermark_first', null, 'hlc', p.watermark.first ?? undefined);
      pair('watermark_last', null, 'hlc', p.watermark.last ?? undefined);
      for (const b of p.breaches) {
        add({ section: 'breach', ...base, start_ms: b.startMs, start_iso: iso(b.startMs), end_ms: b.endMs, end_iso: iso(b.endMs), metric: 'peak', value: b.peakMs, unit: 'ms', note: `above target ${b.aboveTargetMs} ms; peak at ${iso(b.peakAtMs)}; resolution ${b.resolutionMs} ms${b.gapBefore ? '; gap before' : ''}${b.gapAfter ? '; gap after' : ''}` });
      }
      for (const d of p.uptime.downtimes) add({ section: 'downtime', ...base, start_ms: d.startMs, start_iso: iso(d.startMs), end_ms: d.endMs, end_iso: iso(d.endMs), metric: 'down', value: d.downMs, unit: 'ms', note: `resolution ${d.resolutionMs} ms` });
      for (const g of p.gaps) add({ section: 'gap', ...base, start_ms: g.startMs, start_iso: iso(g.startMs), end_ms: g.endMs, end_iso: iso(g.endMs), metric: g.cause, value: g.missingMs, unit: 'ms' });
      for (const pt of p.series) {
        add({ section: 'series', ...base, start_ms: pt.t, start_iso: iso(pt.t), end_ms: pt.t + report.settings.seriesResolutionMs, end_iso: iso(pt.t + report.settings.seriesResolutionMs), metric: 'lag_max', value: pt.lagMaxMs, unit: 'ms', note: `coverage ${pt.coverage}` });
        if (pt.watermarkHlc !== null) add({ section: 'watermark', ...base, start_ms: pt.t, start_iso: iso(pt.t), metric: 'watermark_hlc', value: pt.watermarkHlc, unit: 'hlc', note: `age ${pt.watermarkAgeMs} ms` });
      }
    }
    for (const r of ns.residency.regions) {
      add({
        section: 'residency',
        namespace: n,
        from: r.region,
        metric: 'held_in_period',
        value: r.heldInPeriod,
        note: `allowed ${r.allowed}; in replication set ${r.inReplicationSet}; topics now ${r.topicsNow ?? 'unknown'}; history coverage ${r.historyCoverage}; writes refused ${r.writesRefused}; replication refused (all namespaces) ${r.helloRefusalsAllNamespaces}`,
      });
    }
    for (const v of ns.residency.violations) add({ section: 'residency', namespace: n, metric: 'violation', note: v });
    add({ section: 'residency', namespace: n, metric: 'statement', note: ns.residency.statement });
  }
  for (const d of report.drills) {
    add({ section: 'drill', namespace: d.namespace, start_ms: d.startedAtMs, start_iso: iso(d.startedAtMs), end_ms: d.finishedAtMs, end_iso: iso(d.finishedAtMs), metric: d.scenario, value: d.failed ? 'failed' : 'passed', note: `${d.title}; RPO ${d.rpoEntries ?? 'n/a'} entries; RTO produce ${d.rtoProduceMs ?? 'n/a'} ms; file ${d.file} SM3 ${d.sm3}` });
  }
  for (const s of report.sources) add({ section: 'source', from: s.region, metric: s.answered ? 'answered' : 'no-answer', note: s.error });
  return `${[HEADER.join(','), ...rows.map((r) => HEADER.map((h) => csvField(r[h])).join(','))].join('\r\n')}\r\n`;
}
