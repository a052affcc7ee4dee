/**
 * A fake clock with fake timers, for driving the scheduler (and anything else that takes `clock` and
 * `timers`) deterministically. Named a fake: it stands in for real time, which a unit test cannot wait on.
 */
import type { Timers } from '../src/scheduler.js';

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

export class FakeTime implements Timers {
  now: number;
  private timers: FakeTimer[] = [];
  private nextId = 1;
  /** How many timers were ever armed (to check that the scheduler keeps one, not one per device). */
  armed = 0;

  constructor(start = Date.UTC(2025, 0, 15, 0, 0, 0)) {
    this.now = start;
  }

  clock = (): number => this.now;

  setTimeout = (fn: () => void, ms: number): unknown => {
    const timer = { id: this.nextId++, at: this.now + Math.max(0, ms), fn };
    this.timers.push(timer);
    this.armed++;
    return timer.id;
  };

  clearTimeout = (handle: unknown): void => {
    this.timers = this.timers.filter((t) => t.id !== handle);
  };

  get pendingTimers(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing every timer that comes due, in order of due time. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.timers)
        if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      if (!next) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.now = Math.max(this.now, next.at);
      next.fn();
    }
    this.now = end;
  }
}
