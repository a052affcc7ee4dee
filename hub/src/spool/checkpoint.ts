/**
 * The checkpoint (docs/storage.md, "The durability chain", step 4): after the store accepted a batch, the drain
 * position is written to checkpoint.json (temp file, fdatasync, rename), and segments wholly before it are
 * deleted, their durable seqs saved first.
 */
import { open, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CHECKPOINT_FILE, FILE_MODE, fsyncDir, SEQS_FILE } from './directory.js';
import type { SpoolReader } from './reader.js';
import type { SpoolShared } from './shared.js';
import type { SegmentWriter } from './writer.js';

/** How a drained segment is deleted. Disk errors cannot be produced on demand, so tests replace it. */
export const segmentFiles = { unlink: (path: string): Promise<void> => unlink(path) };

export class Checkpoint {
  private chain: Promise<void> = Promise.resolve();
  private queued = false;
  /** A write waiting for its turn (see schedule). */
  private timer: NodeJS.Timeout | null = null;
  /** When the last write started (monotonic ms). */
  private lastStart = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly s: SpoolShared,
    private readonly writer: SegmentWriter,
    private readonly reader: SpoolReader,
    /** While readings keep flowing, at most one checkpoint write per this many ms. */
    private readonly intervalMs: number,
  ) {}

  /** Settles once the checkpoint writes scheduled so far are done. */
  get written(): Promise<void> {
    return this.chain;
  }

  /**
   * Writes the checkpoint at the drain position in the background, one write at a time; a write queued
   * behind one in progress takes whatever the position is by then. The drainer does not wait for it: its
   * fdatasync used to leave the store idle between batches. A checkpoint that lags only means a longer
   * (idempotent) replay after a crash.
   *
   * While the spool still holds undrained readings, a write starts at most every intervalMs (each costs an
   * fdatasync and a rename: one per batch was 22 % of the hub's fdatasync time at 20 000 readings/s, issue 16);
   * the checkpoint then lags the drain by at most intervalMs plus one write. Once the spool is drained it is
   * written at once (whenDrained() waits for it; a restart replays nothing).
   */
  schedule(): void {
    const now = performance.now();
    const due = this.s.depthReadings === 0 ? now : this.lastStart + this.intervalMs;
    if (this.timer && due <= now) {
      clearTimeout(this.timer);
      this.timer = null;
      this.enqueue();
      return;
    }
    if (this.queued) return;
    this.queued = true;
    if (due <= now) {
      this.enqueue();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.enqueue();
    }, due - now);
    this.timer.unref();
  }

  /** Starts a write that is waiting for its turn now; settles once every write scheduled so far is done. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
      this.enqueue();
    }
    return this.chain;
  }

  private enqueue(): void {
    this.chain = this.chain.then(async () => {
      this.queued = false;
      this.lastStart = performance.now();
      try {
        await this.persist();
      } catch (err) {
        // The next batch writes it again; until then a restart replays from the last checkpoint written.
        this.s.countError('spool_io');
        this.s.logger?.error({ err }, 'spool: writing the checkpoint failed; a restart would replay more than needed');
      }
    });
  }

  /** Durable checkpoint at the drain position; then drop segments wholly before it. */
  private async persist(): Promise<void> {
    const s = this.s;
    const path = join(s.dir, CHECKPOINT_FILE);
    const tmp = `${path}.tmp`;
    const fh = await open(tmp, 'w', FILE_MODE);
    try {
      await fh.writeFile(JSON.stringify({ seg: s.drainPos.seg, off: s.drainPos.off }));
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const done = s.segments.filter((seg) => seg.n < s.drainPos.seg && seg !== this.writer.current);
    if (done.length === 0) return;
    // The seqs of the deleted records must outlive them: persist the high-water marks first.
    const seqsPath = join(s.dir, SEQS_FILE);
    await writeFile(`${seqsPath}.tmp`, s.seqs.toJson(), { mode: FILE_MODE });
    const sh = await open(`${seqsPath}.tmp`, 'r+');
    try {
      await sh.datasync();
    } finally {
      await sh.close();
    }
    await rename(`${seqsPath}.tmp`, seqsPath);
    // Each segment leaves the list as it is unlinked: after an unlink that failed part way, the next checkpoint
    // must not try again the ones already gone (every later one failed on them, and none was deleted again).
    for (const seg of done) {
      this.reader.closeFd(seg.n);
      await segmentFiles.unlink(seg.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      s.segments = s.segments.filter((x) => x !== seg);
    }
    await fsyncDir(s.dir);
  }
}
