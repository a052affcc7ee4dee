/**
 * §9.2 Limits: every field of Limits has its own tests showing the default and a smaller configured value
 * enforced on both sides — the decoder refuses bytes over the limit, the encoder refuses (or, for ERROR
 * messages, cuts) values over it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import {
  decodeDeviceFrame,
  decodeHubFrame,
  DEFAULT_LIMITS,
  encodeDeviceFrame,
  encodeHubFrame,
  FrameError,
  newDeltaContext,
  resolveLimits,
  type DeviceFrame,
  type Frame,
  type HelloFrame,
  type HubFrame,
  type Limits,
  type MetricDeclaration,
  type ProtocolErrorCode,
} from '@tendril/device-sdk/codec';

interface LimitCase {
  /** What the case exercises, when a limit has several uses. */
  label: string;
  limit: keyof Limits;
  /** A configured value below the default. */
  small: number;
  code: ProtocolErrorCode;
  direction: 'device' | 'hub';
  /** A frame whose limited quantity is exactly n. */
  build: (n: number) => Frame;
  /** Other limits to lift so that frames for this limit can be built at all. */
  relax?: Partial<Limits>;
}

const hello = (over: Partial<HelloFrame> = {}): HelloFrame => ({
  type: 'hello',
  deviceId: 'env-1',
  token: 'secret',
  firmware: '1.0',
  sdk: 'ts',
  epoch: 1,
  lastSeq: 0,
  clock: 0,
  dropped: 0,
  metrics: [{ alias: 0, name: 'temperature', kind: 'f32', unit: '°C' }],
  ...over,
});
const metrics = (n: number): MetricDeclaration[] =>
  Array.from({ length: n }, (_, i) => ({ alias: i, name: `m${i}`, kind: 'bool', unit: '' }));
const bools = (n: number) =>
  Array.from({ length: n }, (_, alias) => ({ alias, kind: 'bool' as const, value: alias % 2 === 0 }));
const varintLength = (n: number) => (n < 128 ? 1 : n < 16_384 ? 2 : 3);
/** Length L of a string field such that `fixed` other bytes + varint(L) + L = total. */
function stringLengthForTotal(total: number, fixed: number): number {
  let len = total - fixed - 1;
  while (fixed + varintLength(len) + len > total) len--;
  if (fixed + varintLength(len) + len !== total) throw new Error(`no string length gives a ${total}-byte frame`);
  return len;
}

const cases: LimitCase[] = [
  {
    label: 'device frames (COMMAND_RESULT padded to n bytes)',
    limit: 'maxFrameBytes',
    small: 100,
    code: 'FRAME_TOO_LARGE',
    direction: 'device',
    relax: { maxDetailBytes: 1 << 20 },
    // type + commandId + status = 3 fixed bytes.
    build: (n) => ({
      type: 'commandResult',
      commandId: 1,
      status: 'succeeded',
      detail: 'x'.repeat(stringLengthForTotal(n, 3)),
    }),
  },
  {
    label: 'hub frames (COMMAND padded to n bytes)',
    limit: 'maxFrameBytes',
    small: 100,
    code: 'FRAME_TOO_LARGE',
    direction: 'hub',
    relax: { maxCommandArgsBytes: 1 << 20 },
    // type + commandId + name (1 + 2) + timeoutMs (1) = 6 fixed bytes.
    build: (n) => ({
      type: 'command',
      commandId: 1,
      name: 'go',
      args: 'a'.repeat(stringLengthForTotal(n, 6)),
      timeoutMs: 1,
    }),
  },
  {
    label: 'HELLO.deviceId',
    limit: 'maxDeviceIdBytes',
    small: 8,
    code: 'STRING_TOO_LONG',
    direction: 'device',
    build: (n) => hello({ deviceId: 'd'.repeat(n) }),
  },
  {
    label: 'HELLO.token',
    limit: 'maxTokenBytes',
    small: 16,
    code: 'STRING_TOO_LONG',
    direction: 'device',
    build: (n) => hello({ token: 't'.repeat(n) }),
  },
  {
    label: 'HELLO.firmware',
    limit: 'maxVersionBytes',
    small: 4,
    code: 'STRING_TOO_LONG',
    direction: 'device',
    build: (n) => hello({ firmware: 'f'.repeat(n) }),
  },
  {
    label: 'HELLO.sdk',
    limit: 'maxVersionBytes',
    small: 4,
    code: 'STRING_TOO_LONG',
    direction: 'device',
    build: (n) => hello({ sdk: 's'.repeat(n) }),
  },
  {
    label: 'metric name',
    limit: 'maxMetricNameBytes',
    small: 10,
    code: 'STRING_TOO_LONG',
    direction: 'device',
    build: (n) => hello({ metrics: [{ alias: 0, name: 'm'.repeat(n), kind: 'int', unit: '' }] }),
  },
  {
    label: 'metric unit (UTF-8 bytes: "°" is 2)',
    limit: 'maxUnitBytes',
    small: 4,
    code: 'STRING_TOO_LONG',
    direction: 'device',
    build: (n) =>
      hello({
        metrics: [
          { alias: 0, name: 'temperature', kind: 'f32', unit: '°'.repeat(Math.floor(n / 2)) + 'C'.repeat(n % 2) },
        ],
      }),
  },
  {
    label: 'declarations in HELLO',
    limit: 'maxMetrics',
    small: 3,
    code: 'TOO_MANY_METRICS',
    direction: 'device',
    build: (n) => hello({ metrics: metrics(n) }),
  },
  {
    label: 'values in a READING',
    limit: 'maxMetrics',
    small: 3,
    code: 'TOO_MANY_METRICS',
    direction: 'device',
    build: (n) => ({ type: 'reading', seq: 1, ts: 1_000, values: bools(n) }),
  },
  {
    label: 'values in a BATCH entry',
    limit: 'maxMetrics',
    small: 3,
    code: 'TOO_MANY_METRICS',
    direction: 'device',
    build: (n) => ({ type: 'batch', readings: [{ seq: 1, ts: 1_000, values: bools(n) }] }),
  },
  {
    label: 'alias in a declaration',
    limit: 'maxAlias',
    small: 15,
    code: 'INVALID_FIELD',
    direction: 'device',
    build: (n) => hello({ metrics: [{ alias: n, name: 'temperature', kind: 'f32', unit: '' }] }),
  },
  {
    label: 'alias in a value tag',
    limit: 'maxAlias',
    small: 15,
    code: 'INVALID_FIELD',
    direction: 'device',
    build: (n) => ({ type: 'reading', seq: 1, ts: null, values: [{ alias: n, kind: 'int', value: -3 }] }),
  },
  {
    label: 'STRING value',
    limit: 'maxStringValueBytes',
    small: 8,
    code: 'STRING_TOO_LONG',
    direction: 'device',
    build: (n) => ({ type: 'reading', seq: 1, ts: null, values: [{ alias: 0, kind: 'string', value: 'v'.repeat(n) }] }),
  },
  {
    label: 'readings in a BATCH',
    limit: 'maxBatch',
    small: 4,
    code: 'BATCH_TOO_LARGE',
    direction: 'device',
    build: (n) => ({
      type: 'batch',
      readings: Array.from({ length: n }, (_, i) => ({ seq: i + 1, ts: 1_000 + i, values: bools(1) })),
    }),
  },
  {
    label: 'COMMAND.name',
    limit: 'maxCommandNameBytes',
    small: 5,
    code: 'STRING_TOO_LONG',
    direction: 'hub',
    build: (n) => ({ type: 'command', commandId: 1, name: 'n'.repeat(n), args: '', timeoutMs: 1000 }),
  },
  {
    label: 'COMMAND.args',
    limit: 'maxCommandArgsBytes',
    small: 10,
    code: 'STRING_TOO_LONG',
    direction: 'hub',
    build: (n) => ({ type: 'command', commandId: 1, name: 'set', args: 'a'.repeat(n), timeoutMs: 1000 }),
  },
  {
    label: 'COMMAND_RESULT.detail',
    limit: 'maxDetailBytes',
    small: 10,
    code: 'STRING_TOO_LONG',
    direction: 'device',
    build: (n) => ({ type: 'commandResult', commandId: 1, status: 'failed', detail: 'd'.repeat(n) }),
  },
];

function encode(c: LimitCase, frame: Frame, limits: Partial<Limits>): Uint8Array {
  return c.direction === 'device'
    ? encodeDeviceFrame(frame as DeviceFrame, newDeltaContext(), limits)
    : encodeHubFrame(frame as HubFrame, limits);
}
function decode(c: LimitCase, bytes: Uint8Array, limits: Partial<Limits>): Frame {
  return c.direction === 'device' ? decodeDeviceFrame(bytes, newDeltaContext(), limits) : decodeHubFrame(bytes, limits);
}
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof FrameError ? err.code : `not a FrameError: ${String(err)}`;
  }
  return 'no error';
}

/** At the limit both sides accept; one over it both sides refuse with the case's code. */
function expectEnforced(c: LimitCase, value: number, configured: Partial<Limits>) {
  const limits = { ...c.relax, ...configured };
  const atLimit = c.build(value);
  const bytes = encode(c, atLimit, limits);
  expect(decode(c, bytes, limits), `${c.label} at ${value} decodes`).toEqual(atLimit);

  const over = c.build(value + 1);
  expect(
    codeOf(() => encode(c, over, limits)),
    `encoding ${c.label} at ${value + 1}`,
  ).toBe(c.code);
  // Bytes over the limit, made by an encoder configured more generously.
  const overBytes = encode(c, over, { ...c.relax, [c.limit]: (value + 1) * 4 + 64 });
  expect(
    codeOf(() => decode(c, overBytes, limits)),
    `decoding ${c.label} at ${value + 1}`,
  ).toBe(c.code);
}

describe.each(cases.map((c) => [c.limit, c.label, c] as const))('§9.2 %s — %s', (limit, _label, c) => {
  test(`the default (${DEFAULT_LIMITS[limit]}) is enforced when nothing is configured`, () => {
    expectEnforced(c, DEFAULT_LIMITS[limit], {});
  });

  test(`a smaller configured value (${c.small}) is enforced`, () => {
    expect(c.small).toBeLessThan(DEFAULT_LIMITS[limit]);
    expectEnforced(c, c.small, { [limit]: c.small });
    // ... and what the default allows no longer passes.
    const overSmall = c.build(c.small + 1);
    expect(codeOf(() => decode(c, encode(c, overSmall, { ...c.relax }), { ...c.relax, [limit]: c.small }))).toBe(
      c.code,
    );
  });
});

describe('§9.2 maxMessageBytes (ERROR.message)', () => {
  const error = (message: string): HubFrame => ({ type: 'error', code: 'OUT_OF_RANGE', seq: 7, alias: 0, message });
  const decodedMessage = (bytes: Uint8Array, limits?: Partial<Limits>) =>
    (decodeHubFrame(bytes, limits) as { message: string }).message;

  test(`the default (${DEFAULT_LIMITS.maxMessageBytes}) is enforced: the decoder refuses, the encoder cuts to fit`, () => {
    const max = DEFAULT_LIMITS.maxMessageBytes;
    expect(decodedMessage(encodeHubFrame(error('m'.repeat(max))))).toBe('m'.repeat(max));
    // §7.6: a sender cuts the message instead of failing to say why.
    expect(decodedMessage(encodeHubFrame(error('m'.repeat(max + 50))))).toBe('m'.repeat(max));
    const overBytes = encodeHubFrame(error('m'.repeat(max + 1)), { maxMessageBytes: max + 1 });
    expect(codeOf(() => decodeHubFrame(overBytes))).toBe('STRING_TOO_LONG');
  });

  test('a smaller configured value (10) is enforced, cutting at a character boundary', () => {
    const limits = { maxMessageBytes: 10 };
    expect(decodedMessage(encodeHubFrame(error('0123456789'), limits), limits)).toBe('0123456789');
    expect(decodedMessage(encodeHubFrame(error('012345678°'), limits), limits)).toBe('012345678'); // "°" would straddle bytes 10-11
    expect(codeOf(() => decodeHubFrame(encodeHubFrame(error('m'.repeat(11))), limits))).toBe('STRING_TOO_LONG');
  });
});

describe('resolveLimits', () => {
  test('covers every Limits field with a test above', () => {
    const tested = new Set<string>([...cases.map((c) => c.limit), 'maxMessageBytes']);
    expect([...Object.keys(DEFAULT_LIMITS)].sort()).toEqual([...tested].sort());
  });

  test('an option given as undefined keeps its default (a config object with unset fields must not lift the limit)', () => {
    expect(resolveLimits({ maxFrameBytes: undefined }).maxFrameBytes).toBe(DEFAULT_LIMITS.maxFrameBytes);
    const big = new Uint8Array(DEFAULT_LIMITS.maxFrameBytes + 1).fill(0x06);
    expect(codeOf(() => decodeDeviceFrame(big, newDeltaContext(), { maxFrameBytes: undefined }))).toBe(
      'FRAME_TOO_LARGE',
    );
  });

  test('a limit that is not a non-negative integer, or an unknown limit, is a configuration error', () => {
    expect(() => resolveLimits({ maxBatch: -1 })).toThrow(RangeError);
    expect(() => resolveLimits({ maxBatch: 1.5 })).toThrow(RangeError);
    expect(() => resolveLimits({ maxBatch: Number.NaN })).toThrow(RangeError);
    expect(() => resolveLimits({ maxBatchSize: 3 } as Partial<Limits>)).toThrow(RangeError);
  });

  test('the defaults are frozen and a resolved copy does not change them', () => {
    expect(Object.isFrozen(DEFAULT_LIMITS)).toBe(true);
    const custom = resolveLimits({ maxBatch: 3 });
    expect(custom.maxBatch).toBe(3);
    expect(DEFAULT_LIMITS.maxBatch).toBe(256);
  });

  test('the defaults are the ones docs/protocol.md §9.2 lists', () => {
    const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('### §9.2 '), doc.indexOf('## §10 '));
    const documented: Record<string, number> = {};
    for (const m of section.matchAll(/^\| (max\w+) \| (\d+) \|/gm)) documented[m[1]!] = Number(m[2]);
    expect(documented).toEqual({ ...DEFAULT_LIMITS });
  });
});
