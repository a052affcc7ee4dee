import { flushSync } from 'svelte';

/**
 * Incoming updates are buffered in plain JS and applied once per animation frame (STYLE.md, Dashboard):
 * a burst of a thousand live messages costs one reactive update, not a thousand renders.
 *
 * A hidden tab gets no animation frames; a timer then flushes instead (at most every `hiddenMs`), so
 * buffers stay small and the page is current when it comes back.
 */

export interface FrameScheduler {
  request(cb: () => void): () => void;
}

export const browserFrames: FrameScheduler = {
  request(cb) {
    let done = false;
    const run = (): void => {
      if (done) return;
      done = true;
      cancelAnimationFrame(raf);
      clearTimeout(timer);
      cb();
    };
    const raf = requestAnimationFrame(run);
    // Frames stop in background tabs; a timer keeps the buffers bounded there.
    const timer = setTimeout(run, typeof document !== 'undefined' && document.hidden ? 250 : 1000);
    return () => {
      done = true;
      cancelAnimationFrame(raf);
      clearTimeout(timer);
    };
  },
};

/** How long the last frames' work took (applying updates and rendering them), for the bench and devtools. */
export class FrameStats {
  readonly recent = new Float64Array(1024);
  count = 0;
  max = 0;
  total = 0;

  add(ms: number): void {
    this.recent[this.count % this.recent.length] = ms;
    this.count++;
    this.total += ms;
    if (ms > this.max) this.max = ms;
  }

  /** Durations of the last frames (up to 1024), oldest first. */
  last(): number[] {
    const n = Math.min(this.count, this.recent.length);
    const out: number[] = [];
    for (let i = this.count - n; i < this.count; i++) out.push(this.recent[i % this.recent.length]!);
    return out;
  }

  reset(): void {
    this.count = 0;
    this.max = 0;
    this.total = 0;
  }
}

/** Collects work and runs every queued flush function once at the next frame, in queue order. */
export class FrameBatcher {
  #pending = new Set<() => void>();
  #cancel: (() => void) | null = null;
  /** Frames that ran work (for tests and the bench). */
  frames = 0;
  readonly stats = new FrameStats();

  /** `render` applies the DOM changes the work caused in the same frame (Svelte's flushSync in the app). */
  constructor(
    private readonly scheduler: FrameScheduler = browserFrames,
    private readonly render: () => void = () => {},
  ) {}

  /** Runs `flush` at the next frame; the same function queued twice runs once. */
  schedule(flush: () => void): void {
    this.#pending.add(flush);
    if (this.#cancel === null) this.#cancel = this.scheduler.request(() => this.flushNow());
  }

  flushNow(): void {
    this.#cancel?.();
    this.#cancel = null;
    if (this.#pending.size === 0) return;
    this.frames++;
    const started = performance.now();
    const work = [...this.#pending];
    this.#pending.clear();
    for (const fn of work) {
      try {
        fn();
      } catch (err) {
        console.error('dashboard: applying live updates failed', err);
      }
    }
    try {
      this.render();
    } catch (err) {
      console.error('dashboard: rendering live updates failed', err);
    }
    this.stats.add(performance.now() - started);
  }

  get idle(): boolean {
    return this.#pending.size === 0;
  }
}

/** The app's one batcher: updates applied and rendered in the same animation frame. */
export const frames = new FrameBatcher(browserFrames, () => flushSync());
