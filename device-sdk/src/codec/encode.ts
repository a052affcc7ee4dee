/**
 * Pure encoders, the mirror of decode.ts. They refuse (FrameError, same codes as the decoder) to build a
 * frame the other side would reject at decode time, so a bug shows up at the sender.
 */
import { ByteWriter } from './bytes.js';
import { FrameError, wireCodeOf } from './errors.js';
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
} from './frames.js';
import { DEVICE_ID_PATTERN, METRIC_NAME_PATTERN, resolveLimits, type Limits } from './limits.js';

function invalid(message: string): never {
  throw new FrameError('INVALID_FIELD', message);
}

/** Matches only unpaired surrogates (with the u flag a well-formed pair is one code point). */
const LONE_SURROGATES = /[\uD800-\uDFFF]/gu;

function wireCode(code: string): number {
  try {
    return wireCodeOf(code);
  } catch {
    return invalid(`${code} is not a registry error code (§11) nor UNKNOWN_<n>`);
  }
}

function finish(w: ByteWriter, limits: Limits): Uint8Array {
  if (w.pos > limits.maxFrameBytes) throw new FrameError('FRAME_TOO_LARGE', `frame is ${w.pos} bytes, limit ${limits.maxFrameBytes}`);
  return w.finish();
}

/** Encodes a device frame. Readings advance `ctx` (§5.1); on failure it is left untouched. */
export function encodeDeviceFrame(frame: DeviceFrame, ctx: DeltaContext, limitsIn?: Partial<Limits>): Uint8Array {
  const limits = resolveLimits(limitsIn);
  const w = new ByteWriter(32);
  switch (frame.type) {
    case 'hello':
      writeHello(w, frame, limits);
      break;
    case 'reading': {
      const local = { ...ctx };
      w.u8(frame.ts === null ? FrameType.READING_UNTIMED : FrameType.READING);
      writeReading(w, frame, limits, local, false);
      const out = finish(w, limits);
      ctx.prevSeq = local.prevSeq;
      ctx.prevTs = local.prevTs;
      return out;
    }
    case 'batch': {
      const n = frame.readings.length;
      if (n < 1 || n > limits.maxBatch) throw new FrameError('BATCH_TOO_LARGE', `BATCH holds ${n} readings, allowed 1..${limits.maxBatch}`);
      const local = { ...ctx };
      w.u8(FrameType.BATCH);
      w.varint(n, 'batch count');
      for (const reading of frame.readings) {
        if (reading.ts === null) invalid('every reading in a BATCH needs a timestamp');
        writeReading(w, reading, limits, local, true);
      }
      const out = finish(w, limits);
      ctx.prevSeq = local.prevSeq;
      ctx.prevTs = local.prevTs;
      return out;
    }
    case 'commandResult': {
      if (!Number.isSafeInteger(frame.commandId) || frame.commandId < 1) invalid('commandId must be >= 1');
      const status = COMMAND_STATUSES.indexOf(frame.status);
      if (status < 0) invalid(`unknown command status ${String(frame.status)}`);
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
      invalid(`not a device frame: ${(frame as { type: string }).type}`);
  }
  return finish(w, limits);
}

/** Encodes a hub frame. Hub frames carry no delta state. */
export function encodeHubFrame(frame: HubFrame, limitsIn?: Partial<Limits>): Uint8Array {
  const limits = resolveLimits(limitsIn);
  const w = new ByteWriter(16);
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
      if (!Number.isSafeInteger(frame.commandId) || frame.commandId < 1) invalid('commandId must be >= 1');
      if (frame.name.length === 0) invalid('command name is empty');
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
      invalid(`not a hub frame: ${(frame as { type: string }).type}`);
  }
  return finish(w, limits);
}

function writeHello(w: ByteWriter, f: HelloFrame, limits: Limits): void {
  if (!DEVICE_ID_PATTERN.test(f.deviceId)) invalid('deviceId must be 1+ characters of [A-Za-z0-9._:-]');
  if (f.token.length === 0) invalid('token is empty');
  if (!Number.isSafeInteger(f.epoch) || f.epoch < 0 || f.epoch > 0xffff_ffff) invalid('epoch must be a u32');
  if (f.metrics.length > limits.maxMetrics) throw new FrameError('TOO_MANY_METRICS', `${f.metrics.length} metrics, limit ${limits.maxMetrics}`);
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
  for (const m of f.metrics) {
    if (!Number.isSafeInteger(m.alias) || m.alias < 0 || m.alias > limits.maxAlias) invalid(`alias ${m.alias} is outside 0..${limits.maxAlias}`);
    if (aliases.has(m.alias)) invalid(`alias ${m.alias} is declared twice`);
    if (!METRIC_NAME_PATTERN.test(m.name)) invalid(`metric name "${m.name}" must start with a letter and use [A-Za-z0-9_./-]`);
    if (names.has(m.name)) invalid(`metric name "${m.name}" is declared twice`);
    aliases.add(m.alias);
    names.add(m.name);
    const kind = METRIC_KINDS.indexOf(m.kind);
    if (kind < 0) invalid(`unknown metric kind ${String(m.kind)}`);
    const hasMin = m.min !== undefined;
    const hasMax = m.max !== undefined;
    if ((hasMin || hasMax) && (m.kind === 'bool' || m.kind === 'string')) invalid(`a ${m.kind} metric cannot have a range`);
    if ((hasMin && !Number.isFinite(m.min)) || (hasMax && !Number.isFinite(m.max))) invalid(`range of ${m.name} is not finite`);
    if (hasMin && hasMax && m.min! > m.max!) invalid(`min of ${m.name} exceeds max`);
    w.varint(m.alias, 'alias');
    w.u8(kind);
    w.u8((hasMin ? 1 : 0) | (hasMax ? 2 : 0));
    w.string(m.name, 'metric name', limits.maxMetricNameBytes);
    w.string(m.unit, 'unit', limits.maxUnitBytes);
    if (hasMin) w.f64(m.min!);
    if (hasMax) w.f64(m.max!);
  }
}

function writeReading(w: ByteWriter, reading: Reading, limits: Limits, ctx: DeltaContext, counted: boolean): void {
  const n = reading.values.length;
  if (n === 0) throw new FrameError('EMPTY_READING', `reading ${reading.seq} carries no values`);
  if (n > limits.maxMetrics) throw new FrameError('TOO_MANY_METRICS', `reading ${reading.seq} carries ${n} values, limit ${limits.maxMetrics}`);
  if (!Number.isSafeInteger(reading.seq) || reading.seq < 1) invalid(`seq ${reading.seq} is outside 1..2^53-1`);
  w.svarint(reading.seq - ctx.prevSeq, 'seq delta');
  ctx.prevSeq = reading.seq;
  if (reading.ts !== null) {
    if (!Number.isSafeInteger(reading.ts) || reading.ts < 0) invalid(`timestamp ${reading.ts} must be a non-negative integer (ms)`);
    w.svarint(reading.ts - ctx.prevTs, 'ts delta');
    ctx.prevTs = reading.ts;
  }
  if (counted) w.varint(n, 'value count');
  for (const v of reading.values) writeValue(w, v, limits);
}

function writeValue(w: ByteWriter, v: Value, limits: Limits): void {
  if (!Number.isSafeInteger(v.alias) || v.alias < 0 || v.alias > limits.maxAlias) invalid(`alias ${v.alias} is outside 0..${limits.maxAlias}`);
  const tag = v.alias * 8;
  switch (v.kind) {
    case 'f32':
      if (typeof v.value !== 'number') invalid(`alias ${v.alias}: f32 value must be a number`);
      w.varint(tag + ValueType.F32, 'value tag');
      w.f32(v.value);
      return;
    case 'f64':
      if (typeof v.value !== 'number') invalid(`alias ${v.alias}: f64 value must be a number`);
      w.varint(tag + ValueType.F64, 'value tag');
      w.f64(v.value);
      return;
    case 'int':
      if (typeof v.value !== 'number' || !Number.isSafeInteger(v.value)) invalid(`alias ${v.alias}: int value must be a safe integer`);
      w.varint(tag + ValueType.INT, 'value tag');
      w.svarint(v.value, `int value of alias ${v.alias}`);
      return;
    case 'bool':
      if (typeof v.value !== 'boolean') invalid(`alias ${v.alias}: bool value must be a boolean`);
      w.varint(tag + (v.value ? ValueType.TRUE : ValueType.FALSE), 'value tag');
      return;
    case 'string':
      if (typeof v.value !== 'string') invalid(`alias ${v.alias}: string value must be a string`);
      w.varint(tag + ValueType.STRING, 'value tag');
      w.string(v.value, 'string value', limits.maxStringValueBytes);
      return;
    default:
      invalid(`alias ${v.alias}: unknown value kind ${String((v as { kind: unknown }).kind)}`);
  }
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
