/**
 * Fuzzing the decoders (docs/protocol.md §9.1): random and mutated frames — bit flips, truncations,
 * insertions, deletions, splices, corrupted length and count fields — thrown at decodeDeviceFrame and
 * decodeHubFrame. Every failure must be a FrameError carrying a decoding code from the registry, with
 * `incomplete` only for FRAME_TRUNCATED and the delta context untouched; every success must re-encode and
 * decode to the same frame; and decoding must stay fast, also for the largest frames.
 *
 * The run is seeded and prints its seed; set TENDRIL_FUZZ_SEED=<seed> to replay a failure, and
 * TENDRIL_FUZZ_FRAMES=<n> to run longer.
 */
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, test } from 'vitest';
import {
  decodeDeviceFrame,
  decodeHubFrame,
  DEFAULT_LIMITS,
  encodeDeviceFrame,
  encodeHubFrame,
  FrameError,
  newDeltaContext,
  PROTOCOL_ERRORS,
  type DeltaContext,
  type DeviceFrame,
  type Frame,
  type HubFrame,
  type Limits,
} from '@tendril/device-sdk/codec';

const FRAMES = Number(process.env.TENDRIL_FUZZ_FRAMES ?? 100_000);
const SEED = Number(process.env.TENDRIL_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
/** Generous per-decode budget for the whole run: a hang or a quadratic path blows it by orders of magnitude. */
const BUDGET_US_PER_DECODE = 100;

/** The codes a decoder may throw: the "frame decoding" block of the registry (§9.1, §11). */
const DECODE_CODES = new Set<string>(PROTOCOL_ERRORS.filter((e) => e.wire >= 1 && e.wire <= 12).map((e) => e.code));

/** sfc32: small, fast, seedable; good enough to drive a fuzzer reproducibly. */
function prng(seed: number): () => number {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (a + b + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

interface Seed {
  bytes: Uint8Array;
  /** Byte ranges of length/count fields, from the vectors' field annotations. */
  lengthFields: Array<[number, number]>;
}

function loadSeeds(): Seed[] {
  const file = JSON.parse(readFileSync(new URL('../../docs/vectors/tendril-v1.json', import.meta.url), 'utf8')) as {
    valid: Array<{ hex: string; fields: Array<[string, string]> }>;
    invalid: Array<{ hex: string }>;
  };
  const seeds: Seed[] = file.valid.map((v) => {
    const lengthFields: Array<[number, number]> = [];
    let pos = 0;
    for (const [slice, comment] of v.fields) {
      const len = slice.length / 2;
      if (/length|count|Count/.test(comment)) lengthFields.push([pos, len]);
      pos += len;
    }
    return { bytes: new Uint8Array(Buffer.from(v.hex, 'hex')), lengthFields };
  });
  for (const v of file.invalid) seeds.push({ bytes: new Uint8Array(Buffer.from(v.hex, 'hex')), lengthFields: [] });
  return seeds;
}

const TYPE_BYTES = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x41, 0x42, 0x43, 0x44, 0x45];
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0x81, 0xff, 0xc0, 0xed, 0xef, 0xf4, 0x06, 0x07];
/** Varints a corrupted length/count field is replaced with. */
const INTERESTING_VARINTS: number[][] = [
  [0x00],
  [0x01],
  [0x7f],
  [0x80, 0x01],
  [0xff, 0x7f],
  [0x80, 0x80, 0x01],
  [0xff, 0xff, 0xff, 0xff, 0x0f],
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f],
  [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
  [0x80],
];

function makeFuzzer(rand: () => number, seeds: Seed[]) {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const randomBytes = (n: number) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const r = Math.floor(rand() * 4294967296);
      b[i] = r & 0xff;
      if (i + 1 < n) b[i + 1] = (r >>> 8) & 0xff;
      if (i + 2 < n) b[i + 2] = (r >>> 16) & 0xff;
      if (i + 3 < n) b[i + 3] = r >>> 24;
    }
    return b;
  };
  const concat = (...parts: ArrayLike<number>[]) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let pos = 0;
    for (const p of parts) {
      out.set(p, pos);
      pos += p.length;
    }
    return out;
  };

  function mutate(seed: Seed): Uint8Array {
    let b = seed.bytes.slice();
    const rounds = 1 + int(3);
    for (let r = 0; r < rounds; r++) {
      switch (int(8)) {
        case 0: // bit flips
          if (b.length) for (let i = 0, n = 1 + int(4); i < n; i++) b[int(b.length)]! ^= 1 << int(8);
          break;
        case 1: // truncation
          b = b.slice(0, int(b.length + 1));
          break;
        case 2: // insertion
          {
            const at = int(b.length + 1);
            b = concat(b.subarray(0, at), randomBytes(1 + int(8)), b.subarray(at));
          }
          break;
        case 3: // deletion of a range
          if (b.length) {
            const at = int(b.length);
            b = concat(b.subarray(0, at), b.subarray(at + 1 + int(4)));
          }
          break;
        case 4: // an interesting byte
          if (b.length) b[int(b.length)] = pick(INTERESTING_BYTES);
          break;
        case 5: // length/count field corruption
          if (seed.lengthFields.length) {
            const [at, len] = pick(seed.lengthFields);
            if (at + len <= b.length) b = concat(b.subarray(0, at), pick(INTERESTING_VARINTS), b.subarray(at + len));
          }
          break;
        case 6: // splice with another frame
          {
            const other = pick(seeds).bytes;
            b = concat(b.subarray(0, int(b.length + 1)), other.subarray(int(other.length + 1)));
          }
          break;
        default: // duplicate a slice
          if (b.length) {
            const at = int(b.length);
            const slice = b.subarray(at, at + 1 + int(16));
            b = concat(b.subarray(0, at), slice, b.subarray(at));
          }
      }
    }
    return b;
  }

  function randomFrame(): Uint8Array {
    const len = rand() < 0.95 ? int(48) : int(DEFAULT_LIMITS.maxFrameBytes + 64);
    const b = randomBytes(len);
    if (len && rand() < 0.8) b[0] = pick(TYPE_BYTES);
    return b;
  }

  const contexts: DeltaContext[] = [
    { prevSeq: 0, prevTs: 0 },
    { prevSeq: 10, prevTs: 1_732_233_600_000 },
    { prevSeq: Number.MAX_SAFE_INTEGER - 1, prevTs: Number.MAX_SAFE_INTEGER - 1 },
    { prevSeq: 1, prevTs: 1 },
  ];
  function context(): DeltaContext {
    return rand() < 0.9 ? { ...pick(contexts) } : { prevSeq: int(2 ** 40), prevTs: int(2 ** 45) };
  }

  /** Usually the defaults; sometimes small limits so that every limit path is hit too. */
  function limits(): Partial<Limits> | undefined {
    if (rand() < 0.85) return undefined;
    const out: Partial<Limits> = {};
    for (const key of Object.keys(DEFAULT_LIMITS) as Array<keyof Limits>)
      if (rand() < 0.3) out[key] = int(DEFAULT_LIMITS[key] + 1);
    return out;
  }

  return { frame: () => (rand() < 0.75 ? mutate(pick(seeds)) : randomFrame()), context, limits };
}

type Outcome = { ok: true; frame: Frame } | { ok: false; code: string };

function checkFailure(err: unknown, bytes: Uint8Array): string | null {
  if (!(err instanceof FrameError))
    return `threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}, not a FrameError`;
  if (!DECODE_CODES.has(err.code)) return `threw code ${err.code}, not a decoding code`;
  if (err.incomplete !== (err.code === 'FRAME_TRUNCATED')) return `${err.code} with incomplete=${err.incomplete}`;
  if (typeof err.message !== 'string' || err.message.length === 0) return `${err.code} without a message`;
  if (!Number.isInteger(err.offset) || err.offset < -1 || err.offset > bytes.length)
    return `${err.code} with offset ${err.offset}`;
  return null;
}

/** decode(encode(frame)) must give the frame back, and move the context the same way. */
function checkRoundTrip(
  frame: Frame,
  side: 'device' | 'hub',
  ctxBefore: DeltaContext,
  ctxAfter: DeltaContext,
  limits?: Partial<Limits>,
): string | null {
  try {
    if (side === 'device') {
      const encodeCtx = { ...ctxBefore };
      const bytes = encodeDeviceFrame(frame as DeviceFrame, encodeCtx, limits);
      if (!isDeepStrictEqual(encodeCtx, ctxAfter))
        return `encoder moved the context to ${JSON.stringify(encodeCtx)}, decoder to ${JSON.stringify(ctxAfter)}`;
      const again = decodeDeviceFrame(bytes, { ...ctxBefore }, limits);
      if (!isDeepStrictEqual(again, frame)) return 'decode(encode(frame)) differs from frame';
    } else {
      const again = decodeHubFrame(encodeHubFrame(frame as HubFrame, limits), limits);
      if (!isDeepStrictEqual(again, frame)) return 'decode(encode(frame)) differs from frame';
    }
  } catch (err) {
    return `re-encoding a decoded frame threw ${String(err)}`;
  }
  return null;
}

describe('fuzz', () => {
  test(`${FRAMES} random and mutated frames at both decoders: only registry FrameErrors, fast, round-tripping`, () => {
    console.log(`fuzz seed ${SEED} (replay with TENDRIL_FUZZ_SEED=${SEED})`);
    const rand = prng(SEED);
    const fuzzer = makeFuzzer(rand, loadSeeds());
    const problems: string[] = [];
    const codes = new Map<string, number>();
    let decoded = 0;
    let slowest = 0;
    let slowestHex = '';

    const started = performance.now();
    for (let i = 0; i < FRAMES && problems.length < 10; i++) {
      const bytes = fuzzer.frame();
      const limits = fuzzer.limits();
      for (const side of ['device', 'hub'] as const) {
        const ctx = fuzzer.context();
        const ctxBefore = { ...ctx };
        const t0 = performance.now();
        let outcome: Outcome;
        try {
          outcome = {
            ok: true,
            frame: side === 'device' ? decodeDeviceFrame(bytes, ctx, limits) : decodeHubFrame(bytes, limits),
          };
        } catch (err) {
          const problem = checkFailure(err, bytes);
          if (problem) problems.push(`#${i} ${side} ${problem}`);
          outcome = { ok: false, code: err instanceof FrameError ? err.code : 'not a FrameError' };
        }
        const took = performance.now() - t0;
        if (took > slowest) {
          slowest = took;
          slowestHex = `${side} #${i} ${Buffer.from(bytes.subarray(0, 48)).toString('hex')}`;
        }
        if (outcome.ok) {
          decoded++;
          const problem = checkRoundTrip(outcome.frame, side, ctxBefore, ctx, limits);
          if (problem)
            problems.push(
              `#${i} ${side} ${problem}: ${Buffer.from(bytes).toString('hex')} limits ${JSON.stringify(limits)} ctx ${JSON.stringify(ctxBefore)}`,
            );
        } else {
          codes.set(outcome.code, (codes.get(outcome.code) ?? 0) + 1);
          if (!isDeepStrictEqual(ctx, ctxBefore)) problems.push(`#${i} ${side} a failed decode changed the context`);
        }
      }
    }
    const elapsedMs = performance.now() - started;
    console.log(
      `fuzz: ${FRAMES} frames x 2 decoders in ${elapsedMs.toFixed(0)} ms; ${decoded} decoded; slowest decode ${slowest.toFixed(2)} ms (${slowestHex}...);`,
      Object.fromEntries([...codes].sort((a, b) => b[1] - a[1])),
    );

    expect(problems, `seed ${SEED}`).toEqual([]);
    // The generator must reach past the type byte: many codes seen, and many frames that decode.
    expect(codes.size, `seed ${SEED}: decoding codes seen`).toBeGreaterThanOrEqual(10);
    expect(decoded, `seed ${SEED}: frames that decoded`).toBeGreaterThan(FRAMES / 50);
    expect(elapsedMs, `seed ${SEED}: whole run`).toBeLessThan((FRAMES * 2 * BUDGET_US_PER_DECODE) / 1000);
  });
});

describe('largest frames decode quickly', () => {
  const T = 1_732_233_600_000;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  /** Median of repeated decodes, so that a GC pause on a shared machine does not decide the test. */
  function timeDecode(decode: () => unknown, runs = 25): number {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      decode();
      times.push(performance.now() - t0);
    }
    return median(times);
  }

  const frames: Array<[string, 'device' | 'hub', Uint8Array]> = [];
  // BATCH: as many readings and values as 16 KiB holds (255 readings x 61 one-byte bools; aliases repeat,
  // which is the hub's DUPLICATE_ALIAS business, not the decoder's).
  frames.push([
    'BATCH of 255 readings x 61 values',
    'device',
    encodeDeviceFrame(
      {
        type: 'batch',
        readings: Array.from({ length: 255 }, (_, i) => ({
          seq: i + 1,
          ts: T + i,
          values: Array.from({ length: 61 }, (_, a) => ({ alias: a % 16, kind: 'bool' as const, value: true })),
        })),
      },
      newDeltaContext(0, T),
    ),
  ]);
  // READING: 64 string values of multi-byte UTF-8 near their limit.
  frames.push([
    'READING with 64 strings of 250 bytes',
    'device',
    encodeDeviceFrame(
      {
        type: 'reading',
        seq: 1,
        ts: T,
        values: Array.from({ length: 64 }, (_, a) => ({ alias: a, kind: 'string' as const, value: 'é'.repeat(125) })),
      },
      newDeltaContext(0, T),
    ),
  ]);
  // HELLO: 64 declarations with long names, units and ranges.
  frames.push([
    'HELLO with 64 declarations',
    'device',
    encodeDeviceFrame(
      {
        type: 'hello',
        deviceId: 'd'.repeat(64),
        token: 't'.repeat(128),
        firmware: 'f'.repeat(32),
        sdk: 's'.repeat(32),
        epoch: 2 ** 32 - 1,
        lastSeq: 1,
        clock: T,
        dropped: 0,
        metrics: Array.from({ length: 64 }, (_, i) => ({
          alias: 1023 - i,
          name: `m${i}`.padEnd(64, 'x'),
          kind: 'f64' as const,
          unit: 'µ'.repeat(8),
          min: -1e9,
          max: 1e9,
        })),
      },
      newDeltaContext(),
    ),
  ]);
  frames.push([
    'COMMAND with 4 KiB of arguments',
    'hub',
    encodeHubFrame({ type: 'command', commandId: 1, name: 'n'.repeat(64), args: '€'.repeat(1365), timeoutMs: 1 }),
  ]);
  // Junk of the maximum size behind each type byte.
  for (const type of [0x01, 0x02, 0x03, 0x04])
    frames.push([
      `16 KiB of 0x80 behind type 0x0${type}`,
      'device',
      new Uint8Array(16_384).fill(0x80).fill(type, 0, 1),
    ]);
  frames.push([
    '16 KiB of bool values (stops at maxMetrics)',
    'device',
    new Uint8Array(16_384).fill(0x04).fill(0x03, 0, 1),
  ]);

  test.each(frames.map(([name, side, bytes]) => [name, side, bytes] as const))('%s', (_name, side, bytes) => {
    expect(bytes.length).toBeLessThanOrEqual(DEFAULT_LIMITS.maxFrameBytes);
    const decode = () => {
      try {
        return side === 'device' ? decodeDeviceFrame(bytes, newDeltaContext(0, T)) : decodeHubFrame(bytes);
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        return err;
      }
    };
    decode(); // warm up
    // A decode of a maximum-size frame takes well under a millisecond; 20 ms leaves room for a busy machine.
    expect(timeDecode(decode)).toBeLessThan(20);
  });
});
