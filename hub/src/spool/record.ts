/**
 * On-disk format of the spool (docs/storage.md, "Spool format"). Pure functions over bytes.
 *
 * Segment file `seg-<10-digit number>.log`:
 *   header   8 bytes  "TDLSPL02" (format and version; "TDLSPL01" segments, written by earlier hubs with
 *                     JSON bodies, are still read, so an upgrade drains what an older hub left)
 *   records  one per accept() call, back to back:
 *     u32 LE  payload length (bytes after this 8-byte record header)
 *     u32 LE  CRC-32 (zlib) of the payload
 *     payload:
 *       u32 LE  number of readings
 *       f64 LE  accept time, ms since the Unix epoch
 *       f64 LE  highest seq in the record            } summary, so start-up finds the durable seqs
 *       u32 LE  epoch of the readings                } without decoding the body; deviceId length 0
 *       u8      deviceId length, then its UTF-8 bytes } = readings of several devices/epochs (decode)
 *       body (format 2, binary, little-endian):
 *         u16 name count; per name: u16 byte length + UTF-8   (metric names, then device ids if mixed)
 *         per reading:
 *           [u16 name index of the deviceId, u32 epoch]        only in a mixed record (deviceId length 0)
 *           f64 seq, f64 ts, u8 value count
 *           per value: u16 name index of the metric, u8 kind, then
 *             f32/f64/int: f64 | bool: u8 (0/1) | string: u32 byte length + UTF-8
 *         kind: 0 f32, 1 f64, 2 int, 3 bool, 4 string
 *       body (format 1): JSON [[deviceId, epoch, seq, ts, [[metric, kind, value], ...]], ...]
 *
 * The binary body replaced JSON because encoding and parsing JSON was the largest cost of the hub's ingest
 * path into InfluxDB (docs/performance.md); names are written once per record, so a reading of three numbers
 * takes 50 bytes instead of about 110.
 *
 * A record whose header is short, whose length runs past the end of the file or over the limit, or whose
 * CRC does not match is a torn write (the process died mid-append) or damage: recovery cuts the file there.
 */
import { crc32 } from 'node:zlib';
import type { MetricKind } from '@tendril/device-sdk';
import { UnreadableBatchError, type ReadingBatch, type ReadingCursor, type ReadingVisitor, type ScalarValue, type StoredReading, type StoredValue } from '../storage/types.js';

/** Written into new segments. */
export const SEGMENT_MAGIC = Buffer.from('TDLSPL02', 'latin1');
/** Segments of earlier hubs (JSON bodies): read and drained, never written. */
export const SEGMENT_MAGIC_V1 = Buffer.from('TDLSPL01', 'latin1');
export const SEGMENT_HEADER_BYTES = SEGMENT_MAGIC.length;
export const RECORD_HEADER_BYTES = 8;
/** count + accept time + max seq + epoch + deviceId length (the deviceId bytes follow). */
const PAYLOAD_FIXED_BYTES = 4 + 8 + 8 + 4 + 1;
/** Larger lengths are treated as damage, not as a record to read. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;
/** Distinct names (metrics, and device ids in a mixed record) in one record. */
export const MAX_RECORD_NAMES = 0xffff;

/** Body encoding of a segment's records: 2 binary, 1 JSON (read only). */
export type SegmentFormat = 1 | 2;

/**
 * The format a segment header announces: 1 or 2; 'unknown' for a whole header of a later format version
 * (written by a newer hub: never to be cut); null for anything else (a header torn or never written).
 */
export function segmentFormat(header: Buffer): SegmentFormat | 'unknown' | null {
  if (header.equals(SEGMENT_MAGIC)) return 2;
  if (header.equals(SEGMENT_MAGIC_V1)) return 1;
  if (header.length === SEGMENT_HEADER_BYTES && header.subarray(0, 6).equals(SEGMENT_MAGIC.subarray(0, 6)) && /^\d\d$/.test(header.toString('latin1', 6))) return 'unknown';
  return null;
}

const KIND_CODES: readonly MetricKind[] = ['f32', 'f64', 'int', 'bool', 'string'];
const CODE_OF: Record<MetricKind, number> = { f32: 0, f64: 1, int: 2, bool: 3, string: 4 };

/**
 * One record (header + payload) for these readings, body in format 2. Throws on a value the spool does not
 * store (NaN, Infinity: no store takes them), a device id over 255 bytes, or more than 65 535 names.
 */
export function encodeRecord(readings: readonly StoredReading[], acceptedAt: number): Buffer {
  const first = readings[0];
  // A device id of length 0 in the summary means "several devices", so an empty id takes the mixed layout.
  let uniform = first !== undefined && first.deviceId !== '';
  let maxSeq = 0;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i]!;
    if (r.seq > maxSeq) maxSeq = r.seq;
    if (uniform && (r.deviceId !== first!.deviceId || r.epoch !== first!.epoch)) uniform = false;
  }
  // Pass 1: the name table and the body's size.
  const names = new Map<string, number>();
  const nameBytes: Buffer[] = [];
  const nameOf = (name: string): number => {
    let index = names.get(name);
    if (index === undefined) {
      index = nameBytes.length;
      if (index >= MAX_RECORD_NAMES) throw new TypeError(`more than ${MAX_RECORD_NAMES} names in one spool record`);
      const bytes = Buffer.from(name, 'utf8');
      if (bytes.length > 0xffff) throw new TypeError(`a name of ${bytes.length} bytes; the spool takes at most 65535`);
      names.set(name, index);
      nameBytes.push(bytes);
    }
    return index;
  };
  let bodyBytes = 2;
  let strings: Buffer[] | null = null;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i]!;
    if (!uniform) {
      nameOf(r.deviceId);
      bodyBytes += 6;
    }
    bodyBytes += 17;
    if (r.values.length > 255) throw new TypeError(`reading ${r.deviceId}/${r.epoch}/${r.seq} has ${r.values.length} values; the spool takes at most 255`);
    for (let j = 0; j < r.values.length; j++) {
      const v = r.values[j]!;
      nameOf(v.metric);
      switch (v.kind) {
        case 'bool':
          bodyBytes += 4;
          break;
        case 'string': {
          const bytes = Buffer.from(String(v.value), 'utf8');
          (strings ??= []).push(bytes);
          bodyBytes += 7 + bytes.length;
          break;
        }
        default:
          if (typeof v.value !== 'number' || !Number.isFinite(v.value)) {
            throw new TypeError(`reading ${r.deviceId}/${r.epoch}/${r.seq}: ${v.metric} is ${String(v.value)}; the spool stores finite numbers only`);
          }
          bodyBytes += 11;
      }
    }
  }
  for (const b of nameBytes) bodyBytes += 2 + b.length;
  const device = uniform ? Buffer.from(first!.deviceId, 'utf8') : Buffer.alloc(0);
  if (device.length > 255) throw new TypeError(`device id of ${device.length} bytes; the spool takes at most 255`);
  const payloadLength = PAYLOAD_FIXED_BYTES + device.length + bodyBytes;
  if (payloadLength > MAX_RECORD_BYTES) throw new TypeError(`a spool record of ${payloadLength} bytes; at most ${MAX_RECORD_BYTES}`);
  const buf = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payloadLength);
  buf.writeUInt32LE(payloadLength, 0);
  let o = RECORD_HEADER_BYTES;
  o = buf.writeUInt32LE(readings.length, o);
  o = buf.writeDoubleLE(acceptedAt, o);
  o = buf.writeDoubleLE(uniform ? maxSeq : 0, o);
  o = buf.writeUInt32LE(uniform ? first!.epoch >>> 0 : 0, o);
  o = buf.writeUInt8(device.length, o);
  o += device.copy(buf, o);
  // Pass 2: the body.
  o = buf.writeUInt16LE(nameBytes.length, o);
  for (const b of nameBytes) {
    o = buf.writeUInt16LE(b.length, o);
    o += b.copy(buf, o);
  }
  let nextString = 0;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i]!;
    if (!uniform) {
      o = buf.writeUInt16LE(names.get(r.deviceId)!, o);
      o = buf.writeUInt32LE(r.epoch >>> 0, o);
    }
    o = buf.writeDoubleLE(r.seq, o);
    o = buf.writeDoubleLE(r.ts, o);
    o = buf.writeUInt8(r.values.length, o);
    for (let j = 0; j < r.values.length; j++) {
      const v = r.values[j]!;
      o = buf.writeUInt16LE(names.get(v.metric)!, o);
      o = buf.writeUInt8(CODE_OF[v.kind], o);
      switch (v.kind) {
        case 'bool':
          o = buf.writeUInt8(v.value ? 1 : 0, o);
          break;
        case 'string': {
          const bytes = strings![nextString++]!;
          o = buf.writeUInt32LE(bytes.length, o);
          o += bytes.copy(buf, o);
          break;
        }
        default:
          o = buf.writeDoubleLE(v.value as number, o);
      }
    }
  }
  buf.writeUInt32LE(crc32(buf.subarray(RECORD_HEADER_BYTES)), 4);
  return buf;
}

export interface RecordView {
  /** Offset of the record in the buffer it was read from. */
  offset: number;
  /** Header + payload. */
  totalBytes: number;
  count: number;
  acceptedAt: number;
  /** Device, epoch and highest seq when every reading of the record shares device and epoch; else null. */
  summary: { deviceId: string; epoch: number; maxSeq: number } | null;
  /** The readings, encoded as the segment's format says; decodeRecords() turns it into readings. */
  body: Buffer;
}

export type ScanResult =
  | { kind: 'record'; record: RecordView }
  /** Not enough bytes in the buffer for the next record (normal at a read-buffer edge). */
  | { kind: 'incomplete'; needBytes: number }
  /** These bytes are not a valid record. */
  | { kind: 'invalid'; reason: string };

/** Reads the record at `offset` of `buf` (same framing in both formats). */
export function scanRecord(buf: Buffer, offset: number): ScanResult {
  const available = buf.length - offset;
  if (available < RECORD_HEADER_BYTES) return { kind: 'incomplete', needBytes: RECORD_HEADER_BYTES };
  const payloadLength = buf.readUInt32LE(offset);
  if (payloadLength < PAYLOAD_FIXED_BYTES || payloadLength > MAX_RECORD_BYTES) {
    return { kind: 'invalid', reason: `record length ${payloadLength} is outside ${PAYLOAD_FIXED_BYTES}..${MAX_RECORD_BYTES}` };
  }
  const total = RECORD_HEADER_BYTES + payloadLength;
  if (available < total) return { kind: 'incomplete', needBytes: total };
  const payload = buf.subarray(offset + RECORD_HEADER_BYTES, offset + total);
  const expected = buf.readUInt32LE(offset + 4);
  const actual = crc32(payload);
  if (expected !== actual) return { kind: 'invalid', reason: `CRC mismatch (stored ${expected.toString(16)}, computed ${actual.toString(16)})` };
  const record = viewOf(payload, offset, total);
  return record ? { kind: 'record', record } : { kind: 'invalid', reason: 'device id runs past the record' };
}

/**
 * The view of the record at the start of `bytes`, which this process encoded (encodeRecord's output, kept in
 * memory by the spool): no CRC check, as the bytes never left memory.
 */
export function recordView(bytes: Buffer): RecordView {
  const total = RECORD_HEADER_BYTES + bytes.readUInt32LE(0);
  const view = viewOf(bytes.subarray(RECORD_HEADER_BYTES, total), 0, total);
  if (!view) throw new Error('not a spool record');
  return view;
}

function viewOf(payload: Buffer, offset: number, totalBytes: number): RecordView | null {
  const deviceLength = payload.readUInt8(24);
  if (PAYLOAD_FIXED_BYTES + deviceLength > payload.length) return null;
  const bodyStart = PAYLOAD_FIXED_BYTES + deviceLength;
  return {
    offset,
    totalBytes,
    count: payload.readUInt32LE(0),
    acceptedAt: payload.readDoubleLE(4),
    summary: deviceLength === 0 ? null : { deviceId: payload.toString('utf8', PAYLOAD_FIXED_BYTES, bodyStart), epoch: payload.readUInt32LE(20), maxSeq: payload.readDoubleLE(12) },
    body: payload.subarray(bodyStart),
  };
}

/**
 * The readings of records (their views, in order) of a segment in `format`, appended to `out`. Throws on a
 * body that does not decode: the CRC matched, so that is a hub bug or a record from an unknown writer.
 */
export function decodeRecords(records: readonly RecordView[], format: SegmentFormat, out: StoredReading[] = []): StoredReading[] {
  if (format === 1) {
    for (const r of decodeRecordsJson(records.map((rec) => rec.body))) out.push(r);
    return out;
  }
  const builder = new ObjectBuilder(out);
  for (const rec of records) new BinaryRecordCursor(rec).read(builder, rec.count);
  return out;
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
      throw new UnreadableBatchError(`spool record at offset ${this.rec.offset}: ${err instanceof Error ? err.message : String(err)}`);
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
        onUnreadable(part, err instanceof UnreadableBatchError ? err : new UnreadableBatchError(`spool record at offset ${part.offset}: ${String(err)}`));
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
    const ok = v.kind === 'bool' ? typeof v.value === 'boolean' : v.kind === 'string' ? typeof v.value === 'string' : typeof v.value === 'number' && Number.isFinite(v.value);
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

// ---- format 1 (JSON bodies), read only ----

type WireValue = [string, number, number | boolean | string];
type WireReading = [string, number, number, number, WireValue[]];

function fromWire(wire: WireReading[], out: StoredReading[]): void {
  for (let i = 0; i < wire.length; i++) {
    const [deviceId, epoch, seq, ts, values] = wire[i]!;
    const decoded: StoredValue[] = new Array(values.length);
    for (let j = 0; j < values.length; j++) {
      const [metric, code, value] = values[j]!;
      const kind = KIND_CODES[code];
      if (kind === undefined) throw new Error(`spool record: unknown value kind code ${code}`);
      decoded[j] = { metric, kind, value };
    }
    out.push({ deviceId, epoch, seq, ts, values: decoded });
  }
}

/** The readings of several format-1 bodies, in order, with one JSON.parse. */
function decodeRecordsJson(jsons: readonly Buffer[]): StoredReading[] {
  // Each part is a JSON array; joined they make an array of arrays.
  const parts: Buffer[] = [Buffer.from('[')];
  jsons.forEach((j, i) => {
    if (i > 0) parts.push(COMMA);
    parts.push(j);
  });
  parts.push(Buffer.from(']'));
  const out: StoredReading[] = [];
  for (const group of JSON.parse(Buffer.concat(parts).toString('utf8')) as WireReading[][]) fromWire(group, out);
  return out;
}

const COMMA = Buffer.from(',');

/**
 * A format-1 record, as earlier hubs wrote them. Kept so tests can make the segments an upgraded hub must
 * still drain; the hub itself never writes this format.
 */
export function encodeRecordV1(readings: readonly StoredReading[], acceptedAt: number): Buffer {
  const wire: WireReading[] = readings.map((r) => [r.deviceId, r.epoch, r.seq, r.ts, r.values.map((v): WireValue => [v.metric, CODE_OF[v.kind], v.value])]);
  const first = readings[0];
  const uniform = first !== undefined && readings.every((r) => r.deviceId === first.deviceId && r.epoch === first.epoch);
  const json = Buffer.from(JSON.stringify(wire), 'utf8');
  const device = uniform ? Buffer.from(first.deviceId, 'utf8') : Buffer.alloc(0);
  const payloadLength = PAYLOAD_FIXED_BYTES + device.length + json.length;
  const buf = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payloadLength);
  buf.writeUInt32LE(payloadLength, 0);
  let o = RECORD_HEADER_BYTES;
  o = buf.writeUInt32LE(readings.length, o);
  o = buf.writeDoubleLE(acceptedAt, o);
  o = buf.writeDoubleLE(uniform ? readings.reduce((m, r) => Math.max(m, r.seq), 0) : 0, o);
  o = buf.writeUInt32LE(uniform ? first.epoch >>> 0 : 0, o);
  o = buf.writeUInt8(device.length, o);
  o += device.copy(buf, o);
  json.copy(buf, o);
  buf.writeUInt32LE(crc32(buf.subarray(RECORD_HEADER_BYTES)), 4);
  return buf;
}

export function segmentFileName(n: number): string {
  return `seg-${String(n).padStart(10, '0')}.log`;
}

export function parseSegmentFileName(name: string): number | null {
  const m = /^seg-(\d{10})\.log$/.exec(name);
  return m ? Number(m[1]) : null;
}
