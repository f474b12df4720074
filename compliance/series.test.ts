import test from 'ava';
import fc from 'fast-check';
import { HistoryCorruptError } from './errors.ts';
import { SCHEMAS, SERIES_KINDS, cellsOf, decodeChunk, encodeChunk, mergeCells, rawCell, sketchOf, statesOf, type Cell, type Chunk, type SeriesKind } from './series.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
test.before(() => console.log(`compliance series property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const INTERVAL = 1000;

/** A raw sample of a series of `kind`, with values in the ranges the sampler produces. */
function sampleArb(kind: SeriesKind): fc.Arbitrary<{ values: Record<string, number>; hlc: Record<string, bigint> }> {
  const fields = SCHEMAS[kind];
  return fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: 10_000_000 }), { minLength: fields.length, maxLength: fields.length }),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.integer({ min: -100_000, max: 100_000 }),
      fc.integer({ min: 0, max: 2 }),
    )
    .map(([numbers, hlc, signed, state]) => {
      const values: Record<string, number> = {};
      const hlcs: Record<string, bigint> = {};
      fields.forEach((f, i) => {
        if (f.agg === 'hlc') hlcs[f.name] = hlc;
        else if (f.agg === 'state') values[f.name] = state;
        else values[f.name] = f.signed ? signed : (numbers[i] as number);
      });
      return { values, hlc: hlcs };
    });
}

function rawChunkArb(kind: SeriesKind): fc.Arbitrary<Chunk> {
  return fc.array(fc.option(sampleArb(kind), { nil: undefined }), { minLength: 60, maxLength: 60 }).map((slots) => ({
    level: 0 as const,
    startMs: 1_700_000_040_000,
    slotMs: INTERVAL,
    slots: slots.map((s, i) => (s ? rawCell(1_700_000_040_000 + i * INTERVAL, INTERVAL, s.values, s.hlc) : undefined)),
  }));
}

/** What a cell says, in a form two cells can be compared by. */
function describe(kind: SeriesKind, cell: Cell | undefined): unknown {
  if (!cell) return null;
  return {
    startMs: cell.startMs,
    spanMs: cell.spanMs,
    count: cell.count,
    fields: SCHEMAS[kind].map((f) => {
      if (f.agg === 'hlc') return (cell.hlc[f.name] ?? 0n).toString();
      if (f.agg === 'sketch') {
        const s = sketchOf(cell, f.name);
        return [cell.values[f.name], s.zeroCount, [...s.bins].sort((a, b) => a[0] - b[0])];
      }
      if (f.agg === 'state') return [cell.values[f.name], statesOf(cell, f.name)];
      return cell.values[f.name];
    }),
  };
}

test('chunks: raw and downsampled chunks of every series kind round-trip through the codec; gaps stay gaps', (t) => {
  for (const kind of SERIES_KINDS) {
    fc.assert(
      fc.property(rawChunkArb(kind), (chunk) => {
        const back = decodeChunk(kind, chunk.startMs, encodeChunk(kind, chunk));
        if (back.slots.length !== chunk.slots.length) return false;
        if (!back.slots.every((c, i) => JSON.stringify(describe(kind, c)) === JSON.stringify(describe(kind, chunk.slots[i])))) return false;
        // Downsample into buckets of 10 slots, and round-trip those too.
        const buckets: Chunk = { level: 1, startMs: chunk.startMs, slotMs: 10 * INTERVAL, slots: [] };
        for (let b = 0; b < 6; b++) {
          const cells = cellsOf({ ...chunk, slots: chunk.slots.slice(b * 10, b * 10 + 10) });
          buckets.slots.push(cells.length > 0 ? mergeCells(kind, cells, chunk.startMs + b * 10 * INTERVAL, 10 * INTERVAL) : undefined);
        }
        for (const deflate of [false, true]) {
          const bucketsBack = decodeChunk(kind, buckets.startMs, encodeChunk(kind, buckets, { deflate }));
          if (!bucketsBack.slots.every((c, i) => JSON.stringify(describe(kind, c)) === JSON.stringify(describe(kind, buckets.slots[i])))) return false;
        }
        return true;
      }),
      { seed, numRuns: 60 },
    );
  }
  t.pass();
});

test('merge: a bucket is the same however its samples are grouped and ordered (commutative, associative)', (t) => {
  for (const kind of SERIES_KINDS) {
    fc.assert(
      fc.property(fc.array(sampleArb(kind), { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 30 }), (samples, cut) => {
        const cells = samples.map((s, i) => rawCell(i * INTERVAL, INTERVAL, s.values, s.hlc));
        const whole = mergeCells(kind, cells, 0, 60 * INTERVAL);
        const at = Math.min(cut, cells.length);
        const left = mergeCells(kind, cells.slice(0, at), 0, 60 * INTERVAL);
        const right = mergeCells(kind, cells.slice(at), 0, 60 * INTERVAL);
        const grouped = mergeCells(kind, [right, left], 0, 60 * INTERVAL);
        const reversed = mergeCells(kind, [...cells].reverse(), 0, 60 * INTERVAL);
        const a = JSON.stringify(describe(kind, whole));
        return a === JSON.stringify(describe(kind, grouped)) && a === JSON.stringify(describe(kind, reversed)) && whole.count === cells.length;
      }),
      { seed, numRuns: 100 },
    );
  }
  t.pass();
});

test('merge: a bucket keeps the max, the sums, the highest watermark and the link states of its samples', (t) => {
  const cells = [
    rawCell(0, 1000, { lagMs: 5, backlogEntries: 3, backlogBytes: 30, links: 2, linkState: 2, duplicates: 1, residencyWithheld: 0, clockSkewRefusals: 0, entriesShipped: 10, reconnects: 0 }),
    rawCell(1000, 1000, { lagMs: 7000, backlogEntries: 9, backlogBytes: 90, links: 2, linkState: 1, duplicates: 2, residencyWithheld: 4, clockSkewRefusals: 1, entriesShipped: 0, reconnects: 1 }),
    rawCell(2000, 1000, { lagMs: 0, backlogEntries: 0, backlogBytes: 0, links: 0, linkState: 0, duplicates: 0, residencyWithheld: 0, clockSkewRefusals: 0, entriesShipped: 0, reconnects: 0 }),
  ];
  const bucket = mergeCells('out', cells, 0, 60_000);
  t.is(bucket.count, 3);
  t.is(bucket.values.lagMs, 7000);
  t.is(bucket.values.backlogEntries, 9);
  t.is(bucket.values.duplicates, 3);
  t.is(bucket.values.residencyWithheld, 4);
  t.deepEqual(statesOf(bucket, 'linkState'), [1, 1, 1]);
  t.is(sketchOf(bucket, 'lagMs').count, 3);
  t.is(sketchOf(bucket, 'lagMs').countAbove(5000), 1);
  const watermarks = mergeCells('in', [rawCell(0, 1000, { skewMs: -40 }, { watermarkHlc: 7n << 16n }), rawCell(1000, 1000, { skewMs: 12 }, { watermarkHlc: 9n << 16n })], 0, 60_000);
  t.is(watermarks.hlc.watermarkHlc, 9n << 16n);
  t.is(watermarks.values.skewMs, 12);
});

test('chunks: truncated, extended or random bytes are refused with HistoryCorruptError, never misread', (t) => {
  fc.assert(
    fc.property(rawChunkArb('out'), fc.nat(), fc.uint8Array({ maxLength: 200 }), fc.boolean(), (chunk, cutSeed, garbage, deflate) => {
      const bytes = encodeChunk('out', chunk, { deflate });
      const cut = bytes.subarray(0, cutSeed % bytes.length);
      const extended = Buffer.concat([bytes, Buffer.from([0])]);
      const original = JSON.stringify(decodeChunk('out', 0, bytes).slots.map((c) => describe('out', c)));
      for (const input of [cut, extended, garbage, Buffer.concat([Buffer.from([2]), garbage])]) {
        try {
          const decoded = decodeChunk('out', 0, input);
          // The fields fix a chunk's length: a strict prefix never decodes, nor does a longer
          // plain chunk; zlib may ignore bytes after a deflate stream, and then it is the same chunk.
          if (input === cut) return false;
          if (input === extended && (!deflate || JSON.stringify(decoded.slots.map((c) => describe('out', c))) !== original)) return false;
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
