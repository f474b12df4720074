// The region node's side of replication: append with dedupe by global id, atomically with
// its marks, origin fields untouched, clock skew refused, marks surviving a restart.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ClockSkewError, packHlc } from '../conflict/index.ts';
import type { ReplicatedEntry } from '../replicator/index.ts';
import { start } from './index.ts';
import { createReplicationLog } from './replication-log.ts';

const NOW = 1_900_000_000_000;
const remote = (position: number, extra: Partial<ReplicatedEntry> = {}): ReplicatedEntry => ({
  originRegion: 'beijing', originPosition: position, hlc: packHlc(NOW - 1000 + position, 0), producerName: 'bj-producer', sequenceId: position,
  publishTimeMs: NOW - 1000 + position, eventTimeMs: 7, key: `k${position}`, properties: { from: 'bj' }, payload: Buffer.from(`bj${position}`), ...extra,
});

test('replicated appends: dedupe by (origin, position), origin fields kept, skew refused, marks survive restart', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'admq-repl-log-'));
  let node = await start({ dataDir, grpcPort: 0, adminPort: 0, region: 'shanghai' }, { log: () => {}, readPhysicalMs: () => NOW });
  let log = createReplicationLog(node.broker);
  const topic = 'persistent://public/default/replicated';
  t.true(await log.ensureTopic(topic, {}));
  t.false(await log.ensureTopic(topic, {}), 'idempotent'); // idempotent
  t.deepEqual(await log.appendReplicated(topic, [0, 1, 2, 3, 4].map((p) => remote(p))), { appended: 5, duplicates: 0 });
  t.deepEqual(await log.appendReplicated(topic, [3, 4, 5, 6, 7].map((p) => remote(p))), { appended: 3, duplicates: 2 });
  t.is(log.originMarks(topic).get('beijing'), 7);
  const stored = log.read(topic, 0, 100);
  t.deepEqual(stored.map((e) => e.offset), [0, 1, 2, 3, 4, 5, 6, 7]);
  t.deepEqual(stored.map((e) => e.originPosition), [0, 1, 2, 3, 4, 5, 6, 7]);
  t.like(stored[5], { originRegion: 'beijing', producerName: 'bj-producer', sequenceId: 5, eventTimeMs: 7, key: 'k5', properties: { from: 'bj' } });
  t.is(stored[5]?.hlc, remote(5).hlc);
  t.is(stored[5]?.publishTimeMs, remote(5).publishTimeMs, 'publish time is the origin’s, not ours');
  // A local write after receiving gets an HLC above everything received (happened-before).
  const tooFar = remote(8, { hlc: packHlc(NOW + 501, 0) });
  await t.throwsAsync(log.appendReplicated(topic, [tooFar]), { instanceOf: ClockSkewError });
  t.is(log.originMarks(topic).get('beijing'), 7, 'a refused batch leaves nothing behind');
  await node.close();
  node = await start({ dataDir, grpcPort: 0, adminPort: 0, region: 'shanghai' }, { log: () => {}, readPhysicalMs: () => NOW });
  log = createReplicationLog(node.broker);
  t.is(log.originMarks(topic).get('beijing'), 7, 'marks survive a restart');
  t.deepEqual(await log.appendReplicated(topic, [6, 7, 8].map((p) => remote(p))), { appended: 1, duplicates: 2 });
  t.true(node.broker.store.clock.now() > remote(8).hlc);
  await node.close();
});

test('a replicated partition creates its whole partitioned topic; a shape that disagrees is refused', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'admq-repl-shape-'));
  const node = await start({ dataDir, grpcPort: 0, adminPort: 0, region: 'shanghai' }, { log: () => {}, readPhysicalMs: () => NOW });
  t.teardown(() => node.close());
  const log = createReplicationLog(node.broker);
  const parent = 'persistent://public/default/orders';
  t.true(await log.ensureTopic(`${parent}-partition-1`, { partitionOf: { parent, partitions: 3 } }));
  t.is(node.broker.metadata.getTopic(parent)?.partitions, 3);
  for (const i of [0, 1, 2]) t.truthy(node.broker.metadata.getTopic(`${parent}-partition-${i}`));
  t.deepEqual(log.topicShape(`${parent}-partition-2`), { partitionOf: { parent, partitions: 3 } });
  t.deepEqual(log.topicShape(parent), {});
  const error = await t.throwsAsync(log.ensureTopic(`${parent}-partition-5`, { partitionOf: { parent, partitions: 6 } }));
  t.regex(error?.message ?? '', /partition counts differ/);
});
