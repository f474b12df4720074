// Reads that cross many small stored chunks, from disk (a reopened store has no chunk
// cache): every entry once, in offset order, bounded by the count asked for and by the
// durable end. Scans that pass over the entries of some origins, cached and from disk.
import test from 'ava';
import { packHlc } from '../../conflict/index.ts';
import { removeTempDir, tempDir } from '../../test-support/temp-dir.ts';
import type { Entry } from './entry-codec.ts';
import { LogStore } from './log-store.ts';

test('read: across 300 one-entry chunks from disk, in order, each entry once, bounded', async (t) => {
  const dataDir = tempDir('admq-read-');
  t.teardown(() => removeTempDir(dataDir));
  const options = { dataDir, region: 'shanghai', durability: 'none' as const, readPhysicalMs: Date.now, maxClockOffsetMs: 500 };
  const writer = LogStore.open(options);
  const written = writer.openLog(1, 'persistent://public/default/read');
  for (let i = 0; i < 300; i++) {
    await writer.append(written, [{ producerName: 'p', sequenceId: i, key: undefined, properties: {}, payload: Buffer.from(`m${i}`), eventTimeMs: 0 }]);
  }
  await writer.close();
  const store = LogStore.open(options);
  t.teardown(() => store.close());
  const log = store.openLog(1, 'persistent://public/default/read');
  const offsets = (from: number, max: number): number[] => store.read(log, from, max).map((e) => e.offset);
  const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
  t.deepEqual(offsets(0, 250), range(0, 250));
  t.deepEqual(offsets(100, 1000), range(100, 300), 'stops at the durable end');
  t.deepEqual(offsets(299, 10), [299]);
  t.deepEqual(offsets(300, 10), []);
  t.deepEqual(store.read(log, 42, 1).map((e) => e.payload.toString()), ['m42']);
});

test('skipOrigins: passes over the entries of skipped origins, cached or from disk, without passing a kept one, the bound or the end', async (t) => {
  const dataDir = tempDir('admq-skip-');
  t.teardown(() => removeTempDir(dataDir));
  const now = Date.now();
  const options = { dataDir, region: 'shanghai', durability: 'none' as const, readPhysicalMs: () => now, maxClockOffsetMs: 500 };
  const positions = new Map<string, number>();
  const remote = (origin: string): Entry => {
    const position = (positions.get(origin) ?? 0) + 1;
    positions.set(origin, position);
    return { offset: 0, originRegion: origin, originPosition: position, hlc: packHlc(now - 1000, position), producerName: `${origin}-p`, sequenceId: position, publishTimeMs: now - 1000, eventTimeMs: 0, key: undefined, properties: {}, payload: Buffer.from(`${origin}${position}`) };
  };
  const local = (n: number): Promise<unknown> => {
    const base = positions.get('local') ?? 0;
    positions.set('local', base + n);
    return writer.append(written, Array.from({ length: n }, (_, i) => ({ producerName: 'p', sequenceId: base + i, key: undefined, properties: {}, payload: Buffer.from(`m${base + i}`), eventTimeMs: 0 })));
  };
  const writer = LogStore.open(options);
  const written = writer.openLog(1, 'persistent://public/default/skip');
  // Chunks (one per commit): 5 local | 10 beijing | 3 beijing + 2 local (one commit) | 6 shenzhen | 1 local.
  await local(5);
  await writer.appendReplicated(written, Array.from({ length: 10 }, () => remote('beijing')));
  await Promise.all([writer.appendReplicated(written, Array.from({ length: 3 }, () => remote('beijing'))), local(2)]);
  await writer.appendReplicated(written, Array.from({ length: 6 }, () => remote('shenzhen')));
  await local(1);
  const entries = writer.read(written, 0, 1000);
  t.is(entries.length, 27, 'all entries stored');
  // The reopened store is checked before anything reads it: its chunks are all on disk.
  const check = (store: LogStore, log: ReturnType<LogStore['openLog']>, label: string): void => {
    const notLocal = (origin: string): boolean => origin !== 'shanghai';
    // The reference: the first entry from `from` on, within the bound, that is kept.
    const expected = (from: number, max: number, skip: (origin: string) => boolean): number => {
      const end = Math.min(entries.length, from + max);
      for (let o = from; o < end; o++) if (!skip((entries[o] as Entry).originRegion)) return o;
      return Math.max(from, end);
    };
    for (const skip of [notLocal, (o: string) => o === 'beijing', () => true, () => false]) {
      for (let from = 0; from <= 28; from++) {
        for (const max of [1, 3, 7, 1000]) {
          t.is(store.skipOrigins(log, from, max, skip), expected(from, max, skip), `${label}: from ${from}, max ${max}, ${skip.toString()}`);
        }
      }
    }
    t.is(store.skipOrigins(log, 5, 1000, notLocal), 18, `${label}: over the beijing chunk and into the mixed one`);
    t.is(store.skipOrigins(log, 20, 1000, notLocal), 26, `${label}: over the shenzhen chunk to the last local entry`);
  };
  check(writer, written, 'cached');
  await writer.close();
  const store = LogStore.open(options);
  t.teardown(() => store.close());
  check(store, store.openLog(1, 'persistent://public/default/skip'), 'from disk');
});

test('chunk cache: bounded in entries and bytes across logs, the newest chunk kept; evicted chunks are read from disk', async (t) => {
  const dataDir = tempDir('admq-cache-');
  t.teardown(() => removeTempDir(dataDir));
  const entriesMax = 50;
  const bytesMax = 4000;
  const store = LogStore.open({ dataDir, region: 'shanghai', durability: 'none', readPhysicalMs: Date.now, maxClockOffsetMs: 500, chunkCacheEntriesMax: entriesMax, chunkCacheBytesMax: bytesMax });
  t.teardown(() => store.close());
  const logs = [store.openLog(1, 'persistent://public/default/cache-a'), store.openLog(2, 'persistent://public/default/cache-b')];
  const within = (what: string): void => {
    const s = store.chunkCacheStats();
    t.true(s.entries <= entriesMax && s.bytes <= bytesMax, `${what}: ${JSON.stringify(s)}`);
  };
  // One chunk per commit: 10 entries of ~20 bytes each, alternating between the logs.
  for (let i = 0; i < 40; i++) {
    const log = logs[i % 2]!;
    await store.append(log, Array.from({ length: 10 }, (_, j) => ({ producerName: 'p', sequenceId: i * 10 + j, key: undefined, properties: {}, payload: Buffer.from(`m${i}-${j}`.padEnd(20, '.')), eventTimeMs: 0 })));
    within(`after commit ${i}`);
  }
  t.true(store.chunkCacheStats().chunks > 0, 'recent chunks stay cached');
  // Both logs read back whole: what was evicted comes from disk, in order.
  const before = store.chunkCacheStats();
  for (const [n, log] of logs.entries()) {
    const read = store.read(log, 0, 1000);
    t.deepEqual(read.map((e) => e.offset), Array.from({ length: 200 }, (_, i) => i));
    t.deepEqual(read.slice(0, 3).map((e) => e.payload.toString().replace(/\.+$/, '')), [`m${n}-0`, `m${n}-1`, `m${n}-2`]);
    within(`after reading ${log.name}`);
  }
  const after = store.chunkCacheStats();
  // Each of the 40 chunks came from LMDB once: the chunks these reads cached pushed the
  // cached tail out before the reads reached it.
  t.is(after.misses - before.misses, 40);
  // The newest chunk, just read, is cached: reading it again is a hit.
  t.is(store.read(logs[1]!, 195, 10).length, 5);
  t.is(store.chunkCacheStats().hits, after.hits + 1);
  // A chunk larger than the bounds is still cached, alone: the newest always stays.
  await store.append(logs[0]!, Array.from({ length: 80 }, (_, j) => ({ producerName: 'q', sequenceId: j, key: undefined, properties: {}, payload: Buffer.alloc(100, 0x61), eventTimeMs: 0 })));
  t.like(store.chunkCacheStats(), { chunks: 1, entries: 80 });
  // Deleting a log releases its cached chunks.
  await store.append(logs[1]!, [{ producerName: 'p', sequenceId: 10_000, key: undefined, properties: {}, payload: Buffer.from('last'), eventTimeMs: 0 }]);
  t.is(store.chunkCacheStats().chunks, 1, 'the big chunk went with the next commit');
  await store.deleteLog(logs[1]!);
  t.like(store.chunkCacheStats(), { chunks: 0, entries: 0, bytes: 0 });
});
