/**
 * On-disk format of the spool (docs/storage.md, "Spool format"). Pure functions over bytes.
 *
 * Segment file `seg-<10-digit number>.log`:
 *   header   8 bytes  "TDLSPL02" (format and version; "TDLSPL01" segments, written by earlier hubs with
 *                     JSON bodies, are still read, so an upgrade drains what an older hub left)
 *   records  one per group commit (the readings of its accept() calls; a few for a very large group), back to back:
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
import type { StoredReading } from '../storage/types.js';
import {
  CODE_OF,
  MAX_RECORD_BYTES,
  MAX_RECORD_NAMES,
  PAYLOAD_FIXED_BYTES,
  RECORD_HEADER_BYTES,
} from './record-format.js';

export {
  MAX_RECORD_BYTES,
  MAX_RECORD_NAMES,
  parseSegmentFileName,
  RECORD_HEADER_BYTES,
  recordView,
  scanRecord,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  SEGMENT_MAGIC_V1,
  segmentFileName,
  segmentFormat,
  type RecordView,
  type ScanResult,
  type SegmentFormat,
} from './record-format.js';
export { decodeRecords, RecordBatch, visitRecords } from './record-batch.js';
export { encodeRecordV1 } from './record-v1.js';

/** The name table and the body's size of a record, measured before it is written (encodeRecord's pass 1). */
interface RecordPlan {
  /** Every reading of one device and epoch (the summary names them; the body does not repeat them). */
  uniform: boolean;
  maxSeq: number;
  /** The names in table order, and their UTF-8 bytes. */
  names: NameTable;
  bodyBytes: number;
  /** The UTF-8 bytes of the string values, in order. */
  strings: Buffer[] | null;
}

/**
 * UTF-8 bytes of names seen recently (metric names and device ids recur in every record): a record of one
 * reading used to encode each of its names again. Bounded: cleared when it holds NAME_CACHE_MAX names.
 */
const NAME_CACHE_MAX = 4096;
const nameBytesCache = new Map<string, Buffer>();

function utf8Of(name: string): Buffer {
  let bytes = nameBytesCache.get(name);
  if (bytes === undefined) {
    bytes = Buffer.from(name, 'utf8');
    if (nameBytesCache.size >= NAME_CACHE_MAX) nameBytesCache.clear();
    nameBytesCache.set(name, bytes);
  }
  return bytes;
}

/** What encodeRecord and measureReadings refuse, with one message each. */
function checkDeviceIdBytes(n: number): void {
  if (n > 255) throw new TypeError(`device id of ${n} bytes; the spool takes at most 255`);
}
function checkNameBytes(n: number): void {
  if (n > 0xffff) throw new TypeError(`a name of ${n} bytes; the spool takes at most 65535`);
}
function checkValueCount(r: StoredReading): void {
  if (r.values.length > 255)
    throw new TypeError(
      `reading ${r.deviceId}/${r.epoch}/${r.seq} has ${r.values.length} values; the spool takes at most 255`,
    );
}
function checkNumber(r: StoredReading, v: StoredReading['values'][number]): void {
  if (typeof v.value !== 'number' || !Number.isFinite(v.value))
    throw new TypeError(
      `reading ${r.deviceId}/${r.epoch}/${r.seq}: ${v.metric} is ${String(v.value)}; the spool stores finite numbers only`,
    );
}

/**
 * A record's name table: index by name. A record has a handful of names, found by a linear scan (no Map per
 * record); past LINEAR_NAMES a Map takes over.
 */
const LINEAR_NAMES = 16;
class NameTable {
  /** The first `size` entries are this record's (the arrays keep their capacity from record to record). */
  private list: string[] = [];
  private bytes: Buffer[] = [];
  size = 0;
  private map: Map<string, number> | null = null;

  clear(): void {
    // Not length = 0: that would give up the arrays' storage, allocated again by the next record. Only a
    // table of a record with many names (mixed devices) is let go, not to keep its names alive.
    if (this.list.length > 256) {
      this.list = [];
      this.bytes = [];
    }
    this.size = 0;
    this.map = null;
  }

  /** The UTF-8 bytes of name `i` (< size). */
  bytesAt(i: number): Buffer {
    return this.bytes[i]!;
  }

  indexOf(name: string): number {
    if (this.map !== null) return this.map.get(name) ?? -1;
    const list = this.list;
    for (let i = 0; i < this.size; i++) if (list[i] === name) return i;
    return -1;
  }

  /** The name's index, added when new (checking the limits). */
  add(name: string): number {
    const known = this.indexOf(name);
    if (known >= 0) return known;
    const index = this.size;
    if (index >= MAX_RECORD_NAMES) throw new TypeError(`more than ${MAX_RECORD_NAMES} names in one spool record`);
    const bytes = utf8Of(name);
    checkNameBytes(bytes.length);
    this.list[index] = name;
    this.bytes[index] = bytes;
    this.size++;
    if (this.map !== null) this.map.set(name, index);
    else if (this.size > LINEAR_NAMES) {
      this.map = new Map();
      for (let i = 0; i < this.size; i++) this.map.set(this.list[i]!, i);
    }
    return index;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * One record (header + payload) for these readings, body in format 2. Throws on a value the spool does not
 * store (NaN, Infinity: no store takes them), a device id over 255 bytes, or more than 65 535 names.
 */
export function encodeRecord(readings: readonly StoredReading[], acceptedAt: number): Buffer {
  const first = readings[0];
  const plan = planRecord(readings);
  const { uniform } = plan;
  const device = uniform ? utf8Of(first!.deviceId) : EMPTY;
  checkDeviceIdBytes(device.length);
  const payloadLength = PAYLOAD_FIXED_BYTES + device.length + plan.bodyBytes;
  if (payloadLength > MAX_RECORD_BYTES)
    throw new TypeError(`a spool record of ${payloadLength} bytes; at most ${MAX_RECORD_BYTES}`);
  const buf = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payloadLength);
  buf.writeUInt32LE(payloadLength, 0);
  let o = RECORD_HEADER_BYTES;
  o = buf.writeUInt32LE(readings.length, o);
  o = buf.writeDoubleLE(acceptedAt, o);
  o = buf.writeDoubleLE(uniform ? plan.maxSeq : 0, o);
  o = buf.writeUInt32LE(uniform ? first!.epoch >>> 0 : 0, o);
  o = buf.writeUInt8(device.length, o);
  o += device.copy(buf, o);
  writeBody(buf, o, readings, plan);
  buf.writeUInt32LE(crc32(buf.subarray(RECORD_HEADER_BYTES)), 4);
  return buf;
}

const recordNames = new NameTable();

/**
 * Names one record may hold, with room to spare under MAX_RECORD_NAMES: encodeGroup starts another record
 * before a group's device ids and metric names could pass it.
 */
const GROUP_RECORD_NAMES = 60_000;
/** Bytes one record of encodeGroup holds at most (measured), well under MAX_RECORD_BYTES. */
const GROUP_RECORD_BYTES = 16 * 1024 * 1024;

/**
 * Checks that `readings` can be spooled, refusing what encodeRecord would refuse (more than 255 values, a
 * number that is not finite, a device id over 255 bytes, a name over 65 535 bytes, more names or bytes than a
 * record holds), and returns about how many bytes they take in a record of several devices (their names'
 * bytes left out). accept() calls this and leaves the encoding to the group commit, which writes a whole group
 * as one record (encodeGroup): so what one accept() brings cannot make the group's encoding fail.
 */
export function measureReadings(readings: readonly StoredReading[]): number {
  let bytes = 0;
  let names = 0; // as namesBound counts them, in the same pass
  let deviceId: string | null = null;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i]!;
    if (r.deviceId !== deviceId) {
      deviceId = r.deviceId;
      const idBytes = utf8Of(deviceId).length;
      checkDeviceIdBytes(idBytes);
      bytes += 2 + idBytes;
      names++;
    }
    checkValueCount(r);
    bytes += 23;
    names += r.values.length;
    for (let j = 0; j < r.values.length; j++) {
      const v = r.values[j]!;
      // Only a name of more than 65 535 / 3 UTF-16 units can pass 65 535 UTF-8 bytes: measured only then.
      if (v.metric.length > 0x5555) {
        const nameBytes = Buffer.byteLength(v.metric, 'utf8');
        checkNameBytes(nameBytes);
      }
      switch (v.kind) {
        case 'bool':
          bytes += 4;
          break;
        case 'string':
          bytes += 7 + Buffer.byteLength(String(v.value), 'utf8');
          break;
        default:
          checkNumber(r, v);
          bytes += 11;
      }
    }
  }
  // An accept() that could pass a record's limits on names or bytes alone (a very large batch) is encoded
  // once here, so that it fails now, and alone, if it does; encodeGroup gives such an accept a record of its own.
  if (bytes > GROUP_RECORD_BYTES || names > GROUP_RECORD_NAMES) encodeRecord(readings, 0);
  return bytes;
}

/** At most how many names `readings` add to a record: one per change of device, one per value. */
function namesBound(readings: readonly StoredReading[]): number {
  let names = 0;
  let deviceId: string | null = null;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i]!;
    if (r.deviceId !== deviceId) {
      deviceId = r.deviceId;
      names++;
    }
    names += r.values.length;
  }
  return names;
}

/**
 * The records of a group commit: the readings of every accept() in the group, in order, as one record (one of
 * a single device when they all are, else one of several devices), or as a few when the group is very large.
 * One record per accept() cost a header, a name table, a CRC and a buffer per reading when devices send one
 * reading per frame (issue 16). `parts` are the accepts' readings with their measureReadings bytes and accept
 * times; a record carries the accept time of its first part.
 */
export function encodeGroup(
  parts: readonly {
    readonly readings: readonly StoredReading[];
    readonly bytes: number;
    readonly acceptedAt: number;
  }[],
): Buffer[] {
  if (parts.length === 1) return [encodeRecord(parts[0]!.readings, parts[0]!.acceptedAt)];
  const records: Buffer[] = [];
  let chunk: StoredReading[] = [];
  let chunkAt = 0;
  let names = 0;
  let bytes = 0;
  let chunkParts: (typeof parts)[number][] = [];
  const flush = () => {
    try {
      records.push(encodeRecord(chunk, chunkAt));
    } catch (err) {
      // Names longer than the measure counts could in theory fill a record past MAX_RECORD_BYTES: then each
      // accept gets a record of its own (measureReadings made sure each one encodes).
      if (chunkParts.length === 1) throw err;
      for (const p of chunkParts) records.push(encodeRecord(p.readings, p.acceptedAt));
    }
    chunk = [];
    chunkParts = [];
    names = 0;
    bytes = 0;
  };
  for (const part of parts) {
    const partNames = namesBound(part.readings);
    if (chunk.length > 0 && (names + partNames > GROUP_RECORD_NAMES || bytes + part.bytes > GROUP_RECORD_BYTES))
      flush();
    if (chunk.length === 0) chunkAt = part.acceptedAt;
    for (const r of part.readings) chunk.push(r);
    chunkParts.push(part);
    names += partNames;
    bytes += part.bytes;
  }
  if (chunk.length > 0) flush();
  return records;
}

/** Pass 1: the name table and the body's size; checks every value. */
function planRecord(readings: readonly StoredReading[]): RecordPlan {
  const first = readings[0];
  // A device id of length 0 in the summary means "several devices", so an empty id takes the mixed layout.
  let uniform = first !== undefined && first.deviceId !== '';
  let maxSeq = 0;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i]!;
    if (r.seq > maxSeq) maxSeq = r.seq;
    if (uniform && (r.deviceId !== first!.deviceId || r.epoch !== first!.epoch)) uniform = false;
  }
  // One table for every record: encodeRecord runs to its end before the next call (no allocation per record).
  const names = recordNames;
  names.clear();
  let bodyBytes = 2;
  let strings: Buffer[] | null = null;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i]!;
    if (!uniform) {
      names.add(r.deviceId);
      bodyBytes += 6;
    }
    bodyBytes += 17;
    checkValueCount(r);
    for (let j = 0; j < r.values.length; j++) {
      const v = r.values[j]!;
      names.add(v.metric);
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
          checkNumber(r, v);
          bodyBytes += 11;
      }
    }
  }
  for (let i = 0; i < names.size; i++) bodyBytes += 2 + names.bytesAt(i).length;
  return { uniform, maxSeq, names, bodyBytes, strings };
}

/** Pass 2: the body (name table, then the readings) from offset `o` of `buf`. */
function writeBody(buf: Buffer, o: number, readings: readonly StoredReading[], plan: RecordPlan): void {
  const { names, strings, uniform } = plan;
  o = buf.writeUInt16LE(names.size, o);
  for (let i = 0; i < names.size; i++) {
    const b = names.bytesAt(i);
    o = buf.writeUInt16LE(b.length, o);
    o += b.copy(buf, o);
  }
  let nextString = 0;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i]!;
    if (!uniform) {
      o = buf.writeUInt16LE(names.indexOf(r.deviceId), o);
      o = buf.writeUInt32LE(r.epoch >>> 0, o);
    }
    o = buf.writeDoubleLE(r.seq, o);
    o = buf.writeDoubleLE(r.ts, o);
    o = buf.writeUInt8(r.values.length, o);
    for (let j = 0; j < r.values.length; j++) {
      const v = r.values[j]!;
      o = buf.writeUInt16LE(names.indexOf(v.metric), o);
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
}
