// The hand-written codecs of the hot messages (region-node/grpc-codec.ts on the node,
// client/grpc-codec.ts in the client) against protobufjs through proto-loader, the
// reference every other client of admq.proto matches: same bytes understood, same values
// out, malformed bytes refused with an error, never a hang or a crash.
import test from 'ava';
import * as fc from 'fast-check';
import type * as grpc from '@grpc/grpc-js';
import { decodeConsumeMessages, decodeProduceReceipt, encodeSendBatch, type SendItem } from '../client/grpc-codec.ts';
import { loadPackageDefinition, type OutboundMessage } from '../proto/index.ts';
import type { Entry } from './storage/entry-codec.ts';
import { decodeProduceSend, encodeMessageBatch, encodeSendReceipt } from './grpc-codec.ts';
import { toWireMessage } from './grpc-service.ts';
import type { AppendResult } from './storage/log-store.ts';

const service = loadPackageDefinition()['admq.v1.Broker'] as grpc.ServiceDefinition;
const produce = service.Produce as grpc.MethodDefinition<unknown, unknown>;
const consume = service.Consume as grpc.MethodDefinition<unknown, unknown>;

/** fast-check settings: ADMQ_SEED replays a failure (fast-check prints the seed it used). */
const runs = (numRuns: number): fc.Parameters<unknown> => ({ numRuns, ...(process.env.ADMQ_SEED ? { seed: Number(process.env.ADMQ_SEED) } : {}) });

/** Numbers and decimal strings are the same 64-bit value; compare them as strings. */
function normalize(value: unknown): unknown {
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (Buffer.isBuffer(value)) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) Object.defineProperty(out, k, { value: normalize(v), enumerable: true });
    return out;
  }
  return value;
}

const safeU64 = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300 }), fc.maxSafeInteger().map(Math.abs));
const anyU64 = fc.oneof(safeU64, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => v.toString()));
const text = fc.string({ unit: 'grapheme', maxLength: 12 });
const properties = fc.oneof(
  fc.constant({} as Record<string, string>),
  fc.array(fc.tuple(fc.oneof(text, fc.constant('__proto__')), text), { maxLength: 4 }).map((pairs) => Object.fromEntries(pairs)),
);
const payload = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));

const outbound: fc.Arbitrary<OutboundMessage> = fc.record({
  sequenceId: anyU64,
  payload,
  key: text,
  hasKey: fc.boolean(),
  properties,
  eventTimeMs: anyU64,
});

test('codec: the node decodes any send batch protobufjs encodes, as proto-loader does', (t) => {
  fc.assert(
    fc.property(anyU64, fc.array(outbound, { maxLength: 8 }), (requestId, messages) => {
      const bytes = produce.requestSerialize({ send: { requestId, messages } });
      const fast = decodeProduceSend(bytes);
      if (messages.length === 0 && (requestId === 0 || requestId === '0')) return; // an empty send may encode as nothing at all
      t.deepEqual(normalize(fast), normalize({ request: 'send', send: (produce.requestDeserialize(bytes) as { send: unknown }).send }));
    }),
    runs(300),
  );
});

test('codec: the node leaves open requests, empty and repeated sends to proto-loader', (t) => {
  t.is(decodeProduceSend(produce.requestSerialize({ open: { topic: 'a/b/c', producerName: 'p' } })), undefined);
  t.is(decodeProduceSend(Buffer.alloc(0)), undefined);
  const send = produce.requestSerialize({ send: { requestId: 1, messages: [] } }) as Buffer;
  t.is(decodeProduceSend(Buffer.concat([send, send])), undefined);
  // An `open` after a `send` wins, as protobuf's oneof rules say.
  t.is(decodeProduceSend(Buffer.concat([send, produce.requestSerialize({ open: { topic: 'x' } }) as Buffer])), undefined);
});

test('codec: unknown fields are skipped; wrong wire types and truncations are refused', (t) => {
  const bytes = produce.requestSerialize({ send: { requestId: 5, messages: [{ sequenceId: 3, payload: Buffer.from('hi'), key: 'k', hasKey: true, properties: { a: 'b' }, eventTimeMs: 9 }] } }) as Buffer;
  // Field 15 of each wire type (varint, fixed64, length-delimited, group, fixed32) before the send.
  const unknown = Buffer.from([0x78, 0x96, 0x01, 0x79, 1, 2, 3, 4, 5, 6, 7, 8, 0x7a, 2, 0xaa, 0xbb, 0x7b, 0x08, 0x01, 0x7c, 0x7d, 1, 2, 3, 4]);
  t.deepEqual(normalize(decodeProduceSend(Buffer.concat([unknown, bytes]))), normalize(decodeProduceSend(bytes)));
  for (let cut = 1; cut < bytes.length; cut++) t.throws(() => decodeProduceSend(bytes.subarray(0, cut)), { instanceOf: RangeError }, `cut at ${cut}`);
  t.throws(() => decodeProduceSend(Buffer.from([0x10, 0x01])), { instanceOf: RangeError }); // send as a varint
  t.throws(() => decodeProduceSend(Buffer.from([0x12, 0x02, 0x08, 0xff])), { instanceOf: RangeError }); // request_id cut inside the batch
  t.throws(() => decodeProduceSend(Buffer.from([0x12, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), { instanceOf: RangeError }); // 11-byte varint
});

test('codec: random bytes never hang or crash the decoders, they decode or throw RangeError', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 96 }), (raw) => {
      const bytes = Buffer.from(raw);
      for (const decode of [decodeProduceSend, decodeProduceReceipt, decodeConsumeMessages]) {
        try {
          decode(bytes);
        } catch (error) {
          if (!(error instanceof RangeError)) throw error;
        }
      }
      t.pass();
    }),
    runs(2000),
  );
});

const sendItem: fc.Arbitrary<SendItem> = fc.record({
  sequenceId: safeU64,
  payload,
  key: fc.option(text, { nil: undefined }),
  properties: fc.option(properties, { nil: undefined }),
  eventTimeMs: safeU64,
});

test('codec: a send batch the client encodes reads back through proto-loader unchanged', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.array(sendItem, { maxLength: 8 }), (requestId, items) => {
      const bytes = encodeSendBatch(requestId, items);
      const expected = {
        requestId,
        messages: items.map((m) => ({ sequenceId: m.sequenceId, payload: m.payload, key: m.key ?? '', hasKey: m.key !== undefined, properties: m.properties ?? {}, eventTimeMs: m.eventTimeMs })),
      };
      t.deepEqual(normalize((produce.requestDeserialize(bytes) as { send?: unknown }).send), normalize(expected));
      t.deepEqual(normalize(decodeProduceSend(bytes)?.send), normalize(expected));
    }),
    runs(300),
  );
});

const appendResult: fc.Arbitrary<AppendResult> = fc.record({
  sequenceId: safeU64,
  offset: fc.oneof(fc.constant(-1), safeU64),
  duplicate: fc.boolean(),
  hlc: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
});

test('codec: receipts the node encodes read the same through proto-loader and the client', (t) => {
  fc.assert(
    fc.property(anyU64, fc.array(appendResult, { maxLength: 8 }), (requestId, results) => {
      const bytes = encodeSendReceipt(requestId, results);
      const expected = { requestId, results: results.map((r) => ({ sequenceId: r.sequenceId, offset: r.offset, duplicate: r.duplicate, hlc: r.hlc })) };
      t.deepEqual(normalize((produce.responseDeserialize(bytes) as { receipt?: unknown }).receipt), normalize(expected));
      const fast = decodeProduceReceipt(bytes);
      t.is(fast?.response, 'receipt');
      t.deepEqual(normalize(fast?.receipt), normalize(expected));
    }),
    runs(300),
  );
  const other = produce.responseSerialize({ opened: { topic: 't', producerName: 'p', lastSequenceId: -1, region: 'r' } });
  t.is(decodeProduceReceipt(other), undefined);
  t.is(decodeProduceReceipt(produce.responseSerialize({ error: { code: 'X', message: 'm', requestId: 1 } })), undefined);
});

const entry: fc.Arbitrary<Entry> = fc.record({
  offset: safeU64,
  originRegion: text,
  originPosition: safeU64,
  hlc: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  producerName: text,
  sequenceId: safeU64,
  publishTimeMs: safeU64,
  eventTimeMs: safeU64,
  key: fc.option(text, { nil: undefined }),
  properties,
  payload,
});

test('codec: message batches the node encodes read the same through proto-loader and the client', (t) => {
  fc.assert(
    fc.property(fc.array(fc.record({ entry, redeliveryCount: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 ** 32 - 1 })) }), { maxLength: 6 }), (deliveries) => {
      const bytes = encodeMessageBatch(deliveries);
      const expected = deliveries.map(toWireMessage);
      const reference = consume.responseDeserialize(bytes) as { messages?: { messages: unknown[] } };
      t.deepEqual(normalize(reference.messages?.messages ?? []), normalize(expected));
      const fast = decodeConsumeMessages(bytes);
      t.is(fast?.response, 'messages');
      t.deepEqual(normalize(fast?.messages?.messages), normalize(expected));
    }),
    runs(300),
  );
  t.is(decodeConsumeMessages(consume.responseSerialize({ subscribed: { topic: 't', subscription: 's', consumerName: 'c', region: 'r' } })), undefined);
});

test('codec: the hand-written codecs know every field admq.proto gives the hot messages', (t) => {
  // A field added to one of these messages must be added to region-node/grpc-codec.ts and
  // client/grpc-codec.ts too: their decoders would skip it and their encoders leave it out.
  const known: Record<string, Array<[string, number, string]>> = {
    ProduceRequest: [['open', 1, 'TYPE_MESSAGE'], ['send', 2, 'TYPE_MESSAGE']],
    SendBatch: [['requestId', 1, 'TYPE_UINT64'], ['messages', 2, 'TYPE_MESSAGE']],
    OutboundMessage: [['sequenceId', 1, 'TYPE_UINT64'], ['payload', 2, 'TYPE_BYTES'], ['key', 3, 'TYPE_STRING'], ['hasKey', 4, 'TYPE_BOOL'], ['properties', 5, 'TYPE_MESSAGE'], ['eventTimeMs', 6, 'TYPE_UINT64']],
    ProduceResponse: [['opened', 1, 'TYPE_MESSAGE'], ['receipt', 2, 'TYPE_MESSAGE'], ['error', 3, 'TYPE_MESSAGE']],
    SendReceipt: [['requestId', 1, 'TYPE_UINT64'], ['results', 2, 'TYPE_MESSAGE']],
    SendResult: [['sequenceId', 1, 'TYPE_UINT64'], ['offset', 2, 'TYPE_INT64'], ['duplicate', 3, 'TYPE_BOOL'], ['hlc', 4, 'TYPE_FIXED64']],
    ConsumeResponse: [['subscribed', 1, 'TYPE_MESSAGE'], ['messages', 2, 'TYPE_MESSAGE'], ['seekDone', 3, 'TYPE_MESSAGE'], ['activeChange', 4, 'TYPE_MESSAGE'], ['error', 5, 'TYPE_MESSAGE']],
    MessageBatch: [['messages', 1, 'TYPE_MESSAGE']],
    Message: [
      ['offset', 1, 'TYPE_UINT64'], ['originRegion', 2, 'TYPE_STRING'], ['originPosition', 3, 'TYPE_UINT64'], ['hlc', 4, 'TYPE_FIXED64'],
      ['producerName', 5, 'TYPE_STRING'], ['sequenceId', 6, 'TYPE_UINT64'], ['publishTimeMs', 7, 'TYPE_UINT64'], ['key', 8, 'TYPE_STRING'],
      ['hasKey', 9, 'TYPE_BOOL'], ['properties', 10, 'TYPE_MESSAGE'], ['payload', 11, 'TYPE_BYTES'], ['redeliveryCount', 12, 'TYPE_UINT32'], ['eventTimeMs', 13, 'TYPE_UINT64'],
    ],
  };
  const definition = loadPackageDefinition();
  for (const [name, fields] of Object.entries(known)) {
    const type = (definition[`admq.v1.${name}`] as { type: { field: Array<{ name: string; number: number; type: string }> } }).type;
    t.deepEqual(type.field.map((f) => [f.name, f.number, f.type]), fields, `admq.v1.${name}`);
  }
});
