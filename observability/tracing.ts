// Traces of a message crossing regions (DESIGN §9). The producer's send span travels in
// the message's `traceparent` property (W3C Trace Context); every hop that handles a traced
// message makes a child span of it:
//   client   send <topic>                (producer, client/producer.ts, with a tracer)
//   node     publish <topic>             (broker: from the send batch to durable)
//   node     replicate <topic> a --> b   (replicator sender: shipped to acked)
//   node     receive <topic> a --> b     (replicator receiver: arrived to durable)
//   client   receive <topic>             (consumer in any region, client/consumer.ts)
// Properties never change between regions, so a consumer in another city continues the
// same trace. Messages without `traceparent` cost nothing; a node makes spans only when
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Span, type SpanContext, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

export const TRACEPARENT = 'traceparent';
export { SpanKind, SpanStatusCode };
export type { Span, Tracer };

const TRACEPARENT_FORMAT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The span context a `traceparent` value names; undefined when it is absent or malformed. */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  if (value === undefined) return undefined;
  const m = TRACEPARENT_FORMAT.exec(value);
  if (!m || /^0+$/.test(m[1] as string) || /^0+$/.test(m[2] as string)) return undefined;
  return { traceId: m[1] as string, spanId: m[2] as string, traceFlags: Number.parseInt(m[3] as string, 16) & TraceFlags.SAMPLED, isRemote: true };
}

export function formatTraceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-0${(context.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

/** A child span of the message's traceparent, or undefined (no tracer, or not traced). */
export function startMessageSpan(tracer: Tracer | undefined, name: string, properties: Record<string, string> | undefined, kind: SpanKind, attributes: Attributes): Span | undefined {
  if (!tracer) return undefined;
  const parent = parseTraceparent(properties?.[TRACEPARENT]);
  if (!parent) return undefined;
  return tracer.startSpan(name, { kind, attributes: { 'messaging.system': 'admq', ...attributes } }, trace.setSpanContext(ROOT_CONTEXT, parent));
}

export function endSpans(spans: readonly Span[], error?: string): void {
  for (const span of spans) {
    if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    span.end();
  }
}

/** The node's tracer, exporting by OTLP/HTTP to `url`; none without a URL. */
export function createNodeTracer(region: string, url: string | undefined): { tracer: Tracer | undefined; shutdown(): Promise<void> } {
  if (!url) return { tracer: undefined, shutdown: async () => {} };
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'admq-region-node', 'admq.region': region }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: 1000 })],
  });
  return { tracer: provider.getTracer('admq'), shutdown: () => provider.shutdown().catch(() => {}) };
}
