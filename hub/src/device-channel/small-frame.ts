/**
 * Small hub frames (ACK, BACKOFF, ERROR: at most 125 bytes) written to the device's TCP socket as one complete
 * WebSocket message, instead of through ws's Sender: that path corks the socket, writes the 2-byte header and
 * the payload as two buffered chunks and uncorks them into a writev, with several objects per frame. At 2 000
 * readings/s over 100 devices every reading gets an ACK of its own (docs/protocol.md §7.3.4), and that send path
 * was a tenth of the hub's allocation (issue 16). The bytes on the wire are the same (RFC 6455 §5.2: FIN,
 * binary opcode, unmasked, 7-bit length).
 *
 * It reads two internals of ws 8's WebSocket: `_socket` (the net.Socket) and `_sender._bufferedBytes` (bytes
 * the Sender holds back while it compresses or reads a Blob). Only when the Sender holds nothing back is a
 * direct write in order with every frame ws sent before; otherwise, or with a ws that lacks these fields, the
 * caller sends through ws.
 */
import { FrameType } from '@tendril/device-sdk/codec';
import type { WebSocket } from 'ws';

interface WsInternals {
  _socket?: { write(chunk: Buffer): boolean } | null;
  _sender?: { _bufferedBytes?: unknown } | null;
}

/** Longest payload that fits a 7-bit WebSocket length. */
export const SMALL_FRAME_MAX = 125;
const FIN_BINARY = 0x82;

/** The TCP socket under `socket` when a write to it is in order with what ws sent; null: use ws.send. */
export function directSocket(socket: WebSocket): { write(chunk: Buffer): boolean } | null {
  const ws = socket as unknown as WsInternals;
  const raw = ws._socket;
  return raw && ws._sender?._bufferedBytes === 0 ? raw : null;
}

/** Writes `payload` as one binary message straight to the socket; false if the caller must use ws.send. */
export function writeSmallFrame(socket: WebSocket, payload: Uint8Array): boolean {
  if (payload.length > SMALL_FRAME_MAX) return false;
  const raw = directSocket(socket);
  if (!raw) return false;
  const frame = Buffer.allocUnsafe(2 + payload.length);
  frame[0] = FIN_BINARY;
  frame[1] = payload.length;
  frame.set(payload, 2);
  raw.write(frame);
  return true;
}

/** Bytes of the WebSocket header in front of a small message's payload. */
export const SMALL_HEADER_BYTES = 2;

/**
 * ACK {seq} (docs/protocol.md §7.3: the frame type, then seq as a varint, §2.2) as a complete WebSocket
 * message, the same bytes as encodeHubFrame's ACK behind writeSmallFrame's header, built straight into one
 * buffer: at low rates every reading gets an ACK of its own (§7.3.4), and the codec's writer allocated twice
 * per frame. `seq` is a durable seq: a safe integer of at least 1.
 */
export function ackMessage(seq: number): Buffer {
  let varintBytes = 1;
  for (let v = seq; v >= 0x80; v = Math.floor(v / 128)) varintBytes++;
  const message = Buffer.allocUnsafe(SMALL_HEADER_BYTES + 1 + varintBytes);
  message[0] = FIN_BINARY;
  message[1] = 1 + varintBytes;
  message[2] = FrameType.ACK;
  let i = 3;
  let v = seq;
  while (v >= 0x80) {
    message[i++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  message[i] = v;
  return message;
}
