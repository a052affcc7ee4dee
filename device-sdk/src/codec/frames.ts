/**
 * Frame model of the tendril.v1 device protocol (docs/protocol.md).
 * One WebSocket binary message carries exactly one frame; byte 0 is the frame type.
 */

/** WebSocket subprotocol of this protocol version (§1.1). */
export const SUBPROTOCOL = 'tendril.v1';

/** Frame type byte (protocol §3). Device -> hub types are 0x01..0x3f, hub -> device 0x41..0x7f. */
export const FrameType = {
  HELLO: 0x01,
  READING: 0x02,
  READING_UNTIMED: 0x03,
  BATCH: 0x04,
  COMMAND_RESULT: 0x05,
  STATUS: 0x06,
  WELCOME: 0x41,
  ACK: 0x42,
  COMMAND: 0x43,
  ERROR: 0x44,
  BACKOFF: 0x45,
} as const;
export type FrameTypeByte = (typeof FrameType)[keyof typeof FrameType];

/** Wire value type: the low 3 bits of a value tag (protocol §5.2). */
export const ValueType = {
  F32: 0,
  F64: 1,
  INT: 2,
  FALSE: 3,
  TRUE: 4,
  STRING: 5,
} as const;

/** What a metric is declared as (protocol §4.2). */
export type MetricKind = 'f32' | 'f64' | 'int' | 'bool' | 'string';
export const METRIC_KINDS: readonly MetricKind[] = ['f32', 'f64', 'int', 'bool', 'string'];

/** The wire type a value travels as. `bool` covers both FALSE and TRUE tags. */
export type ValueKind = 'f32' | 'f64' | 'int' | 'bool' | 'string';

export interface MetricDeclaration {
  /** Small number that stands for the metric on the wire, 0..limits.maxAlias. Aliases 0..15 cost one byte. */
  alias: number;
  name: string;
  kind: MetricKind;
  unit: string;
  min?: number;
  max?: number;
}

export interface Value {
  alias: number;
  kind: ValueKind;
  value: number | boolean | string;
}

export interface Reading {
  /** Sequence number, >= 1, unique per device and epoch. */
  seq: number;
  /** Device time in ms since the Unix epoch, or null when the hub is to stamp arrival time. */
  ts: number | null;
  values: Value[];
}

export type CommandStatus = 'delivered' | 'succeeded' | 'failed' | 'rejected';
export const COMMAND_STATUSES: readonly CommandStatus[] = ['delivered', 'succeeded', 'failed', 'rejected'];

// ---- device -> hub ----

export interface HelloFrame {
  type: 'hello';
  deviceId: string;
  token: string;
  firmware: string;
  sdk: string;
  /** Identifies one run of the device's sequence counter (u32). A new epoch restarts seq at 1. */
  epoch: number;
  /** Highest sequence number the device has assigned in this epoch (0 = none yet). */
  lastSeq: number;
  /** Device clock at connect, ms since the Unix epoch; 0 = the device has no clock. Base for ts deltas. */
  clock: number;
  /** Readings the device's buffer has dropped (oldest first) in this epoch. */
  dropped: number;
  metrics: MetricDeclaration[];
}

/** READING (0x02) when ts is a number, READING_UNTIMED (0x03) when ts is null. */
export interface ReadingFrame extends Reading {
  type: 'reading';
}

/** Several readings in one frame, for store-and-forward replay. Every entry is timed. */
export interface BatchFrame {
  type: 'batch';
  readings: Array<Reading & { ts: number }>;
}

export interface CommandResultFrame {
  type: 'commandResult';
  commandId: number;
  status: CommandStatus;
  /** Result (usually JSON text) for succeeded, the reason for failed/rejected, empty for delivered. */
  detail: string;
}

export interface StatusFrame {
  type: 'status';
  dropped: number;
}

// ---- hub -> device ----

export interface WelcomeFrame {
  type: 'welcome';
  serverTime: number;
  /** Highest seq of this device's epoch that the hub holds durably (0 = none). Resume after it. */
  ackedSeq: number;
  heartbeatMs: number;
  maxFrameBytes: number;
  maxBatch: number;
  /** Readings per second the hub accepts from this device on average. */
  maxRate: number;
}

export interface AckFrame {
  type: 'ack';
  /** Cumulative: every reading with seq <= this one is durable or was rejected (see ERROR). */
  seq: number;
}

export interface CommandFrame {
  type: 'command';
  commandId: number;
  name: string;
  /** Arguments as JSON text ('' = none). */
  args: string;
  /** How long the device has to report a final status, ms. */
  timeoutMs: number;
}

export interface ErrorFrame {
  type: 'error';
  /** Stable string code from the registry (errors.ts); unknown wire codes decode as `UNKNOWN_<n>`. */
  code: string;
  /** Seq of the reading concerned, 0 = not about a reading. */
  seq: number;
  /** Alias of the value concerned, null = the whole frame/reading. */
  alias: number | null;
  message: string;
}

export interface BackoffFrame {
  type: 'backoff';
  code: string;
  /** The device sends no readings for this long, then resends everything unacked, oldest first. */
  pauseMs: number;
}

export type DeviceFrame = HelloFrame | ReadingFrame | BatchFrame | CommandResultFrame | StatusFrame;
export type HubFrame = WelcomeFrame | AckFrame | CommandFrame | ErrorFrame | BackoffFrame;
export type Frame = DeviceFrame | HubFrame;

/**
 * Delta state of one connection (protocol §5.1). Sequence numbers and timestamps of readings travel
 * as signed deltas from the previous reading on the same connection. Both ends start a connection with
 * `{ prevSeq: WELCOME.ackedSeq, prevTs: HELLO.clock }`. The codec advances it only on success.
 */
export interface DeltaContext {
  prevSeq: number;
  prevTs: number;
}

export function newDeltaContext(ackedSeq = 0, clock = 0): DeltaContext {
  return { prevSeq: ackedSeq, prevTs: clock };
}
