/**
 * Throttling of failed authentication (docs/security.md#throttling): a token bucket of allowed failures per
 * key (user name, client address). `burst` failures may happen at once; one more is allowed every
 * `refillMs`. While a key's bucket is empty, attempts are refused with 429 before any password is checked.
 * Memory is bounded: past `maxKeys` keys, refilled buckets go first, then the least recently failed.
 */
import type { Clock } from '../core/clock.js';

export interface ThrottleRule {
  /** Failures allowed at once. */
  burst: number;
  /** One more failure allowed every this many ms. */
  refillMs: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class FailureThrottle {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly rule: ThrottleRule,
    private readonly clock: Clock,
    private readonly maxKeys = 10_000,
  ) {}

  private level(bucket: Bucket, now: number): number {
    return Math.min(this.rule.burst, bucket.tokens + (now - bucket.at) / this.rule.refillMs);
  }

  /** ms until `key` may try again; 0 when it may now. */
  retryAfterMs(key: string): number {
    const bucket = this.buckets.get(key);
    if (!bucket) return 0;
    const tokens = this.level(bucket, this.clock.now());
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) * this.rule.refillMs);
  }

  /** Records a failure of `key`; returns true when this failure used the last allowed one (throttling starts). */
  fail(key: string): boolean {
    const now = this.clock.now();
    const existing = this.buckets.get(key);
    const tokens = (existing ? this.level(existing, now) : this.rule.burst) - 1;
    this.buckets.delete(key);
    this.buckets.set(key, { tokens, at: now });
    if (this.buckets.size > this.maxKeys) this.evict(now);
    return tokens < 1 && tokens >= 0;
  }

  /** Gives back one failure recorded ahead of an attempt that then succeeded. */
  refund(key: string): void {
    const bucket = this.buckets.get(key);
    if (!bucket) return;
    const now = this.clock.now();
    bucket.tokens = Math.min(this.rule.burst, this.level(bucket, now) + 1);
    bucket.at = now;
  }

  /** Forgets `key`'s failures (a user's after a successful login). */
  reset(key: string): void {
    this.buckets.delete(key);
  }

  get size(): number {
    return this.buckets.size;
  }

  private evict(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (this.level(bucket, now) >= this.rule.burst) this.buckets.delete(key);
    }
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= this.maxKeys) break;
      this.buckets.delete(key);
    }
  }
}
