// Recovery of a ledger whose writer is gone (BookKeeper's ledger recovery): make sure the
// old writer can acknowledge nothing more, find the end of what it may have acknowledged,
// make that durable on Qa nodes, and close the ledger there.
//
//  1. Bump the metadata version (a compare-and-set of the same content). From then on the
//     old writer's ensemble changes and close fail their compare-and-set, so the ensemble
//     read here is the last one it can ever write to.
//  2. Fence the ledger on the nodes of the last segment. Enough answers are needed that in
//     every write set fewer than Qa nodes are left unfenced (Qw − Qa + 1 fenced per write
//     set; with E = Qw that is E − Qa + 1 of the ensemble): then no entry can be
//     acknowledged anymore.
//  3. Read forward from the highest LAC the fenced nodes report (everything up to it was
//     acknowledged; so was everything before the last segment, which starts at an old LAC + 1).
//     An entry any replica holds is recovered. The first entry that Qw − Qa + 1 fenced
//     replicas report missing cannot have been acknowledged (fewer than Qa nodes can ever
//     hold it), and since acks are in order neither can any later one: the ledger ends before
//     it. An entry whose fate cannot be decided (too many replicas unreachable) stops the
//     recovery with ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES rather than guess.
//  4. Copy each recovered entry to the replicas of its write set that lack it (`restore`,
//     which stores whatever the fence), so that it has at least Qa copies before the ledger
//     is declared to contain it.
//  5. Close the metadata at the last recovered entry by compare-and-set on the bumped
//     version. If that fails, another recovery moved first: its closed metadata is the answer
//     (a still-open ledger means start over).
import type { MetadataStore } from '../metadata-store/index.ts';
import { assert } from '../errors.ts';
import { errorCode, LedgerError } from './ledger-errors.ts';
import { casLedgerMetadata, requireLedgerMetadata, stripe, writeSetOf } from './ledger-metadata.ts';
import type { LedgerMetadata } from './ledger-types.ts';
import { withTimeout, type StorageNodePool, type Timers } from './storage-node-pool.ts';

export interface RecoveryDeps {
  store: MetadataStore;
  pool: StorageNodePool;
  timers: Timers;
  /** Time a storage node has to answer a fence, read or restore. */
  callTimeoutMs: number;
  /** Whole-recovery attempts when the metadata keeps changing underneath (another recovery). */
  attemptsMax: number;
  /** Entries read (and re-written) at once while reading forward. */
  readWindow: number;
}

type ReadOutcome = { kind: 'found'; payload: Buffer; holders: string[] } | { kind: 'absent' } | { kind: 'undecided'; why: string };

export async function recoverAndClose(deps: RecoveryDeps, ledgerId: number, recoveryWriterId: string): Promise<LedgerMetadata> {
  for (let attempt = 1; attempt <= deps.attemptsMax; attempt++) {
    const read = await requireLedgerMetadata(deps.store, ledgerId);
    if (read.metadata.state === 'closed') return read.metadata;
    const bumped = await casLedgerMetadata(deps.store, read.metadata, read.version);
    if (!bumped.ok) continue;
    const lastEntryId = await findAndSecureEnd(deps, read.metadata, recoveryWriterId);
    const closed: LedgerMetadata = { ...read.metadata, state: 'closed', lastEntryId };
    const result = await casLedgerMetadata(deps.store, closed, bumped.version);
    if (result.ok) return closed;
    if (result.current?.metadata.state === 'closed') return result.current.metadata;
    if (!result.current) throw new LedgerError('ADMQ_ERR_NO_SUCH_LEDGER', `ledger ${ledgerId} was deleted during its recovery`);
  }
  throw new LedgerError('ADMQ_ERR_METADATA_CONFLICT', `ledger ${ledgerId}: its metadata changed during each of ${deps.attemptsMax} recovery attempts`);
}

/** Steps 2–4: fences, reads forward, re-writes; returns the ledger's last entry. */
async function findAndSecureEnd(deps: RecoveryDeps, metadata: LedgerMetadata, recoveryWriterId: string): Promise<number> {
  const { ledgerId, writeQuorum, ackQuorum } = metadata;
  const segment = metadata.ensembles[metadata.ensembles.length - 1]!;
  const tag = `[ledger ${ledgerId}][recovery by ${recoveryWriterId}]`;

  const answers = await Promise.all(
    segment.nodes.map((node) =>
      withTimeout(
        Promise.resolve().then(() => deps.pool.connect(node).fence(ledgerId)),
        deps.callTimeoutMs,
        `fence ${ledgerId} on ${node}`,
        deps.timers,
      ).then(
        (answer) => ({ node, lac: answer.lac }),
        () => undefined,
      ),
    ),
  );
  const fenced = new Set<string>();
  let maxLac = -1;
  for (const answer of answers) {
    if (!answer) continue;
    fenced.add(answer.node);
    maxLac = Math.max(maxLac, answer.lac);
  }
  const mustFence = writeQuorum - ackQuorum + 1;
  for (let i = 0; i < segment.nodes.length; i++) {
    const writeSet = stripe(segment.nodes, writeQuorum, i);
    const count = writeSet.filter((node) => fenced.has(node)).length;
    if (count < mustFence) {
      throw new LedgerError(
        'ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES',
        `${tag} only ${count} of write set [${writeSet.join(', ')}] could be fenced; ${mustFence} are needed so that the old writer can acknowledge nothing more`,
      );
    }
  }

  // Everything before the last segment was acknowledged when that segment began.
  let next = Math.max(maxLac, segment.firstEntryId - 1) + 1;
  for (;;) {
    const ids = Array.from({ length: deps.readWindow }, (_, i) => next + i);
    const outcomes = await Promise.all(ids.map((entryId) => readForRecovery(deps, metadata, entryId, fenced)));
    for (const [i, outcome] of outcomes.entries()) {
      const entryId = ids[i]!;
      if (outcome.kind === 'absent') return entryId - 1;
      if (outcome.kind === 'undecided') {
        throw new LedgerError('ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES', `${tag} cannot tell whether entry ${entryId} was acknowledged: ${outcome.why}`);
      }
      // Entries after an absent one are never looked at, so `found` here is in order.
      await rewrite(deps, metadata, entryId, outcome.payload, outcome.holders, tag);
    }
    next += deps.readWindow;
    assert(next <= Number.MAX_SAFE_INTEGER, `${tag} read past the largest entry id`);
  }
}

async function readForRecovery(deps: RecoveryDeps, metadata: LedgerMetadata, entryId: number, fenced: ReadonlySet<string>): Promise<ReadOutcome> {
  const writeSet = writeSetOf(metadata, entryId);
  const answers = await Promise.all(
    writeSet.map((node) =>
      withTimeout(
        Promise.resolve().then(() => deps.pool.connect(node).read(metadata.ledgerId, entryId)),
        deps.callTimeoutMs,
        `read ${metadata.ledgerId}:${entryId} on ${node}`,
        deps.timers,
      ).then(
        (payload) => ({ node, payload, code: undefined }),
        (error: unknown) => ({ node, payload: undefined, code: errorCode(error) }),
      ),
    ),
  );
  const holders = answers.filter((a) => a.payload !== undefined);
  if (holders.length > 0) return { kind: 'found', payload: holders[0]!.payload!, holders: holders.map((a) => a.node) };
  // Only a fenced node's "missing" is final: an unfenced one could still receive the add.
  const missing = answers.filter((a) => fenced.has(a.node) && (a.code === 'ADMQ_ERR_NO_SUCH_ENTRY' || a.code === 'ADMQ_ERR_NO_SUCH_LEDGER'));
  const needed = metadata.writeQuorum - metadata.ackQuorum + 1;
  if (missing.length >= needed) return { kind: 'absent' };
  return { kind: 'undecided', why: `${missing.length} fenced replicas of [${writeSet.join(', ')}] report it missing, ${needed} are needed` };
}

async function rewrite(deps: RecoveryDeps, metadata: LedgerMetadata, entryId: number, payload: Buffer, holders: string[], tag: string): Promise<void> {
  const lacking = writeSetOf(metadata, entryId).filter((node) => !holders.includes(node));
  const restored = await Promise.all(
    lacking.map((node) => {
      const connection = deps.pool.connect(node);
      // Without restore a fenced node takes no add, from anyone: the copy cannot be made.
      if (!connection.restore) return false;
      return withTimeout(connection.restore(metadata.ledgerId, entryId, payload), deps.callTimeoutMs, `restore ${metadata.ledgerId}:${entryId} on ${node}`, deps.timers).then(
        () => true,
        () => false,
      );
    }),
  );
  const copies = holders.length + restored.filter(Boolean).length;
  if (copies < metadata.ackQuorum) {
    throw new LedgerError('ADMQ_ERR_NOT_ENOUGH_STORAGE_NODES', `${tag} entry ${entryId} is on ${copies} storage nodes after re-writing, fewer than the ack quorum ${metadata.ackQuorum}`);
  }
}
