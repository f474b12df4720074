// The receiving end of replication links: commits batches durably, then acknowledges.
// It refuses, and counts, what the topology does not allow: an unknown or impersonated
// sender, and a topic whose data may not live in this region (residency, checked again
// here even though senders never ship such entries).
import * as grpc from '@grpc/grpc-js';
import * as hdr from 'hdr-histogram-js';
import { ClockSkewError } from '../conflict/index.ts';
import { ReplicationErrorCode } from './errors.ts';
import type { LogEntry, ReplicatedEntry, ReplicationLog } from './log.ts';
import { SpanKind, endSpans, startMessageSpan, type Span, type Tracer } from '../observability/tracing.ts';
import { fromWire, frontiersFromWire, type WireEntry, type WireSubscriptionFrontier } from './wire.ts';

export interface ReceiverOptions {
  log: ReplicationLog;
  /** Whether `region` is a region of the topology allowed to send to us. */
  knownRegion: (region: string) => boolean;
  /** Whether this region may hold the topic's data. */
  mayHoldHere: (topic: string) => boolean;
  /** The authenticated region of the caller (TLCP certificate), when the transport has one. */
  peerRegion: (call: grpc.ServerDuplexStream<unknown, unknown>) => string | undefined;
  logLine: (line: string) => void;
  nowMs: () => number;
  /** A topic was created here by replication: relays start their own links for it at once. */
  topicCreated: (topic: string) => void;
  /** Each replicated entry once durable here: its commit-to-commit delay (metrics). */
  observeDelay?: (topic: string, origin: string, ms: number) => void;
  /** Traced entries (a `traceparent` property) get a receive span each. */
  tracer?: Tracer;
}

export interface ReceiverStats {
  batches: number;
  entriesAppended: number;
  duplicates: number;
  residencyRefusals: number;
  unauthorizedRefusals: number;
  clockSkewRefusals: number;
  maxClockSkewMs: number;
  /** Commit-to-commit delay per origin region: origin publish time to durable here, in ms. */
  delayFromOriginMs: Record<string, { p50: number; p99: number; max: number; count: number }>;
}

export function createReceiver(o: ReceiverOptions): { handler: grpc.handleBidiStreamingCall<unknown, unknown>; stats: () => ReceiverStats; resetHistograms: () => void } {
  const counters = { batches: 0, entriesAppended: 0, duplicates: 0, residencyRefusals: 0, unauthorizedRefusals: 0, clockSkewRefusals: 0, maxClockSkewMs: 0 };
  const stats = counters;
  const delays = new Map<string, hdr.Histogram>();
  const recordDelay = (origin: string, ms: number): void => {
    let h = delays.get(origin);
    if (!h) delays.set(origin, (h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 86_400_000, numberOfSignificantValueDigits: 2, useWebAssembly: false })));
    h.recordValue(Math.max(1, ms));
  };
  const handler = (call: grpc.ServerDuplexStream<unknown, unknown>): void => {
    let topic: string | undefined;
    let from = '?';
    let chain: Promise<void> = Promise.resolve();
    let ended = false;
    /** A batch was refused: later ones are not queued (the sender resumes from our marks). */
    let refusing = false;
    const refuse = (code: string, message: string, batchId = 0, owner = ''): void => {
      if (ended) return;
      ended = true;
      call.write({ error: { code, message, batchId, owner } });
      call.end();
    };
    call.on('error', () => (ended = true));
    call.on('cancelled', () => (ended = true));
    call.on('end', () => {
      if (!ended) {
        ended = true;
        call.end();
      }
    });
    call.on('data', (request: { request?: string; hello?: { fromRegion: string; topic: string; parentTopic?: string; parentPartitions?: number; keyed?: boolean }; batch?: { batchId: string | number; entries: WireEntry[]; replicated?: LogEntry[] }; subscriptions?: { subscriptions?: WireSubscriptionFrontier[] }; heartbeat?: { watermarks?: Record<string, string> } }) => {
      if (ended) return;
      if (!topic) {
        const hello = request.hello;
        if (request.request !== 'hello' || !hello) return refuse(ReplicationErrorCode.BadRequest, 'the first message must be hello');
        from = hello.fromRegion;
        const authenticated = o.peerRegion(call);
        if (!o.knownRegion(from) || (authenticated !== undefined && authenticated !== from)) {
          stats.unauthorizedRefusals++;
          o.logLine(`[${hello.topic}][${from} --> ${o.log.region}] AUDIT refused: sender ${from} ${authenticated !== undefined ? `authenticated as ${authenticated}` : 'is not in the topology'}`);
          return refuse(ReplicationErrorCode.Unauthorized, `region ${from} may not replicate to ${o.log.region}`);
        }
        if (!o.mayHoldHere(hello.topic)) {
          stats.residencyRefusals++;
          o.logLine(`[${hello.topic}][${from} --> ${o.log.region}] AUDIT residency: refused; ${o.log.region} may not hold this topic's data`);
          return refuse(ReplicationErrorCode.Residency, `${o.log.region} is outside the replication set or the tenant's allowed regions of ${hello.topic}`);
        }
        const name = hello.topic;
        const keyed = hello.keyed === true ? { keyed: true } : {};
        const shape = hello.parentTopic && hello.parentPartitions ? { partitionOf: { parent: hello.parentTopic, partitions: hello.parentPartitions }, ...keyed } : keyed;
        o.log.ensureTopic(name, shape).then(
          (created) => {
            topic = name;
            if (created) o.topicCreated(name);
            const marks = Object.fromEntries([...o.log.originMarks(name)].map(([k, v]) => [k, v]));
            if (!ended) call.write({ marks: { highWater: marks } });
          },
          // A cluster's node that does not serve the topic names the one that does.
          (error: Error & { code?: string; owner?: string }) => refuse(error.code ?? ReplicationErrorCode.BadRequest, error.message, 0, error.owner ?? ''),
        );
        return;
      }
      if (request.request === 'heartbeat') {
        const name = topic;
        const watermarks = new Map<string, bigint>();
        for (const [origin, hlc] of Object.entries(request.heartbeat?.watermarks ?? {})) {
          try {
            watermarks.set(origin, BigInt(hlc));
          } catch {
            // A malformed value vouches for nothing.
          }
        }
        // After the batches before it: the watermarks cover what they carried.
        chain = chain.then(() => {
          if (ended) return;
          try {
            o.log.noteWatermarks(name, watermarks);
          } catch (error) {
            // The topic left this node (a regional cluster moved it): the sender reconnects.
            const e = error as Error & { code?: string };
            refusing = true;
            return refuse(e.code ?? 'ADMQ_ERR_INTERNAL', e.message);
          }
          call.write({ heartbeatAck: {} });
        });
        return;
      }
      if (request.request === 'subscriptions') {
        const frontiers = frontiersFromWire(request.subscriptions?.subscriptions);
        const name = topic;
        // After the batches received before it: a frontier may name entries they carry.
        chain = chain.then(() => {
          if (ended) return;
          try {
            o.log.applySubscriptionFrontiers(name, frontiers);
          } catch (error) {
            o.logLine(`[${name}][${from} --> ${o.log.region}] subscription sync failed: ${(error as Error).message}`);
          }
        });
        return;
      }
      if (request.request !== 'batch' || !request.batch) return;
      const batch = request.batch;
      const name = topic;
      // Batches are queued for commit as they arrive, so that several share a group commit
      // (waiting for each one's fsync before queueing the next serialized a link), and are
      // acked in arrival order, each after its own durable commit. The clock check runs
      // here, in arrival order: after a refusal no later batch is queued, so a refused
      // batch never leaves a gap behind a later one.
      if (refusing) return;
      let appended: Promise<{ appended: number; duplicates: number }>;
      let entries: ReplicatedEntry[] = [];
      const spans: Span[] = [];
      try {
        // Decoded by the batch codec (replicator.ts), or by proto-loader.
        entries = batch.replicated ?? batch.entries.map(fromWire);
        if (o.tracer) {
          for (const e of entries) {
            const span = startMessageSpan(o.tracer, `receive ${name} ${from} --> ${o.log.region}`, e.properties, SpanKind.CONSUMER, { 'messaging.destination.name': name, 'messaging.message.id': `${e.originRegion}:${e.originPosition}`, 'admq.region.from': from, 'admq.region.to': o.log.region });
            if (span) spans.push(span);
          }
        }
        o.log.checkClockSkew(entries);
        appended = o.log.appendReplicated(name, entries);
      } catch (error) {
        refusing = true;
        appended = Promise.reject(error);
      }
      appended.catch(() => {}); // handled in order below
      chain = chain.then(async () => {
        if (ended) return;
        try {
          const outcome = await appended;
          const now = o.nowMs();
          for (const e of entries) {
            recordDelay(e.originRegion, now - e.publishTimeMs);
            o.observeDelay?.(name, e.originRegion, now - e.publishTimeMs);
          }
          stats.batches++;
          stats.entriesAppended += outcome.appended;
          stats.duplicates += outcome.duplicates;
          const watermarks = Object.fromEntries([...o.log.watermarks(name)].map(([k, v]) => [k, v.toString()]));
          if (!ended) call.write({ ack: { batchId: batch.batchId, appended: outcome.appended, duplicates: outcome.duplicates, watermarks } });
          endSpans(spans);
        } catch (error) {
          endSpans(spans, (error as Error).message);
          if (error instanceof ClockSkewError) {
            stats.clockSkewRefusals++;
            stats.maxClockSkewMs = Math.max(stats.maxClockSkewMs, error.skewMs);
            o.logLine(`[${name}][${from} --> ${o.log.region}] refused a batch: ${error.message}`);
          }
          const e = error as Error & { code?: string };
          refusing = true;
          refuse(e.code ?? 'ADMQ_ERR_INTERNAL', e.message, Number(batch.batchId));
        }
      });
    });
  };
  return {
    handler,
    resetHistograms: () => delays.clear(),
    stats: () => ({
      ...counters,
      delayFromOriginMs: Object.fromEntries(
        [...delays].map(([origin, h]) => [origin, { p50: h.getValueAtPercentile(50), p99: h.getValueAtPercentile(99), max: h.maxValue, count: h.totalCount }]),
      ),
    }),
  };
}
