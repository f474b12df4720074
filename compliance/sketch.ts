// A mergeable quantile sketch for lag values in ms. Above 500 ms it is the log-bucket
// scheme of DDSketch (Masson et al. 2019): bin k holds (500γ^(k−1), 500γ^k] with
// γ = (1 + α)/(1 − α) and stands for 500·2γ^k/(γ + 1), within α = 1% of every value in it.
// Below 500 ms, where 1% is less than a few ms, bins are 5 ms wide (within 2.5 ms): a lag
// of tens of ms with jitter then fills a handful of bins instead of one per ms, which is
// most of what a downsampled bucket costs. 0 has its own count. Merging adds counts, so it
// is commutative and associative, and a quantile over a year of downsampled buckets is as
// accurate as over the raw samples.
import type { ByteReader, ByteWriter } from './bytes.ts';
import { HistoryCorruptError } from './errors.ts';

/** Relative accuracy of every quantile the sketch returns at and above LINEAR_LIMIT_MS. */
export const SKETCH_RELATIVE_ACCURACY = 0.01;
/** Below this, bins are LINEAR_WIDTH_MS wide (the same width as 1% of it). */
export const LINEAR_LIMIT_MS = 500;
export const LINEAR_WIDTH_MS = 5;
const LINEAR_BINS = LINEAR_LIMIT_MS / LINEAR_WIDTH_MS;
const GAMMA = (1 + SKETCH_RELATIVE_ACCURACY) / (1 - SKETCH_RELATIVE_ACCURACY);
const LOG_GAMMA = Math.log(GAMMA);
/** Bin of the largest lag the history holds (a week in ms is bin ~800): bounds a decoded sketch. */
const BIN_MAX = 2_000;

/** The bin of a lag > 0. */
export function binOf(valueMs: number): number {
  if (valueMs < LINEAR_LIMIT_MS) return Math.floor(valueMs / LINEAR_WIDTH_MS);
  return Math.min(BIN_MAX, LINEAR_BINS + Math.max(0, Math.ceil(Math.log(valueMs / LINEAR_LIMIT_MS) / LOG_GAMMA - 1e-9)));
}

/** The value a bin stands for: its middle (linear bins), or within 1% of all it holds (log bins). */
export function binValue(bin: number): number {
  if (bin < LINEAR_BINS) return bin * LINEAR_WIDTH_MS + LINEAR_WIDTH_MS / 2;
  return (LINEAR_LIMIT_MS * 2 * GAMMA ** (bin - LINEAR_BINS)) / (GAMMA + 1);
}

export class LagSketch {
  zeroCount = 0;
  readonly bins = new Map<number, number>();

  get count(): number {
    let n = this.zeroCount;
    for (const c of this.bins.values()) n += c;
    return n;
  }

  add(valueMs: number, times = 1): void {
    if (!(valueMs >= 0) || times <= 0) return;
    if (valueMs === 0) {
      this.zeroCount += times;
      return;
    }
    const bin = binOf(valueMs);
    this.bins.set(bin, (this.bins.get(bin) ?? 0) + times);
  }

  merge(other: LagSketch): this {
    this.zeroCount += other.zeroCount;
    for (const [bin, c] of other.bins) this.bins.set(bin, (this.bins.get(bin) ?? 0) + c);
    return this;
  }

  clone(): LagSketch {
    return new LagSketch().merge(this);
  }

  /**
   * The nearest-rank quantile: the smallest value with at least q of the values at or
   * below it, as its bin's value (within 1%, or 2.5 ms below 500 ms); undefined for an
   * empty sketch.
   */
  quantile(q: number): number | undefined {
    const n = this.count;
    if (n === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * n));
    let seen = this.zeroCount;
    if (seen >= rank) return 0;
    for (const bin of [...this.bins.keys()].sort((a, b) => a - b)) {
      seen += this.bins.get(bin) as number;
      if (seen >= rank) return binValue(bin);
    }
    return binValue(Math.max(...this.bins.keys()));
  }

  /**
   * How many values lie above `thresholdMs`. Exact except for the values that share the
   * threshold's bin (within 1% or 5 ms of it), which count as above when the bin's value is.
   */
  countAbove(thresholdMs: number): number {
    const edge = thresholdMs < 0 ? -1 : binOf(thresholdMs);
    let n = thresholdMs < 0 ? this.zeroCount : 0;
    for (const [bin, c] of this.bins) if (bin > edge || (bin === edge && binValue(bin) > thresholdMs)) n += c;
    return n;
  }

  encode(w: ByteWriter): void {
    w.uvarint(this.zeroCount);
    const bins = [...this.bins.keys()].sort((a, b) => a - b);
    w.uvarint(bins.length);
    let previous = 0;
    for (const bin of bins) {
      w.uvarint(bin - previous);
      w.uvarint(this.bins.get(bin) as number);
      previous = bin;
    }
  }

  static decode(r: ByteReader): LagSketch {
    const sketch = new LagSketch();
    sketch.zeroCount = r.uvarint();
    const length = r.uvarint();
    if (length > BIN_MAX + 1) throw new HistoryCorruptError(`sketch with ${length} bins (at most ${BIN_MAX + 1})`);
    let bin = 0;
    for (let i = 0; i < length; i++) {
      bin += r.uvarint();
      if (bin > BIN_MAX || (i > 0 && sketch.bins.has(bin))) throw new HistoryCorruptError(`sketch bin ${bin} out of order or range`);
      sketch.bins.set(bin, r.uvarint());
    }
    return sketch;
  }
}
