/**
 * On-disk format of the spool (docs/storage.md, "Spool format"). Pure functions over bytes.
 *
 * Segment file `seg-<10-digit number>.log`:
 *   header   8 bytes  "TDLSPL01" (format and version)
 *   records  one per accept() call, back to back:
 *     u32 LE  payload length (bytes after this 8-byte record header)
 *     u32 LE  CRC-32 (zlib) of the payload
 *     payload:
 *       u32 LE  number of readings
 *       f64 LE  accept time, ms since the Unix epoch
 *       f64 LE  highest seq in the record            } summary, so start-up finds the durable seqs
 *       u32 LE  epoch of the readings                } without parsing the JSON; deviceId length 0
 *       u8      deviceId length, then its UTF-8 bytes } = readings of several devices/epochs (parse)
 *       JSON    [[deviceId, epoch, seq, ts, [[metric, kind, value], ...]], ...]
 *               kind: 0 f32, 1 f64, 2 int, 3 bool, 4 string
 *
 * A record whose header is short, whose length runs past the end of the file or over the limit, or whose
 * CRC does not match is a torn write (the process died mid-append) or damage: recovery cuts the file there.
 */
import { crc32 } from 'node:zlib';
import type { MetricKind } from '@tendril/device-sdk';
import type { StoredReading, StoredValue } from '../storage/types.js';

export const SEGMENT_MAGIC = Buffer.from('TDLSPL01', 'latin1');
export const SEGMENT_HEADER_BYTES = SEGMENT_MAGIC.length;
export const RECORD_HEADER_BYTES = 8;
/** count + accept time + max seq + epoch + deviceId length (the deviceId bytes follow). */
const PAYLOAD_FIXED_BYTES = 4 + 8 + 8 + 4 + 1;
/** Larger lengths are treated as damage, not as a record to read. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

const KIND_CODES: readonly MetricKind[] = ['f32', 'f64', 'int', 'bool', 'string'];
const CODE_OF: Record<MetricKind, number> = { f32: 0, f64: 1, int: 2, bool: 3, string: 4 };

type WireValue = [string, number, number | boolean | string];
type WireReading = [string, number, number, number, WireValue[]];

/** One record (header + payload) for these readings. Throws on a value JSON cannot carry (NaN, Infinity). */
export function encodeRecord(readings: readonly StoredReading[], acceptedAt: number): Buffer {
  const wire: WireReading[] = new Array(readings.length);
  const first = readings[0];
  let uniform = first !== undefined;
  let maxSeq = 0;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i]!;
    if (r.seq > maxSeq) maxSeq = r.seq;
    if (uniform && (r.deviceId !== first!.deviceId || r.epoch !== first!.epoch)) uniform = false;
    const values: WireValue[] = new Array(r.values.length);
    for (let j = 0; j < r.values.length; j++) {
      const v = r.values[j]!;
      if (typeof v.value === 'number' && !Number.isFinite(v.value)) {
        throw new TypeError(`reading ${r.deviceId}/${r.epoch}/${r.seq}: ${v.metric} is ${v.value}; the spool stores finite numbers only`);
      }
      values[j] = [v.metric, CODE_OF[v.kind], v.value];
    }
    wire[i] = [r.deviceId, r.epoch, r.seq, r.ts, values];
  }
  const json = Buffer.from(JSON.stringify(wire), 'utf8');
  const device = uniform ? Buffer.from(first!.deviceId, 'utf8') : Buffer.alloc(0);
  if (device.length > 255) throw new TypeError(`device id of ${device.length} bytes; the spool takes at most 255`);
  const payloadLength = PAYLOAD_FIXED_BYTES + device.length + json.length;
  const buf = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payloadLength);
  buf.writeUInt32LE(payloadLength, 0);
  let o = RECORD_HEADER_BYTES;
  o = buf.writeUInt32LE(readings.length, o);
  o = buf.writeDoubleLE(acceptedAt, o);
  o = buf.writeDoubleLE(uniform ? maxSeq : 0, o);
  o = buf.writeUInt32LE(uniform ? first!.epoch >>> 0 : 0, o);
  o = buf.writeUInt8(device.length, o);
  o += device.copy(buf, o);
  json.copy(buf, o);
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
  /** The JSON part; decodeReadings() turns it into readings. */
  json: Buffer;
}

export type ScanResult =
  | { kind: 'record'; record: RecordView }
  /** Not enough bytes in the buffer for the next record (normal at a read-buffer edge). */
  | { kind: 'incomplete'; needBytes: number }
  /** These bytes are not a valid record. */
  | { kind: 'invalid'; reason: string };

/** Reads the record at `offset` of `buf`. `available` is how many bytes follow `offset` in the buffer. */
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
  const deviceLength = payload.readUInt8(24);
  if (PAYLOAD_FIXED_BYTES + deviceLength > payload.length) return { kind: 'invalid', reason: 'device id runs past the record' };
  const jsonStart = PAYLOAD_FIXED_BYTES + deviceLength;
  return {
    kind: 'record',
    record: {
      offset,
      totalBytes: total,
      count: payload.readUInt32LE(0),
      acceptedAt: payload.readDoubleLE(4),
      summary: deviceLength === 0 ? null : { deviceId: payload.toString('utf8', PAYLOAD_FIXED_BYTES, jsonStart), epoch: payload.readUInt32LE(20), maxSeq: payload.readDoubleLE(12) },
      json: payload.subarray(jsonStart),
    },
  };
}

export function decodeReadings(json: Buffer): StoredReading[] {
  return fromWire(JSON.parse(json.toString('utf8')) as WireReading[]);
}

function fromWire(wire: WireReading[]): StoredReading[] {
  const out: StoredReading[] = new Array(wire.length);
  for (let i = 0; i < wire.length; i++) {
    const [deviceId, epoch, seq, ts, values] = wire[i]!;
    const decoded: StoredValue[] = new Array(values.length);
    for (let j = 0; j < values.length; j++) {
      const [metric, code, value] = values[j]!;
      const kind = KIND_CODES[code];
      if (kind === undefined) throw new Error(`spool record: unknown value kind code ${code}`);
      decoded[j] = { metric, kind, value };
    }
    out[i] = { deviceId, epoch, seq, ts, values: decoded };
  }
  return out;
}

/** The readings of several records' JSON parts, in order, with one JSON.parse. */
export function decodeRecordsJson(jsons: readonly Buffer[]): StoredReading[] {
  if (jsons.length === 1) return decodeReadings(jsons[0]!);
  // Each part is a JSON array; joined they make an array of arrays.
  const parts: Buffer[] = [Buffer.from('[')];
  jsons.forEach((j, i) => {
    if (i > 0) parts.push(COMMA);
    parts.push(j);
  });
  parts.push(Buffer.from(']'));
  const out: StoredReading[] = [];
  for (const group of JSON.parse(Buffer.concat(parts).toString('utf8')) as WireReading[][]) {
    for (const r of fromWire(group)) out.push(r);
  }
  return out;
}

const COMMA = Buffer.from(',');

export function segmentFileName(n: number): string {
  return `seg-${String(n).padStart(10, '0')}.log`;
}

export function parseSegmentFileName(name: string): number | null {
  const m = /^seg-(\d{10})\.log$/.exec(name);
  return m ? Number(m[1]) : null;
}
