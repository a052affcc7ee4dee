/**
 * Unit tests of the codec's primitives and its encoder/decoder contracts (docs/protocol.md §2, §5, §9.1).
 * Frame layouts are covered field by field by the golden vectors (vectors.test.ts); this file covers the
 * edges the vectors do not: varint boundaries, zigzag range, UTF-8 corner cases, the delta context on
 * failure, and that encoders refuse bad input with a FrameError instead of another exception.
 */
import { describe, expect, test } from 'vitest';
import {
  decodeDeviceFrame,
  decodeHubFrame,
  encodeDeviceFrame,
  encodeHubFrame,
  FrameError,
  newDeltaContext,
  truncateUtf8,
  unzigzag,
  zigzag,
  type DeviceFrame,
  type HubFrame,
  type ProtocolErrorCode,
} from '@tendril/device-sdk/codec';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

function codeOf(fn: () => unknown): ProtocolErrorCode | string {
  try {
    fn();
  } catch (err) {
    if (err instanceof FrameError) return err.code;
    return `not a FrameError: ${String(err)}`;
  }
  return 'no error';
}

/** STATUS (0x06) is a type byte and one varint: the simplest frame to carry a varint under test. */
const statusFrame = (dropped: number): DeviceFrame => ({ type: 'status', dropped });
const encodeStatus = (dropped: number) => hex(encodeDeviceFrame(statusFrame(dropped), newDeltaContext()));
const decodeStatus = (h: string) => decodeDeviceFrame(bytes(h), newDeltaContext());

describe('§2.2 varint', () => {
  test.each([
    [0, '00'],
    [1, '01'],
    [127, '7f'],
    [128, '8001'],
    [300, 'ac02'],
    [16_383, 'ff7f'],
    [16_384, '808001'],
    [2 ** 32 - 1, 'ffffffff0f'],
  ])('%d encodes minimally', (n, expected) => {
    expect(encodeStatus(n)).toBe('06' + expected);
    expect(decodeStatus('06' + expected)).toEqual(statusFrame(n));
  });

  test('2^49-1 takes 7 bytes and 2^53-1 (the largest) takes 8', () => {
    expect(encodeStatus(2 ** 49 - 1)).toBe('06' + 'ff'.repeat(6) + '7f');
    expect(encodeStatus(Number.MAX_SAFE_INTEGER)).toBe('06' + 'ff'.repeat(7) + '0f');
    expect(decodeStatus('06' + 'ff'.repeat(7) + '0f')).toEqual(statusFrame(Number.MAX_SAFE_INTEGER));
  });

  test('2^53 in 8 bytes is VARINT_OVERFLOW, not a rounded number', () => {
    expect(codeOf(() => decodeStatus('06' + '80'.repeat(7) + '10'))).toBe('VARINT_OVERFLOW');
    expect(codeOf(() => decodeStatus('06' + 'ff'.repeat(7) + '7f'))).toBe('VARINT_OVERFLOW');
  });

  test('a ninth byte is VARINT_OVERFLOW even when the value would be small', () => {
    expect(codeOf(() => decodeStatus('06' + '80'.repeat(8) + '00'))).toBe('VARINT_OVERFLOW');
  });

  test('a varint cut off by the end of the frame is FRAME_TRUNCATED (incomplete)', () => {
    let err: unknown;
    try {
      decodeStatus('06' + '80'.repeat(7));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FrameError);
    expect((err as FrameError).code).toBe('FRAME_TRUNCATED');
    expect((err as FrameError).incomplete).toBe(true);
  });

  test('non-minimal encodings up to 8 bytes are accepted (§2.2: a sender may patch a fixed-width varint)', () => {
    expect(decodeStatus('06 8000')).toEqual(statusFrame(0));
    expect(decodeStatus('06 ' + '81' + '80'.repeat(6) + '00')).toEqual(statusFrame(1));
  });

  test('encoders refuse negative, fractional and unsafe integers with INVALID_FIELD', () => {
    expect(codeOf(() => encodeStatus(-1))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeStatus(1.5))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeStatus(2 ** 53))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeStatus(Number.NaN))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeHubFrame({ type: 'ack', seq: -5 }))).toBe('INVALID_FIELD');
  });
});

describe('§2.3 zigzag', () => {
  test('maps signed to unsigned and back', () => {
    const pairs: Array<[number, number]> = [
      [0, 0],
      [-1, 1],
      [1, 2],
      [-2, 3],
      [2, 4],
      [-64, 127],
      [64, 128],
      [2 ** 52 - 1, 2 ** 53 - 2],
      [-(2 ** 52), 2 ** 53 - 1],
    ];
    for (const [n, z] of pairs) {
      expect(zigzag(n), `zigzag(${n})`).toBe(z);
      expect(unzigzag(z), `unzigzag(${z})`).toBe(n);
    }
  });

  const intReading = (value: number): DeviceFrame => ({
    type: 'reading',
    seq: 1,
    ts: null,
    values: [{ alias: 0, kind: 'int', value }],
  });

  test('INT values at the ends of the signed range -2^52..2^52-1 round-trip', () => {
    for (const value of [-(2 ** 52), 2 ** 52 - 1, -1, 0]) {
      const frame = intReading(value);
      const decoded = decodeDeviceFrame(encodeDeviceFrame(frame, newDeltaContext()), newDeltaContext());
      expect(decoded).toEqual(frame);
    }
  });

  test('an INT value outside -2^52..2^52-1 is refused by the encoder with INVALID_FIELD', () => {
    expect(codeOf(() => encodeDeviceFrame(intReading(2 ** 52), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(intReading(-(2 ** 52) - 1), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(intReading(Number.MAX_SAFE_INTEGER), newDeltaContext()))).toBe(
      'INVALID_FIELD',
    );
  });

  test('a timestamp delta beyond 2^52 is refused with INVALID_FIELD and leaves the context alone', () => {
    const ctx = newDeltaContext(0, 0);
    const frame: DeviceFrame = {
      type: 'reading',
      seq: 1,
      ts: 2 ** 52 + 10,
      values: [{ alias: 0, kind: 'bool', value: true }],
    };
    expect(codeOf(() => encodeDeviceFrame(frame, ctx))).toBe('INVALID_FIELD');
    expect(ctx).toEqual({ prevSeq: 0, prevTs: 0 });
  });
});

describe('§2.4 floats', () => {
  test('f32 and f64 are little-endian IEEE 754', () => {
    const frame: DeviceFrame = {
      type: 'reading',
      seq: 1,
      ts: null,
      values: [
        { alias: 0, kind: 'f32', value: 1 },
        { alias: 1, kind: 'f64', value: -2.5 },
      ],
    };
    expect(hex(encodeDeviceFrame(frame, newDeltaContext()))).toBe(
      '03 02 00 0000803f 09 00000000000004c0'.replace(/ /g, ''),
    );
  });

  test('NaN, infinities and -0 pass through the codec (the hub rejects non-finite values, §7.1)', () => {
    const values = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0];
    for (const kind of ['f32', 'f64'] as const) {
      const frame: DeviceFrame = {
        type: 'reading',
        seq: 1,
        ts: null,
        values: values.map((value, alias) => ({ alias, kind, value })),
      };
      const decoded = decodeDeviceFrame(encodeDeviceFrame(frame, newDeltaContext()), newDeltaContext());
      expect(decoded.type === 'reading' && decoded.values.map((v) => v.value)).toEqual(values);
      expect(decoded.type === 'reading' && Object.is(decoded.values[3]!.value, -0)).toBe(true);
    }
  });
});

describe('§2.5 strings', () => {
  const result = (detail: string): DeviceFrame => ({
    type: 'commandResult',
    commandId: 1,
    status: 'succeeded',
    detail,
  });
  const roundTrip = (f: DeviceFrame) => decodeDeviceFrame(encodeDeviceFrame(f, newDeltaContext()), newDeltaContext());

  test('a leading U+FEFF is data, not a byte-order mark: it survives the round trip', () => {
    expect(roundTrip(result('\uFEFFhello'))).toEqual(result('\uFEFFhello'));
    expect(decodeDeviceFrame(bytes('05 01 01 03 efbbbf'), newDeltaContext())).toEqual(result('\uFEFF'));
  });

  test('characters outside the BMP are 4 UTF-8 bytes and round-trip', () => {
    const encoded = encodeDeviceFrame(result('🌡'), newDeltaContext());
    expect(hex(encoded)).toBe('05010104f09f8ca1');
    expect(roundTrip(result('🌡 °C ✓'))).toEqual(result('🌡 °C ✓'));
  });

  test('a string with a lone surrogate cannot be UTF-8: the encoder refuses it with INVALID_UTF8', () => {
    expect(codeOf(() => encodeDeviceFrame(result('a\uD800b'), newDeltaContext()))).toBe('INVALID_UTF8');
    expect(codeOf(() => encodeDeviceFrame(result('\uDC00'), newDeltaContext()))).toBe('INVALID_UTF8');
  });

  test.each([
    ['overlong NUL', 'c080'],
    ['encoded surrogate U+D800', 'eda080'],
    ['above U+10FFFF', 'f4908080'],
    ['lone continuation byte', '80'],
    ['cut multi-byte sequence', 'e282'],
    ['0xff', 'ff'],
  ])('INVALID_UTF8: %s', (_name, payload) => {
    const len = (payload.length / 2).toString(16).padStart(2, '0');
    expect(codeOf(() => decodeDeviceFrame(bytes(`05 01 01 ${len} ${payload}`), newDeltaContext()))).toBe(
      'INVALID_UTF8',
    );
  });

  test('the length counts UTF-8 bytes, not characters', () => {
    // "°C" is 3 bytes: a limit of 2 bytes refuses it at both ends.
    const f = result('°C');
    expect(codeOf(() => encodeDeviceFrame(f, newDeltaContext(), { maxDetailBytes: 2 }))).toBe('STRING_TOO_LONG');
    const encoded = encodeDeviceFrame(f, newDeltaContext());
    expect(codeOf(() => decodeDeviceFrame(encoded, newDeltaContext(), { maxDetailBytes: 2 }))).toBe('STRING_TOO_LONG');
  });

  test('truncateUtf8 never splits a character and replaces lone surrogates', () => {
    expect(truncateUtf8('ab°', 3)).toBe('ab');
    expect(truncateUtf8('ab°', 4)).toBe('ab°');
    expect(truncateUtf8('🌡🌡', 7)).toBe('🌡');
    expect(truncateUtf8('x\uD800', 10)).toBe('x\uFFFD');
  });

  test('an ERROR message with a lone surrogate is still sent (the hub must always be able to say why)', () => {
    const frame: HubFrame = { type: 'error', code: 'INTERNAL_ERROR', seq: 0, alias: null, message: 'bad \uDFFF' };
    expect(decodeHubFrame(encodeHubFrame(frame))).toEqual({ ...frame, message: 'bad \uFFFD' });
  });
});

describe('§5.1 delta context', () => {
  const reading = (seq: number, ts: number | null): DeviceFrame => ({
    type: 'reading',
    seq,
    ts,
    values: [{ alias: 0, kind: 'bool', value: true }],
  });

  test('both ends advance the same way, untimed readings leave prevTs alone', () => {
    const tx = newDeltaContext(10, 1_000);
    const rx = newDeltaContext(10, 1_000);
    for (const f of [reading(11, 1_010), reading(12, null), reading(9, 990), reading(13, 1_500)]) {
      expect(decodeDeviceFrame(encodeDeviceFrame(f, tx), rx)).toEqual(f);
      expect(rx).toEqual(tx);
    }
    expect(tx).toEqual({ prevSeq: 13, prevTs: 1_500 });
  });

  test('a frame that fails to decode leaves the context untouched', () => {
    const ctx = newDeltaContext(5, 100);
    // BATCH of 2: first reading fine (seq 6, ts 101), second one truncated.
    expect(codeOf(() => decodeDeviceFrame(bytes('04 02 02 02 01 1c 02 02'), ctx))).toBe('FRAME_TRUNCATED');
    expect(ctx).toEqual({ prevSeq: 5, prevTs: 100 });
    // READING whose value tag is reserved, after a valid seq and ts.
    expect(codeOf(() => decodeDeviceFrame(bytes('02 02 02 06'), ctx))).toBe('INVALID_VALUE_TYPE');
    expect(ctx).toEqual({ prevSeq: 5, prevTs: 100 });
  });

  test('a frame that fails to encode leaves the context untouched', () => {
    const ctx = newDeltaContext(5, 100);
    const batch: DeviceFrame = {
      type: 'batch',
      readings: [
        { seq: 6, ts: 101, values: [{ alias: 0, kind: 'bool', value: true }] },
        { seq: 7, ts: 102, values: [] },
      ],
    };
    expect(codeOf(() => encodeDeviceFrame(batch, ctx))).toBe('EMPTY_READING');
    expect(ctx).toEqual({ prevSeq: 5, prevTs: 100 });
  });

  test('seq below 1 after the delta is INVALID_FIELD; so is a timestamp below 0', () => {
    expect(codeOf(() => decodeDeviceFrame(bytes('03 01 04'), newDeltaContext(1, 0)))).toBe('INVALID_FIELD'); // 1 + (-1) = 0
    expect(codeOf(() => decodeDeviceFrame(bytes('02 02 03 04'), newDeltaContext(0, 1)))).toBe('INVALID_FIELD'); // ts 1 + (-2)
    expect(codeOf(() => encodeDeviceFrame(reading(0, null), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(reading(1, -1), newDeltaContext()))).toBe('INVALID_FIELD');
  });
});

describe('encoders throw only FrameError for bad input', () => {
  test('unknown error code in ERROR/BACKOFF is INVALID_FIELD; UNKNOWN_<n> is sent as wire code n', () => {
    expect(codeOf(() => encodeHubFrame({ type: 'backoff', code: 'NO_SUCH_CODE', pauseMs: 1 }))).toBe('INVALID_FIELD');
    expect(hex(encodeHubFrame({ type: 'backoff', code: 'UNKNOWN_99', pauseMs: 1 }))).toBe('456301');
  });

  test('bad metric declarations', () => {
    const hello = (metrics: unknown): DeviceFrame =>
      ({
        type: 'hello',
        deviceId: 'd',
        token: 't',
        firmware: '',
        sdk: '',
        epoch: 1,
        lastSeq: 0,
        clock: 0,
        dropped: 0,
        metrics,
      }) as DeviceFrame;
    const m = { alias: 0, name: 'temp', kind: 'f32', unit: '' };
    expect(codeOf(() => encodeDeviceFrame(hello([{ ...m, alias: -1 }]), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(hello([{ ...m, kind: 'double' }]), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(hello([{ ...m, name: '1temp' }]), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(hello([m, { ...m, alias: 1 }]), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(hello([{ ...m, min: 2, max: 1 }]), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(hello([{ ...m, kind: 'bool', min: 0 }]), newDeltaContext()))).toBe(
      'INVALID_FIELD',
    );
    expect(codeOf(() => encodeDeviceFrame(hello([{ ...m, max: Number.POSITIVE_INFINITY }]), newDeltaContext()))).toBe(
      'INVALID_FIELD',
    );
    expect(
      codeOf(() => encodeDeviceFrame({ ...(hello([]) as object), epoch: 2 ** 32 } as DeviceFrame, newDeltaContext())),
    ).toBe('INVALID_FIELD');
  });

  test('value of the wrong JavaScript type for its kind is INVALID_FIELD', () => {
    const bad = (kind: string, value: unknown): DeviceFrame =>
      ({ type: 'reading', seq: 1, ts: null, values: [{ alias: 0, kind, value }] }) as DeviceFrame;
    expect(codeOf(() => encodeDeviceFrame(bad('f32', '1'), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(bad('int', 1.5), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(bad('bool', 1), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(bad('string', 1), newDeltaContext()))).toBe('INVALID_FIELD');
    expect(codeOf(() => encodeDeviceFrame(bad('u8', 1), newDeltaContext()))).toBe('INVALID_FIELD');
  });
});
