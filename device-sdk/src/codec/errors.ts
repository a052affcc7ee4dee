/**
 * The error-code registry of the tendril.v1 device protocol (docs/protocol.md §11).
 * Every code has a stable string name, a numeric wire code (ERROR/BACKOFF frames), the WebSocket close
 * code the hub uses when the error ends the connection (null = the connection stays open), and a line
 * of meaning. The hub closes with the string code as the close reason, so a client can tell e.g.
 * AUTH_FAILED from REPLACED although both close with 1008.
 * test/errors-registry.test.ts fails when a code here is missing from docs/protocol.md.
 */

export interface ErrorCodeInfo {
  code: string;
  wire: number;
  close: number | null;
  meaning: string;
}

function def<const C extends string>(code: C, wire: number, close: number | null, meaning: string) {
  return { code, wire, close, meaning } as const;
}

export const PROTOCOL_ERRORS = [
  // Frame decoding (§9.1). The codec throws these; the hub sends ERROR and closes.
  def('FRAME_TRUNCATED', 1, 1002, 'The frame ended before a field was complete.'),
  def('UNKNOWN_FRAME_TYPE', 2, 1002, 'Byte 0 is not a frame type this side accepts.'),
  def('TRAILING_BYTES', 3, 1002, 'Bytes remain after the last field of the frame.'),
  def('VARINT_OVERFLOW', 4, 1002, 'A varint is longer than 8 bytes or exceeds 2^53-1.'),
  def('INVALID_UTF8', 5, 1002, 'A string field is not valid UTF-8.'),
  def('STRING_TOO_LONG', 6, 1002, 'A string field is longer than its limit.'),
  def('INVALID_VALUE_TYPE', 7, 1002, 'A value tag carries a reserved value type (6 or 7).'),
  def('TOO_MANY_METRICS', 8, 1002, 'HELLO declares more metrics, or a reading carries more values, than the limit.'),
  def('BATCH_TOO_LARGE', 9, 1002, 'A BATCH holds no readings or more than the limit.'),
  def('EMPTY_READING', 10, 1002, 'A reading carries no values.'),
  def('INVALID_FIELD', 11, 1002, 'A field is outside its domain (bad id characters, duplicate alias, seq < 1 after the delta, status out of range, ...).'),
  def('FRAME_TOO_LARGE', 12, 1009, 'The message is larger than the maximum frame size.'),
  def('TEXT_FRAME', 13, 1003, 'A text message arrived on the binary device channel.'),
  def('UNEXPECTED_FRAME', 14, 1002, 'A valid frame arrived in the wrong state (reading before WELCOME, a second HELLO).'),
  // Session (§6).
  def('AUTH_FAILED', 20, 1008, 'Unknown device or wrong token (the hub does not say which).'),
  def('REPLACED', 21, 1008, 'A newer connection for the same device id replaced this one; the SDK does not reconnect.'),
  def('HELLO_TIMEOUT', 22, 1008, 'No HELLO arrived within the handshake timeout.'),
  def('HEARTBEAT_LOST', 23, null, 'The hub terminated a connection that stopped answering pings (presence reason; no close frame).'),
  def('SHUTTING_DOWN', 24, 1001, 'The hub is shutting down; reconnect later.'),
  def('INTERNAL_ERROR', 25, 1011, 'The hub failed unexpectedly while handling this connection.'),
  def('TRY_AGAIN_LATER', 26, 1013, 'The hub cannot take this connection now (connection limit); reconnect with back-off.'),
  def('DEVICE_DISABLED', 27, 1008, 'The device exists but an operator disabled it.'),
  // Reading validation (§7.1). Sent as ERROR with seq and alias; the connection stays open.
  def('UNKNOWN_ALIAS', 30, null, 'The value names an alias that HELLO did not declare.'),
  def('TYPE_MISMATCH', 31, null, "The value's wire type does not fit the metric's declared kind."),
  def('OUT_OF_RANGE', 32, null, "The value lies outside the metric's declared min/max."),
  def('NOT_FINITE', 33, null, 'A float value is NaN or infinite.'),
  def('TIMESTAMP_OUT_OF_RANGE', 34, null, 'The timestamp is before 2000-01-01 or too far ahead of hub time.'),
  def('DUPLICATE_ALIAS', 35, null, 'The same alias appears twice in one reading; the later value is rejected.'),
  // Flow control (§7.4). Sent in BACKOFF; readings are not acked and must be resent after the pause.
  def('RATE_LIMITED', 40, null, 'The device sent readings faster than its rate limit.'),
  def('STORE_BUSY', 41, null, 'The hub cannot make readings durable now (store down and spool full).'),
  // Commands (§8).
  def('UNKNOWN_COMMAND_ID', 50, null, 'A COMMAND_RESULT names a command id the hub did not send to this device.'),
] as const satisfies readonly ErrorCodeInfo[];

export type ProtocolErrorCode = (typeof PROTOCOL_ERRORS)[number]['code'];

const byCode = new Map<string, ErrorCodeInfo>(PROTOCOL_ERRORS.map((e) => [e.code, e]));
const byWire = new Map<number, ErrorCodeInfo>(PROTOCOL_ERRORS.map((e) => [e.wire, e]));

export function errorInfo(code: string): ErrorCodeInfo | undefined {
  return byCode.get(code);
}

export function wireCodeOf(code: string): number {
  const info = byCode.get(code);
  if (info) return info.wire;
  const m = /^UNKNOWN_(\d+)$/.exec(code);
  if (m) return Number(m[1]);
  throw new RangeError(`unknown error code ${code}`);
}

export function codeOfWire(wire: number): string {
  return byWire.get(wire)?.code ?? `UNKNOWN_${wire}`;
}

/**
 * Thrown by the decoder. `incomplete` is true only for FRAME_TRUNCATED ("not enough bytes"); every other
 * code means "these bytes are invalid" and more bytes would not help.
 */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  readonly incomplete: boolean;
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    /** Byte offset in the frame where the problem was found. */
    readonly offset = -1,
  ) {
    super(message);
    this.incomplete = code === 'FRAME_TRUNCATED';
  }
}
