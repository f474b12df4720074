// The client side of a storage node (proto/storage-node.proto): StorageNodeClient, a
// StorageNodeConnection over one gRPC channel, and StorageNodeDirectory, the region's live
// registry of storage nodes with a cached client per node.
//
// Every failure is a StorageNodeError. A node that goes away is noticed by the stream
// breaking (connection reset or refused), which fails every request on it at once with
// ADMQ_ERR_STORAGE_UNAVAILABLE, instead of leaving them to their deadlines; the deadline
// (5 s by default) covers a node that hangs without dropping the connection.
import * as grpc from '@grpc/grpc-js';
import { ERROR_CODE_METADATA_KEY } from '../../proto/index.ts';
import type { MetadataStore, WatchEvent } from '../metadata-store/store.ts';
import { MetadataKeys, type StorageNodeConnection, type StorageNodeInfo } from './ledger-types.ts';
import { StorageNodeConfigError, StorageNodeError, isStorageNodeErrorCode } from './storage-node-errors.ts';
import { LEDGER_ID_MAX, SESSION_PATH, decodeResponse, encodeRequest, type StorageRequest, type StorageResponse } from './storage-node-wire.ts';

export interface StorageNodeClientOptions {
  /** Deadline of each request, from the call until the answer, in ms (waiting for a slot included). Default 5,000. */
  requestTimeoutMs?: number;
  /** Requests on the wire at once; later ones wait, in order, for a slot. Default 1,024. */
  inFlightMax?: number;
  /** Largest gRPC message sent or accepted, in bytes (the node's own limit must be as large). Default 64 MiB. */
  messageBytesMax?: number;
}

/** Interval and timeout of the keepalive pings to a storage node, ms. */
export const STORAGE_NODE_KEEPALIVE_MS = 1000;

export const STORAGE_NODE_CLIENT_DEFAULTS = {
  requestTimeoutMs: 5000,
  inFlightMax: 1024,
  messageBytesMax: 64 * 1024 * 1024,
} as const;

/** Room for the request's own fields next to a payload inside messageBytesMax. */
const ENVELOPE_BYTES_MAX = 1024;

function validateClientOptions(options: StorageNodeClientOptions): Required<StorageNodeClientOptions> {
  const out = { ...STORAGE_NODE_CLIENT_DEFAULTS, ...options };
  for (const [field, min] of [
    ['requestTimeoutMs', 1],
    ['inFlightMax', 1],
    ['messageBytesMax', 2 * ENVELOPE_BYTES_MAX],
  ] as const) {
    const value = out[field];
    if (!Number.isInteger(value) || value < min) throw new StorageNodeConfigError(`storage node client option ${field} must be an integer >= ${min}; got ${String(value)}`);
  }
  return out;
}

type Unnumbered<T> = T extends unknown ? Omit<T, 'requestId'> : never;

interface Session {
  call: grpc.ClientDuplexStream<Buffer, Buffer>;
  /** Answers received so far: a deadline that passes with none since its request was sent means the stream is stuck. */
  answers: number;
}

interface Pending {
  id: number;
  frame: Buffer;
  resolve: (response: StorageResponse) => void;
  reject: (error: StorageNodeError) => void;
  timer: NodeJS.Timeout;
  /** The stream it was written to (undefined while waiting for a slot). */
  session: Session | undefined;
  answersAtSend: number;
  settled: boolean;
}

const identity = (value: Buffer): Buffer => value;

export class StorageNodeClient implements StorageNodeConnection {
  readonly #client: grpc.Client;
  readonly #options: Required<StorageNodeClientOptions>;
  /** Requests on the wire, by request id. */
  readonly #pending = new Map<number, Pending>();
  /** Requests waiting for a slot, oldest first (`#waitingHead` skips the ones taken). */
  #waiting: Pending[] = [];
  #waitingHead = 0;
  #session: Session | undefined;
  #nextId = 1;
  #closed = false;

  constructor(
    readonly nodeId: string,
    readonly address: string,
    options: StorageNodeClientOptions = {},
  ) {
    this.#options = validateClientOptions(options);
    this.#client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': this.#options.messageBytesMax,
      'grpc.max_receive_message_length': this.#options.messageBytesMax,
      // The HTTP/2 default of 64 KiB per window would cap a client's adds per second.
      'grpc-node.flow_control_window': 16 * 1024 * 1024,
      // A node cut off silently (no reset, no close) is noticed by missed pings within about
      // two seconds, not at the next request's deadline: its pending adds fail at once and
      // the ledger writer moves to another node.
      'grpc.keepalive_time_ms': STORAGE_NODE_KEEPALIVE_MS,
      'grpc.keepalive_timeout_ms': STORAGE_NODE_KEEPALIVE_MS,
      'grpc.keepalive_permit_without_calls': 1,
    });
  }

  /** Requests on the wire now (at most `inFlightMax`). */
  get inFlight(): number {
    return this.#pending.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async add(ledgerId: number, entryId: number, lac: number, payload: Buffer, writer: string): Promise<void> {
    expect(await this.#request({ op: 'add', ledgerId, entryId, lac, payload, writer }), 'done');
  }

  async read(ledgerId: number, entryId: number): Promise<Buffer> {
    return expect(await this.#request({ op: 'read', ledgerId, entryId }), 'entry').payload;
  }

  async readLac(ledgerId: number): Promise<{ lac: number; last: number; fenced: boolean }> {
    const { lac, last, fenced } = expect(await this.#request({ op: 'readLac', ledgerId }), 'state');
    return { lac, last, fenced };
  }

  async fence(ledgerId: number): Promise<{ lac: number; last: number }> {
    const { lac, last } = expect(await this.#request({ op: 'fence', ledgerId }), 'state');
    return { lac, last };
  }

  async restore(ledgerId: number, entryId: number, payload: Buffer): Promise<void> {
    expect(await this.#request({ op: 'restore', ledgerId, entryId, payload }), 'done');
  }

  /** Fails every request not answered yet with ADMQ_ERR_STORAGE_UNAVAILABLE and closes the channel. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = new StorageNodeError('ADMQ_ERR_STORAGE_UNAVAILABLE', `the client of storage node ${this.nodeId} was closed`);
    for (let i = this.#waitingHead; i < this.#waiting.length; i++) this.#settle(this.#waiting[i] as Pending, error);
    this.#waiting = [];
    this.#waitingHead = 0;
    for (const p of [...this.#pending.values()]) this.#settle(p, error);
    this.#session?.call.cancel();
    this.#session = undefined;
    this.#client.close();
  }

  // ---- requests -------------------------------------------------------------------------

  #request(request: Unnumbered<StorageRequest>): Promise<StorageResponse> {
    if (this.#closed) return Promise.reject(new StorageNodeError('ADMQ_ERR_STORAGE_UNAVAILABLE', `the client of storage node ${this.nodeId} is closed`));
    const invalid = invalidArguments(request);
    if (invalid) return Promise.reject(new StorageNodeError('ADMQ_ERR_BAD_REQUEST', `${request.op}: ${invalid}`));
    const payloadBytes = 'payload' in request ? request.payload.length : 0;
    if (payloadBytes > this.#options.messageBytesMax - ENVELOPE_BYTES_MAX) {
      // Refused here: an oversized message would fail the whole stream, not just this request.
      return Promise.reject(new StorageNodeError('ADMQ_ERR_BAD_REQUEST', `payload of ${payloadBytes} bytes exceeds messageBytesMax ${this.#options.messageBytesMax} less ${ENVELOPE_BYTES_MAX}`));
    }
    const id = this.#nextId++;
    let frame: Buffer;
    try {
      frame = encodeRequest({ ...request, requestId: id } as StorageRequest);
    } catch (error) {
      return Promise.reject(new StorageNodeError('ADMQ_ERR_BAD_REQUEST', `cannot encode ${request.op}: ${(error as Error).message}`));
    }
    return new Promise<StorageResponse>((resolve, reject) => {
      const p: Pending = { id, frame, resolve, reject, timer: undefined as unknown as NodeJS.Timeout, session: undefined, answersAtSend: 0, settled: false };
      p.timer = setTimeout(() => this.#expire(p), this.#options.requestTimeoutMs);
      if (this.#pending.size < this.#options.inFlightMax && this.#waitingHead === this.#waiting.length) this.#send(p);
      else this.#waiting.push(p);
    });
  }

  #send(p: Pending): void {
    const session = this.#ensureSession();
    p.session = session;
    p.answersAtSend = session.answers;
    this.#pending.set(p.id, p);
    // The return value is HTTP/2 backpressure; the in-flight bound already limits what is buffered.
    session.call.write(p.frame);
  }

  /** Moves waiting requests onto the wire while there are free slots. */
  #pump(): void {
    while (this.#waitingHead < this.#waiting.length && this.#pending.size < this.#options.inFlightMax && !this.#closed) {
      const p = this.#waiting[this.#waitingHead++] as Pending;
      if (!p.settled) this.#send(p);
    }
    if (this.#waitingHead === this.#waiting.length) {
      this.#waiting = [];
      this.#waitingHead = 0;
    } else if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#waitingHead);
      this.#waitingHead = 0;
    }
  }

  #settle(p: Pending, outcome: StorageResponse | StorageNodeError): void {
    if (p.settled) return;
    p.settled = true;
    clearTimeout(p.timer);
    if (p.session) this.#pending.delete(p.id);
    if (outcome instanceof StorageNodeError) p.reject(outcome);
    else p.resolve(outcome);
  }

  #expire(p: Pending): void {
    if (p.settled) return;
    const session = p.session;
    this.#settle(p, new StorageNodeError('ADMQ_ERR_STORAGE_UNAVAILABLE', `storage node ${this.nodeId} (${this.address}) did not answer within ${this.#options.requestTimeoutMs} ms`));
    // No answer at all on the stream since this request was sent: the connection is stuck
    // (a node that hangs, or a silent partition). Drop the stream so that what follows goes
    // on a new one, which fails fast if the node is gone.
    if (session && session === this.#session && session.answers === p.answersAtSend) {
      this.#broken(session, new StorageNodeError('ADMQ_ERR_STORAGE_UNAVAILABLE', `storage node ${this.nodeId} (${this.address}) stopped answering`));
      session.call.cancel();
    }
    this.#pump();
  }

  // ---- the stream -----------------------------------------------------------------------

  #ensureSession(): Session {
    if (this.#session) return this.#session;
    const call = this.#client.makeBidiStreamRequest<Buffer, Buffer>(SESSION_PATH, identity, identity);
    const session: Session = { call, answers: 0 };
    this.#session = session;
    call.on('data', (frame: Buffer) => this.#onAnswer(session, frame));
    call.on('error', (error: grpc.ServiceError) => this.#broken(session, errorFromStatus(error, this.nodeId, this.address)));
    // A stream the node ends without an error (it should not) is broken all the same.
    call.on('status', (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) this.#broken(session, new StorageNodeError('ADMQ_ERR_STORAGE_UNAVAILABLE', `storage node ${this.nodeId} ended the stream`));
    });
    return session;
  }

  #onAnswer(session: Session, frame: Buffer): void {
    session.answers++;
    let response: StorageResponse;
    try {
      response = decodeResponse(frame);
    } catch (error) {
      this.#broken(session, new StorageNodeError('ADMQ_ERR_STORAGE', `storage node ${this.nodeId} sent a malformed answer: ${(error as Error).message}`));
      session.call.cancel();
      return;
    }
    // An unknown id is the answer to a request that already timed out (or, with id 0, a
    // frame the node could not read, which this client never sends): nothing waits for it.
    const p = this.#pending.get(response.requestId);
    if (!p) return;
    this.#settle(p, response.result === 'error' ? StorageNodeError.parse(response.code, response.message) : response);
    this.#pump();
  }

  /** Fails every request on the stream with `error`; the next request opens a new stream. */
  #broken(session: Session, error: StorageNodeError): void {
    if (this.#session !== session) return;
    this.#session = undefined;
    for (const p of [...this.#pending.values()]) if (p.session === session) this.#settle(p, error);
    this.#pump();
  }
}

/** What the wire cannot carry, refused before it is encoded (the node checks the rest). */
function invalidArguments(request: Unnumbered<StorageRequest>): string | undefined {
  if (!Number.isInteger(request.ledgerId) || request.ledgerId < 0 || request.ledgerId > LEDGER_ID_MAX) return `ledgerId must be an integer in 0..${LEDGER_ID_MAX}; got ${request.ledgerId}`;
  if ('entryId' in request && (!Number.isSafeInteger(request.entryId) || request.entryId < 0)) return `entryId must be a non-negative safe integer; got ${request.entryId}`;
  if ('lac' in request && (!Number.isSafeInteger(request.lac) || request.lac < -1)) return `lac must be an integer >= -1; got ${request.lac}`;
  if ('payload' in request && !Buffer.isBuffer(request.payload)) return 'payload must be a Buffer';
  if ('writer' in request && typeof request.writer !== 'string') return 'writer must be a string';
  return undefined;
}

function errorFromStatus(error: grpc.ServiceError, nodeId: string, address: string): StorageNodeError {
  const code = error.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
  if (isStorageNodeErrorCode(code)) return new StorageNodeError(code, error.details || error.message, { cause: error });
  // Without a code from the node, the failure is the connection's: refused, reset, closed.
  return new StorageNodeError('ADMQ_ERR_STORAGE_UNAVAILABLE', `storage node ${nodeId} (${address}) is unreachable: ${error.details || error.message}`, { cause: error });
}

function expect<R extends StorageResponse['result']>(response: StorageResponse, result: R): Extract<StorageResponse, { result: R }> {
  if (response.result !== result) throw new StorageNodeError('ADMQ_ERR_STORAGE', `expected a ${result} answer, got ${response.result}`);
  return response as Extract<StorageResponse, { result: R }>;
}

// ---- the directory ----------------------------------------------------------------------

export interface StorageNodeDirectoryOptions {
  /** Options of the clients `connect` creates. */
  client?: StorageNodeClientOptions;
  /** Log sink for registry entries that cannot be read. Default console.log. */
  log?: (line: string) => void;
}

function parseInfo(key: string, value: Buffer): StorageNodeInfo | undefined {
  try {
    const info = JSON.parse(value.toString()) as Partial<StorageNodeInfo>;
    if (typeof info.nodeId !== 'string' || typeof info.address !== 'string' || info.address === '') return undefined;
    if (key !== MetadataKeys.storageNode(info.nodeId)) return undefined;
    return { nodeId: info.nodeId, address: info.address };
  } catch {
    return undefined;
  }
}

/**
 * The storage nodes registered in the region's metadata store, kept current by a watch.
 * `connect` hands out one cached client per node; a node that leaves the registry (its
 * lease expired: it died) has its client closed, which fails its requests in flight with
 * ADMQ_ERR_STORAGE_UNAVAILABLE, and a node that comes back at another address gets a new
 * client. Callers should call `connect` for each use rather than keep a client.
 */
export class StorageNodeDirectory {
  readonly #metadata: MetadataStore;
  readonly #options: StorageNodeDirectoryOptions;
  readonly #nodes = new Map<string, { info: StorageNodeInfo; version: number }>();
  readonly #clients = new Map<string, StorageNodeClient>();
  readonly #listeners = new Set<(nodes: StorageNodeInfo[]) => void>();
  readonly #log: (line: string) => void;
  #stopWatch: (() => Promise<void>) | undefined;
  #closed = false;

  private constructor(metadata: MetadataStore, options: StorageNodeDirectoryOptions) {
    this.#metadata = metadata;
    this.#options = options;
    if (options.client) validateClientOptions(options.client);
    const sink = options.log ?? ((line: string) => console.log(line));
    this.#log = (line) => sink(`[storage-node-directory] ${line}`);
  }

  /** Lists the registry and watches it; resolves once both are in place. */
  static async open(metadata: MetadataStore, options: StorageNodeDirectoryOptions = {}): Promise<StorageNodeDirectory> {
    const directory = new StorageNodeDirectory(metadata, options);
    await directory.#start();
    return directory;
  }

  async #start(): Promise<void> {
    const prefix = MetadataKeys.storageNodesPrefix;
    // The watch starts before the list so that no change falls between them; events that
    // arrive before the list is in are kept and applied after it, skipping those the list
    // already reflects (versions only grow).
    let buffered: WatchEvent[] | undefined = [];
    this.#stopWatch = await this.#metadata.watch(prefix, (event) => {
      if (buffered) buffered.push(event);
      else this.#apply(event, true);
    });
    try {
      for (const kv of await this.#metadata.list(prefix)) this.#apply({ type: 'put', key: kv.key, value: kv.value, version: kv.version }, false);
    } catch (error) {
      await this.#stopWatch();
      throw error;
    }
    const events = buffered;
    buffered = undefined;
    for (const event of events) this.#apply(event, false);
    this.#notify();
  }

  #apply(event: WatchEvent, notify: boolean): void {
    if (this.#closed) return;
    const nodeId = event.key.slice(MetadataKeys.storageNodesPrefix.length);
    const known = this.#nodes.get(nodeId);
    if (known && event.version <= known.version) return;
    if (event.type === 'delete') {
      if (!known) return;
      this.#nodes.delete(nodeId);
      this.#dropClient(nodeId);
    } else {
      const info = parseInfo(event.key, event.value);
      if (!info) {
        this.#log(`ignoring unreadable registry entry ${event.key}: ${event.value.toString().slice(0, 200)}`);
        return;
      }
      this.#nodes.set(nodeId, { info, version: event.version });
      if (known && known.info.address !== info.address) this.#dropClient(nodeId);
    }
    if (notify) this.#notify();
  }

  #dropClient(nodeId: string): void {
    const client = this.#clients.get(nodeId);
    if (!client) return;
    this.#clients.delete(nodeId);
    void client.close();
  }

  #notify(): void {
    const nodes = this.available();
    for (const listener of this.#listeners) listener(nodes);
  }

  /** The registered nodes, by node id. */
  available(): StorageNodeInfo[] {
    return [...this.#nodes.values()].map((n) => ({ ...n.info })).sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  /** The cached client of a registered node. Throws ADMQ_ERR_STORAGE_UNAVAILABLE for a node not in the registry. */
  connect(nodeId: string): StorageNodeConnection {
    if (this.#closed) throw new StorageNodeError('ADMQ_ERR_STORAGE_UNAVAILABLE', 'the storage node directory is closed');
    const node = this.#nodes.get(nodeId);
    if (!node) throw new StorageNodeError('ADMQ_ERR_STORAGE_UNAVAILABLE', `storage node ${nodeId} is not registered (not running, or its lease expired)`);
    const cached = this.#clients.get(nodeId);
    if (cached && !cached.closed && cached.address === node.info.address) return cached;
    const client = new StorageNodeClient(nodeId, node.info.address, this.#options.client);
    this.#clients.set(nodeId, client);
    return client;
  }

  /** Calls `listener` with the full list after every change. Returns the function that removes it. */
  onChange(listener: (nodes: StorageNodeInfo[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops watching and closes every client. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    await this.#stopWatch?.().catch(() => {});
    await Promise.all([...this.#clients.values()].map((c) => c.close()));
    this.#clients.clear();
  }
}
