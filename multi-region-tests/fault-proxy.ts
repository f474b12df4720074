// A fault-injecting TCP proxy for one directed inter-region link. The multi-region tests put
// one in front of every replication endpoint, so that they can delay, throttle, reset and
// partition a link without root privileges (no tc/netem, no iptables) and on any OS.
//
// Everything happens in user space, on timers and queues, so the proxy never blocks the
// event loop. Each connection has two pipes:
//
//   forward:  client → proxy → target   (the bytes the connecting side sends)
//   backward: target → proxy → client   (the answers)
//
// A pipe stamps every chunk with the time it may leave (arrival + one-way delay), keeps the
// chunks in a FIFO, and writes them out in order when their time has come and the link's
// token bucket allows. Its queue is bounded: past `queueBytesMax` the source socket is
// paused, so a slow or delayed link pushes back on the sender through TCP instead of
// growing the proxy's memory.
//
// What TCP can and cannot simulate, and the choices made here:
//
// - Loss. A byte stream cannot lose bytes silently: TCP retransmits, and a proxy that dropped
//   bytes would only corrupt the stream. So `setLoss(p)` models the visible effect of a lossy
//   link instead: every chunk that arrives, in either direction, resets its connection (RST on
//   both sides) with probability p. The draw uses the injected `random`, so a seed replays it.
// - Blackhole. A partition neither closes nor resets anything: data just stops. A blackholed
//   direction pauses its source socket and holds whatever is queued; nothing is dropped, no
//   FIN or RST is sent, and the sender eventually sees its own writes back up, as behind a
//   real partition. A new connection needs both directions to open (SYN, SYN-ACK), so while
//   any direction is blackholed a new connection is accepted locally (the kernel completes the
//   handshake before we can refuse it) but never connected to the target: nothing flows.
// - Heal. A real partition that lasts beyond TCP's retransmission timeouts kills the
//   connections that lived through it, and the peers reconnect. `heal()` makes that prompt and
//   deterministic: it resets (RST) every connection that existed while a blackhole was in
//   force, including the ones accepted during it. Connections that never saw a blackhole are
//   untouched, and data queued behind a delay keeps its delay. This exercises the
//   replicator's reconnect-and-resume path on every heal, instead of leaving it to timing.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export type FaultDirection = 'forward' | 'backward';

export interface FaultProxyOptions {
  /** Address to listen on. Default 127.0.0.1. */
  listenHost?: string;
  /** Port to listen on; 0 (the default) lets the kernel choose one. */
  listenPort?: number;
  /** Where accepted connections are forwarded. */
  targetHost: string;
  targetPort: number;
  /** Tag for error messages, e.g. "shanghai->beijing". Default "host:port" of the target. */
  name?: string;
  /**
   * Uniform random numbers in [0, 1) for the loss draws. Default: a PRNG with a fixed seed,
   * so that a run without an explicit source is still repeatable.
   */
  random?: () => number;
  /**
   * Bytes a pipe may hold (delayed or throttled) before it pauses its source socket.
   * Default 64 MiB. It resumes the source once the queue has drained below half of this.
   */
  queueBytesMax?: number;
}

export interface FaultProxyStats {
  /** Connections currently open (accepted and not yet closed). */
  connections: number;
  /** Bytes written to the target since start. */
  bytesForward: number;
  /** Bytes written back to clients since start. */
  bytesBackward: number;
}

/** A bad option passed to `FaultProxy.start` or a setter. The message names the field. */
export class FaultProxyError extends Error {
  readonly code = 'ADMQ_ERR_FAULT_PROXY_OPTION';
  override readonly name = 'FaultProxyError';
}

const QUEUE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
/** The bucket holds 50 ms worth of tokens, so a burst never beats the cap by much. */
const BUCKET_BURST_MS = 50;
const BUCKET_CAPACITY_MIN_BYTES = 1024;
const DEFAULT_SEED = 0x5eed_f00d;

/**
 * The state every connection of one proxy shares: the faults in force, the token buckets,
 * the counters. Kept apart from FaultProxy so that the public class shows only the API.
 */
class Link {
  readonly connections = new Set<Connection>();
  readonly held = new Set<FaultDirection>();
  readonly buckets = new Map<FaultDirection, TokenBucket>();
  delayMs = 0;
  lossProbability = 0;
  bytesForward = 0;
  bytesBackward = 0;

  constructor(
    readonly random: () => number,
    readonly queueBytesMax: number,
  ) {}

  /** One loss draw; consumes randomness only when loss is on, so seeds stay comparable. */
  drawLoss(): boolean {
    return this.lossProbability > 0 && this.random() < this.lossProbability;
  }

  countWritten(direction: FaultDirection, bytes: number): void {
    if (direction === 'forward') this.bytesForward += bytes;
    else this.bytesBackward += bytes;
  }
}

export class FaultProxy {
  /** The listening port. */
  readonly port: number;
  /** "host:port" to dial instead of the target. */
  readonly address: string;
  readonly name: string;

  readonly #server: Server;
  readonly #link: Link;
  readonly #targetHost: string;
  #targetPort: number;
  #closing: Promise<void> | undefined;

  private constructor(server: Server, port: number, options: FaultProxyOptions) {
    this.#server = server;
    this.port = port;
    this.address = `${options.listenHost ?? '127.0.0.1'}:${port}`;
    this.name = options.name ?? `${options.targetHost}:${options.targetPort}`;
    this.#targetHost = options.targetHost;
    this.#targetPort = options.targetPort;
    this.#link = new Link(options.random ?? seededRandom(DEFAULT_SEED), options.queueBytesMax ?? QUEUE_BYTES_MAX_DEFAULT);
  }

  /** Points new connections at another port of the target host (a restarted target on a new port). */
  retarget(port: number): void {
    if (!isPort(port) || port === 0) throw new FaultProxyError(`[fault-proxy ${this.name}] retarget: port must be an integer in 1..65535, got ${port}`);
    this.#targetPort = port;
  }

  /** Listens, and resolves once the port is bound. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    validateOptions(options);
    // pauseOnConnect: an accepted socket must not read before it has somewhere to send to.
    // allowHalfOpen: a FIN from one side is forwarded as a FIN, and the other side may go on.
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.listenPort ?? 0, options.listenHost ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address();
    if (bound === null || typeof bound === 'string') throw new Error(`[fault-proxy] listening socket has no TCP address: ${String(bound)}`);
    const proxy = new FaultProxy(server, bound.port, options);
    server.on('connection', (socket) => {
      socket.setNoDelay(true);
      proxy.#accept(socket);
    });
    return proxy;
  }

  /**
   * One-way latency added to each direction, so a round trip gains 2 × oneWayMs. A change
   * applies to chunks that arrive afterwards; a shorter delay never lets a chunk overtake
   * one queued before it.
   */
  setDelay(oneWayMs: number): void {
    if (!Number.isFinite(oneWayMs) || oneWayMs < 0) throw new FaultProxyError(`[fault-proxy ${this.name}] setDelay: oneWayMs must be a finite number ≥ 0, got ${oneWayMs}`);
    this.#link.delayMs = oneWayMs;
  }

  /** Caps each direction of the link (all its connections together); undefined lifts the cap. */
  setBandwidth(bytesPerSecond: number | undefined): void {
    if (bytesPerSecond !== undefined && (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0)) {
      throw new FaultProxyError(`[fault-proxy ${this.name}] setBandwidth: bytesPerSecond must be a finite number > 0 or undefined, got ${bytesPerSecond}`);
    }
    this.#link.buckets.clear();
    if (bytesPerSecond !== undefined) {
      const now = performance.now();
      this.#link.buckets.set('forward', new TokenBucket(bytesPerSecond, now));
      this.#link.buckets.set('backward', new TokenBucket(bytesPerSecond, now));
    }
    // Pipes waiting on the old bucket's schedule re-plan against the new one.
    for (const connection of this.#link.connections) connection.pump();
  }

  /** Each chunk that arrives resets its connection with this probability (see the file comment). */
  setLoss(probability: number): void {
    if (!(probability >= 0 && probability <= 1)) throw new FaultProxyError(`[fault-proxy ${this.name}] setLoss: probability must be in [0, 1], got ${probability}`);
    this.#link.lossProbability = probability;
  }

  /** Stops data in the given direction(s), for existing and new connections, until heal(). */
  blackhole(direction: 'both' | FaultDirection): void {
    if (direction !== 'both' && direction !== 'forward' && direction !== 'backward') {
      throw new FaultProxyError(`[fault-proxy ${this.name}] blackhole: direction must be 'both', 'forward' or 'backward', got ${String(direction)}`);
    }
    if (direction === 'both' || direction === 'forward') this.#link.held.add('forward');
    if (direction === 'both' || direction === 'backward') this.#link.held.add('backward');
    for (const connection of this.#link.connections) {
      connection.sawBlackhole = true;
      connection.updateFlow();
    }
  }

  /** Lifts blackholes and loss, and resets the connections that lived through a blackhole. */
  heal(): void {
    this.#link.held.clear();
    this.#link.lossProbability = 0;
    for (const connection of [...this.#link.connections]) {
      if (connection.sawBlackhole) connection.reset();
      else connection.updateFlow();
    }
  }

  /** Resets (RST) every current connection, on both sides. */
  resetAll(): void {
    for (const connection of [...this.#link.connections]) connection.reset();
  }

  stats(): FaultProxyStats {
    return { connections: this.#link.connections.size, bytesForward: this.#link.bytesForward, bytesBackward: this.#link.bytesBackward };
  }

  /** Stops listening and resets every connection. Idempotent: later calls share the first one's promise. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.resetAll();
    });
    return this.#closing;
  }

  #accept(client: Socket): void {
    const connection = new Connection(this.#link, client);
    if (this.#closing !== undefined) {
      connection.reset();
      return;
    }
    if (this.#link.held.size > 0) {
      // The handshake could not have completed across the partition; see the file comment.
      connection.sawBlackhole = true;
      return;
    }
    connection.connectTarget(this.#targetHost, this.#targetPort);
  }
}

/** A client socket, its target socket once connected, and the two pipes between them. */
class Connection {
  sawBlackhole = false;
  #closed = false;
  #target: Socket | undefined;
  #forward: Pipe | undefined;
  #backward: Pipe | undefined;
  #socketsOpen = 1;

  constructor(
    readonly link: Link,
    readonly client: Socket,
  ) {
    link.connections.add(this);
    // A socket error on either side ends the whole connection abruptly, as it would end a
    // direct TCP connection: the other side sees a reset, not a clean close.
    client.on('error', () => this.reset());
    client.on('close', () => this.#socketClosed());
  }

  connectTarget(host: string, port: number): void {
    // No Nagle on either leg: the proxy adds exactly the delay it is told to, not the
    // 40 ms of Nagle's algorithm meeting delayed ACKs on small frames.
    const target = connect({ host, port, allowHalfOpen: true, noDelay: true });
    this.#target = target;
    this.#socketsOpen++;
    target.on('error', () => this.reset());
    target.on('close', () => this.#socketClosed());
    target.once('connect', () => {
      if (this.#closed) return;
      this.#forward = new Pipe(this, 'forward', this.client, target);
      this.#backward = new Pipe(this, 'backward', target, this.client);
      this.updateFlow();
    });
  }

  /** Pauses or resumes the sources after a blackhole, heal or queue change. */
  updateFlow(): void {
    this.#forward?.updateFlow();
    this.#backward?.updateFlow();
  }

  pump(): void {
    this.#forward?.pump();
    this.#backward?.pump();
  }

  /** Destroys both sockets with RST, drops what is queued, and forgets the connection. */
  reset(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#forward?.stop();
    this.#backward?.stop();
    resetSocket(this.client);
    if (this.#target !== undefined) resetSocket(this.#target);
    this.link.connections.delete(this);
  }

  #socketClosed(): void {
    this.#socketsOpen--;
    if (this.#socketsOpen === 0) {
      this.#closed = true;
      this.link.connections.delete(this);
    }
  }
}

interface QueuedChunk {
  data: Buffer;
  /** How much of `data` has been written already (the bucket may split a chunk). */
  written: number;
  /** performance.now() time before which the chunk must not leave. */
  dueMs: number;
}

/** One direction of one connection: a delayed, throttled, bounded FIFO of chunks. */
class Pipe {
  readonly #queue: QueuedChunk[] = [];
  #queueHead = 0;
  #queuedBytes = 0;
  #lastDueMs = 0;
  #pausedForQueue = false;
  #sourcePaused = true;
  #destBlocked = false;
  #sourceEnded = false;
  #sourceClosed = false;
  #endSent = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly connection: Connection,
    readonly direction: FaultDirection,
    readonly source: Socket,
    readonly dest: Socket,
  ) {
    source.on('data', (chunk: Buffer) => this.#onData(chunk));
    source.on('end', () => {
      this.#sourceEnded = true;
      this.pump();
    });
    source.on('close', () => {
      // Whatever the source sent is already queued; once it is out, the far side gets a FIN
      // and, as the source can no longer receive either, is closed.
      this.#sourceEnded = true;
      this.#sourceClosed = true;
      this.pump();
      this.#destroyDestIfFinished();
    });
    // Attaching 'data' switched the source to flowing mode; updateFlow decides for real.
    source.pause();
  }

  updateFlow(): void {
    if (this.#stopped) return;
    const shouldPause = this.#pausedForQueue || this.connection.link.held.has(this.direction);
    if (shouldPause !== this.#sourcePaused) {
      this.#sourcePaused = shouldPause;
      if (shouldPause) this.source.pause();
      else this.source.resume();
    }
    this.pump();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
    this.#queueHead = 0;
    this.#queuedBytes = 0;
  }

  /** Writes every chunk whose time has come, in order, then plans the next wake-up. */
  pump(): void {
    if (this.#stopped) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const link = this.connection.link;
    if (this.dest.destroyed) {
      this.#dropQueue();
      return;
    }
    // The loop ends: every turn either writes and removes (part of) a chunk, or returns.
    while (this.#queueHead < this.#queue.length) {
      if (link.held.has(this.direction) || this.#destBlocked) return;
      const head = this.#queue[this.#queueHead] as QueuedChunk;
      const now = performance.now();
      // Timers may fire a little early against performance.now(); the delay is a promise.
      if (head.dueMs > now) {
        this.#wakeAfter(head.dueMs - now);
        return;
      }
      const remaining = head.data.length - head.written;
      let bytes = remaining;
      const bucket = link.buckets.get(this.direction);
      if (bucket !== undefined) {
        bytes = Math.min(remaining, bucket.capacityBytes);
        const waitMs = bucket.take(bytes, now);
        if (waitMs > 0) {
          this.#wakeAfter(waitMs);
          return;
        }
      }
      const slice = head.data.subarray(head.written, head.written + bytes);
      head.written += bytes;
      this.#queuedBytes -= bytes;
      if (head.written === head.data.length) this.#shift();
      link.countWritten(this.direction, bytes);
      if (!this.dest.write(slice)) {
        this.#destBlocked = true;
        this.dest.once('drain', () => {
          this.#destBlocked = false;
          this.pump();
        });
      }
      this.#checkQueueBound();
    }
    if (this.#sourceEnded && !this.#endSent && !link.held.has(this.direction)) {
      this.#endSent = true;
      this.dest.end(() => this.#destroyDestIfFinished());
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#stopped) return;
    if (this.connection.link.drawLoss()) {
      this.connection.reset();
      return;
    }
    // Never earlier than the chunk before it: order within a direction is kept even when
    // the delay shrinks between two chunks.
    const dueMs = Math.max(performance.now() + this.connection.link.delayMs, this.#lastDueMs);
    this.#lastDueMs = dueMs;
    this.#queue.push({ data: chunk, written: 0, dueMs });
    this.#queuedBytes += chunk.length;
    this.#checkQueueBound();
    this.pump();
  }

  /** Pauses the source above queueBytesMax, resumes it below half: backpressure with hysteresis. */
  #checkQueueBound(): void {
    const max = this.connection.link.queueBytesMax;
    const pause = this.#pausedForQueue ? this.#queuedBytes > max / 2 : this.#queuedBytes > max;
    if (pause !== this.#pausedForQueue) {
      this.#pausedForQueue = pause;
      this.updateFlow();
    }
  }

  #shift(): void {
    this.#queueHead++;
    // Compact now and then, so the array does not grow with everything ever queued.
    if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#queueHead);
      this.#queueHead = 0;
    }
  }

  #dropQueue(): void {
    this.#queue.length = 0;
    this.#queueHead = 0;
    this.#queuedBytes = 0;
    this.#checkQueueBound();
  }

  #wakeAfter(ms: number): void {
    // At least 1 ms: a zero timer against a not-yet-due chunk would spin.
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.pump();
    }, Math.max(1, Math.ceil(ms)));
  }

  #destroyDestIfFinished(): void {
    if (this.#sourceClosed && this.#endSent && this.dest.writableFinished && !this.dest.destroyed) this.dest.destroy();
  }
}

/** Tokens are bytes; they accrue at `rateBytesPerSecond` up to a 50 ms burst. */
class TokenBucket {
  readonly capacityBytes: number;
  #tokens: number;
  #lastMs: number;

  constructor(
    readonly rateBytesPerSecond: number,
    nowMs: number,
  ) {
    this.capacityBytes = Math.max(BUCKET_CAPACITY_MIN_BYTES, Math.floor((rateBytesPerSecond * BUCKET_BURST_MS) / 1000));
    this.#tokens = this.capacityBytes;
    this.#lastMs = nowMs;
  }

  /** Takes `bytes` (≤ capacity) and returns 0, or returns how many ms to wait before asking again. */
  take(bytes: number, nowMs: number): number {
    this.#tokens = Math.min(this.capacityBytes, this.#tokens + ((nowMs - this.#lastMs) * this.rateBytesPerSecond) / 1000);
    this.#lastMs = nowMs;
    if (this.#tokens >= bytes) {
      this.#tokens -= bytes;
      return 0;
    }
    return ((bytes - this.#tokens) * 1000) / this.rateBytesPerSecond;
  }
}

/** RST rather than FIN: a reset is what a peer sees when a link or a middlebox gives up. */
function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    // A socket that never got a TCP handle (still resolving) cannot send RST; just drop it.
    socket.destroy();
  }
}

function validateOptions(options: FaultProxyOptions): void {
  const fail = (message: string): never => {
    throw new FaultProxyError(`[fault-proxy] ${message}`);
  };
  if (typeof options.targetHost !== 'string' || options.targetHost === '') fail(`targetHost must be a non-empty string, got ${String(options.targetHost)}`);
  if (!isPort(options.targetPort) || options.targetPort === 0) fail(`targetPort must be an integer in 1..65535, got ${options.targetPort}`);
  if (options.listenPort !== undefined && !isPort(options.listenPort)) fail(`listenPort must be an integer in 0..65535, got ${options.listenPort}`);
  if (options.listenHost !== undefined && (typeof options.listenHost !== 'string' || options.listenHost === '')) fail(`listenHost must be a non-empty string, got ${String(options.listenHost)}`);
  if (options.random !== undefined && typeof options.random !== 'function') fail('random must be a function returning numbers in [0, 1)');
  if (options.queueBytesMax !== undefined && !(Number.isSafeInteger(options.queueBytesMax) && options.queueBytesMax > 0)) fail(`queueBytesMax must be a positive integer (bytes), got ${options.queueBytesMax}`);
}

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 65535;
}

/** mulberry32: small, fast, and good enough for fault draws; the same seed gives the same faults. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
