// Faults for real: SIGKILL of a node process under load, and a full disk.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import test from 'ava';
import { AdminClient, AdmqClient, AdmqClientError, ErrorCode, type Producer } from '../client/index.ts';
import { freePort, startNodeProcess, waitFor } from '../test-support/processes.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';
import { start } from './index.ts';

test('crash: SIGKILL while 4 producers send; after restart every acked message is there exactly once, in order', async (t) => {
  const dataDir = tempDir('admq-crash-');
  const grpcPort = await freePort();
  const adminPort = await freePort();
  const args = ['--data-dir', dataDir, '--grpc-port', String(grpcPort), '--admin-port', String(adminPort)];
  let node = await startNodeProcess(args);
  const admin = new AdminClient(node.adminUrl);
  const topic = 'persistent://public/default/crash';
  await admin.createTopic(topic);
  const client = new AdmqClient({ serviceUrl: node.grpcAddress, backoffInitialMs: 50, backoffMaxMs: 500 });
  const producers = (await Promise.all(
    [0, 1, 2, 3].map((i) => client.createProducer({ topic, producerName: `p${i}`, batchingMaxDelayMs: 1, sendTimeoutMs: 60_000 })),
  )) as Producer[];
  const acked = new Map<string, { producer: string; sequenceId: number; offset: number }>();
  let killed = false;
  let stop = false;
  const deadline = Date.now() + 60_000;
  const loops = producers.map(async (producer, i) => {
    const inflight = new Set<Promise<void>>();
    for (let n = 0; n < 20_000 && !stop && Date.now() < deadline; n++) {
      const payload = `p${i}-${n}`;
      const p = producer.send({ payload }).then((id) => {
        acked.set(payload, { producer: producer.producerName, sequenceId: id.sequenceId, offset: id.offset });
      });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      if (inflight.size >= 200) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  });
  await waitFor(() => acked.size >= 4000, 30_000, '4000 acknowledged sends');
  node.child.kill('SIGKILL');
  await node.exited;
  killed = true;
  const ackedAtKill = acked.size;
  t.log(`killed the node with ${ackedAtKill} messages acknowledged`);
  node = await startNodeProcess(args);
  // Producers reconnect by themselves and resend what was not acknowledged.
  await waitFor(() => acked.size >= ackedAtKill + 2000, 30_000, 'sends after restart');
  stop = true;
  await Promise.all(loops);
  t.true(killed);

  const consumer = await client.subscribe({ topic, subscription: 'check', initialPosition: 'earliest', receiverQueueSize: 5000 });
  const seen = new Map<string, number>();
  const lastSeq = new Map<string, number>();
  let orderViolations = 0;
  let duplicates = 0;
  const total = (await admin.topicStats(topic)).entries as number;
  for (let i = 0; i < total; i++) {
    const m = await consumer.receive(30_000);
    const payload = m.payload.toString();
    if (seen.has(payload)) duplicates++;
    seen.set(payload, m.offset);
    const previous = lastSeq.get(m.producerName) ?? -1;
    if (m.sequenceId <= previous) orderViolations++;
    lastSeq.set(m.producerName, m.sequenceId);
  }
  const missing = [...acked.keys()].filter((payload) => !seen.has(payload));
  t.deepEqual(missing, [], 'every acknowledged message survives the crash');
  t.is(duplicates, 0, 'no message is stored twice');
  t.is(orderViolations, 0, 'each producer’s messages are stored in sequence order');
  for (const [payload, id] of acked) {
    if (id.offset >= 0) t.is(seen.get(payload), id.offset, `${payload} is at the acknowledged offset`);
  }
  await client.close();
  node.child.kill('SIGTERM');
  t.is(await node.exited, 0, 'the node shuts down cleanly on SIGTERM');
  removeTempDir(dataDir);
});

function canMountTmpfs(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

(canMountTmpfs() ? test : test.skip)('disk full: sends fail with ADMQ_ERR_STORAGE_FULL, acked data stays readable, other clients are served', async (t) => {
  const mountPoint = tempDir('admq-enospc-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mountPoint]);
  t.teardown(() => {
    try {
      execFileSync('umount', ['-l', mountPoint]);
    } catch {
      // already unmounted
    }
    removeTempDir(mountPoint);
  });
  const node = await start({ dataDir: join(mountPoint, 'data'), grpcPort: 0, adminPort: 0 }, { log: () => {} });
  t.teardown(() => node.close());
  const admin = new AdminClient(node.adminUrl);
  await admin.createTopic('public/default/full');
  await admin.createTopic('public/default/other');
  const client = new AdmqClient({ serviceUrl: node.grpcAddress });
  t.teardown(() => client.close());
  const consumer = await client.subscribe({ topic: 'public/default/other', subscription: 's', initialPosition: 'earliest' });
  const other = await client.createProducer({ topic: 'public/default/other' });
  await other.send({ payload: 'before' });
  const producer = await client.createProducer({ topic: 'public/default/full', batchingMaxMessages: 1 });
  const payload = Buffer.alloc(512 * 1024, 7);
  const acked: number[] = [];
  let failure: unknown;
  for (let i = 0; i < 200 && failure === undefined; i++) {
    try {
      acked.push((await producer.send({ payload })).offset);
    } catch (error) {
      failure = error;
    }
  }
  t.true(failure instanceof AdmqClientError, 'a send eventually fails');
  t.is((failure as AdmqClientError).code, ErrorCode.StorageFull);
  t.true(acked.length > 0);
  // The node keeps serving: reads of acked data and other clients still work.
  const reader = await client.subscribe({ topic: 'public/default/full', subscription: 'r', initialPosition: 'earliest', receiverQueueSize: 10 });
  for (const offset of acked) {
    const m = await reader.receive(10_000);
    t.is(m.offset, offset);
    t.true(m.payload.equals(payload));
    reader.ack(m);
  }
  t.is((await consumer.receive(10_000)).payload.toString(), 'before');
  t.is((await admin.health()).status, 'ok');
});
