/**
 * JSON payloads of the bridge's topics (docs/mqtt.md §3): birth declarations, readings (one or a batch)
 * and command results, parsed into what the ingest session takes. Pure functions over bytes: every
 * refusal is a BridgeRefusal with the hub's error code, never an exception.
 */
import {
  COMMAND_STATUSES,
  DEFAULT_LIMITS,
  METRIC_KINDS,
  type CommandStatus,
  type MetricDeclaration,
  type MetricKind,
  type Value,
} from '@tendril/device-sdk/codec';

/** Why the bridge refused a whole message before ingest: a code of the hub's registries (docs/mqtt.md §5). */
export type RefusalCode =
  | 'INVALID_JSON'
  | 'INVALID_FIELD'
  | 'FRAME_TOO_LARGE'
  | 'BATCH_TOO_LARGE'
  | 'EMPTY_READING'
  | 'TOO_MANY_METRICS'
  | 'STRING_TOO_LONG'
  | 'TYPE_MISMATCH'
  | 'BIRTH_REQUIRED'
  | 'UNKNOWN_DEVICE'
  | 'DEVICE_DISABLED'
  | 'UNKNOWN_COMMAND_ID';

export interface BridgeRefusal {
  code: RefusalCode;
  message: string;
}

export function refusal(code: RefusalCode, message: string): BridgeRefusal {
  return { code, message };
}

export function isRefusal(x: unknown): x is BridgeRefusal {
  return typeof x === 'object' && x !== null && 'code' in x && 'message' in x && !Array.isArray(x);
}

/** One reading as a JSON payload carries it, before the names become aliases. */
export interface JsonReading {
  /** The device's sequence number; null = the bridge numbers it. */
  seq: number | null;
  /** ms since the Unix epoch; null = hub arrival time. */
  ts: number | null;
  /** [metric name, JSON value] in payload order. */
  values: Array<[string, unknown]>;
}

/** What a birth message declares (the AttachInfo of an MQTT device). */
export interface Birth {
  /** The device numbers its readings in this epoch (u32); null = the bridge numbers them. */
  epoch: number | null;
  metrics: MetricDeclaration[];
  firmware: string | null;
  sdk: string | null;
  dropped: number;
}

const METRIC_NAME = /^[A-Za-z][A-Za-z0-9_./-]*$/;
const MAX_U32 = 0xffff_ffff;
const textDecoder = new TextDecoder('utf-8', { fatal: true });

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Parses a JSON payload of at most maxBytes. */
export function parseJson(payload: Uint8Array, maxBytes: number): unknown {
  if (payload.length > maxBytes) {
    return refusal('FRAME_TOO_LARGE', `the payload has ${payload.length} bytes; the bridge takes at most ${maxBytes}`);
  }
  let text: string;
  try {
    text = textDecoder.decode(payload);
  } catch {
    return refusal('INVALID_JSON', 'the payload is not valid UTF-8; send JSON text');
  }
  try {
    return { json: JSON.parse(text) as unknown };
  } catch (err) {
    return refusal('INVALID_JSON', `the payload is not JSON (${(err as Error).message}); send a JSON object or array`);
  }
}

function unwrap(parsed: unknown): { json: unknown } | BridgeRefusal {
  return parsed as { json: unknown } | BridgeRefusal;
}

/** Timestamp: ms since the epoch as a number, or an ISO 8601 text with a zone (Z or an offset). */
export function parseTimestamp(raw: unknown, unit: 'ms' | 's' = 'ms'): number | BridgeRefusal {
  if (typeof raw === 'number') {
    const ms = unit === 's' ? raw * 1000 : raw;
    if (!Number.isFinite(ms) || ms < 0 || ms > 8.64e15)
      return refusal('INVALID_FIELD', `ts ${raw} is not a time in ${unit} since 1970`);
    return Math.round(ms);
  }
  if (typeof raw === 'string') {
    // Without a zone Date.parse takes local time: ambiguous, so refused.
    if (!/(?:Z|[+-]\d\d:?\d\d)$/i.test(raw))
      return refusal('INVALID_FIELD', `ts "${raw}" has no time zone; end it with Z or an offset like +01:00`);
    const ms = Date.parse(raw);
    if (Number.isNaN(ms)) return refusal('INVALID_FIELD', `ts "${raw}" is not an ISO 8601 time`);
    return ms;
  }
  return refusal('INVALID_FIELD', 'ts must be ms since 1970 (a number) or an ISO 8601 text');
}

function parseSeq(raw: unknown): number | null | BridgeRefusal {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 1)
    return refusal('INVALID_FIELD', `seq must be an integer >= 1, got ${JSON.stringify(raw)}`);
  return raw;
}

export interface DataLimits {
  maxPayloadBytes: number;
  maxBatch: number;
  maxValues: number;
}

export const DEFAULT_DATA_LIMITS: Readonly<DataLimits> = Object.freeze({
  maxPayloadBytes: 65_536,
  maxBatch: DEFAULT_LIMITS.maxBatch,
  maxValues: DEFAULT_LIMITS.maxMetrics,
});

/**
 * One reading object: `{"seq":1,"ts":...,"values":{"temperature":21.5}}`, or the short form
 * `{"seq":1,"temperature":21.5}` (every key but seq and ts is a metric) when `values` is not an object.
 */
function readingFrom(obj: unknown, limits: DataLimits): JsonReading | BridgeRefusal {
  if (!isObject(obj))
    return refusal('INVALID_FIELD', 'a reading must be a JSON object: {"ts": ..., "values": {"metric": value}}');
  const seq = parseSeq(obj.seq);
  if (isRefusal(seq)) return seq;
  let ts: number | null = null;
  if (obj.ts !== undefined && obj.ts !== null) {
    const parsed = parseTimestamp(obj.ts);
    if (isRefusal(parsed)) return parsed;
    ts = parsed;
  }
  const values: Array<[string, unknown]> = [];
  if (isObject(obj.values)) {
    for (const key in obj.values) values.push([key, obj.values[key]]);
  } else {
    for (const key in obj) if (key !== 'seq' && key !== 'ts') values.push([key, obj[key]]);
  }
  if (values.length === 0) return refusal('EMPTY_READING', 'the reading carries no values');
  if (values.length > limits.maxValues)
    return refusal('TOO_MANY_METRICS', `the reading carries ${values.length} values; at most ${limits.maxValues}`);
  return { seq, ts, values };
}

/** A data payload: one reading object or an array of them (a batch, oldest first). */
export function parseData(
  payload: Uint8Array,
  limits: DataLimits = DEFAULT_DATA_LIMITS,
): JsonReading[] | BridgeRefusal {
  const parsed = unwrap(parseJson(payload, limits.maxPayloadBytes));
  if (isRefusal(parsed)) return parsed;
  const { json } = parsed;
  const items = Array.isArray(json) ? json : [json];
  if (items.length === 0 || items.length > limits.maxBatch) {
    return refusal('BATCH_TOO_LARGE', `a batch holds 1 to ${limits.maxBatch} readings, this one ${items.length}`);
  }
  const out: JsonReading[] = [];
  for (const item of items) {
    const r = readingFrom(item, limits);
    if (isRefusal(r)) return r;
    out.push(r);
  }
  return out;
}

/** Checks metric declarations as HELLO's (protocol §4.2); aliases are the array positions unless given. */
export function parseDeclarations(
  raw: unknown,
  maxMetrics: number = DEFAULT_LIMITS.maxMetrics,
): MetricDeclaration[] | BridgeRefusal {
  if (!Array.isArray(raw))
    return refusal('INVALID_FIELD', 'metrics must be an array of {name, kind, unit?, min?, max?}');
  if (raw.length > maxMetrics)
    return refusal('TOO_MANY_METRICS', `${raw.length} metrics declared; at most ${maxMetrics}`);
  const names = new Set<string>();
  const out: MetricDeclaration[] = [];
  for (let i = 0; i < raw.length; i++) {
    const m = raw[i] as unknown;
    if (!isObject(m)) return refusal('INVALID_FIELD', `metrics[${i}] must be an object`);
    const { name, kind, unit, min, max } = m;
    if (typeof name !== 'string' || !METRIC_NAME.test(name) || utf8Length(name) > DEFAULT_LIMITS.maxMetricNameBytes) {
      return refusal('INVALID_FIELD', `metrics[${i}].name must match ^[A-Za-z][A-Za-z0-9_./-]*$ (at most 64 bytes)`);
    }
    if (names.has(name)) return refusal('INVALID_FIELD', `metric ${name} is declared twice`);
    names.add(name);
    if (typeof kind !== 'string' || !METRIC_KINDS.includes(kind as MetricKind)) {
      return refusal('INVALID_FIELD', `metrics[${i}].kind must be one of ${METRIC_KINDS.join(', ')}`);
    }
    const decl: MetricDeclaration = { alias: i, name, kind: kind as MetricKind, unit: '' };
    if (unit !== undefined) {
      if (typeof unit !== 'string' || utf8Length(unit) > DEFAULT_LIMITS.maxUnitBytes)
        return refusal('INVALID_FIELD', `metrics[${i}].unit must be text of at most 16 bytes`);
      decl.unit = unit;
    }
    const numeric = kind === 'f32' || kind === 'f64' || kind === 'int';
    for (const [key, bound] of [
      ['min', min],
      ['max', max],
    ] as const) {
      if (bound === undefined || bound === null) continue;
      if (!numeric) return refusal('INVALID_FIELD', `metrics[${i}].${key}: only numeric metrics have a range`);
      if (typeof bound !== 'number' || !Number.isFinite(bound))
        return refusal('INVALID_FIELD', `metrics[${i}].${key} must be a finite number`);
      decl[key] = bound;
    }
    if (decl.min !== undefined && decl.max !== undefined && decl.min > decl.max)
      return refusal('INVALID_FIELD', `metrics[${i}]: min > max`);
    out.push(decl);
  }
  return out;
}

function optionalText(raw: unknown, field: string, maxBytes: number): string | null | BridgeRefusal {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'string' || utf8Length(raw) > maxBytes)
    return refusal('INVALID_FIELD', `${field} must be text of at most ${maxBytes} bytes`);
  return raw;
}

/** `tendril/v1/<device>/birth`: {"epoch"?, "firmware"?, "sdk"?, "dropped"?, "metrics": [...]}. */
export function parseBirth(
  payload: Uint8Array,
  maxBytes: number = DEFAULT_DATA_LIMITS.maxPayloadBytes,
): Birth | BridgeRefusal {
  const parsed = unwrap(parseJson(payload, maxBytes));
  if (isRefusal(parsed)) return parsed;
  const { json } = parsed;
  if (!isObject(json))
    return refusal('INVALID_FIELD', 'a birth message is a JSON object: {"metrics": [{"name": ..., "kind": ...}]}');
  let epoch: number | null = null;
  if (json.epoch !== undefined && json.epoch !== null) {
    if (typeof json.epoch !== 'number' || !Number.isInteger(json.epoch) || json.epoch < 0 || json.epoch > MAX_U32) {
      return refusal('INVALID_FIELD', 'epoch must be an integer 0..4294967295');
    }
    epoch = json.epoch;
  }
  const metrics = parseDeclarations(json.metrics);
  if (isRefusal(metrics)) return metrics;
  const firmware = optionalText(json.firmware, 'firmware', DEFAULT_LIMITS.maxVersionBytes);
  if (isRefusal(firmware)) return firmware;
  const sdk = optionalText(json.sdk, 'sdk', DEFAULT_LIMITS.maxVersionBytes);
  if (isRefusal(sdk)) return sdk;
  let dropped = 0;
  if (json.dropped !== undefined) {
    if (typeof json.dropped !== 'number' || !Number.isSafeInteger(json.dropped) || json.dropped < 0)
      return refusal('INVALID_FIELD', 'dropped must be an integer >= 0');
    dropped = json.dropped;
  }
  return { epoch, metrics, firmware, sdk, dropped };
}

/** What `.../state` says: online, or offline with a reason (plain `offline`, as a last will sends it: MQTT_WILL). */
export type StateMessage = { state: 'online' } | { state: 'offline'; reason: string } | BridgeRefusal;

const REASON = /^[A-Z][A-Z0-9_]{0,31}$/;

export function parseState(payload: Uint8Array): StateMessage {
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8').trim();
  if (text === 'online') return { state: 'online' };
  if (text === 'offline') return { state: 'offline', reason: 'MQTT_WILL' };
  if (text === '')
    return refusal('INVALID_FIELD', 'state is empty (an empty retained message only clears the retained state)');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return refusal(
      'INVALID_FIELD',
      'state must be online, offline, or {"state": "online"|"offline", "reason"?: "CODE"}',
    );
  }
  if (isObject(json) && json.state === 'online') return { state: 'online' };
  if (isObject(json) && json.state === 'offline') {
    const reason = json.reason === undefined ? 'CLOSED' : json.reason;
    if (typeof reason !== 'string' || !REASON.test(reason))
      return refusal('INVALID_FIELD', 'reason must be an upper-case code such as CLOSED');
    return { state: 'offline', reason };
  }
  return refusal('INVALID_FIELD', 'state must be online, offline, or {"state": "online"|"offline", "reason"?: "CODE"}');
}

export interface CommandResultMessage {
  commandId: number;
  status: CommandStatus;
  detail: string;
}

/** `.../cmd/result`: {"id": 7, "status": "succeeded", "detail"?: "..."} (protocol §8.2). */
export function parseCommandResult(
  payload: Uint8Array,
  maxBytes: number = DEFAULT_DATA_LIMITS.maxPayloadBytes,
): CommandResultMessage | BridgeRefusal {
  const parsed = unwrap(parseJson(payload, maxBytes));
  if (isRefusal(parsed)) return parsed;
  const { json } = parsed;
  if (!isObject(json))
    return refusal(
      'INVALID_FIELD',
      'a command result is {"id": n, "status": "delivered"|"succeeded"|"failed"|"rejected", "detail"?: text}',
    );
  const { id, status } = json;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1)
    return refusal('INVALID_FIELD', 'id must be the command id, an integer >= 1');
  if (typeof status !== 'string' || !COMMAND_STATUSES.includes(status as CommandStatus)) {
    return refusal('INVALID_FIELD', `status must be one of ${COMMAND_STATUSES.join(', ')}`);
  }
  let detail = '';
  if (json.detail !== undefined && json.detail !== null) {
    detail = typeof json.detail === 'string' ? json.detail : JSON.stringify(json.detail);
    if (utf8Length(detail) > DEFAULT_LIMITS.maxDetailBytes)
      return refusal('STRING_TOO_LONG', `detail is longer than ${DEFAULT_LIMITS.maxDetailBytes} bytes`);
  }
  return { commandId: id, status: status as CommandStatus, detail };
}

/**
 * A JSON value as the wire value the validator checks against the declared kind (protocol §7.1): numbers
 * travel as the declared float kind, as int when whole, else f64, so a mismatch is the validator's
 * TYPE_MISMATCH. Null for what no wire value can carry (null, objects, arrays).
 */
export function toValue(alias: number, declared: MetricKind | undefined, raw: unknown): Value | BridgeRefusal {
  switch (typeof raw) {
    case 'number':
      if (declared === 'f32') return { alias, kind: 'f32', value: Math.fround(raw) };
      if (declared === 'f64') return { alias, kind: 'f64', value: raw };
      return { alias, kind: Number.isSafeInteger(raw) ? 'int' : 'f64', value: raw };
    case 'boolean':
      return { alias, kind: 'bool', value: raw };
    case 'string':
      if (raw.length > DEFAULT_LIMITS.maxStringValueBytes && utf8Length(raw) > DEFAULT_LIMITS.maxStringValueBytes) {
        return refusal('STRING_TOO_LONG', `a string value is longer than ${DEFAULT_LIMITS.maxStringValueBytes} bytes`);
      }
      return { alias, kind: 'string', value: raw };
    default:
      return refusal(
        'TYPE_MISMATCH',
        `a value must be a number, a boolean or a string, not ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : 'an object'}`,
      );
  }
}

/** The command a device receives on `.../cmd` (docs/mqtt.md §3.5). */
export function encodeCommand(commandId: number, name: string, argsJson: string, timeoutMs: number): Buffer {
  let args: unknown = null;
  if (argsJson !== '') {
    try {
      args = JSON.parse(argsJson) as unknown;
    } catch {
      args = argsJson;
    }
  }
  return Buffer.from(JSON.stringify({ id: commandId, name, args, timeoutMs }));
}

/** What the bridge publishes on `.../error`. */
export function encodeError(
  code: string,
  message: string,
  extra: { seq?: number; metric?: string; topic?: string } = {},
): Buffer {
  return Buffer.from(JSON.stringify({ code, message, ...extra }));
}
