/**
 * The InfluxDB store builds lines with LineEncoder (escaping cached per device and metric) instead of one
 * Point per reading. Its lines must be byte for byte what the client library's Point makes (readingToLine),
 * for any reading the hub can store: checked on seeded random readings whose names use every character
 * InfluxDB's escaping rules touch, and on each rule on its own.
 */
import { describe, expect, it } from 'vitest';
import type { MetricKind } from '@tendril/device-sdk';
import { LineEncoder, pointTimestampNs, readingToLine } from '../src/storage/influx-schema.js';
import type { ReadingVisitor, StoredReading, StoredValue } from '../src/storage/types.js';
import { encodeRecord, RecordBatch, recordView } from '../src/spool/record.js';

/** Small deterministic PRNG (mulberry32) so a failure names a reproducible seed. */
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

// Characters with a meaning in line protocol (separators, escapes, quotes, newlines), '@' (sorts before
// letters), digits (integer-like keys come first in Object.keys), and non-ASCII.
const ALPHABET = [...'ab_Z09 ,=\\"\n\r\t@.-é温😀'];
const KINDS: MetricKind[] = ['f32', 'f64', 'int', 'bool', 'string'];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function name(r: () => number, min = 1): string {
  const n = min + Math.floor(r() * 8);
  let s = '';
  for (let i = 0; i < n; i++) s += pick(r, ALPHABET);
  return s;
}

function value(r: () => number, kind: MetricKind): StoredValue['value'] {
  switch (kind) {
    case 'f32':
      return Math.fround((r() - 0.5) * 10 ** Math.floor(r() * 12));
    case 'f64':
      return pick(r, [0, -0, 1e21, 1e-7, 5e-324, Number.MAX_VALUE, (r() - 0.5) * 1e6, 123.456]);
    case 'int':
      return pick(r, [0, -1, 2 ** 53 - 1, -(2 ** 53), Math.floor((r() - 0.5) * 1e9)]);
    case 'bool':
      return r() < 0.5;
    case 'string':
      return r() < 0.2 ? '' : name(r);
  }
}

function reading(r: () => number, devices: string[], metrics: string[]): StoredReading {
  const count = 1 + Math.floor(r() * 6);
  const values: StoredValue[] = [];
  const used = new Set<string>();
  for (let i = 0; i < count; i++) {
    const metric = pick(r, metrics);
    if (used.has(metric)) continue; // a reading names each metric once (protocol)
    used.add(metric);
    const kind = pick(r, KINDS);
    values.push({ metric, kind, value: value(r, kind) });
  }
  return {
    deviceId: pick(r, devices),
    epoch: Math.floor(r() * 2 ** 32),
    seq: 1 + Math.floor(r() * 2 ** 40),
    ts: pick(r, [0, 1, 999, 1_700_000_000_123, 1_700_000_000_123.75, 4_102_444_800_000]),
    values,
  };
}

describe('LineEncoder', () => {
  it('makes the lines Point makes, for 20 000 generated readings (seeded)', () => {
    for (const seed of [1, 2, 3, 4]) {
      const r = rng(seed);
      const devices = Array.from({ length: 20 }, () => name(r));
      // 'time' is stored as '@time'; '@seq'-like names cannot be metrics (protocol §4.2) but sort among them.
      const metrics = [...Array.from({ length: 30 }, () => name(r)), 'time', 'device', '1', '10', '2', 'Temp', 'temp'];
      const measurement = seed === 1 ? 'readings' : name(r);
      const encoder = new LineEncoder(measurement);
      for (let i = 0; i < 5000; i++) {
        const x = reading(r, devices, metrics);
        const expected = readingToLine(x, measurement).line;
        const got = encoder.line(x);
        if (got !== expected) expect({ seed, i, got }).toEqual({ seed, i, got: expected });
      }
    }
  });

  it("makes the same lines from the spool's records, visited without reading objects (seeded)", () => {
    const r = rng(7);
    const devices = Array.from({ length: 10 }, () => name(r));
    const metrics = [...Array.from({ length: 20 }, () => name(r)), 'time', 'device'];
    const all = Array.from({ length: 3000 }, () => reading(r, devices, metrics));
    const batch = new RecordBatch();
    // Records of one reading up to a few dozen, of one device or several.
    for (let i = 0; i < all.length; ) {
      const n = 1 + Math.floor(r() * 40);
      batch.addRecord(recordView(encodeRecord(all.slice(i, i + n), 0)));
      i += n;
    }
    const encoder = new LineEncoder('readings');
    const lines: string[] = [];
    const visitor: ReadingVisitor = {
      begin: (deviceId, epoch, seq, ts) => encoder.begin(deviceId, epoch, seq, ts),
      value: (metric, kind, v) => encoder.value(metric, kind, v),
      end: () => lines.push(encoder.finish()),
    };
    expect(batch.cursor(0).read(visitor, all.length)).toBe(all.length);
    for (let i = 0; i < all.length; i++) {
      const expected = readingToLine(all[i]!, 'readings').line;
      if (lines[i] !== expected) expect({ i, got: lines[i] }).toEqual({ i, got: expected });
    }
  });

  // The encoder reuses the field order of the line before when the keys come in the same order: lines that
  // repeat, reorder, drop, add or rename fields (and 'time', stored as '@time') in turn, across devices.
  it('makes the lines Point makes when consecutive readings repeat, reorder or change their fields', () => {
    const encoder = new LineEncoder('readings');
    const shapes = [
      ['b', 'a', 'c'],
      ['b', 'a', 'c'],
      ['a', 'b', 'c'],
      ['b', 'a'],
      ['b', 'a', 'c', 'time'],
      ['time', 'b'],
      ['b', 'a', 'c'],
      ['A', '@x'],
      ['b', 'a', 'd'],
      [],
    ];
    let seq = 1;
    for (const device of ['d1', 'd1', 'd2']) {
      for (const shape of shapes) {
        const values: StoredValue[] = shape.map((metric, i) => ({ metric, kind: 'f64', value: seq * 10 + i + 0.5 }));
        const reading: StoredReading = { deviceId: device, epoch: 3, seq: seq++, ts: 1_700_000_000_000 + seq, values };
        expect(encoder.line(reading)).toBe(readingToLine(reading, 'readings').line);
      }
    }
  });

  it('writes timestamps as ms * 1e6 + (epoch + seq) mod 1e6 in ns, checked against BigInt arithmetic', () => {
    const r = rng(7);
    const times = [
      0, 1, 999, 999_999, 1_000_000, 1_000_001, 1_999_999.5, 1_700_000_000_000, 1_700_000_999_999, 4_102_444_800_000,
    ];
    for (let i = 0; i < 2000; i++) times.push(Math.floor(r() * 5e12), r() * 2e6);
    for (const ts of times) {
      const epoch = Math.floor(r() * 2 ** 32);
      const seq = 1 + Math.floor(r() * 2 ** 40);
      const sub = BigInt(((epoch % 1e6) + (seq % 1e6)) % 1e6);
      expect(pointTimestampNs({ ts, epoch, seq }), `ts ${ts}`).toBe(
        (BigInt(Math.floor(ts)) * 1_000_000n + sub).toString(),
      );
    }
  });

  it('leaves out the values `skip` names and hands them back, as readingToLine does', () => {
    const encoder = new LineEncoder('readings');
    const x: StoredReading = {
      deviceId: 'd 1',
      epoch: 3,
      seq: 9,
      ts: 1_700_000_000_000,
      values: [
        { metric: 'a', kind: 'f32', value: 1.5 },
        { metric: 'b', kind: 'string', value: 'x' },
        { metric: 'time', kind: 'bool', value: true },
      ],
    };
    const skip = (v: StoredValue): boolean => v.kind === 'string';
    const skipped: StoredValue[] = [];
    const expected = readingToLine(x, 'readings', skip);
    expect(encoder.line(x, skip, skipped)).toBe(expected.line);
    expect(skipped).toEqual(expected.skipped);
    expect(expected.line).toBe(`readings,device=d\\ 1 @seq=9i,@time=T,a=1.5 1700000000000000012`);
  });

  it('refuses a value Point refuses, with the same message', () => {
    const encoder = new LineEncoder('readings');
    const bad: StoredReading = {
      deviceId: 'd',
      epoch: 1,
      seq: 1,
      ts: 1,
      values: [{ metric: 'x', kind: 'f64', value: Number.NaN }],
    };
    expect(() => readingToLine(bad, 'readings')).toThrow(/invalid float value for field 'x'/);
    expect(() => encoder.line(bad)).toThrow(/invalid float value for field 'x'/);
  });
});
