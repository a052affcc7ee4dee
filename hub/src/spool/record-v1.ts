/**
 * Format 1 of the spool's record bodies (JSON, `TDLSPL01` segments), written by earlier hubs: read and drained
 * so an upgrade loses nothing, never written by the hub (encodeRecordV1 is for tests).
 */
import { crc32 } from 'node:zlib';
import type { StoredReading, StoredValue } from '../storage/types.js';
import { CODE_OF, KIND_CODES, PAYLOAD_FIXED_BYTES, RECORD_HEADER_BYTES } from './record-format.js';

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
export function decodeRecordsJson(jsons: readonly Buffer[]): StoredReading[] {
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
  const wire: WireReading[] = readings.map((r) => [
    r.deviceId,
    r.epoch,
    r.seq,
    r.ts,
    r.values.map((v): WireValue => [v.metric, CODE_OF[v.kind], v.value]),
  ]);
  const first = readings[0];
  const uniform =
    first !== undefined && readings.every((r) => r.deviceId === first.deviceId && r.epoch === first.epoch);
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
