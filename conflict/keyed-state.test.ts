import test from 'ava';
import fc from 'fast-check';
import {
  KeyedVersionError,
  applyVersion,
  concurrentVersions,
  customPolicy,
  emptyKeyedState,
  hasSeenVersion,
  lwwPolicy,
  maxJsonPathPolicy,
  mergeStates,
  nextVersionVector,
  packHlc,
  regionPriorityPolicy,
  resolve,
  resolvedValue,
  versionVector,
  type ConflictPolicy,
  type KeyedState,
  type KeyedVersion,
} from './index.ts';
import { prng, randomInt, shuffled, simulateKeyedHistory, stateFingerprint } from './test-histories.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
const numRuns = 60;
test.before(() => console.log(`keyed-state property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

function version(
  originRegion: string,
  originPosition: number,
  wallMs: number,
  vv: Record<string, number>,
  value: string | null = `${originRegion}${originPosition}`,
): KeyedVersion {
  return {
    key: 'k',
    value: value === null ? null : Buffer.from(value),
    originRegion,
    originPosition,
    hlc: packHlc(wallMs, 0),
    vv: versionVector(vv),
  };
}

const applyAll = (versions: Iterable<KeyedVersion>, state: KeyedState = emptyKeyedState('k')): KeyedState => {
  for (const v of versions) state = applyVersion(state, v);
  return state;
};

test('keyed-state: concurrent writes are both kept; a write that saw both supersedes them', (t) => {
  const a = version('beijing', 10, 1000, { beijing: 10 });
  const b = version('shanghai', 4, 1001, { shanghai: 4 });
  const state = applyAll([a, b]);
  t.deepEqual(state.versions, [a, b]);
  t.deepEqual(concurrentVersions(applyAll([a]), b), [a]);
  const resolution = resolve(state, lwwPolicy());
  t.is(resolution?.winner, b);
  t.deepEqual(resolution?.losers, [a]);
  // Shanghai has seen both and writes again: the new write supersedes both.
  const vv = nextVersionVector(state, 'shanghai', 7);
  t.deepEqual([...vv], [['beijing', 10], ['shanghai', 7]]);
  const c = { ...version('shanghai', 7, 1002, {}), vv };
  const after = applyVersion(state, c);
  t.deepEqual(after.versions, [c]);
  t.true(hasSeenVersion(after, a), 'a superseded write is already seen');
  t.deepEqual(concurrentVersions(after, a), [], 'and applying it again detects nothing');
  t.is(applyVersion(after, a), after, 'an old write arriving late changes nothing');
  t.is(applyVersion(after, c), after, 'applying twice changes nothing');
  t.is(resolve(emptyKeyedState('k'), lwwPolicy()), undefined);
});

test('keyed-state: a deletion is a version like any other', (t) => {
  const put = version('beijing', 1, 1000, { beijing: 1 }, 'v1');
  const del = version('shanghai', 1, 1005, { shanghai: 1 }, null);
  const state = applyAll([del, put]);
  t.is(resolvedValue(state, lwwPolicy()), undefined, 'the later delete wins under lww');
  t.deepEqual(resolvedValue(state, regionPriorityPolicy(['beijing'])), Buffer.from('v1'));
  const deletedAfterSeeing = { ...version('beijing', 2, 1010, {}, null), vv: nextVersionVector(state, 'beijing', 2) };
  t.deepEqual(applyVersion(state, deletedAfterSeeing).versions, [deletedAfterSeeing]);
});

test('keyed-state: malformed versions get a typed error naming the field', (t) => {
  const good = version('beijing', 3, 1000, { beijing: 3 });
  const cases: Array<[unknown, string]> = [
    [{ ...good, vv: versionVector({ beijing: 2 }) }, 'vv.beijing'],
    [{ ...good, vv: versionVector({ shanghai: 3 }) }, 'vv.beijing'],
    [{ ...good, vv: { beijing: 3 } }, 'vv'],
    [{ ...good, originRegion: 'Beijing' }, 'originRegion'],
    [{ ...good, originPosition: -1 }, 'originPosition'],
    [{ ...good, hlc: 2n ** 64n }, 'hlc'],
    [{ ...good, hlc: 5 }, 'hlc'],
    [{ ...good, value: 'text' }, 'value'],
    [{ ...good, key: 7 }, 'key'],
    [null, '$'],
  ];
  for (const [input, field] of cases) {
    const error = t.throws(() => applyVersion(emptyKeyedState('k'), input as KeyedVersion), {
      instanceOf: KeyedVersionError,
    });
    t.is(error?.code, 'ADMQ_ERR_KEYED_VERSION');
    t.is(error?.field, field);
  }
});

test('keyed-state: broken invariants stop loudly', (t) => {
  const a = version('beijing', 3, 1000, { beijing: 3 }, 'one');
  const forged = version('beijing', 3, 1000, { beijing: 3 }, 'two');
  t.throws(() => applyAll([a, forged]), { name: 'AssertionError', message: /global id/ });
  t.throws(() => applyVersion(emptyKeyedState('other'), a), { name: 'AssertionError' });
  t.throws(() => nextVersionVector(applyAll([a]), 'beijing', 3), { name: 'AssertionError', message: /not above/ });
  t.throws(() => mergeStates(emptyKeyedState('x'), emptyKeyedState('y')), { name: 'AssertionError' });
});

// Every policy kind, including custom resolvers that are neither symmetric nor transitive,
// which only resolve deterministically because they are called in canonical order.
const policies: ConflictPolicy[] = [
  lwwPolicy(),
  regionPriorityPolicy(['c', 'a']),
  regionPriorityPolicy(['wuhan', 'beijing']),
  maxJsonPathPolicy('$.balance'),
  customPolicy(() => 'a'),
  customPolicy((a, b) => ((a.originPosition * 7 + b.originPosition * 3 + Number(a.hlc % 5n)) % 2 === 0 ? 'a' : 'b')),
];

const histories = fc.record({
  historySeed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  orderSeed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  regions: fc.constantFrom(['a', 'b'], ['a', 'b', 'c'], ['beijing', 'chengdu', 'shanghai', 'wuhan']),
  steps: fc.integer({ min: 1, max: 50 }),
  writeProbability: fc.constantFrom(0.3, 0.6, 0.9),
});

function winners(state: KeyedState): string[] {
  return policies.map((policy) => {
    const winner = resolve(state, policy)?.winner;
    return winner ? `${winner.originRegion}:${winner.originPosition}` : '-';
  });
}

test('keyed-state: every region converges to the same state and winner (invariant 6)', (t) => {
  fc.assert(
    fc.property(histories, ({ historySeed, regions, steps, writeProbability }) => {
      const history = simulateKeyedHistory(historySeed, { regions, steps, writeProbability, redeliverProbability: 0.1 });
      const states = [...history.finalStates.values()];
      const first = states[0]!;
      // One region's writes are totally ordered, so at most one version per region is maximal.
      if (first.versions.length > regions.length) return false;
      if (new Set(first.versions.map((v) => v.originRegion)).size !== first.versions.length) return false;
      return states.every(
        (state) =>
          stateFingerprint(state) === stateFingerprint(first) &&
          JSON.stringify(winners(state)) === JSON.stringify(winners(first)),
      );
    }),
    { seed, numRuns },
  );
  t.pass();
});

test('keyed-state: any arrival order and any partition into merged sub-states give the same state and winners', (t) => {
  fc.assert(
    fc.property(histories, ({ historySeed, orderSeed, regions, steps, writeProbability }) => {
      const history = simulateKeyedHistory(historySeed, { regions, steps, writeProbability });
      const expected = history.finalStates.get(regions[0]!)!;
      const random = prng(orderSeed);
      // 1. All writes applied one by one in a random order, some twice.
      const order = shuffled(random, [...history.writes, ...history.writes.filter(() => random() < 0.2)]);
      const sequential = applyAll(order);
      // 2. Writes dealt into random parts, each applied in its own order, then merged pairwise
      //    in a random tree shape.
      let parts: KeyedState[] = Array.from({ length: randomInt(random, 1, 5) }, () => emptyKeyedState('k'));
      for (const w of shuffled(random, history.writes)) {
        const i = randomInt(random, 0, parts.length - 1);
        parts[i] = applyVersion(parts[i]!, w);
      }
      while (parts.length > 1) {
        parts = shuffled(random, parts);
        const [x, y, ...rest] = parts;
        parts = [mergeStates(x!, y!), ...rest];
      }
      const merged = parts[0]!;
      return [sequential, merged].every(
        (state) =>
          stateFingerprint(state) === stateFingerprint(expected) &&
          JSON.stringify(winners(state)) === JSON.stringify(winners(expected)),
      );
    }),
    { seed, numRuns },
  );
  t.pass();
});

test('keyed-state: merge is commutative, associative and idempotent', (t) => {
  fc.assert(
    fc.property(histories, ({ historySeed, orderSeed, regions, steps }) => {
      const history = simulateKeyedHistory(historySeed, { regions, steps });
      const random = prng(orderSeed);
      // Three sub-states built from random (overlapping) subsets of the writes, as regions
      // that have received different parts of the history would hold.
      const [a, b, c] = [0, 1, 2].map(() => applyAll(shuffled(random, history.writes).filter(() => random() < 0.5)));
      const same = (x: KeyedState, y: KeyedState): boolean => stateFingerprint(x) === stateFingerprint(y);
      return (
        same(mergeStates(a!, b!), mergeStates(b!, a!)) &&
        same(mergeStates(mergeStates(a!, b!), c!), mergeStates(a!, mergeStates(b!, c!))) &&
        same(mergeStates(a!, a!), a!) &&
        same(mergeStates(a!, emptyKeyedState('k')), a!) &&
        // Merging is what the region ends up with after receiving the other's writes.
        same(mergeStates(a!, b!), applyAll(b!.versions, a!))
      );
    }),
    { seed, numRuns },
  );
  t.pass();
});

test('keyed-state: the maximal versions are pairwise concurrent and the winner is one of them', (t) => {
  fc.assert(
    fc.property(histories, ({ historySeed, regions, steps }) => {
      const history = simulateKeyedHistory(historySeed, { regions, steps });
      for (const event of history.events) {
        const state = applyVersion(event.stateBefore, event.version);
        for (const x of state.versions) {
          const others = state.versions.filter((y) => y !== x);
          if (concurrentVersions(emptyKeyedState('k'), x).length !== 0) return false;
          const concurrent = concurrentVersions({ key: 'k', versions: others }, x);
          if (concurrent.length !== others.length) return false;
        }
        for (const policy of policies) {
          const resolution = resolve(state, policy);
          if (!resolution || !state.versions.includes(resolution.winner)) return false;
          if (resolution.losers.length !== state.versions.length - 1) return false;
        }
      }
      return true;
    }),
    { seed, numRuns: Math.ceil(numRuns / 2) },
  );
  t.pass();
});
