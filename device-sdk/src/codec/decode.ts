/**
 * Pure decoders: bytes in, frame out, or a FrameError with a registry code. No I/O, no clocks.
 * Section numbers (§) refer to docs/protocol.md.
 */
import { ByteReader, DeviceFrameReader } from './bytes.js';
import { codeOfWire, FrameError } from './errors.js';
import {
  COMMAND_STATUSES,
  FrameType,
  METRIC_KINDS,
  ValueType,
  type BackoffFrame,
  type BatchFrame,
  type CommandFrame,
  type CommandResultFrame,
  type DeltaContext,
  type DeviceFrame,
  type ErrorFrame,
  type HelloFrame,
  type HubFrame,
  type MetricDeclaration,
  type ReadingFrame,
  type StatusFrame,
  type Value,
  type WelcomeFrame,
} from './frames.js';
import { DEVICE_ID_PATTERN, METRIC_NAME_PATTERN, resolveLimits, type Limits } from './limits.js';

const U32_MAX = 0xffff_ffff;

function checkSize(bytes: Uint8Array, limits: Limits): void {
  // §9.2: the hub's WebSocket layer refuses larger messages with 1009 before they reach the codec;
  // the codec checks again so that any transport gets the same answer.
  if (bytes.length > limits.maxFrameBytes) {
    throw new FrameError('FRAME_TOO_LARGE', `frame is ${bytes.length} bytes, limit ${limits.maxFrameBytes}`, 0);
  }
  if (bytes.length === 0) throw new FrameError('FRAME_TRUNCATED', 'empty frame: no type byte', 0);
}

/** §3.1: a frame's fields fill the message exactly. */
function end(r: ByteReader, what: string): void {
  if (r.remaining > 0) r.fail('TRAILING_BYTES', `${r.remaining} byte(s) after the end of ${what}`);
}

/**
 * Decodes a frame sent by a device (the hub's side). On success `ctx` is advanced past the frame's
 * readings (§5.1); on failure it is left untouched.
 */
export function decodeDeviceFrame(bytes: Uint8Array, ctx: DeltaContext, limitsIn?: Partial<Limits>): DeviceFrame {
  const limits = resolveLimits(limitsIn);
  checkSize(bytes, limits);
  const r: DeviceFrameReader = new DeviceFrameReader(bytes);
  const type = r.u8('frame type');
  switch (type) {
    case FrameType.HELLO:
      return decodeHello(r, limits);
    case FrameType.READING:
    case FrameType.READING_UNTIMED: {
      // §5.3 (object literals, not spreads: the hub decodes one of these per reading)
      const local: DeltaContext = { prevSeq: ctx.prevSeq, prevTs: ctx.prevTs };
      const reading = readReading(r, limits, local, type === FrameType.READING, false);
      const frame: ReadingFrame = { type: 'reading', seq: reading.seq, ts: reading.ts, values: reading.values };
      ctx.prevSeq = local.prevSeq;
      ctx.prevTs = local.prevTs;
      return frame;
    }
    case FrameType.BATCH:
      return decodeBatch(r, limits, ctx);
    case FrameType.COMMAND_RESULT: {
      // §8.2
      const commandId = r.varint('commandId');
      if (commandId < 1) r.fail('INVALID_FIELD', 'commandId must be >= 1');
      const s = r.u8('status');
      const status = COMMAND_STATUSES[s];
      if (status === undefined) r.fail('INVALID_FIELD', `command status ${s} is not 0..3`);
      const detail = r.string('detail', limits.maxDetailBytes);
      end(r, 'COMMAND_RESULT');
      return { type: 'commandResult', commandId, status, detail } satisfies CommandResultFrame;
    }
    case FrameType.STATUS: {
      // §7.5
      const dropped = r.varint('dropped');
      end(r, 'STATUS');
      return { type: 'status', dropped } satisfies StatusFrame;
    }
    default:
      throw new FrameError(
        'UNKNOWN_FRAME_TYPE',
        `0x${type.toString(16).padStart(2, '0')} is not a device frame type`,
        0,
      );
  }
}

/** Decodes a frame sent by the hub (the device's side). Hub frames carry no delta state. */
export function decodeHubFrame(bytes: Uint8Array, limitsIn?: Partial<Limits>): HubFrame {
  const limits = resolveLimits(limitsIn);
  checkSize(bytes, limits);
  const r: ByteReader = new ByteReader(bytes);
  const type = r.u8('frame type');
  let frame: HubFrame;
  switch (type) {
    case FrameType.WELCOME: // §4.3
      frame = {
        type: 'welcome',
        serverTime: r.varint('serverTime'),
        ackedSeq: r.varint('ackedSeq'),
        heartbeatMs: r.varint('heartbeatMs'),
        maxFrameBytes: r.varint('maxFrameBytes'),
        maxBatch: r.varint('maxBatch'),
        maxRate: r.varint('maxRate'),
      } satisfies WelcomeFrame;
      break;
    case FrameType.ACK: // §7.3
      frame = { type: 'ack', seq: r.varint('seq') };
      break;
    case FrameType.COMMAND: {
      // §8.1
      const commandId = r.varint('commandId');
      if (commandId < 1) r.fail('INVALID_FIELD', 'commandId must be >= 1');
      const name = r.string('command name', limits.maxCommandNameBytes);
      if (name.length === 0) r.fail('INVALID_FIELD', 'command name is empty');
      const args = r.string('command args', limits.maxCommandArgsBytes);
      frame = { type: 'command', commandId, name, args, timeoutMs: r.varint('timeoutMs') } satisfies CommandFrame;
      break;
    }
    case FrameType.ERROR: {
      // §7.6
      const code = codeOfWire(r.varint('error code'));
      const seq = r.varint('seq');
      const aliasPlusOne = r.varint('alias');
      const message = r.string('message', limits.maxMessageBytes);
      frame = {
        type: 'error',
        code,
        seq,
        alias: aliasPlusOne === 0 ? null : aliasPlusOne - 1,
        message,
      } satisfies ErrorFrame;
      break;
    }
    case FrameType.BACKOFF: // §7.4
      frame = {
        type: 'backoff',
        code: codeOfWire(r.varint('code')),
        pauseMs: r.varint('pauseMs'),
      } satisfies BackoffFrame;
      break;
    default:
      throw new FrameError('UNKNOWN_FRAME_TYPE', `0x${type.toString(16).padStart(2, '0')} is not a hub frame type`, 0);
  }
  end(r, frame.type.toUpperCase());
  return frame;
}

function decodeHello(r: DeviceFrameReader, limits: Limits): HelloFrame {
  const deviceId = r.string('deviceId', limits.maxDeviceIdBytes);
  // §4.1
  if (!DEVICE_ID_PATTERN.test(deviceId)) r.fail('INVALID_FIELD', 'deviceId must be 1+ characters of [A-Za-z0-9._:-]');
  const token = r.string('token', limits.maxTokenBytes);
  if (token.length === 0) r.fail('INVALID_FIELD', 'token is empty');
  const firmware = r.string('firmware', limits.maxVersionBytes);
  const sdk = r.string('sdk', limits.maxVersionBytes);
  const epoch = r.varint('epoch');
  if (epoch > U32_MAX) r.fail('INVALID_FIELD', 'epoch exceeds 2^32-1');
  const lastSeq = r.varint('lastSeq');
  const clock = r.varint('clock');
  const dropped = r.varint('dropped');
  const count = r.varint('metric count');
  if (count > limits.maxMetrics)
    r.fail('TOO_MANY_METRICS', `HELLO declares ${count} metrics, limit ${limits.maxMetrics}`);
  const metrics: MetricDeclaration[] = [];
  const aliases = new Set<number>();
  const names = new Set<string>();
  for (let i = 0; i < count; i++) {
    // §4.2
    const alias = r.varint('alias');
    if (alias > limits.maxAlias) r.fail('INVALID_FIELD', `alias ${alias} exceeds ${limits.maxAlias}`);
    if (aliases.has(alias)) r.fail('INVALID_FIELD', `alias ${alias} is declared twice`);
    aliases.add(alias);
    const k = r.u8('metric kind');
    const kind = METRIC_KINDS[k];
    if (kind === undefined) r.fail('INVALID_FIELD', `metric kind ${k} is not 0..4`);
    const flags = r.u8('metric flags');
    if (flags & ~0x03) r.fail('INVALID_FIELD', `metric flags 0x${flags.toString(16)} use reserved bits`);
    if (flags !== 0 && (kind === 'bool' || kind === 'string'))
      r.fail('INVALID_FIELD', `a ${kind} metric cannot have a range`);
    const name = r.string('metric name', limits.maxMetricNameBytes);
    if (!METRIC_NAME_PATTERN.test(name))
      r.fail('INVALID_FIELD', `metric name "${name}" must start with a letter and use [A-Za-z0-9_./-]`);
    if (names.has(name)) r.fail('INVALID_FIELD', `metric name "${name}" is declared twice`);
    names.add(name);
    const unit = r.string('unit', limits.maxUnitBytes);
    const m: MetricDeclaration = { alias, name, kind, unit };
    if (flags & 0x01) {
      m.min = r.f64('min');
      if (!Number.isFinite(m.min)) r.fail('INVALID_FIELD', `min of ${name} is not finite`);
    }
    if (flags & 0x02) {
      m.max = r.f64('max');
      if (!Number.isFinite(m.max)) r.fail('INVALID_FIELD', `max of ${name} is not finite`);
    }
    if (m.min !== undefined && m.max !== undefined && m.min > m.max)
      r.fail('INVALID_FIELD', `min of ${name} exceeds max`);
    metrics.push(m);
  }
  end(r, 'HELLO');
  return { type: 'hello', deviceId, token, firmware, sdk, epoch, lastSeq, clock, dropped, metrics };
}

/** §5.4 */
function decodeBatch(r: DeviceFrameReader, limits: Limits, ctx: DeltaContext): BatchFrame {
  const count = r.varint('batch count');
  if (count < 1 || count > limits.maxBatch)
    r.fail('BATCH_TOO_LARGE', `BATCH holds ${count} readings, allowed 1..${limits.maxBatch}`);
  const local = { ...ctx };
  const readings: BatchFrame['readings'] = [];
  for (let i = 0; i < count; i++) {
    readings.push(readReading(r, limits, local, true, true) as BatchFrame['readings'][number]);
  }
  end(r, 'BATCH');
  ctx.prevSeq = local.prevSeq;
  ctx.prevTs = local.prevTs;
  return { type: 'batch', readings };
}

/** §5.1/§5.3: seq delta, optional ts delta, then values (counted in a batch, to the end otherwise). */
function readReading(r: DeviceFrameReader, limits: Limits, ctx: DeltaContext, timed: boolean, counted: boolean) {
  const seq = ctx.prevSeq + r.svarint('seq delta');
  if (seq < 1 || seq > Number.MAX_SAFE_INTEGER) r.fail('INVALID_FIELD', `seq ${seq} is outside 1..2^53-1`);
  let ts: number | null = null;
  if (timed) {
    ts = ctx.prevTs + r.svarint('ts delta');
    if (ts < 0 || ts > Number.MAX_SAFE_INTEGER) r.fail('INVALID_FIELD', `timestamp ${ts} is outside 0..2^53-1`);
    ctx.prevTs = ts;
  }
  ctx.prevSeq = seq;
  let n: number;
  if (counted) {
    n = r.varint('value count');
    if (n === 0) r.fail('EMPTY_READING', `reading ${seq} carries no values`);
    if (n > limits.maxMetrics)
      r.fail('TOO_MANY_METRICS', `reading ${seq} carries ${n} values, limit ${limits.maxMetrics}`);
  } else {
    n = Infinity;
    if (r.remaining === 0) r.fail('EMPTY_READING', `reading ${seq} carries no values`);
  }
  const values: Value[] = [];
  for (let i = 0; i < n && (counted || r.remaining > 0); i++) {
    if (values.length >= limits.maxMetrics)
      r.fail('TOO_MANY_METRICS', `reading ${seq} carries more than ${limits.maxMetrics} values`);
    values.push(readValue(r, limits));
  }
  return { seq, ts, values };
}

/** §5.2: tag = alias * 8 + value type, then the payload the type implies. */
function readValue(r: DeviceFrameReader, limits: Limits): Value {
  const tag = r.varint('value tag');
  const alias = Math.floor(tag / 8);
  const vt = tag % 8;
  if (alias > limits.maxAlias) r.fail('INVALID_FIELD', `alias ${alias} exceeds ${limits.maxAlias}`);
  switch (vt) {
    case ValueType.F32:
      return { alias, kind: 'f32', value: r.f32('f32 value') };
    case ValueType.F64:
      return { alias, kind: 'f64', value: r.f64('f64 value') };
    case ValueType.INT:
      return { alias, kind: 'int', value: r.svarint('int value') };
    case ValueType.FALSE:
      return { alias, kind: 'bool', value: false };
    case ValueType.TRUE:
      return { alias, kind: 'bool', value: true };
    case ValueType.STRING:
      return { alias, kind: 'string', value: r.string('string value', limits.maxStringValueBytes) };
    default:
      return r.fail('INVALID_VALUE_TYPE', `value type ${vt} is reserved`);
  }
}
