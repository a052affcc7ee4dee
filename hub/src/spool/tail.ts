/**
 * The memory tail (docs/storage.md, "Memory tail"): committed records also stay in memory, as the bytes that
 * were written (one buffer per group commit), so that while the drainer keeps up it takes them from there
 * instead of reading back and decoding what was just written. Past `max` readings (the store is slow or down)
 * the tail adds nothing more (what it holds stays, for the drainer to take first) until the drainer has read
 * the files up to the end of what is committed.
 */
import { RecordBatch, recordView, SEGMENT_HEADER_BYTES } from './record.js';
import { before, type Batch, type Pending, type Position, type SpoolShared } from './shared.js';

/**
 * The records of one committed group (one record, or a few for a very large group), kept in memory until the
 * drainer takes them: the bytes as written (about 50-60 bytes per reading of three numbers; off the JS heap, one
 * object per group).
 */
interface TailRecord {
  seg: number;
  off: number;
  bytes: Buffer;
  count: number;
  acceptedAt: number;
}

export class MemoryTail {
  /**
   * Committed records not yet taken by the drainer, in file order (with gaps), from `head` on. Filled only
   * while `on`: it turns off when the tail would pass `max`, and on again once the drainer has read from disk
   * up to the end of what is committed.
   */
  private records: TailRecord[] = [];
  private head = 0;
  private readings = 0;
  on = false;

  constructor(
    private readonly s: SpoolShared,
    /** Readings kept at most (HUB_SPOOL_MEMORY_READINGS); 0 turns the tail off. */
    readonly max: number,
    private readonly batchReadings: number,
  ) {}

  /**
   * Keeps a committed group's records (as written at `at`) for the drainer, or turns the tail off when they would
   * make it too big.
   */
  keep(records: Buffer[], group: Pending[], at: Position): void {
    if (!this.on) return;
    let readings = 0;
    for (const p of group) readings += p.readings.length;
    if (this.readings + readings > this.max) {
      // Full: keep what is there (the drainer takes it first) and add nothing until it has caught up.
      this.on = false;
      return;
    }
    const bytes = records.length === 1 ? records[0]! : Buffer.concat(records);
    this.records.push({ seg: at.seg, off: at.off, bytes, count: readings, acceptedAt: group[0]!.acceptedAt });
    this.readings += readings;
  }

  /**
   * The batch starting at `start` from the tail, or null when the tail does not start there (the drainer then
   * reads the disk). Records before `start` are dropped: the drainer has them already.
   */
  batchFrom(start: Position): Batch | null {
    const tail = this.records;
    while (this.head < tail.length && before(tail[this.head]!, start)) this.readings -= tail[this.head++]!.count;
    if (this.head >= tail.length) {
      this.records = [];
      this.head = 0;
      return null;
    }
    const first = tail[this.head]!;
    if (!this.follows(first, start)) return null;
    const readings = new RecordBatch();
    let bytes = 0;
    let last = first;
    while (this.head < tail.length && readings.length < this.batchReadings) {
      const next = tail[this.head]!;
      // Records that were not kept (the tail was full) lie between: the drainer reads those from disk.
      if (next !== first && !this.follows(next, { seg: last.seg, off: last.off + last.bytes.length })) break;
      // The group's records, as many as the batch takes; the rest of the group stays for the next batch.
      let o = 0;
      let taken = 0;
      while (o < next.bytes.length && readings.length < this.batchReadings) {
        const view = recordView(next.bytes.subarray(o));
        readings.addRecord(view);
        taken += view.count;
        o += view.totalBytes;
      }
      bytes += o;
      if (o < next.bytes.length) {
        const rest = next.bytes.subarray(o);
        last = {
          seg: next.seg,
          off: next.off,
          bytes: next.bytes.subarray(0, o),
          count: taken,
          acceptedAt: next.acceptedAt,
        };
        tail[this.head] = {
          seg: next.seg,
          off: next.off + o,
          bytes: rest,
          count: next.count - taken,
          acceptedAt: recordView(rest).acceptedAt,
        };
        break;
      }
      last = next;
      this.head++;
    }
    this.readings -= readings.length;
    if (this.head > 1024 && this.head * 2 > tail.length) {
      this.records = tail.slice(this.head);
      this.head = 0;
    }
    return {
      readings,
      start: { ...start },
      end: { seg: last.seg, off: last.off + last.bytes.length },
      bytes,
      firstAcceptedAt: first.acceptedAt,
    };
  }

  /** True if the record at `rec` is the next one after position `pos` (same place, or the next segment's first). */
  private follows(rec: Position, pos: Position): boolean {
    if (rec.seg === pos.seg) return rec.off === pos.off;
    if (rec.off !== SEGMENT_HEADER_BYTES) return false;
    const segments = this.s.segments;
    const i = segments.findIndex((s) => s.n === pos.seg);
    // pos at the end of a complete segment, rec in the segment after it; or pos in a segment already deleted.
    if (i === -1) return pos.seg < rec.seg && !segments.some((s) => s.n > pos.seg && s.n < rec.seg);
    return pos.off >= segments[i]!.end && segments[i + 1]?.n === rec.seg;
  }
}
