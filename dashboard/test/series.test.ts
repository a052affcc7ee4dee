import { describe, expect, it } from 'vitest';
import { BucketSeries, stepFor, toCsv } from '../src/lib/series.js';

describe('stepFor', () => {
  it('picks about one bucket per point asked for, never more (whole ms, tenths of a second, or seconds)', () => {
    expect(stepFor(300_000, 800)).toBe(375);
    expect(stepFor(86_400_000, 1000)).toBe(87_000);
    expect(stepFor(86_400_000, 400)).toBe(216_000);
    expect(stepFor(7 * 86_400_000, 1000)).toBe(605_000);
    expect(stepFor(3_600_000, 3600)).toBe(1000);
    expect(stepFor(900_000, 400)).toBe(2300);
    for (const [range, px] of [
      [86_400_000, 390],
      [3_600_000, 1234],
      [900_000, 777],
      [7 * 86_400_000, 333],
    ] as const) {
      const buckets = range / stepFor(range, px);
      expect(buckets).toBeLessThanOrEqual(px);
      expect(buckets).toBeGreaterThan(px * 0.95);
    }
  });
});

describe('BucketSeries', () => {
  const pts = (xs: Array<[number, number]>) => xs.map(([ts, value]) => ({ ts, value }));

  it('joins history and live readings in the same buckets without a seam', () => {
    const s = new BucketSeries(1000);
    s.setHistory(
      {
        min: pts([
          [0, 1],
          [1000, 2],
        ]),
        mean: pts([
          [0, 1.5],
          [1000, 2.5],
        ]),
        max: pts([
          [0, 2],
          [1000, 3],
        ]),
      },
      1500,
    );
    expect(s.add(1200, 99)).toBe(false); // before the seam: already in the history
    expect(s.add(1700, 10)).toBe(true); // same bucket as the last history bucket
    expect(s.add(2100, 4)).toBe(true);
    const [xs, min, mean, max] = s.toData();
    expect(xs).toEqual([0, 1000, 2000]);
    expect(min).toEqual([1, 2, 4]);
    expect(max).toEqual([2, 10, 4]);
    expect(mean[1]).toBeCloseTo((2.5 + 10) / 2);
    expect(mean[2]).toBe(4);
  });

  it('keeps min and max of every reading in a bucket (peaks survive)', () => {
    const s = new BucketSeries(1000);
    for (const [ts, v] of [
      [100, 5],
      [200, -3],
      [300, 40],
      [900, 7],
    ] as const)
      s.add(ts, v);
    const [, min, , max] = s.toData();
    expect(min).toEqual([-3]);
    expect(max).toEqual([40]);
  });

  it('draws a gap mark as a null point between the buckets around it', () => {
    const s = new BucketSeries(1000);
    for (let t = 0; t < 5000; t += 1000) s.add(t, t / 1000);
    s.markGap(2500);
    for (let t = 5000; t < 8000; t += 1000) s.add(t, t / 1000);
    const [xs, , mean] = s.toData();
    const nullAt = mean.indexOf(null);
    expect(nullAt).toBeGreaterThan(0);
    expect(xs[nullAt]).toBe(2500);
    expect(mean.filter((v) => v === null)).toHaveLength(1);
    // resolved once history covers it
    s.resolveGaps(0, 8000);
    expect(s.toData()[2].includes(null)).toBe(false);
  });

  it('breaks the line over a long silence, never bridges it', () => {
    const s = new BucketSeries(1000);
    for (let t = 0; t < 10_000; t += 1000) s.add(t, 1);
    for (let t = 60_000; t < 65_000; t += 1000) s.add(t, 2);
    const [xs, , mean] = s.toData();
    const i = mean.indexOf(null);
    expect(i).toBeGreaterThan(0);
    expect(xs[i]! > 9000 && xs[i]! < 60_000).toBe(true);
  });

  it('a gap after the last bucket ends the line there', () => {
    const s = new BucketSeries(1000);
    s.add(0, 1);
    s.add(1000, 1);
    s.markGap(1500);
    const [xs, , mean] = s.toData();
    expect(mean.at(-1)).toBeNull();
    expect(xs.at(-1)).toBe(1500);
  });

  it('trims buckets that left a rolling window, with their gap marks', () => {
    const s = new BucketSeries(1000);
    for (let t = 0; t < 10_000; t += 1000) s.add(t, 1);
    s.markGap(500);
    s.trimBefore(5000);
    expect(s.ts[0]).toBe(5000);
    expect(s.gaps).toEqual([]);
  });

  it('takes booleans as 0/1 and ignores strings', () => {
    const s = new BucketSeries(1000);
    expect(s.add(0, true)).toBe(true);
    expect(s.add(10, 'x')).toBe(false);
    expect(s.toData()[3]).toEqual([1]);
  });

  it('exports the range as CSV with empty cells at gaps', () => {
    const s = new BucketSeries(1000);
    s.add(0, 1);
    s.add(1000, 2);
    s.markGap(1500);
    s.add(2000, 3);
    const csv = toCsv('temperature', '°C', s.toData(), 0, 5000);
    const lines = csv.trim().split('\r\n');
    expect(lines[0]).toBe('time,ts,temperature min (°C),temperature mean (°C),temperature max (°C)');
    expect(lines).toHaveLength(5);
    expect(lines[3]).toMatch(/^1970-01-01T00:00:01.500Z,1500,,,$/);
  });
});
