// The catalog behind MetadataManager. Two brokers of one regional cluster are two
// MetadataManagers over two ClusterCatalogs on one metadata store: every scenario runs on a
// real etcd server (one client per broker) and on the embedded LMDB store (real files). The
// LocalCatalog keeps a standalone node's behaviour; the node's own tests cover it end to end.
import test, { type ExecutionContext } from 'ava';
import { ErrorCode } from '../../proto/index.ts';
import { startEtcd, type EtcdProcess } from '../../test-support/etcd.ts';
import { AdmqError } from '../errors.ts';
import { EtcdMetadataStore, LmdbMetadataStore, type MetadataStore } from '../metadata-store/index.ts';
import { parseTopicName } from '../names.ts';
import { LogStore } from '../storage/log-store.ts';
import { tempDir } from '../../test-support/temp-dir.ts';
import { CATALOG_PREFIX, ClusterCatalog, TOPIC_ID_COUNTER_KEY, catalogPath, type CatalogChange, type Catalog } from './catalog.ts';
import { MetadataManager } from './metadata.ts';

let etcd: EtcdProcess;
test.before(async () => {
  etcd = await startEtcd();
});
test.after.always(async () => {
  await etcd?.stop();
});

type Kind = 'etcd' | 'lmdb';
let n = 0;

function logStore(t: ExecutionContext): LogStore {
  const store = LogStore.open({ dataDir: tempDir('admq-catalog-'), region: 'shanghai', durability: 'none', readPhysicalMs: Date.now, maxClockOffsetMs: 500 });
  t.teardown(() => store.close());
  return store;
}

interface Cluster {
  a: MetadataManager;
  b: MetadataManager;
  catalogA: ClusterCatalog;
  catalogB: ClusterCatalog;
  /** A store that is not a broker's, for writing around the catalog. */
  raw: MetadataStore;
  /** A tenant and namespace no other test uses, created through broker a. */
  tenant: string;
  namespace: string;
  topic(name: string): string;
  /** Closes both brokers' catalogs and stores and opens them again on the same data. */
  restart(): Promise<Cluster>;
}

/**
 * Two brokers on one metadata store. Tests in this file run concurrently and share the etcd
 * catalog, so each works under a tenant of its own.
 */
async function cluster(t: ExecutionContext, kind: Kind): Promise<Cluster> {
  const tenant = `t${process.pid}-${++n}-${kind}`;
  const dir = kind === 'lmdb' ? tempDir('admq-catalog-meta-') : '';
  let shared: LmdbMetadataStore | undefined;
  const openStore = (): MetadataStore => {
    if (kind === 'etcd') return new EtcdMetadataStore([etcd.endpoint]);
    // One process holds the LMDB store: both brokers share the one instance.
    shared ??= LmdbMetadataStore.open(dir);
    return shared;
  };
  const logA = logStore(t);
  const logB = logStore(t);
  const build = async (first: boolean): Promise<Cluster> => {
    shared = undefined;
    const stores = [openStore(), openStore(), openStore()] as const;
    const catalogA = await ClusterCatalog.open(stores[0]);
    const catalogB = await ClusterCatalog.open(stores[1]);
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await catalogA.close();
      await catalogB.close();
      for (const s of new Set(stores)) await s.close();
    };
    t.teardown(close);
    const a = new MetadataManager(logA, Date.now, catalogA);
    const b = new MetadataManager(logB, Date.now, catalogB);
    if (first) {
      await a.createTenant(tenant);
      await a.createNamespace(tenant, 'ns');
      // b's reads show a's writes once b's mirror has caught up: tests start from there.
      await catalogB.sync();
    }
    return {
      a,
      b,
      catalogA,
      catalogB,
      raw: stores[2],
      tenant,
      namespace: 'ns',
      topic: (name) => `persistent://${tenant}/ns/${name}`,
      restart: async () => {
        await close();
        return build(false);
      },
    };
  };
  return build(true);
}

/** Resolves with the first change `catalog` announces that `match` accepts; fails after `timeoutMs`. */
function nextChange(catalog: Catalog, match: (change: CatalogChange) => boolean, timeoutMs = 5_000): Promise<CatalogChange> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no matching catalog change within ${timeoutMs} ms`));
    }, timeoutMs);
    const stop = catalog.onChange((change) => {
      if (!match(change)) return;
      clearTimeout(timer);
      stop();
      resolve(change);
    });
  });
}

const isTopic = (name: string) => (c: CatalogChange) => c.key[0] === 'topic' && parseTopicName(name).topic === c.key[3];

for (const kind of ['etcd', 'lmdb'] as const) {
  test(`${kind}: two brokers, one catalog — what one creates, the other sees (its watch) and its own reads show at once`, async (t) => {
    const c = await cluster(t, kind);
    const name = c.topic('orders');
    const seenByB = nextChange(c.catalogB, isTopic(name));
    const created = await c.a.createTopic(parseTopicName(name), 0);
    // Read-your-writes on the writer: no wait after the write resolves.
    t.deepEqual(c.a.getTopic(name), created);
    t.like(await seenByB, { type: 'put', key: ['topic', c.tenant, 'ns', 'orders'] });
    t.deepEqual(c.b.getTopic(name), created);
    t.deepEqual(c.b.getTenant(c.tenant)?.name, c.tenant);
    t.deepEqual(c.b.listNamespaces(c.tenant).map((ns) => ns.namespace), ['ns']);
    t.deepEqual(c.b.listTopics(c.tenant, 'ns').map((r) => r.name), [name]);
    // sync() is the other way to wait: b's mirror then shows all that was stored before it.
    await c.b.createTopic(parseTopicName(c.topic('payments')), 0);
    await c.catalogA.sync();
    t.deepEqual(c.a.listTopics(c.tenant, 'ns').map((r) => r.name), [name, c.topic('payments')]);
  });

  test(`${kind}: concurrent creates of one tenant, namespace and topic on two brokers — exactly one succeeds, the other gets ADMQ_ERR_ALREADY_EXISTS`, async (t) => {
    const c = await cluster(t, kind);
    const both = async <T>(make: (m: MetadataManager) => Promise<T>) => {
      const results = await Promise.allSettled([make(c.a), make(c.b)]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      t.is(won.length, 1);
      t.is(lost.length, 1);
      t.true(lost[0]?.reason instanceof AdmqError);
      t.is((lost[0]?.reason as AdmqError).code, ErrorCode.AlreadyExists);
      return (won[0] as PromiseFulfilledResult<T>).value;
    };
    await both((m) => m.createTenant(`${c.tenant}-x`));
    await both((m) => m.createNamespace(c.tenant, 'race'));
    const plain = await both((m) => m.createTopic(parseTopicName(c.topic('plain')), 0));
    const parted = await both((m) => m.createTopic(parseTopicName(c.topic('parted')), 4));
    // The loser's mirror shows the winner's record as soon as its create fails.
    for (const m of [c.a, c.b]) {
      t.deepEqual(m.getTopic(plain.name), plain);
      t.deepEqual(m.getTopic(parted.name), parted);
    }
    // Only the winner's partitions are stored: the loser left none behind.
    await c.catalogA.sync();
    const ids = [0, 1, 2, 3].map((i) => c.a.getTopic(`${parted.name}-partition-${i}`)?.id);
    t.deepEqual([0, 1, 2, 3].map((i) => c.b.getTopic(`${parted.name}-partition-${i}`)?.id), ids);
    t.is((await c.raw.list(catalogPath(['topic', c.tenant, 'ns', 'parted']))).length, 5);
  });

  test(`${kind}: a partitioned topic appears on the other broker with all its partitions, listed once`, async (t) => {
    const c = await cluster(t, kind);
    const name = c.topic('events');
    const parentSeen = nextChange(c.catalogB, (ch) => ch.type === 'put' && ch.key[3] === 'events');
    await c.a.createTopic(parseTopicName(name), 3, { keyed: true });
    await parentSeen;
    // The parent is written last, so once b sees it, b has every partition.
    for (const i of [0, 1, 2]) {
      t.like(c.b.getTopic(`${name}-partition-${i}`), { partitions: 0, keyed: true });
      t.deepEqual(c.b.partitionParent(`${name}-partition-${i}`), { parent: name, partitions: 3 });
    }
    t.like(c.b.getTopic(name), { id: 0, partitions: 3, keyed: true });
    t.deepEqual(c.b.listTopics(c.tenant, 'ns').map((r) => r.name), [name]);
  });

  test(`${kind}: delete on one broker — the other hears of it, and the names can be created again`, async (t) => {
    const c = await cluster(t, kind);
    const plain = parseTopicName(c.topic('gone'));
    const parted = parseTopicName(c.topic('gone-too'));
    const plainRecord = await c.a.createTopic(plain, 0);
    const partedRecord = await c.a.createTopic(parted, 2);
    await c.catalogB.sync();
    const removed = nextChange(c.catalogB, (ch) => ch.type === 'remove' && ch.key[3] === 'gone');
    await c.a.removeTopicRecords(plain, plainRecord);
    await c.a.removeTopicRecords(parted, partedRecord);
    t.is(c.a.getTopic(plain.full), undefined, 'the writer reads its delete at once');
    await removed;
    await c.catalogB.sync();
    t.is(c.b.getTopic(plain.full), undefined);
    t.is(c.b.getTopic(parted.full), undefined);
    t.is(c.b.getTopic(`${parted.full}-partition-1`), undefined);
    t.deepEqual(c.b.listTopics(c.tenant, 'ns'), []);
    const again = await c.b.createTopic(parted, 2);
    t.not(again.createdAtMs, 0);
    t.like(c.b.getTopic(`${parted.full}-partition-0`), { partitions: 0 });
    await c.b.removeTopicRecords(parted, again);
    // Namespace and tenant: emptiness is checked, then they go.
    await c.a.deleteNamespace(c.tenant, 'ns');
    await c.a.deleteTenant(c.tenant);
    await c.catalogB.sync();
    t.is(c.b.getTenant(c.tenant), undefined);
    const error = t.throws(() => c.b.requireTenant(c.tenant));
    t.is((error as AdmqError).code, ErrorCode.TenantNotFound);
  });

  test(`${kind}: topic ids stay unique across two brokers under 50 concurrent creates`, async (t) => {
    const c = await cluster(t, kind);
    const creates = Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? c.a : c.b).createTopic(parseTopicName(c.topic(`id-${i}`)), i % 10 === 0 ? 3 : 0));
    await Promise.all(creates);
    await c.catalogA.sync();
    const ids = c.a
      .listTopics(c.tenant, 'ns')
      .flatMap((r) => (r.partitions === 0 ? [r.id] : Array.from({ length: r.partitions }, (_, i) => c.a.getTopic(`${r.name}-partition-${i}`)?.id)));
    t.is(ids.length, 45 + 5 * 3);
    t.true(ids.every((id) => typeof id === 'number' && id > 0));
    t.is(new Set(ids).size, ids.length);
    const counter = Number((await c.raw.get(TOPIC_ID_COUNTER_KEY))?.value.toString());
    t.true(ids.every((id) => (id as number) <= counter), 'the counter is past every id handed out');
  });

  test(`${kind}: restart — brokers that close and open again see every record`, async (t) => {
    const c = await cluster(t, kind);
    await c.a.createTopic(parseTopicName(c.topic('kept')), 0);
    await c.b.createTopic(parseTopicName(c.topic('kept-parted')), 2);
    const deleted = await c.a.createTopic(parseTopicName(c.topic('deleted')), 0);
    await c.a.removeTopicRecords(parseTopicName(c.topic('deleted')), deleted);
    await c.catalogA.sync();
    const before = c.a.catalog.range(['topic', c.tenant]);
    const again = await c.restart();
    t.deepEqual(again.a.catalog.range(['topic', c.tenant]), before);
    t.deepEqual(again.b.catalog.range(['topic', c.tenant]), before);
    t.deepEqual(again.b.listTopics(c.tenant, 'ns').map((r) => r.name), [c.topic('kept'), c.topic('kept-parted')]);
    // The counter survives too: a new topic gets an id not used before.
    const fresh = await again.b.createTopic(parseTopicName(c.topic('fresh')), 0);
    t.false(before.some((e) => (e.value as { id: number }).id === fresh.id));
  });

  test(`${kind}: partitions orphaned by a creator that crashed before the parent do not block a later create`, async (t) => {
    const c = await cluster(t, kind);
    const name = c.topic('orphaned');
    // What a broker that died between its partitions and its parent leaves behind.
    for (const i of [0, 1]) {
      const orphan = { name: `${name}-partition-${i}`, id: 999_000 + i, partitions: 0, createdAtMs: 1 };
      t.true((await c.raw.put(catalogPath(['topic', c.tenant, 'ns', `orphaned-partition-${i}`]), Buffer.from(JSON.stringify(orphan)))).ok);
    }
    const created = await c.b.createTopic(parseTopicName(name), 3);
    t.is(created.partitions, 3);
    for (const i of [0, 1, 2]) t.not(c.b.getTopic(`${name}-partition-${i}`)?.id, 999_000 + i);
  });

  test(`${kind}: a parent create that loses its race removes the partitions it wrote`, async (t) => {
    const c = await cluster(t, kind);
    const name = c.topic('lost');
    const parentPath = catalogPath(['topic', c.tenant, 'ns', 'lost']);
    const secondPartitionPath = catalogPath(['topic', c.tenant, 'ns', 'lost-partition-1']);
    // A broker whose store lets another writer create the parent (unpartitioned) just before
    // its second partition is written, i.e. between its claim and its parent create.
    const racer = Buffer.from(JSON.stringify({ name, id: 424242, partitions: 0, createdAtMs: 1 }));
    const raw = c.raw;
    let raced = false;
    const racing: MetadataStore = {
      kind: raw.kind,
      get: (key) => raw.get(key),
      list: (prefix) => raw.list(prefix),
      delete: (key, options) => raw.delete(key, options),
      watch: (prefix, listener) => raw.watch(prefix, listener),
      grantLease: (ttlMs) => raw.grantLease(ttlMs),
      close: async () => {},
      put: async (key, value, options) => {
        if (key === secondPartitionPath && !raced) {
          raced = true;
          t.true((await raw.put(parentPath, racer, { expectedVersion: 0 })).ok);
        }
        return raw.put(key, value, options);
      },
    };
    const catalog = await ClusterCatalog.open(racing);
    t.teardown(() => catalog.close());
    const broker = new MetadataManager(logStore(t), Date.now, catalog);
    const error = await t.throwsAsync(broker.createTopic(parseTopicName(name), 2));
    t.true(raced);
    t.is((error as AdmqError).code, ErrorCode.AlreadyExists);
    t.like(broker.getTopic(name), { id: 424242, partitions: 0 }, 'the loser reads the winner at once');
    t.deepEqual((await c.raw.list(`${CATALOG_PREFIX}topic/${c.tenant}/ns/lost-`)).map((e) => e.key), [], 'no partition left behind');
  });
}

test('local: concurrent creates of one topic on one node — one succeeds, ids continue from the stored counter', async (t) => {
  const store = logStore(t);
  const md = new MetadataManager(store, Date.now);
  await md.createTenant('acme');
  await md.createNamespace('acme', 'ns');
  const results = await Promise.allSettled([md.createTopic(parseTopicName('acme/ns/a'), 2), md.createTopic(parseTopicName('acme/ns/a'), 2)]);
  t.is(results.filter((r) => r.status === 'fulfilled').length, 1);
  const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  t.is((lost?.reason as AdmqError).code, ErrorCode.AlreadyExists);
  // The stored keys are the ones every existing data directory has.
  t.like(store.metaGet(['topic', 'acme', 'ns', 'a']), { partitions: 2, id: 0 });
  t.truthy(store.metaGet(['topic', 'acme', 'ns', 'a-partition-1']));
  const counter = store.metaGet<number>(['counter', 'topicId']) ?? 0;
  const next = await md.createTopic(parseTopicName('acme/ns/b'), 0);
  t.is(next.id, counter + 1);
  const changes: CatalogChange[] = [];
  md.catalog.onChange((c) => changes.push(c));
  await md.removeTopicRecords(parseTopicName('acme/ns/b'), next);
  t.deepEqual(changes, [{ type: 'remove', key: ['topic', 'acme', 'ns', 'b'] }]);
});
