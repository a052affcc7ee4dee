/**
 * One metric's chart data: buckets of `stepMs` (min, mean, max per bucket), history from the hub's history
 * API joined without a seam to live readings folded into the same buckets.
 *
 * - Buckets are aligned to multiples of stepMs (the history request asks for `from` on a multiple and an
 *   explicit `step`), so a live reading lands in the bucket the hub would have put it in.
 * - History is fetched up to `seamTs`; live readings at or before it are already in the history and are
 *   dropped, later ones fold into the buckets. Min and max are exact across the seam; the mean of the one
 *   bucket that straddles it weighs the history part as one reading.
 * - Gaps are drawn, never bridged: a gap mark (the live channel said "not recovered") and a silence longer
 *   than `gapFactor` times the usual spacing both put a null point between the buckets (uPlot breaks the line).
 */
import type { HistoryPoint, Scalar } from './types.js';

/**
 * The bucket width giving about `points` buckets over `rangeMs`, never more: the smallest width that is a whole
 * number of ms (under a second), of tenths of a second (under a minute) or of seconds. The hub takes any
 * whole-ms `step` (api.md, history), so a chart of 400 px over 24 h asks for 216 s buckets, 400 of them, where
 * the hub's own round widths (hub/src/api/history.ts) would give 300 s and 288.
 */
export function stepFor(rangeMs: number, points: number): number {
  const need = Math.max(1, Math.ceil(rangeMs / Math.max(1, points)));
  const unit = need < 1000 ? 1 : need < 60_000 ? 100 : 1000;
  return Math.ceil(need / unit) * unit;
}

export function numeric(value: Scalar | null | undefined): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return null;
}

/** [x (ms), min, mean, max]: uPlot's aligned data with `ms: 1`. */
export type ChartData = [number[], Array<number | null>, Array<number | null>, Array<number | null>];

export class BucketSeries {
  /** Bucket starts, ascending. */
  ts: number[] = [];
  min: number[] = [];
  max: number[] = [];
  sum: number[] = [];
  count: number[] = [];
  /** Times at which the live channel lost data it could not recover (drawn as breaks). */
  gaps: number[] = [];
  /** Live readings at or before this time are already in the history. */
  seamTs = -Infinity;
  /** Changes since the last toData() (the chart redraws only then). */
  version = 0;

  constructor(
    readonly stepMs: number,
    readonly gapFactor = 5,
  ) {}

  bucketOf(ts: number): number {
    return Math.floor(ts / this.stepMs) * this.stepMs;
  }

  /**
   * Merges history buckets (one answer per aggregate; missing buckets are simply absent) and sets the seam.
   * History replaces what the series held for the same buckets.
   */
  setHistory(h: { min?: HistoryPoint[]; mean?: HistoryPoint[]; max?: HistoryPoint[] }, seamTs: number): void {
    const rows = new Map<number, { min: number | null; mean: number | null; max: number | null }>();
    const take = (pts: HistoryPoint[] | undefined, key: 'min' | 'mean' | 'max'): void => {
      for (const p of pts ?? []) {
        const v = numeric(p.value);
        if (v === null) continue;
        const b = this.bucketOf(p.ts);
        const row = rows.get(b) ?? { min: null, mean: null, max: null };
        row[key] = v;
        rows.set(b, row);
      }
    };
    take(h.min, 'min');
    take(h.mean, 'mean');
    take(h.max, 'max');
    // Keep live buckets that reach past the seam; history owns everything before it.
    const keep = new Map<number, number>();
    for (let i = 0; i < this.ts.length; i++) if (this.ts[i]! + this.stepMs > seamTs) keep.set(this.ts[i]!, i);
    const merged: Array<[number, number, number, number, number]> = [];
    for (const [b, r] of rows) {
      const mean = r.mean ?? (r.min !== null && r.max !== null ? (r.min + r.max) / 2 : (r.min ?? r.max)!);
      let mn = r.min ?? mean;
      let mx = r.max ?? mean;
      let sum = mean;
      let count = 1;
      const live = keep.get(b);
      if (live !== undefined) {
        mn = Math.min(mn, this.min[live]!);
        mx = Math.max(mx, this.max[live]!);
        sum += this.sum[live]!;
        count += this.count[live]!;
        keep.delete(b);
      }
      merged.push([b, mn, mx, sum, count]);
    }
    for (const [b, i] of keep) merged.push([b, this.min[i]!, this.max[i]!, this.sum[i]!, this.count[i]!]);
    merged.sort((a, b) => a[0] - b[0]);
    this.ts = merged.map((r) => r[0]);
    this.min = merged.map((r) => r[1]);
    this.max = merged.map((r) => r[2]);
    this.sum = merged.map((r) => r[3]);
    this.count = merged.map((r) => r[4]);
    this.seamTs = seamTs;
    this.version++;
  }

  /** Folds one live reading into its bucket. Returns false when the history already holds it. */
  add(ts: number, value: Scalar | null): boolean {
    if (ts <= this.seamTs) return false;
    const v = numeric(value);
    if (v === null) return false;
    const b = this.bucketOf(ts);
    const n = this.ts.length;
    let i: number;
    if (n === 0 || b > this.ts[n - 1]!) {
      i = n;
    } else {
      // Usually the last bucket; otherwise binary search (late or replayed readings).
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.ts[mid]! < b) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    if (i < n && this.ts[i] === b) {
      if (v < this.min[i]!) this.min[i] = v;
      if (v > this.max[i]!) this.max[i] = v;
      this.sum[i]! += v;
      this.count[i]!++;
    } else {
      this.ts.splice(i, 0, b);
      this.min.splice(i, 0, v);
      this.max.splice(i, 0, v);
      this.sum.splice(i, 0, v);
      this.count.splice(i, 0, 1);
    }
    this.version++;
    return true;
  }

  /** The live channel could not recover what happened around `at`: draw a break there. */
  markGap(at: number): void {
    this.gaps.push(at);
    this.gaps.sort((a, b) => a - b);
    this.version++;
  }

  /** History now covers [from, to]: gap marks inside it are resolved (the data is back, or visibly absent). */
  resolveGaps(from: number, to: number): void {
    const before = this.gaps.length;
    this.gaps = this.gaps.filter((g) => g < from || g > to);
    if (this.gaps.length !== before) this.version++;
  }

  /** Drops buckets that start before `ts` (a rolling window). */
  trimBefore(ts: number): void {
    let k = 0;
    while (k < this.ts.length && this.ts[k]! < ts) k++;
    if (k === 0) return;
    this.ts.splice(0, k);
    this.min.splice(0, k);
    this.max.splice(0, k);
    this.sum.splice(0, k);
    this.count.splice(0, k);
    this.gaps = this.gaps.filter((g) => g >= ts);
    this.version++;
  }

  /** The usual distance between buckets (median), at least one step. */
  typicalSpacing(): number {
    const n = this.ts.length;
    if (n < 3) return this.stepMs;
    const d: number[] = [];
    const from = Math.max(1, n - 200);
    for (let i = from; i < n; i++) d.push(this.ts[i]! - this.ts[i - 1]!);
    d.sort((a, b) => a - b);
    return Math.max(this.stepMs, d[d.length >> 1]!);
  }

  /** Chart data: a null point wherever a gap mark or a long silence lies between two buckets. */
  toData(): ChartData {
    const xs: number[] = [];
    const mins: Array<number | null> = [];
    const means: Array<number | null> = [];
    const maxs: Array<number | null> = [];
    const silence = this.typicalSpacing() * this.gapFactor;
    let g = 0;
    for (let i = 0; i < this.ts.length; i++) {
      const t = this.ts[i]!;
      if (i > 0) {
        const prev = this.ts[i - 1]!;
        let breakAt: number | null = null;
        while (g < this.gaps.length && this.gaps[g]! < t) {
          if (this.gaps[g]! >= prev) breakAt = this.gaps[g]!;
          g++;
        }
        if (breakAt === null && t - prev > silence) breakAt = prev + this.stepMs;
        if (breakAt !== null) {
          xs.push(Math.min(Math.max(breakAt, prev + 1), t - 1));
          mins.push(null);
          means.push(null);
          maxs.push(null);
        }
      } else {
        while (g < this.gaps.length && this.gaps[g]! < t) g++;
      }
      xs.push(t);
      mins.push(this.min[i]!);
      means.push(this.sum[i]! / this.count[i]!);
      maxs.push(this.max[i]!);
    }
    // A gap after the last bucket (live data lost since): end the line there.
    if (g < this.gaps.length && xs.length > 0) {
      xs.push(Math.max(this.gaps[this.gaps.length - 1]!, xs[xs.length - 1]! + 1));
      mins.push(null);
      means.push(null);
      maxs.push(null);
    }
    return [xs, mins, means, maxs];
  }
}

/** CSV of a chart's range: one row per bucket, empty cells at gaps. */
export function toCsv(metric: string, unit: string | undefined, data: ChartData, from: number, to: number): string {
  const [xs, mins, means, maxs] = data;
  const u = unit ? ` (${unit})` : '';
  const cell = (v: number | null | undefined): string => (v === null || v === undefined ? '' : String(v));
  let out = `time,ts,${metric} min${u},${metric} mean${u},${metric} max${u}\r\n`;
  for (let i = 0; i < xs.length; i++) {
    const t = xs[i]!;
    if (t < from || t > to) continue;
    out += `${new Date(t).toISOString()},${t},${cell(mins[i])},${cell(means[i])},${cell(maxs[i])}\r\n`;
  }
  return out;
}
