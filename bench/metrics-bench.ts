// The cost of OpenTelemetry metrics and tracing on publish throughput (issue 7): the same
// standalone node workload with both off (ADMQ_METRICS=off, no traces endpoint) and on
// (metrics scraped every second, far more often than a Prometheus would; traces exported
// to an OTLP endpoint; the load's messages carry no traceparent, as most do when traces
// are sampled), alternating, in one run. fsync is off so that the disk
// does not hide a CPU cost: this is the worst case for the metrics' share.
import { runProduceLoad } from '../cli/perf.ts';
import { AdminClient } from '../client/index.ts';
import { startNodeProcess } from '../test-support/processes.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';

export interface MetricsBenchResult {
  rounds: Array<{ metrics: 'off' | 'on'; messagesPerSecond: number; scrapes: number }>;
  offMedian: number;
  onMedian: number;
  offBest: number;
  onBest: number;
  /** By the medians. */
  overheadPercent: number;
  /** By the best rounds (the least disturbed by the VM's neighbours). */
  overheadBestPercent: number;
}

async function round(metrics: 'off' | 'on', durationMs: number): Promise<MetricsBenchResult['rounds'][number]> {
  const dataDir = tempDir('admq-metrics-bench-');
  const node = await startNodeProcess(['--data-dir', dataDir, '--grpc-port', '0', '--admin-port', '0', '--durability', 'none'], 30_000, metrics === 'off' ? { ADMQ_METRICS: 'off' } : { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:9/v1/traces' });
  let scrapes = 0;
  let scraping = metrics === 'on';
  const scraper = (async () => {
    while (scraping) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (!scraping) break;
      const response = await fetch(`${node.adminUrl}/metrics`);
      await response.text();
      if (response.status === 200) scrapes++;
    }
  })();
  try {
    await new AdminClient(node.adminUrl).createTopic('public/default/metrics-bench', 0);
    const load = await runProduceLoad({ serviceUrl: node.grpcAddress, topic: 'public/default/metrics-bench', producers: 1, payloadBytes: 1024, ratePerSecond: 0, durationMs, messagesMax: 10_000_000, inflightMax: 2000 });
    return { metrics, messagesPerSecond: load.messagesPerSecond, scrapes };
  } finally {
    scraping = false;
    await scraper;
    node.child.kill('SIGTERM');
    await node.exited;
    removeTempDir(dataDir);
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

export async function runMetricsBench(options: { quick?: boolean } = {}): Promise<MetricsBenchResult> {
  const rounds: MetricsBenchResult['rounds'] = [];
  const pairs = options.quick ? 1 : 5;
  // A first round warms the page cache and the machine up; it is not counted.
  await round('off', options.quick ? 2000 : 5000);
  for (let i = 0; i < pairs; i++) {
    for (const m of i % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      const r = await round(m, options.quick ? 3000 : 6000);
      console.error(`metrics ${m}: ${r.messagesPerSecond.toFixed(0)} msg/s (${r.scrapes} scrapes)`);
      rounds.push(r);
    }
  }
  const offMedian = median(rounds.filter((r) => r.metrics === 'off').map((r) => r.messagesPerSecond));
  const onMedian = median(rounds.filter((r) => r.metrics === 'on').map((r) => r.messagesPerSecond));
  const offBest = Math.max(...rounds.filter((r) => r.metrics === 'off').map((r) => r.messagesPerSecond));
  const onBest = Math.max(...rounds.filter((r) => r.metrics === 'on').map((r) => r.messagesPerSecond));
  return { rounds, offMedian, onMedian, offBest, onBest, overheadPercent: ((offMedian - onMedian) / offMedian) * 100, overheadBestPercent: ((offBest - onBest) / offBest) * 100 };
}

export function formatMetricsBench(r: MetricsBenchResult): string {
  const f = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
  return [
    '## Metrics and tracing overhead (standalone node, 1 producer, 1 KiB, fsync off; on: /metrics scraped every second and a traces endpoint set)',
    '',
    '| round | metrics and tracing | msg/s | scrapes |',
    '|---|---|---|---|',
    ...r.rounds.map((x, i) => `| ${i + 1} | ${x.metrics} | ${f(x.messagesPerSecond)} | ${x.scrapes} |`),
    '',
    `Median off ${f(r.offMedian)} msg/s, on ${f(r.onMedian)} msg/s: overhead ${r.overheadPercent.toFixed(1)}%. Best round off ${f(r.offBest)} msg/s, on ${f(r.onBest)} msg/s: overhead ${r.overheadBestPercent.toFixed(1)}%. Target ≤ 5%; a negative figure means the difference is within the noise. Rounds on this VM vary by up to a third (disk and CPU shared with neighbours), so single rounds say little.`,
    '',
  ].join('\n');
}
