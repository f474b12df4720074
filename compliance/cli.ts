// `admq report`: gathers the lag history of every region of a deployment over a period
// through their admin APIs, builds the compliance report, signs it with the region's SM2
// sign certificate and writes it as JSON, CSV and HTML. `admq report verify FILE` checks a
// report's (or a rendering's detached) signature and certificate chain.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { AdminClient, AdmqClientError } from '../client/index.ts';
import { UsageError, int, list, parse, str } from '../cli/args.ts';
import { SYSTEM_TENANT, loadTopology, type Topology } from '../topology/index.ts';
import { findDrills, type DrillSummary } from './drills.ts';
import { ComplianceError, ComplianceErrorCode } from './errors.ts';
import { parseHistoryPage, type HistoryPageWire } from './history-wire.ts';
import { renderCsv } from './render-csv.ts';
import { renderHtml } from './render-html.ts';
import { buildLagReport, decodeRegionHistory, formatDuration, reportPeriod, type LagReport, type RegionHistory, type SourceStatus } from './report.ts';
import { loadSigner, signDetached, signReport, verifyDetached, verifySignedReport, type SignedReport, type Verification } from './signing.ts';

export const REPORT_HELP = `Usage: admq report --topology FILE --region NAME (--tenant T | --namespace T/N ...) [options]
       admq report verify FILE [--ca FILE | --topology FILE] [--signature FILE]

Writes a replication-lag compliance report for a tenant or namespaces over a period, from
the lag history every region node keeps: the RPO target; lag p50, p99 and max, the time
above the target and each breach (start, end, peak); the HLC watermark series; link
uptime; dedupe and conflict counts; the largest clock skew seen; a residency attestation
(the regions that held the data, refused attempts); the drills run in the period.
Times without samples (a node down) are gaps, listed and never counted as zero lag.

The report is signed with the region's SM2 sign certificate (SM3 digest): report.json
carries its signature, report.csv and report.html get a detached .sig each.

Options:
  --topology FILE          the deployment's topology (required): the regions' admin
                           endpoints, links, RPO targets (rpoTargetMs), certificate folder
  --region NAME            the region that signs (required): transport.certDir/NAME-sign.crt
                           and NAME-sign.key, unless --sign-cert and --sign-key are given
  --tenant TENANT          every namespace of the tenant (current placement)
  --namespace T/N          a namespace (repeatable, or comma-separated)
  --pairs A->B,...         only these ordered region pairs (default: every pair of each
                           namespace's replication set)
  --from TIME              start of the period: ISO 8601, ms since the epoch, or relative
                           to now, written with = (--from=-90s, -30m, -24h, -7d) (default -24h)
  --to TIME                end of the period (default now). The period is widened to whole
                           downsampled buckets (lagHistory.downsampledResolutionMs, 1 min)
  --rpo-target-ms MS       RPO target for every namespace, instead of the topology's
  --drills DIR             include the drill reports (report.json of admq drill) found under
                           DIR that started in the period (repeatable)
  --format LIST            json, csv, html, comma-separated (default json,csv,html)
  --out DIR                where the files go (default ./lag-report-<UTC date and time>)
  --sign-cert FILE         the sign certificate (PEM; intermediates may follow it)
  --sign-key FILE          its SM2 key (PEM)
  --admin-url REGION=URL   reach REGION's admin API at URL instead of the topology's
                           address (repeatable)
  --points-max N           chart points per region pair at most (default 1500)

Verify options:
  --ca FILE                the CA certificate to trust (default: ca.crt in the certDir of
                           --topology)
  --topology FILE          the topology whose certDir holds ca.crt
  --signature FILE         the detached signature of FILE (default FILE.sig); a signed
                           report.json needs none
Exit status of verify: 0 when the signature and the chain check out, 1 otherwise.`;

const RELATIVE = /^-(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A time option: ISO 8601, ms since the epoch, "now", or relative to now (-24h). */
export function parseTime(option: string, text: string, nowMs: number): number {
  if (text === 'now') return nowMs;
  const relative = RELATIVE.exec(text);
  if (relative) return Math.round(nowMs - Number(relative[1]) * (UNIT_MS[relative[2] as string] as number));
  if (/^\d+$/.test(text)) return Number(text);
  const parsed = Date.parse(text);
  if (Number.isNaN(parsed)) throw new UsageError(`--${option} must be ISO 8601, ms since the epoch, "now" or relative like -24h; got "${text}"`);
  return parsed;
}

function certDirOf(topologyPath: string, topology: Topology): string {
  if (!topology.transport.certDir) throw new UsageError('the topology has no transport.certDir: give --sign-cert and --sign-key (and --ca to verify)');
  return resolve(dirname(resolve(topologyPath)), topology.transport.certDir);
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}

export interface ReportOptions {
  topologyPath: string;
  region: string;
  tenant?: string;
  namespaces: string[];
  pairs: string[];
  fromMs: number;
  toMs: number;
  rpoTargetMs?: number;
  drillDirs: string[];
  formats: Array<'json' | 'csv' | 'html'>;
  outDir: string;
  signCertPath?: string;
  signKeyPath?: string;
  adminUrls: Record<string, string>;
  pointsMax: number;
  nowMs: number;
}

export interface WrittenReport {
  report: LagReport;
  signed: SignedReport<LagReport>;
  files: string[];
}

async function fetchHistory(admin: AdminClient, namespace: string, period: { fromMs: number; toMs: number }): Promise<HistoryPageWire[]> {
  const pages: HistoryPageWire[] = [];
  let after: string | undefined;
  // Pages are bounded (4 MiB); a year of one namespace is a few dozen.
  for (let i = 0; i < 10_000; i++) {
    const query = new URLSearchParams({ namespace, fromMs: String(period.fromMs), toMs: String(period.toMs), ...(after !== undefined && { after }) });
    const page = parseHistoryPage(await admin.call('GET', `/lag-history?${query.toString()}`));
    pages.push(page);
    if (page.next === undefined) return pages;
    after = page.next;
  }
  throw new ComplianceError(ComplianceErrorCode.Report, `the lag history of ${namespace} did not end after 10,000 pages`);
}

async function topicsNow(admin: AdminClient, namespace: string): Promise<number | null> {
  const [tenant, ns] = namespace.split('/') as [string, string];
  try {
    return (await admin.call<unknown[]>('GET', `/topics/${encodeURIComponent(tenant)}/${encodeURIComponent(ns)}`)).length;
  } catch (error) {
    // Absent here: the region holds nothing of it.
    if (error instanceof AdmqClientError && (error.code === 'ADMQ_ERR_TENANT_NOT_FOUND' || error.code === 'ADMQ_ERR_NAMESPACE_NOT_FOUND')) return 0;
    return null;
  }
}

type PlacementAnswer = { tenants: Array<{ name: string; allowedRegions: string[] }>; namespaces: Array<{ name: string; tenant: string; replicationSet: string[] }> };

/** Builds, signs and writes the report. */
export async function writeReport(o: ReportOptions, progress: (line: string) => void = () => {}): Promise<WrittenReport> {
  const topology = loadTopology(o.topologyPath);
  if (!topology.regions.has(o.region)) throw new UsageError(`--region ${o.region} is not a region of the topology (${[...topology.regions.keys()].join(', ')})`);
  const certDir = o.signCertPath && o.signKeyPath ? undefined : certDirOf(o.topologyPath, topology);
  const signer = loadSigner(
    o.region,
    readText(o.signCertPath ?? join(certDir as string, `${o.region}-sign.crt`), 'the sign certificate'),
    readText(o.signKeyPath ?? join(certDir as string, `${o.region}-sign.key`), 'the sign key'),
  );
  const regions = [...topology.regions.keys()];
  const admins = new Map(regions.map((r) => [r, new AdminClient(o.adminUrls[r] ?? `http://${topology.regions.get(r)?.admin ?? ''}`)]));

  // Placement from the signing region, else from any region that answers.
  let placement: PlacementAnswer | undefined;
  const placementErrors: string[] = [];
  for (const r of [o.region, ...regions.filter((x) => x !== o.region)]) {
    try {
      placement = await (admins.get(r) as AdminClient).call<PlacementAnswer>('GET', '/placement');
      break;
    } catch (error) {
      placementErrors.push(`${r}: ${(error as Error).message}`);
    }
  }
  if (!placement) throw new ComplianceError(ComplianceErrorCode.Report, `no region answered GET /placement: ${placementErrors.join('; ')}`);
  const known = new Map(placement.namespaces.filter((n) => n.tenant !== SYSTEM_TENANT).map((n) => [n.name, n]));
  const names = new Set(o.namespaces);
  if (o.tenant) for (const n of known.values()) if (n.tenant === o.tenant) names.add(n.name);
  if (names.size === 0) throw new UsageError(o.tenant ? `tenant ${o.tenant} has no namespace in the placement` : 'give --tenant or --namespace');
  const namespaces = [...names].sort().map((name) => {
    const n = known.get(name);
    if (!n) throw new UsageError(`namespace ${name} is not in the deployment's placement (known: ${[...known.keys()].join(', ') || 'none'})`);
    const tenant = placement.tenants.find((t) => t.name === n.tenant);
    return { namespace: name, tenant: n.tenant, replicationSet: n.replicationSet, allowedRegions: tenant?.allowedRegions ?? [], rpoTargetMs: o.rpoTargetMs ?? topology.namespaces.get(name)?.rpoTargetMs ?? topology.rpoTargetMs };
  });
  for (const pair of o.pairs) {
    const [a, b] = pair.split('->');
    if (!a || !b || !topology.regions.has(a) || !topology.regions.has(b)) throw new UsageError(`--pairs: "${pair}" is not FROM->TO with regions of the topology`);
  }

  const settings = topology.lagHistory;
  const generatedAtMs = o.nowMs;
  const period = reportPeriod({ fromMs: o.fromMs, toMs: o.toMs }, settings.downsampledResolutionMs, generatedAtMs);
  const histories = new Map<string, Map<string, RegionHistory | { error: string }>>();
  const topics = new Map<string, Map<string, number | null>>();
  const sources = new Map<string, SourceStatus>();
  for (const ns of namespaces) {
    const byRegion = new Map<string, RegionHistory | { error: string }>();
    const now = new Map<string, number | null>();
    await Promise.all(
      regions.map(async (r) => {
        const admin = admins.get(r) as AdminClient;
        try {
          const pages = await fetchHistory(admin, ns.namespace, period);
          const history = decodeRegionHistory(pages, period);
          byRegion.set(r, history);
          if (!sources.has(r)) sources.set(r, { region: r, answered: true, nowMs: history.nowMs, firstSampleMs: history.firstSampleMs, retainedFromMs: history.retainedFromMs });
        } catch (error) {
          const message = error instanceof AdmqClientError ? `${error.code}: ${error.message}` : (error as Error).message;
          byRegion.set(r, { error: message });
          sources.set(r, { region: r, answered: false, error: message });
        }
        now.set(r, await topicsNow(admin, ns.namespace));
      }),
    );
    histories.set(ns.namespace, byRegion);
    topics.set(ns.namespace, now);
    progress(`history of ${ns.namespace}: ${regions.map((r) => `${r} ${'error' in (byRegion.get(r) as object) ? 'no answer' : 'ok'}`).join(', ')}`);
  }
  const drills: DrillSummary[] = o.drillDirs.flatMap((dir) => findDrills(dir, period, { namespaces: namespaces.map((n) => n.namespace), ...(o.tenant && { tenant: o.tenant }) }));
  const report = buildLagReport({
    id: randomUUID(),
    generatedAtMs,
    generatedBy: o.region,
    period: { fromMs: o.fromMs, toMs: o.toMs },
    tenant: o.tenant ?? null,
    namespaces,
    pairs: o.pairs,
    regions,
    links: topology.links,
    sampleIntervalMs: settings.sampleIntervalMs,
    downsampledResolutionMs: settings.downsampledResolutionMs,
    histories,
    topicsNow: topics,
    drills,
    sources: regions.map((r) => sources.get(r) ?? { region: r, answered: false, error: 'not asked' }),
    seriesPointsMax: o.pointsMax,
  });
  const signed = signReport(report, signer, generatedAtMs);
  mkdirSync(o.outDir, { recursive: true });
  const files: string[] = [];
  const write = (name: string, bytes: Buffer, detached: boolean): void => {
    const path = join(o.outDir, name);
    writeFileSync(path, bytes);
    files.push(path);
    if (detached) {
      const sig = signDetached(name, bytes, signed, signer, generatedAtMs);
      writeFileSync(`${path}.sig`, `${JSON.stringify(sig, null, 2)}\n`);
      files.push(`${path}.sig`);
    }
  };
  if (o.formats.includes('json')) write('report.json', Buffer.from(`${JSON.stringify(signed, null, 2)}\n`), false);
  if (o.formats.includes('csv')) write('report.csv', Buffer.from(renderCsv(report)), true);
  if (o.formats.includes('html')) write('report.html', Buffer.from(renderHtml(report, signed.signature)), true);
  return { report, signed, files };
}

/** Verifies FILE: a signed report.json, or any file with its detached signature. */
export function verifyFile(file: string, caPem: string, signaturePath?: string): Verification & { kind: 'embedded' | 'detached' } {
  const bytes = readFileSync(file);
  if (signaturePath === undefined) {
    let doc: unknown;
    try {
      doc = JSON.parse(bytes.toString('utf8'));
    } catch {
      doc = undefined;
    }
    if (typeof doc === 'object' && doc !== null && 'report' in doc && 'signature' in doc) return { ...verifySignedReport(doc, caPem), kind: 'embedded' };
  }
  const sigPath = signaturePath ?? `${file}.sig`;
  if (!existsSync(sigPath)) throw new UsageError(`${file} carries no signature and ${sigPath} does not exist (give --signature)`);
  let sig: unknown;
  try {
    sig = JSON.parse(readFileSync(sigPath, 'utf8'));
  } catch (error) {
    throw new ComplianceError(ComplianceErrorCode.ReportFormat, `${sigPath} is not JSON: ${(error as Error).message}`);
  }
  const result = verifyDetached(bytes, sig, caPem);
  if (typeof sig === 'object' && sig !== null && (sig as { file?: unknown }).file !== basename(file)) {
    result.problems.push(`the signature is for ${String((sig as { file?: unknown }).file)}, not ${basename(file)}`);
    result.ok = false;
  }
  return { ...result, kind: 'detached' };
}

async function cmdVerify(argv: string[]): Promise<number> {
  const parsed = parse(argv, { ca: { type: 'string' }, topology: { type: 'string' }, signature: { type: 'string' } }, REPORT_HELP);
  if (parsed === 'help') {
    console.log(REPORT_HELP);
    return 0;
  }
  const file = parsed.positionals[0];
  if (!file) throw new UsageError(`verify needs FILE\n\n${REPORT_HELP}`);
  let caPath = str(parsed.values, 'ca');
  const topologyPath = str(parsed.values, 'topology');
  if (!caPath && topologyPath) caPath = join(certDirOf(topologyPath, loadTopology(topologyPath)), 'ca.crt');
  if (!caPath) throw new UsageError('verify needs --ca FILE or --topology FILE (to trust its certDir/ca.crt)');
  const result = verifyFile(file, readText(caPath, 'the CA certificate'), str(parsed.values, 'signature'));
  if (result.ok) {
    console.log(`OK: ${file} is signed by region ${result.region} (${result.signer}) at ${new Date(result.signedAtMs ?? 0).toISOString()}`);
    console.log(`  chain: ${result.chain.join(' <- ')}`);
    console.log(`  SM3 of the signed content: ${result.digestSm3}`);
    return 0;
  }
  console.log(`FAILED: ${file}`);
  for (const p of result.problems) console.log(`  ${p}`);
  return 1;
}

export async function cmdReport(argv: string[]): Promise<number> {
  try {
    return argv[0] === 'verify' ? await cmdVerify(argv.slice(1)) : await cmdWrite(argv);
  } catch (error) {
    // Typed errors of compliance/ and topology/ (a bad topology file) are the user's to read, not a stack.
    const code = (error as { code?: unknown }).code;
    if (!(error instanceof UsageError) && !(error instanceof AdmqClientError) && typeof code === 'string' && code.startsWith('ADMQ_ERR_')) {
      console.error(`error: ${code}: ${(error as Error).message}`);
      return 1;
    }
    throw error;
  }
}

async function cmdWrite(argv: string[]): Promise<number> {
  const parsed = parse(
    argv,
    {
      topology: { type: 'string' },
      region: { type: 'string' },
      tenant: { type: 'string' },
      namespace: { type: 'string', multiple: true },
      pairs: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      'rpo-target-ms': { type: 'string' },
      drills: { type: 'string', multiple: true },
      format: { type: 'string' },
      out: { type: 'string' },
      'sign-cert': { type: 'string' },
      'sign-key': { type: 'string' },
      'admin-url': { type: 'string', multiple: true },
      'points-max': { type: 'string' },
    },
    REPORT_HELP,
  );
  if (parsed === 'help') {
    console.log(REPORT_HELP);
    return 0;
  }
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected ${parsed.positionals.join(' ')}\n\n${REPORT_HELP}`);
  const v = parsed.values;
  const topologyPath = str(v, 'topology');
  const region = str(v, 'region');
  if (!topologyPath || !region) throw new UsageError(`--topology and --region are required\n\n${REPORT_HELP}`);
  const nowMs = Date.now();
  const fromMs = parseTime('from', str(v, 'from') ?? '-24h', nowMs);
  const toMs = parseTime('to', str(v, 'to') ?? 'now', nowMs);
  if (toMs <= fromMs) throw new UsageError('--to must be after --from');
  const formats = (str(v, 'format') ?? 'json,csv,html').split(',').map((f) => f.trim());
  for (const f of formats) if (!['json', 'csv', 'html'].includes(f)) throw new UsageError(`--format: unknown format "${f}" (json, csv, html)`);
  if (!formats.includes('json') && formats.length > 0) {
    // The renderings' signatures name the JSON report's digest; the JSON file is what an auditor verifies first.
    console.error('note: without json, the CSV and HTML signatures refer to a report.json that is not written');
  }
  const adminUrls: Record<string, string> = {};
  for (const entry of list(v, 'admin-url')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new UsageError(`--admin-url must be REGION=URL; got "${entry}"`);
    adminUrls[entry.slice(0, eq)] = entry.slice(eq + 1).replace(/\/+$/, '');
  }
  const rpo = v['rpo-target-ms'] === undefined ? undefined : int(v, 'rpo-target-ms', 0, 1);
  const signCert = str(v, 'sign-cert');
  const signKey = str(v, 'sign-key');
  if ((signCert === undefined) !== (signKey === undefined)) throw new UsageError('--sign-cert and --sign-key go together');
  const stamp = new Date(nowMs).toISOString().replace(/[-:]/g, '').replace(/\..*$/, 'Z');
  const tenant = str(v, 'tenant');
  const written = await writeReport(
    {
      topologyPath,
      region,
      ...(tenant && { tenant }),
      namespaces: list(v, 'namespace').flatMap((n) => n.split(',')).filter((n) => n.length > 0),
      pairs: (str(v, 'pairs') ?? '').split(',').filter((p) => p.length > 0),
      fromMs,
      toMs,
      ...(rpo !== undefined && { rpoTargetMs: rpo }),
      drillDirs: list(v, 'drills'),
      formats: formats as Array<'json' | 'csv' | 'html'>,
      outDir: str(v, 'out') ?? `./lag-report-${stamp}`,
      ...(signCert && { signCertPath: signCert }),
      ...(signKey && { signKeyPath: signKey }),
      adminUrls,
      pointsMax: int(v, 'points-max', 1500, 10),
      nowMs,
    },
    (line) => console.error(line),
  );
  const r = written.report;
  console.log(`report ${r.id}: ${r.namespaces.map((n) => n.namespace).join(', ')} from ${new Date(r.period.fromMs).toISOString()} to ${new Date(r.period.toMs).toISOString()} (${formatDuration(r.period.toMs - r.period.fromMs)}), signed by ${r.generatedBy}`);
  for (const f of r.findings) console.log(`  ${f.severity}: ${f.text}`);
  for (const file of written.files) console.log(`wrote ${file}`);
  return 0;
}
