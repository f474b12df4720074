import test from 'ava';
import fc from 'fast-check';
import {
  ClockSkewError,
  HybridLogicalClock,
  compareHlc,
  hlcLogical,
  hlcReceive,
  hlcTick,
  hlcWallMs,
  packHlc,
} from './index.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
test.before(() => console.log(`hlc property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

test('hlc: packs wall time and counter big-endian sortable', (t) => {
  const a = packHlc(1_700_000_000_000, 5);
  t.is(hlcWallMs(a), 1_700_000_000_000);
  t.is(hlcLogical(a), 5);
  t.true(packHlc(1, 0) > packHlc(0, 65535));
  t.throws(() => packHlc(-1, 0), { instanceOf: RangeError });
  t.throws(() => packHlc(0, 65536), { instanceOf: RangeError });
});

test('hlc: tick is strictly monotonic whatever physical time does', (t) => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { minLength: 1, maxLength: 200 }), (times) => {
      let last = 0n;
      for (const physical of times) {
        const next = hlcTick(last, physical);
        if (!(next > last)) return false;
        if (hlcWallMs(next) < physical) return false;
        last = next;
      }
      return true;
    }),
    { seed },
  );
  t.pass();
});

test('hlc: counter overflow advances the wall part instead of wrapping', (t) => {
  const full = packHlc(1000, 65535);
  const next = hlcTick(full, 1000);
  t.is(hlcWallMs(next), 1001);
  t.is(hlcLogical(next), 0);
});

test('hlc: receive respects happened-before (result exceeds both clocks)', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.integer({ min: 0, max: 1000 }),
      fc.integer({ min: 0, max: 65535 }),
      (localWall, physical, aheadMs, logical) => {
        const last = packHlc(localWall, 0);
        const remote = packHlc(physical + Math.min(aheadMs, 500), logical);
        const merged = hlcReceive(last, remote, physical, 500);
        return merged > last && merged > remote;
      },
    ),
    { seed },
  );
  t.pass();
});

test('hlc: receive refuses a remote clock beyond maxClockOffsetMs', (t) => {
  const error = t.throws(() => hlcReceive(0n, packHlc(10_000 + 501, 0), 10_000, 500), {
    instanceOf: ClockSkewError,
  });
  t.is(error?.code, 'ADMQ_ERR_CLOCK_SKEW');
  t.is(error?.skewMs, 501);
  t.notThrows(() => hlcReceive(0n, packHlc(10_500, 0), 10_000, 500));
});

test('hlc: clock with skewed injected source never goes backwards', (t) => {
  let physical = 5_000;
  const clock = new HybridLogicalClock({ readPhysicalMs: () => physical });
  const a = clock.now();
  physical = 1_000; // the source jumps back four seconds
  const b = clock.now();
  t.true(b > a);
  clock.advanceTo(packHlc(9_000, 3));
  t.true(clock.now() > packHlc(9_000, 3));
});

test('hlc: (timestamp, region) order is total and antisymmetric', (t) => {
  const item = fc.record({ hlc: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), region: fc.constantFrom('a', 'b', 'c') });
  fc.assert(
    fc.property(item, item, (a, b) => {
      const ab = compareHlc(a, b);
      const ba = compareHlc(b, a);
      return ab === -ba && (ab !== 0 || (a.hlc === b.hlc && a.region === b.region));
    }),
    { seed },
  );
  t.pass();
});
