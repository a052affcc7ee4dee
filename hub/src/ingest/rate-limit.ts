/** Token bucket of one device (protocol §7.4): `rate` readings per second on average, `burst` at once. */
export class TokenBucket {
  private tokens: number;
  private updated: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.updated = now;
  }

  private refill(now: number): void {
    if (now > this.updated) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.updated) * this.rate) / 1000);
      this.updated = now;
    }
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** ms until the bucket holds `wanted` tokens (capped at the burst size); at least 1. */
  msUntil(wanted: number, now: number): number {
    this.refill(now);
    const target = Math.min(this.burst, Math.max(1, wanted));
    return Math.max(1, Math.ceil(((target - this.tokens) * 1000) / this.rate));
  }
}
