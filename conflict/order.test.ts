import test from 'ava';
import fc from 'fast-check';
import { compareHlcOrder, insertInHlcOrder, packHlc, releaseFrontier, releaseInHlcOrder, type HlcOrdered } from './index.ts';
import { happenedBefore, pickOne, prng, randomInt, simulateKeyedHistory } from './test-histories.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
const numRuns = 60;
test.before(() => console.log(`order property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const entry = (originRegion: string, originPosition: number, wallMs: number, logical = 0): HlcOrdered => ({
  originRegion,
  originPosition,
  hlc: packHlc(wallMs, logical),
});

test('order: (HLC, origin) compares the clock, then the region name, then the position', (t) => {
  t.true(compareHlcOrder(entry('shanghai', 9, 100), entry('beijing', 1, 101)) < 0);
  t.true(compareHlcOrder(entry('beijing', 9, 100, 1), entry('shanghai', 1, 100, 0)) > 0);
  t.true(compareHlcOrder(entry('beijing', 9, 100), entry('shanghai', 1, 100)) < 0, 'equal HLC: region name');
  t.true(compareHlcOrder(entry('beijing', 1, 100), entry('beijing', 2, 100)) < 0, 'same region and HLC: position');
  t.is(compareHlcOrder(entry('beijing', 1, 100), entry('beijing', 1, 100)), 0);
});

test('order: release waits for every region in the replication set', (t) => {
  const buffer = [entry('a', 1, 10), entry('b', 1, 10), entry('c', 1, 11), entry('a', 2, 12)];
  const set = ['a', 'b', 'c'];
  const marks = (a: number, b: number, c?: number): Map<string, bigint> =>
    new Map(
      Object.entries({ a, b, c }).flatMap(([region, wall]) => (wall === undefined ? [] : [[region, packHlc(wall, 0)]])),
    );
  t.deepEqual(releaseInHlcOrder(buffer, marks(20, 20), set).released, [], 'no watermark from c yet: nothing');
  t.is(releaseFrontier(marks(20, 20), set), undefined);
  t.deepEqual(releaseInHlcOrder(buffer, marks(20, 20, 9), set).released, []);
  // Watermarks are inclusive: at 10 both entries stamped 10 go, in region order.
  const atTen = releaseInHlcOrder(buffer, marks(20, 10, 30), set);
  t.deepEqual(atTen.released, buffer.slice(0, 2));
  t.deepEqual(atTen.pending, buffer.slice(2));
  t.deepEqual(releaseInHlcOrder(buffer, marks(11, 30, 30), set).released, buffer.slice(0, 3));
  t.deepEqual(releaseInHlcOrder(buffer, marks(99, 99, 99), set).pending, []);
  t.throws(() => releaseFrontier(new Map(), []), { message: /replication set/ });
});

test('order: insertion keeps the buffer sorted and ignores a second copy of an entry', (t) => {
  let buffer: HlcOrdered[] = [];
  for (const e of [entry('b', 1, 10), entry('a', 5, 12), entry('a', 4, 10), entry('c', 1, 10)]) {
    buffer = insertInHlcOrder(buffer, e);
  }
  t.deepEqual(
    buffer.map((e) => `${e.originRegion}${e.originPosition}`),
    ['a4', 'b1', 'c1', 'a5'],
  );
  t.is(insertInHlcOrder(buffer, entry('b', 1, 10)).length, 4);
});

const histories = fc.record({
  historySeed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  regions: fc.constantFrom(['a', 'b'], ['a', 'b', 'c'], ['beijing', 'chengdu', 'shanghai', 'wuhan']),
  steps: fc.integer({ min: 5, max: 60 }),
  clockSkewMsMax: fc.constantFrom(0, 3, 50),
});

test('order: (HLC, origin) is a total order consistent with happened-before on causal histories', (t) => {
  fc.assert(
    fc.property(histories, ({ historySeed, regions, steps, clockSkewMsMax }) => {
      const { writes } = simulateKeyedHistory(historySeed, { regions, steps, clockSkewMsMax });
      for (const a of writes) {
        for (const b of writes) {
          const ab = compareHlcOrder(a, b);
          if (ab !== -compareHlcOrder(b, a)) return false; // antisymmetric
          if ((ab === 0) !== (a === b)) return false; // total: distinct writes never tie
          if (happenedBefore(a, b) && !(a.hlc < b.hlc && ab < 0)) return false; // respects causality
        }
      }
      // Transitive: after sorting, every earlier element compares below every later one.
      const sorted = writes.slice().sort(compareHlcOrder);
      for (let i = 0; i < sorted.length; i++) {
        for (let j = i + 1; j < sorted.length; j++) if (compareHlcOrder(sorted[i]!, sorted[j]!) >= 0) return false;
      }
      return true;
    }),
    { seed, numRuns },
  );
  t.pass();
});

test('order: every arrival order releases the same sequence, a prefix of the total order', (t) => {
  fc.assert(
    fc.property(histories, fc.integer({ min: 0, max: 2 ** 31 - 1 }), ({ historySeed, regions, steps }, arrivalSeed) => {
      const { writes } = simulateKeyedHistory(historySeed, { regions, steps });
      const everything = writes.slice().sort(compareHlcOrder);
      const random = prng(arrivalSeed);
      // Each origin's entries arrive in origin order (one FIFO link per origin), interleaved
      // at random; a watermark only ever covers what has arrived, plus heartbeats that move
      // it up to just below the origin's next entry.
      const queues = new Map(regions.map((r) => [r, writes.filter((w) => w.originRegion === r)]));
      const watermarks = new Map<string, bigint>(regions.map((r) => [r, 0n]));
      let buffer: typeof writes[number][] = [];
      const released: typeof writes[number][] = [];
      for (;;) {
        const open = regions.filter((r) => queues.get(r)!.length > 0);
        if (open.length === 0) break;
        const origin = pickOne(random, open);
        const queue = queues.get(origin)!;
        if (randomInt(random, 0, 3) === 0) {
          // Heartbeat: the origin promises nothing more at or below just under its next entry.
          const below = queue[0]!.hlc - 1n;
          if (below > watermarks.get(origin)!) watermarks.set(origin, below);
        } else {
          const next = queue.shift()!;
          buffer = insertInHlcOrder(buffer, next);
          watermarks.set(origin, next.hlc);
        }
        const step = releaseInHlcOrder(buffer, watermarks, regions);
        released.push(...step.released);
        buffer = step.pending;
        // What has been released so far is exactly the start of the total order.
        for (let i = 0; i < released.length; i++) if (released[i] !== everything[i]) return false;
      }
      // Idle links heartbeat to the end of time: everything is released, in total order.
      const end = new Map(regions.map((r) => [r, 2n ** 64n - 1n]));
      released.push(...releaseInHlcOrder(buffer, end, regions).released);
      return released.length === everything.length && released.every((w, i) => w === everything[i]);
    }),
    { seed, numRuns },
  );
  t.pass();
});
