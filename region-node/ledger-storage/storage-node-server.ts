// A storage node as a network service (issue 8, DESIGN §4): a BookieStore behind the
// StorageNode gRPC service (proto/storage-node.proto), registered in the region's metadata
// store on a lease so that it leaves the registry when it dies.
//
// One bidirectional stream per client carries every request, each with its request id, and
// the node answers each one when it is done: adds that arrive together share the store's
// group commit, so a client with many adds in flight gets them acknowledged by one fsync.
// Bounded: each stream has at most `inFlightPerStreamMax` requests being served; past that
// the node stops reading the stream, and HTTP/2 flow control pushes back on the client.
//
// Malformed bytes never break the service: they are answered with ADMQ_ERR_BAD_REQUEST on
// the same stream, which goes on, and every other stream is unaffected.
import * as grpc from '@grpc/grpc-js';
import { ERROR_CODE_METADATA_KEY } from '../../proto/index.ts';
import { installHttp2ServerWindows } from '../http2-window.ts';
import type { Lease, MetadataStore } from '../metadata-store/store.ts';
import { BookieStore } from './bookie-store.ts';
import { MetadataKeys, type StorageNodeInfo } from './ledger-types.ts';
import { StorageNodeConfigError, StorageNodeError } from './storage-node-errors.ts';
import { SESSION_PATH, decodeRequest, encodeResponse, type MalformedRequest, type StorageRequest, type StorageResponse } from './storage-node-wire.ts';

export interface StorageNodeServerOptions {
  /** The LMDB directory of the node's ledgers (created if missing). */
  dataDir: string;
  /** Interface to listen on. Default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 lets the kernel choose (read `.address`). */
  port: number;
  /** The node's identity in the registry and in ensembles: 1–128 of [A-Za-z0-9._-]. */
  nodeId: string;
  /** When given, the node registers itself at MetadataKeys.storageNode(nodeId) on a lease. */
  metadata?: MetadataStore;
  /** The address registered (host:port), when clients must not use `host` (e.g. 0.0.0.0). Default: host:bound port. */
  advertisedAddress?: string;
  /** fsync every group commit. Default true; false loses acknowledged adds in a crash (tests and benchmarks only). */
  sync?: boolean;
  /** TTL of the registration lease, in ms (etcd rounds up to whole seconds). Default 3,000. */
  leaseTtlMs?: number;
  /**
   * How long start-up waits for an earlier registration of the same node id (a killed
   * incarnation whose lease has not expired yet) to go away, in ms. Default 30,000.
   */
  registrationWaitMs?: number;
  /** Requests being served at once per stream; past it the node stops reading that stream. Default 4,096. */
  inFlightPerStreamMax?: number;
  /** Largest gRPC message accepted or sent, in bytes. Default 64 MiB. */
  messageBytesMax?: number;
  /** Log sink; every line is tagged `[storage-node <id>]`. Default console.log. */
  log?: (line: string) => void;
}

export const STORAGE_NODE_DEFAULTS = {
  host: '127.0.0.1',
  leaseTtlMs: 3000,
  registrationWaitMs: 30_000,
  inFlightPerStreamMax: 4096,
  messageBytesMax: 64 * 1024 * 1024,
} as const;

const NODE_ID = /^[A-Za-z0-9._-]{1,128}$/;
const RETRY_INITIAL_MS = 100;
// A node missing from the registry gets no new ensembles; the region's etcd is near, so
// re-registration retries stay frequent (as replication links do) rather than going to 60 s.
const RETRY_MAX_MS = 5000;

function validate(options: StorageNodeServerOptions): void {
  const fail = (field: string, why: string): never => {
    throw new StorageNodeConfigError(`storage node option ${field} ${why}`);
  };
  if (typeof options.dataDir !== 'string' || options.dataDir === '') fail('dataDir', 'must be a directory path');
  if (typeof options.nodeId !== 'string' || !NODE_ID.test(options.nodeId)) fail('nodeId', `must be 1–128 of [A-Za-z0-9._-]; got ${JSON.stringify(options.nodeId)}`);
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) fail('port', `must be an integer in 0..65535; got ${options.port}`);
  if (options.host !== undefined && (typeof options.host !== 'string' || options.host === '')) fail('host', 'must be a host name or IP address');
  const positive = (field: keyof StorageNodeServerOptions, min: number): void => {
    const value = options[field];
    if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < min)) fail(field, `must be an integer >= ${min}; got ${String(value)}`);
  };
  positive('leaseTtlMs', 1000);
  positive('registrationWaitMs', 0);
  positive('inFlightPerStreamMax', 1);
  positive('messageBytesMax', 1024);
  const host = options.host ?? STORAGE_NODE_DEFAULTS.host;
  if (options.metadata && options.advertisedAddress === undefined && (host === '0.0.0.0' || host === '::')) {
    fail('advertisedAddress', `is required when host is the wildcard ${host}: the registry needs an address clients can dial`);
  }
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

interface Session {
  call: grpc.ServerDuplexStream<Buffer, Buffer>;
  peer: string;
  inFlight: number;
  readPaused: boolean;
  writeBlocked: boolean;
  /** The call is over (cancelled, failed, or ended by us): answers are dropped. */
  over: boolean;
  /** The client half-closed: end our side once the last answer is written. */
  clientEnded: boolean;
  loggedMalformed: boolean;
  /** Resolves close()'s wait for the answers in flight. */
  onIdle: (() => void) | undefined;
}

export class StorageNodeServer {
  readonly nodeId: string;
  /** host:port of the gRPC service, as registered. */
  readonly address: string;
  readonly #store: BookieStore;
  readonly #grpc: grpc.Server;
  readonly #sessions = new Set<Session>();
  readonly #metadata: MetadataStore | undefined;
  readonly #log: (line: string) => void;
  readonly #inFlightMax: number;
  readonly #leaseTtlMs: number;
  /** Every lease this process registered under, so that it recognizes its own stale entry. */
  readonly #ownLeaseIds = new Set<string>();
  #lease: Lease | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryDelayMs = RETRY_INITIAL_MS;
  #closing: Promise<void> | undefined;
  /**
   * Set synchronously as close() begins (before `#closing` is assigned, which waits for
   * #close's first await), so that streams stop being read at once.
   */
  #stopping = false;
  /** Resolves when close() begins: ends a registration that waits for a stale entry. */
  #stopSignal!: () => void;
  readonly #stopped = new Promise<void>((resolve) => (this.#stopSignal = resolve));

  private constructor(options: StorageNodeServerOptions, store: BookieStore, server: grpc.Server, address: string) {
    this.nodeId = options.nodeId;
    this.address = address;
    this.#store = store;
    this.#grpc = server;
    this.#metadata = options.metadata;
    this.#inFlightMax = options.inFlightPerStreamMax ?? STORAGE_NODE_DEFAULTS.inFlightPerStreamMax;
    this.#leaseTtlMs = options.leaseTtlMs ?? STORAGE_NODE_DEFAULTS.leaseTtlMs;
    const sink = options.log ?? ((line: string) => console.log(line));
    this.#log = (line) => sink(`[storage-node ${options.nodeId}] ${line}`);
  }

  /** Opens the store, serves the StorageNode service, and registers the node when `metadata` is given. */
  static async start(options: StorageNodeServerOptions): Promise<StorageNodeServer> {
    validate(options);
    const host = options.host ?? STORAGE_NODE_DEFAULTS.host;
    const messageBytesMax = options.messageBytesMax ?? STORAGE_NODE_DEFAULTS.messageBytesMax;
    // grpc-js leaves HTTP/2 windows at 64 KiB, which would cap one client's adds per second.
    installHttp2ServerWindows();
    const store = BookieStore.open(options.dataDir, { sync: options.sync ?? true });
    const server = new grpc.Server({ 'grpc.max_receive_message_length': messageBytesMax, 'grpc.max_send_message_length': messageBytesMax });
    let node: StorageNodeServer | undefined;
    try {
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(hostPort(host, options.port), grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
      );
      node = new StorageNodeServer(options, store, server, options.advertisedAddress ?? hostPort(host, port));
      const self = node;
      const identity = (value: Buffer): Buffer => value;
      // Messages stay Buffers through grpc-js: storage-node-wire.ts decodes and encodes them,
      // so that a malformed frame is answered by the handler instead of failing the call.
      const definition: grpc.ServiceDefinition = {
        Session: {
          path: SESSION_PATH,
          requestStream: true,
          responseStream: true,
          requestSerialize: identity,
          requestDeserialize: identity,
          responseSerialize: identity,
          responseDeserialize: identity,
        },
      };
      server.addService(definition, { Session: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => self.#session(call) });
      if (options.metadata) await node.#register(options.registrationWaitMs ?? STORAGE_NODE_DEFAULTS.registrationWaitMs);
      node.#log(`listening on ${node.address}${options.sync === false ? ' (sync off: acknowledged adds may be lost in a crash)' : ''}`);
      return node;
    } catch (error) {
      if (node) await node.close();
      else {
        server.forceShutdown();
        await store.close();
      }
      throw error;
    }
  }

  // ---- the service ----------------------------------------------------------------------

  #session(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    if (this.#stopping) {
      call.emit('error', unavailableStatus('the storage node is shutting down'));
      return;
    }
    const s: Session = { call, peer: call.getPeer(), inFlight: 0, readPaused: false, writeBlocked: false, over: false, clientEnded: false, loggedMalformed: false, onIdle: undefined };
    this.#sessions.add(s);
    const finished = (): void => {
      s.over = true;
      this.#sessions.delete(s);
      s.onIdle?.();
    };
    call.on('data', (frame: Buffer) => this.#onFrame(s, frame));
    call.on('end', () => {
      s.clientEnded = true;
      this.#maybeEnd(s);
    });
    call.on('cancelled', finished);
    call.on('error', finished);
    call.on('close', finished);
    call.on('drain', () => {
      s.writeBlocked = false;
      this.#flowControl(s);
    });
  }

  #onFrame(s: Session, frame: Buffer): void {
    const request = decodeRequest(frame);
    if (request.op === 'malformed' && !s.loggedMalformed) {
      // Once per stream: a broken or hostile client must not flood the log.
      s.loggedMalformed = true;
      this.#log(`malformed request from ${s.peer} (answered ADMQ_ERR_BAD_REQUEST; later ones on this stream are not logged): ${request.reason}`);
    }
    s.inFlight++;
    this.#flowControl(s);
    void this.#serve(request).then((response) => {
      s.inFlight--;
      if (!s.over) {
        if (!s.call.write(encodeResponse(response))) s.writeBlocked = true;
      }
      this.#flowControl(s);
      if (s.inFlight === 0) {
        s.onIdle?.();
        this.#maybeEnd(s);
      }
    });
  }

  /** Stops reading a stream while it has too much in flight or its answers are not being read. */
  #flowControl(s: Session): void {
    const shouldPause = this.#stopping || s.writeBlocked || s.inFlight >= this.#inFlightMax;
    if (shouldPause && !s.readPaused) {
      s.readPaused = true;
      s.call.pause();
    } else if (!shouldPause && s.readPaused) {
      s.readPaused = false;
      s.call.resume();
    }
  }

  #maybeEnd(s: Session): void {
    if (s.clientEnded && s.inFlight === 0 && !s.over) {
      s.over = true;
      this.#sessions.delete(s);
      s.call.end();
    }
  }

  /** Serves one request; never rejects (every failure is an error answer). */
  async #serve(request: StorageRequest | MalformedRequest): Promise<StorageResponse> {
    const { requestId } = request;
    try {
      switch (request.op) {
        case 'malformed':
          return { result: 'error', requestId, code: 'ADMQ_ERR_BAD_REQUEST', message: `malformed request: ${request.reason}` };
        case 'add':
          await this.#store.add(request.ledgerId, request.entryId, request.lac, request.payload, request.writer);
          return { result: 'done', requestId };
        case 'restore':
          await this.#store.restore(request.ledgerId, request.entryId, request.payload);
          return { result: 'done', requestId };
        case 'read':
          return { result: 'entry', requestId, payload: this.#store.read(request.ledgerId, request.entryId) };
        case 'readLac':
          return { result: 'state', requestId, ...this.#store.readLac(request.ledgerId) };
        case 'fence':
          return { result: 'state', requestId, ...(await this.#store.fence(request.ledgerId)), fenced: true };
      }
    } catch (error) {
      const typed = StorageNodeError.from(error);
      if (typed.code === 'ADMQ_ERR_STORAGE') this.#log(`${request.op} failed: ${typed.message}`);
      return { result: 'error', requestId, code: typed.code, message: typed.message };
    }
  }

  // ---- the registry ---------------------------------------------------------------------

  #info(): Buffer {
    const info: StorageNodeInfo = { nodeId: this.nodeId, address: this.address };
    return Buffer.from(JSON.stringify(info));
  }

  /**
   * Registers the node on a fresh lease. Create-only: an entry held by another lease is
   * another incarnation of this node id — a killed one whose lease has not expired yet, or
   * a live one (a configuration mistake) — so the node waits for the entry's delete event,
   * up to `waitMs` (undefined: as long as it takes), rather than take the id over. An entry
   * under a lease of this very process (one it lost track of) is replaced at once.
   */
  async #register(waitMs: number | undefined): Promise<void> {
    const metadata = this.#metadata!;
    const key = MetadataKeys.storageNode(this.nodeId);
    let signalDeleted: () => void = () => {};
    const stopWatch = await metadata.watch(key, (event) => {
      if (event.type === 'delete' && event.key === key) signalDeleted();
    });
    const deadline = waitMs === undefined ? undefined : Date.now() + waitMs;
    let lease: Lease | undefined;
    try {
      lease = await metadata.grantLease(this.#leaseTtlMs);
      this.#ownLeaseIds.add(lease.id);
      let loggedWait = false;
      for (;;) {
        if (this.#stopping) throw new StorageNodeError('ADMQ_ERR_STORAGE_UNAVAILABLE', 'the storage node closed while registering');
        // Armed before the put, so a delete that lands between the put and the wait is seen.
        const deleted = new Promise<void>((resolve) => (signalDeleted = resolve));
        const put = await metadata.put(key, this.#info(), { expectedVersion: 0, lease });
        if (put.ok) break;
        const holder = put.current;
        if (!holder) continue; // deleted in between: try again at once
        if (holder.leaseId !== undefined && this.#ownLeaseIds.has(holder.leaseId)) {
          await metadata.delete(key, { expectedVersion: holder.version });
          continue;
        }
        if (!loggedWait) {
          loggedWait = true;
          this.#log(`node id already registered (${holder.value.toString()}); waiting for that registration to expire`);
        }
        const remaining = deadline === undefined ? undefined : deadline - Date.now();
        if (remaining !== undefined && (remaining <= 0 || !(await resolvesWithin(deleted, remaining)))) {
          throw new StorageNodeConfigError(
            `storage node id ${this.nodeId} is still registered by another process (${holder.value.toString()}) after ${waitMs} ms: is another storage node running with this nodeId?`,
          );
        }
        if (remaining === undefined) await Promise.race([deleted, this.#stopped]);
      }
    } catch (error) {
      await lease?.revoke().catch(() => {});
      throw error;
    } finally {
      await stopWatch().catch(() => {});
    }
    const held = lease;
    if (this.#stopping) {
      // close() ran while this registration was on its way: it could not revoke this lease.
      await held.revoke().catch(() => {});
      return;
    }
    this.#lease = held;
    this.#retryDelayMs = RETRY_INITIAL_MS;
    held.onLost((reason) => this.#leaseLost(held, reason));
    this.#log(`registered at ${key} (lease ${held.id}, ttl ${this.#leaseTtlMs} ms)`);
  }

  #leaseLost(lease: Lease, reason: string): void {
    if (this.#stopping || this.#lease !== lease) return;
    this.#lease = undefined;
    this.#log(`registration lease ${lease.id} lost (${reason}); registering again`);
    this.#reregister();
  }

  #reregister(): void {
    if (this.#stopping) return;
    this.#register(undefined).catch((error: unknown) => {
      if (this.#stopping) return;
      const delay = this.#retryDelayMs;
      this.#retryDelayMs = Math.min(RETRY_MAX_MS, delay * 2);
      this.#log(`registering failed (${(error as Error).message}); retrying in ${delay} ms`);
      this.#retryTimer = setTimeout(() => this.#reregister(), delay);
    });
  }

  // ---- shutdown -------------------------------------------------------------------------

  /**
   * Leaves the registry first (clients stop choosing this node), answers the requests in
   * flight, ends every stream with ADMQ_ERR_STORAGE_UNAVAILABLE, and closes the store.
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#stopping = true;
    this.#stopSignal();
    clearTimeout(this.#retryTimer);
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease) await lease.revoke().catch((error: unknown) => this.#log(`revoking the registration lease failed: ${(error as Error).message}`));
    const sessions = [...this.#sessions];
    for (const s of sessions) this.#flowControl(s);
    await Promise.all(
      sessions.map(async (s) => {
        if (s.inFlight > 0 && !s.over) await new Promise<void>((resolve) => (s.onIdle = resolve));
        if (!s.over) {
          s.over = true;
          s.call.emit('error', unavailableStatus('the storage node is shutting down'));
        }
      }),
    );
    this.#sessions.clear();
    this.#grpc.forceShutdown();
    await this.#store.close();
    this.#log('closed');
  }
}

function unavailableStatus(message: string): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_METADATA_KEY, 'ADMQ_ERR_STORAGE_UNAVAILABLE');
  return { code: grpc.status.UNAVAILABLE, details: `ADMQ_ERR_STORAGE_UNAVAILABLE: ${message}`, metadata };
}

async function resolvesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
