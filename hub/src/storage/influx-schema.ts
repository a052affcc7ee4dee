/**
 * How a reading becomes an InfluxDB point (docs/storage.md, "InfluxDB schema"):
 *
 *   readings,device=<deviceId> <metric>=<value>,...,@seq=<seq>i,@epoch=<epoch>i <ts ms * 1e6 + sub-ms>
 *
 * - One point per reading, one field per metric: a reading is one line, and the fields of a reading share
 *   one timestamp, which is how every InfluxDB tool expects a multi-metric sample.
 * - Tag `device` only: series cardinality = number of devices. seq/epoch are fields, not tags, so a device
 *   restart (new epoch) does not mint new series.
 * - Nanosecond precision with (epoch + seq) mod 1e6 folded into the sub-millisecond digits. A point's identity
 *   is measurement + tags + timestamp, so two readings of one device in the same millisecond would otherwise
 *   merge (the later silently overwriting fields of the earlier). The digits are a pure function of
 *   (epoch, seq), so a resend or a spool replay of the same reading lands on the same point: idempotent.
 *   Queries ask for epoch=ms, which truncates the sub-ms digits away again.
 * - Every numeric kind (f32, f64, int) is written as a float field. Device integers are JavaScript numbers
 *   (|n| <= 2^53), which a float64 holds exactly, and a metric re-declared from int to float (the common
 *   change) then cannot cause a field type conflict.
 * - `@seq` and `@epoch` (integer fields; `@` cannot start a metric name, protocol §4.2) make a stored
 *   reading traceable to its (device, epoch, seq) and countable: `SELECT count("@seq")` = readings stored.
 * - A metric named `time` is stored as the field `@time`: InfluxDB silently drops a field called `time`.
 *   Queries name fields `"x"::field` and the tag `"device"::tag`, since a metric may be called `device` too.
 */
import { Point } from '@influxdata/influxdb-client';
import type { MetricKind } from '@tendril/device-sdk';
import type { StoredReading, StoredValue } from './types.js';

export const DEFAULT_MEASUREMENT = 'readings';
export const DEVICE_TAG = 'device';
export const SEQ_FIELD = '@seq';
export const EPOCH_FIELD = '@epoch';
export const TIME_FIELD = '@time';

/** The field a metric is stored in. */
export function fieldKeyOf(metric: string): string {
  return metric === 'time' ? TIME_FIELD : metric;
}

/** The metric a field holds; null for the hub's own fields (@seq, @epoch). */
export function metricOfField(field: string): string | null {
  if (field === TIME_FIELD) return 'time';
  return field.startsWith('@') ? null : field;
}

/** InfluxDB field types as its error messages and SHOW FIELD KEYS name them. */
export type InfluxFieldType = 'float' | 'integer' | 'boolean' | 'string';

export function fieldTypeOf(kind: MetricKind): InfluxFieldType {
  switch (kind) {
    case 'f32':
    case 'f64':
    case 'int':
      return 'float';
    case 'bool':
      return 'boolean';
    case 'string':
      return 'string';
  }
}

/** The point's timestamp in ns, as a decimal string (ms * 1e6 exceeds 2^53, so no number arithmetic). */
export function pointTimestampNs(reading: Pick<StoredReading, 'ts' | 'epoch' | 'seq'>): string {
  const sub = ((reading.epoch % 1_000_000) + (reading.seq % 1_000_000)) % 1_000_000;
  const ms = Math.floor(reading.ts);
  if (ms >= 1) return `${ms}${String(sub).padStart(6, '0')}`;
  return (BigInt(ms) * 1_000_000n + BigInt(sub)).toString();
}

/**
 * The line-protocol line for a reading (escaping by the client library's Point). `skip` says which values to
 * leave out (those whose field type the server would refuse); they are returned so the caller can record them.
 */
export function readingToLine(
  reading: StoredReading,
  measurement: string,
  skip?: (value: StoredValue) => boolean,
): { line: string; skipped: StoredValue[] } {
  const point = new Point(measurement).tag(DEVICE_TAG, reading.deviceId);
  const skipped: StoredValue[] = [];
  for (const v of reading.values) {
    if (skip?.(v)) {
      skipped.push(v);
      continue;
    }
    switch (fieldTypeOf(v.kind)) {
      case 'float':
        point.floatField(fieldKeyOf(v.metric), v.value);
        break;
      case 'boolean':
        point.booleanField(fieldKeyOf(v.metric), v.value);
        break;
      case 'string':
        point.stringField(fieldKeyOf(v.metric), v.value);
        break;
      case 'integer':
        point.intField(fieldKeyOf(v.metric), v.value);
        break;
    }
  }
  point.intField(SEQ_FIELD, reading.seq).intField(EPOCH_FIELD, reading.epoch).timestamp(pointTimestampNs(reading));
  const line = point.toLineProtocol();
  if (line === undefined) throw new Error(`reading ${reading.deviceId}/${reading.epoch}/${reading.seq} produced no line`);
  return { line, skipped };
}

/** InfluxQL identifier: double-quoted, with `\` and `"` escaped. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** InfluxQL string literal: single-quoted, with `\` and `'` escaped. */
export function quoteString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
