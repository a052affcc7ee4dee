/**
 * Group-commit writer: gathers accept() calls from every device connection and makes them durable with
 * one store.write() per flush, so a thousand devices cost one transaction (one fsync), not a thousand.
 *
 * A flush starts when `maxBatch` readings are pending or `maxDelayMs` after the first pending one.
 * One write is in flight at a time; what arrives meanwhile waits for its own flush (its delay, or a full
 * batch). Bigger transactions are much cheaper per reading (a commit rewrites every B-tree page it
 * touched, and each device's readings sit on pages of their own), so the delay trades a few ms of ACK
 * latency for CPU. Each accept() resolves when the write holding its readings committed and rejects
 * when that write failed (the device channel then does not ack, and the device resends).
 */
import { systemTimers, type TimerHandle, type Timers } from '../core/clock.js';
import type { ReadingSink, StoredReading, TimeSeriesStore } from './types.js';

export interface GroupCommitOptions {
  /** Flush once this many readings are pending. */
  maxBatch?: number;
  /** Flush at the latest this long after the first pending reading. */
  maxDelayMs?: number;
  /** Above this many pending readings `accepting` turns false (the channel answers BACKOFF STORE_BUSY). */
  maxPending?: number;
  /** After a failed write, ping the store this often until it answers. */
  retryMs?: number;
  timers?: Timers;
  /** Called after every successful write with its duration and size (metrics). */
  onCommit?: (seconds: number, readings: number) => void;
  /** Called when a write fails. */
  onError?: (err: unknown) => void;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class GroupCommitWriter implements ReadingSink {
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;
  private readonly maxPending: number;
  private readonly retryMs: number;
  private readonly timers: Timers;
  private batches: Array<readonly StoredReading[]> = [];
  private waiters: Waiter[] = [];
  private pendingCount = 0;
  private inFlight: Promise<void> | null = null;
  private flushTimer: TimerHandle | null = null;
  /** A flush came due while a write was in flight: start it when that write ends. */
  private flushDue = false;
  private probeTimer: TimerHandle | null = null;
  private storeHealthy = true;
  private closed = false;

  constructor(
    private readonly store: TimeSeriesStore,
    private readonly options: GroupCommitOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 5000;
    this.maxDelayMs = options.maxDelayMs ?? 10;
    this.maxPending = options.maxPending ?? 100_000;
    this.retryMs = options.retryMs ?? 1000;
    this.timers = options.timers ?? systemTimers;
  }

  get accepting(): boolean {
    return !this.closed && this.storeHealthy && this.pendingCount < this.maxPending;
  }

  /** Readings waiting for the next flush (not counting the write in flight). */
  get pending(): number {
    return this.pendingCount;
  }

  accept(readings: readonly StoredReading[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the writer is closed'));
    return new Promise<void>((resolve, reject) => {
      this.batches.push(readings);
      this.waiters.push({ resolve, reject });
      this.pendingCount += readings.length;
      if (this.pendingCount >= this.maxBatch) this.flush();
      else if (this.flushTimer === null) this.flushTimer = this.timers.setTimeout(() => this.flush(), this.maxDelayMs);
    });
  }

  private flush(): void {
    if (this.flushTimer !== null) {
      this.timers.clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    if (this.inFlight) {
      this.flushDue = true;
      return;
    }
    this.flushDue = false;
    if (this.waiters.length === 0) return;
    const batches = this.batches;
    const waiters = this.waiters;
    const count = this.pendingCount;
    this.batches = [];
    this.waiters = [];
    this.pendingCount = 0;
    let readings: readonly StoredReading[];
    if (batches.length === 1) readings = batches[0]!;
    else {
      const all = new Array<StoredReading>(count);
      let i = 0;
      for (const b of batches) for (const r of b) all[i++] = r;
      readings = all;
    }
    const started = process.hrtime.bigint();
    this.inFlight = this.store.write(readings).then(
      () => {
        this.options.onCommit?.(Number(process.hrtime.bigint() - started) / 1e9, count);
        for (const w of waiters) w.resolve();
      },
      (err: unknown) => {
        this.options.onError?.(err);
        this.markUnhealthy();
        for (const w of waiters) w.reject(err);
      },
    );
    void this.inFlight.finally(() => {
      this.inFlight = null;
      if (this.flushDue || this.pendingCount >= this.maxBatch) this.flush();
    });
  }

  private markUnhealthy(): void {
    this.storeHealthy = false;
    if (this.probeTimer !== null || this.closed) return;
    const probe = () => {
      this.probeTimer = null;
      if (this.closed) return;
      this.store.ping().then(
        () => {
          this.storeHealthy = true;
        },
        () => {
          if (!this.closed) this.probeTimer = this.timers.setTimeout(probe, this.retryMs);
        },
      );
    };
    this.probeTimer = this.timers.setTimeout(probe, this.retryMs);
  }

  /** Resolves when everything accepted so far has been written (or failed). */
  async drain(): Promise<void> {
    while (this.inFlight || this.waiters.length > 0) {
      if (!this.inFlight) this.flush();
      await this.inFlight;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return this.drain();
    this.closed = true;
    if (this.probeTimer !== null) {
      this.timers.clearTimeout(this.probeTimer);
      this.probeTimer = null;
    }
    await this.drain();
  }
}
