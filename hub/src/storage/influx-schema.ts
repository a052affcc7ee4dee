/**
 * How a reading becomes an InfluxDB point (docs/storage.md, "InfluxDB schema"):
 *
 *   readings,device=<deviceId> <metric>=<value>,...,@seq=<seq>i <ts ms * 1e6 + sub-ms>
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
 * - `@seq` (an integer field; `@` cannot start a metric name, protocol §4.2) makes stored readings countable
 *   whatever metrics they carry: `SELECT count("@seq")` = readings stored. It is the only field of the hub's own:
 *   each field costs influxd about a fifth more CPU per point of three metrics, and the epoch needs none (the
 *   point's identity already holds it, in the sub-ms digits; hubs before issue 16 also wrote `@epoch`).
 * - A metric named `time` is stored as the field `@time`: InfluxDB silently drops a field called `time`.
 *   Queries name fields `"x"::field` and the tag `"device"::tag`, since a metric may be called `device` too.
 */
import { escape as lineEscape, Point } from '@influxdata/influxdb-client';
import type { MetricKind } from '@tendril/device-sdk/codec';
import type { ScalarValue, StoredReading, StoredValue } from './types.js';

export const DEFAULT_MEASUREMENT = 'readings';
export const DEVICE_TAG = 'device';
export const SEQ_FIELD = '@seq';
export const TIME_FIELD = '@time';

/** The field a metric is stored in. */
export function fieldKeyOf(metric: string): string {
  return metric === 'time' ? TIME_FIELD : metric;
}

/** The metric a field holds; null for the hub's own fields (@seq, and @epoch in earlier hubs' points). */
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
  return timestampNs(reading.ts, reading.epoch, reading.seq);
}

function timestampNs(ts: number, epoch: number, seq: number): string {
  const sub = ((epoch % 1_000_000) + (seq % 1_000_000)) % 1_000_000;
  const ms = Math.floor(ts);
  // 1e6 + x, without its leading 1: x with zeros in front to 6 digits. ms is written in two parts, as numbers
  // below 2^31 turn into text about twice as fast as ms itself (about 1.7e12) does.
  if (ms >= 1_000_000) {
    const high = Math.floor(ms / 1_000_000);
    return high + String(1_000_000 + (ms - high * 1_000_000)).slice(1) + String(1_000_000 + sub).slice(1);
  }
  if (ms >= 1) return ms + String(1_000_000 + sub).slice(1);
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
  point.intField(SEQ_FIELD, reading.seq).timestamp(pointTimestampNs(reading));
  const line = point.toLineProtocol();
  if (line === undefined)
    throw new Error(`reading ${reading.deviceId}/${reading.epoch}/${reading.seq} produced no line`);
  return { line, skipped };
}

/**
 * Builds the same line as readingToLine (byte for byte: hub/test/influx-line-encoder.test.ts checks it against
 * Point on generated readings, names with every character the escaping rules touch included), without a Point
 * per reading. Point re-escapes the measurement, the tag and every field key, and sorts its fields, for every
 * line: about 2 µs of the hub's one thread per reading, the largest part of the drain into InfluxDB. Here the
 * escaping is still the client library's (its `escape` functions, which Point itself calls), done once per
 * device and per metric name and cached; values are formatted as Point's field methods format them.
 *
 * A line is built in steps, begin(), value() per value, finish(), so it can be built from a ReadingCursor's
 * visits (the spool's records, without an object per reading) as well as from a reading (line()).
 */
export class LineEncoder {
  /** deviceId -> `<measurement>,device=<deviceId>` escaped. One per device, as the registry holds. */
  private readonly prefixes = new Map<string, string>();
  /** field key (fieldKeyOf) -> the same escaped, with '=' after it. */
  private readonly keys = new Map<string, string>();
  private readonly measurement: string;
  // The line being built: its prefix and identity, and its fields in the order given (raw keys, values as
  // text). The arrays are reused for every line.
  private lastDevice: string | null = null;
  private prefix = '';
  private epoch = 0;
  private seq = 0;
  private ts = 0;
  private count = 0;
  private readonly rawKeys: string[] = [];
  private readonly texts: string[] = [];
  // The fields of the line before, sorted as Point sorts them: the raw keys as given, the index of each sorted
  // field among them, and the text before each sorted field's value (`key=`, `,key=`). The readings of a
  // device mostly carry the same metrics in the same order, so most lines reuse the order of the line before.
  private orderKeys: string[] = [];
  private order: number[] = [];
  private orderHeads: string[] = [];

  constructor(measurement: string) {
    this.measurement = lineEscape.measurement(measurement);
  }

  line(reading: StoredReading, skip?: (value: StoredValue) => boolean, skipped?: StoredValue[]): string {
    this.begin(reading.deviceId, reading.epoch, reading.seq, reading.ts);
    for (const v of reading.values) {
      if (skip?.(v)) {
        skipped?.push(v);
        continue;
      }
      this.value(v.metric, v.kind, v.value);
    }
    return this.finish();
  }

  begin(deviceId: string, epoch: number, seq: number, ts: number): void {
    if (deviceId !== this.lastDevice) {
      let prefix = this.prefixes.get(deviceId);
      if (prefix === undefined) {
        prefix = `${this.measurement},${lineEscape.tag(DEVICE_TAG)}=${lineEscape.tag(deviceId)}`;
        this.prefixes.set(deviceId, prefix);
      }
      this.prefix = prefix;
      this.lastDevice = deviceId;
    }
    this.epoch = epoch;
    this.seq = seq;
    this.ts = ts;
    this.count = 0;
  }

  value(metric: string, kind: MetricKind, value: ScalarValue): void {
    const raw = fieldKeyOf(metric);
    this.rawKeys[this.count] = raw;
    this.texts[this.count++] = formatField(raw, kind, value);
  }

  /** The line of the reading begun last, with the values given since. */
  finish(): string {
    const keys = this.rawKeys;
    const texts = this.texts;
    const n = this.count + 1;
    keys[n - 1] = SEQ_FIELD;
    texts[n - 1] = formatInt(SEQ_FIELD, this.seq);
    if (!this.sameKeys(n)) this.sortKeys(n);
    const order = this.order;
    const heads = this.orderHeads;
    let fields = heads[0]! + texts[order[0]!]!;
    for (let i = 1; i < order.length; i++) fields += heads[i]! + texts[order[i]!]!;
    return this.prefix + ' ' + fields + ' ' + timestampNs(this.ts, this.epoch, this.seq);
  }

  private sameKeys(n: number): boolean {
    const before = this.orderKeys;
    if (before.length !== n) return false;
    for (let i = 0; i < n; i++) if (before[i] !== this.rawKeys[i]) return false;
    return true;
  }

  /**
   * The order of this line's fields as Point writes them: sorted as Array.prototype.sort sorts strings
   * (UTF-16 code units, which `<` compares); a key given twice keeps its last value, as a Point field set
   * twice does (a reading names each metric once, so only 'time' beside a literal '@time' could).
   */
  private sortKeys(n: number): void {
    const keys = this.rawKeys.slice(0, n);
    const sorted = Array.from({ length: n }, (_, i) => i).sort((a, b) =>
      keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : a - b,
    );
    const order: number[] = [];
    for (const i of sorted) {
      if (order.length > 0 && keys[order[order.length - 1]!] === keys[i]) order[order.length - 1] = i;
      else order.push(i);
    }
    this.orderKeys = keys;
    this.order = order;
    this.orderHeads = order.map((i, k) => (k === 0 ? '' : ',') + this.keyOf(keys[i]!));
  }

  private keyOf(raw: string): string {
    let key = this.keys.get(raw);
    if (key === undefined) {
      key = lineEscape.tag(raw) + '=';
      this.keys.set(raw, key);
    }
    return key;
  }
}

/** A value as Point's floatField / booleanField / stringField write it (same checks, same text). */
function formatField(field: string, kind: MetricKind, value: ScalarValue): string {
  switch (fieldTypeOf(kind)) {
    case 'float': {
      const n = typeof value === 'number' ? value : parseFloat(String(value));
      if (!Number.isFinite(n)) throw new Error(`invalid float value for field '${field}': ${String(value)}`);
      return String(n);
    }
    case 'boolean':
      return value ? 'T' : 'F';
    case 'string':
      return lineEscape.quoted(typeof value === 'string' ? value : String(value));
    case 'integer':
      return formatInt(field, value as number);
  }
}

/** As Point's intField. */
function formatInt(field: string, value: number): string {
  if (Number.isNaN(value) || value <= -9223372036854776e3 || value >= 9223372036854776e3) {
    throw new Error(`invalid integer value for field '${field}': '${value}'!`);
  }
  return `${Math.floor(value)}i`;
}

/** One series of an InfluxQL answer (/query, JSON). */
export interface InfluxQLSeries {
  name: string;
  columns: string[];
  values?: unknown[][];
  tags?: Record<string, string>;
}

/** One statement's result in an InfluxQL answer. */
export interface InfluxQLResult {
  statement_id: number;
  series?: InfluxQLSeries[];
  error?: string;
}

/** InfluxQL identifier: double-quoted, with `\` and `"` escaped. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** InfluxQL string literal: single-quoted, with `\` and `'` escaped. */
export function quoteString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
