// Load generators behind `admq perf produce|consume` and the benchmarks. Every loop is
// bounded by a duration and a count.
import * as hdr from 'hdr-histogram-js';
import { AdmqClient, type AdmqConsumer, type AnyProducer, type SubscriptionType } from '../client/index.ts';

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

/** Histogram values are microseconds. */
export function summarize(h: hdr.Histogram): LatencySummary {
  return {
    count: h.totalCount,
    p50Ms: h.getValueAtPercentile(50) / 1000,
    p99Ms: h.getValueAtPercentile(99) / 1000,
    p999Ms: h.getValueAtPercentile(99.9) / 1000,
    maxMs: h.maxValue / 1000,
    meanMs: h.mean / 1000,
  };
}

/** Microseconds since the epoch, comparable between processes on one machine. */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export interface ProduceLoadOptions {
  serviceUrl: string;
  topic: string;
  producers: number;
  payloadBytes: number;
  /** Messages per second across all producers; 0 = as fast as possible. */
  ratePerSecond: number;
  durationMs: number;
  messagesMax: number;
  /**
   * Unacknowledged sends allowed per producer. A few group commits' worth in total (about
   * 2,000 messages of 1 KiB against one node) gives full throughput; a larger window only
   * adds queueing, which shows up as send→ack latency (Little's law).
   */
  inflightMax: number;
  batchingMaxDelayMs?: number;
  /** Sends during this first period are not recorded in the latency histogram (JIT and connection warm-up). */
  warmupMs?: number;
  onProgress?: (p: { elapsedMs: number; acked: number; ratePerSecond: number }) => void;
}

export interface ProduceLoadResult {
  acked: number;
  errors: number;
  firstError?: string;
  elapsedMs: number;
  messagesPerSecond: number;
  megabytesPerSecond: number;
  sendLatency: LatencySummary;
}

export async function runProduceLoad(o: ProduceLoadOptions): Promise<ProduceLoadResult> {
  const client = new AdmqClient({ serviceUrl: o.serviceUrl });
  const histogram = newHistogram();
  let acked = 0;
  let errors = 0;
  let firstError: string | undefined;
  let issued = 0;
  const producers: AnyProducer[] = [];
  try {
    for (let i = 0; i < o.producers; i++) {
      producers.push(await client.createProducer({ topic: o.topic, batchingMaxDelayMs: o.batchingMaxDelayMs ?? 1, maxPendingMessages: Math.max(o.inflightMax, 1) }));
    }
    const started = performance.now();
    const deadline = started + o.durationMs;
    let lastReport = started;
    let lastAcked = 0;
    const report = (): void => {
      const now = performance.now();
      if (!o.onProgress || now - lastReport < 1000) return;
      o.onProgress({ elapsedMs: now - started, acked, ratePerSecond: ((acked - lastAcked) * 1000) / (now - lastReport) });
      lastReport = now;
      lastAcked = acked;
    };
    const template = Buffer.alloc(o.payloadBytes, 0x61);
    const recordFrom = started + (o.warmupMs ?? 0);
    const perProducerRate = o.ratePerSecond / o.producers;
    const worker = async (producer: AnyProducer): Promise<void> => {
      let inflight = 0;
      let sentHere = 0;
      let wake: (() => void) | undefined;
      const workerStart = performance.now();
      while (performance.now() < deadline && issued < o.messagesMax) {
        if (perProducerRate > 0) {
          const due = workerStart + (sentHere * 1000) / perProducerRate;
          const wait = due - performance.now();
          if (wait > 1) await new Promise((r) => setTimeout(r, wait));
          // Behind schedule (after a pause): catch up, but let receipts and deliveries in.
          else if (sentHere % 16 === 0) await new Promise((r) => setImmediate(r));
        }
        if (inflight >= o.inflightMax) {
          await new Promise<void>((r) => (wake = r));
          continue;
        }
        const payload = Buffer.from(template);
        const sentAt = nowMicros();
        const recorded = performance.now() >= recordFrom;
        // Warm-up messages carry timestamp 0 so that consumers skip them too.
        if (payload.length >= 8) payload.writeDoubleBE(recorded ? sentAt : 0, 0);
        inflight++;
        issued++;
        sentHere++;
        producer.send({ payload }).then(
          () => {
            if (recorded) histogram.recordValue(Math.max(1, nowMicros() - sentAt));
            acked++;
          },
          (error: Error) => {
            errors++;
            firstError ??= error.message;
          },
        ).finally(() => {
          inflight--;
          const w = wake;
          wake = undefined;
          w?.();
          report();
        });
        // Yield now and then so acknowledgements are processed while we keep sending.
        if (perProducerRate === 0 && sentHere % 256 === 0) await new Promise((r) => setImmediate(r));
      }
      await producer.drain();
    };
    await Promise.all(producers.map(worker));
    const elapsedMs = performance.now() - started;
    return {
      acked,
      errors,
      firstError,
      elapsedMs,
      messagesPerSecond: (acked * 1000) / elapsedMs,
      megabytesPerSecond: (acked * o.payloadBytes * 1000) / elapsedMs / 1e6,
      sendLatency: summarize(histogram),
    };
  } finally {
    await client.close();
  }
}

export interface ConsumeLoadOptions {
  serviceUrl: string;
  topic: string;
  subscription: string;
  subscriptionType: SubscriptionType;
  initialPosition: 'earliest' | 'latest';
  durationMs: number;
  messagesMax: number;
  receiverQueueSize?: number;
  /** Resolves once the consumer is subscribed, so a producer can start after it. */
  onReady?: () => void;
  onProgress?: (p: { elapsedMs: number; received: number; ratePerSecond: number }) => void;
}

export interface ConsumeLoadResult {
  received: number;
  elapsedMs: number;
  messagesPerSecond: number;
  megabytesPerSecond: number;
  /** From the producer's timestamp in the payload to receipt; meaningful on one machine. */
  endToEndLatency: LatencySummary;
}

export async function runConsumeLoad(o: ConsumeLoadOptions): Promise<ConsumeLoadResult> {
  const client = new AdmqClient({ serviceUrl: o.serviceUrl });
  const histogram = newHistogram();
  let consumer: AdmqConsumer | undefined;
  try {
    consumer = await client.subscribe({
      topic: o.topic,
      subscription: o.subscription,
      subscriptionType: o.subscriptionType,
      initialPosition: o.initialPosition,
      receiverQueueSize: o.receiverQueueSize ?? 2000,
    });
    o.onReady?.();
    const started = performance.now();
    const deadline = started + o.durationMs;
    let received = 0;
    let bytes = 0;
    let lastReport = started;
    let lastReceived = 0;
    let firstAt: number | undefined;
    while (received < o.messagesMax) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      let message;
      try {
        message = await consumer.receive(Math.ceil(left));
      } catch {
        break;
      }
      firstAt ??= performance.now();
      received++;
      bytes += message.payload.length;
      const sentAt = message.payload.length >= 8 ? message.payload.readDoubleBE(0) : 0;
      if (sentAt > 0) histogram.recordValue(Math.max(1, nowMicros() - sentAt));
      // Cumulative acks are cheap; shared subscriptions must ack individually.
      if (o.subscriptionType === 'shared' || o.subscriptionType === 'key_shared') consumer.ack(message);
      else if (received % 100 === 0 || received === o.messagesMax) consumer.ackCumulative(message);
      const now = performance.now();
      if (o.onProgress && now - lastReport >= 1000) {
        o.onProgress({ elapsedMs: now - started, received, ratePerSecond: ((received - lastReceived) * 1000) / (now - lastReport) });
        lastReport = now;
        lastReceived = received;
      }
    }
    const elapsedMs = performance.now() - (firstAt ?? started);
    return {
      received,
      elapsedMs,
      messagesPerSecond: (received * 1000) / Math.max(1, elapsedMs),
      megabytesPerSecond: (bytes * 1000) / Math.max(1, elapsedMs) / 1e6,
      endToEndLatency: summarize(histogram),
    };
  } finally {
    await client.close();
  }
}
