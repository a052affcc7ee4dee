/**
 * Send->ack latency histogram with constant memory: log-spaced buckets 5 % wide, so p50/p90/p99 are exact
 * to within 5 % however many readings a load run records. The maximum is exact.
 */
const GROWTH = 1.05;
const LOG_GROWTH = Math.log(GROWTH);
/** Values below this (ms) share bucket 0. */
const FLOOR_MS = 0.1;

export interface LatencySummary {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

export class LatencyHistogram {
  private readonly buckets: number[] = [];
  count = 0;
  max = 0;

  record(ms: number): void {
    if (!(ms >= 0)) return;
    const index = ms < FLOOR_MS ? 0 : 1 + Math.floor(Math.log(ms / FLOOR_MS) / LOG_GROWTH);
    while (this.buckets.length <= index) this.buckets.push(0);
    this.buckets[index]!++;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  /** The value at quantile q (0..1): the upper edge of its bucket, never above the maximum seen. */
  quantile(q: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i]!;
      if (seen >= rank) {
        const upper = i === 0 ? FLOOR_MS : FLOOR_MS * GROWTH ** i;
        return Math.min(upper, this.max);
      }
    }
    return this.max;
  }

  summary(): LatencySummary {
    const r = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
    return {
      count: this.count,
      p50: r(this.quantile(0.5)),
      p90: r(this.quantile(0.9)),
      p99: r(this.quantile(0.99)),
      max: r(this.count ? this.max : null),
    };
  }
}
