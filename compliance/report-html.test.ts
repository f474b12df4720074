// The HTML report in a real headless Chromium (Debian's chromium, driven by playwright-core):
// it opens from a file with every network request refused, runs under its own CSP, and
// its charts are drawn from its data — every line segment, band and target line is mapped
// back through the chart's scales and compared with the report JSON.
import test from 'ava';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createCa, issueDoubleCertificate } from '../tls/index.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';
import { renderHtml } from './render-html.ts';
import { buildLagReport, type LagReport, type RegionHistory } from './report.ts';
import { LinkStateValue, rawCell, seriesKeyText, type Cell, type SeriesKey } from './series.ts';
import { loadSigner, signReport } from './signing.ts';

const CHROMIUM = process.env.ADMQ_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

const T0 = 1_800_000_000_000;
const NS = 'bank/pay';

/** Ten minutes, two pairs: a ramp that breaches the target, a gap (node down), a delay step, link down time. */
function sampleReport(): LagReport {
  const out = (from: string, to: string): SeriesKey => ({ kind: 'out', namespace: NS, from, to });
  const lagAt = (i: number): number | undefined => (i >= 420 && i < 470 ? undefined : i >= 100 && i < 160 ? (i - 100) * 150 : i >= 250 && i < 330 ? 1200 : 40 + (i % 7) * 3);
  const cells = (lag: (i: number) => number | undefined, state: (i: number) => number): Cell[] =>
    Array.from({ length: 600 }, (_, i) => {
      const l = lag(i);
      return l === undefined ? undefined : rawCell(T0 + i * 1000, 1000, { lagMs: l, backlogEntries: 0, backlogBytes: 0, links: 1, linkState: state(i), duplicates: 0, residencyWithheld: 0, clockSkewRefusals: 0, entriesShipped: 10, reconnects: 0 });
    }).filter((c): c is Cell => c !== undefined);
  const node = (region: string, down: (i: number) => boolean): [string, Cell[]] => [
    seriesKeyText({ kind: 'node', namespace: '', from: region, to: '' }),
    Array.from({ length: 600 }, (_, i) => (down(i) ? undefined : rawCell(T0 + i * 1000, 1000, { residencyRefusals: 0, unauthorizedRefusals: 0, clockSkewRefusals: 0, maxClockSkewMs: 0, entriesAppended: 0, duplicates: 0 }))).filter((c): c is Cell => c !== undefined),
  ];
  const inbound = (from: string, to: string): [string, Cell[]] => [
    seriesKeyText({ kind: 'in', namespace: NS, from, to }),
    Array.from({ length: 600 }, (_, i) => rawCell(T0 + i * 1000, 1000, { skewMs: -30 }, { watermarkHlc: BigInt(T0 + i * 1000 - (lagAt(i) ?? 3000) - 30) << 16n })),
  ];
  const history = (region: string, series: Array<[string, Cell[]]>): RegionHistory => ({ region, nowMs: T0 + 700_000, sampleIntervalMs: 1000, downsampledResolutionMs: 60_000, firstSampleMs: T0, retainedFromMs: null, series: new Map(series) });
  const shanghai = history('shanghai', [[seriesKeyText(out('shanghai', 'beijing')), cells(lagAt, () => LinkStateValue.Up)], node('shanghai', (i) => i >= 420 && i < 470), inbound('beijing', 'shanghai')]);
  const beijing = history('beijing', [[seriesKeyText(out('beijing', 'shanghai')), cells((i) => (i >= 500 && i < 520 ? 9000 : 15), (i) => (i >= 500 && i < 520 ? LinkStateValue.Down : LinkStateValue.Up))], node('beijing', () => false), inbound('shanghai', 'beijing')]);
  return buildLagReport({
    id: 'html-test',
    generatedAtMs: T0 + 600_000,
    generatedBy: 'shanghai',
    period: { fromMs: T0, toMs: T0 + 600_000 },
    tenant: 'bank',
    namespaces: [{ namespace: NS, tenant: 'bank', replicationSet: ['shanghai', 'beijing'], allowedRegions: ['shanghai', 'beijing'], rpoTargetMs: 5000 }],
    pairs: [],
    regions: ['shanghai', 'beijing'],
    links: [['beijing', 'shanghai']],
    sampleIntervalMs: 1000,
    downsampledResolutionMs: 60_000,
    histories: new Map([[NS, new Map([['shanghai', shanghai], ['beijing', beijing]])]]),
    topicsNow: new Map([[NS, new Map([['shanghai', 1], ['beijing', 1]])]]),
    drills: [],
    sources: [{ region: 'shanghai', answered: true }, { region: 'beijing', answered: true }],
  });
}

interface ChartDom {
  x0: number;
  x1: number;
  y1: number;
  plot: number[];
  path: string;
  target: number | null;
  bands: Array<{ cls: string; x: number; width: number }>;
}

/** "M x y H x V y H x ..." as horizontal segments. */
function segments(d: string): Array<{ xa: number; xb: number; y: number }> {
  const tokens = d.trim().split(/\s+/).filter((s) => s.length > 0);
  const out: Array<{ xa: number; xb: number; y: number }> = [];
  let x = 0;
  let y = 0;
  for (let i = 0; i < tokens.length; i++) {
    const op = tokens[i];
    if (op === 'M') {
      x = Number(tokens[++i]);
      y = Number(tokens[++i]);
    } else if (op === 'H') {
      const to = Number(tokens[++i]);
      out.push({ xa: x, xb: to, y });
      x = to;
    } else if (op === 'V') y = Number(tokens[++i]);
    else throw new Error(`unexpected path command ${op}`);
  }
  return out;
}

test('report HTML: opens offline in headless Chromium, and its charts are drawn from the report data', async (t) => {
  if (!CHROMIUM) {
    t.log('SKIPPED: no Chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it) and ADMQ_CHROMIUM is not set');
    t.pass();
    return;
  }
  const { chromium } = await import('playwright-core');
  const dir = tempDir('admq-report-html-');
  t.teardown(() => removeTempDir(dir));
  const ca = createCa({ commonName: 'admq test root' });
  const cert = issueDoubleCertificate(ca, { region: 'shanghai' });
  const report = sampleReport();
  const signed = signReport(report, loadSigner('shanghai', cert.sign.certificatePem, cert.sign.keyPem), T0 + 600_000);
  const file = join(dir, 'report.html');
  writeFileSync(file, renderHtml(report, signed.signature));
  const fileUrl = pathToFileURL(file).href;

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const requests: string[] = [];
  const problems: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // No network: anything but the page itself is refused.
  await page.route('**/*', (route) => (route.request().url() === fileUrl ? route.continue() : route.abort()));
  await page.goto(fileUrl);
  await page.waitForSelector('body[data-charts]');

  t.deepEqual(requests, [fileUrl], 'the page loads nothing but itself');
  t.deepEqual(problems, [], 'no console errors (a CSP violation would be one)');
  const pairs = report.namespaces[0]?.pairs ?? [];
  t.is(pairs.length, 2);
  t.is(await page.getAttribute('body', 'data-charts'), String(2 * pairs.length));
  t.regex((await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content')) ?? '', /default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-/);

  const charts = (await page.$$eval('svg.chart', (svgs) =>
    svgs.map((svg) => ({
      cls: svg.getAttribute('class') ?? '',
      x0: Number(svg.getAttribute('data-x0')),
      x1: Number(svg.getAttribute('data-x1')),
      y1: Number(svg.getAttribute('data-y1')),
      plot: (svg.getAttribute('data-plot') ?? '').split(' ').map(Number),
      path: svg.querySelector('path.lag, path.wm-age')?.getAttribute('d') ?? '',
      target: svg.querySelector('line.target') ? Number(svg.querySelector('line.target')?.getAttribute('y1')) : null,
      bands: [...svg.querySelectorAll('rect.breach, rect.gap')].map((r) => ({ cls: r.getAttribute('class') ?? '', x: Number(r.getAttribute('x')), width: Number(r.getAttribute('width')) })),
    })),
  )) as Array<ChartDom & { cls: string }>;
  t.is(charts.length, 2 * pairs.length);
  const step = report.settings.seriesResolutionMs;
  pairs.forEach((pair, index) => {
    const lag = charts[2 * index] as ChartDom & { cls: string };
    const watermark = charts[2 * index + 1] as ChartDom & { cls: string };
    t.regex(lag.cls, /lag-chart/);
    t.regex(watermark.cls, /watermark-chart/);
    const check = (chart: ChartDom, value: (p: (typeof pair.series)[number]) => number | null, what: string): void => {
      const [left, top, width, height] = chart.plot as [number, number, number, number];
      const msPerPx = (chart.x1 - chart.x0) / width;
      const valuePerPx = chart.y1 / height;
      const drawn = segments(chart.path).map((s) => ({ t: chart.x0 + (s.xa - left) * msPerPx, span: (s.xb - s.xa) * msPerPx, v: ((top + height - s.y) / height) * chart.y1 }));
      const expected = pair.series.filter((p) => value(p) !== null);
      t.is(drawn.length, expected.length, `${what} ${pair.from}->${pair.to}: one segment per point with a value`);
      expected.forEach((p, i) => {
        const d = drawn[i];
        const v = Math.min(value(p) as number, chart.y1);
        t.true(d !== undefined && Math.abs(d.t - p.t) <= msPerPx && Math.abs(d.span - step) <= 2 * msPerPx && Math.abs(d.v - v) <= valuePerPx, `${what} ${pair.from}->${pair.to} point ${new Date(p.t).toISOString()}: drawn ${JSON.stringify(d)}, data ${v}`);
      });
      return;
    };
    check(lag, (p) => p.lagMaxMs, 'lag');
    check(watermark, (p) => (p.watermarkAgeMs === null ? null : Math.max(0, p.watermarkAgeMs)), 'watermark age');
    // The RPO target line, the breach bands and the gap bands sit where the report says.
    const [left, top, width, height] = lag.plot as [number, number, number, number];
    const msPerPx = (lag.x1 - lag.x0) / width;
    t.true(Math.abs((lag.target as number) - (top + height - (5000 / lag.y1) * height)) <= 0.5, 'target line at 5 s');
    const bands = (cls: string): Array<[number, number]> => lag.bands.filter((b) => b.cls.split(' ').includes(cls)).map((b) => [lag.x0 + (b.x - left) * msPerPx, lag.x0 + (b.x + b.width - left) * msPerPx]);
    const close = (got: Array<[number, number]>, want: Array<[number, number]>, what: string): void => {
      t.is(got.length, want.length, `${what} ${pair.from}->${pair.to}`);
      want.forEach(([s, e], i) => t.true(Math.abs((got[i]?.[0] ?? 0) - s) <= msPerPx && Math.abs((got[i]?.[1] ?? 0) - e) <= msPerPx, `${what} ${i}: drawn ${JSON.stringify(got[i])}, data ${s}..${e}`));
    };
    close(bands('breach'), pair.breaches.map((b) => [b.startMs, b.endMs]), 'breach bands');
    close(bands('gap'), pair.gaps.map((g) => [g.startMs, g.endMs]), 'gap bands');
  });
  // The figures are in the page's tables too (readable without the script).
  const tableText = await page.textContent('table.pairs');
  t.regex(tableText ?? '', /shanghai → beijing/);
  t.is(pairs[0]?.breaches.length, 1);
  t.is(pairs[0]?.gaps.length, 1);
  t.is(pairs[1]?.uptime.downtimes.length, 1);
  // ADMQ_REPORT_SCREENSHOT=FILE keeps a picture of the page, to look at.
  const shot = process.env.ADMQ_REPORT_SCREENSHOT;
  if (shot) {
    await page.screenshot({ path: shot, fullPage: true });
    t.log(`screenshot: ${shot}`);
  }
});
