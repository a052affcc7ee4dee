/**
 * The one-line meaning of every tendril.v1 error code, as docs/protocol.md §11 documents it. Kept apart from
 * the runtime registry (errors.ts) so that a device bundle does not carry this text: the hub, the docs and
 * test/errors-registry.test.ts import it. The Record type makes a code without a meaning a compile error.
 */
import type { ProtocolErrorCode } from './errors.js';

export const PROTOCOL_ERROR_MEANINGS: Readonly<Record<ProtocolErrorCode, string>> = {
  // Frame decoding (§9.1). The codec throws these; the hub sends ERROR and closes.
  FRAME_TRUNCATED: 'The frame ended before a field was complete.',
  UNKNOWN_FRAME_TYPE: 'Byte 0 is not a frame type this side accepts.',
  TRAILING_BYTES: 'Bytes remain after the last field of the frame.',
  VARINT_OVERFLOW: 'A varint is longer than 8 bytes or exceeds 2^53-1.',
  INVALID_UTF8: 'A string field is not valid UTF-8.',
  STRING_TOO_LONG: 'A string field is longer than its limit.',
  INVALID_VALUE_TYPE: 'A value tag carries a reserved value type (6 or 7).',
  TOO_MANY_METRICS: 'HELLO declares more metrics, or a reading carries more values, than the limit.',
  BATCH_TOO_LARGE: 'A BATCH holds no readings or more than the limit.',
  EMPTY_READING: 'A reading carries no values.',
  INVALID_FIELD:
    'A field is outside its domain (bad id characters, duplicate alias, seq < 1 after the delta, status out of range, ...).',
  FRAME_TOO_LARGE: 'The message is larger than the maximum frame size.',
  TEXT_FRAME: 'A text message arrived on the binary device channel.',
  UNEXPECTED_FRAME: 'A valid frame arrived in the wrong state (reading before WELCOME, a second HELLO).',
  // Session (§6).
  AUTH_FAILED: 'Unknown device or wrong token (the hub does not say which).',
  REPLACED: 'A newer connection for the same device id replaced this one; the SDK does not reconnect.',
  HELLO_TIMEOUT: 'No HELLO arrived within the handshake timeout.',
  HEARTBEAT_LOST: 'The hub terminated a connection that stopped answering pings (presence reason; no close frame).',
  SHUTTING_DOWN: 'The hub is shutting down; reconnect later.',
  INTERNAL_ERROR: 'The hub failed unexpectedly while handling this connection.',
  TRY_AGAIN_LATER: 'The hub cannot take this connection now (connection limit); reconnect with back-off.',
  DEVICE_DISABLED: 'The device exists but an operator disabled it.',
  AUTH_THROTTLED:
    'Too many failed HELLOs from this address; the hub answers after a delay without checking the token. Reconnect with back-off.',
  TOO_MANY_PINGS: 'The device sent Pings faster than the hub could answer them.',
  SLOW_CONSUMER: 'The hub cut a connection that did not read what the hub sent (presence reason; no close frame).',
  // Reading validation (§7.1). Sent as ERROR with seq and alias; the connection stays open.
  UNKNOWN_ALIAS: 'The value names an alias that HELLO did not declare.',
  TYPE_MISMATCH: "The value's wire type does not fit the metric's declared kind.",
  OUT_OF_RANGE: "The value lies outside the metric's declared min/max.",
  NOT_FINITE: 'A float value is NaN or infinite.',
  TIMESTAMP_OUT_OF_RANGE: 'The timestamp is before 2000-01-01 or too far ahead of hub time.',
  DUPLICATE_ALIAS: 'The same alias appears twice in one reading; the later value is rejected.',
  // Flow control (§7.4). Sent in BACKOFF; readings are not acked and must be resent after the pause.
  RATE_LIMITED: 'The device sent readings faster than its rate limit.',
  STORE_BUSY: 'The hub cannot make readings durable now (store down and spool full, or durability falling behind).',
  // Commands (§8).
  UNKNOWN_COMMAND_ID: 'A COMMAND_RESULT names a command id the hub did not send to this device.',
};
