import test from 'ava';
import fc from 'fast-check';
import {
  VersionVectorError,
  compareVersionVectors,
  dominates,
  formatVersionVector,
  joinVersionVectors,
  parseVersionVector,
  strictlyDominates,
  versionVector,
  versionVectorsEqual,
  withPosition,
  type VersionVector,
} from './index.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
const numRuns = 300;
test.before(() => console.log(`version-vector property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const vv = (record: Record<string, number>): VersionVector => versionVector(record);

test('version-vector: compare says before, after, equal or concurrent', (t) => {
  t.is(compareVersionVectors(vv({ beijing: 1 }), vv({ beijing: 2 })), 'before');
  t.is(compareVersionVectors(vv({ beijing: 2, shanghai: 1 }), vv({ beijing: 2 })), 'after');
  t.is(compareVersionVectors(vv({ beijing: 2, shanghai: 1 }), vv({ shanghai: 1, beijing: 2 })), 'equal');
  t.is(compareVersionVectors(vv({ beijing: 3 }), vv({ shanghai: 1 })), 'concurrent');
  t.is(compareVersionVectors(vv({ beijing: 3, shanghai: 0 }), vv({ beijing: 2, shanghai: 1 })), 'concurrent');
  t.is(compareVersionVectors(vv({}), vv({})), 'equal');
  // Positions start at 0: having seen position 0 is more than having seen nothing.
  t.is(compareVersionVectors(vv({ beijing: 0 }), vv({})), 'after');
  t.true(dominates(vv({ beijing: 2 }), vv({ beijing: 2 })));
  t.false(strictlyDominates(vv({ beijing: 2 }), vv({ beijing: 2 })));
  t.true(strictlyDominates(vv({ beijing: 2, guangzhou: 0 }), vv({ beijing: 2 })));
  t.false(dominates(vv({ beijing: 3 }), vv({ shanghai: 1 })));
});

test('version-vector: join is the pointwise maximum and withPosition only raises', (t) => {
  const joined = joinVersionVectors(vv({ beijing: 3, shanghai: 1 }), vv({ shanghai: 4, guangzhou: 0 }));
  t.deepEqual([...joined], [['beijing', 3], ['guangzhou', 0], ['shanghai', 4]]);
  const base = vv({ beijing: 3 });
  t.is(withPosition(base, 'beijing', 2), base);
  t.deepEqual([...withPosition(base, 'shanghai', 7)], [['beijing', 3], ['shanghai', 7]]);
});

test('version-vector: text form is sorted and compact', (t) => {
  const value = versionVector([['shanghai', 40], ['beijing', 12]]);
  t.is(formatVersionVector(value), 'beijing:12,shanghai:40');
  t.is(formatVersionVector(vv({})), '');
  t.true(versionVectorsEqual(parseVersionVector('beijing:12,shanghai:40'), value));
  t.is(parseVersionVector('').size, 0);
  t.is(parseVersionVector('a:9007199254740991').get('a'), Number.MAX_SAFE_INTEGER);
});

test('version-vector: malformed text gets a typed error naming the part', (t) => {
  const bad: Array<[unknown, string]> = [
    [42, '$'],
    ['beijing', '$[0]'],
    ['beijing:', '$[0]'],
    ['beijing:-1', '$[0]'],
    ['beijing:01', '$[0]'],
    ['beijing:1.5', '$[0]'],
    ['beijing:9007199254740992', '$[0]'],
    ['Beijing:1', '$[0]'],
    ['beijing:1,', '$[1]'],
    ['shanghai:1,beijing:2', '$[1]'],
    ['beijing:1,beijing:2', '$[1]'],
    ['beijing:1 ,shanghai:2', '$[0]'],
    ['x'.repeat(30_000), '$'],
  ];
  for (const [input, field] of bad) {
    const error = t.throws(() => parseVersionVector(input), { instanceOf: VersionVectorError }, String(input).slice(0, 40));
    t.is(error?.code, 'ADMQ_ERR_VERSION_VECTOR');
    t.is(error?.field, field, String(input).slice(0, 40));
  }
  t.throws(() => versionVector({ beijing: -1 }), { instanceOf: VersionVectorError, message: /vv\.beijing/ });
  t.throws(() => versionVector([['a', 1], ['a', 2]]), { instanceOf: VersionVectorError, message: /twice/ });
  t.throws(() => versionVector({ __proto__x: 1 }), { instanceOf: VersionVectorError });
});

const region = fc.constantFrom('a', 'b', 'c', 'd');
const arbitraryVv = fc
  .dictionary(region, fc.integer({ min: 0, max: 4 }), { maxKeys: 4 })
  .map((record) => versionVector(record));

test('version-vector: compare is antisymmetric and consistent with join and dominates', (t) => {
  const inverse = { before: 'after', after: 'before', equal: 'equal', concurrent: 'concurrent' } as const;
  fc.assert(
    fc.property(arbitraryVv, arbitraryVv, (a, b) => {
      const ab = compareVersionVectors(a, b);
      const join = joinVersionVectors(a, b);
      const aBelowB = ab === 'before' || ab === 'equal';
      return (
        compareVersionVectors(b, a) === inverse[ab] &&
        // a ≤ b exactly when joining a into b changes nothing.
        aBelowB === versionVectorsEqual(join, b) &&
        // The join is above both, and it is the least such vector: below any upper bound.
        dominates(join, a) &&
        dominates(join, b) &&
        (ab !== 'concurrent' || (strictlyDominates(join, a) && strictlyDominates(join, b))) &&
        dominates(b, a) === aBelowB &&
        (ab === 'equal') === versionVectorsEqual(a, b)
      );
    }),
    { seed, numRuns },
  );
  t.pass();
});

test('version-vector: join is commutative, associative and idempotent; text form round-trips', (t) => {
  fc.assert(
    fc.property(arbitraryVv, arbitraryVv, arbitraryVv, (a, b, c) => {
      const eq = versionVectorsEqual;
      const text = formatVersionVector(a);
      return (
        eq(joinVersionVectors(a, b), joinVersionVectors(b, a)) &&
        eq(joinVersionVectors(joinVersionVectors(a, b), c), joinVersionVectors(a, joinVersionVectors(b, c))) &&
        eq(joinVersionVectors(a, a), a) &&
        eq(parseVersionVector(text), a) &&
        formatVersionVector(parseVersionVector(text)) === text &&
        formatVersionVector(joinVersionVectors(a, b)) === formatVersionVector(joinVersionVectors(b, a))
      );
    }),
    { seed, numRuns },
  );
  t.pass();
});

test('version-vector: the least-upper-bound property of join', (t) => {
  fc.assert(
    fc.property(arbitraryVv, arbitraryVv, arbitraryVv, (a, b, upper) => {
      if (!dominates(upper, a) || !dominates(upper, b)) return true;
      return dominates(upper, joinVersionVectors(a, b));
    }),
    { seed, numRuns },
  );
  t.pass();
});
