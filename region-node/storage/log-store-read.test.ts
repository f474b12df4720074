// Reads that cross many small stored chunks, from disk (a reopened store has no chunk
// cache): every entry once, in offset order, bounded by the count asked for and by the
// durable end.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogStore } from './log-store.ts';

test('read: across 300 one-entry chunks from disk, in order, each entry once, bounded', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'admq-read-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
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
