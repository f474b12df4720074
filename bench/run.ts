// `npm run bench`: runs the benchmarks, prints the figures and writes them, with a
// description of the machine, to bench/results/. Options: --quick (shorter runs),
// --only region-node|replication|log-scan|consistency|failover|metrics|lag-history|tls|cluster.
import { writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { formatRegionNodeBench, runRegionNodeBench } from './region-node-bench.ts';
import { formatConsistencyBench, runConsistencyBench } from './consistency-bench.ts';
import { formatReplicationBench, runReplicationBench } from './replication-bench.ts';

const quick = process.argv.includes('--quick');
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : undefined;
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}, Node ${process.version}`;

async function write(name: string, run: () => Promise<{ text: string; result: unknown }>): Promise<void> {
  const started = new Date().toISOString();
  const { text, result } = await run();
  const page = [`# admq benchmark results: ${name}`, '', `Run ${started} on ${machine}${quick ? ' (quick mode)' : ''}.`, '', text].join('\n');
  console.log(page);
  writeFileSync(new URL(`./results/${name}.md`, import.meta.url), page);
  writeFileSync(new URL(`./results/${name}.json`, import.meta.url), JSON.stringify({ started, machine, quick, result }, null, 2));
}

if (!only || only === 'region-node') {
  await write('region-node', async () => {
    const result = await runRegionNodeBench(quick ? { durationMs: 3_000, backlog: 100_000 } : {});
    return { text: formatRegionNodeBench(result), result };
  });
}
if (!only || only === 'replication') {
  await write('replication', async () => {
    const result = await runReplicationBench({ quick });
    return { text: formatReplicationBench(result), result };
  });
}
if (!only || only === 'log-scan') {
  const { formatLogScanBench, runLogScanBench } = await import('./log-scan-bench.ts');
  await write('log-scan', async () => {
    const result = await runLogScanBench({ quick });
    return { text: formatLogScanBench(result), result };
  });
}
if (!only || only === 'consistency') {
  await write('consistency', async () => {
    const result = await runConsistencyBench({ quick });
    return { text: formatConsistencyBench(result), result };
  });
}
if (!only || only === 'failover') {
  const { formatFailoverBench, runFailoverBench } = await import('./failover-bench.ts');
  await write('failover', async () => {
    const result = await runFailoverBench({ quick });
    return { text: formatFailoverBench(result), result };
  });
}
if (!only || only === 'cluster') {
  const { formatClusterBench, runClusterBench } = await import('./cluster-bench.ts');
  await write('cluster', async () => {
    const result = await runClusterBench({ quick });
    return { text: formatClusterBench(result), result };
  });
}
if (!only || only === 'metrics') {
  const { formatMetricsBench, runMetricsBench } = await import('./metrics-bench.ts');
  await write('metrics', async () => {
    const result = await runMetricsBench({ quick });
    return { text: formatMetricsBench(result), result };
  });
}
if (!only || only === 'lag-history') {
  const { formatLagHistoryBench, runLagHistoryBench } = await import('./lag-history-bench.ts');
  await write('lag-history', async () => {
    // A whole year of 1-second samples, written through the real store (minutes of work).
    const result = await runLagHistoryBench({ yearFraction: quick ? 0.02 : 1 });
    return { text: formatLagHistoryBench(result), result };
  });
}
if (!only || only === 'tls') {
  // tls.md is curated (before/after rounds, profiles); a run through here writes tls-latest.
  const { formatTlsBench, runTlsBench } = await import('./tls-bench.ts');
  await write('tls-latest', async () => {
    const result = await runTlsBench();
    return { text: formatTlsBench(result), result };
  });
}
