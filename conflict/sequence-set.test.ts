import test from 'ava';
import fc from 'fast-check';
import { SequenceSet, SequenceSetError } from './index.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
const numRuns = 200;
test.before(() => console.log(`sequence-set property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

function setOf(ids: Iterable<number>, rangesMax?: number): SequenceSet {
  let set = SequenceSet.empty({ rangesMax });
  for (const id of ids) set = set.add(id);
  return set;
}

function rangeCountOf(reference: Set<number>): number {
  let count = 0;
  for (const id of reference) if (!reference.has(id - 1)) count++;
  return count;
}

test('sequence-set: failover resend across regions keeps exactly one copy, high-water mark would not', (t) => {
  // The producer sent 1..100 to A; A committed all, the acks of 91..100 were lost. The
  // producer failed over to B, resent 91..100 and went on to 101..120.
  const range = (first: number, last: number): number[] => Array.from({ length: last - first + 1 }, (_, i) => first + i);
  const inA = setOf(range(1, 100));
  let inB = setOf(range(1, 50)); // A's 1..50 had already replicated to B
  inB = range(91, 120).reduce((set, id) => set.add(id), inB);
  // A's 51..90 now arrive at B by replication: new messages, below B's highest id.
  for (const id of range(51, 90)) t.false(inB.has(id), `seq ${id} is not a duplicate in B`);
  // A's 91..100 arrive at B: duplicates of what B accepted from the resend.
  for (const id of range(91, 100)) t.true(inB.has(id), `seq ${id} is a duplicate in B`);
  // B's 91..100 arrive at A: duplicates there; B's 101..120 are new.
  for (const id of range(91, 100)) t.true(inA.has(id));
  for (const id of range(101, 120)) t.false(inA.has(id));
  t.is(inB.highest(), 120);
  t.deepEqual(inB.toJSON(), [[1, 50], [91, 120]]);
  t.deepEqual(inA.union(inB).toJSON(), [[1, 120]]);
});

test('sequence-set: add joins adjacent ranges and bridges a gap of one', (t) => {
  const set = setOf([5, 7, 6, 1, 2, 10]);
  t.deepEqual(set.toJSON(), [[1, 2], [5, 7], [10, 10]]);
  t.is(set.size, 6);
  t.is(set.rangeCount, 3);
  t.is(set.lowest(), 1);
  t.is(set.highest(), 10);
  t.is(set.add(6), set, 'adding a present id returns the same set');
  t.deepEqual(set.add(3).add(4).toJSON(), [[1, 7], [10, 10]]);
  t.is(SequenceSet.empty().highest(), undefined);
  t.true(SequenceSet.empty().isEmpty);
});

test('sequence-set: over the bound the lowest ranges are dropped, never merged across a gap', (t) => {
  const set = setOf([1, 3, 5, 7, 9], 3);
  t.deepEqual(set.toJSON(), [[5, 5], [7, 7], [9, 9]]);
  t.false(set.has(1), 'a very old id is forgotten (a possible duplicate later)');
  t.false(set.has(6), 'an id in a gap is never claimed (no message is lost)');
  t.false(set.has(8));
  const unioned = set.union(setOf([2, 4, 11, 13], 3));
  t.deepEqual(unioned.toJSON(), [[9, 9], [11, 11], [13, 13]]);
});

test('sequence-set: JSON form round-trips and is validated', (t) => {
  const set = setOf([0, 1, 2, 9, 20, 21]);
  const json = JSON.parse(JSON.stringify(set)) as unknown;
  t.deepEqual(json, [[0, 2], [9, 9], [20, 21]]);
  t.deepEqual(SequenceSet.fromJSON(json).toJSON(), set.toJSON());
  t.deepEqual(SequenceSet.fromJSON([[1, 2], [5, 6], [9, 9]], { rangesMax: 2 }).toJSON(), [[5, 6], [9, 9]]);

  const bad: Array<[unknown, string]> = [
    [{}, '$'],
    [[[1]], '$[0]'],
    [[[1, 2, 3]], '$[0]'],
    [[[2, 1]], '$[0]'],
    [[[-1, 1]], '$[0][0]'],
    [[[0, 1.5]], '$[0][1]'],
    [[['1', 2]], '$[0][0]'],
    [[[1, 2], [3, 4]], '$[1]'], // adjacent: not canonical
    [[[5, 6], [1, 2]], '$[1]'], // unsorted
    [[[1, 5], [4, 8]], '$[1]'], // overlapping
  ];
  for (const [input, field] of bad) {
    const error = t.throws(() => SequenceSet.fromJSON(input), { instanceOf: SequenceSetError }, JSON.stringify(input));
    t.is(error?.code, 'ADMQ_ERR_SEQUENCE_SET');
    t.is(error?.field, field, JSON.stringify(input));
  }
  t.throws(() => SequenceSet.empty().add(-1), { instanceOf: SequenceSetError });
  t.throws(() => SequenceSet.empty().has(Number.NaN), { instanceOf: SequenceSetError });
  t.throws(() => SequenceSet.empty({ rangesMax: 0 }), { instanceOf: SequenceSetError, message: /rangesMax/ });
});

const ids = fc.array(fc.integer({ min: 0, max: 120 }), { maxLength: 150 });

test('sequence-set: behaves like a Set<number> while within the bound', (t) => {
  fc.assert(
    fc.property(ids, (added) => {
      // 121 possible ids make at most 61 ranges: the default bound of 64 never trims.
      const set = setOf(added);
      const reference = new Set(added);
      for (let id = 0; id <= 121; id++) if (set.has(id) !== reference.has(id)) return false;
      const highest = reference.size === 0 ? undefined : Math.max(...reference);
      return (
        set.size === reference.size &&
        set.highest() === highest &&
        set.rangeCount === rangeCountOf(reference) &&
        JSON.stringify(SequenceSet.fromJSON(set.toJSON())) === JSON.stringify(set)
      );
    }),
    { seed, numRuns },
  );
  t.pass();
});

test('sequence-set: trimming only forgets, keeps the highest id, and is exact while the reference fits', (t) => {
  fc.assert(
    fc.property(ids, fc.integer({ min: 1, max: 6 }), (added, rangesMax) => {
      let set = SequenceSet.empty({ rangesMax });
      const reference = new Set<number>();
      let everOver = false;
      for (const id of added) {
        set = set.add(id);
        reference.add(id);
        everOver ||= rangeCountOf(reference) > rangesMax;
        if (set.rangeCount > rangesMax) return false;
        for (const kept of set.values()) if (!reference.has(kept)) return false; // never invents an id
        if (set.highest() !== Math.max(...reference)) return false; // never forgets the newest
        if (!everOver && set.size !== reference.size) return false;
      }
      return true;
    }),
    { seed, numRuns },
  );
  t.pass();
});

test('sequence-set: union is the set union, commutative, associative and idempotent within the bound', (t) => {
  fc.assert(
    fc.property(ids, ids, ids, (a, b, c) => {
      const [x, y, z] = [setOf(a), setOf(b), setOf(c)];
      const same = (p: SequenceSet, q: SequenceSet): boolean => JSON.stringify(p) === JSON.stringify(q);
      return (
        same(x.union(y), setOf([...a, ...b])) &&
        same(x.union(y), y.union(x)) &&
        same(x.union(y).union(z), x.union(y.union(z))) &&
        same(x.union(x), x)
      );
    }),
    { seed, numRuns },
  );
  t.pass();
});

test('sequence-set: addRange adds every id of the range, as one-by-one adds do within the bound', (t) => {
  fc.assert(
    fc.property(ids, fc.integer({ min: 0, max: 121 }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 1, max: 6 }), (added, first, length, rangesMax) => {
      const last = first + length;
      const run = Array.from({ length: length + 1 }, (_, i) => first + i);
      const exact = new Set([...added, ...run]);
      // Within the default bound: the very set one-by-one adds give.
      if (JSON.stringify(setOf(added).addRange(first, last)) !== JSON.stringify(setOf([...added, ...run]))) return false;
      // Under a small bound: never an id that was not added, never more ranges than the
      // bound, and the highest id kept.
      const trimmed = setOf(added, rangesMax).addRange(first, last);
      if (trimmed.rangeCount > rangesMax) return false;
      for (const id of trimmed.values()) if (!exact.has(id)) return false;
      return trimmed.highest() === Math.max(...exact);
    }),
    { seed, numRuns },
  );
  t.throws(() => SequenceSet.empty().addRange(5, 4), { instanceOf: SequenceSetError });
  t.throws(() => SequenceSet.empty().addRange(-1, 4), { instanceOf: SequenceSetError });
});

test('sequence-set: a trimmed union is a subset of the exact union and keeps its highest id', (t) => {
  fc.assert(
    fc.property(ids, ids, fc.integer({ min: 1, max: 4 }), (a, b, rangesMax) => {
      const union = setOf(a, rangesMax).union(setOf(b, rangesMax));
      const exact = new Set([...a, ...b]);
      if (union.rangeCount > rangesMax) return false;
      for (const id of union.values()) if (!exact.has(id)) return false;
      return union.highest() === (exact.size === 0 ? undefined : Math.max(...exact));
    }),
    { seed, numRuns },
  );
  t.pass();
});
