/**
 * Framing of the spool's records and segments (docs/storage.md, "Format"), shared by the encoder (record.ts),
 * the decoders (record-batch.ts, record-v1.ts), start-up recovery and the drainer. Pure functions over bytes.
 */
import { crc32 } from 'node:zlib';
import type { MetricKind } from '@tendril/device-sdk/codec';

/** Written into new segments. */
export const SEGMENT_MAGIC = Buffer.from('TDLSPL02', 'latin1');
/** Segments of earlier hubs (JSON bodies): read and drained, never written. */
export const SEGMENT_MAGIC_V1 = Buffer.from('TDLSPL01', 'latin1');
export const SEGMENT_HEADER_BYTES = SEGMENT_MAGIC.length;
export const RECORD_HEADER_BYTES = 8;
/** count + accept time + max seq + epoch + deviceId length (the deviceId bytes follow). */
export const PAYLOAD_FIXED_BYTES = 4 + 8 + 8 + 4 + 1;
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
  if (
    header.length === SEGMENT_HEADER_BYTES &&
    header.subarray(0, 6).equals(SEGMENT_MAGIC.subarray(0, 6)) &&
    /^\d\d$/.test(header.toString('latin1', 6))
  )
    return 'unknown';
  return null;
}

export const KIND_CODES: readonly MetricKind[] = ['f32', 'f64', 'int', 'bool', 'string'];
export const CODE_OF: Record<MetricKind, number> = { f32: 0, f64: 1, int: 2, bool: 3, string: 4 };

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
    return {
      kind: 'invalid',
      reason: `record length ${payloadLength} is outside ${PAYLOAD_FIXED_BYTES}..${MAX_RECORD_BYTES}`,
    };
  }
  const total = RECORD_HEADER_BYTES + payloadLength;
  if (available < total) return { kind: 'incomplete', needBytes: total };
  const payload = buf.subarray(offset + RECORD_HEADER_BYTES, offset + total);
  const expected = buf.readUInt32LE(offset + 4);
  const actual = crc32(payload);
  if (expected !== actual)
    return {
      kind: 'invalid',
      reason: `CRC mismatch (stored ${expected.toString(16)}, computed ${actual.toString(16)})`,
    };
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
    summary:
      deviceLength === 0
        ? null
        : {
            deviceId: payload.toString('utf8', PAYLOAD_FIXED_BYTES, bodyStart),
            epoch: payload.readUInt32LE(20),
            maxSeq: payload.readDoubleLE(12),
          },
    body: payload.subarray(bodyStart),
  };
}

export function segmentFileName(n: number): string {
  return `seg-${String(n).padStart(10, '0')}.log`;
}

export function parseSegmentFileName(name: string): number | null {
  const m = /^seg-(\d{10})\.log$/.exec(name);
  return m ? Number(m[1]) : null;
}
