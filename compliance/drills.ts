// Drills run in a report's period: the report.json files `admq drill` wrote (drill/report.ts),
// read from the folders an operator points to. Each one is summarized and its SM3 digest
// recorded, so the signed report pins the exact drill reports it refers to.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface DrillSummary {
  /** Path relative to the folder given, as found. */
  file: string;
  /** SM3 of the file's bytes, hex. */
  sm3: string;
  runId: string;
  title: string;
  scenario: string;
  tenant: string;
  namespace: string;
  startedAtMs: number;
  finishedAtMs: number;
  /** Acked entries not yet replicated at the fault; null when the scenario has no RPO. */
  rpoEntries: number | null;
  rpoOldestAgeMs: number | null;
  /** Fault to first acked produce / first delivery in the new region; null when not measured. */
  rtoProduceMs: number | null;
  rtoConsumeMs: number | null;
  /** Whether the drill found a failure (its exit status was 1). */
  failed: boolean;
  findings: string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A drill report.json as a summary; undefined for a JSON file that is not one. */
export function summarizeDrill(file: string, bytes: Buffer): DrillSummary | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isRecord(doc) || doc.version !== 1 || typeof doc.runId !== 'string' || !isRecord(doc.scenario) || typeof doc.startedAtMs !== 'number' || typeof doc.finishedAtMs !== 'number') return undefined;
  const rpo = isRecord(doc.rpo) && doc.rpo.applicable === true ? doc.rpo : undefined;
  const rto = isRecord(doc.rto) && doc.rto.applicable === true ? doc.rto : undefined;
  const ms = (point: unknown): number | null => (isRecord(point) && typeof point.ms === 'number' ? point.ms : null);
  const findings = Array.isArray(doc.findings) ? doc.findings.filter(isRecord) : [];
  return {
    file,
    sm3: createHash('sm3').update(bytes).digest('hex'),
    runId: doc.runId,
    title: typeof doc.scenario.title === 'string' ? doc.scenario.title : String(doc.scenario.name),
    scenario: String(doc.scenario.name),
    tenant: typeof doc.tenant === 'string' ? doc.tenant : '',
    namespace: typeof doc.namespace === 'string' ? doc.namespace : '',
    startedAtMs: doc.startedAtMs,
    finishedAtMs: doc.finishedAtMs,
    rpoEntries: rpo && typeof rpo.count === 'number' ? rpo.count : null,
    rpoOldestAgeMs: rpo && typeof rpo.oldestAgeMs === 'number' ? rpo.oldestAgeMs : null,
    rtoProduceMs: rto ? ms(rto.produce) : null,
    rtoConsumeMs: rto ? ms(rto.consume) : null,
    failed: findings.some((f) => f.severity === 'fail'),
    findings: findings.map((f) => `${String(f.severity)}: ${String(f.text)}`),
  };
}

/** Files looked at under one folder at most: a wrong --drills folder must not walk a disk. */
const FILES_MAX = 10_000;

/**
 * Every drill report.json under `dir` (recursively) that started in [fromMs, toMs) and
 * concerns one of `namespaces` (or, with `tenant`, any namespace of it).
 */
export function findDrills(dir: string, period: { fromMs: number; toMs: number }, scope: { namespaces: readonly string[]; tenant?: string }): DrillSummary[] {
  const out: DrillSummary[] = [];
  const stack = [dir];
  let seen = 0;
  while (stack.length > 0 && seen < FILES_MAX) {
    const at = stack.pop() as string;
    for (const name of readdirSync(at).sort()) {
      const path = join(at, name);
      const stat = statSync(path);
      if (stat.isDirectory()) stack.push(path);
      else if (name === 'report.json' && ++seen) {
        const summary = summarizeDrill(relative(dir, path), readFileSync(path));
        if (!summary || summary.startedAtMs < period.fromMs || summary.startedAtMs >= period.toMs) continue;
        const inScope = scope.namespaces.includes(summary.namespace) || (scope.tenant !== undefined && summary.tenant === scope.tenant);
        if (inScope) out.push(summary);
      }
    }
  }
  return out.sort((a, b) => a.startedAtMs - b.startedAtMs);
}
