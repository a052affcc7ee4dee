/**
 * Reading batches back for the drainer (docs/storage.md, "Draining"): from the memory tail while it holds the
 * next records, else from the segment files (after a restart, or when the store fell more than the tail behind).
 * Reading takes turns with device ingest (FairSlicer): it runs while a store write is in flight, whose request
 * bodies still have to reach their sockets, and while devices are served.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { FairSlicer } from '../core/fair-slice.js';
import type { StoredReading } from '../storage/types.js';
import {
  decodeRecords,
  RecordBatch,
  scanRecord,
  SEGMENT_HEADER_BYTES,
  type RecordView,
  type SegmentFormat,
} from './record.js';
import { READ_CHUNK_BYTES, type Batch, type Position, type Segment, type SpoolShared } from './shared.js';
import type { MemoryTail } from './tail.js';

/** Readings decoded between two looks at the clock (FairSlicer.due) while reading a batch. */
const READ_SLICE_READINGS = 500;

/**
 * The batch being read from the files. Format-2 records go in as they are (the store decodes them as it encodes
 * its writes). Format-1 records are decoded a slice at a time (one JSON.parse for many small records is much
 * cheaper than one each), and always before moving to another segment, whose format may differ.
 */
class BatchBuilder {
  readonly readings = new RecordBatch();
  bytes = 0;
  firstAcceptedAt: number | null = null;
  private pending: RecordView[] = [];
  private pendingCount = 0;
  private pendingFormat: SegmentFormat = 2;
  private nextYield = READ_SLICE_READINGS;

  constructor(
    private readonly limit: number,
    private readonly decodeJson: (records: RecordView[]) => StoredReading[],
  ) {}

  get full(): boolean {
    return this.readings.length + this.pendingCount >= this.limit;
  }

  /** Adds a record; true when a slice of readings is done (time to look at the clock). */
  add(rec: RecordView, format: SegmentFormat): boolean {
    this.firstAcceptedAt ??= rec.acceptedAt;
    if (this.pendingFormat !== format) this.flush();
    this.pendingFormat = format;
    this.pending.push(rec);
    this.pendingCount += rec.count;
    this.bytes += rec.totalBytes;
    if (this.readings.length + this.pendingCount < this.nextYield) return false;
    this.flush();
    this.nextYield = this.readings.length + READ_SLICE_READINGS;
    return true;
  }

  flush(): void {
    if (this.pending.length === 0) return;
    if (this.pendingFormat === 2) for (const rec of this.pending) this.readings.addRecord(rec);
    else this.readings.addReadings(this.decodeJson(this.pending));
    this.pending = [];
    this.pendingCount = 0;
  }
}

export class SpoolReader {
  /** Reading batches back takes turns with device ingest (see FairSlicer). */
  private readonly slicer = new FairSlicer();
  private readFd: { n: number; fd: number } | null = null;

  constructor(
    private readonly s: SpoolShared,
    private readonly tail: MemoryTail,
    private readonly batchReadings: number,
  ) {}

  /**
   * Reads whole committed records from `start`, up to about batchReadings readings. Yields to the event loop
   * when its time slice is used up.
   */
  async readBatch(start: Position): Promise<Batch> {
    const fromMemory = this.tail.batchFrom(start);
    if (fromMemory) return fromMemory;
    const batch = new BatchBuilder(this.batchReadings, (records) => this.decodeJsonRecords(records));
    const pos = { ...start };
    let reachedEnd = false;
    while (!batch.full) {
      const seg = this.segmentAt(pos);
      if (!seg) {
        reachedEnd = true;
        break;
      }
      await this.readChunk(seg, pos, batch);
    }
    batch.flush();
    this.s.drainedFromDisk += batch.readings.length;
    // Caught up with what is committed: from here on the drainer can take new records from memory.
    const last = this.s.segments[this.s.segments.length - 1];
    if (reachedEnd || (last !== undefined && pos.seg === last.n && pos.off >= last.end))
      this.tail.on = this.tail.max > 0;
    return {
      readings: batch.readings,
      start: { ...start },
      end: pos,
      bytes: batch.bytes,
      firstAcceptedAt: batch.firstAcceptedAt,
    };
  }

  /** The segment holding committed data at `pos`, moving `pos` to the next segment's start as needed; null at the end. */
  private segmentAt(pos: Position): Segment | null {
    for (;;) {
      const segments = this.s.segments;
      const segIndex = segments.findIndex((s) => s.n === pos.seg);
      const seg = segments[segIndex];
      if (!seg) {
        const next = segments.find((s) => s.n > pos.seg);
        if (!next) return null;
        pos.seg = next.n;
        pos.off = SEGMENT_HEADER_BYTES;
        continue;
      }
      if (pos.off >= seg.end) {
        const next = segments[segIndex + 1];
        // A later segment exists only once this one is complete.
        if (!next) return null;
        pos.seg = next.n;
        pos.off = SEGMENT_HEADER_BYTES;
        continue;
      }
      return seg;
    }
  }

  /** Reads the records of one chunk of `seg` from `pos` into the batch and moves `pos` past them. */
  private async readChunk(seg: Segment, pos: Position, batch: BatchBuilder): Promise<void> {
    const fd = this.readFdFor(seg);
    let len = Math.min(READ_CHUNK_BYTES, seg.end - pos.off);
    let buf = Buffer.allocUnsafe(len);
    len = readSync(fd, buf, 0, len, pos.off);
    buf = buf.subarray(0, len);
    let o = 0;
    while (o < buf.length && !batch.full) {
      let result = scanRecord(buf, o);
      if (result.kind === 'incomplete' && o === 0) {
        // One record larger than the read chunk.
        const big = Buffer.allocUnsafe(Math.min(result.needBytes, seg.end - pos.off));
        readSync(fd, big, 0, big.length, pos.off);
        buf = big;
        result = scanRecord(buf, 0);
        // Committed data ends on a record boundary: a record running past it has a damaged length.
        if (result.kind === 'incomplete')
          result = { kind: 'invalid', reason: `record length runs past the committed end of the segment (${seg.end})` };
      }
      if (result.kind === 'incomplete') break;
      if (result.kind === 'invalid') {
        // Damage inside data that was durable: nothing can be read past it in this segment.
        this.s.noteDamage(
          { segment: seg.path, at: pos.off + o, reason: result.reason },
          'spool: damaged record in committed data; skipping the rest of the segment',
        );
        batch.bytes += seg.end - (pos.off + o);
        pos.off = seg.end;
        return;
      }
      const rec = result.record;
      o += rec.totalBytes;
      if (batch.add(rec, seg.format) && this.slicer.due()) await this.slicer.yield();
    }
    pos.off += o;
  }

  /** Format-1 (JSON) records decoded; one that does not decode is skipped, as a binary one is (see the drainer). */
  private decodeJsonRecords(records: RecordView[]): StoredReading[] {
    try {
      return decodeRecords(records, 1);
    } catch {
      const out: StoredReading[] = [];
      for (const record of records) {
        try {
          for (const r of decodeRecords([record], 1)) out.push(r);
        } catch (err) {
          this.s.noteDamage(
            { offset: record.offset, readings: record.count, reason: String(err) },
            'spool: a record does not decode; its readings are skipped',
          );
        }
      }
      return out;
    }
  }

  private readFdFor(seg: Segment): number {
    if (this.readFd?.n === seg.n) return this.readFd.fd;
    if (this.readFd) closeSync(this.readFd.fd);
    this.readFd = { n: seg.n, fd: openSync(seg.path, 'r') };
    return this.readFd.fd;
  }

  /** Closes the read descriptor if it is on segment `n` (about to be deleted), or any (n undefined: closing). */
  closeFd(n?: number): void {
    if (!this.readFd || (n !== undefined && this.readFd.n !== n)) return;
    closeSync(this.readFd.fd);
    this.readFd = null;
  }
}
