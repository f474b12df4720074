// One trace follows a message across two cities: the producer's send span (client in
// shanghai), the node's publish span, the replicator's send and beijing's receive, and a
// consumer's receive in beijing, all in one trace, each a child of the send span. The
// nodes export by OTLP/HTTP (JSON) to a collector this test runs.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { waitFor } from '../test-support/processes.ts';
import { Cluster } from './cluster.ts';
import { AdmqClient } from '../client/index.ts';

interface CollectedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  service: string;
  region: string;
}

/** A minimal OTLP/HTTP trace collector: JSON bodies of ExportTraceServiceRequest. */
async function startCollector(): Promise<{ server: Server; url: string; spans: CollectedSpan[] }> {
  const spans: CollectedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: Array<{ resource?: { attributes?: Array<{ key: string; value: { stringValue?: string } }> }; scopeSpans?: Array<{ spans?: Array<{ name: string; traceId: string; spanId: string; parentSpanId?: string }> }> }>;
      };
      for (const rs of body.resourceSpans ?? []) {
        const attr = (k: string) => rs.resource?.attributes?.find((a) => a.key === k)?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) spans.push({ name: s.name, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', service: attr('service.name'), region: attr('admq.region') });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans };
}

test.serial('tracing: one trace shows a message crossing from shanghai to a consumer in beijing', async (t) => {
  const collector = await startCollector();
  t.teardown(() => new Promise<void>((resolve) => collector.server.close(() => resolve())));
  const cluster = await Cluster.start({ regions: ['shanghai', 'beijing'], transport: 'insecure', env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector.url } });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/traced';
  await cluster.createTopic('shanghai', topic);

  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = provider.getTracer('test-app');
  const producerClient = new AdmqClient({ serviceUrl: cluster.grpcAddress('shanghai'), tracer });
  const consumerClient = new AdmqClient({ serviceUrl: cluster.grpcAddress('beijing'), tracer });
  t.teardown(async () => {
    await producerClient.close();
    await consumerClient.close();
  });
  const producer = await producerClient.createProducer({ topic });
  const id = await producer.send({ payload: 'crossing cities' });
  // An untraced message (no tracer on this client) makes no span anywhere.
  const plain = new AdmqClient({ serviceUrl: cluster.grpcAddress('shanghai') });
  t.teardown(() => plain.close());
  await (await plain.createProducer({ topic })).send({ payload: 'not traced' });

  const consumer = await consumerClient.subscribe({ topic, subscription: 'trace', initialPosition: 'earliest' });
  const first = await consumer.receive(20_000);
  const second = await consumer.receive(20_000);
  t.is(first.payload.toString(), 'crossing cities');
  t.is(second.payload.toString(), 'not traced');
  t.truthy(first.properties.traceparent);
  t.is(second.properties.traceparent, undefined);

  const local = exporter.getFinishedSpans();
  const send = local.find((s) => s.name === `send ${topic}`);
  t.truthy(send, 'the producer made a send span');
  const traceId = send?.spanContext().traceId as string;
  const sendSpanId = send?.spanContext().spanId as string;
  const receive = local.find((s) => s.name === `receive ${topic}`);
  t.is(receive?.spanContext().traceId, traceId, 'the consumer in beijing continues the trace');
  t.is(receive?.parentSpanContext?.spanId, sendSpanId);
  t.is(local.filter((s) => s.name === `receive ${topic}`).length, 1, 'the untraced message makes no receive span');
  t.is(first.properties.traceparent, `00-${traceId}-${sendSpanId}-01`);

  // The nodes' spans, from the collector: every one in the same trace, child of the send span.
  const expected = [
    { name: `publish ${topic}`, region: 'shanghai' },
    { name: `replicate ${topic} shanghai --> beijing`, region: 'shanghai' },
    { name: `receive ${topic} shanghai --> beijing`, region: 'beijing' },
  ];
  await waitFor(() => expected.every((e) => collector.spans.some((s) => s.name === e.name && s.traceId === traceId)), 20_000, 'node spans at the collector');
  for (const e of expected) {
    const span = collector.spans.find((s) => s.name === e.name && s.traceId === traceId) as CollectedSpan;
    t.is(span.region, e.region, `${e.name} comes from ${e.region}`);
    t.is(span.service, 'admq-region-node');
    t.is(span.parentSpanId, sendSpanId, `${e.name} is a child of the send span`);
  }
  t.true(id.offset >= 0);
  // Only traced messages make node spans: one publish, one replicate, one receive.
  t.is(collector.spans.filter((s) => s.name === `publish ${topic}`).length, 1);
});
