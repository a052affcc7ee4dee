/** Primitive encodings (protocol §2): LEB128 varints, zigzag, little-endian floats, length-prefixed UTF-8. */
import { FrameError, type ProtocolErrorCode } from './errors.js';

const MAX_VARINT_BYTES = 8; // 8 * 7 = 56 bits > 53: enough for every safe integer.
/** §2.3: a signed varint's zigzag form must fit a varint (<= 2^53-1), so the signed range is -2^52..2^52-1. */
const SVARINT_MIN = -(2 ** 52);
const SVARINT_MAX = 2 ** 52 - 1;
// ignoreBOM: a leading U+FEFF is string content (§2.5), not a byte-order mark to strip.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();
/** With the u flag this matches only unpaired surrogates: a well-formed pair is one code point. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** §2.3: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ... */
export function zigzag(n: number): number {
  // Arithmetic, not bitwise: values go beyond 32 bits.
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

export function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

/** Reads the primitives of §2 that every frame uses: bytes, varints, strings. */
export class ByteReader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  fail(code: ProtocolErrorCode, message: string): never {
    throw new FrameError(code, message, this.pos);
  }

  need(n: number, what: string): void {
    if (this.bytes.length - this.pos < n) {
      this.fail(
        'FRAME_TRUNCATED',
        `frame ends inside ${what}: need ${n} byte(s) at offset ${this.pos}, have ${this.remaining}`,
      );
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++]!;
  }

  varint(what: string): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= this.bytes.length) this.fail('FRAME_TRUNCATED', `frame ends inside varint ${what}`);
      const b = this.bytes[this.pos++]!;
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (result > Number.MAX_SAFE_INTEGER) this.fail('VARINT_OVERFLOW', `varint ${what} exceeds 2^53-1`);
        return result;
      }
      scale *= 128;
    }
    return this.fail('VARINT_OVERFLOW', `varint ${what} is longer than ${MAX_VARINT_BYTES} bytes`);
  }

  string(what: string, maxBytes: number): string {
    const start = this.pos;
    const len = this.varint(`${what} length`);
    if (len > maxBytes) {
      this.pos = start;
      this.fail('STRING_TOO_LONG', `${what} is ${len} bytes, limit ${maxBytes}`);
    }
    this.need(len, what);
    const slice = this.bytes.subarray(this.pos, this.pos + len);
    let s: string;
    try {
      s = utf8Decoder.decode(slice);
    } catch {
      this.fail('INVALID_UTF8', `${what} is not valid UTF-8`);
    }
    this.pos += len;
    return s;
  }
}

/**
 * Adds the primitives only device frames carry: signed varints (reading deltas, INT values) and floats
 * (values, HELLO ranges). Hub frames have none, so a device that decodes hub frames does not ship these.
 */
export class DeviceFrameReader extends ByteReader {
  private view: DataView;
  constructor(bytes: Uint8Array) {
    super(bytes);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  svarint(what: string): number {
    return unzigzag(this.varint(what));
  }

  f32(what: string): number {
    this.need(4, what);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f64(what: string): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
}

/**
 * The encoders' one way to refuse input: `${what}: ${problem}`, e.g. "alias 1024: not in 0..1023". A FrameError
 * rather than a RangeError or TypeError: encoders report bad input with the decoder's codes (§9.1).
 */
export function refuse(what: string, problem: string, code: ProtocolErrorCode = 'INVALID_FIELD'): never {
  throw new FrameError(code, `${what}: ${problem}`);
}

/** Builds a frame in a buffer that doubles as it fills. */
export class ByteWriter {
  private buf = new Uint8Array(64);
  /**
   * Made by the first float only: a DataView needs the array's ArrayBuffer, which for a small array V8 then
   * moves off its heap (an allocation of its own), and most frames (every hub frame) carry no float.
   */
  private view: DataView | null = null;
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf);
    this.buf = next;
    this.view = null;
  }

  u8(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** §2.2 */
  varint(n: number, what: string): void {
    if (!Number.isSafeInteger(n) || n < 0) refuse(`${what} ${n}`, 'not an integer 0..2^53-1');
    this.ensure(MAX_VARINT_BYTES);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  /** §2.3 */
  svarint(n: number, what: string): void {
    if (!Number.isInteger(n) || n < SVARINT_MIN || n > SVARINT_MAX)
      refuse(`${what} ${n}`, 'not an integer -2^52..2^52-1');
    this.varint(zigzag(n), what);
  }

  /** §2.4: little-endian IEEE 754, 4 or 8 bytes. */
  float(v: number, size: 4 | 8): void {
    this.ensure(size);
    const view = (this.view ??= new DataView(this.buf.buffer));
    if (size === 4) view.setFloat32(this.pos, v, true);
    else view.setFloat64(this.pos, v, true);
    this.pos += size;
  }

  /** §2.5 */
  string(s: string, what: string, maxBytes: number): void {
    // A lone surrogate has no UTF-8 form; TextEncoder would silently send U+FFFD instead.
    if (LONE_SURROGATE.test(s)) refuse(what, 'unpaired UTF-16 surrogate', 'INVALID_UTF8');
    const bytes = utf8Encoder.encode(s);
    if (bytes.length > maxBytes) refuse(what, `${bytes.length} bytes, limit ${maxBytes}`, 'STRING_TOO_LONG');
    this.varint(bytes.length, what);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** The frame, refused when it is larger than the frame limit (§9.2). */
  finish(maxFrameBytes: number): Uint8Array {
    if (this.pos > maxFrameBytes) refuse('frame', `${this.pos} bytes, limit ${maxFrameBytes}`, 'FRAME_TOO_LARGE');
    return this.buf.slice(0, this.pos);
  }
}
