// One link: ships a topic's entries from this region to one remote region.
//
// States: starting → connecting → connected, and backing-off after any failure, until
// stopped. The durable cursor (`ackedOffset`) advances only when the remote has
// acknowledged a batch, which it does only after committing it; on every (re)connection
// the remote states its per-origin high-water marks and entries it already holds are
// skipped. Together: exactly once into the remote's log across reconnects and crashes.
import type * as grpc from '@grpc/grpc-js';
import * as hdr from 'hdr-histogram-js';
import { SpanKind, endSpans, startMessageSpan, type Span, type Tracer } from '../observability/tracing.ts';
import { backoffMs, lingerMs, replicationDelayMs, selectEntries, type LinkState } from './decisions.ts';
import type { LogEntry, ReplicationLog } from './log.ts';
import { encodeBatchRequest } from './batch-codec.ts';
import { frontiersToWire } from './wire.ts';

export interface LinkOptions {
  topic: string;
  local: string;
  remote: string;
  log: ReplicationLog;
  /** Opens a stream to the remote region: to node `node` when given (a redirect), else to an entry node. */
  openStream: (node?: string) => grpc.ClientDuplexStream<unknown, unknown>;
  routes: (origin: string) => boolean;
  remoteMayHold: boolean;
  nowMs: () => number;
  random: () => number;
  logLine: (line: string) => void;
  batchEntriesMax: number;
  batchBytesMax: number;
  inflightBatchesMax: number;
  inflightEntriesMax: number;
  inflightBytesMax: number;
  /** How often the acked frontiers of the topic's subscriptions are sent (when changed), in ms. */
  subscriptionSyncIntervalMs: number;
  /** How often an idle link sends a heartbeat with its watermarks, in ms. */
  heartbeatIntervalMs: number;
  /** How long new entries may wait to join a batch while others are in flight, in ms. */
  batchLingerMs: number;
  /** Consecutive failures after which a clock-skew alert is raised (metric). */
  /** Traced entries (a `traceparent` property) get a replicate span each. */
  tracer?: Tracer;
}

interface Inflight {
  batchId: number;
  /** Spans of the traced entries in the batch, ended at the ack. */
  spans?: Span[];
  endOffset: number;
  entries: number;
  bytes: number;
  publishTimes: number[];
}

export interface LinkStatus {
  topic: string;
  from: string;
  to: string;
  state: LinkState;
  ackedOffset: number;
  tail: number;
  backlogEntries: number;
  backlogBytesEstimate: number;
  replicationDelayMs: number;
  delayHistogramMs: { p50: number; p99: number; max: number; count: number };
  throughputEntriesPerSecond: number;
  entriesShipped: number;
  bytesShipped: number;
  duplicatesAtRemote: number;
  residencyBlocked: number;
  reconnects: number;
  clockSkewRefusals: number;
  clockSkewAlert: boolean;
  lastError: string | undefined;
  /** The remote's HLC watermark per origin: every entry from that origin with HLC ≤ it is durable there. */
  watermarks: Record<string, string>;
}

/** Entries passed over (origins routed elsewhere) per step of a link's pump. */
const SKIP_SCAN_ENTRIES = 20_000;

export class LinkSender {
  state: LinkState = 'starting';
  #stream: grpc.ClientDuplexStream<unknown, unknown> | undefined;
  #ackedOffset: number;
  #sentOffset: number;
  #marks = new Map<string, number>();
  #inflight: Inflight[] = [];
  #batchId = 0;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: () => void;
  #lastContactMs: number | undefined;
  readonly #startedMs: number;
  readonly #histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 86_400_000, numberOfSignificantValueDigits: 2, useWebAssembly: false });
  #rate = { count: 0, atMs: 0, value: 0 };
  #stats = { entriesShipped: 0, bytesShipped: 0, duplicatesAtRemote: 0, residencyBlocked: 0, reconnects: 0, clockSkewRefusals: 0, consecutiveSkew: 0 };
  #lastError: string | undefined;
  #watermarks = new Map<string, string>();
  #pumping = false;
  #syncTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #lingerTimer: NodeJS.Timeout | undefined;
  /** When the last batch went out (performance.now()), for the linger. */
  #lastBatchAtMs = -Infinity;
  /** Set when a batch went out in this event-loop turn: the next batch waits for it. */
  #nextTurn: NodeJS.Immediate | undefined;
  /** The node a remote cluster named as the topic's server (ADMQ_ERR_TOPIC_MOVED), for the next connection. */
  #redirect: string | undefined;
  /** The node the current stream was opened to (undefined: an entry node). */
  #target: string | undefined;
  #redirectsInARow = 0;
  /** While the link is down: the offset of an entry it must ship, where passing over stops. */
  #downBlockedAt = -1;
  /** The frontiers last sent on this stream, to send only changes. */
  #lastSync = '';
  /** Origins whose entries reach the remote over another link. */
  readonly #notRouted = (origin: string): boolean => !this.o.routes(origin);

  constructor(private readonly o: LinkOptions) {
    this.#ackedOffset = o.log.loadCursor(o.topic, o.remote);
    this.#sentOffset = this.#ackedOffset;
    this.#startedMs = o.nowMs();
    this.#unsubscribe = o.log.onAppend(o.topic, () => this.#schedulePump());
  }

  get topic(): string {
    return this.o.topic;
  }

  get remote(): string {
    return this.o.remote;
  }

  #tag(): string {
    return `[${this.o.topic}][${this.o.local} --> ${this.o.remote}]`;
  }

  start(): void {
    if (this.state !== 'starting') return;
    this.#connect();
    this.#syncTimer = setInterval(() => this.#syncSubscriptions(), this.o.subscriptionSyncIntervalMs);
    this.#syncTimer.unref();
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), this.o.heartbeatIntervalMs);
    this.#heartbeatTimer.unref();
  }

  #connect(): void {
    if (this.state === 'stopped') return;
    this.state = 'connecting';
    const stream = this.o.openStream(this.#target);
    this.#stream = stream;
    stream.on('data', (response: { response?: string; marks?: { highWater: Record<string, string> }; ack?: { batchId: string; appended: number; duplicates: number; watermarks: Record<string, string> }; error?: { code: string; message: string; owner?: string } }) => {
      if (stream !== this.#stream) return;
      this.#lastContactMs = this.o.nowMs();
      switch (response.response) {
        case 'marks':
          this.#marks = new Map(Object.entries(response.marks?.highWater ?? {}).map(([k, v]) => [k, Number(v)]));
          this.state = 'connected';
          this.#attempt = 0;
          this.#redirectsInARow = 0;
          this.#stats.consecutiveSkew = 0;
          this.o.logLine(`${this.#tag()} connected; resuming from local offset ${this.#ackedOffset}, remote marks ${JSON.stringify(Object.fromEntries(this.#marks))}`);
          this.#sentOffset = this.#ackedOffset;
          this.#inflight = [];
          this.#lastSync = '';
          this.#pump();
          this.#syncSubscriptions();
          return;
        case 'ack':
          this.#onAck(Number(response.ack?.batchId), response.ack?.duplicates ?? 0, response.ack?.watermarks ?? {});
          return;
        case 'error': {
          const code = response.error?.code ?? 'unknown';
          this.#lastError = `${code}: ${response.error?.message ?? ''}`;
          if (code === 'ADMQ_ERR_TOPIC_MOVED' && response.error?.owner) this.#redirect = response.error.owner;
          if (code === 'ADMQ_ERR_CLOCK_SKEW') {
            this.#stats.clockSkewRefusals++;
            this.#stats.consecutiveSkew++;
          }
          this.o.logLine(`${this.#tag()} refused by remote: ${this.#lastError}`);
          this.#fail(stream);
          return;
        }
      }
    });
    stream.on('error', (error: Error) => {
      if (stream !== this.#stream) return;
      this.#lastError = error.message;
      this.#fail(stream);
    });
    stream.on('end', () => {
      if (stream === this.#stream) this.#fail(stream);
    });
    const shape = this.o.log.topicShape(this.o.topic);
    const parent = shape.partitionOf;
    stream.write({ hello: { fromRegion: this.o.local, topic: this.o.topic, parentTopic: parent?.parent ?? '', parentPartitions: parent?.partitions ?? 0, keyed: shape.keyed === true } });
  }

  #fail(stream: grpc.ClientDuplexStream<unknown, unknown>): void {
    if (stream !== this.#stream || this.state === 'stopped') return;
    this.#stream = undefined;
    stream.cancel();
    // The entries go again after the reconnection, in new spans; these end as failed.
    for (const batch of this.#inflight) if (batch.spans) endSpans(batch.spans, this.#lastError ?? 'link down');
    this.#inflight = [];
    this.#sentOffset = this.#ackedOffset;
    this.state = 'backing-off';
    this.#stats.reconnects++;
    // A redirect goes to the named node at once, unless redirects go round in circles (a
    // stale view of ownership somewhere): then it backs off like any failure. Any other
    // failure starts again from an entry node.
    this.#target = this.#redirect;
    this.#redirect = undefined;
    const immediate = this.#target !== undefined && this.#redirectsInARow++ === 0;
    if (this.#target === undefined) this.#redirectsInARow = 0;
    const delay = immediate ? 0 : backoffMs(this.#attempt++, this.o.random());
    this.o.logLine(`${this.#tag()} link down (${this.#lastError ?? 'closed'}); retrying in ${delay} ms`);
    this.#timer = setTimeout(() => this.#connect(), delay);
    this.#pump();
  }

  /**
   * The remote is reachable again (its channel became ready): a link backing off tries now
   * rather than at the end of its backoff, so catch-up starts as soon as the region is back.
   */
  retryNow(): void {
    if (this.state !== 'backing-off') return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#connect();
  }

  /** New entries: shipped at once, or after the linger (decisions.ts). */
  #schedulePump(): void {
    const wait = lingerMs({ inflightBatches: this.#inflight.length, lastBatchAtMs: this.#lastBatchAtMs, nowMs: performance.now(), batchLingerMs: this.o.batchLingerMs });
    if (wait <= 0) {
      this.#pump();
      return;
    }
    if (this.#lingerTimer) return;
    this.#lingerTimer = setTimeout(() => {
      this.#lingerTimer = undefined;
      this.#pump();
    }, wait);
  }

  #pump(): void {
    if (this.#pumping || this.state === 'stopped') return;
    this.#pumping = true;
    try {
      const tail = this.o.log.tail(this.o.topic);
      while (this.#sentOffset < tail) {
        // One batch per event-loop turn: its bytes leave (grpc-js and the socket write
        // after this turn) while the next one is read and encoded, and acks and other
        // links get their turn. Filling a 16 MiB window in one go kept the first byte of
        // a catch-up on this side for a quarter of a second. The turn after a batch
        // pumps again.
        if (this.#nextTurn) break;
        // A link that is down ships nothing, but passes over all the same (below), up to
        // the first entry it must ship; that entry is not looked at again until it is up.
        const stream = this.state === 'connected' ? this.#stream : undefined;
        if (stream ? !this.#windowOpen() : this.#sentOffset === this.#downBlockedAt) break;
        // Entries of origins that reach the remote by another path (a full mesh: every
        // origin but this region) are passed over without being decoded. A region that
        // received a long backlog from a peer otherwise decoded all of it, on reconnecting
        // to a third region, only to ship none of it; and a link that is down passes over
        // them as they arrive, so that the scan is done before the remote is back, not on
        // the cores its catch-up needs.
        const passed = this.o.log.skipOrigins(this.o.topic, this.#sentOffset, SKIP_SCAN_ENTRIES, this.#notRouted);
        if (passed > this.#sentOffset) {
          // A long stretch is passed over in steps, a turn each, like batches.
          if (passed - this.#sentOffset >= SKIP_SCAN_ENTRIES) this.#schedulePumpNextTurn();
          this.#passOver(passed);
          continue;
        }
        if (!stream) {
          this.#downBlockedAt = this.#sentOffset;
          break;
        }
        const entries = this.o.log.read(this.o.topic, this.#sentOffset, this.o.batchEntriesMax);
        if (entries.length === 0) break;
        let end = this.#sentOffset;
        let bytes = 0;
        const taken: LogEntry[] = [];
        for (const entry of entries) {
          if (taken.length > 0 && bytes + entry.payload.length > this.o.batchBytesMax) break;
          taken.push(entry);
          bytes += entry.payload.length;
          end = entry.offset + 1;
        }
        const selection = selectEntries({ entries: taken, marks: this.#marks, routes: this.o.routes, remoteMayHold: this.o.remoteMayHold });
        if (selection.residencyBlocked > 0) {
          this.#stats.residencyBlocked += selection.residencyBlocked;
          this.o.logLine(`${this.#tag()} AUDIT residency: withheld ${selection.residencyBlocked} entries; ${this.o.remote} may not hold this topic`);
        }
        if (selection.ship.length === 0) {
          this.#passOver(end);
          continue;
        }
        this.#sentOffset = end;
        const batchId = ++this.#batchId;
        const shippedBytes = selection.ship.reduce((n, e) => n + e.payload.length, 0);
        const spans: Span[] = [];
        if (this.o.tracer) {
          for (const e of selection.ship) {
            const span = startMessageSpan(this.o.tracer, `replicate ${this.o.topic} ${this.o.local} --> ${this.o.remote}`, e.properties, SpanKind.PRODUCER, { 'messaging.destination.name': this.o.topic, 'messaging.message.id': `${e.originRegion}:${e.originPosition}`, 'admq.region.from': this.o.local, 'admq.region.to': this.o.remote });
            if (span) spans.push(span);
          }
        }
        this.#inflight.push({ batchId, endOffset: end, entries: selection.ship.length, bytes: shippedBytes, publishTimes: selection.ship.map((e) => e.publishTimeMs), ...(spans.length > 0 && { spans }) });
        stream.write(encodeBatchRequest(batchId, selection.ship));
        this.#lastBatchAtMs = performance.now();
        this.#schedulePumpNextTurn();
      }
    } finally {
      this.#pumping = false;
    }
  }

  #schedulePumpNextTurn(): void {
    if (this.#nextTurn) return;
    this.#nextTurn = setImmediate(() => {
      this.#nextTurn = undefined;
      this.#pump();
    });
  }

  /** Replicated subscriptions: sends the topic's acked frontiers if they changed since the last time. */
  #syncSubscriptions(): void {
    if (this.state !== 'connected' || !this.#stream) return;
    const frontiers = this.o.log.subscriptionFrontiers(this.o.topic);
    const text = JSON.stringify(frontiers);
    if (frontiers.length === 0 || text === this.#lastSync) return;
    this.#lastSync = text;
    this.#stream.write({ subscriptions: { subscriptions: frontiersToWire(frontiers) } });
  }

  /**
   * On an idle link, vouches for watermarks: this region's own, and those of the origins
   * whose entries reach the remote over this link. They are read before the tail, so that
   * every entry they cover is below the tail, and sent only if all of it is acknowledged.
   */
  #heartbeat(): void {
    if (this.state !== 'connected' || !this.#stream || this.#inflight.length > 0) return;
    const watermarks: Record<string, string> = {};
    for (const [origin, hlc] of this.o.log.watermarks(this.o.topic)) {
      if (this.o.routes(origin) && this.o.remoteMayHold) watermarks[origin] = hlc.toString();
    }
    if (this.#ackedOffset < this.o.log.tail(this.o.topic)) return;
    this.#stream.write({ heartbeat: { senderHlc: watermarks[this.o.local] ?? '0', watermarks } });
    for (const [origin, hlc] of Object.entries(watermarks)) this.#watermarks.set(origin, hlc);
  }

  /** Whether another batch may go out: batches, entries and bytes in flight all under their bounds. */
  #windowOpen(): boolean {
    if (this.#inflight.length >= this.o.inflightBatchesMax) return false;
    let entries = 0;
    let bytes = 0;
    for (const batch of this.#inflight) {
      entries += batch.entries;
      bytes += batch.bytes;
    }
    return entries < this.o.inflightEntriesMax && bytes < this.o.inflightBytesMax;
  }

  /** Nothing for this remote up to `end`: the cursor may pass it once earlier batches are acknowledged. */
  #passOver(end: number): void {
    this.#sentOffset = end;
    this.#inflight.push({ batchId: -1, endOffset: end, entries: 0, bytes: 0, publishTimes: [] });
    this.#settleSkips();
  }

  #settleSkips(): void {
    while (this.#inflight[0]?.batchId === -1) {
      const skip = this.#inflight.shift() as Inflight;
      this.#advance(skip.endOffset);
    }
  }

  #advance(offset: number): void {
    if (offset <= this.#ackedOffset) return;
    this.#ackedOffset = offset;
    this.o.log.saveCursor(this.o.topic, this.o.remote, offset);
  }

  #onAck(batchId: number, duplicates: number, watermarks: Record<string, string>): void {
    const head = this.#inflight[0];
    if (!head || head.batchId !== batchId) {
      this.o.logLine(`${this.#tag()} unexpected ack ${batchId}; reconnecting`);
      if (this.#stream) this.#fail(this.#stream);
      return;
    }
    this.#inflight.shift();
    if (head.spans) endSpans(head.spans);
    const now = this.o.nowMs();
    for (const t of head.publishTimes) this.#histogram.recordValue(Math.max(1, now - t));
    this.#stats.entriesShipped += head.entries;
    this.#stats.bytesShipped += head.bytes;
    this.#stats.duplicatesAtRemote += duplicates;
    for (const [origin, hlc] of Object.entries(watermarks)) this.#watermarks.set(origin, String(hlc));
    this.#advance(head.endOffset);
    this.#settleSkips();
    this.#pump();
  }

  /** Starts the delay histogram afresh (benchmarks discard their warm-up this way). */
  resetHistogram(): void {
    this.#histogram.reset();
  }

  status(): LinkStatus {
    const now = this.o.nowMs();
    const tail = this.o.log.tail(this.o.topic);
    const backlog = Math.max(0, tail - this.#ackedOffset);
    const [oldest] = backlog > 0 ? this.o.log.read(this.o.topic, this.#ackedOffset, 1) : [];
    if (now - this.#rate.atMs >= 1000) {
      if (this.#rate.atMs > 0) this.#rate.value = ((this.#stats.entriesShipped - this.#rate.count) * 1000) / (now - this.#rate.atMs);
      this.#rate = { count: this.#stats.entriesShipped, atMs: now, value: this.#rate.value };
    }
    return {
      topic: this.o.topic,
      from: this.o.local,
      to: this.o.remote,
      state: this.state,
      ackedOffset: this.#ackedOffset,
      tail,
      backlogEntries: backlog,
      backlogBytesEstimate: Math.round(backlog * this.o.log.averageEntryBytes(this.o.topic)),
      replicationDelayMs: replicationDelayMs({ state: this.state, nowMs: now, oldestUnackedPublishMs: oldest?.publishTimeMs, lastContactMs: this.#lastContactMs, startedMs: this.#startedMs, staleAfterMs: Math.max(1000, 5 * this.o.heartbeatIntervalMs) }),
      delayHistogramMs: {
        p50: this.#histogram.getValueAtPercentile(50),
        p99: this.#histogram.getValueAtPercentile(99),
        max: this.#histogram.maxValue,
        count: this.#histogram.totalCount,
      },
      throughputEntriesPerSecond: this.#rate.value,
      entriesShipped: this.#stats.entriesShipped,
      bytesShipped: this.#stats.bytesShipped,
      duplicatesAtRemote: this.#stats.duplicatesAtRemote,
      residencyBlocked: this.#stats.residencyBlocked,
      reconnects: this.#stats.reconnects,
      clockSkewRefusals: this.#stats.clockSkewRefusals,
      clockSkewAlert: this.#stats.consecutiveSkew > 0,
      lastError: this.#lastError,
      watermarks: Object.fromEntries(this.#watermarks),
    };
  }

  /** Idempotent. */
  stop(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#syncTimer) clearInterval(this.#syncTimer);
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    if (this.#nextTurn) clearImmediate(this.#nextTurn);
    this.#unsubscribe();
    const stream = this.#stream;
    this.#stream = undefined;
    stream?.cancel();
  }
}
