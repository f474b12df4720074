// The shared vocabulary of a region's quorum-replicated ledgers (DESIGN §4, BookKeeper's
// model): what a storage node offers its clients, how a ledger's metadata looks in the
// region's metadata store, and where things live in that store.
//
// A ledger has one writer. Each entry is written to Qw of the ensemble's E storage nodes
// (striped: entry e goes to nodes (e + i) mod E, i < Qw) and is acknowledged once Qa of them
// have fsynced it. The writer piggybacks its last-add-confirmed (LAC) on every add; recovery
// fences the ledger on the storage nodes, reads forward from the highest LAC, re-writes what
// it finds, and closes the ledger at its last entry.

export type StorageNodeErrorCode =
  | 'ADMQ_ERR_LEDGER_FENCED'
  | 'ADMQ_ERR_NO_SUCH_ENTRY'
  | 'ADMQ_ERR_NO_SUCH_LEDGER'
  | 'ADMQ_ERR_LEDGER_WRITER'
  | 'ADMQ_ERR_STORAGE'
  | 'ADMQ_ERR_STORAGE_UNAVAILABLE'
  | 'ADMQ_ERR_BAD_REQUEST';

/** What one storage node offers (in process: BookieStore; over the network: its gRPC client). */
export interface StorageNodeConnection {
  readonly nodeId: string;
  /** Durable (fsynced) before it resolves. Rejects with ADMQ_ERR_LEDGER_FENCED once fenced. */
  add(ledgerId: number, entryId: number, lac: number, payload: Buffer, writer: string): Promise<void>;
  /** Rejects with ADMQ_ERR_NO_SUCH_ENTRY if this node does not hold the entry. */
  read(ledgerId: number, entryId: number): Promise<Buffer>;
  /** Rejects with ADMQ_ERR_NO_SUCH_LEDGER if this node has nothing of the ledger. */
  readLac(ledgerId: number): Promise<{ lac: number; last: number; fenced: boolean }>;
  /** Fences durably (also a ledger the node has not seen); answers what it holds. */
  fence(ledgerId: number): Promise<{ lac: number; last: number }>;
  /** Copies an entry during re-replication: stored whatever the ledger's writer or fence. */
  restore?(ledgerId: number, entryId: number, payload: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** A storage node as registered (leased) in the metadata store. */
export interface StorageNodeInfo {
  nodeId: string;
  /** host:port of its gRPC service. */
  address: string;
}

/** One segment of a ledger's ensemble history: from `firstEntryId` on, these nodes. */
export interface EnsembleSegment {
  firstEntryId: number;
  nodes: string[];
}

export interface LedgerMetadata {
  ledgerId: number;
  ensembleSize: number;
  writeQuorum: number;
  ackQuorum: number;
  /** open: a writer may add; closed: `lastEntryId` is final. */
  state: 'open' | 'closed';
  /** The last entry of a closed ledger (-1: empty); -1 while open. */
  lastEntryId: number;
  /** Ensemble changes append segments; the last one is current. */
  ensembles: EnsembleSegment[];
  /** Identity of the writer (the storage nodes refuse adds from any other). */
  writer: string;
  createdAtMs: number;
  /** What the ledger belongs to (e.g. { topic: 'persistent://t/n/x' }). */
  properties: Record<string, string>;
}

/** Where a region's cluster state lives in its metadata store. */
export const MetadataKeys = {
  storageNode: (nodeId: string) => `/admq/storage-nodes/${nodeId}`,
  storageNodesPrefix: '/admq/storage-nodes/',
  ledger: (ledgerId: number) => `/admq/ledgers/${String(ledgerId).padStart(10, '0')}`,
  ledgersPrefix: '/admq/ledgers/',
  ledgerIdCounter: '/admq/counters/ledger-id',
  broker: (brokerId: string) => `/admq/brokers/${brokerId}`,
  brokersPrefix: '/admq/brokers/',
  bundleOwner: (bundle: string) => `/admq/bundles/${bundle}`,
  bundlesPrefix: '/admq/bundles/',
  loadManagerLeader: '/admq/load-manager/leader',
  assignment: (bundle: string) => `/admq/assignments/${bundle}`,
  assignmentsPrefix: '/admq/assignments/',
  topicLedgers: (topic: string) => `/admq/topics/${encodeURIComponent(topic)}/ledgers`,
  topicCursors: (topic: string) => `/admq/topics/${encodeURIComponent(topic)}/cursors`,
  topicsPrefix: '/admq/topics/',
} as const;

export interface QuorumSettings {
  ensembleSize: number;
  writeQuorum: number;
  ackQuorum: number;
}

export const DEFAULT_QUORUM: QuorumSettings = { ensembleSize: 3, writeQuorum: 3, ackQuorum: 2 };
