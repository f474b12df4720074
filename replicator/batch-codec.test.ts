// The hand-written batch codec against protobufjs reading replication.proto: the same
// bytes either way, any valid encoding accepted, malformed bytes refused with an error.
import protobuf from 'protobufjs';
import test from 'ava';
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { decodeBatchRequest, encodeBatchRequest } from './batch-codec.ts';
import type { ReplicatedEntry } from './log.ts';
import { fromWire } from './wire.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
test.before(() => console.log(`batch codec property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const root = protobuf.loadSync(fileURLToPath(new URL('../proto/replication.proto', import.meta.url)));
const Request = root.lookupType('admq.replication.v1.ReplicateRequest');

const entry = fc.record({
  // Repeated names (decoded once, then reused while the bytes match) and any other text.
  originRegion: fc.oneof(fc.constantFrom('shanghai', 'beijing', 'bei', '上海', 'region-1', 'region-2'), fc.string({ maxLength: 12, unit: 'binary' })),
  originPosition: fc.maxSafeNat(),
  hlc: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  producerName: fc.oneof(fc.constantFrom('p-1', 'p-2', ''), fc.string({ maxLength: 12, unit: 'binary' })),
  sequenceId: fc.maxSafeNat(),
  publishTimeMs: fc.nat(),
  eventTimeMs: fc.nat(),
  key: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
  properties: fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }).filter((k) => k !== '__proto__'), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
  payload: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
}) as fc.Arbitrary<ReplicatedEntry>;

test('batch codec: what it encodes, protobufjs decodes to the same entries; what protobufjs encodes, it decodes', (t) => {
  fc.assert(
    fc.property(fc.nat(), fc.array(entry, { maxLength: 6 }), (batchId, entries) => {
      const bytes = encodeBatchRequest(batchId, entries);
      const viaProtobufjs = Request.toObject(Request.decode(bytes), { longs: String, bytes: Buffer, defaults: true }) as { batch: { batchId: string; entries: Array<Record<string, unknown>> } };
      t.is(Number(viaProtobufjs.batch.batchId), batchId);
      t.deepEqual(viaProtobufjs.batch.entries.map((w) => fromWire(w as never)), entries);
      // And the other way: protobufjs's encoding of the same message.
      const theirs = Buffer.from(Request.encode(Request.fromObject(viaProtobufjs)).finish());
      const ours = decodeBatchRequest(theirs);
      t.is(ours?.batch.batchId, batchId);
      t.deepEqual(ours?.batch.replicated.map(({ offset: _, ...e }) => ({ ...e, properties: { ...e.properties } })), entries);
    }),
    { seed, numRuns: 200 },
  );
});

test('batch codec: other requests are left to proto-loader; random and truncated bytes give an error or nothing, never a crash', (t) => {
  t.is(decodeBatchRequest(Buffer.from(Request.encode(Request.fromObject({ hello: { fromRegion: 'a', topic: 't' } })).finish())), undefined);
  t.is(decodeBatchRequest(Buffer.from(Request.encode(Request.fromObject({ heartbeat: { senderHlc: '5' } })).finish())), undefined);
  const good = encodeBatchRequest(7, [{ originRegion: 'a', originPosition: 1, hlc: 9n, producerName: 'p', sequenceId: 1, publishTimeMs: 1, eventTimeMs: 0, key: 'k', properties: { x: 'y' }, payload: Buffer.from('hello') }]);
  for (let cut = 1; cut < good.length; cut++) t.throws(() => decodeBatchRequest(good.subarray(0, cut)), undefined, `cut at ${cut}`);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeBatchRequest(Buffer.from(bytes));
      } catch (error) {
        t.true(error instanceof RangeError, String(error));
      }
    }),
    { seed, numRuns: 2000 },
  );
});
