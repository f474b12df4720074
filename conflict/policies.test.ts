import test from 'ava';
import fc from 'fast-check';
import {
  ConflictPolicyError,
  ConflictResolverError,
  createConflictPolicy,
  customPolicy,
  lwwPolicy,
  maxJsonPathPolicy,
  packHlc,
  parseConflictPolicySpec,
  regionPriorityPolicy,
  versionVector,
  type ConflictPolicy,
  type KeyedVersion,
} from './index.ts';
import { prng, shuffled } from './test-histories.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
const numRuns = 200;
test.before(() => console.log(`policies property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

function version(originRegion: string, originPosition: number, wallMs: number, value: string | null): KeyedVersion {
  return {
    key: 'k',
    value: value === null ? null : Buffer.from(value),
    originRegion,
    originPosition,
    hlc: packHlc(wallMs, 0),
    vv: versionVector([[originRegion, originPosition]]),
  };
}

test('policies: lww picks the higher HLC, ties broken by region name', (t) => {
  const lww = lwwPolicy();
  const early = version('shanghai', 1, 100, 'x');
  const late = version('beijing', 1, 101, 'y');
  t.is(lww.pick(early, late), late);
  t.is(lww.pick(late, early), late);
  const tieA = version('beijing', 5, 100, 'x');
  const tieB = version('shanghai', 2, 100, 'y');
  t.is(lww.pick(tieA, tieB), tieB, 'equal HLC: the greater region name is the later writer');
  t.is(lww.pick(tieB, tieA), tieB);
});

test('policies: region-priority prefers earlier regions, listed over unlisted, then lww', (t) => {
  const policy = regionPriorityPolicy(['guangzhou', 'beijing']);
  const gz = version('guangzhou', 1, 100, 'g');
  const bj = version('beijing', 1, 200, 'b');
  const sh = version('shanghai', 1, 300, 's');
  const wh = version('wuhan', 1, 250, 'w');
  t.is(policy.pick(bj, gz), gz);
  t.is(policy.pick(sh, bj), bj, 'a listed region beats an unlisted one however late');
  t.is(policy.pick(sh, wh), sh, 'two unlisted: lww');
  t.is(policy.pick(wh, sh), sh);
  t.deepEqual(policy.spec, { kind: 'region-priority', regions: ['guangzhou', 'beijing'] });
});

test('policies: max-json-path takes the highest number; anything else loses to a number', (t) => {
  const policy = maxJsonPathPolicy('$.balance');
  const v = (region: string, wallMs: number, value: string | null): KeyedVersion => version(region, 1, wallMs, value);
  const ten = v('a', 100, '{"balance": 10}');
  const seven = v('b', 200, '{"balance": 7}');
  t.is(policy.pick(ten, seven), ten);
  t.is(policy.pick(seven, ten), ten);
  for (const loser of [
    v('c', 300, 'not json'),
    v('c', 300, '{"balance": "99"}'),
    v('c', 300, '{"other": 99}'),
    v('c', 300, '[99]'),
    v('c', 300, '{"balance": 1e400}'),
    v('c', 300, null),
  ]) {
    t.is(policy.pick(loser, seven), seven, loser.value?.toString() ?? 'deletion');
    t.is(policy.pick(seven, loser), seven);
  }
  const sevenLater = v('c', 300, '{"balance": 7.0}');
  t.is(policy.pick(seven, sevenLater), sevenLater, 'equal numbers: lww');
  const neither = [v('a', 100, 'x'), v('b', 200, null)] as const;
  t.is(policy.pick(neither[0], neither[1]), neither[1], 'no numbers: lww');

  const nested = maxJsonPathPolicy('$.account.balance');
  t.is(nested.pick(v('a', 1, '{"account":{"balance":-1}}'), v('b', 2, '{"account":{"balance":-2}}')).originRegion, 'a');
  const whole = maxJsonPathPolicy('$');
  t.is(whole.pick(v('a', 1, '5'), v('b', 2, '4')).originRegion, 'a');
  // Own properties only: the prototype is not part of the payload.
  const proto = maxJsonPathPolicy('$.constructor');
  t.is(proto.pick(v('a', 1, '{}'), v('b', 2, '{}')).originRegion, 'b');
});

test('policies: a custom resolver is called in (HLC, origin) order, with copies', (t) => {
  const calls: string[] = [];
  const policy = customPolicy((a, b) => {
    calls.push(`${a.originRegion}<${b.originRegion}`);
    (a.value as Buffer).fill(0); // a misbehaving resolver cannot alter stored versions
    return 'a';
  });
  const first = version('shanghai', 1, 100, 'first');
  const second = version('beijing', 1, 200, 'second');
  t.is(policy.pick(second, first), first);
  t.is(policy.pick(first, second), first);
  t.deepEqual(calls, ['shanghai<beijing', 'shanghai<beijing']);
  t.is(first.value?.toString(), 'first');

  const bad = customPolicy(() => 'c' as 'a');
  const error = t.throws(() => bad.pick(first, second), { instanceOf: ConflictResolverError });
  t.is(error?.code, 'ADMQ_ERR_CONFLICT_RESOLVER');
  t.regex(error?.message ?? '', /returned "c"/);
  const cause = new Error('boom');
  const throwing = customPolicy(() => {
    throw cause;
  });
  t.is(t.throws(() => throwing.pick(first, second), { instanceOf: ConflictResolverError })?.cause, cause);
});

test('policies: specs parse from JSON config, with lww as the default', (t) => {
  t.deepEqual(parseConflictPolicySpec(undefined), { kind: 'lww' });
  t.deepEqual(parseConflictPolicySpec('lww'), { kind: 'lww' });
  t.deepEqual(parseConflictPolicySpec({ kind: 'region-priority', regions: ['beijing', 'shanghai'] }), {
    kind: 'region-priority',
    regions: ['beijing', 'shanghai'],
  });
  t.deepEqual(parseConflictPolicySpec({ kind: 'max-json-path', path: '$.a.b' }), { kind: 'max-json-path', path: '$.a.b' });
  t.deepEqual(parseConflictPolicySpec({ kind: 'custom', module: './resolve.js' }), {
    kind: 'custom',
    module: './resolve.js',
    export: 'default',
  });
  const resolver = (): 'a' => 'a';
  const spec = parseConflictPolicySpec({ kind: 'custom', module: './resolve.js', export: 'pickBalance' });
  t.is(createConflictPolicy(spec, { resolver }).name, 'custom');
  for (const s of [{ kind: 'lww' }, { kind: 'region-priority', regions: ['a'] }, { kind: 'max-json-path', path: '$' }]) {
    t.is(createConflictPolicy(parseConflictPolicySpec(s)).name as string, s.kind);
  }
});

test('policies: invalid specs get a typed error naming the field', (t) => {
  const cases: Array<[unknown, string]> = [
    ['last-writer-wins', 'namespaces.ns.conflictPolicy'],
    [42, 'namespaces.ns.conflictPolicy'],
    [{}, 'namespaces.ns.conflictPolicy.kind'],
    [{ kind: 'newest' }, 'namespaces.ns.conflictPolicy.kind'],
    [{ kind: 'lww', regions: [] }, 'namespaces.ns.conflictPolicy.regions'],
    [{ kind: 'region-priority' }, 'namespaces.ns.conflictPolicy.regions'],
    [{ kind: 'region-priority', regions: [] }, 'namespaces.ns.conflictPolicy.regions'],
    [{ kind: 'region-priority', regions: ['beijing', 'Shanghai'] }, 'namespaces.ns.conflictPolicy.regions[1]'],
    [{ kind: 'region-priority', regions: ['beijing', 'beijing'] }, 'namespaces.ns.conflictPolicy.regions[1]'],
    [{ kind: 'region-priority', regoins: ['beijing'] }, 'namespaces.ns.conflictPolicy.regoins'],
    [{ kind: 'max-json-path' }, 'namespaces.ns.conflictPolicy.path'],
    [{ kind: 'max-json-path', path: 'balance' }, 'namespaces.ns.conflictPolicy.path'],
    [{ kind: 'max-json-path', path: '$.a..b' }, 'namespaces.ns.conflictPolicy.path'],
    [{ kind: 'max-json-path', path: '$[0]' }, 'namespaces.ns.conflictPolicy.path'],
    [{ kind: 'max-json-path', path: `$${'.a'.repeat(17)}` }, 'namespaces.ns.conflictPolicy.path'],
    [{ kind: 'custom' }, 'namespaces.ns.conflictPolicy.module'],
    [{ kind: 'custom', module: './r.js', export: 'not-an-identifier' }, 'namespaces.ns.conflictPolicy.export'],
  ];
  for (const [input, field] of cases) {
    const error = t.throws(() => parseConflictPolicySpec(input, 'namespaces.ns.conflictPolicy'), {
      instanceOf: ConflictPolicyError,
    });
    t.is(error?.code, 'ADMQ_ERR_CONFLICT_POLICY');
    t.is(error?.field, field, JSON.stringify(input));
    t.true(error?.message.startsWith(`conflict policy: ${field}: `), error?.message);
  }
  const spec = parseConflictPolicySpec({ kind: 'custom', module: './r.js' });
  t.is(t.throws(() => createConflictPolicy(spec), { instanceOf: ConflictPolicyError })?.field, 'resolver');
  t.is(t.throws(() => createConflictPolicy(spec, { resolver: 'nope' }), { instanceOf: ConflictPolicyError })?.field, 'resolver');
  t.throws(() => maxJsonPathPolicy('$.'), { instanceOf: ConflictPolicyError });
  t.throws(() => regionPriorityPolicy([]), { instanceOf: ConflictPolicyError });
});

// Distinct writes: a unique (region, position) each, with HLCs that often tie.
const versions = fc
  .uniqueArray(
    fc.record({
      region: fc.constantFrom('a', 'b', 'c', 'd'),
      position: fc.integer({ min: 0, max: 5 }),
      wallMs: fc.integer({ min: 0, max: 3 }),
      value: fc.oneof(
        fc.constant(null),
        fc.constant('garbage'),
        fc.integer({ min: -3, max: 3 }).map((n) => JSON.stringify({ balance: n })),
      ),
    }),
    { selector: (r) => `${r.region}:${r.position}`, minLength: 1, maxLength: 8 },
  )
  .map((records) => records.map((r) => version(r.region, r.position, r.wallMs, r.value)));

const allPolicies: ConflictPolicy[] = [
  lwwPolicy(),
  regionPriorityPolicy(['c', 'a']),
  maxJsonPathPolicy('$.balance'),
  customPolicy((a, b) => (a.value === null ? 'b' : b.value === null ? 'a' : a.value.length >= b.value.length ? 'a' : 'b')),
];

test('policies: pick is order-independent and the built-in policies are total orders', (t) => {
  fc.assert(
    fc.property(versions, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (vs, shuffleSeed) => {
      for (const policy of allPolicies) {
        for (const a of vs) for (const b of vs) if (policy.pick(a, b) !== policy.pick(b, a)) return false;
      }
      // A total order's maximum does not depend on the order it is folded in.
      const random = prng(shuffleSeed);
      for (const policy of allPolicies.slice(0, 3)) {
        const fold = (list: KeyedVersion[]): KeyedVersion => list.reduce((w, v) => policy.pick(w, v));
        if (fold(vs) !== fold(shuffled(random, vs))) return false;
        // Transitivity: a beats b and b beats c imply a beats c.
        for (const a of vs) {
          for (const b of vs) {
            for (const c of vs) {
              if (policy.pick(a, b) === a && policy.pick(b, c) === b && policy.pick(a, c) !== a) return false;
            }
          }
        }
      }
      return true;
    }),
    { seed, numRuns },
  );
  t.pass();
});
