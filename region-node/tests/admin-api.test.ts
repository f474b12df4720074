// Admin REST API: tenants, namespaces, topics, subscriptions, stats and typed errors.
import test from 'ava';
import { AdmqClientError, ErrorCode, type Producer } from '../../client/index.ts';
import { receiveN, startNode, stats, waitFor, type TestNode } from './helpers.ts';

let n: TestNode;
test.before(async () => {
  n = await startNode();
});
test.after.always(async () => {
  await n?.close();
});

async function raw(method: string, path: string, body?: string): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${n.node.adminUrl}/admin/v1${path}`, { method, body, headers: body ? { 'content-type': 'application/json' } : {} });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function code(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    if (error instanceof AdmqClientError) return error.code;
    throw error;
  }
}

test('admin: start() bootstraps tenant "public" and namespace "public/default"; health answers', async (t) => {
  t.true((await n.admin.listTenants()).includes('public'));
  t.true((await n.admin.listNamespaces('public')).includes('public/default'));
  t.deepEqual(await n.admin.health(), { status: 'ok', region: 'standalone' });
});

test('admin: tenants create, get, list, duplicate, delete', async (t) => {
  const created = (await n.admin.createTenant('acme', { allowedRegions: ['standalone', 'eu-1'] })) as { name: string; allowedRegions: string[] };
  t.is(created.name, 'acme');
  t.deepEqual(created.allowedRegions, ['standalone', 'eu-1']);
  const got = await n.admin.call<{ name: string; allowedRegions: string[] }>('GET', '/tenants/acme');
  t.is(got.name, 'acme');
  t.true((await n.admin.listTenants()).includes('acme'));
  t.is(await code(n.admin.createTenant('acme')), ErrorCode.AlreadyExists);
  const defaults = (await n.admin.createTenant('acme2')) as { allowedRegions: string[] };
  t.deepEqual(defaults.allowedRegions, ['standalone'], 'default allowed regions: this node');
  await n.admin.deleteTenant('acme');
  await n.admin.deleteTenant('acme2');
  t.false((await n.admin.listTenants()).includes('acme'));
  t.is(await code(n.admin.call('GET', '/tenants/acme')), ErrorCode.TenantNotFound);
  t.is(await code(n.admin.deleteTenant('acme')), ErrorCode.TenantNotFound);
  t.is(await code(n.admin.createTenant('bad name')), ErrorCode.TopicName);
  t.is(await code(n.admin.createTenant('r', { allowedRegions: ['Not A Region'] })), ErrorCode.BadRequest);
});

test('admin: namespaces create, get, list, delete; unknown tenant/namespace are typed; non-empty refuses delete', async (t) => {
  await n.admin.createTenant('nst');
  await n.admin.createNamespace('nst/a');
  await n.admin.createNamespace('nst/b');
  t.deepEqual((await n.admin.listNamespaces('nst')).sort(), ['nst/a', 'nst/b']);
  t.like(await n.admin.call('GET', '/namespaces/nst/a'), { tenant: 'nst', namespace: 'a' });
  t.is(await code(n.admin.createNamespace('nst/a')), ErrorCode.AlreadyExists);
  t.is(await code(n.admin.createNamespace('ghost/a')), ErrorCode.TenantNotFound);
  t.is(await code(n.admin.listNamespaces('ghost')), ErrorCode.TenantNotFound);
  t.is(await code(n.admin.call('GET', '/namespaces/nst/ghost')), ErrorCode.NamespaceNotFound);
  t.is(await code(n.admin.deleteNamespace('nst/ghost')), ErrorCode.NamespaceNotFound);
  t.is(await code(n.admin.deleteTenant('nst')), ErrorCode.NotEmpty, 'a tenant with namespaces is not deleted');

  await n.admin.createTopic('nst/a/t1');
  t.is(await code(n.admin.deleteNamespace('nst/a')), ErrorCode.NotEmpty, 'a namespace with topics is not deleted');
  const body = await raw('DELETE', '/namespaces/nst/a');
  t.is(body.status, 409);
  t.like(body.json, { code: ErrorCode.NotEmpty });
  t.regex((body.json as { message: string }).message, /topic/);
  await n.admin.deleteTopic('nst/a/t1');
  await n.admin.deleteNamespace('nst/a');
  await n.admin.deleteNamespace('nst/b');
  t.deepEqual(await n.admin.listNamespaces('nst'), []);
  await n.admin.deleteTenant('nst');
});

test('admin: topics create, get, list, delete; unknown topic/namespace/tenant are typed', async (t) => {
  await n.admin.createTenant('tt');
  await n.admin.createNamespace('tt/ns');
  t.like(await n.admin.createTopic('tt/ns/plain'), { name: 'persistent://tt/ns/plain', partitions: 0 });
  t.like(await n.admin.createTopic('persistent://tt/ns/split', 3), { name: 'persistent://tt/ns/split', partitions: 3 });
  t.deepEqual(
    (await n.admin.listTopics('tt/ns')).map((x) => [x.name, x.partitions]).sort(),
    [
      ['persistent://tt/ns/plain', 0],
      ['persistent://tt/ns/split', 3],
    ],
    'partitions of a partitioned topic are not listed as topics',
  );
  const got = await n.admin.call<{ name: string; partitions: number; createdAtMs: number }>('GET', '/topics/tt/ns/split');
  t.is(got.partitions, 3);
  t.true(got.createdAtMs > 0);
  t.is(await code(n.admin.createTopic('tt/ns/plain')), ErrorCode.AlreadyExists);
  t.is(await code(n.admin.call('GET', '/topics/tt/ns/ghost')), ErrorCode.TopicNotFound);
  t.is(await code(n.admin.topicStats('tt/ns/ghost')), ErrorCode.TopicNotFound);
  t.is(await code(n.admin.deleteTopic('tt/ns/ghost')), ErrorCode.TopicNotFound);
  t.is(await code(n.admin.createTopic('tt/ghost/x')), ErrorCode.NamespaceNotFound);
  t.is(await code(n.admin.listTopics('tt/ghost')), ErrorCode.NamespaceNotFound);
  t.is(await code(n.admin.createTopic('ghost/ns/x')), ErrorCode.TenantNotFound);
  t.is(await code(n.admin.createTopic('tt/ns/neg', -1)), ErrorCode.BadRequest);
  t.is(await code(n.admin.createTopic('tt/ns/many', 100_000)), ErrorCode.BadRequest);
  const notNumber = await raw('PUT', '/topics/tt/ns/nn', JSON.stringify({ partitions: 'two' }));
  t.is(notNumber.status, 400);
  t.like(notNumber.json, { code: ErrorCode.BadRequest });

  await n.admin.deleteTopic('tt/ns/plain');
  await n.admin.deleteTopic('tt/ns/split');
  t.deepEqual(await n.admin.listTopics('tt/ns'), []);
  t.is(await code(n.client.createProducer({ topic: 'tt/ns/split-partition-0' })), ErrorCode.TopicNotFound, 'partitions are deleted with their topic');
});

test('admin: a deleted and re-created topic starts empty', async (t) => {
  const topic = await n.topic('recreate');
  const c = n.newClient();
  const p = (await c.createProducer({ topic })) as Producer;
  await Promise.all(Array.from({ length: 5 }, (_, i) => p.send({ payload: `old${i}` })));
  await c.close();
  await n.admin.deleteTopic(topic);
  await n.admin.createTopic(topic);
  const s = await stats(n.admin, topic);
  t.is(s.entries, 0);
  t.deepEqual(s.subscriptions, {});
  const p2 = (await n.client.createProducer({ topic })) as Producer;
  const id = await p2.send({ payload: 'new' });
  const consumer = await n.client.subscribe({ topic, subscription: 's', initialPosition: 'earliest' });
  const m = await consumer.receive(5000);
  t.is(m.payload.toString(), 'new');
  t.is(m.offset, id.offset);
  await consumer.close();
  await p2.close();
});

test('admin: deleting a topic with a connected producer needs force (ADMQ_ERR_IN_USE); force deletes it', async (t) => {
  const topic = await n.topic('inuse');
  const c = n.newClient();
  const producer = (await c.createProducer({ topic, producerName: 'holder' })) as Producer;
  await producer.send({ payload: 'x' });
  t.is(await code(n.admin.deleteTopic(topic)), ErrorCode.InUse);
  const res = await raw('DELETE', `/topics/public/default/${topic.split('/').pop()}`);
  t.is(res.status, 409);
  t.like(res.json, { code: ErrorCode.InUse });
  t.true((await n.admin.listTopics('public/default')).some((x) => x.name === topic), 'still there');
  await n.admin.deleteTopic(topic, true);
  t.false((await n.admin.listTopics('public/default')).some((x) => x.name === topic));
  t.is(await code(producer.send({ payload: 'after delete' })), ErrorCode.TopicNotFound, 'a send to a force-deleted topic fails typed');
  await c.close();
});

test('admin: deleting a topic with a connected consumer needs force', async (t) => {
  const topic = await n.topic('inuse-consumer');
  const c = n.newClient();
  await c.subscribe({ topic, subscription: 's' });
  t.is(await code(n.admin.deleteTopic(topic)), ErrorCode.InUse);
  await n.admin.deleteTopic(topic, true);
  t.is(await code(n.admin.topicStats(topic)), ErrorCode.TopicNotFound);
  await c.close();
});

test('admin: subscriptions list, create, delete; unknown subscription and in-use are typed', async (t) => {
  const topic = await n.topic('subs');
  const p = (await n.client.createProducer({ topic })) as Producer;
  await Promise.all(Array.from({ length: 4 }, (_, i) => p.send({ payload: `s${i}` })));
  t.deepEqual(await n.admin.listSubscriptions(topic), []);
  t.like(await n.admin.createSubscription(topic, 'from-start', 'earliest'), { subscription: 'from-start', ackedBelow: 0 });
  t.like(await n.admin.createSubscription(topic, 'from-end', 'latest'), { subscription: 'from-end', ackedBelow: 4 });
  t.is(await code(n.admin.createSubscription(topic, 'from-start')), ErrorCode.AlreadyExists);
  t.deepEqual((await n.admin.listSubscriptions(topic)).sort(), ['from-end', 'from-start']);
  const s = await stats(n.admin, topic);
  t.is(s.subscriptions['from-start']?.backlog, 4);
  t.is(s.subscriptions['from-end']?.backlog, 0);

  const consumer = await n.client.subscribe({ topic, subscription: 'from-start' });
  t.is((await consumer.receive(5000)).payload.toString(), 's0', 'a pre-created subscription keeps its position');
  t.is(await code(n.admin.deleteSubscription(topic, 'from-start')), ErrorCode.InUse);
  await n.admin.deleteSubscription(topic, 'from-start', true);
  await n.admin.deleteSubscription(topic, 'from-end');
  t.deepEqual(await n.admin.listSubscriptions(topic), []);
  t.is(await code(n.admin.deleteSubscription(topic, 'from-end')), ErrorCode.SubscriptionNotFound);
  const res = await raw('DELETE', `/topics/public/default/${topic.split('/').pop()}/subscriptions/nope`);
  t.is(res.status, 404);
  t.like(res.json, { code: ErrorCode.SubscriptionNotFound });
  t.is(await code(n.admin.listSubscriptions('public/default/ghost')), ErrorCode.TopicNotFound);
  await consumer.close();
});

test('admin: stats report entries, backlog, counters, rates, producers and per-consumer state', async (t) => {
  const topic = await n.topic('stats');
  const p = (await n.client.createProducer({ topic, producerName: 'stat-producer' })) as Producer;
  const consumer = await n.client.subscribe({ topic, subscription: 'watch', consumerName: 'stat-consumer', initialPosition: 'earliest', receiverQueueSize: 8 });
  await stats(n.admin, topic); // first sample of the rates
  await Promise.all(Array.from({ length: 20 }, (_, i) => p.send({ payload: `payload-${i}` })));
  const got = await receiveN(consumer, 5);
  for (const m of got) consumer.ack(m);
  const s = await waitFor('stats to settle', async () => {
    const v = await stats(n.admin, topic);
    return v.subscriptions.watch?.backlog === 15 ? v : undefined;
  });
  t.is(s.topic, topic);
  t.is(s.entries, 20);
  t.is(s.firstOffset, 0);
  t.is(s.nextOffset, 20);
  t.is(s.msgInCounter, 20);
  t.true(s.bytesInCounter >= 20 * 'payload-0'.length);
  t.deepEqual(
    s.producers.map((x) => [x.name, x.messagesIn]),
    [['stat-producer', 20]],
  );
  const sub = s.subscriptions.watch!;
  t.is(sub.type, 'exclusive');
  t.is(sub.ackedBelow, 5);
  t.is(sub.consumers.length, 1);
  t.is(sub.consumers[0]!.name, 'stat-consumer');
  t.true(sub.consumers[0]!.delivered >= 8 && sub.consumers[0]!.delivered <= 13, `delivered ${sub.consumers[0]!.delivered}`);
  t.true(sub.msgOutCounter >= 8);
  // Rates are per second over at least one second: poll (bounded) until they show the traffic.
  const rated = await waitFor('rates to be sampled', async () => {
    const v = await stats(n.admin, topic);
    return v.msgRateIn > 0 && v.msgRateOut > 0 ? v : undefined;
  }, 5000, 100);
  t.true(rated.msgThroughputIn > 0);
  t.true(rated.msgThroughputOut > 0);
  await p.close();
  const after = await waitFor('producer gone from stats', async () => {
    const v = await stats(n.admin, topic);
    return v.producers.length === 0 ? v : undefined;
  });
  t.deepEqual(after.producers, []);
  await consumer.close();
});

test('admin: unknown routes, wrong methods and bad JSON answer with {code, message}', async (t) => {
  const missing = await raw('GET', '/nothing-here');
  t.is(missing.status, 404);
  t.like(missing.json, { code: ErrorCode.BadRequest });
  t.is(typeof (missing.json as { message: unknown }).message, 'string');
  const method = await raw('POST', '/tenants');
  t.is(method.status, 405);
  t.like(method.json, { code: ErrorCode.BadRequest });
  const badJson = await raw('PUT', '/tenants/jsonbad', '{not json');
  t.is(badJson.status, 400);
  t.like(badJson.json, { code: ErrorCode.BadRequest });
  const array = await raw('PUT', '/tenants/jsonarr', '[1,2]');
  t.is(array.status, 400);
  t.like(array.json, { code: ErrorCode.BadRequest });
  const badName = await raw('PUT', '/topics/public/default/bad%20name');
  t.is(badName.status, 400);
  t.like(badName.json, { code: ErrorCode.TopicName });
  t.regex((badName.json as { message: string }).message, /topic name "bad name"/);
});
