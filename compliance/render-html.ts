// The report as one self-contained HTML page: inline CSS, the figures as tables, and charts
// drawn in the browser from the report's data embedded in the page (report-chart.ts). It
// loads nothing: the Content-Security-Policy allows only the page's own script (by hash)
// and inline styles, so it opens the same offline, from a file, years later.
import { createHash } from 'node:crypto';
import { CHART_SCRIPT } from './report-chart.ts';
import { formatDuration, type LagReport, type NamespaceReport, type PairReport } from './report.ts';
import type { SignatureBlock } from './signing.ts';

export function escapeHtml(value: unknown): string {
  return String(value).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');
}

/** JSON that is safe inside <script type="application/json">. */
function embeddedJson(value: unknown): string {
  return JSON.stringify(value).replaceAll('<', '\\u003c').replaceAll('>', '\\u003e').replaceAll('&', '\\u0026').replaceAll('\u2028', '\\u2028').replaceAll('\u2029', '\\u2029');
}

function iso(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '—' : new Date(ms).toISOString().replace('.000Z', 'Z');
}

function ms(value: number | null | undefined): string {
  return value === null || value === undefined ? '—' : formatDuration(value);
}

function pct(ratio: number | null | undefined): string {
  return ratio === null || ratio === undefined ? '—' : `${(ratio * 100).toFixed(ratio >= 0.9995 || ratio === 0 ? 0 : 2)}%`;
}

/** An HLC as "wall-clock time + counter". */
function hlcText(hlc: string | null): string {
  if (hlc === null) return '—';
  const v = BigInt(hlc);
  return `${new Date(Number(v >> 16n)).toISOString()} +${Number(v & 0xffffn)} (${hlc})`;
}

function table(head: string[], rows: string[][], cls = ''): string {
  if (rows.length === 0) return '<p class="none">none</p>';
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:24px auto;max-width:1040px;color:#1d1d1f;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:20px 0 6px}
.meta{color:#555}.meta td{padding:1px 12px 1px 0}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f6}
.fail{color:#b02a1e;font-weight:600}.warn{color:#8a5a00}.ok{color:#1e6b33}.none{color:#777;margin:4px 0}
ul.findings{padding-left:18px}ul.findings li{margin:2px 0}
.chart{display:block;margin:4px 0 10px;background:#fff}.chart .plot{fill:#fbfbfd;stroke:#ccc}.chart .grid{stroke:#eee}.chart .tick{stroke:#999}
.chart .ax{font-size:11px;fill:#555}.chart .ax.y{text-anchor:end}.chart .ax.x{text-anchor:middle}.chart .ax.x.first{text-anchor:start}.chart .ax.x.last{text-anchor:end}.chart .ax.title{font-weight:600}
.chart .lag{fill:none;stroke:#1f5fbf;stroke-width:1.6}.chart .wm-age{fill:none;stroke:#6a3fb5;stroke-width:1.6}
.chart .target{stroke:#b02a1e;stroke-dasharray:6 4}.chart .target-label{font-size:11px;fill:#b02a1e;text-anchor:end}
.chart .breach{fill:#e0413033}.chart .gap{fill:#8883}
.sig{background:#f4f4f6;padding:8px 12px;border-radius:4px;font-size:13px;word-break:break-all}
code{font-size:12px}
@media print{.chart{break-inside:avoid}}
`;

function pairSection(p: PairReport, nsIndex: number, pairIndex: number): string {
  const parts: string[] = [];
  parts.push(`<h3 id="pair-${nsIndex}-${pairIndex}">${escapeHtml(p.from)} → ${escapeHtml(p.to)}</h3>`);
  if (!p.direct) parts.push('<p class="warn">No direct link between these regions: lag is measured on links; the watermark shows how far the relayed data is.</p>');
  if (!p.sources.lag.answered) parts.push(`<p class="warn">${escapeHtml(p.sources.lag.region)} did not answer: no lag history.</p>`);
  parts.push(`<div class="holder" data-chart="lag" data-ns="${nsIndex}" data-pair="${pairIndex}"></div>`);
  parts.push(`<div class="holder" data-chart="watermark" data-ns="${nsIndex}" data-pair="${pairIndex}"></div>`);
  parts.push('<noscript><p class="warn">Charts need JavaScript; every figure is in the tables.</p></noscript>');
  parts.push(
    table(
      ['breach start', 'end', 'above target', 'peak', 'peak at', 'resolution', 'note'],
      p.breaches.map((b) => [iso(b.startMs), iso(b.endMs), ms(b.aboveTargetMs), ms(b.peakMs), iso(b.peakAtMs), ms(b.resolutionMs), escapeHtml([b.gapBefore ? 'gap before: may have started earlier' : '', b.gapAfter ? 'gap after: may have ended later' : ''].filter((x) => x).join('; '))]),
      'breaches',
    ),
  );
  if (p.uptime.downtimes.length > 0) parts.push(table(['link down from', 'to', 'down', 'resolution'], p.uptime.downtimes.map((d) => [iso(d.startMs), iso(d.endMs), ms(d.downMs), ms(d.resolutionMs)]), 'downtimes'));
  if (p.gaps.length > 0) parts.push(table(['no samples from', 'to', 'missing', 'cause'], p.gaps.map((g) => [iso(g.startMs), iso(g.endMs), ms(g.missingMs), escapeHtml(g.cause)]), 'gaps'));
  parts.push(`<p>HLC watermark of ${escapeHtml(p.from)} held by ${escapeHtml(p.to)}: first ${escapeHtml(hlcText(p.watermark.first))}, last ${escapeHtml(hlcText(p.watermark.last))} (${p.watermark.samples} samples${p.sources.watermark.answered ? '' : `; ${escapeHtml(p.to)} did not answer`}).</p>`);
  return parts.join('\n');
}

function namespaceSection(ns: NamespaceReport, index: number): string {
  const parts: string[] = [];
  parts.push(`<h2 id="ns-${index}">Namespace ${escapeHtml(ns.namespace)}</h2>`);
  parts.push(
    table(
      ['RPO target', 'replication set', 'tenant’s allowed regions', 'duplicates dropped', 'conflicts', 'clock ahead (at least)', 'clock-skew refusals'],
      [
        [
          ms(ns.rpoTargetMs),
          escapeHtml(ns.replicationSet.join(', ')),
          escapeHtml(ns.allowedRegions.join(', ')),
          String(ns.dedupe.duplicates),
          `${ns.conflicts.total}${Object.keys(ns.conflicts.byRegion).length > 0 ? ` (${escapeHtml(Object.entries(ns.conflicts.byRegion).map(([r, n]) => `${r} ${n}`).join(', '))})` : ''}`,
          ns.clockSkew.aheadMs === null ? '—' : ns.clockSkew.aheadMs <= 0 ? 'none seen' : `${ms(ns.clockSkew.aheadMs)} (${escapeHtml(ns.clockSkew.ahead ?? '')} ahead of ${escapeHtml(ns.clockSkew.behind ?? '')})`,
          `${ns.clockSkew.refusals}${ns.clockSkew.refusals > 0 ? `, largest ${ms(ns.clockSkew.largestRefusedMs)}` : ''}`,
        ],
      ],
      'facts',
    ),
  );
  parts.push(
    table(
      ['pair', 'coverage', 'p50', 'p99', 'max', 'above target', 'breaches', 'link uptime', 'backlog max', 'duplicates', 'withheld (residency)'],
      ns.pairs.map((p, i) => [
        `<a href="#pair-${index}-${i}">${escapeHtml(p.from)} → ${escapeHtml(p.to)}</a>`,
        pct(p.coverage.ratio),
        ms(p.lag?.p50Ms),
        ms(p.lag?.p99Ms),
        ms(p.lag?.maxMs),
        ms(p.timeAboveTargetMs),
        `<span class="${p.breaches.length > 0 ? 'fail' : 'ok'}">${p.breaches.length}</span>`,
        pct(p.uptime.ratio),
        `${p.backlog.entriesMax} entries`,
        String(p.counters.duplicates),
        String(p.counters.residencyWithheld),
      ]),
      'pairs',
    ),
  );
  ns.pairs.forEach((p, i) => parts.push(pairSection(p, index, i)));
  parts.push('<h3>Residency attestation</h3>');
  parts.push(`<p class="${ns.residency.violations.length > 0 ? 'fail' : 'ok'}">${escapeHtml(ns.residency.statement)}</p>`);
  parts.push(
    table(
      ['region', 'allowed', 'in replication set', 'held data in period', 'topics now', 'history coverage', 'writes refused (residency)', 'replication refused (all namespaces)'],
      ns.residency.regions.map((r) => [
        escapeHtml(r.region),
        r.allowed ? 'yes' : 'no',
        r.inReplicationSet ? 'yes' : 'no',
        `<span class="${!r.allowed && r.heldInPeriod === 'yes' ? 'fail' : ''}">${r.heldInPeriod}</span>`,
        r.topicsNow === null ? 'did not answer' : String(r.topicsNow),
        pct(r.historyCoverage),
        String(r.writesRefused),
        String(r.helloRefusalsAllNamespaces),
      ]),
      'residency',
    ),
  );
  parts.push(`<p>Refused attempts: ${ns.residency.refused.entriesWithheld} entries withheld by senders, ${ns.residency.refused.writesRefused} local writes refused, ${ns.residency.refused.helloRefusalsAllNamespaces} replication links refused by receivers (counted per node, all namespaces).</p>`);
  return parts.join('\n');
}

export function renderHtml(report: LagReport, signature?: SignatureBlock): string {
  const scriptHash = createHash('sha256').update(CHART_SCRIPT).digest('base64');
  const csp = `default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-${scriptHash}'; img-src data:; base-uri 'none'; form-action 'none'`;
  const title = `Replication-lag compliance report — ${report.scope.tenant ? `tenant ${report.scope.tenant}` : report.scope.namespaces.join(', ')}`;
  const body: string[] = [];
  body.push(`<h1>${escapeHtml(title)}</h1>`);
  body.push(
    `<table class="meta"><tr><td>period</td><td>${iso(report.period.fromMs)} — ${iso(report.period.toMs)} (${ms(report.period.toMs - report.period.fromMs)})</td></tr>` +
      `<tr><td>generated</td><td>${iso(report.generatedAtMs)} by region ${escapeHtml(report.generatedBy)}</td></tr>` +
      `<tr><td>report id</td><td><code>${escapeHtml(report.id)}</code></td></tr>` +
      `<tr><td>resolution</td><td>samples every ${ms(report.settings.sampleIntervalMs)}, downsampled to ${ms(report.settings.downsampledResolutionMs)} beyond the recent window; charts at ${ms(report.settings.seriesResolutionMs)}</td></tr>` +
      `<tr><td>percentiles</td><td>${escapeHtml(report.settings.percentileMethod)}</td></tr></table>`,
  );
  if (signature) {
    body.push(
      `<div class="sig">Signed with the SM2 certificate of region <b>${escapeHtml(signature.region)}</b> (${escapeHtml(signature.algorithm)}) at ${iso(signature.signedAtMs)}; SM3 of the signed report: <code>${escapeHtml(signature.digestSm3)}</code>. ` +
        'This page has its own detached signature (<code>.sig</code>); check both with <code>admq report verify</code>.</div>',
    );
  }
  body.push('<h2>Findings</h2>');
  body.push(`<ul class="findings">${report.findings.map((f) => `<li class="${f.severity}">${escapeHtml(f.severity)}: ${escapeHtml(f.text)}</li>`).join('')}</ul>`);
  report.namespaces.forEach((ns, i) => body.push(namespaceSection(ns, i)));
  body.push('<h2>Drills in the period</h2>');
  body.push(
    table(
      ['started', 'scenario', 'namespace', 'RPO (entries)', 'RTO produce', 'RTO consume', 'result', 'report file (SM3)'],
      report.drills.map((d) => [iso(d.startedAtMs), escapeHtml(d.title), escapeHtml(d.namespace), d.rpoEntries === null ? '—' : String(d.rpoEntries), ms(d.rtoProduceMs), ms(d.rtoConsumeMs), `<span class="${d.failed ? 'fail' : 'ok'}">${d.failed ? 'failed' : 'passed'}</span>`, `${escapeHtml(d.file)}<br><code>${escapeHtml(d.sm3)}</code>`]),
      'drills',
    ),
  );
  body.push('<h2>Sources</h2>');
  body.push(table(['region', 'answered', 'history since', 'retained from', 'note'], report.sources.map((s) => [escapeHtml(s.region), s.answered ? 'yes' : '<span class="warn">no</span>', iso(s.firstSampleMs), iso(s.retainedFromMs), escapeHtml(s.error ?? '')]), 'sources'));
  body.push(
    '<p class="meta">Lag is the age of the oldest entry a region has not yet had acknowledged by the other (never 0 while a link is down). ' +
      'A time without samples is a gap, shown grey and left out of every figure: it is never counted as zero lag.</p>',
  );
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
${body.join('\n')}
<script type="application/json" id="report-data">${embeddedJson({ report, signature: signature ? { region: signature.region, signedAtMs: signature.signedAtMs, digestSm3: signature.digestSm3 } : null })}</script>
<script>${CHART_SCRIPT}</script>
</body>
</html>
`;
}
