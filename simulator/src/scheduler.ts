/**
 * One shared scheduler for the whole fleet: a hashed timer wheel ticked by a single timer. A device never
 * owns a setInterval; it asks to be called at its next due time and is put in that tick's slot. With 10,000
 * devices the event loop sees one timer, and each tick touches only the devices that are due.
 *
 * Time is injected (clock + timers) so that tests drive the wheel deterministically.
 */

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface SchedulerOptions {
  /** Resolution of the wheel: tasks run up to this much early or late. Default 20 ms. */
  tickMs?: number;
  clock?: () => number;
  timers?: Timers;
  /** A task threw. The scheduler goes on with the other tasks. */
  onError?: (error: unknown) => void;
}

/** A scheduled call; pass it to cancel(). */
export interface ScheduledTask {
  readonly due: number;
  cancelled: boolean;
  readonly run: () => void;
}

export class Scheduler {
  readonly tickMs: number;
  readonly clock: () => number;
  private readonly timers: Timers;
  private readonly onError: (error: unknown) => void;
  private readonly slots = new Map<number, ScheduledTask[]>();
  private readonly tickHooks = new Set<() => void>();
  /** Highest slot already run; tasks due in it or before go to the next one. */
  private doneSlot: number;
  private handle: unknown = null;
  private running = false;
  private pending = 0;

  constructor(options: SchedulerOptions = {}) {
    this.tickMs = options.tickMs ?? 20;
    this.clock = options.clock ?? Date.now;
    this.timers = options.timers ?? realTimers;
    this.onError =
      options.onError ??
      ((error) =>
        queueMicrotask(() => {
          throw error;
        }));
    this.doneSlot = Math.floor(this.clock() / this.tickMs) - 1;
  }

  /** Tasks waiting to run (cancelled ones included until their slot comes up). */
  get size(): number {
    return this.pending;
  }

  /** Calls `run` once, at the first tick at or after `dueMs`. */
  at(dueMs: number, run: () => void): ScheduledTask {
    const task: ScheduledTask = { due: dueMs, cancelled: false, run };
    const slot = Math.max(Math.floor(dueMs / this.tickMs), this.doneSlot + 1);
    let list = this.slots.get(slot);
    if (!list) this.slots.set(slot, (list = []));
    list.push(task);
    this.pending++;
    return task;
  }

  /** Calls `run` once, `delayMs` from now. */
  after(delayMs: number, run: () => void): ScheduledTask {
    return this.at(this.clock() + delayMs, run);
  }

  cancel(task: ScheduledTask | null | undefined): void {
    if (task) task.cancelled = true;
  }

  /** Calls `hook` on every tick (e.g. connection pacing: start the next few devices). Returns a remover. */
  onTick(hook: () => void): () => void {
    this.tickHooks.add(hook);
    return () => this.tickHooks.delete(hook);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm();
  }

  stop(): void {
    this.running = false;
    if (this.handle !== null) this.timers.clearTimeout(this.handle);
    this.handle = null;
  }

  /** Runs the tick hooks and every task whose slot has come, in slot order. Public so tests can drive it. */
  runDue(): void {
    const nowSlot = Math.floor(this.clock() / this.tickMs);
    for (const hook of [...this.tickHooks]) this.guard(hook);
    while (this.doneSlot < nowSlot) {
      const slot = ++this.doneSlot;
      const list = this.slots.get(slot);
      if (!list) {
        // Jump over a long empty stretch (process suspended, clock moved) instead of walking it.
        if (this.pending === 0) this.doneSlot = nowSlot;
        continue;
      }
      this.slots.delete(slot);
      this.pending -= list.length;
      for (const task of list) {
        if (!task.cancelled) this.guard(task.run);
      }
    }
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.onError(error);
    }
  }

  private arm(): void {
    this.handle = this.timers.setTimeout(() => {
      this.handle = null;
      if (!this.running) return;
      this.runDue();
      if (this.running) this.arm();
    }, this.tickMs);
  }
}
