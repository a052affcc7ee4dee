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

/** Collects work and runs every queued flush function once at the next frame, in queue order. */
export class FrameBatcher {
  #pending = new Set<() => void>();
  #cancel: (() => void) | null = null;
  /** Frames that ran work (for tests and the bench). */
  frames = 0;

  constructor(private readonly scheduler: FrameScheduler = browserFrames) {}

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
    const work = [...this.#pending];
    this.#pending.clear();
    for (const fn of work) {
      try {
        fn();
      } catch (err) {
        console.error('dashboard: applying live updates failed', err);
      }
    }
  }

  get idle(): boolean {
    return this.#pending.size === 0;
  }
}

/** The app's one batcher. */
export const frames = new FrameBatcher();
