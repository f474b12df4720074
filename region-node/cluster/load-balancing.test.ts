import test from 'ava';
import { emptyLoad, type BrokerLoad } from './broker-registry.ts';
import { BALANCER_SETTINGS_DEFAULT, overloadedBrokers, planMoves, type BalancerInput, type BundleMove } from './load-balancing.ts';

function broker(brokerId: string, load: Partial<BrokerLoad> = {}): { brokerId: string; load: BrokerLoad } {
  return { brokerId, load: { ...emptyLoad(), ...load } };
}

function input(partial: Partial<BalancerInput>): BalancerInput {
  return { brokers: [], assignments: new Map(), requested: [], movedAtMs: new Map(), nowMs: 1_000_000, ...partial };
}

function counts(assignments: Map<string, string>, moves: BundleMove[]): Record<string, number> {
  const after = new Map(assignments);
  for (const move of moves) after.set(move.bundle, move.to);
  const result: Record<string, number> = {};
  for (const id of after.values()) result[id] = (result[id] ?? 0) + 1;
  return result;
}

const bundles = (n: number, prefix = 'b'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);

test('load balancing: no live broker, no moves', (t) => {
  t.deepEqual(planMoves(input({ assignments: new Map([['b1', 'gone']]), requested: ['b2'] })), []);
});

test('load balancing: a requested bundle goes to the broker with fewest bundles, then lowest rate, then lowest id', (t) => {
  const assignments = new Map([['x1', 'a'], ['x2', 'b']]);
  const moves = planMoves(input({ brokers: [broker('a', { msgRateIn: 10 }), broker('b', { msgRateIn: 5 }), broker('c')], assignments, requested: ['new1', 'new2', 'x1'] }));
  // c has no bundle → new1; then all three have one and c has the lowest rate (0) → new2.
  t.deepEqual(moves, [
    { bundle: 'new1', from: undefined, to: 'c', reason: 'requested' },
    { bundle: 'new2', from: undefined, to: 'c', reason: 'requested' },
  ]);
});

test('load balancing: the bundles of a broker that is gone are spread over the live ones, however many', (t) => {
  const assignments = new Map<string, string>();
  for (const b of bundles(9)) assignments.set(b, b < 'b03' ? 'a' : b < 'b06' ? 'b' : 'dead');
  const moves = planMoves(input({ brokers: [broker('a'), broker('b')], assignments }), { ...BALANCER_SETTINGS_DEFAULT, movesPerRoundMax: 0 });
  t.deepEqual(moves.map((m) => m.reason), ['broker-gone', 'broker-gone', 'broker-gone']);
  t.true(moves.every((m) => m.from === 'dead'));
  const after = counts(assignments, moves);
  t.true(Math.abs((after.a ?? 0) - (after.b ?? 0)) <= 1, JSON.stringify(after));
});

test('load balancing: a broker that joins receives bundles until no broker is above average + slack', (t) => {
  const assignments = new Map<string, string>();
  for (const b of bundles(12)) assignments.set(b, b < 'b06' ? 'a' : 'b');
  const moves = planMoves(input({ brokers: [broker('a'), broker('b'), broker('c')], assignments }));
  t.true(moves.length >= 2 && moves.length <= BALANCER_SETTINGS_DEFAULT.movesPerRoundMax);
  t.true(moves.every((m) => m.to === 'c' && m.reason === 'bundle-count'));
  const after = counts(assignments, moves);
  for (const id of ['a', 'b', 'c']) t.true((after[id] ?? 0) <= 4 + BALANCER_SETTINGS_DEFAULT.bundleCountSlack, JSON.stringify(after));
  // A balanced cluster stays put: applying the moves and planning again moves nothing.
  const next = new Map(assignments);
  for (const m of moves) next.set(m.bundle, m.to);
  const movedAtMs = new Map(moves.map((m) => [m.bundle, 1_000_000]));
  t.deepEqual(planMoves(input({ brokers: [broker('a'), broker('b'), broker('c')], assignments: next, movedAtMs })), []);
});

test('load balancing: count moves take the quietest bundle and respect movesPerRoundMax and cooldowns', (t) => {
  const assignments = new Map<string, string>(bundles(8).map((b) => [b, 'a']));
  const rates = Object.fromEntries(bundles(8).map((b, i) => [b, 100 * (8 - i)]));
  const brokers = [broker('a', { bundleMsgRates: rates }), broker('b')];
  const one = planMoves(input({ brokers, assignments }), { ...BALANCER_SETTINGS_DEFAULT, movesPerRoundMax: 1 });
  t.deepEqual(one, [{ bundle: 'b07', from: 'a', to: 'b', reason: 'bundle-count' }]);
  const cooled = planMoves(input({ brokers, assignments, movedAtMs: new Map([['b07', 999_999]]) }), { ...BALANCER_SETTINGS_DEFAULT, movesPerRoundMax: 1 });
  t.deepEqual(cooled, [{ bundle: 'b06', from: 'a', to: 'b', reason: 'bundle-count' }]);
  const expired = planMoves(input({ brokers, assignments, movedAtMs: new Map([['b07', 1_000_000 - BALANCER_SETTINGS_DEFAULT.moveCooldownMs]]) }), { ...BALANCER_SETTINGS_DEFAULT, movesPerRoundMax: 1 });
  t.is(expired[0]?.bundle, 'b07');
});

test('load balancing: an overloaded broker gives its busiest bundle that does not swap the overload', (t) => {
  const assignments = new Map([['h1', 'a'], ['h2', 'a'], ['h3', 'b'], ['h4', 'b'], ['h5', 'c']]);
  const brokers = [
    broker('a', { msgRateIn: 9000, bundleMsgRates: { h1: 6000, h2: 3000 } }),
    broker('b', { msgRateIn: 1000 }),
    broker('c', { msgRateIn: 500 }),
  ];
  const moves = planMoves(input({ brokers, assignments }));
  // Gap to c is 8500: h1 (6000) fits and is the busiest; c can take a bundle (2 ≤ 5/3 + 1).
  t.deepEqual(moves, [{ bundle: 'h1', from: 'a', to: 'c', reason: 'throughput' }]);
});

test('load balancing: a throughput move waits until the overload has lasted throughputOverloadSustainMs', (t) => {
  const assignments = new Map([['h1', 'a'], ['h2', 'a'], ['h3', 'b'], ['h4', 'b'], ['h5', 'c']]);
  const brokers = [
    broker('a', { msgRateIn: 9000, bundleMsgRates: { h1: 6000, h2: 3000 } }),
    broker('b', { msgRateIn: 1000 }),
    broker('c', { msgRateIn: 500 }),
  ];
  t.deepEqual([...overloadedBrokers(brokers)], ['a']);
  const sustain = BALANCER_SETTINGS_DEFAULT.throughputOverloadSustainMs;
  const nowMs = 1_000_000;
  const burst = planMoves(input({ brokers, assignments, nowMs, overloadedSinceMs: new Map([['a', nowMs - sustain + 1]]) }));
  t.deepEqual(burst, [], 'overloaded for less than the sustain time: nothing moves');
  const lasting = planMoves(input({ brokers, assignments, nowMs, overloadedSinceMs: new Map([['a', nowMs - sustain]]) }));
  t.deepEqual(lasting, [{ bundle: 'h1', from: 'a', to: 'c', reason: 'throughput' }]);
});

test('load balancing: no throughput move below the absolute minimum, for a single bundle, or to a broker the count rule would drain', (t) => {
  const assignments = new Map([['h1', 'a'], ['h2', 'a'], ['h3', 'b']]);
  const small = planMoves(input({ brokers: [broker('a', { msgRateIn: 900 }), broker('b', { msgRateIn: 10 })], assignments }));
  t.deepEqual(small, [], 'the excess is under throughputOverloadMinMsgRate');
  const single = planMoves(input({ brokers: [broker('a', { msgRateIn: 90_000 }), broker('b')], assignments: new Map([['h1', 'a'], ['h2', 'b']]) }));
  t.deepEqual(single, [], 'a broker with one bundle cannot shed load by moving it');
  const full = planMoves(
    input({ brokers: [broker('a', { msgRateIn: 90_000 }), broker('b')], assignments: new Map([['h1', 'a'], ['h2', 'a'], ['h3', 'b'], ['h4', 'b'], ['h5', 'b']]) }),
    { ...BALANCER_SETTINGS_DEFAULT, bundleCountSlack: 0.5 },
  );
  t.deepEqual(full, [], 'b would hold 4 > 2.5 + 0.5 bundles');
});

test('load balancing: the plan is deterministic whatever the input order', (t) => {
  const assignments = new Map<string, string>(bundles(10).map((b, i) => [b, i % 3 === 0 ? 'gone' : 'a']));
  const brokers = [broker('c'), broker('a', { msgRateOut: 50 }), broker('b')];
  const first = planMoves(input({ brokers, assignments, requested: ['r2', 'r1'] }));
  const reordered = planMoves(input({ brokers: [...brokers].reverse(), assignments: new Map([...assignments].reverse()), requested: ['r1', 'r2', 'r1'] }));
  t.deepEqual(first, reordered);
});
