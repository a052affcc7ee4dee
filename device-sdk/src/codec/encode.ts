/**
 * Pure encoders, the mirror of decode.ts. They refuse (FrameError, same codes as the decoder) to build a
 * frame the other side would reject at decode time, so a bug shows up at the sender. A device ships the
 * device-frame half, so its refusals are short: `${what}: ${problem}` (see refuse()).
 */
import { ByteWriter, refuse } from './bytes.js';
import { wireCodeOf } from './errors.js';
import {
  COMMAND_STATUSES,
  FrameType,
  METRIC_KINDS,
  ValueType,
  type DeltaContext,
  type DeviceFrame,
  type HelloFrame,
  type HubFrame,
  type Reading,
  type Value,
  type ValueKind,
} from './frames.js';
import { DEVICE_ID_PATTERN, METRIC_NAME_PATTERN, resolveLimits, type Limits } from './limits.js';

/** Matches only unpaired surrogates (with the u flag a well-formed pair is one code point). */
const LONE_SURROGATES = /[\uD800-\uDFFF]/gu;

/** §5.2: the wire type of each value kind; a TRUE bool is FALSE + 1. */
const VALUE_TYPES: Readonly<Record<ValueKind, number>> = {
  f32: ValueType.F32,
  f64: ValueType.F64,
  int: ValueType.INT,
  bool: ValueType.FALSE,
  string: ValueType.STRING,
};

/**
 * Whether a JavaScript value can travel as a value of this kind (§5.2). The encoder and
 * TendrilDevice.send() both check with it.
 */
export function fitsKind(kind: ValueKind, value: unknown): boolean {
  return kind === 'int'
    ? Number.isSafeInteger(value)
    : kind === 'bool'
      ? typeof value === 'boolean'
      : kind === 'string'
        ? typeof value === 'string'
        : (kind === 'f32' || kind === 'f64') && typeof value === 'number';
}

function wireCode(code: string): number {
  try {
    return wireCodeOf(code);
  } catch {
    return refuse(`error code ${code}`, 'neither a registry code (§11) nor UNKNOWN_<n>');
  }
}

/** Encodes a device frame. Readings advance `ctx` (§5.1); on failure it is left untouched. */
export function encodeDeviceFrame(frame: DeviceFrame, ctx: DeltaContext, limitsIn?: Partial<Limits>): Uint8Array {
  const limits = resolveLimits(limitsIn);
  const w = new ByteWriter();
  const local = { ...ctx };
  switch (frame.type) {
    case 'hello':
      writeHello(w, frame, limits);
      break;
    case 'reading':
      w.u8(frame.ts === null ? FrameType.READING_UNTIMED : FrameType.READING);
      writeReading(w, frame, limits, local, false);
      break;
    case 'batch': {
      // §5.4
      const n = frame.readings.length;
      if (n < 1 || n > limits.maxBatch)
        refuse('BATCH', `${n} readings, allowed 1..${limits.maxBatch}`, 'BATCH_TOO_LARGE');
      w.u8(FrameType.BATCH);
      w.varint(n, 'batch count');
      for (const reading of frame.readings) {
        if (reading.ts === null) refuse(`BATCH reading ${reading.seq}`, 'no timestamp');
        writeReading(w, reading, limits, local, true);
      }
      break;
    }
    case 'commandResult': {
      // §8.2
      const status = COMMAND_STATUSES.indexOf(frame.status);
      if (!(frame.commandId >= 1)) refuse(`commandId ${frame.commandId}`, 'below 1');
      if (status < 0) refuse(`command status ${String(frame.status)}`, `not one of ${COMMAND_STATUSES}`);
      w.u8(FrameType.COMMAND_RESULT);
      w.varint(frame.commandId, 'commandId');
      w.u8(status);
      w.string(frame.detail, 'detail', limits.maxDetailBytes);
      break;
    }
    case 'status':
      w.u8(FrameType.STATUS);
      w.varint(frame.dropped, 'dropped');
      break;
    default:
      refuse(`frame type ${(frame as { type: string }).type}`, 'not a device frame');
  }
  const bytes = w.finish(limits.maxFrameBytes);
  Object.assign(ctx, local);
  return bytes;
}

/** Encodes a hub frame. Hub frames carry no delta state. */
export function encodeHubFrame(frame: HubFrame, limitsIn?: Partial<Limits>): Uint8Array {
  const limits = resolveLimits(limitsIn);
  const w = new ByteWriter();
  switch (frame.type) {
    case 'welcome':
      w.u8(FrameType.WELCOME);
      w.varint(frame.serverTime, 'serverTime');
      w.varint(frame.ackedSeq, 'ackedSeq');
      w.varint(frame.heartbeatMs, 'heartbeatMs');
      w.varint(frame.maxFrameBytes, 'maxFrameBytes');
      w.varint(frame.maxBatch, 'maxBatch');
      w.varint(frame.maxRate, 'maxRate');
      break;
    case 'ack':
      w.u8(FrameType.ACK);
      w.varint(frame.seq, 'ack seq');
      break;
    case 'command':
      if (!(frame.commandId >= 1)) refuse(`commandId ${frame.commandId}`, 'below 1');
      if (frame.name.length === 0) refuse('command name', 'empty');
      w.u8(FrameType.COMMAND);
      w.varint(frame.commandId, 'commandId');
      w.string(frame.name, 'command name', limits.maxCommandNameBytes);
      w.string(frame.args, 'command args', limits.maxCommandArgsBytes);
      w.varint(frame.timeoutMs, 'timeoutMs');
      break;
    case 'error':
      w.u8(FrameType.ERROR);
      w.varint(wireCode(frame.code), 'error code');
      w.varint(frame.seq, 'error seq');
      // §7.6: alias + 1, so that 0 can mean "no alias".
      w.varint(frame.alias === null ? 0 : frame.alias + 1, 'alias + 1');
      w.string(truncateUtf8(frame.message, limits.maxMessageBytes), 'message', limits.maxMessageBytes);
      break;
    case 'backoff':
      w.u8(FrameType.BACKOFF);
      w.varint(wireCode(frame.code), 'backoff code');
      w.varint(frame.pauseMs, 'pauseMs');
      break;
    default:
      refuse(`frame type ${(frame as { type: string }).type}`, 'not a hub frame');
  }
  return w.finish(limits.maxFrameBytes);
}

/** §4.2, §5.2: an alias is an integer 0..maxAlias. */
function checkAlias(alias: number, limits: Limits): void {
  if (!(Number.isSafeInteger(alias) && alias >= 0 && alias <= limits.maxAlias))
    refuse(`alias ${alias}`, `not in 0..${limits.maxAlias}`);
}

/** §4.1 */
function writeHello(w: ByteWriter, f: HelloFrame, limits: Limits): void {
  if (!DEVICE_ID_PATTERN.test(f.deviceId)) refuse(`deviceId "${f.deviceId}"`, `not ${DEVICE_ID_PATTERN}`);
  if (!f.token) refuse('token', 'empty');
  // The varint refuses what is not a non-negative integer.
  if (f.epoch > 0xffff_ffff) refuse(`epoch ${f.epoch}`, 'not a u32');
  if (f.metrics.length > limits.maxMetrics)
    refuse('HELLO', `${f.metrics.length} metrics, limit ${limits.maxMetrics}`, 'TOO_MANY_METRICS');
  w.u8(FrameType.HELLO);
  w.string(f.deviceId, 'deviceId', limits.maxDeviceIdBytes);
  w.string(f.token, 'token', limits.maxTokenBytes);
  w.string(f.firmware, 'firmware', limits.maxVersionBytes);
  w.string(f.sdk, 'sdk', limits.maxVersionBytes);
  w.varint(f.epoch, 'epoch');
  w.varint(f.lastSeq, 'lastSeq');
  w.varint(f.clock, 'clock');
  w.varint(f.dropped, 'dropped');
  w.varint(f.metrics.length, 'metric count');
  const aliases = new Set<number>();
  const names = new Set<string>();
  // §4.2
  for (const { alias, name, kind, unit, min, max } of f.metrics) {
    const metric = `metric "${name}"`;
    checkAlias(alias, limits);
    if (aliases.has(alias)) refuse(`alias ${alias}`, 'declared twice');
    if (!METRIC_NAME_PATTERN.test(name)) refuse(metric, `name not ${METRIC_NAME_PATTERN}`);
    if (names.has(name)) refuse(metric, 'declared twice');
    aliases.add(alias);
    names.add(name);
    const kindIndex = METRIC_KINDS.indexOf(kind);
    if (kindIndex < 0) refuse(metric, `kind ${String(kind)} not one of ${METRIC_KINDS}`);
    const flags = (min === undefined ? 0 : 1) | (max === undefined ? 0 : 2);
    if (flags && (kind === 'bool' || kind === 'string')) refuse(metric, `a ${kind} has no range`);
    if ((flags & 1 && !Number.isFinite(min)) || (flags & 2 && !Number.isFinite(max)))
      refuse(metric, 'range not finite');
    if (min! > max!) refuse(metric, 'min > max');
    w.varint(alias, 'alias');
    w.u8(kindIndex);
    w.u8(flags);
    w.string(name, 'metric name', limits.maxMetricNameBytes);
    w.string(unit, 'unit', limits.maxUnitBytes);
    if (min !== undefined) w.float(min, 8);
    if (max !== undefined) w.float(max, 8);
  }
}

/** §5.1/§5.3: seq delta, ts delta unless untimed, then the values (counted in a BATCH). */
function writeReading(
  w: ByteWriter,
  { seq, ts, values }: Reading,
  limits: Limits,
  ctx: DeltaContext,
  counted: boolean,
): void {
  const reading = `reading ${seq}`;
  if (!values.length) refuse(reading, 'no values', 'EMPTY_READING');
  if (values.length > limits.maxMetrics)
    refuse(reading, `${values.length} values, limit ${limits.maxMetrics}`, 'TOO_MANY_METRICS');
  if (!Number.isSafeInteger(seq) || seq < 1) refuse(reading, 'seq not in 1..2^53-1');
  w.svarint(seq - ctx.prevSeq, 'seq delta');
  ctx.prevSeq = seq;
  if (ts !== null) {
    if (!Number.isSafeInteger(ts) || ts < 0) refuse(reading, `timestamp ${ts} not in 0..2^53-1 ms`);
    w.svarint(ts - ctx.prevTs, 'ts delta');
    ctx.prevTs = ts;
  }
  if (counted) w.varint(values.length, 'value count');
  for (const v of values) writeValue(w, v, limits);
}

/** §5.2: tag = alias * 8 + value type, then the payload the type implies. */
function writeValue(w: ByteWriter, { alias, kind, value }: Value, limits: Limits): void {
  checkAlias(alias, limits);
  if (!fitsKind(kind, value))
    refuse(`value of alias ${alias}`, `${typeof value} ${String(value)} is not a ${String(kind)}`);
  w.varint(alias * 8 + VALUE_TYPES[kind] + (value === true ? 1 : 0), 'value tag');
  if (kind === 'f32') w.float(value as number, 4);
  else if (kind === 'f64') w.float(value as number, 8);
  else if (kind === 'int') w.svarint(value as number, 'int value');
  else if (kind === 'string') w.string(value as string, 'string value', limits.maxStringValueBytes);
}

/**
 * Cuts a message to at most maxBytes of UTF-8 without splitting a character. Unpaired surrogates become
 * U+FFFD, so that any JavaScript string can go into an ERROR message (§7.6).
 */
export function truncateUtf8(s: string, maxBytes: number): string {
  s = s.replace(LONE_SURROGATES, '\uFFFD');
  if (s.length * 3 <= maxBytes) return s;
  const bytes = new TextEncoder().encode(s);
  if (bytes.length <= maxBytes) return s;
  let cut = maxBytes;
  while (cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--;
  return new TextDecoder().decode(bytes.subarray(0, cut));
}
