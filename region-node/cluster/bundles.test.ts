import test from 'ava';
import { bundleBoundaries, bundleOfTopic, fmix32, fnv1a32, namespaceBundles, parseBundleName, topicHash } from './bundles.ts';
import { ClusterError } from './errors.ts';

// Changing the hash moves every topic of every region: this value must never change.
const PINNED_BUNDLE = 'acme/orders/0x60000000_0x70000000';

test('bundles: FNV-1a 32 matches the reference vectors and a topic bundle is pinned (stable across releases)', (t) => {
  // Published FNV-1a test vectors.
  t.is(fnv1a32(''), 0x811c9dc5);
  t.is(fnv1a32('a'), 0xe40c292c);
  t.is(fnv1a32('foobar'), 0xbf9cf968);
  // MurmurHash3's finalizer keeps 0 at 0 and is a bijection; a pinned value guards the placement.
  t.is(fmix32(0), 0);
  t.is(topicHash('acme/orders/payments'), fmix32(fnv1a32('acme/orders/payments')));
  t.is(bundleOfTopic('acme/orders/payments'), PINNED_BUNDLE);
});

test('bundles: 16 bundles per namespace cover the hash space without gaps, Pulsar-style names', (t) => {
  const names = namespaceBundles('acme', 'orders');
  t.is(names.length, 16);
  t.is(names[0], 'acme/orders/0x00000000_0x10000000');
  t.is(names[15], 'acme/orders/0xf0000000_0xffffffff');
  const boundaries = bundleBoundaries(3);
  t.deepEqual(boundaries, [0, 0x55555555, 0xaaaaaaaa, 0xffffffff]);
  for (let i = 1; i < names.length; i++) t.is(parseBundleName(names[i - 1] as string)?.upper, parseBundleName(names[i] as string)?.lower);
});

test('bundles: a topic maps to the bundle whose range holds its hash, with or without persistent://', (t) => {
  const bundle = bundleOfTopic('persistent://acme/orders/payments');
  t.is(bundleOfTopic('acme/orders/payments'), bundle);
  const range = parseBundleName(bundle);
  const hash = topicHash('acme/orders/payments');
  t.truthy(range);
  t.true(hash >= (range?.lower ?? -1) && hash < (range?.upper ?? -1));
  t.is(range?.tenant, 'acme');
  t.is(range?.namespace, 'orders');
});

test('bundles: every hash lands in exactly one bundle, for uneven counts too', (t) => {
  for (const count of [1, 3, 7, 16, 1024]) {
    const names = namespaceBundles('t', 'n', count);
    for (let i = 0; i < 200; i++) {
      const bundle = bundleOfTopic(`t/n/topic-${i}`, count);
      t.true(names.includes(bundle), `${bundle} is one of the ${count} bundles`);
    }
  }
});

test('bundles: each partition is its own topic, so the partitions of one topic spread over bundles', (t) => {
  const bundles = new Set(Array.from({ length: 32 }, (_, i) => bundleOfTopic(`acme/orders/events-partition-${i}`)));
  t.true(bundles.size >= 10, `32 partitions in ${bundles.size} bundles`);
});

test('bundles: a bad bundle count is a typed configuration error naming the setting', (t) => {
  const error = t.throws(() => bundleOfTopic('t/n/x', 0), { instanceOf: ClusterError });
  t.is(error?.code, 'ADMQ_ERR_CLUSTER_CONFIG');
  t.regex(error?.message ?? '', /bundlesPerNamespace/);
  t.is(parseBundleName('t/n/0x10000000_0x00000000'), undefined);
  t.is(parseBundleName('not-a-bundle'), undefined);
});
