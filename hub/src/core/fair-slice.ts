/**
 * Time slices for background work on the hub's one thread: the spool's drain (reading batches back, building
 * request bodies for the store) shares the event loop with device ingest.
 *
 * That work yields to the event loop now and then, so request bodies already written reach their sockets and
 * devices are served. Yielding after a fixed amount of work starved it under load: while devices flood the
 * hub, one turn of the event loop reads every ready socket (tens of milliseconds of decoding, validating and
 * spooling) and then gives the drain one small slice, so the store sat idle while readings piled up in the
 * spool, and the drain ran only once the flood was over. Here a slice lasts as long as the other work took
 * between the yield and the resume (at least minMs, at most maxMs): under competition the drain gets about
 * half the thread, alone it runs in long slices, and nothing waits behind it for more than maxMs.
 */
import { performance } from 'node:perf_hooks';

export class FairSlicer {
  private sliceEnd = 0;

  constructor(
    private readonly minMs = 1,
    private readonly maxMs = 25,
    /** Milliseconds, monotonic. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True when the current slice is used up (then call yield()). Cheap, but not free: call it every few dozen units. */
  due(): boolean {
    return this.now() >= this.sliceEnd;
  }

  /** Gives the event loop a turn; the next slice lasts as long as that turn did (within minMs..maxMs). */
  async yield(): Promise<void> {
    const before = this.now();
    await new Promise<void>((resolve) => setImmediate(resolve));
    const now = this.now();
    this.sliceEnd = now + Math.min(this.maxMs, Math.max(this.minMs, now - before));
  }
}
