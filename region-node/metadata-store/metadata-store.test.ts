// One behaviour, two stores: every test runs against a real etcd server and against the
// embedded LMDB store (real files).
import test, { type ExecutionContext } from 'ava';
import { startEtcd, type EtcdProcess } from '../../test-support/etcd.ts';
import { waitFor } from '../../test-support/processes.ts';
import { tempDir } from '../../test-support/temp-dir.ts';
import { EtcdMetadataStore, LmdbMetadataStore, type MetadataStore, type WatchEvent } from './index.ts';

let etcd: EtcdProcess;
test.before(async () => {
  etcd = await startEtcd();
});
test.after.always(async () => {
  await etcd?.stop();
});

type Kind = 'etcd' | 'lmdb';
let n = 0;
/** A fresh store and a key prefix no other test uses. */
async function open(t: ExecutionContext, kind: Kind): Promise<{ store: MetadataStore; p: string }> {
  const store = kind === 'etcd' ? new EtcdMetadataStore([etcd.endpoint]) : LmdbMetadataStore.open(tempDir('admq-meta-'));
  t.teardown(() => store.close());
  return { store, p: `/test-${process.pid}-${++n}/` };
}

const b = (s: string) => Buffer.from(s);

for (const kind of ['etcd', 'lmdb'] as const) {
  test(`${kind}: versioned keys — a write's version grows; get and list return value and version`, async (t) => {
    const { store, p } = await open(t, kind);
    t.is(await store.get(`${p}a`), undefined);
    const first = await store.put(`${p}a`, b('one'));
    const second = await store.put(`${p}a`, b('two'));
    t.true(first.ok && second.ok);
    if (!first.ok || !second.ok) return;
    t.true(second.version > first.version);
    const got = await store.get(`${p}a`);
    t.is(got?.value.toString(), 'two');
    t.is(got?.version, second.version);
    await store.put(`${p}c`, b('3'));
    await store.put(`${p}b`, b('2'));
    await store.put(`/other-${p}`, b('x'));
    t.deepEqual((await store.list(p)).map((v) => [v.key.slice(p.length), v.value.toString()]), [['a', 'two'], ['b', '2'], ['c', '3']]);
  });

  test(`${kind}: compare-and-set — create-only, update at the read version, refused on a stale version with the current value`, async (t) => {
    const { store, p } = await open(t, kind);
    const created = await store.put(`${p}owner`, b('broker-1'), { expectedVersion: 0 });
    t.true(created.ok);
    const again = await store.put(`${p}owner`, b('broker-2'), { expectedVersion: 0 });
    t.false(again.ok, 'create-only fails when the key exists');
    if (again.ok || !created.ok) return;
    t.is(again.current?.value.toString(), 'broker-1');
    const updated = await store.put(`${p}owner`, b('broker-2'), { expectedVersion: created.version });
    t.true(updated.ok);
    const stale = await store.put(`${p}owner`, b('broker-3'), { expectedVersion: created.version });
    t.false(stale.ok, 'a stale version is refused');
    t.is((await store.get(`${p}owner`))?.value.toString(), 'broker-2');
    if (!updated.ok) return;
    t.false(await store.delete(`${p}owner`, { expectedVersion: created.version }), 'no delete at a stale version');
    t.true(await store.delete(`${p}owner`, { expectedVersion: updated.version }));
    t.is(await store.get(`${p}owner`), undefined);
    t.false(await store.delete(`${p}owner`));
  });

  test(`${kind}: compare-and-set is atomic — of 20 concurrent creators exactly one wins`, async (t) => {
    const { store, p } = await open(t, kind);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.put(`${p}leader`, b(`c${i}`), { expectedVersion: 0 })));
    t.is(results.filter((r) => r.ok).length, 1);
  });

  test(`${kind}: watches see every put and delete under the prefix, in order, and nothing after they stop`, async (t) => {
    const { store, p } = await open(t, kind);
    const events: WatchEvent[] = [];
    const stop = await store.watch(p, (e) => events.push(e));
    await store.put(`${p}x`, b('1'));
    await store.put(`/elsewhere${p}`, b('no'));
    await store.put(`${p}y`, b('2'));
    await store.delete(`${p}x`);
    await waitFor(() => events.length >= 3, 10_000, 'three events');
    t.deepEqual(events.map((e) => [e.type, e.key.slice(p.length)]), [['put', 'x'], ['put', 'y'], ['delete', 'x']]);
    t.true(events.every((e, i) => i === 0 || e.version > (events[i - 1] as WatchEvent).version));
    await stop();
    await store.put(`${p}z`, b('3'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.is(events.length, 3);
  });

  test(`${kind}: a key attached to a lease goes away when the lease is revoked, and watchers see it`, async (t) => {
    const { store, p } = await open(t, kind);
    const lease = await store.grantLease(5000);
    const put = await store.put(`${p}owned`, b('me'), { lease });
    t.true(put.ok);
    t.is((await store.get(`${p}owned`))?.leaseId, lease.id);
    const deletes: string[] = [];
    await store.watch(p, (e) => {
      if (e.type === 'delete') deletes.push(e.key);
    });
    await lease.revoke();
    await waitFor(async () => (await store.get(`${p}owned`)) === undefined, 10_000, 'the leased key to go');
    await waitFor(() => deletes.length === 1, 10_000, 'a delete event');
  });
}

test('etcd: a lease that is not kept alive expires, and its keys with it; one kept alive stays', async (t) => {
  const { p } = await open(t, 'etcd');
  // A second client whose process "dies": closing it stops its keepalives.
  const dying = new EtcdMetadataStore([etcd.endpoint]);
  const lease = await dying.grantLease(1000);
  await dying.put(`${p}dying`, b('x'), { lease });
  const living = new EtcdMetadataStore([etcd.endpoint]);
  t.teardown(() => living.close());
  const kept = await living.grantLease(1000);
  await living.put(`${p}living`, b('y'), { lease: kept });
  await dying.close();
  await waitFor(async () => (await living.get(`${p}dying`)) === undefined, 15_000, 'the unattended lease to expire');
  t.is((await living.get(`${p}living`))?.value.toString(), 'y', 'the kept-alive lease holds');
});

test('lmdb: keys of leases held by a process that is gone are dropped when the store opens again', async (t) => {
  const dir = tempDir('admq-meta-');
  const first = LmdbMetadataStore.open(dir);
  const lease = await first.grantLease(1000);
  await first.put('/owned', b('me'), { lease });
  await first.put('/durable', b('stays'));
  await first.close();
  const second = LmdbMetadataStore.open(dir);
  t.teardown(() => second.close());
  t.is(await second.get('/owned'), undefined);
  t.is((await second.get('/durable'))?.value.toString(), 'stays');
  const v = await second.put('/durable', b('next'));
  t.true(v.ok && v.version > 0);
});
