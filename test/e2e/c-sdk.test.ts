/**
 * Issue 15: the C device SDK (device-sdk/c) under `npm test`. Runs its own `make` targets, so CI counts
 * them: the golden vectors (a table generated from docs/vectors/tendril-v1.json at build time) and the unit
 * tests under gcc and clang -Werror, under ASan+UBSan and once under valgrind, a bounded libFuzzer run of
 * each fuzzer, the Cortex-M4 footprint guard; and a cross test: the TypeScript SDK and the C SDK encode the
 * same (seeded random) frames, and their device clients put the same readings on the wire, byte for byte.
 */
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  encodeDeviceFrame,
  encodeHubFrame,
  TendrilDevice,
  type DeltaContext,
  type DeviceFrame,
  type MetricDeclaration,
  type Reading,
  type Value,
} from '@tendril/device-sdk';

const run = promisify(execFile);
const SDK_DIR = fileURLToPath(new URL('../../device-sdk/c', import.meta.url));
const CROSS = `${SDK_DIR}/build/cross-encode`;

async function make(target: string, extra: string[] = [], timeout = 240_000): Promise<string> {
  try {
    const { stdout, stderr } = await run('make', ['-C', SDK_DIR, '-j2', target, ...extra], {
      timeout,
      maxBuffer: 64 << 20,
    });
    return stdout + stderr;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(
      `make ${target} failed: ${e.message}\n${(e.stdout ?? '').slice(-4000)}\n${(e.stderr ?? '').slice(-4000)}`,
    );
  }
}

describe('the C SDK builds and passes its own tests', () => {
  it('decodes and encodes every golden vector, and passes its unit tests, under gcc and clang with -Wall -Wextra -Werror -pedantic', async () => {
    const out = await make('unit');
    const clang = await make('unit-clang');
    for (const log of [out, clang]) {
      expect(log).toMatch(/golden vectors: \d+ valid, \d+ invalid/);
      for (const suite of ['test_codec', 'test_ws', 'test_device'])
        expect(log).toMatch(new RegExp(`${suite}: \\d+ checks, 0 failed`));
    }
  }, 300_000);

  it('passes its unit tests under AddressSanitizer and UndefinedBehaviorSanitizer', async () => {
    const out = await make('sanitize');
    expect(out.match(/checks, 0 failed/g)).toHaveLength(3);
  }, 300_000);

  it('passes the same tests in the minimal configuration (TD_WITH_BATCH=0, TD_WITH_RESULT_BUFFER=0), under ASan and UBSan', async () => {
    const out = await make('unit-min');
    expect(out).toMatch(/golden vectors: \d+ valid, \d+ invalid/);
    for (const suite of ['test_codec', 'test_ws', 'test_device'])
      expect(out).toMatch(new RegExp(`${suite}: \\d+ checks, 0 failed`));
  }, 300_000);

  it('connects its POSIX transport without blocking and finishes partial TLS writes in order, once (loopback sockets)', async () => {
    const out = await make('transports');
    expect(out).toMatch(/test_transports: \d+ checks, 0 failed/);
  }, 300_000);

  it('passes its unit tests under valgrind (no invalid access, no leak)', async () => {
    const out = await make('valgrind');
    expect(out.match(/^ok$/gm)).toHaveLength(3);
  }, 300_000);

  it('survives a bounded libFuzzer run of each fuzzer (decoders, WebSocket byte stream into the client)', async () => {
    const out = await make('fuzz-ci', ['FUZZ_SECONDS=5']);
    const runs = [...out.matchAll(/stat::number_of_executed_units: (\d+)/g)].map((m) => Number(m[1]));
    expect(runs).toHaveLength(3);
    for (const n of runs) expect(n).toBeGreaterThan(1000);
    expect(out).not.toMatch(/ERROR: (libFuzzer|AddressSanitizer)|SUMMARY: UndefinedBehaviorSanitizer/);
  }, 300_000);

  it('reports its Cortex-M4 footprint: no static RAM, flash within the regression ceiling, the context size', async () => {
    const out = await make('size-check');
    expect(out).toMatch(/static RAM of the SDK itself \(\.data \+ \.bss of its objects\): 0 bytes/);
    const flash = Number(/SDK flash: (\d+) bytes/.exec(out)?.[1]);
    const ctx = Number(/context struct td_device: (\d+) bytes/.exec(out)?.[1]);
    expect(flash).toBeGreaterThan(1000);
    expect(Number(/SDK flash in the minimal configuration \([^)]*\): (\d+) bytes/.exec(out)?.[1])).toBeLessThan(flash);
    expect(ctx).toBeGreaterThan(100);
    expect(ctx).toBeLessThanOrEqual(1024);
  }, 300_000);
});

// ---- the cross test ----

/** mulberry32: a seeded generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const strHex = (s: string): string => (s === '' ? '-' : Buffer.from(s, 'utf8').toString('hex'));
function f32bits(v: number): string {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, v, true);
  return dv.getUint32(0, true).toString(16);
}
function f64bits(v: number): string {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, v, true);
  return dv.getBigUint64(0, true).toString(16);
}
const TYPE = { f32: 0, f64: 1, int: 2, bool: 3, string: 5 } as const;
function valueToken(v: Value): string {
  if (v.kind === 'bool') return `${v.alias}:${v.value ? 4 : 3}:`;
  const payload =
    v.kind === 'f32'
      ? f32bits(v.value as number)
      : v.kind === 'f64'
        ? f64bits(v.value as number)
        : v.kind === 'int'
          ? String(v.value)
          : strHex(v.value as string);
  return `${v.alias}:${TYPE[v.kind]}:${payload}`;
}
const readingLine = (tag: string, r: Reading): string =>
  `${tag} ${r.seq} ${r.ts === null ? '-' : r.ts} ${r.values.length} ${r.values.map(valueToken).join(' ')}`;

function randomString(r: () => number, maxBytes: number): string {
  const pool = ['a', 'Z', '0', ' ', '°', 'é', '✓', '中', '😀', '\u0000', '"', '\\', '\u{10ffff}'];
  let s = '';
  const n = Math.floor(r() * 40);
  for (let i = 0; i < n; i++) {
    const next = s + pool[Math.floor(r() * pool.length)]!;
    if (Buffer.byteLength(next) > maxBytes) break;
    s = next;
  }
  return s;
}

function randomValue(r: () => number, alias: number, kind?: Value['kind']): Value {
  const kinds: Value['kind'][] = ['f32', 'f64', 'int', 'bool', 'string'];
  const k = kind ?? kinds[Math.floor(r() * kinds.length)]!;
  const special = [NaN, Infinity, -Infinity, -0, 0];
  switch (k) {
    case 'f32':
      return {
        alias,
        kind: k,
        value: r() < 0.05 ? special[Math.floor(r() * 5)]! : Math.fround((r() - 0.5) * 10 ** Math.floor(r() * 12)),
      };
    case 'f64':
      return {
        alias,
        kind: k,
        value: r() < 0.05 ? special[Math.floor(r() * 5)]! : (r() - 0.5) * 10 ** Math.floor(r() * 300),
      };
    case 'int': {
      const scale = [1, 100, 2 ** 20, 2 ** 40, 2 ** 52][Math.floor(r() * 5)]!;
      return {
        alias,
        kind: k,
        value: Math.max(-(2 ** 52), Math.min(2 ** 52 - 1, Math.floor((r() - 0.5) * 2 * scale))),
      };
    }
    case 'bool':
      return { alias, kind: k, value: r() < 0.5 };
    default:
      return { alias, kind: 'string', value: randomString(r, 256) };
  }
}

function randomReading(r: () => number, ctx: DeltaContext, timed: boolean): Reading {
  const steps = [1, 1, 1, 1, 2, -3, 100, -(ctx.prevSeq - 1)];
  const seq = Math.max(1, ctx.prevSeq + steps[Math.floor(r() * steps.length)]!);
  const tsSteps = [1000, 1, 0, 63, 64, 8191, 8192, -5000, 86_400_000];
  const ts = Math.max(0, ctx.prevTs + tsSteps[Math.floor(r() * tsSteps.length)]!);
  const n = 1 + Math.floor(r() * (r() < 0.1 ? 64 : 6));
  const values: Value[] = [];
  for (let i = 0; i < n; i++) values.push(randomValue(r, r() < 0.8 ? Math.floor(r() * 16) : Math.floor(r() * 1024)));
  return { seq, ts: timed ? ts : null, values };
}

function runCross(input: string, mode?: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(CROSS, mode ? [mode] : [], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(out.trim().split('\n')) : reject(new Error(`cross-encode exited ${code}`)),
    );
    child.stdin.end(input);
  });
}

describe('the TypeScript SDK and the C SDK put the same bytes on the wire', () => {
  it('encodes 600 random frames (readings of every value kind, batches, HELLOs, command results, statuses) identically', async () => {
    await make('cross');
    const r = rng(20261204);
    const lines: string[] = [];
    const expected: string[] = [];
    let ctx: DeltaContext = { prevSeq: 0, prevTs: 1_732_233_600_000 };
    lines.push(`C ${ctx.prevSeq} ${ctx.prevTs}`);
    for (let i = 0; i < 600; i++) {
      const pick = r();
      let frame: DeviceFrame;
      let text: string;
      if (pick < 0.6) {
        const reading = randomReading(r, ctx, r() < 0.85);
        frame = { type: 'reading', ...reading };
        text = readingLine('R', reading);
      } else if (pick < 0.8) {
        const k = 1 + Math.floor(r() * 12);
        const readings: Array<Reading & { ts: number }> = [];
        const local = { ...ctx };
        for (let j = 0; j < k; j++) {
          const reading = randomReading(r, local, true) as Reading & { ts: number };
          local.prevSeq = reading.seq;
          local.prevTs = reading.ts;
          readings.push(reading);
        }
        frame = { type: 'batch', readings };
        text = [`B ${k}`, ...readings.map((x) => readingLine('E', x))].join('\n');
      } else if (pick < 0.88) {
        const metrics: MetricDeclaration[] = [];
        const m = Math.floor(r() * 8);
        for (let j = 0; j < m; j++) {
          const kind = (['f32', 'f64', 'int', 'bool', 'string'] as const)[Math.floor(r() * 5)]!;
          const ranged = kind !== 'bool' && kind !== 'string';
          const d: MetricDeclaration = { alias: j * 37, name: `m${j}.x/${j}`, kind, unit: randomString(r, 16) };
          if (ranged && r() < 0.5) d.min = -Math.floor(r() * 1000);
          if (ranged && r() < 0.5) d.max = Math.floor(r() * 1000) + 0.5;
          metrics.push(d);
        }
        const hello = {
          type: 'hello' as const,
          deviceId: `dev-${Math.floor(r() * 1e6)}:x.y_z`,
          token: `tok${Math.floor(r() * 1e9)}`,
          firmware: randomString(r, 32),
          sdk: 'c/0.1.0',
          epoch: Math.floor(r() * 2 ** 32),
          lastSeq: Math.floor(r() * 2 ** 40),
          clock: Math.floor(r() * 2 ** 42),
          dropped: Math.floor(r() * 1000),
          metrics,
        };
        frame = hello;
        text = [
          `H ${strHex(hello.deviceId)} ${strHex(hello.token)} ${strHex(hello.firmware)} ${strHex(hello.sdk)} ${hello.epoch} ${hello.lastSeq} ${hello.clock} ${hello.dropped} ${metrics.length}`,
          ...metrics.map((d) => {
            const flags = (d.min !== undefined ? 1 : 0) | (d.max !== undefined ? 2 : 0);
            return `M ${d.alias} ${['f32', 'f64', 'int', 'bool', 'string'].indexOf(d.kind)} ${flags} ${strHex(d.name)} ${strHex(d.unit)} ${f64bits(d.min ?? 0)} ${f64bits(d.max ?? 0)}`;
          }),
        ].join('\n');
      } else if (pick < 0.95) {
        const status = (['delivered', 'succeeded', 'failed', 'rejected'] as const)[Math.floor(r() * 4)]!;
        const commandId = 1 + Math.floor(r() * 2 ** 45);
        const detail = status === 'delivered' ? '' : randomString(r, 1024);
        frame = { type: 'commandResult', commandId, status, detail };
        text = `X ${commandId} ${['delivered', 'succeeded', 'failed', 'rejected'].indexOf(status)} ${strHex(detail)}`;
      } else {
        const dropped = Math.floor(r() * 2 ** 50);
        frame = { type: 'status', dropped };
        text = `S ${dropped}`;
      }
      const next = { ...ctx };
      expected.push(hex(encodeDeviceFrame(frame, next)));
      ctx = next;
      lines.push(text);
    }
    const got = await runCross(`${lines.join('\n')}\n`);
    expect(got).toHaveLength(expected.length);
    for (let i = 0; i < expected.length; i++)
      expect(got[i], `frame ${i}: ${lines[i + 1]!.slice(0, 200)}`).toBe(expected[i]);
    // The §12 reading is 19 bytes on both sides.
    const budget = await runCross('C 41 1732233600000\nR 42 1732233601000 3 0:0:41ac0000 1:0:42410000 2:0:447d5000\n');
    expect(budget).toEqual(['0202d00f000000ac4108000041421000507d44']);
  }, 120_000);

  it('the C device client and the TypeScript device client send the same bytes for the same readings', async () => {
    await make('cross');
    const metrics = [
      { name: 'temperature', kind: 'f32', alias: 0 },
      { name: 'humidity', kind: 'f32', alias: 1 },
      { name: 'pressure', kind: 'f32', alias: 2 },
      { name: 'energy', kind: 'f64', alias: 3 },
      { name: 'count', kind: 'int', alias: 4 },
      { name: 'door', kind: 'bool', alias: 5 },
      { name: 'state', kind: 'string', alias: 6 },
      { name: 'far.alias', kind: 'f32', alias: 20 },
    ] as const;
    const r = rng(15);
    const start = 1_732_233_600_000;
    let now = start;
    const readings: Array<{ ts: number; values: Value[] }> = [];
    for (let i = 0; i < 300; i++) {
      now += [1000, 10, 0, 5000, 60_000][Math.floor(r() * 5)]!;
      const chosen = metrics.filter(() => r() < 0.4);
      if (!chosen.length) chosen.push(metrics[0]);
      readings.push({ ts: now, values: chosen.map((m) => randomValue(r, m.alias, m.kind)) });
    }

    // TypeScript: a TendrilDevice over a WebSocket stand-in that records what it is given.
    const sent: string[] = [];
    let clock = start;
    class RecordingSocket {
      binaryType = 'arraybuffer';
      readyState = 1;
      protocol = 'tendril.v1';
      onopen: ((ev: unknown) => void) | null = null;
      onmessage: ((ev: { data: unknown }) => void) | null = null;
      onclose: ((ev: { code: number; reason: string }) => void) | null = null;
      onerror: ((ev: unknown) => void) | null = null;
      constructor() {
        // eslint-disable-next-line @typescript-eslint/no-this-alias
        socket = this;
      }
      send(data: Uint8Array): void {
        sent.push(hex(data));
      }
      close(code = 1000, reason = ''): void {
        this.readyState = 3;
        queueMicrotask(() => this.onclose?.({ code, reason }));
      }
    }
    let socket: RecordingSocket | undefined;
    const device = new TendrilDevice({
      url: 'ws://cross.invalid/v1/device',
      deviceId: 'cross',
      token: 't',
      metrics: metrics.map((m) => ({ ...m })),
      WebSocket: RecordingSocket as never,
      epoch: 1,
      clock: () => clock,
    });
    device.start();
    socket!.onopen!({});
    sent.length = 0; // HELLO (its sdk and firmware fields differ by design)
    socket!.onmessage!({
      data: encodeHubFrame({
        type: 'welcome',
        serverTime: start,
        ackedSeq: 0,
        heartbeatMs: 10_000,
        maxFrameBytes: 16_384,
        maxBatch: 256,
        maxRate: 0,
      }).slice().buffer,
    });
    for (const reading of readings) {
      clock = reading.ts;
      const byName: Record<string, number | boolean | string> = {};
      for (const v of reading.values) byName[metrics.find((m) => m.alias === v.alias)!.name] = v.value;
      device.send(byName, reading.ts);
    }
    await device.close();

    // C: the same readings through td_device_send over the fake transport.
    const input = [
      `W 0 ${start}`,
      ...readings.map((x, i) => readingLine('R', { seq: i + 1, ts: x.ts, values: x.values })),
    ].join('\n');
    const got = await runCross(`${input}\n`, 'device');
    expect(sent).toHaveLength(readings.length);
    expect(got).toHaveLength(readings.length);
    for (let i = 0; i < sent.length; i++) expect(got[i], `reading ${i + 1}`).toBe(sent[i]);
  }, 120_000);
});
