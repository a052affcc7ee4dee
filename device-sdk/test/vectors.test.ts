/**
 * Golden vectors (docs/vectors/tendril-v1.json, format in docs/protocol.md §14) run every way: each valid
 * vector decodes to `decoded` and moves the delta context to `contextAfter`, encodes back to its bytes,
 * and round-trips; its `fields` annotations add up to its hex; each invalid vector fails with its code.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import {
  decodeDeviceFrame,
  decodeHubFrame,
  encodeDeviceFrame,
  encodeHubFrame,
  FrameError,
  PROTOCOL_ERRORS,
  type DeltaContext,
  type DeviceFrame,
  type Frame,
  type HubFrame,
  type Limits,
} from '@tendril/device-sdk/codec';

interface ValidVector {
  name: string;
  clause: string;
  direction: 'device' | 'hub';
  context?: DeltaContext;
  contextAfter?: DeltaContext;
  limits?: Partial<Limits>;
  hex: string;
  reencoded?: string;
  fields: Array<[string, string]>;
  decoded: Record<string, unknown>;
}

interface InvalidVector {
  name: string;
  clause: string;
  direction: 'device' | 'hub';
  context?: DeltaContext;
  limits?: Partial<Limits>;
  hex: string;
  error: { code: string; incomplete: boolean };
}

const vectorsUrl = new URL('../../docs/vectors/tendril-v1.json', import.meta.url);
const file = JSON.parse(readFileSync(vectorsUrl, 'utf8')) as {
  protocol: string;
  valid: ValidVector[];
  invalid: InvalidVector[];
};
const protocolDoc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');

const bytes = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'));
const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** §14: floats JSON cannot hold are strings in `decoded`. */
const SPECIAL_FLOATS: Record<string, number> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
  '-0': -0,
};
function jsonFloat(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const f = SPECIAL_FLOATS[v];
  if (f === undefined) throw new Error(`"${v}" is not a special float spelling (§14)`);
  return f;
}

/** Turns a vector's `decoded` JSON into the codec's frame object. */
function toFrame(decoded: Record<string, unknown>): Frame {
  const frame = structuredClone(decoded) as Record<string, unknown>;
  const fixValues = (values: Array<{ kind: string; value: unknown }>) => {
    for (const v of values) if (v.kind === 'f32' || v.kind === 'f64') v.value = jsonFloat(v.value);
  };
  if (frame.type === 'reading') fixValues(frame.values as Array<{ kind: string; value: unknown }>);
  if (frame.type === 'batch')
    for (const r of frame.readings as Array<{ values: Array<{ kind: string; value: unknown }> }>) fixValues(r.values);
  if (frame.type === 'hello') {
    for (const m of frame.metrics as Array<Record<string, unknown>>) {
      if ('min' in m) m.min = jsonFloat(m.min);
      if ('max' in m) m.max = jsonFloat(m.max);
    }
  }
  return frame as unknown as Frame;
}

function decode(v: { direction: string; hex: string; limits?: Partial<Limits> }, ctx: DeltaContext): Frame {
  return v.direction === 'device'
    ? decodeDeviceFrame(bytes(v.hex), ctx, v.limits)
    : decodeHubFrame(bytes(v.hex), v.limits);
}

function encode(v: { direction: string; limits?: Partial<Limits> }, frame: Frame, ctx: DeltaContext): string {
  return hexOf(
    v.direction === 'device'
      ? encodeDeviceFrame(frame as DeviceFrame, ctx, v.limits)
      : encodeHubFrame(frame as HubFrame, v.limits),
  );
}

const startContext = (v: { context?: DeltaContext }): DeltaContext => ({ ...(v.context ?? { prevSeq: 0, prevTs: 0 }) });

describe('file shape', () => {
  test('is tendril.v1 and non-trivial', () => {
    expect(file.protocol).toBe('tendril.v1');
    expect(file.valid.length).toBeGreaterThan(25);
    expect(file.invalid.length).toBeGreaterThan(40);
  });

  test('names are unique', () => {
    const names = [...file.valid, ...file.invalid].map((v) => v.name);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
  });

  test('every cited clause exists as a heading in docs/protocol.md', () => {
    const headings = new Set([...protocolDoc.matchAll(/^#{2,3} (§\d+(?:\.\d+)?) /gm)].map((m) => m[1]));
    for (const v of [...file.valid, ...file.invalid])
      expect(headings.has(v.clause), `${v.name} cites ${v.clause}`).toBe(true);
  });

  test('hex is lowercase, even-length, and the direction fits the type byte (§3.1)', () => {
    for (const v of [...file.valid, ...file.invalid]) {
      expect(v.hex, v.name).toMatch(/^(?:[0-9a-f]{2})*$/);
      expect(['device', 'hub'], v.name).toContain(v.direction);
    }
    for (const v of file.valid) {
      const type = parseInt(v.hex.slice(0, 2), 16);
      expect(v.direction === 'device' ? type >= 0x01 && type <= 0x3f : type >= 0x41 && type <= 0x7f, v.name).toBe(true);
    }
  });
});

describe.each(file.valid.map((v) => [v.name, v] as const))('valid %s', (_name, v) => {
  test('the field annotations concatenate to the hex exactly', () => {
    for (const [slice, comment] of v.fields) {
      expect(slice, `slice "${comment}"`).toMatch(/^(?:[0-9a-f]{2})+$/);
      expect(comment.trim().length, `comment of ${slice}`).toBeGreaterThan(0);
    }
    expect(v.fields.map(([slice]) => slice).join('')).toBe(v.hex);
  });

  test('decodes to `decoded` and leaves the context at contextAfter', () => {
    const ctx = startContext(v);
    expect(decode(v, ctx)).toEqual(toFrame(v.decoded));
    if (v.contextAfter) expect(ctx).toEqual(v.contextAfter);
    else expect(ctx, 'frames without readings leave the context alone').toEqual(startContext(v));
  });

  test('encodes `decoded` to the hex and moves the context the same way', () => {
    const ctx = startContext(v);
    expect(encode(v, toFrame(v.decoded), ctx)).toBe(v.reencoded ?? v.hex);
    if (v.contextAfter) expect(ctx).toEqual(v.contextAfter);
  });

  test('round-trips: decode(encode(decoded)) is decoded', () => {
    const frame = toFrame(v.decoded);
    const encoded = encode(v, frame, startContext(v));
    expect(decode({ ...v, hex: encoded }, startContext(v))).toEqual(frame);
  });
});

describe.each(file.invalid.map((v) => [v.name, v] as const))('invalid %s', (_name, v) => {
  test(`fails with ${v.error.code}, incomplete=${v.error.incomplete}, context untouched`, () => {
    const ctx = startContext(v);
    let thrown: unknown;
    try {
      decode(v, ctx);
    } catch (err) {
      thrown = err;
    }
    expect(thrown, 'decoding must throw').toBeInstanceOf(FrameError);
    const err = thrown as FrameError;
    expect({ code: err.code, incomplete: err.incomplete }, err.message).toEqual(v.error);
    expect(ctx).toEqual(startContext(v));
  });
});

describe('coverage of the vectors', () => {
  const validTypes = new Set(file.valid.map((v) => v.hex.slice(0, 2)));

  test('every frame type has a valid vector', () => {
    for (const t of ['01', '02', '03', '04', '05', '06', '41', '42', '43', '44', '45'])
      expect(validTypes.has(t), `type 0x${t}`).toBe(true);
  });

  test('every value kind, both bools, every command status, negative deltas, ERROR with and without alias', () => {
    const values = file.valid.flatMap((v) => {
      const d = v.decoded as {
        values?: Array<{ kind: string; value: unknown }>;
        readings?: Array<{ values: Array<{ kind: string; value: unknown }> }>;
      };
      return [...(d.values ?? []), ...(d.readings ?? []).flatMap((r) => r.values)];
    });
    for (const kind of ['f32', 'f64', 'int', 'string'])
      expect(
        values.some((x) => x.kind === kind),
        kind,
      ).toBe(true);
    expect(values.some((x) => x.value === true) && values.some((x) => x.value === false)).toBe(true);
    const statuses = new Set(file.valid.map((v) => v.decoded.status).filter(Boolean));
    expect([...statuses].sort()).toEqual(['delivered', 'failed', 'rejected', 'succeeded']);
    expect(file.valid.some((v) => v.fields.some(([, c]) => /Delta .*svarint -/.test(c)))).toBe(true);
    const errors = file.valid.filter((v) => v.decoded.type === 'error');
    expect(errors.some((v) => v.decoded.alias === null) && errors.some((v) => v.decoded.alias !== null)).toBe(true);
  });

  test('every decoding error code (§9.1) has an invalid vector; INVALID_FIELD several causes', () => {
    const decodeCodes = PROTOCOL_ERRORS.filter((e) => e.wire >= 1 && e.wire <= 12).map((e) => e.code);
    const seen = file.invalid.map((v) => v.error.code);
    for (const code of decodeCodes) expect(seen, code).toContain(code);
    expect(seen.filter((c) => c === 'INVALID_FIELD').length).toBeGreaterThanOrEqual(10);
    for (const direction of ['device', 'hub']) expect(file.invalid.some((v) => v.direction === direction)).toBe(true);
  });
});
