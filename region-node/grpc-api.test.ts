// The gRPC contract under bad input: typed errors, the node keeps serving, nothing acked lost.
import * as grpc from '@grpc/grpc-js';
import { prng } from '../test-support/random.ts';
import test from 'ava';
import { AdmqClient, AdmqClientError, ErrorCode, type Message } from '../client/index.ts';
import { ERROR_CODE_METADATA_KEY, loadPackageDefinition, type ProduceResponse } from '../proto/index.ts';
import { receiveMany, startFixture, type Fixture } from '../test-support/node-fixture.ts';

let f: Fixture;
test.before(async () => {
  f = await startFixture({ messageBytesMax: 4096 });
});
test.after.always(() => f.close());


type RawCall = grpc.ClientDuplexStream<Buffer, Buffer>;
/** A raw client whose frames we write byte for byte. */
function rawStream(method: 'Produce' | 'Consume'): RawCall {
  const client = new grpc.Client(f.node.grpcAddress, grpc.credentials.createInsecure());
  const identity = (b: Buffer) => b;
  return client.makeBidiStreamRequest(`/admq.v1.Broker/${method}`, identity, identity) as RawCall;
}

function statusOf(call: RawCall): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    call.on('data', () => {});
    call.on('error', () => {});
    call.on('status', resolve);
  });
}

test('bad input: invalid topic names name the wrong part', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['public/default', /must have the form/],
    ['public/de fault/x', /namespace name "de fault"/],
    ['pub!ic/default/x', /tenant name "pub!ic"/],
    ['public/default/' + 'x'.repeat(300), /the limit is 255/],
    ['non-persistent://public/default/x', /only persistent:\/\//],
  ];
  for (const [name, message] of cases) {
    const error = await t.throwsAsync(f.client.createProducer({ topic: name }), { instanceOf: AdmqClientError });
    t.is(error?.code, ErrorCode.TopicName, name);
    t.regex(error?.message ?? '', message);
  }
});

test('bad input: unknown topic, namespace and tenant are typed', async (t) => {
  const topic = await t.throwsAsync(f.client.createProducer({ topic: 'public/default/nope' }), { instanceOf: AdmqClientError });
  t.is(topic?.code, ErrorCode.TopicNotFound);
  const ns = await t.throwsAsync(f.client.subscribe({ topic: 'public/nope/x', subscription: 's' }), { instanceOf: AdmqClientError });
  t.is(ns?.code, ErrorCode.NamespaceNotFound);
  const tenant = await t.throwsAsync(f.client.createProducer({ topic: 'nope/x/y' }), { instanceOf: AdmqClientError });
  t.is(tenant?.code, ErrorCode.TenantNotFound);
  const sub = await t.throwsAsync(f.admin.deleteSubscription(await f.topic(), 'missing'), { instanceOf: AdmqClientError });
  t.is(sub?.code, ErrorCode.SubscriptionNotFound);
});

test('bad input: a message over messageBytesMax is refused by the node; the producer goes on', async (t) => {
  const topic = await f.topic();
  // This client believes larger messages are fine, so the node's own check is what refuses it.
  const loose = new AdmqClient({ serviceUrl: f.node.grpcAddress, messageBytesMax: 1024 * 1024 });
  const producer = await loose.createProducer({ topic, batchingMaxMessages: 1 });
  const ok1 = await producer.send({ payload: 'small' });
  const error = await t.throwsAsync(producer.send({ payload: Buffer.alloc(5000) }), { instanceOf: AdmqClientError });
  t.is(error?.code, ErrorCode.MessageTooLarge);
  const ok2 = await producer.send({ payload: 'after' });
  t.is(ok2.offset, ok1.offset + 1);
  // The client's own check refuses before sending.
  const strict = await f.client.createProducer({ topic });
  const local = await t.throwsAsync(strict.send({ payload: Buffer.alloc(5 * 1024 * 1024 + 1) }), { instanceOf: AdmqClientError });
  t.is(local?.code, ErrorCode.MessageTooLarge);
  await loose.close();
});

test('dedupe: a raw resend of a stored sequence id is reported duplicate and stored once', async (t) => {
  const topic = await f.topic();
  const pkg = grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as { admq: { v1: { Broker: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { Produce(): grpc.ClientDuplexStream<unknown, ProduceResponse> } } } };
  const stub = new pkg.admq.v1.Broker(f.node.grpcAddress, grpc.credentials.createInsecure());
  const responses: ProduceResponse[] = [];
  const call = stub.Produce();
  const next = () => new Promise<ProduceResponse>((resolve) => call.once('data', resolve));
  call.on('data', (r: ProduceResponse) => responses.push(r));
  call.write({ open: { topic, producerName: 'raw' } });
  t.is((await next()).opened?.lastSequenceId, '-1');
  const msg = (seq: number) => ({ sequenceId: seq, payload: Buffer.from(`s${seq}`), key: '', hasKey: false, properties: {}, eventTimeMs: 0 });
  call.write({ send: { requestId: 1, messages: [msg(0), msg(1)] } });
  const first = await next();
  call.write({ send: { requestId: 2, messages: [msg(1), msg(2)] } }); // 1 is a resend after a "lost" ack
  const second = await next();
  t.deepEqual(first.receipt?.results.map((r) => r.duplicate), [false, false]);
  t.deepEqual(second.receipt?.results.map((r) => [r.duplicate, r.offset]), [[true, '1'], [false, '2']]);
  call.end();
  stub.close();
  const consumer = await f.client.subscribe({ topic, subscription: 'check', initialPosition: 'earliest' });
  const got = await receiveMany(consumer, 3);
  t.deepEqual(got.map((m: Message) => m.payload.toString()), ['s0', 's1', 's2']);
  await t.throwsAsync(consumer.receive(200), { instanceOf: AdmqClientError });
  await consumer.close();
});

test('bad input: a malformed frame ends the stream with ADMQ_ERR_BAD_REQUEST in the trailers', async (t) => {
  for (const method of ['Produce', 'Consume'] as const) {
    const call = rawStream(method);
    const status = statusOf(call);
    call.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01])); // a length running past the end
    const s = await status;
    t.is(s.code, grpc.status.INVALID_ARGUMENT, method);
    t.is(s.metadata.get(ERROR_CODE_METADATA_KEY)[0], ErrorCode.BadRequest, method);
  }
});

test('fuzz: 200 random frames on Produce and Consume; the node keeps serving and loses nothing acked', async (t) => {
  const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
  t.log(`seed ${seed} (replay with ADMQ_SEED=${seed})`);
  const random = prng(seed);
  const topic = await f.topic();
  const producer = await f.client.createProducer({ topic });
  const before = await Promise.all(Array.from({ length: 50 }, (_, i) => producer.send({ payload: `keep${i}` })));
  for (let i = 0; i < 200; i++) {
    const call = rawStream(i % 2 === 0 ? 'Produce' : 'Consume');
    const status = statusOf(call);
    const length = Math.floor(random() * 64);
    const bytes = Buffer.alloc(length);
    for (let b = 0; b < length; b++) bytes[b] = Math.floor(random() * 256);
    call.write(bytes);
    call.end();
    const s = await status;
    // Any outcome but a crash is acceptable: a typed refusal, or a clean end for frames
    // that happen to decode as an empty request.
    if (s.code !== grpc.status.OK) t.truthy(s.metadata.get(ERROR_CODE_METADATA_KEY)[0], `frame ${i}: typed error (${s.details})`);
  }
  const after = await producer.send({ payload: 'after' });
  t.is(after.offset, (before[49]?.offset ?? 0) + 1);
  const consumer = await f.client.subscribe({ topic, subscription: 'fuzz', initialPosition: 'earliest' });
  const all = await receiveMany(consumer, 51);
  t.deepEqual(all.map((m) => m.payload.toString()), [...before.map((_, i) => `keep${i}`), 'after']);
  await consumer.close();
});

test('admin API: create, list, get, delete; conflicts and unknowns are typed', async (t) => {
  await f.admin.createTenant('bank', { allowedRegions: ['shanghai', 'beijing'] });
  t.like(await f.admin.call('GET', '/tenants/bank'), { name: 'bank', allowedRegions: ['shanghai', 'beijing'] });
  t.true((await f.admin.listTenants()).includes('bank'));
  const dup = await t.throwsAsync(f.admin.createTenant('bank'), { instanceOf: AdmqClientError });
  t.is(dup?.code, ErrorCode.AlreadyExists);
  await f.admin.createNamespace('bank/payments');
  t.deepEqual(await f.admin.listNamespaces('bank'), ['bank/payments']);
  const notEmpty = await t.throwsAsync(f.admin.deleteTenant('bank'), { instanceOf: AdmqClientError });
  t.is(notEmpty?.code, ErrorCode.NotEmpty);
  await f.admin.createTopic('bank/payments/in');
  const producer = await f.client.createProducer({ topic: 'bank/payments/in', producerName: 'teller' });
  await producer.send({ payload: 'x' });
  const stats = (await f.admin.topicStats('bank/payments/in')) as { entries: number; producers: Array<{ name: string }> };
  t.is(stats.entries, 1);
  t.deepEqual(stats.producers.map((p) => p.name), ['teller']);
  const inUse = await t.throwsAsync(f.admin.deleteTopic('bank/payments/in'), { instanceOf: AdmqClientError });
  t.is(inUse?.code, ErrorCode.InUse);
  await f.admin.deleteTopic('bank/payments/in', true);
  await f.admin.deleteNamespace('bank/payments');
  await f.admin.deleteTenant('bank');
  const gone = await t.throwsAsync(f.admin.call('GET', '/tenants/bank'), { instanceOf: AdmqClientError });
  t.is(gone?.code, ErrorCode.TenantNotFound);
  const badJson = await fetch(`${f.node.adminUrl}/admin/v1/tenants/x`, { method: 'PUT', body: '{nope' });
  t.is(badJson.status, 400);
  t.is(((await badJson.json()) as { code: string }).code, ErrorCode.BadRequest);
});
