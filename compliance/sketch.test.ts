import test from 'ava';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from './bytes.ts';
import { HistoryCorruptError } from './errors.ts';
import { LINEAR_WIDTH_MS, LagSketch, SKETCH_RELATIVE_ACCURACY } from './sketch.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
test.before(() => console.log(`compliance sketch property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

/** Nearest rank: the smallest value with at least q of the values at or below it. */
function exactQuantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1] as number;
}

const lag = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 86_400_000 }));

test('sketch: every quantile is within 1% (2.5 ms below 500 ms) of the exact nearest-rank quantile', (t) => {
  fc.assert(
    fc.property(fc.array(lag, { minLength: 1, maxLength: 400 }), fc.constantFrom(0.5, 0.9, 0.99, 1), (values, q) => {
      const sketch = new LagSketch();
      for (const v of values) sketch.add(v);
      const exact = exactQuantile(values, q);
      const got = sketch.quantile(q) as number;
      if (exact === 0) return got === 0;
      return Math.abs(got - exact) <= Math.max(exact * SKETCH_RELATIVE_ACCURACY, LINEAR_WIDTH_MS / 2) + 1e-9;
    }),
    { seed, numRuns: 300 },
  );
  t.pass();
});

test('sketch: merging is commutative and associative, and equals adding everything to one sketch', (t) => {
  const sketchOf = (values: number[]): LagSketch => {
    const s = new LagSketch();
    for (const v of values) s.add(v);
    return s;
  };
  const same = (a: LagSketch, b: LagSketch): boolean => a.zeroCount === b.zeroCount && a.bins.size === b.bins.size && [...a.bins].every(([k, v]) => b.bins.get(k) === v);
  fc.assert(
    fc.property(fc.array(lag), fc.array(lag), fc.array(lag), (a, b, c) => {
      const ab_c = sketchOf(a).merge(sketchOf(b)).merge(sketchOf(c));
      const a_bc = sketchOf(a).merge(sketchOf(b).merge(sketchOf(c)));
      const cba = sketchOf(c).merge(sketchOf(b)).merge(sketchOf(a));
      const all = sketchOf([...a, ...b, ...c]);
      return same(ab_c, a_bc) && same(ab_c, cba) && same(ab_c, all);
    }),
    { seed, numRuns: 200 },
  );
  t.pass();
});

test('sketch: countAbove is exact for values further than one bin from the threshold', (t) => {
  fc.assert(
    fc.property(fc.array(lag, { maxLength: 300 }), fc.integer({ min: 0, max: 100_000 }), (values, threshold) => {
      const sketch = new LagSketch();
      for (const v of values) sketch.add(v);
      const far = values.filter((v) => Math.abs(v - threshold) > Math.max(threshold * 0.02, LINEAR_WIDTH_MS) + 1);
      const near = values.length - far.length;
      const exactFar = far.filter((v) => v > threshold).length;
      const got = sketch.countAbove(threshold);
      // Values near the threshold may count either way; the rest exactly.
      return got >= exactFar && got <= exactFar + near;
    }),
    { seed, numRuns: 300 },
  );
  t.pass();
});

test('sketch: encode and decode give the same sketch; damaged bytes throw HistoryCorruptError', (t) => {
  fc.assert(
    fc.property(fc.array(lag), fc.uint8Array({ maxLength: 40 }), (values, garbage) => {
      const sketch = new LagSketch();
      for (const v of values) sketch.add(v);
      const w = new ByteWriter();
      sketch.encode(w);
      const bytes = w.finish();
      const back = LagSketch.decode(new ByteReader(bytes));
      if (back.zeroCount !== sketch.zeroCount || back.count !== sketch.count || back.quantile(0.99) !== sketch.quantile(0.99)) return false;
      for (const input of [bytes.subarray(0, Math.max(0, bytes.length - 1)), garbage]) {
        try {
          LagSketch.decode(new ByteReader(input));
        } catch (error) {
          if (!(error instanceof HistoryCorruptError)) return false;
        }
      }
      return true;
    }),
    { seed, numRuns: 300 },
  );
  t.pass();
});

test('varints: numbers up to 2^53 and signed 64-bit differences round-trip; overlong input is refused', (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.maxSafeNat(), fc.integer({ min: -(2 ** 51), max: 2 ** 51 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }))), (rows) => {
      const w = new ByteWriter(1);
      for (const [u, s, bu, bs] of rows) {
        w.uvarint(u);
        w.svarint(s);
        w.bigUvarint(bu);
        w.bigSvarint(bs);
      }
      const r = new ByteReader(w.finish());
      for (const [u, s, bu, bs] of rows) if (r.uvarint() !== u || r.svarint() !== s || r.bigUvarint() !== bu || r.bigSvarint() !== bs) return false;
      return r.done;
    }),
    { seed, numRuns: 200 },
  );
  t.throws(() => new ByteReader(Buffer.alloc(12, 0xff)).uvarint(), { instanceOf: HistoryCorruptError });
  t.throws(() => new ByteReader(Buffer.alloc(12, 0xff)).bigUvarint(), { instanceOf: HistoryCorruptError });
  t.throws(() => new ByteReader(Buffer.from([0x80])).uvarint(), { instanceOf: HistoryCorruptError });
});
