/**
 * The TimeSeriesStore contract (hub/src/storage/types.ts), run unchanged against both stores: the embedded
 * SQLite store and the InfluxDB store on a real influxd started by the harness. Every expectation is an
 * exact value, so passing on both means both give the same answers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInfluxDB, type InfluxDBServer } from '../../test/support/index.js';
import { createInfluxStore } from '../src/storage/influx-store.js';
import { applyInfluxRetention, startPruningJob } from '../src/storage/retention.js';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import type { Aggregate, StoredReading, StoredValue, TimeSeriesStore } from '../src/storage/types.js';

let influx: InfluxDBServer | undefined;
const tempDirs: string[] = [];

beforeAll(async () => {
  influx = await startInfluxDB();
});

afterAll(async () => {
  await influx?.stop();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

let dbCounter = 0;
const factories: Array<[string, () => TimeSeriesStore]> = [
  [
    'sqlite',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'tendril-contract-'));
      tempDirs.push(dir);
      return new SqliteStore(dir);
    },
  ],
  ['influxdb', () => createInfluxStore({ url: influx!.url, db: `contract${++dbCounter}` })],
];

const T0 = Date.UTC(2026, 2, 10, 8, 0, 0);

function r(deviceId: string, seq: number, ts: number, values: StoredValue[], epoch = 3): StoredReading {
  return { deviceId, epoch, seq, ts, values };
}
const f64 = (metric: string, value: number): StoredValue => ({ metric, kind: 'f64', value });
const f32 = (metric: string, value: number): StoredValue => ({ metric, kind: 'f32', value });
const int = (metric: string, value: number): StoredValue => ({ metric, kind: 'int', value });
const bool = (metric: string, value: boolean): StoredValue => ({ metric, kind: 'bool', value });
const str = (metric: string, value: string): StoredValue => ({ metric, kind: 'string', value });

describe.each(factories)('TimeSeriesStore contract: %s', (_name, makeStore) => {
  let store: TimeSeriesStore;

  beforeAll(async () => {
    store = makeStore();
  });

  afterAll(async () => {
    await store?.close();
  });

  const series = (deviceId: string, metric: string, agg: Aggregate, from: number, to: number, stepMs: number) =>
    store.series({ deviceId, metric, agg, from, to, stepMs });

  it('answers ping', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });

  it('writes every value kind and returns it, typed, from latest()', async () => {
    await store.write([
      r('kinds', 1, T0, [
        f32('t32', 21.5),
        f64('t64', 0.1),
        int('n', 9_007_199_254_740_991),
        bool('on', true),
        str('s', 'héllo, "wörld" \\ =x'),
      ]),
    ]);
    expect(await store.latest('kinds')).toEqual({
      t32: { ts: T0, value: 21.5 },
      t64: { ts: T0, value: 0.1 },
      n: { ts: T0, value: 9_007_199_254_740_991 },
      on: { ts: T0, value: true },
      s: { ts: T0, value: 'héllo, "wörld" \\ =x' },
    });
  });

  it('latest() takes each metric from the newest reading that has it', async () => {
    await store.write([
      r('lat', 1, T0, [f64('a', 1), f64('b', 10)]),
      r('lat', 2, T0 + 1000, [f64('a', 2)]),
      r('lat', 3, T0 + 500, [f64('b', 11)]),
    ]);
    expect(await store.latest('lat')).toEqual({ a: { ts: T0 + 1000, value: 2 }, b: { ts: T0 + 500, value: 11 } });
    expect(await store.latest('nobody')).toEqual({});
  });

  it('stores a rewritten (device, epoch, seq) once, and two readings in the same millisecond both', async () => {
    const batch = [
      r('idem', 1, T0, [f64('x', 1)]),
      r('idem', 2, T0, [f64('x', 2)]),
      r('idem', 3, T0 + 1, [f64('x', 3)]),
    ];
    await store.write(batch);
    await store.write(batch);
    await store.write([batch[1]!, r('idem', 4, T0 + 2, [f64('x', 4)]), batch[0]!]);
    expect(await series('idem', 'x', 'count', T0, T0 + 10, 10)).toEqual([{ ts: T0, value: 4 }]);
    expect(await series('idem', 'x', 'max', T0, T0 + 10, 10)).toEqual([{ ts: T0, value: 4 }]);
    // Same seq in another epoch is another reading.
    await store.write([r('idem', 1, T0 + 5, [f64('x', 5)], 4)]);
    expect(await series('idem', 'x', 'count', T0, T0 + 10, 10)).toEqual([{ ts: T0, value: 5 }]);
  });

  describe('series', () => {
    // 12 readings, one every 250 ms: 1.0, 1.5, ..., 6.5 (exact in binary, so means are exact too).
    const from = T0 + 60_000;
    beforeAll(async () => {
      await store.write(
        Array.from({ length: 12 }, (_, i) => r('ser', i + 1, from + i * 250, [f64('v', 1 + i / 2), int('i', i * 3)])),
      );
    });

    const cases: Array<[Aggregate, number[]]> = [
      // buckets of 1 s from `from`: readings 0-3, 4-7, 8-11
      ['mean', [1.75, 3.75, 5.75]],
      ['min', [1, 3, 5]],
      ['max', [2.5, 4.5, 6.5]],
      ['last', [2.5, 4.5, 6.5]],
      ['count', [4, 4, 4]],
    ];
    for (const [agg, values] of cases) {
      it(`${agg}: one value per bucket, buckets at from + k * step`, async () => {
        expect(await series('ser', 'v', agg, from, from + 3000, 1000)).toEqual(
          values.map((value, k) => ({ ts: from + k * 1000, value })),
        );
      });
    }

    it('aligns buckets to `from` even when it is not a multiple of the step', async () => {
      // from + 125: buckets [125, 1125) holds readings at 250, 500, 750, 1000 -> 1.5..3
      expect(await series('ser', 'v', 'count', from + 125, from + 3000, 1000)).toEqual([
        { ts: from + 125, value: 4 },
        { ts: from + 1125, value: 4 },
        { ts: from + 2125, value: 3 },
      ]);
      expect(await series('ser', 'i', 'mean', from + 125, from + 1125, 1000)).toEqual([{ ts: from + 125, value: 7.5 }]);
    });

    it('from is inclusive, to exclusive', async () => {
      expect(await series('ser', 'v', 'count', from + 250, from + 750, 10_000)).toEqual([{ ts: from + 250, value: 2 }]);
    });

    it('leaves empty buckets out, and answers [] for unknown metrics, devices and empty ranges', async () => {
      await store.write([r('gaps', 1, T0, [f64('g', 1)]), r('gaps', 2, T0 + 5000, [f64('g', 2)])]);
      expect(await series('gaps', 'g', 'count', T0, T0 + 6000, 1000)).toEqual([
        { ts: T0, value: 1 },
        { ts: T0 + 5000, value: 1 },
      ]);
      expect(await series('gaps', 'nope', 'count', T0, T0 + 6000, 1000)).toEqual([]);
      expect(await series('nobody', 'g', 'mean', T0, T0 + 6000, 1000)).toEqual([]);
      expect(await series('gaps', 'g', 'mean', T0 + 10_000, T0 + 20_000, 1000)).toEqual([]);
    });
  });

  it('bools: mean is the fraction true, min/max are 0/1, last is a bool', async () => {
    // true, false, true, true in one bucket; false, false in the next
    const flags = [true, false, true, true, false, false];
    await store.write(flags.map((on, i) => r('flags', i + 1, T0 + 120_000 + i * 100, [bool('on', on)])));
    const at = (agg: Aggregate) => series('flags', 'on', agg, T0 + 120_000, T0 + 120_600, 400);
    expect(await at('mean')).toEqual([
      { ts: T0 + 120_000, value: 0.75 },
      { ts: T0 + 120_400, value: 0 },
    ]);
    expect(await at('min')).toEqual([
      { ts: T0 + 120_000, value: 0 },
      { ts: T0 + 120_400, value: 0 },
    ]);
    expect(await at('max')).toEqual([
      { ts: T0 + 120_000, value: 1 },
      { ts: T0 + 120_400, value: 0 },
    ]);
    expect(await at('last')).toEqual([
      { ts: T0 + 120_000, value: true },
      { ts: T0 + 120_400, value: false },
    ]);
    expect(await at('count')).toEqual([
      { ts: T0 + 120_000, value: 4 },
      { ts: T0 + 120_400, value: 2 },
    ]);
  });

  it('strings: last and count apply; mean, min and max are refused', async () => {
    await store.write([r('words', 1, T0, [str('w', 'alpha')]), r('words', 2, T0 + 10, [str('w', 'beta')])]);
    expect(await series('words', 'w', 'last', T0, T0 + 100, 100)).toEqual([{ ts: T0, value: 'beta' }]);
    expect(await series('words', 'w', 'count', T0, T0 + 100, 100)).toEqual([{ ts: T0, value: 2 }]);
    for (const agg of ['mean', 'min', 'max'] as const)
      await expect(series('words', 'w', agg, T0, T0 + 100, 100)).rejects.toThrow();
  });

  it('a metric re-declared with another kind does not fail the write nor lose the other values of its readings', async () => {
    await store.write([r('redecl', 1, T0, [f64('m', 1), f64('other', 1)])]);
    await store.write([
      r('redecl', 2, T0 + 10, [str('m', 'now text'), f64('other', 2)]),
      r('redecl', 3, T0 + 20, [f64('other', 3)]),
    ]);
    await store.write([r('redecl', 4, T0 + 30, [f64('other', 4)])]);
    expect(await series('redecl', 'other', 'count', T0, T0 + 100, 100)).toEqual([{ ts: T0, value: 4 }]);
    expect((await store.latest('redecl')).other).toEqual({ ts: T0 + 30, value: 4 });
  });

  it('stores metrics named like InfluxDB keywords or the device tag ("time", "device") like any other', async () => {
    await store.write([
      r('names', 1, T0, [f64('time', 1.5), f64('device', 2), bool('value', true)]),
      r('names', 2, T0 + 10, [f64('time', 2.5), f64('device', 4)]),
    ]);
    expect(await store.latest('names')).toEqual({
      time: { ts: T0 + 10, value: 2.5 },
      device: { ts: T0 + 10, value: 4 },
      value: { ts: T0, value: true },
    });
    expect(await series('names', 'time', 'mean', T0, T0 + 100, 100)).toEqual([{ ts: T0, value: 2 }]);
    expect(await series('names', 'device', 'max', T0, T0 + 100, 100)).toEqual([{ ts: T0, value: 4 }]);
    // Other devices' queries still find their data once a field is called "device".
    await store.write([r('names-other', 1, T0, [f64('x', 7)])]);
    expect(await series('names-other', 'x', 'count', T0, T0 + 100, 100)).toEqual([{ ts: T0, value: 1 }]);
  });

  it('keeps devices apart', async () => {
    await store.write([r('apart-a', 1, T0, [f64('x', 1)]), r('apart-b', 1, T0, [f64('x', 100)])]);
    expect(await series('apart-a', 'x', 'max', T0, T0 + 1, 1)).toEqual([{ ts: T0, value: 1 }]);
    expect(await series('apart-b', 'x', 'max', T0, T0 + 1, 1)).toEqual([{ ts: T0, value: 100 }]);
  });
});

describe('retention (HUB_RETENTION_DAYS)', () => {
  const DAY = 86_400_000;

  it('SQLite: the pruning job deletes readings older than the retention, at start and on every tick', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tendril-retention-'));
    tempDirs.push(dir);
    const store = new SqliteStore(dir);
    let now = Date.UTC(2026, 6, 1);
    const ticks: Array<() => void> = [];
    const pruned: number[] = [];
    try {
      await store.write([
        r('old', 1, now - 40 * DAY, [f64('x', 1)]),
        r('old', 2, now - 29 * DAY, [f64('x', 2)]),
        r('old', 3, now, [f64('x', 3)]),
      ]);
      const job = startPruningJob({
        prune: (cutoff) => store.pruneBefore(cutoff),
        retentionDays: 30,
        clock: { now: () => now },
        timers: { setInterval: (fn) => ticks.push(fn), clearInterval: () => undefined },
        onPruned: (n) => pruned.push(n),
      });
      await job.runOnce();
      expect(pruned[0]).toBe(1);
      const count = () =>
        store.series({
          deviceId: 'old',
          metric: 'x',
          agg: 'count',
          from: now - 100 * DAY,
          to: now + 1,
          stepMs: 200 * DAY,
        });
      expect(await count()).toEqual([{ ts: now - 100 * DAY, value: 2 }]);
      now += 2 * DAY; // the 29-day-old reading is now 31 days old
      ticks[0]!();
      await job.runOnce();
      expect(pruned).toEqual([1, 1]);
      expect(await count()).toEqual([{ ts: now - 100 * DAY, value: 1 }]);
      await job.stop();
    } finally {
      await store.close();
    }
  });

  it('HUB_RETENTION_DAYS=0 keeps everything (no job, infinite policy)', async () => {
    let called = false;
    const job = startPruningJob({ prune: () => ((called = true), 0), retentionDays: 0 });
    expect(await job.runOnce()).toBe(0);
    expect(called).toBe(false);
    await job.stop();
  });

  it('InfluxDB 1.x: alters the default retention policy of an existing database, idempotently', async () => {
    await influx!.query('CREATE DATABASE "retained"');
    const query = (q: string) => influx!.query(q, { db: 'retained' });
    expect(await applyInfluxRetention(query, 'retained', 30)).toBe('altered');
    expect(await applyInfluxRetention(query, 'retained', 30)).toBe('unchanged');
    expect(await applyInfluxRetention(query, 'retained', 1)).toBe('altered');
    const [rps] = await query('SHOW RETENTION POLICIES ON "retained"');
    const row = rps?.series?.[0]?.values?.find((v) => v[4] === true);
    expect(row?.slice(0, 3)).toEqual(['autogen', '24h0m0s', '1h0m0s']);
    expect(await applyInfluxRetention(query, 'retained', 0)).toBe('altered');
    const [inf] = await query('SHOW RETENTION POLICIES ON "retained"');
    expect(inf?.series?.[0]?.values?.[0]?.[1]).toBe('0s');
  });
});
