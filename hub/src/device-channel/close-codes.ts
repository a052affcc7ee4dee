/**
 * The device channel's close codes and the limits of its WebSocket layer (protocol §6.5.5, §6.6, §9.2, §10):
 * what each bare close of the layer means, and the presence reason of a close the device made.
 */

/**
 * Pings the WebSocket layer answers before it waits for its Pongs to be written; more in one burst end the
 * connection with TOO_MANY_PINGS (app.ts passes it to ws as maxPendingAutoPongs). §6.5.5
 */
export const MAX_PENDING_PONGS = 16;
/** Message fragments the WebSocket layer takes for one message; more close 1009 FRAME_TOO_LARGE. §9.2, §6.6.7 */
export const MAX_FRAGMENTS = 64;
/** How long the hub waits for a device to answer its close frame before it ends the TCP connection. §6.6.6 */
export const CLOSE_HANDSHAKE_MS = 2000;

/** §10.1: what a bare close code from the WebSocket layer means, as a close code and reason. */
export const WS_LAYER_CLOSES: Record<number, { code: number; reason: string }> = {
  // Payload over maxFrameBytes, a length header above 2^53 - 1, or more than MAX_FRAGMENTS fragments.
  1009: { code: 1009, reason: 'FRAME_TOO_LARGE' },
  1008: { code: 1009, reason: 'FRAME_TOO_LARGE' },
  // A text message (or close reason) that is not UTF-8: on the binary device channel any text is an error.
  1007: { code: 1007, reason: 'TEXT_FRAME' },
  // Bad framing: reserved bits or opcodes, an unmasked client frame, a control frame too long or fragmented.
  1002: { code: 1002, reason: 'PROTOCOL_ERROR' },
};

/** Presence reasons for the WebSocket layer's error codes (the socket's 'error' event). */
export const WS_ERROR_REASONS: Record<string, string> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 'FRAME_TOO_LARGE',
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 'FRAME_TOO_LARGE',
  WS_ERR_TOO_MANY_BUFFERED_PARTS: 'FRAME_TOO_LARGE',
  WS_ERR_INVALID_UTF8: 'TEXT_FRAME',
};

/** Presence reason for a close the device started (or a dropped TCP connection). */
export function peerCloseReason(code: number): string {
  switch (code) {
    case 1000:
    case 1001:
    case 1005:
      return 'CLOSED';
    case 1006:
      return 'CONNECTION_LOST';
    case 1009:
      return 'FRAME_TOO_LARGE';
    default:
      return 'PROTOCOL_ERROR';
  }
}
