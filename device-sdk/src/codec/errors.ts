/**
 * The error-code registry of the tendril.v1 device protocol (docs/protocol.md §11).
 * Every code has a stable string name, a numeric wire code (ERROR/BACKOFF frames), the WebSocket close
 * code the hub uses when the error ends the connection (null = the connection stays open). The hub closes
 * with the string code as the close reason, so a client can tell e.g. AUTH_FAILED from REPLACED although
 * both close with 1008. Each code's line of meaning is in error-meanings.ts, apart, so that a device does
 * not ship the text; test/errors-registry.test.ts fails when a code here, or its meaning, is missing from
 * docs/protocol.md.
 */

export interface ErrorCodeInfo {
  code: string;
  wire: number;
  close: number | null;
}

function def<const C extends string>(code: C, wire: number, close: number | null) {
  return { code, wire, close } as const;
}

export const PROTOCOL_ERRORS = [
  // Frame decoding (§9.1). The codec throws these; the hub sends ERROR and closes.
  def('FRAME_TRUNCATED', 1, 1002),
  def('UNKNOWN_FRAME_TYPE', 2, 1002),
  def('TRAILING_BYTES', 3, 1002),
  def('VARINT_OVERFLOW', 4, 1002),
  def('INVALID_UTF8', 5, 1002),
  def('STRING_TOO_LONG', 6, 1002),
  def('INVALID_VALUE_TYPE', 7, 1002),
  def('TOO_MANY_METRICS', 8, 1002),
  def('BATCH_TOO_LARGE', 9, 1002),
  def('EMPTY_READING', 10, 1002),
  def('INVALID_FIELD', 11, 1002),
  def('FRAME_TOO_LARGE', 12, 1009),
  def('TEXT_FRAME', 13, 1003),
  def('UNEXPECTED_FRAME', 14, 1002),
  // Session (§6).
  def('AUTH_FAILED', 20, 1008),
  def('REPLACED', 21, 1008),
  def('HELLO_TIMEOUT', 22, 1008),
  def('HEARTBEAT_LOST', 23, null),
  def('SHUTTING_DOWN', 24, 1001),
  def('INTERNAL_ERROR', 25, 1011),
  def('TRY_AGAIN_LATER', 26, 1013),
  def('DEVICE_DISABLED', 27, 1008),
  def('AUTH_THROTTLED', 28, 1013),
  def('TOO_MANY_PINGS', 29, 1008),
  def('SLOW_CONSUMER', 60, null),
  // Reading validation (§7.1). Sent as ERROR with seq and alias; the connection stays open.
  def('UNKNOWN_ALIAS', 30, null),
  def('TYPE_MISMATCH', 31, null),
  def('OUT_OF_RANGE', 32, null),
  def('NOT_FINITE', 33, null),
  def('TIMESTAMP_OUT_OF_RANGE', 34, null),
  def('DUPLICATE_ALIAS', 35, null),
  // Flow control (§7.4). Sent in BACKOFF; readings are not acked and must be resent after the pause.
  def('RATE_LIMITED', 40, null),
  def('STORE_BUSY', 41, null),
  // Commands (§8).
  def('UNKNOWN_COMMAND_ID', 50, null),
] as const satisfies readonly ErrorCodeInfo[];

export type ProtocolErrorCode = (typeof PROTOCOL_ERRORS)[number]['code'];

// A linear search over 31 entries: codes are looked up only for ERROR and BACKOFF frames, and without
// lookup maps a device bundle carries nothing for the lookups it does not use.
export function errorInfo(code: string): ErrorCodeInfo | undefined {
  return PROTOCOL_ERRORS.find((e) => e.code === code);
}

export function wireCodeOf(code: string): number {
  const info = errorInfo(code);
  if (info) return info.wire;
  const m = /^UNKNOWN_(\d+)$/.exec(code);
  if (m) return Number(m[1]);
  throw new RangeError(`unknown error code ${code}`);
}

export function codeOfWire(wire: number): string {
  return PROTOCOL_ERRORS.find((e) => e.wire === wire)?.code ?? `UNKNOWN_${wire}`;
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
