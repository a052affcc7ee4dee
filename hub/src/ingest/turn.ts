import { systemTimers, type Timers } from '../core/clock.js';

/**
 * How long a device's ACK may wait for more readings to become durable, counted from when the oldest of them
 * was handed to the sink (docs/protocol.md §7.3.4): the sessions of a hub share one timer, armed for the
 * earliest deadline. 30 ms with the spool's 20 ms group-commit wait: at 10 000 readings/s from 100 devices an
 * ACK carries 2.5 readings instead of 1.7 with 20 ms and 10 ms, for about 8 % less hub CPU, with an ack p99 of
 * 36-38 ms (31-35 before; docs/performance.md, issue 16).
 */
export const ACK_LINGER_MS = 30;

/** How many linger tasks that have run the queue may hold before it drops them (copying what still waits). */
const COMPACT_AFTER = 1024;

/**
 * Work deferred to the end of the current turn of the event loop, for every session at once: one
 * setImmediate per turn, however many devices delivered readings in it. Frames read in one turn travel to
 * the sink together (`first` tasks), and every write that completed in the turn shares one
 * acknowledgement per device (`last` tasks, run after all `first` tasks). `linger` tasks run a bounded time
 * later (ACK coalescing, §7.3.4), in the order they were asked for.
 */
export class EndOfTurn {
  private firsts: Array<() => void> = [];
  private lasts: Array<() => void> = [];
  private scheduled = false;
  /** Linger tasks with their deadlines, oldest first (deadlines never decrease, see linger()). */
  private lingering: Array<() => void> = [];
  private deadlines: number[] = [];
  private lingerHead = 0;
  private lingerArmed = false;
  private readonly run = () => {
    this.scheduled = false;
    const firsts = this.firsts;
    this.firsts = [];
    for (const task of firsts) task();
    const lasts = this.lasts;
    this.lasts = [];
    for (const task of lasts) task();
  };
  private readonly runLingering = () => {
    // lingerArmed stays set while the tasks run: one that lingers again is armed for below, with one timer.
    // A timer fires a little late or early; run everything due within a millisecond together.
    const due = this.now() + 1;
    try {
      while (this.lingerHead < this.lingering.length && this.deadlines[this.lingerHead]! <= due) {
        const task = this.lingering[this.lingerHead]!;
        this.lingerHead++;
        task();
      }
    } finally {
      this.lingerArmed = false; // a task that throws leaves the rest to the next linger(), as before
    }
    if (this.lingerHead === this.lingering.length) {
      this.lingering = [];
      this.deadlines = [];
      this.lingerHead = 0;
      return;
    }
    // With devices sending steadily some task is always waiting, so the queue never runs empty: drop what has
    // run once it is most of the arrays, or they grow by every ACK that lingered, for as long as the hub runs.
    if (this.lingerHead >= COMPACT_AFTER && this.lingerHead * 2 >= this.lingering.length) {
      this.lingering = this.lingering.slice(this.lingerHead);
      this.deadlines = this.deadlines.slice(this.lingerHead);
      this.lingerHead = 0;
    }
    this.armLinger();
  };

  constructor(
    readonly lingerMs: number = ACK_LINGER_MS,
    private readonly timers: Timers = systemTimers,
    private readonly now: () => number = Date.now,
  ) {}

  /** Runs `task` at the end of this turn, before every `last` task. */
  first(task: () => void): void {
    this.firsts.push(task);
    this.schedule();
  }

  /** Runs `task` at the end of this turn, after every `first` task. */
  last(task: () => void): void {
    this.lasts.push(task);
    this.schedule();
  }

  /**
   * Runs `task` withinMs from now (at most lingerMs; one shared timer for every session). A deadline earlier
   * than one already asked for moves to that one, so the tasks stay in deadline order; it is still no later
   * than lingerMs from now.
   */
  linger(task: () => void, withinMs: number = this.lingerMs): void {
    const now = this.now();
    const last = this.deadlines.length > this.lingerHead ? this.deadlines[this.deadlines.length - 1]! : now;
    this.lingering.push(task);
    this.deadlines.push(Math.max(last, now + Math.min(withinMs, this.lingerMs)));
    if (!this.lingerArmed) this.armLinger();
  }

  private armLinger(): void {
    this.lingerArmed = true;
    const wait = Math.max(0, this.deadlines[this.lingerHead]! - this.now());
    const t = this.timers.setTimeout(this.runLingering, wait);
    // Never keeps the process alive: a hub that closes flushes its ACKs itself (§6.6.3).
    t.unref?.();
  }

  private schedule(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }
}
