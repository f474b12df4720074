// Re-replication after a storage node is lost: closed ledgers get Qw copies of every entry
// back on live nodes, and their metadata names those nodes; open ledgers are left to their
// writer. The main test runs on a real etcd (the registry's delete event starts the pass);
// the others on the embedded LMDB metadata store.
import test, { type ExecutionContext } from 'ava';
import { startEtcd } from '../../test-support/etcd.ts';
import { waitFor } from '../../test-support/processes.ts';
import { EtcdMetadataStore, LmdbMetadataStore, type MetadataStore } from '../metadata-store/index.ts';
import { tempDir } from '../../test-support/temp-dir.ts';
import { LedgerClient } from './ledger-client.ts';
import type { LedgerMetadata, QuorumSettings } from './ledger-types.ts';
import { ReReplicator } from './re-replication.ts';
import { TestStoragePool } from './test-pool.ts';

async function lmdbSetup(t: ExecutionContext, nodes: number, quorum?: QuorumSettings) {
  const metadata: MetadataStore = LmdbMetadataStore.open(tempDir('admq-rerepl-meta-'));
  const pool = await TestStoragePool.create(nodes, { metadata });
  t.teardown(async () => {
    await pool.close();
    await metadata.close();
  });
  return { metadata, pool, client: new LedgerClient({ metadata, pool, writerId: 'w', quorum }) };
}

async function writeClosed(client: LedgerClient, count: number, tag: string): Promise<LedgerMetadata> {
  const writer = await client.createLedger();
  await Promise.all(Array.from({ length: count }, (_, i) => writer.add(Buffer.from(`${tag}-${i}`))));
  return writer.close();
}

test('re-replication: storage nodes are lost — every entry of closed ledgers has Qw copies again, the metadata names the new node, open ledgers are left alone (etcd)', async (t) => {
  const etcd = await startEtcd();
  const metadata = new EtcdMetadataStore([etcd.endpoint]);
  const pool = await TestStoragePool.create(5, { metadata });
  t.teardown(async () => {
    await pool.close();
    await metadata.close();
    await etcd.stop();
  });
  const client = new LedgerClient({ metadata, pool, writerId: 'writer-1' });
  const closed: LedgerMetadata[] = [];
  for (let i = 0; i < 4; i++) closed.push(await writeClosed(client, 50, `l${i}`));
  const victim = closed[0]!.ensembles[0]!.nodes[0]!;
  // One ledger with two segments: a node of its ensemble other than the victim fails
  // mid-stream and is lost too. (Entries of the first segment that were acked before it
  // failed have only the copies it did not miss: a node that came back would keep them
  // under-replicated, unseen — see LEDGERS.md, limits.)
  let other = '';
  {
    const writer = await client.createLedger();
    await Promise.all(Array.from({ length: 30 }, (_, i) => writer.add(Buffer.from(`seg-${i}`))));
    other = writer.metadata().ensembles[0]!.nodes.find((n) => n !== victim)!;
    pool.kill(other);
    await Promise.all(Array.from({ length: 30 }, (_, i) => writer.add(Buffer.from(`seg-${30 + i}`))));
    const done = await writer.close();
    t.is(done.ensembles.length, 2);
    closed.push(done);
    await pool.unregister(other);
  }
  // An open ledger on the victim (if the random ensemble has it) must stay untouched.
  const open = await client.createLedger();
  await open.add(Buffer.from('open-0'));
  const openBefore = await client.getMetadata(open.ledgerId);
  const affected = closed.filter((m) => m.ensembles.some((s) => s.nodes.includes(victim)));
  t.true(affected.length >= 1);

  const lines: string[] = [];
  const rereplicator = new ReReplicator({ metadata, pool, log: (line) => lines.push(line) });
  t.teardown(() => rereplicator.close());
  await rereplicator.start();
  pool.kill(victim);
  await pool.unregister(victim);
  // The registry's delete event starts a pass.
  await waitFor(
    async () => {
      for (const m of closed) if ((await client.getMetadata(m.ledgerId))!.ensembles.some((s) => s.nodes.includes(victim) || s.nodes.includes(other))) return false;
      return true;
    },
    30_000,
    'no closed ledger names a lost node',
  );
  await rereplicator.close();
  for (const before of closed) {
    const after = (await client.getMetadata(before.ledgerId))!;
    t.is(after.state, 'closed');
    t.is(after.lastEntryId, before.lastEntryId);
    t.deepEqual(after.ensembles.map((s) => s.firstEntryId), before.ensembles.map((s) => s.firstEntryId));
    for (let e = 0; e <= after.lastEntryId; e++) t.is(pool.holders(after, e).length, after.writeQuorum, `ledger ${after.ledgerId} entry ${e} ${JSON.stringify({ before: before.ensembles, after: after.ensembles, h: pool.holders(after, e), victim, other })}`);
    const reader = await client.openReader(after.ledgerId);
    t.is((await reader.read(0, after.lastEntryId)).length, after.lastEntryId + 1);
  }
  t.deepEqual(await client.getMetadata(open.ledgerId), openBefore);
  const progress = rereplicator.progress();
  t.true(progress.segmentsReplaced >= affected.length, JSON.stringify(progress));
  t.true(progress.entriesCopied >= affected.length * 50, JSON.stringify(progress));
  t.is(progress.lastError, undefined);
  t.true(lines.some((line) => line.includes(`${victim} replaced by`)));
});

test('re-replication: with no live node to replace the lost one the ledger stays pending, and is healed once a node joins', async (t) => {
  const { pool, client, metadata } = await lmdbSetup(t, 3);
  const before = await writeClosed(client, 20, 'x');
  const victim = before.ensembles[0]!.nodes[2]!;
  pool.kill(victim);
  await pool.unregister(victim);
  const rereplicator = new ReReplicator({ metadata, pool });
  t.like(await rereplicator.runOnce(), { ledgersPending: 1, segmentsReplaced: 0, entriesCopied: 0 });
  t.deepEqual(await client.getMetadata(before.ledgerId), before);
  const fresh = await pool.addNode();
  t.like(await rereplicator.runOnce(), { ledgersPending: 0, segmentsReplaced: 1, entriesCopied: 20 });
  const after = (await client.getMetadata(before.ledgerId))!;
  t.deepEqual(after.ensembles[0]!.nodes, [...before.ensembles[0]!.nodes.slice(0, 2), fresh]);
  for (let e = 0; e < 20; e++) t.is(pool.store(fresh).read(before.ledgerId, e).toString(), `x-${e}`);
  // Nothing left to do: a further pass copies nothing.
  t.like(await rereplicator.runOnce(), { ledgersPending: 0, segmentsReplaced: 1, entriesCopied: 20 });
});

test('re-replication: striped ledger (E=4, Qw=2) — only the entries whose write set held the lost node are copied', async (t) => {
  const { pool, client, metadata } = await lmdbSetup(t, 5, { ensembleSize: 4, writeQuorum: 2, ackQuorum: 2 });
  const before = await writeClosed(client, 40, 's');
  const nodes = before.ensembles[0]!.nodes;
  const victim = nodes[1]!;
  const spare = pool.ids().find((id) => !nodes.includes(id))!;
  pool.kill(victim);
  await pool.unregister(victim);
  const progress = await new ReReplicator({ metadata, pool }).runOnce();
  // Node index 1 is in the write sets of entries e ≡ 0 or 1 (mod 4): half of them.
  t.like(progress, { segmentsReplaced: 1, entriesCopied: 20, ledgersPending: 0 });
  const after = (await client.getMetadata(before.ledgerId))!;
  t.is(after.ensembles[0]!.nodes[1], spare);
  for (let e = 0; e < 40; e++) {
    t.is(pool.holders(after, e).length, 2, `entry ${e}`);
    let onSpare = true;
    try {
      pool.store(spare).read(before.ledgerId, e);
    } catch {
      onSpare = false;
    }
    t.is(onSpare, e % 4 === 0 || e % 4 === 1, `entry ${e} on the spare`);
  }
});
