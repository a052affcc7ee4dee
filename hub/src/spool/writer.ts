/**
 * Appending to the segment files and rotating them (docs/storage.md, "Spool", "When the disk fails"): a group's
 * records go into the current segment with one writev and one fdatasync, through the thread pool or, when the
 * caller asks (an inline commit, "Group commit"), on the calling thread; a new segment is started past
 * segmentBytes. After a failed append the group's bytes are made unreadable before anything else.
 */
import { fdatasyncSync, writevSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FILE_MODE, fsyncDir } from './directory.js';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, segmentFileName } from './record.js';
import type { Position, Segment, SpoolShared } from './shared.js';

/**
 * The two system calls of an inline commit. Disk errors cannot be produced on demand, so tests replace these
 * to inject them (test/file-faults.ts), as they wrap FileHandle's methods for a commit through the pool.
 */
export const inlineDisk = {
  writev: (fd: number, buffers: Buffer[], position: number): number => writevSync(fd, buffers, position),
  fdatasync: (fd: number): void => fdatasyncSync(fd),
};

export class SegmentWriter {
  private writeFd: FileHandle | null = null;
  private writeSeg: Segment | null = null;

  constructor(
    private readonly s: SpoolShared,
    private readonly segmentBytes: number,
  ) {}

  /** The segment being written, if any (never deleted by the checkpoint). */
  get current(): Segment | null {
    return this.writeSeg;
  }

  /**
   * Appends the group's records and makes them durable; returns where the first one starts. `inline`: the
   * writev and the fdatasync run on this thread, blocking it, instead of as two thread-pool jobs.
   */
  async append(records: Buffer[], groupBytes: number, inline = false): Promise<Position> {
    if (
      !this.writeSeg ||
      !this.writeFd ||
      (this.writeSeg.end > SEGMENT_HEADER_BYTES && this.writeSeg.end + groupBytes > this.segmentBytes)
    ) {
      await this.rotate();
    }
    const seg = this.writeSeg!;
    const fd = this.writeFd!;
    try {
      if (inline) {
        checkWritten(inlineDisk.writev(fd.fd, records, seg.end), groupBytes, seg);
        inlineDisk.fdatasync(fd.fd);
      } else {
        checkWritten((await fd.writev(records, seg.end)).bytesWritten, groupBytes, seg);
        await fd.datasync();
      }
    } catch (err) {
      await this.discardTail(fd, seg);
      await fd.close().catch(() => undefined);
      this.writeFd = null;
      this.writeSeg = null;
      throw err;
    }
    const at = { seg: seg.n, off: seg.end };
    seg.end += groupBytes;
    return at;
  }

  /**
   * Makes the bytes of a failed group unreadable as records. After a failed fdatasync the page cache may still
   * hold them whole and CRC-valid while the disk does not: a hub restarted without a reboot would read them
   * back, count their seqs as durable and tell the device so (WELCOME.ackedSeq). So the record header at the
   * last good length is zeroed first (length 0: start-up recovery cuts the file there) and then the file is cut
   * back; each step is tried even if the one before failed, and neither counts on the disk working.
   */
  private async discardTail(fd: FileHandle, seg: Segment): Promise<void> {
    const failures: Record<string, string> = {};
    await fd.write(Buffer.alloc(RECORD_HEADER_BYTES), 0, RECORD_HEADER_BYTES, seg.end).catch((err: unknown) => {
      failures.zeroHeader = String(err);
    });
    await fd.truncate(seg.end).catch((err: unknown) => {
      failures.truncate = String(err);
    });
    await fd.datasync().catch((err: unknown) => {
      failures.datasync = String(err);
    });
    if (Object.keys(failures).length > 0) {
      this.s.logger?.error(
        { segment: seg.path, at: seg.end, failures },
        'spool: could not cut the failed append back; start-up recovery will cut the file at the first invalid record',
      );
    }
  }

  private async rotate(): Promise<void> {
    if (this.writeFd) {
      await this.writeFd.close();
      this.writeFd = null;
    }
    const segments = this.s.segments;
    const last = segments[segments.length - 1];
    const n = Math.max(last ? last.n + 1 : 1, this.s.drainPos.seg);
    const seg: Segment = { n, path: join(this.s.dir, segmentFileName(n)), end: 0, format: 2 };
    const fd = await open(seg.path, 'wx', FILE_MODE);
    try {
      await fd.write(SEGMENT_MAGIC, 0, SEGMENT_HEADER_BYTES, 0);
      await fd.datasync();
      await fsyncDir(this.s.dir);
    } catch (err) {
      await fd.close().catch(() => undefined);
      await unlink(seg.path).catch(() => undefined);
      throw err;
    }
    seg.end = SEGMENT_HEADER_BYTES;
    this.s.segments.push(seg);
    this.writeSeg = seg;
    this.writeFd = fd;
  }

  async close(): Promise<void> {
    await this.writeFd?.close();
    this.writeFd = null;
  }
}

function checkWritten(bytesWritten: number, groupBytes: number, seg: Segment): void {
  if (bytesWritten !== groupBytes)
    throw new Error(`short write to ${seg.path}: ${bytesWritten} of ${groupBytes} bytes`);
}
