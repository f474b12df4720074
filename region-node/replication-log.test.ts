// The region node's side of replication: append with dedupe by global id, atomically with
// its marks, origin fields untouched, clock skew refused, marks surviving a restart.
import test from 'ava';
import { ClockSkewError, packHlc } from '../conflict/index.ts';
import type { ReplicatedEntry } from '../replicator/index.ts';
import { tempDir } from '../test-support/temp-dir.ts';
import { start } from './index.ts';
import { createReplicationLog } from './replication-log.ts';

const NOW = 1_900_000_000_000;
const remote = (position: number, extra: Partial<ReplicatedEntry> = {}): ReplicatedEntry => ({
  originRegion: 'beijing', originPosition: position, hlc: packHlc(NOW - 1000 + position, 0), producerName: 'bj-producer', sequenceId: position,
  publishTimeMs: NOW - 1000 + position, eventTimeMs: 7, key: `k${position}`, properties: { from: 'bj' }, payload: Buffer.from(`bj${position}`), ...extra,
});

test('replicated appends: dedupe by (origin, position), origin fields kept, skew refused, marks survive restart', async (t) => {
  const dataDir = tempDir('admq-repl-log-');
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
  const dataDir = tempDir('admq-repl-shape-');
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

test('producer dedupe across regions: a resend accepted elsewhere is stored once; older ids arriving late are not lost; marks survive restart', async (t) => {
  const dataDir = tempDir('admq-repl-dedupe-');
  let node = await start({ dataDir, grpcPort: 0, adminPort: 0, region: 'shanghai' }, { log: () => {}, readPhysicalMs: () => NOW });
  let log = createReplicationLog(node.broker);
  const topic = 'persistent://public/default/failover';
  await log.ensureTopic(topic, {});
  const logOf = (): import('./storage/log-store.ts').TopicLog => node.broker.topic(topic).log;
  const local = async (ids: number[]): Promise<boolean[]> =>
    (await node.broker.store.append(logOf(), ids.map((id) => ({ producerName: 'mover', sequenceId: id, payload: Buffer.from(`sh${id}`), properties: {}, eventTimeMs: 0, key: undefined })))).map((r) => r.duplicate);
  // Beijing accepted 0..9 from "mover"; then mover failed over here and resent 5..14.
  t.deepEqual(await log.appendReplicated(topic, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((p) => remote(p, { producerName: 'mover', sequenceId: p }))), { appended: 10, duplicates: 0 });
  t.deepEqual(await local([5, 6, 7, 8, 9, 10, 11, 12, 13, 14]), [true, true, true, true, true, false, false, false, false, false]);
  // Mover then sent 20..24 in beijing, while beijing still held 15..19 back (a partition):
  // they arrive out of id order, and none of them is a duplicate.
  t.deepEqual(await log.appendReplicated(topic, [10, 11, 12, 13, 14].map((p) => remote(p, { producerName: 'mover', sequenceId: p + 10 }))), { appended: 5, duplicates: 0 });
  t.deepEqual(await log.appendReplicated(topic, [15, 16, 17].map((p) => remote(p, { producerName: 'mover', sequenceId: p }))), { appended: 3, duplicates: 0 }, 'ids 15..17 are older than 24 but new here');
  // Beijing's own copies of 10..14 (it stored them too before learning of ours): skipped, but
  // its origin mark still advances, so its sender does not ship them again.
  t.deepEqual(await log.appendReplicated(topic, [18, 19].map((p) => remote(p, { producerName: 'mover', sequenceId: p - 8 }))), { appended: 0, duplicates: 2 });
  t.is(log.originMarks(topic).get('beijing'), 19);
  const ids = log.read(topic, 0, 100).map((e) => e.sequenceId);
  t.deepEqual([...ids].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 23, 24], 'each id once');
  await node.close();
  node = await start({ dataDir, grpcPort: 0, adminPort: 0, region: 'shanghai' }, { log: () => {}, readPhysicalMs: () => NOW });
  log = createReplicationLog(node.broker);
  t.deepEqual(await local([16, 18, 25]), [true, false, false], 'after a restart: 16 is known, 18 was never stored, 25 is new');
  t.is(node.broker.topic(topic).lastSequenceId('mover'), 25);
  await node.close();
});
