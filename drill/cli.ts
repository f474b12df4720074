// `admq drill`: argument parsing, the live progress display (stderr), and the report files.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError, int, parse, str } from '../cli/args.ts';
import { runDrill, type DrillProgress } from './drill.ts';
import { failed, formatMs, renderHtml, renderJson, renderText, type PhaseName } from './report.ts';
import { SCENARIO_NAMES, type ScenarioRequest } from './scenarios.ts';
import { DrillError, HARNESS_REGIONS, HarnessTarget, TopologyTarget, type DrillTarget } from './target.ts';

export const DRILL_HELP = `Usage: admq drill SCENARIO (--harness | --topology FILE) [options]

Runs a fault scenario against a running multi-region deployment while canary producers and
consumers run (one of each homed in every region of the canary tenant, with region
failover), shows the phases live on stderr, and writes a report as JSON and as a
self-contained HTML page with a timeline.

Measured: RPO (entries acked in the failed region but not yet replicated at the fault, each
by id, and whether it arrived after recovery), RTO (fault → first acked send and first
delivery in the new region), duplicates and out-of-order deliveries seen by the canary
consumers, invariant violations in the final logs (DESIGN §10 1–5), catch-up time after
recovery, and residency (which regions hold the tenant's topics; receivers' refusals).

Scenarios:
  region-outage      a region fails: --mode kill (SIGKILL, later restarted) or --mode
                     partition (cut off from the other regions and from clients, later healed)
  link-partition     the replication link between two regions is cut both ways, then healed
  clock-skew         a region's clock runs more than maxClockOffsetMs ahead, then is set back
  planned-failover   the tenant's home moves to --to: fence, drain, move, unfence (RPO must be 0)

Target (exactly one):
  --harness                  start a local harness of three regions (${HARNESS_REGIONS.join(', ')}; TLCP
                             links, 30 ms one-way delay), drill it, stop it. Every scenario works.
  --topology FILE            drill the deployment described by FILE (YAML or JSON; endpoints come
                             from it). region-outage --mode kill needs the nodes on this host
                             (pid from GET /admin/v1/node) and --restart-command; planned-failover
                             works through the admin API; partitions and clock skew are refused.
  --restart-command CMD      how to bring a killed region back, run by /bin/sh, detached;
                             {region} is replaced by the region's name
                             (e.g. "admq start --topology topo.yaml --region {region}")
  --restart-timeout-ms N     how long a restarted region may take to answer (default 60000)

Scenario options:
  --region NAME              region-outage and clock-skew: the region to fail
                             (default: the canary tenant's home region)
  --mode kill|partition      region-outage (default kill)
  --link A,B                 link-partition: the two regions (default: home and the next region)
  --skew-ms N                clock-skew: how far ahead, in ms; must exceed maxClockOffsetMs
                             (default max(2000, 3 × maxClockOffsetMs))
  --to REGION                planned-failover: the new home (default: the tenant's next region)
  --failover-timeout-ms N    planned-failover: bound on the whole failover (default 60000)

Canary and timing:
  --namespace T/N            namespace of the canary topic __drill-<run-id>; it must have a
                             replication set in the topology (default public/default)
  --rate N                   messages per second per canary producer (default 50)
  --warmup-ms N              canary running before the fault (default 3000)
  --fault-ms N               how long the fault lasts (default 10000); make it longer than the
                             RTO you expect (clients fail over after --failover-after-ms)
  --observe-ms N             canary running after catch-up (default 3000)
  --catch-up-timeout-ms N    bound on catch-up after recovery (default 120000)
  --drain-timeout-ms N       bound on the final drain and log reads (default 60000)
  --failover-after-ms N      canary clients move to another region after this long (default 3000)
  --switch-back-after-ms N   and come back home after it has been up this long (default 5000)
  --send-timeout-ms N        canary send timeout (default 30000)

Output:
  --out DIR                  where report.json and report.html go (default ./drill-<run-id>)
  --run-id ID                names the canary topic and clients ([a-z0-9-], default from the time)
  --quiet                    no progress display

Exit status: 0 when the drill ran and found nothing wrong; 1 when it found a failure (an
acked entry missing after recovery, an invariant violation, a residency violation, RPO > 0
in a planned failover) or could not run; 2 on a usage error.`;

const OPTIONS = {
  harness: { type: 'boolean' },
  topology: { type: 'string' },
  'restart-command': { type: 'string' },
  'restart-timeout-ms': { type: 'string' },
  region: { type: 'string' },
  mode: { type: 'string' },
  link: { type: 'string' },
  'skew-ms': { type: 'string' },
  to: { type: 'string' },
  'failover-timeout-ms': { type: 'string' },
  namespace: { type: 'string' },
  rate: { type: 'string' },
  'warmup-ms': { type: 'string' },
  'fault-ms': { type: 'string' },
  'observe-ms': { type: 'string' },
  'catch-up-timeout-ms': { type: 'string' },
  'drain-timeout-ms': { type: 'string' },
  'failover-after-ms': { type: 'string' },
  'switch-back-after-ms': { type: 'string' },
  'send-timeout-ms': { type: 'string' },
  out: { type: 'string' },
  'run-id': { type: 'string' },
  quiet: { type: 'boolean' },
} as const;

/** Options that only mean something for some scenarios: given to another, they are a mistake. */
const SCENARIO_OPTIONS: Record<string, string[]> = {
  'region': ['region-outage', 'clock-skew'],
  'mode': ['region-outage'],
  'link': ['link-partition'],
  'skew-ms': ['clock-skew'],
  'to': ['planned-failover'],
  'failover-timeout-ms': ['planned-failover'],
};

function scenarioRequest(name: string, v: Record<string, unknown>): ScenarioRequest {
  for (const [option, scenarios] of Object.entries(SCENARIO_OPTIONS)) {
    if (v[option] !== undefined && !scenarios.includes(name)) throw new UsageError(`--${option} does not apply to ${name} (only to ${scenarios.join(', ')})`);
  }
  const values = v as Parameters<typeof str>[0];
  switch (name) {
    case 'region-outage': {
      const mode = str(values, 'mode') ?? 'kill';
      if (mode !== 'kill' && mode !== 'partition') throw new UsageError(`--mode must be kill or partition; got "${mode}"`);
      return { name, mode, ...(str(values, 'region') ? { region: str(values, 'region') as string } : {}) };
    }
    case 'link-partition': {
      const link = str(values, 'link');
      if (link === undefined) return { name };
      const parts = link.split(',').map((p) => p.trim());
      if (parts.length !== 2 || !parts[0] || !parts[1]) throw new UsageError(`--link must be two regions, A,B; got "${link}"`);
      return { name, link: [parts[0], parts[1]] };
    }
    case 'clock-skew':
      return { name, ...(str(values, 'region') ? { region: str(values, 'region') as string } : {}), ...(values['skew-ms'] !== undefined ? { skewMs: int(values, 'skew-ms', 0, 1) } : {}) };
    case 'planned-failover':
      return { name, ...(str(values, 'to') ? { to: str(values, 'to') as string } : {}), ...(values['failover-timeout-ms'] !== undefined ? { timeoutMs: int(values, 'failover-timeout-ms', 60_000, 1) } : {}) };
    default:
      throw new UsageError(`unknown scenario "${name}"; scenarios: ${SCENARIO_NAMES.join(', ')}\n\n${DRILL_HELP}`);
  }
}

export async function cmdDrill(argv: string[]): Promise<number> {
  const parsed = parse(argv, OPTIONS, DRILL_HELP);
  if (parsed === 'help') {
    console.log(DRILL_HELP);
    return 0;
  }
  const v = parsed.values;
  const [name, ...extra] = parsed.positionals;
  if (!name) throw new UsageError(`missing SCENARIO (${SCENARIO_NAMES.join(', ')})\n\n${DRILL_HELP}`);
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const scenario = scenarioRequest(name, v);
  const harness = v.harness === true;
  const topologyPath = str(v, 'topology');
  if (harness === (topologyPath !== undefined)) throw new UsageError('give exactly one target: --harness or --topology FILE');
  if (harness && (v['restart-command'] !== undefined || v['restart-timeout-ms'] !== undefined)) throw new UsageError('--restart-command and --restart-timeout-ms are for --topology (the harness restarts its own regions)');
  const runId = str(v, 'run-id') ?? `${Date.now().toString(36)}-${Math.floor(Math.random() * 36 ** 4).toString(36).padStart(4, '0')}`;
  const outDir = resolve(str(v, 'out') ?? `drill-${runId}`);
  const settings = {
    ratePerProducer: int(v, 'rate', 50, 1),
    warmupMs: int(v, 'warmup-ms', 3000, 0),
    faultMs: int(v, 'fault-ms', 10_000, 1),
    observeMs: int(v, 'observe-ms', 3000, 0),
    catchUpTimeoutMs: int(v, 'catch-up-timeout-ms', 120_000, 1),
    drainTimeoutMs: int(v, 'drain-timeout-ms', 60_000, 1),
    sendTimeoutMs: int(v, 'send-timeout-ms', 30_000, 1),
    failover: { failoverAfterMs: int(v, 'failover-after-ms', 3000, 1), switchBackAfterMs: int(v, 'switch-back-after-ms', 5000, 1), checkIntervalMs: 250 },
  };
  const restartTimeoutMs = int(v, 'restart-timeout-ms', 60_000, 1);
  const display = v.quiet === true ? undefined : new ProgressDisplay(process.stderr);
  const abort = new AbortController();
  const onSigint = (): void => {
    process.stderr.write('\nSIGINT: stopping the drill and undoing the fault…\n');
    abort.abort();
  };
  process.once('SIGINT', onSigint);
  let target: DrillTarget | undefined;
  try {
    if (harness) {
      display?.line('starting the harness (three regions on loopback)…');
      target = await HarnessTarget.start();
    } else {
      const restartCommand = str(v, 'restart-command');
      target = new TopologyTarget(topologyPath as string, { ...(restartCommand ? { restartCommand } : {}), restartTimeoutMs, logDir: outDir });
    }
    const { report } = await runDrill(target, {
      scenario,
      namespace: str(v, 'namespace') ?? 'public/default',
      runId,
      ...settings,
      signal: abort.signal,
      ...(display ? { onProgress: (p: DrillProgress) => display.handle(p) } : {}),
    });
    display?.finish();
    mkdirSync(outDir, { recursive: true });
    const jsonPath = join(outDir, 'report.json');
    const htmlPath = join(outDir, 'report.html');
    writeFileSync(jsonPath, renderJson(report));
    writeFileSync(htmlPath, renderHtml(report));
    console.log(renderText(report));
    console.log(`report: ${jsonPath}\n        ${htmlPath}`);
    return failed(report) ? 1 : 0;
  } catch (error) {
    display?.finish();
    // Typed errors (the drill's, the topology's, the client's) carry a stable code: say it, without a stack.
    const code = (error as { code?: unknown }).code;
    if (error instanceof DrillError || (typeof code === 'string' && code.startsWith('ADMQ_ERR_'))) {
      console.error(`error: ${String(code)}: ${(error as Error).message}`);
      return 1;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSigint);
    await target?.close();
  }
}

/**
 * The live display: one line per phase and per event, and, on a terminal, a status line
 * rewritten in place (elsewhere, a status line every 5 s).
 */
class ProgressDisplay {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #phase: { name: PhaseName; atMs: number } | undefined;
  #statusShown = false;
  #lastPlainStatusMs = 0;
  #startedMs: number | undefined;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  line(text: string): void {
    this.#clearStatus();
    this.#out.write(`${text}\n`);
  }

  handle(p: DrillProgress): void {
    this.#startedMs ??= p.type === 'event' ? p.event.atMs : p.atMs;
    switch (p.type) {
      case 'phase': {
        if (this.#phase) this.line(`  ✓ ${this.#phase.name.padEnd(9)} ${formatMs(p.atMs - this.#phase.atMs)}`);
        this.#phase = { name: p.phase, atMs: p.atMs };
        this.line(`▸ ${p.phase}${p.note ? `: ${p.note}` : ''}`);
        return;
      }
      case 'event':
        this.line(`    ${this.#clock(p.event.atMs)} ${p.event.text}`);
        return;
      case 'status': {
        const rto = p.rtoProduceMs !== undefined || p.rtoConsumeMs !== undefined ? `  RTO produce ${p.rtoProduceMs ?? '…'} ms consume ${p.rtoConsumeMs ?? '…'} ms` : '';
        const text = `    ${p.phase} ${formatMs(p.phaseElapsedMs)}  acked ${p.canary.acked}  failed ${p.canary.failed}  delivered ${p.canary.deliveries}${rto}${p.note ? `  ${p.note}` : ''}`;
        if (this.#tty) {
          const width = Math.max(40, (this.#out.columns || 120) - 1);
          this.#out.write(`\r\x1b[K${text.slice(0, width)}`);
          this.#statusShown = true;
        } else if (p.atMs - this.#lastPlainStatusMs >= 5000) {
          this.#lastPlainStatusMs = p.atMs;
          this.#out.write(`${text}\n`);
        }
        return;
      }
      case 'done':
        if (this.#phase) this.line(`  ✓ ${this.#phase.name.padEnd(9)} ${formatMs(p.atMs - this.#phase.atMs)}`);
        this.#phase = undefined;
        return;
    }
  }

  #clock(atMs: number): string {
    return `+${((atMs - (this.#startedMs ?? atMs)) / 1000).toFixed(1).padStart(6)} s`;
  }

  #clearStatus(): void {
    if (this.#tty && this.#statusShown) this.#out.write('\r\x1b[K');
    this.#statusShown = false;
  }

  finish(): void {
    this.#clearStatus();
  }
}
