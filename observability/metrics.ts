// OpenTelemetry metrics of a region node (DESIGN §9), exported on a Prometheus `/metrics`
// endpoint and, when configured, by OTLP over HTTP.
//
// Almost everything is an observable instrument read at collection time from counters the
// node keeps anyway (topic logs, subscriptions, replication links and receiver), so the
// produce path pays nothing for metrics. The one exception is the replication delay
// histogram, fed one value per replicated entry by the receiver.
//
// Names follow the OpenTelemetry messaging conventions for attributes
// (`messaging.system`, `messaging.destination.name`, `messaging.consumer.group.name`);
// there are no semantic conventions for broker-side or replication metrics, so those are
// `admq.*`, each listed in observability/README.md.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, MeterProvider, PeriodicExportingMetricReader, type CollectionResult, type IMetricReader, type MetricProducer } from '@opentelemetry/sdk-metrics';
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';

/** What the metrics read from the node at collection time. */
export interface MetricsSources {
  topics(): Array<{
    topic: string;
    entries: number;
    msgInCounter: number;
    bytesInCounter: number;
    subscriptions: Record<string, { backlog: number; msgOutCounter: number }>;
  }>;
  /** Undefined for a standalone node. */
  replication(): ReplicationSnapshot | undefined;
  /** The log store's cache of decoded chunks. */
  chunkCache(): { entries: number; bytes: number; hits: number; misses: number };
}

export interface ReplicationSnapshot {
  links: Array<{
    topic: string;
    from: string;
    to: string;
    state: string;
    backlogEntries: number;
    backlogBytesEstimate: number;
    replicationDelayMs: number;
    throughputEntriesPerSecond: number;
    entriesShipped: number;
    bytesShipped: number;
    residencyBlocked: number;
    reconnects: number;
    clockSkewRefusals: number;
  }>;
  receiver: { residencyRefusals: number; unauthorizedRefusals: number; clockSkewRefusals: number; duplicates: number; maxClockSkewMs: number };
  /** Per topic, per origin: the HLC watermark (decimal) here. */
  watermarks: Record<string, Record<string, string>>;
}

export interface MetricsOptions {
  region: string;
  sources: MetricsSources;
  /** OTLP/HTTP metrics endpoint (e.g. http://collector:4318/v1/metrics); off when absent. */
  otlpUrl?: string;
  otlpIntervalMs?: number;
}

const SYSTEM = { 'messaging.system': 'admq' } as const;
/** Bucket bounds of the replication delay histogram, ms: around typical inter-city delays and far beyond. */
const DELAY_BUCKETS_MS = [5, 10, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 300_000];
const LINK_STATES = ['starting', 'connecting', 'connected', 'backing-off', 'stopped'];

/** The wall-clock milliseconds of a packed HLC (48-bit ms, 16-bit counter). */
function hlcWallMs(decimal: string): number {
  return Number(BigInt(decimal) >> 16n);
}

/** One (topic, origin) series of the replication delay histogram. */
interface DelaySeries {
  attributes: Attributes;
  counts: number[];
  count: number;
  sum: number;
  min: number;
  max: number;
}

/**
 * The replication delay histogram, aggregated here and handed to the metric readers as a
 * MetricProducer. It gets one observation per replicated entry, tens of thousands a second
 * during a catch-up; an OpenTelemetry Histogram.record hashes the attributes on every call,
 * which cost about 8% of a receiving region's CPU. Here an observation is a bucket search
 * and four additions on the series of its (topic, origin), found by topic, then origin
 * (no key string built per observation). The exported data is what the SDK's
 * explicit-bucket histogram would export: cumulative counts per bucket, count, sum, min
 * and max.
 */
class DelayHistograms implements MetricProducer {
  readonly #series = new Map<string, Map<string, DelaySeries>>();
  readonly #startTime: HrTime = msToHrTime(Date.now());

  record(topic: string, origin: string, ms: number): void {
    let byOrigin = this.#series.get(topic);
    if (!byOrigin) this.#series.set(topic, (byOrigin = new Map()));
    let series = byOrigin.get(origin);
    if (!series) {
      series = { attributes: { ...SYSTEM, 'messaging.destination.name': topic, 'admq.region.origin': origin }, counts: new Array<number>(DELAY_BUCKETS_MS.length + 1).fill(0), count: 0, sum: 0, min: Infinity, max: -Infinity };
      byOrigin.set(origin, series);
    }
    // Bounds are inclusive upper bounds, as OpenTelemetry's explicit buckets are.
    let low = 0;
    let high = DELAY_BUCKETS_MS.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (ms <= (DELAY_BUCKETS_MS[mid] as number)) high = mid;
      else low = mid + 1;
    }
    series.counts[low] = (series.counts[low] as number) + 1;
    series.count++;
    series.sum += ms;
    if (ms < series.min) series.min = ms;
    if (ms > series.max) series.max = ms;
  }

  async collect(): Promise<CollectionResult> {
    const endTime = msToHrTime(Date.now());
    return {
      errors: [],
      resourceMetrics: {
        // The reader keeps its own provider's resource and takes only the scope metrics.
        resource: resourceFromAttributes({}),
        scopeMetrics: [
          {
            scope: { name: 'admq' },
            metrics: [
              {
                descriptor: { name: 'admq.replication.commit_delay', description: 'Per replicated entry: from its commit in the origin region to durable here', unit: 'ms', valueType: ValueType.DOUBLE },
                aggregationTemporality: AggregationTemporality.CUMULATIVE,
                dataPointType: DataPointType.HISTOGRAM,
                dataPoints: [...this.#series.values()].flatMap((byOrigin) => [...byOrigin.values()]).map((series) => ({
                  startTime: this.#startTime,
                  endTime,
                  attributes: series.attributes,
                  value: { buckets: { boundaries: DELAY_BUCKETS_MS, counts: [...series.counts] }, count: series.count, sum: series.sum, min: series.min, max: series.max },
                })),
              },
            ],
          },
        ],
      },
    };
  }
}

function msToHrTime(ms: number): HrTime {
  return [Math.floor(ms / 1000), (ms % 1000) * 1_000_000];
}

export class NodeMetrics {
  readonly #provider: MeterProvider;
  readonly #prometheus: PrometheusExporter;
  readonly #delay = new DelayHistograms();

  constructor(options: MetricsOptions) {
    this.#prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, metricProducers: [this.#delay] });
    const readers: IMetricReader[] = [this.#prometheus];
    if (options.otlpUrl) {
      readers.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: options.otlpUrl }), exportIntervalMillis: options.otlpIntervalMs ?? 10_000, metricProducers: [this.#delay] }));
    }
    this.#provider = new MeterProvider({
      resource: resourceFromAttributes({ 'service.name': 'admq-region-node', 'admq.region': options.region }),
      readers,
    });
    const meter = this.#provider.getMeter('admq');
    const { sources } = options;

    const published = meter.createObservableCounter('admq.broker.messages.published', { description: 'Messages appended to a topic log (local and replicated)', unit: '{message}' });
    const publishedBytes = meter.createObservableCounter('admq.broker.bytes.published', { description: 'Payload bytes appended to a topic log', unit: 'By' });
    const dispatched = meter.createObservableCounter('admq.broker.messages.dispatched', { description: 'Messages handed to consumers, per subscription', unit: '{message}' });
    const backlog = meter.createObservableGauge('admq.broker.backlog', { description: 'Entries not yet acknowledged, per subscription', unit: '{message}' });
    const entries = meter.createObservableGauge('admq.topic.entries', { description: 'Entries retained in a topic log', unit: '{message}' });
    meter.addBatchObservableCallback(
      (observe) => {
        for (const t of sources.topics()) {
          const topicAttrs = { ...SYSTEM, 'messaging.destination.name': t.topic };
          observe.observe(published, t.msgInCounter, topicAttrs);
          observe.observe(publishedBytes, t.bytesInCounter, topicAttrs);
          observe.observe(entries, t.entries, topicAttrs);
          for (const [name, sub] of Object.entries(t.subscriptions)) {
            const subAttrs = { ...topicAttrs, 'messaging.consumer.group.name': name };
            observe.observe(dispatched, sub.msgOutCounter, subAttrs);
            observe.observe(backlog, sub.backlog, subAttrs);
          }
        }
      },
      [published, publishedBytes, dispatched, backlog, entries],
    );

    const cacheEntries = meter.createObservableGauge('admq.storage.chunk_cache.entries', { description: 'Decoded entries held in the log store\'s chunk cache, all topics', unit: '{entry}' });
    const cacheBytes = meter.createObservableGauge('admq.storage.chunk_cache.bytes', { description: 'Stored bytes of the chunks held in the chunk cache', unit: 'By' });
    const cacheHits = meter.createObservableCounter('admq.storage.chunk_cache.hits', { description: 'Chunks that reads found in the chunk cache', unit: '{chunk}' });
    const cacheMisses = meter.createObservableCounter('admq.storage.chunk_cache.misses', { description: 'Chunks that reads read from LMDB', unit: '{chunk}' });
    meter.addBatchObservableCallback(
      (observe) => {
        const c = sources.chunkCache();
        observe.observe(cacheEntries, c.entries, SYSTEM);
        observe.observe(cacheBytes, c.bytes, SYSTEM);
        observe.observe(cacheHits, c.hits, SYSTEM);
        observe.observe(cacheMisses, c.misses, SYSTEM);
      },
      [cacheEntries, cacheBytes, cacheHits, cacheMisses],
    );

    const linkBacklog = meter.createObservableGauge('admq.replication.backlog.entries', { description: 'Entries a link has not shipped to its remote region yet', unit: '{entry}' });
    const linkBacklogBytes = meter.createObservableGauge('admq.replication.backlog.bytes', { description: 'Estimated bytes a link has not shipped yet', unit: 'By' });
    const linkDelay = meter.createObservableGauge('admq.replication.delay', { description: 'Age of the oldest entry not yet durable in the remote region (never 0 while disconnected)', unit: 'ms' });
    const linkThroughput = meter.createObservableGauge('admq.replication.throughput', { description: 'Entries shipped per second over the last interval', unit: '{entry}/s' });
    const shipped = meter.createObservableCounter('admq.replication.entries.shipped', { description: 'Entries acknowledged by the remote region', unit: '{entry}' });
    const shippedBytes = meter.createObservableCounter('admq.replication.bytes.shipped', { description: 'Payload bytes acknowledged by the remote region', unit: 'By' });
    const withheld = meter.createObservableCounter('admq.replication.entries.withheld', { description: 'Entries a sender did not ship because the remote may not hold them (residency)', unit: '{entry}' });
    const reconnects = meter.createObservableCounter('admq.replication.reconnects', { description: 'Times a link went down and reconnected', unit: '{reconnect}' });
    const linkState = meter.createObservableGauge('admq.replication.link.state', { description: '1 for the state a link is in, 0 for the others' });
    const refusals = meter.createObservableCounter('admq.replication.refusals', { description: 'Batches or streams refused, by reason (residency, clock_skew, unauthorized) and side', unit: '{refusal}' });
    const watermark = meter.createObservableGauge('admq.replication.watermark', { description: 'Wall-clock ms of the HLC watermark: every write from the origin with HLC at or below it is durable here', unit: 'ms' });
    const maxSkew = meter.createObservableGauge('admq.replication.clock_skew.max', { description: 'Largest clock skew seen in a refused batch', unit: 'ms' });
    const duplicates = meter.createObservableCounter('admq.replication.duplicates', { description: 'Replicated entries the receiver already had (deduplicated)', unit: '{entry}' });
    meter.addBatchObservableCallback(
      (observe) => {
        const status = sources.replication();
        if (!status) return;
        for (const l of status.links) {
          const attrs = { ...SYSTEM, 'messaging.destination.name': l.topic, 'admq.region.from': l.from, 'admq.region.to': l.to };
          observe.observe(linkBacklog, l.backlogEntries, attrs);
          observe.observe(linkBacklogBytes, l.backlogBytesEstimate, attrs);
          observe.observe(linkDelay, l.replicationDelayMs, attrs);
          observe.observe(linkThroughput, l.throughputEntriesPerSecond, attrs);
          observe.observe(shipped, l.entriesShipped, attrs);
          observe.observe(shippedBytes, l.bytesShipped, attrs);
          observe.observe(withheld, l.residencyBlocked, attrs);
          observe.observe(reconnects, l.reconnects, attrs);
          observe.observe(refusals, l.clockSkewRefusals, { ...attrs, 'admq.refusal.reason': 'clock_skew', 'admq.refusal.side': 'sender' });
          for (const state of LINK_STATES) observe.observe(linkState, l.state === state ? 1 : 0, { ...attrs, 'admq.link.state': state });
        }
        const r = status.receiver;
        observe.observe(refusals, r.residencyRefusals, { ...SYSTEM, 'admq.refusal.reason': 'residency', 'admq.refusal.side': 'receiver' });
        observe.observe(refusals, r.clockSkewRefusals, { ...SYSTEM, 'admq.refusal.reason': 'clock_skew', 'admq.refusal.side': 'receiver' });
        observe.observe(refusals, r.unauthorizedRefusals, { ...SYSTEM, 'admq.refusal.reason': 'unauthorized', 'admq.refusal.side': 'receiver' });
        observe.observe(duplicates, r.duplicates, SYSTEM);
        observe.observe(maxSkew, r.maxClockSkewMs, SYSTEM);
        for (const [topic, byOrigin] of Object.entries(status.watermarks)) {
          for (const [origin, hlc] of Object.entries(byOrigin)) {
            observe.observe(watermark, hlcWallMs(hlc), { ...SYSTEM, 'messaging.destination.name': topic, 'admq.region.origin': origin });
          }
        }
      },
      [linkBacklog, linkBacklogBytes, linkDelay, linkThroughput, shipped, shippedBytes, withheld, reconnects, linkState, refusals, watermark, maxSkew, duplicates],
    );
  }

  /** One replicated entry became durable here `ms` after its commit in `origin`. */
  observeReplicationDelay(topic: string, origin: string, ms: number): void {
    this.#delay.record(topic, origin, ms);
  }

  /** Serves the Prometheus text format (GET /metrics). */
  handle(request: IncomingMessage, response: ServerResponse): void {
    this.#prometheus.getMetricsRequestHandler(request, response);
  }

  async shutdown(): Promise<void> {
    await this.#provider.shutdown().catch(() => {});
  }
}
