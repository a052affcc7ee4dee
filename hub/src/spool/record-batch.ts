/**
 * Reading the spool's records back (docs/storage.md, "Batches stay in the record format"): cursors that visit
 * the readings of format-2 records without an object per reading, the drainer's RecordBatch, and decodeRecords
 * for when objects are needed.
 */
import type { MetricKind } from '@tendril/device-sdk/codec';
import {
  UnreadableBatchError,
  type ReadingBatch,
  type ReadingCursor,
  type ReadingVisitor,
  type ScalarValue,
  type StoredReading,
  type StoredValue,
} from '../storage/types.js';
import { KIND_CODES, type RecordView, type SegmentFormat } from './record-format.js';
import { decodeRecordsJson } from './record-v1.js';

/**
 * The readings of records (their views, in order) of a segment in `format`, appended to `out`. Throws on a
 * body that does not decode: the CRC matched, so that is a hub bug or a record from an unknown writer.
 */
export function decodeRecords(
  records: readonly RecordView[],
  format: SegmentFormat,
  out: StoredReading[] = [],
): StoredReading[] {
  if (format === 1) {
    for (const r of decodeRecordsJson(records.map((rec) => rec.body))) out.push(r);
    return out;
  }
  const builder = new ObjectBuilder(out);
  for (const rec of records) new BinaryRecordCursor(rec).read(builder, rec.count);
  return out;
}

/**
 * Visits the readings of records (their views, in order) of a segment in `format`, with no object per reading
 * in format 2. Throws as decodeRecords does.
 */
export function visitRecords(records: readonly RecordView[], format: SegmentFormat, visitor: ReadingVisitor): void {
  if (format === 1) {
    for (const r of decodeRecords(records, 1)) {
      visitor.begin(r.deviceId, r.epoch, r.seq, r.ts);
      for (const v of r.values) visitor.value(v.metric, v.kind, v.value);
      visitor.end();
    }
    return;
  }
  for (const rec of records) new BinaryRecordCursor(rec).read(visitor, rec.count);
}

/** Builds reading objects from visits. */
class ObjectBuilder implements ReadingVisitor {
  private values: StoredValue[] = [];

  constructor(private readonly out: StoredReading[]) {}

  begin(deviceId: string, epoch: number, seq: number, ts: number): void {
    this.values = [];
    this.out.push({ deviceId, epoch, seq, ts, values: this.values });
  }

  value(metric: string, kind: MetricKind, value: ScalarValue): void {
    this.values.push({ metric, kind, value });
  }

  end(): void {}
}

/** Visits nothing: moves a cursor forward. */
const SKIP: ReadingVisitor = { begin() {}, value() {}, end() {} };

interface PartCursor extends ReadingCursor {
  readonly remaining: number;
}

/** The readings of one format-2 record, in order; its name table is read once. */
class BinaryRecordCursor implements PartCursor {
  private readonly b: Buffer;
  private readonly names: string[];
  private o = 0;
  private k = 0;

  constructor(private readonly rec: RecordView) {
    const b = (this.b = rec.body);
    this.need(2);
    const nameCount = b.readUInt16LE(0);
    this.o = 2;
    this.names = new Array<string>(nameCount);
    for (let i = 0; i < nameCount; i++) {
      this.need(2);
      const len = b.readUInt16LE(this.o);
      this.o += 2;
      this.need(len);
      this.names[i] = b.toString('utf8', this.o, this.o + len);
      this.o += len;
    }
  }

  get remaining(): number {
    return this.rec.count - this.k;
  }

  /**
   * Any error while reading the record or visiting its readings (a body that does not decode, or values the
   * visitor refuses, which the spool never writes) is an UnreadableBatchError: the record is at fault.
   */
  read(visitor: ReadingVisitor, n: number): number {
    try {
      return this.readUnchecked(visitor, n);
    } catch (err) {
      if (err instanceof UnreadableBatchError) throw err;
      throw new UnreadableBatchError(
        `spool record at offset ${this.rec.offset}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  private readUnchecked(visitor: ReadingVisitor, n: number): number {
    const b = this.b;
    const summary = this.rec.summary;
    const stop = Math.min(this.rec.count, this.k + n);
    const from = this.k;
    let o = this.o;
    for (; this.k < stop; this.k++) {
      let deviceId: string;
      let epoch: number;
      if (summary) {
        deviceId = summary.deviceId;
        epoch = summary.epoch;
      } else {
        this.need(6, o);
        deviceId = this.name(b.readUInt16LE(o));
        epoch = b.readUInt32LE(o + 2);
        o += 6;
      }
      this.need(17, o);
      const valueCount = b[o + 16]!;
      visitor.begin(deviceId, epoch, b.readDoubleLE(o), b.readDoubleLE(o + 8));
      o += 17;
      for (let j = 0; j < valueCount; j++) {
        this.need(4, o);
        const metric = this.name(b.readUInt16LE(o));
        const code = b[o + 2]!;
        o += 3;
        const kind = KIND_CODES[code] ?? this.fail(`unknown value kind code ${code}`);
        let value: ScalarValue;
        if (code === 3) {
          value = b[o++] === 1;
        } else if (code === 4) {
          this.need(4, o);
          const len = b.readUInt32LE(o);
          o += 4;
          this.need(len, o);
          value = b.toString('utf8', o, o + len);
          o += len;
        } else {
          this.need(8, o);
          value = b.readDoubleLE(o);
          o += 8;
        }
        visitor.value(metric, kind, value);
      }
      visitor.end();
    }
    this.o = o;
    if (this.k === this.rec.count && o !== b.length) this.fail(`${b.length - o} bytes after the last reading`);
    return this.k - from;
  }

  private need(n: number, at = this.o): void {
    if (at + n > this.b.length) this.fail('body ends early');
  }

  private name(i: number): string {
    return this.names[i] ?? this.fail(`name index ${i} of ${this.names.length}`);
  }

  private fail(why: string): never {
    throw new UnreadableBatchError(`spool record at offset ${this.rec.offset}: ${why}`);
  }
}

/** Readings already decoded (a format-1 segment's), visited in order. */
class ObjectsCursor implements PartCursor {
  private k = 0;

  constructor(private readonly readings: readonly StoredReading[]) {}

  get remaining(): number {
    return this.readings.length - this.k;
  }

  read(visitor: ReadingVisitor, n: number): number {
    const stop = Math.min(this.readings.length, this.k + n);
    const from = this.k;
    for (; this.k < stop; this.k++) {
      const r = this.readings[this.k]!;
      visitor.begin(r.deviceId, r.epoch, r.seq, r.ts);
      for (const v of r.values) visitor.value(v.metric, v.kind, v.value);
      visitor.end();
    }
    return this.k - from;
  }
}

/**
 * A batch of the drainer: format-2 records kept as they are (decoded only as the store visits them) and, from
 * segments of earlier hubs, readings decoded from JSON. Parts in spool order.
 */
export class RecordBatch implements ReadingBatch {
  private readonly parts: Array<RecordView | readonly StoredReading[]> = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  addRecord(view: RecordView): void {
    if (view.count === 0) return;
    this.parts.push(view);
    this.count += view.count;
  }

  addReadings(readings: readonly StoredReading[]): void {
    if (readings.length === 0) return;
    this.parts.push(readings);
    this.count += readings.length;
  }

  cursor(from = 0): ReadingCursor {
    return new BatchCursor(this.parts, from);
  }

  toArray(from = 0, to = this.count): StoredReading[] {
    const out: StoredReading[] = [];
    if (to > from) this.cursor(from).read(new ObjectBuilder(out), to - from);
    return out;
  }

  /**
   * This batch without its records that do not decode or hold readings the spool never writes (after an
   * UnreadableBatchError): each record is decoded on its own and its readings checked as encodeRecord and the
   * device codec would have; `onUnreadable` hears of every record left out. The rest is decoded readings.
   */
  readable(onUnreadable: (record: RecordView, err: UnreadableBatchError) => void): RecordBatch {
    const out = new RecordBatch();
    for (const part of this.parts) {
      if (isReadings(part)) {
        out.addReadings(part);
        continue;
      }
      try {
        const readings = decodeRecords([part], 2);
        for (const r of readings) checkStoredReading(r);
        out.addReadings(readings);
      } catch (err) {
        onUnreadable(
          part,
          err instanceof UnreadableBatchError
            ? err
            : new UnreadableBatchError(`spool record at offset ${part.offset}: ${String(err)}`),
        );
      }
    }
    return out;
  }
}

/** Throws UnreadableBatchError for a reading the hub would never have spooled (see RecordBatch.readable). */
function checkStoredReading(r: StoredReading): void {
  const bad = (why: string): never => {
    throw new UnreadableBatchError(`reading ${r.deviceId}/${r.epoch}/${r.seq}: ${why}`);
  };
  if (!Number.isSafeInteger(r.seq) || r.seq < 1) bad('seq is not a whole number from 1 to 2^53');
  if (!Number.isInteger(r.epoch) || r.epoch < 0 || r.epoch > 0xffffffff) bad('epoch is not a 32-bit whole number');
  if (!Number.isFinite(r.ts)) bad('timestamp is not a finite number');
  for (const v of r.values) {
    const ok =
      v.kind === 'bool'
        ? typeof v.value === 'boolean'
        : v.kind === 'string'
          ? typeof v.value === 'string'
          : typeof v.value === 'number' && Number.isFinite(v.value);
    if (!ok) bad(`${v.metric} (${v.kind}) is ${String(v.value)}`);
  }
}

class BatchCursor implements ReadingCursor {
  private part = 0;
  private current: PartCursor | null = null;

  constructor(
    private readonly parts: ReadonlyArray<RecordView | readonly StoredReading[]>,
    from: number,
  ) {
    // Whole parts are skipped by their counts; within a part the cursor reads its way to `from`.
    let skip = from;
    while (this.part < parts.length) {
      const n = countOf(parts[this.part]!);
      if (skip < n) break;
      skip -= n;
      this.part++;
    }
    if (skip > 0) this.read(SKIP, skip);
  }

  read(visitor: ReadingVisitor, n: number): number {
    let done = 0;
    while (done < n && this.part < this.parts.length) {
      const part = this.parts[this.part]!;
      this.current ??= isReadings(part) ? new ObjectsCursor(part) : new BinaryRecordCursor(part);
      done += this.current.read(visitor, n - done);
      if (this.current.remaining === 0) {
        this.current = null;
        this.part++;
      }
    }
    return done;
  }
}

function isReadings(part: RecordView | readonly StoredReading[]): part is readonly StoredReading[] {
  return Array.isArray(part);
}

function countOf(part: RecordView | readonly StoredReading[]): number {
  return isReadings(part) ? part.length : part.count;
}
