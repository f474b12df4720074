import test from 'ava';
import fc from 'fast-check';
import { AdmqError } from '../errors.ts';
import { ChecksumError, chunkKey, chunkKeyOffset, decodeChunk, encodeChunk, peekChunkOrigins, type Entry } from './entry-codec.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
test.before(() => console.log(`entry codec property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const entryArb = fc.record({
  offset: fc.integer({ min: 0, max: 2 ** 40 }),
  originRegion: fc.string({ maxLength: 20 }),
  originPosition: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  hlc: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  producerName: fc.string({ maxLength: 40 }),
  sequenceId: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  publishTimeMs: fc.integer({ min: 0, max: 2 ** 45 }),
  eventTimeMs: fc.integer({ min: 0, max: 2 ** 45 }),
  key: fc.option(fc.string({ maxLength: 50 }), { nil: undefined }),
  properties: fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }), fc.string({ maxLength: 30 })),
  payload: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
});

test('chunk codec: every field survives encode/decode, in order', (t) => {
  fc.assert(
    fc.property(fc.array(entryArb, { minLength: 1, maxLength: 8 }), (entries: Entry[]) => {
      const decoded = decodeChunk(encodeChunk(entries), 'test');
      t.deepEqual(decoded.map((e) => ({ ...e, payload: Buffer.from(e.payload) })), entries);
      return true;
    }),
    { seed, numRuns: 200 },
  );
});

test('chunk codec: a flipped bit in any entry body is reported as a checksum error, never delivered', (t) => {
  const entries: Entry[] = Array.from({ length: 4 }, (_, i) => ({
    offset: i, originRegion: 'r', originPosition: i, hlc: BigInt(i + 1), producerName: 'p', sequenceId: i,
    publishTimeMs: 1000 + i, eventTimeMs: 0, key: `k${i}`, properties: { a: 'b' }, payload: Buffer.alloc(64, i),
  }));
  const chunk = encodeChunk(entries);
  let detected = 0;
  // Every byte after the chunk header and each entry's length/CRC prefix belongs to a body.
  for (let at = 6; at < chunk.length; at++) {
    const copy = Buffer.from(chunk);
    copy[at] = (copy[at] as number) ^ 0x10;
    try {
      decodeChunk(copy, 'test');
    } catch (error) {
      t.true(error instanceof AdmqError, `byte ${at}: typed error`);
      if (error instanceof ChecksumError) detected++;
      continue;
    }
    t.fail(`corruption at byte ${at} went unnoticed`);
  }
  t.true(detected > chunk.length / 2);
});

test('chunk codec: peeking origins gives the offset and origin region of each entry, as a full decode does', (t) => {
  fc.assert(
    fc.property(fc.array(entryArb, { minLength: 1, maxLength: 8 }), (entries: Entry[]) => {
      const peeked = peekChunkOrigins(encodeChunk(entries), 'test');
      t.deepEqual(peeked, { offsets: entries.map((e) => e.offset), origins: entries.map((e) => e.originRegion) });
      return true;
    }),
    { seed, numRuns: 200 },
  );
});

test('chunk codec: a peek verifies checksums too: a flipped bit is a typed error, never a misread origin', (t) => {
  const entries: Entry[] = Array.from({ length: 3 }, (_, i) => ({
    offset: 10 + i, originRegion: i === 1 ? 'beijing' : 'shanghai', originPosition: i, hlc: 1n, producerName: 'p', sequenceId: i,
    publishTimeMs: 1, eventTimeMs: 0, key: undefined, properties: {}, payload: Buffer.alloc(16, i),
  }));
  const chunk = encodeChunk(entries);
  for (let at = 0; at < chunk.length; at++) {
    const copy = Buffer.from(chunk);
    copy[at] = (copy[at] as number) ^ 0x01;
    const error = t.throws(() => peekChunkOrigins(copy, 'test'), undefined, `byte ${at}`);
    t.true(error instanceof AdmqError, `byte ${at}: typed error`);
  }
});

test('chunk codec: random bytes give a typed error, never a crash', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const buf = Buffer.from(bytes);
      if (buf.length > 0) buf[0] = 0xad;
      if (buf.length > 1) buf[1] = 1;
      try {
        decodeChunk(buf, 'fuzz');
      } catch (error) {
        if (!(error instanceof AdmqError)) return false;
      }
      try {
        peekChunkOrigins(buf, 'fuzz');
      } catch (error) {
        return error instanceof AdmqError;
      }
      return true;
    }),
    { seed, numRuns: 2000 },
  );
  t.pass();
});

test('chunk keys sort by topic, then offset', (t) => {
  const keys = [chunkKey(2, 0), chunkKey(1, 2 ** 40), chunkKey(1, 5), chunkKey(1, 300)];
  const sorted = [...keys].sort(Buffer.compare);
  t.deepEqual(sorted.map((k) => [k.readUInt32BE(0), chunkKeyOffset(k)]), [[1, 5], [1, 300], [1, 2 ** 40], [2, 0]]);
});

test('chunk codec: encoding into a reused scratch buffer gives the same bytes as a fresh one', (t) => {
  fc.assert(
    fc.property(fc.array(entryArb, { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 4096 }), (entries: Entry[], scratchBytes) => {
      const scratch = Buffer.alloc(scratchBytes, 0xee);
      const fresh = encodeChunk(entries);
      const reused = encodeChunk(entries, scratch);
      t.deepEqual(Buffer.from(reused), fresh);
      // A scratch buffer that is large enough is used, not copied; a small one is left alone.
      if (scratchBytes >= fresh.length) t.is(reused.buffer, scratch.buffer);
      else t.true(scratch.every((b) => b === 0xee));
      return true;
    }),
    { seed, numRuns: 200 },
  );
});

test('chunk codec: values outside the stored ranges are refused, not wrapped', (t) => {
  const base: Entry = {
    offset: 1, originRegion: 'r', originPosition: 1, hlc: 1n, producerName: 'p', sequenceId: 1,
    publishTimeMs: 1, eventTimeMs: 0, key: undefined, properties: {}, payload: Buffer.alloc(1),
  };
  t.throws(() => encodeChunk([{ ...base, hlc: 2n ** 64n }]), { instanceOf: RangeError });
  t.throws(() => encodeChunk([{ ...base, hlc: -1n }]), { instanceOf: RangeError });
  t.throws(() => encodeChunk([{ ...base, eventTimeMs: -1 }]), { instanceOf: RangeError });
  t.throws(() => encodeChunk([{ ...base, sequenceId: 2 ** 53 }]), { instanceOf: RangeError });
  t.throws(() => encodeChunk([{ ...base, offset: 1.5 }]), { instanceOf: RangeError });
});
