// Test support: storage nodes in process — real BookieStores on LMDB temp dirs behind a
// StorageNodeConnection adapter — with faults on demand: a node can die (every call rejects
// with ADMQ_ERR_STORAGE_UNAVAILABLE), be paused (calls wait until resumed, or fail if it
// dies meanwhile), be slowed, or leave the registry (a lost node, for re-replication).
// Optionally each node is registered under MetadataKeys.storageNodesPrefix in a metadata
// store, as a real storage node registers itself.
import type { MetadataStore } from '../metadata-store/index.ts';
import { removeTempDir, tempDir } from '../../test-support/temp-dir.ts';
import { BookieStore } from './bookie-store.ts';
import { writeSetOf } from './ledger-metadata.ts';
import { MetadataKeys, type LedgerMetadata, type StorageNodeConnection, type StorageNodeInfo } from './ledger-types.ts';
import type { StorageNodePool } from './storage-node-pool.ts';

export class UnavailableError extends Error {
  readonly code = 'ADMQ_ERR_STORAGE_UNAVAILABLE';
  constructor(nodeId: string) {
    super(`storage node ${nodeId} is unavailable`);
    this.name = 'UnavailableError';
  }
}

interface TestNode {
  id: string;
  dir: string;
  store: BookieStore;
  alive: boolean;
  registered: boolean;
  delayMs: number;
  /** Calls held while paused, released by resume() or failed by kill(). */
  held: HeldCall[] | undefined;
  calls: number;
}

/** A call waiting at a paused node. */
export interface HeldCall {
  op: 'add' | 'read' | 'readLac' | 'fence' | 'restore';
  ledgerId: number;
  entryId: number | undefined;
  go: () => void;
  fail: (error: Error) => void;
}

let poolCounter = 0;

export class TestStoragePool implements StorageNodePool {
  readonly #nodes = new Map<string, TestNode>();
  readonly #connections = new Map<string, StorageNodeConnection>();
  readonly #metadata: MetadataStore | undefined;
  readonly #prefix: string;
  #counter = 0;

  /** Node ids are unique per pool (`p<pool>-n<i>`), so pools can share one metadata store. */
  constructor(options: { metadata?: MetadataStore } = {}) {
    this.#metadata = options.metadata;
    this.#prefix = `p${process.pid}-${++poolCounter}`;
  }

  static async create(count: number, options: { metadata?: MetadataStore } = {}): Promise<TestStoragePool> {
    const pool = new TestStoragePool(options);
    for (let i = 0; i < count; i++) await pool.addNode();
    return pool;
  }

  /** Opens a new storage node (fsync off: these tests are not about power loss) and registers it. */
  async addNode(): Promise<string> {
    const id = `${this.#prefix}-n${++this.#counter}`;
    const dir = tempDir('admq-test-bookie-');
    this.#nodes.set(id, { id, dir, store: BookieStore.open(dir, { sync: false }), alive: true, registered: false, delayMs: 0, held: undefined, calls: 0 });
    await this.register(id);
    return id;
  }

  ids(): string[] {
    return [...this.#nodes.keys()];
  }

  available(): string[] {
    return [...this.#nodes.values()].filter((n) => n.alive && n.registered).map((n) => n.id);
  }

  connect(nodeId: string): StorageNodeConnection {
    let connection = this.#connections.get(nodeId);
    if (!connection) {
      connection = this.#adapter(nodeId);
      this.#connections.set(nodeId, connection);
    }
    return connection;
  }

  /** The node's store, to look at what it holds (bypasses faults). */
  store(nodeId: string): BookieStore {
    return this.#node(nodeId).store;
  }

  /** Nodes of the entry's write set that hold it (read straight from their stores, faults aside). */
  holders(metadata: LedgerMetadata, entryId: number): string[] {
    return writeSetOf(metadata, entryId).filter((node) => {
      try {
        this.store(node).read(metadata.ledgerId, entryId);
        return true;
      } catch {
        return false;
      }
    });
  }

  /** Calls made to the node so far (answered or not). */
  calls(nodeId: string): number {
    return this.#node(nodeId).calls;
  }

  /** The node dies: held and later calls reject with ADMQ_ERR_STORAGE_UNAVAILABLE. It stays registered. */
  kill(nodeId: string): void {
    const node = this.#node(nodeId);
    node.alive = false;
    const held = node.held ?? [];
    node.held = undefined;
    for (const call of held) call.fail(new UnavailableError(nodeId));
  }

  revive(nodeId: string): void {
    this.#node(nodeId).alive = true;
  }

  /** Calls to the node wait (in order) until resume() or kill(). */
  pause(nodeId: string): void {
    this.#node(nodeId).held ??= [];
  }

  /**
   * Lets the held calls through and ends the pause; with `only`, lets through just the held
   * calls it selects and stays paused.
   */
  resume(nodeId: string, only?: (call: HeldCall) => boolean): void {
    const node = this.#node(nodeId);
    const held = node.held ?? [];
    if (only) {
      node.held = held.filter((call) => !only(call));
      for (const call of held) if (only(call)) call.go();
      return;
    }
    node.held = undefined;
    for (const call of held) call.go();
  }

  /** The held calls vanish, as if lost on the network with their sender: never delivered, never answered. */
  dropHeld(nodeId: string): void {
    const node = this.#node(nodeId);
    if (node.held) node.held = [];
  }

  /** Calls held at the node now. */
  heldCalls(nodeId: string): ReadonlyArray<Omit<HeldCall, 'go' | 'fail'>> {
    return (this.#node(nodeId).held ?? []).map(({ op, ledgerId, entryId }) => ({ op, ledgerId, entryId }));
  }

  /** Each call to the node waits this long first (0: none). */
  setDelayMs(nodeId: string, delayMs: number): void {
    this.#node(nodeId).delayMs = delayMs;
  }

  async register(nodeId: string): Promise<void> {
    const node = this.#node(nodeId);
    node.registered = true;
    const info: StorageNodeInfo = { nodeId, address: 'in-process' };
    await this.#metadata?.put(MetadataKeys.storageNode(nodeId), Buffer.from(JSON.stringify(info)));
  }

  /** The node leaves the registry (as when its lease expires): it is lost. */
  async unregister(nodeId: string): Promise<void> {
    this.#node(nodeId).registered = false;
    await this.#metadata?.delete(MetadataKeys.storageNode(nodeId));
  }

  async close(): Promise<void> {
    for (const node of this.#nodes.values()) {
      this.kill(node.id);
      await node.store.close();
      removeTempDir(node.dir);
    }
    this.#nodes.clear();
  }

  #node(nodeId: string): TestNode {
    const node = this.#nodes.get(nodeId);
    if (!node) throw new Error(`no test storage node ${nodeId}`);
    return node;
  }

  /** Runs `op` on the node after its faults: dead → unavailable; paused → wait; slow → delay. */
  async #call<T>(nodeId: string, what: Pick<HeldCall, 'op' | 'ledgerId' | 'entryId'>, op: (store: BookieStore) => T | Promise<T>): Promise<T> {
    const node = this.#nodes.get(nodeId);
    if (!node) throw new UnavailableError(nodeId);
    node.calls++;
    if (node.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, node.delayMs));
    if (node.held && node.alive) {
      const held = node.held;
      await new Promise<void>((go, fail) => held.push({ ...what, go, fail }));
    }
    if (!node.alive) throw new UnavailableError(nodeId);
    return op(node.store);
  }

  #adapter(nodeId: string): StorageNodeConnection {
    return {
      nodeId,
      add: (ledgerId, entryId, lac, payload, writer) => this.#call(nodeId, { op: 'add', ledgerId, entryId }, (s) => s.add(ledgerId, entryId, lac, payload, writer)),
      read: (ledgerId, entryId) => this.#call(nodeId, { op: 'read', ledgerId, entryId }, (s) => s.read(ledgerId, entryId)),
      readLac: (ledgerId) => this.#call(nodeId, { op: 'readLac', ledgerId, entryId: undefined }, (s) => s.readLac(ledgerId)),
      fence: (ledgerId) => this.#call(nodeId, { op: 'fence', ledgerId, entryId: undefined }, (s) => s.fence(ledgerId)),
      restore: (ledgerId, entryId, payload) => this.#call(nodeId, { op: 'restore', ledgerId, entryId }, (s) => s.restore(ledgerId, entryId, payload)),
      close: async () => undefined,
    };
  }
}
