// The lag history's data model, pure: series, their fields, cells, merging and the chunk
// codec. No I/O.
//
// A series is what one node observes about one thing over time:
//   out   (namespace, from = this region, to = a neighbour): the links' lag, backlog,
//         state and counters for that namespace (written by the sending region);
//   in    (namespace, from = an origin, to = this region): the HLC watermark this region
//         holds for that origin, and the origin's clock ahead of ours as far as it shows;
//   ns    (namespace, from = this region): topics held here, whether this region may hold
//         the namespace, conflicts recorded here, writes refused here for residency;
//   node  (from = this region): receiver refusals and counters. A node writes it on every
//         sample, so its gaps are exactly the node's gaps (down, or not sampling).
//
// A cell is one slot of a series: a raw sample (one sample interval) or a downsampled
// bucket (many). A bucket keeps, per field, what merges without loss for the report: max,
// min or sum, a LagSketch for the lag, counts per state for the link state. `count` is the
// number of raw samples in the cell; a slot with no cell is a gap, never a zero.
//
// A chunk is one LMDB record: consecutive slots of one series at one level.
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { ByteReader, ByteWriter } from './bytes.ts';
import { HistoryCorruptError } from './errors.ts';
import { LagSketch } from './sketch.ts';

export type SeriesKind = 'out' | 'in' | 'ns' | 'node';
export const SERIES_KINDS: readonly SeriesKind[] = ['out', 'in', 'ns', 'node'];

export interface SeriesKey {
  kind: SeriesKind;
  /** tenant/namespace; '' for node. */
  namespace: string;
  from: string;
  /** '' for ns and node. */
  to: string;
}

export function seriesKeyText(key: SeriesKey): string {
  return `${key.kind}|${key.namespace}|${key.from}|${key.to}`;
}

export function parseSeriesKeyText(text: string): SeriesKey {
  const [kind, namespace, from, to, ...rest] = text.split('|');
  if (rest.length > 0 || !SERIES_KINDS.includes(kind as SeriesKind) || namespace === undefined || from === undefined || to === undefined) {
    throw new HistoryCorruptError(`malformed series key ${JSON.stringify(text)}`);
  }
  return { kind: kind as SeriesKind, namespace, from, to };
}

/**
 * How a field merges into a bucket: `max`, `min`, `sum`; `sketch`: a LagSketch plus the
 * exact max; `state`: counts per state value (0, 1, 2); `hlc`: a 64-bit HLC, the highest.
 */
export type Aggregation = 'max' | 'min' | 'sum' | 'sketch' | 'state' | 'hlc';

export interface FieldSpec {
  name: string;
  agg: Aggregation;
  /** Values may be negative (zigzag-coded). */
  signed?: boolean;
}

/** Link state of a pair in a sample: no link, some link not connected, or all connected. */
export const LinkStateValue = { NoLinks: 0, Down: 1, Up: 2 } as const;
const STATES = 3;

export const SCHEMAS: Readonly<Record<SeriesKind, readonly FieldSpec[]>> = {
  out: [
    /** Age of the oldest entry not yet acknowledged by the remote, max over the namespace's links (never 0 on a link that is not connected). */
    { name: 'lagMs', agg: 'sketch' },
    { name: 'backlogEntries', agg: 'max' },
    { name: 'backlogBytes', agg: 'max' },
    { name: 'links', agg: 'max' },
    { name: 'linkState', agg: 'state' },
    /** Entries the remote dropped as duplicates (it had them already), since the last sample. */
    { name: 'duplicates', agg: 'sum' },
    /** Entries withheld because the remote may not hold them (residency), since the last sample. */
    { name: 'residencyWithheld', agg: 'sum' },
    { name: 'clockSkewRefusals', agg: 'sum' },
    { name: 'entriesShipped', agg: 'sum' },
    { name: 'reconnects', agg: 'sum' },
  ],
  in: [
    /** Lowest HLC watermark of the origin over the namespace's topics here; 0 when there is none. */
    { name: 'watermarkHlc', agg: 'hlc' },
    /** Origin's freshest watermark minus our clock, in ms: a lower bound of how far its clock is ahead. */
    { name: 'skewMs', agg: 'max', signed: true },
  ],
  ns: [
    { name: 'topics', agg: 'max' },
    /** 1 when the current placement lets this region hold the namespace. */
    { name: 'mayHold', agg: 'min' },
    { name: 'conflicts', agg: 'sum' },
    { name: 'writesRefusedResidency', agg: 'sum' },
  ],
  node: [
    { name: 'residencyRefusals', agg: 'sum' },
    { name: 'unauthorizedRefusals', agg: 'sum' },
    { name: 'clockSkewRefusals', agg: 'sum' },
    /** The receiver's largest refused skew since the process started, in ms. */
    { name: 'maxClockSkewMs', agg: 'max' },
    { name: 'entriesAppended', agg: 'sum' },
    { name: 'duplicates', agg: 'sum' },
  ],
};

/** One sample as the sampler makes it: a value per field of the series' schema (HLCs as bigints). */
export interface Sample {
  series: SeriesKey;
  values: Record<string, number>;
  hlc?: Record<string, bigint>;
}

export interface Cell {
  startMs: number;
  spanMs: number;
  /** Raw samples in the cell: 1 for a raw cell. */
  count: number;
  raw: boolean;
  /** Per field: the raw value, or the bucket's max / min / sum (the max for sketch fields). */
  values: Record<string, number>;
  hlc: Record<string, bigint>;
  /** Buckets only; raw cells make theirs on demand (sketchOf). */
  sketches: Record<string, LagSketch>;
  /** Buckets only; raw cells make theirs on demand (statesOf). */
  states: Record<string, number[]>;
}

export function rawCell(startMs: number, spanMs: number, values: Record<string, number>, hlc: Record<string, bigint> = {}): Cell {
  return { startMs, spanMs, count: 1, raw: true, values, hlc, sketches: {}, states: {} };
}

/** The cell's sketch of a sketch field (a raw cell's holds its one value). */
export function sketchOf(cell: Cell, field: string): LagSketch {
  const existing = cell.sketches[field];
  if (existing) return existing;
  const sketch = new LagSketch();
  if (cell.raw) sketch.add(cell.values[field] ?? 0);
  return sketch;
}

/** The cell's samples per state value of a state field. */
export function statesOf(cell: Cell, field: string): number[] {
  const existing = cell.states[field];
  if (existing) return existing;
  const counts = new Array<number>(STATES).fill(0);
  if (cell.raw) counts[Math.min(STATES - 1, Math.max(0, cell.values[field] ?? 0))] = 1;
  return counts;
}

/** Merges cells of one series into one bucket [startMs, startMs + spanMs). Commutative and associative. */
export function mergeCells(kind: SeriesKind, cells: readonly Cell[], startMs: number, spanMs: number): Cell {
  const out: Cell = { startMs, spanMs, count: 0, raw: false, values: {}, hlc: {}, sketches: {}, states: {} };
  for (const field of SCHEMAS[kind]) {
    switch (field.agg) {
      case 'sketch':
        out.sketches[field.name] = new LagSketch();
        break;
      case 'state':
        out.states[field.name] = new Array<number>(STATES).fill(0);
        break;
      case 'hlc':
        out.hlc[field.name] = 0n;
        break;
    }
  }
  for (const cell of cells) {
    if (cell.count === 0) continue;
    const first = out.count === 0;
    out.count += cell.count;
    for (const { name, agg } of SCHEMAS[kind]) {
      const v = cell.values[name] ?? 0;
      switch (agg) {
        case 'max':
        case 'sketch':
          out.values[name] = first ? v : Math.max(out.values[name] as number, v);
          if (agg === 'sketch') (out.sketches[name] as LagSketch).merge(sketchOf(cell, name));
          break;
        case 'min':
          out.values[name] = first ? v : Math.min(out.values[name] as number, v);
          break;
        case 'sum':
          out.values[name] = (out.values[name] ?? 0) + v;
          break;
        case 'state': {
          const counts = out.states[name] as number[];
          statesOf(cell, name).forEach((c, i) => (counts[i] = (counts[i] ?? 0) + c));
          out.values[name] = first ? v : Math.max(out.values[name] as number, v);
          break;
        }
        case 'hlc': {
          const h = cell.hlc[name] ?? 0n;
          if (h > (out.hlc[name] as bigint)) out.hlc[name] = h;
          break;
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Chunks

export type Level = 0 | 1;

export interface Chunk {
  level: Level;
  startMs: number;
  /** Span of one slot: the sample interval (level 0) or the downsampled resolution (level 1). */
  slotMs: number;
  /** One entry per slot; undefined is a gap. */
  slots: Array<Cell | undefined>;
}

/** Format byte of a chunk: its fields as they are, or deflated (raw DEFLATE) after this byte. */
const CHUNK_PLAIN = 1;
const CHUNK_DEFLATED = 2;
/** A chunk has at most this many slots (the store writes 60 raw samples, 1,440 buckets). */
export const CHUNK_SLOTS_MAX = 4096;
/** A deflated chunk inflates to at most this: bytes from the network must not inflate without bound. */
const INFLATED_BYTES_MAX = 4 * 1024 * 1024;

/**
 * Encodes a chunk of a series of `kind`. HLCs are coded as differences from the previous
 * slot's. `deflate`: compress the fields (the store does it for downsampled chunks, which
 * are written once: a day of buckets deflates to about a third).
 */
export function encodeChunk(kind: SeriesKind, chunk: Chunk, options: { deflate?: boolean } = {}): Buffer {
  const body = encodeFields(kind, chunk);
  if (!options.deflate) return Buffer.concat([Buffer.from([CHUNK_PLAIN]), body]);
  return Buffer.concat([Buffer.from([CHUNK_DEFLATED]), deflateRawSync(body)]);
}

function encodeFields(kind: SeriesKind, chunk: Chunk): Buffer {
  const w = new ByteWriter(64 + chunk.slots.length * 8);
  w.byte(chunk.level);
  w.uvarint(chunk.slotMs);
  w.uvarint(chunk.slots.length);
  const bitmap = new Uint8Array(Math.ceil(chunk.slots.length / 8));
  chunk.slots.forEach((cell, i) => {
    if (cell && cell.count > 0) bitmap[i >> 3] = (bitmap[i >> 3] as number) | (1 << (i & 7));
  });
  w.bytes(bitmap);
  const previousHlc: Record<string, bigint> = {};
  for (const cell of chunk.slots) {
    if (!cell || cell.count === 0) continue;
    if (chunk.level === 1) w.uvarint(cell.count);
    for (const field of SCHEMAS[kind]) {
      const v = cell.values[field.name] ?? 0;
      if (field.agg === 'hlc') {
        const h = cell.hlc[field.name] ?? 0n;
        w.bigSvarint(h - (previousHlc[field.name] ?? 0n));
        previousHlc[field.name] = h;
        continue;
      }
      if (field.signed) w.svarint(v);
      else w.uvarint(v);
      if (chunk.level === 1 && field.agg === 'sketch') sketchOf(cell, field.name).encode(w);
      if (chunk.level === 1 && field.agg === 'state') for (const c of statesOf(cell, field.name)) w.uvarint(c);
    }
  }
  return w.finish();
}

export function decodeChunk(kind: SeriesKind, startMs: number, bytes: Uint8Array): Chunk {
  const format = bytes[0];
  let body: Uint8Array;
  if (format === CHUNK_PLAIN) body = bytes.subarray(1);
  else if (format === CHUNK_DEFLATED) {
    try {
      body = inflateRawSync(bytes.subarray(1), { maxOutputLength: INFLATED_BYTES_MAX });
    } catch (error) {
      throw new HistoryCorruptError(`a deflated chunk does not inflate: ${(error as Error).message}`);
    }
  } else throw new HistoryCorruptError(`chunk format ${String(format)} (this build reads ${CHUNK_PLAIN} and ${CHUNK_DEFLATED})`);
  return decodeFields(kind, startMs, body, bytes.length);
}

function decodeFields(kind: SeriesKind, startMs: number, bytes: Uint8Array, storedBytes: number): Chunk {
  const r = new ByteReader(bytes);
  const level = r.byte();
  if (level !== 0 && level !== 1) throw new HistoryCorruptError(`chunk level ${level}`);
  const slotMs = r.uvarint();
  const length = r.uvarint();
  if (slotMs === 0 || length > CHUNK_SLOTS_MAX) throw new HistoryCorruptError(`chunk of ${length} slots of ${slotMs} ms`);
  const bitmap = r.bytes(Math.ceil(length / 8));
  const slots: Array<Cell | undefined> = new Array(length).fill(undefined);
  const previousHlc: Record<string, bigint> = {};
  for (let i = 0; i < length; i++) {
    if (((bitmap[i >> 3] as number) & (1 << (i & 7))) === 0) continue;
    const count = level === 1 ? r.uvarint() : 1;
    if (count === 0) throw new HistoryCorruptError('a bucket marked present holds no sample');
    const cell: Cell = { startMs: startMs + i * slotMs, spanMs: slotMs, count, raw: level === 0, values: {}, hlc: {}, sketches: {}, states: {} };
    for (const field of SCHEMAS[kind]) {
      if (field.agg === 'hlc') {
        const h = (previousHlc[field.name] ?? 0n) + r.bigSvarint();
        if (h < 0n || h >= 1n << 64n) throw new HistoryCorruptError(`HLC ${h} out of range`);
        cell.hlc[field.name] = h;
        previousHlc[field.name] = h;
        continue;
      }
      cell.values[field.name] = field.signed ? r.svarint() : r.uvarint();
      if (level === 1 && field.agg === 'sketch') cell.sketches[field.name] = LagSketch.decode(r);
      if (level === 1 && field.agg === 'state') cell.states[field.name] = Array.from({ length: STATES }, () => r.uvarint());
    }
    slots[i] = cell;
  }
  if (!r.done) throw new HistoryCorruptError(`chunk of ${storedBytes} bytes has ${bytes.length - r.offset} bytes left over`);
  return { level, startMs, slotMs, slots };
}

/** The cells of a chunk, in time order. */
export function cellsOf(chunk: Chunk): Cell[] {
  return chunk.slots.filter((c): c is Cell => c !== undefined);
}
