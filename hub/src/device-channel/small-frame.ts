/**
 * Small WebSocket messages (at most 125 bytes of payload: a 7-bit length) in both directions without ws's
 * per-frame machinery, on the device channel's hot path (issue 16). The bytes on the wire are the same
 * (RFC 6455 §5.2).
 *
 * Sending: small hub frames (ACK, BACKOFF, ERROR) are written to the device's TCP socket as one complete
 * message, instead of through ws's Sender: that path corks the socket, writes the 2-byte header and the payload
 * as two buffered chunks and uncorks them into a writev, with several objects per frame. At 2 000 readings/s
 * over 100 devices every reading gets an ACK of its own (docs/protocol.md §7.3.4), and that send path was a
 * tenth of the hub's allocation. It reads two internals of ws 8's WebSocket: `_socket` (the net.Socket) and
 * `_sender._bufferedBytes` (bytes the Sender holds back while it compresses or reads a Blob). Only when the
 * Sender holds nothing back is a direct write in order with every frame ws sent before; otherwise, or with a
 * ws that lacks these fields, the caller sends through ws.
 *
 * Receiving: see receiveSmallFrames.
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

/** The fields of ws 8's Receiver (a Writable) that tell it is between frames, with nothing held back. */
interface WsReceiverInternals {
  write(chunk: Buffer): boolean;
  writableLength: number;
  destroyed: boolean;
  _state?: unknown;
  _bufferedBytes?: unknown;
  _fragmented?: unknown;
  _errored?: unknown;
  _opcode?: unknown;
  _maxPayload?: unknown;
  _isServer?: unknown;
  _allowSynchronousEvents?: unknown;
  _binaryType?: unknown;
  [kSocket]?: WebSocket;
}

const kSocket = Symbol('tendril.smallFrameSocket');
/** ws's Receiver state between frames (GET_INFO). */
const RECEIVER_BETWEEN_FRAMES = 0;
const OPCODE_CLOSE = 0x08;
/** Header of a masked client frame with a 7-bit length: 2 bytes, then the 4-byte masking key. */
const MASKED_HEADER_BYTES = 6;

/**
 * Takes the device's small messages off ws's Receiver. A chunk the socket delivers that is exactly one whole
 * frame (FIN and binary with no RSV bit, masked as every client frame must be, a 7-bit length), while the
 * Receiver is between frames with nothing buffered, is unmasked in place and emitted as the WebSocket's
 * 'message' event, as ws would emit it (a view into the chunk, isBinary true). Every other chunk (two frames or
 * part of one, a control frame, a fragment, anything after a Close frame or an error, any frame ws would refuse,
 * a binaryType other than 'nodebuffer') goes to ws's Receiver unchanged: ws still enforces the protocol, and
 * what it emits is in order with what went past it. At 10 000 readings/s each reading is one frame in one chunk,
 * and ws's Writable, its parse loop and its two events per message were about 4.5 % of the hub's CPU
 * (docs/performance.md, "Device frames past ws's Receiver").
 *
 * It overrides the `write` of this socket's ws 8 Receiver, which ws's socket 'data' listener calls (nothing else
 * does while the socket is open), so ws's own listener handling (it stops reading after a Close frame or an
 * error) stays as it is. Returns false, and changes nothing, on a ws whose Receiver lacks the fields it reads,
 * or that defers its events (allowSynchronousEvents false; this path emits at once, as ws does by default).
 */
export function receiveSmallFrames(socket: WebSocket): boolean {
  const rx = (socket as unknown as { _receiver?: WsReceiverInternals | null })._receiver;
  if (
    !rx ||
    typeof rx.write !== 'function' ||
    typeof rx.writableLength !== 'number' ||
    rx._state !== RECEIVER_BETWEEN_FRAMES ||
    typeof rx._bufferedBytes !== 'number' ||
    typeof rx._fragmented !== 'number' ||
    typeof rx._errored !== 'boolean' ||
    rx._isServer !== true ||
    rx._allowSynchronousEvents !== true
  )
    return false;
  rx[kSocket] = socket;
  rx.write = writeToReceiver;
  return true;
}

/** The Receiver's write with the small-frame path in front (`this` is the Receiver; one function for all). */
function writeToReceiver(this: WsReceiverInternals, chunk: Buffer): boolean {
  const n = chunk.length;
  if (
    n >= MASKED_HEADER_BYTES &&
    n <= MASKED_HEADER_BYTES + SMALL_FRAME_MAX &&
    chunk[0] === FIN_BINARY &&
    chunk[1] === (0x80 | (n - MASKED_HEADER_BYTES)) &&
    this._state === RECEIVER_BETWEEN_FRAMES &&
    this._bufferedBytes === 0 &&
    this._fragmented === 0 &&
    this._errored === false &&
    this._opcode !== OPCODE_CLOSE &&
    this._binaryType === 'nodebuffer' &&
    this.writableLength === 0 &&
    !this.destroyed &&
    !(typeof this._maxPayload === 'number' && this._maxPayload > 0 && n - MASKED_HEADER_BYTES > this._maxPayload)
  ) {
    // The masking key is bytes 2-5 (RFC 6455 §5.3); the payload after it is unmasked in place, as ws does.
    for (let i = MASKED_HEADER_BYTES; i < n; i++) chunk[i] = chunk[i]! ^ chunk[2 + ((i - MASKED_HEADER_BYTES) & 3)]!;
    this[kSocket]!.emit('message', chunk.subarray(MASKED_HEADER_BYTES), true);
    return true;
  }
  return Object.getPrototypeOf(this).write.call(this, chunk);
}
