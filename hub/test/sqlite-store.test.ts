/** The embedded SQLite time-series store (TimeSeriesStore contract, hub/src/storage/types.ts). */
import { chmodSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeRecord, RecordBatch, recordView } from '../src/spool/record.js';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import type { StoredReading } from '../src/storage/types.js';
import { tempDir } from './helpers.js';

const T0 = Date.UTC(2026, 0, 1);

function r(seq: number, ts: number, values: StoredReading['values'], epoch = 1, deviceId = 'd1'): StoredReading {
  return { deviceId, epoch, seq, ts, values };
}

describe('SqliteStore', () => {
  let dir: ReturnType<typeof tempDir>;
  let store: SqliteStore;
  beforeEach(() => {
    dir = tempDir();
    store = new SqliteStore(dir.path);
  });
  afterEach(async () => {
    await store.close();
    dir.remove();
  });

  it('keeps readings.db and its WAL files for the hub user only (0600), also when an earlier hub left them 0644', async () => {
    await store.write([r(1, T0, [{ metric: 'temp', kind: 'f64', value: 1 }])]);
    const mode = (f: string): number => statSync(join(dir.path, f)).mode & 0o777;
    expect([mode('readings.db'), mode('readings.db-wal'), mode('readings.db-shm')]).toEqual([0o600, 0o600, 0o600]);
    await store.close();
    for (const f of ['readings.db', 'readings.db-wal', 'readings.db-shm'])
      if (existsSync(join(dir.path, f))) chmodSync(join(dir.path, f), 0o644);
    store = new SqliteStore(dir.path);
    expect(mode('readings.db')).toBe(0o600);
  });

  it('writes a spool batch (writeBatch, visiting the records) as write() writes the same readings', async () => {
    const readings = [
      r(1, T0, [
        { metric: 'temp', kind: 'f32', value: 21.5 },
        { metric: 'on', kind: 'bool', value: true },
      ]),
      r(2, T0 + 1, [{ metric: 'label', kind: 'string', value: 'a "quoted" label' }]),
      r(1, T0 + 2, [{ metric: 'temp', kind: 'f32', value: 22 }], 1, 'd2'),
    ];
    const batch = new RecordBatch();
    batch.addRecord(recordView(encodeRecord(readings.slice(0, 2), T0)));
    batch.addRecord(recordView(encodeRecord(readings.slice(2), T0)));
    await store.writeBatch(batch);
    const other = new SqliteStore(join(dir.path, 'by-write'));
    try {
      await other.write(readings);
      const rows = (s: SqliteStore): unknown[] =>
        s.db
          .prepare('SELECT d.name, r.epoch, r.seq, r.ts, r.v FROM readings r JOIN devices d ON d.id = r.device')
          .all();
      expect(rows(store)).toEqual(rows(other));
      expect(rows(store)).toHaveLength(3);
      for (const device of ['d1', 'd2']) expect(await store.latest(device)).toEqual(await other.latest(device));
      // A batch written again changes nothing.
      await store.writeBatch(batch);
      expect(rows(store)).toHaveLength(3);
    } finally {
      await other.close();
    }
  });

  it('uses WAL with synchronous=FULL', () => {
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('synchronous', { simple: true })).toBe(2); // FULL
  });

  it('is idempotent on (device, epoch, seq, metric)', async () => {
    const batch = [
      r(1, T0, [{ metric: 'temp', kind: 'f64', value: 1.5 }]),
      r(2, T0 + 1000, [{ metric: 'temp', kind: 'f64', value: 2.5 }]),
    ];
    await store.write(batch);
    await store.write(batch);
    await store.write([r(2, T0 + 5000, [{ metric: 'temp', kind: 'f64', value: 99 }])]); // same identity, other ts (untimed resend)
    await store.write([r(2, T0 + 2000, [{ metric: 'temp', kind: 'f64', value: 3 }], 2)]); // another epoch: another reading
    const count = await store.series({
      deviceId: 'd1',
      metric: 'temp',
      from: T0,
      to: T0 + 10_000,
      stepMs: 10_000,
      agg: 'count',
    });
    expect(count).toEqual([{ ts: T0, value: 3 }]);
    expect((await store.latest('d1')).temp).toEqual({ ts: T0 + 2000, value: 3 });
    const mean = await store.series({
      deviceId: 'd1',
      metric: 'temp',
      from: T0,
      to: T0 + 10_000,
      stepMs: 10_000,
      agg: 'mean',
    });
    expect(mean).toEqual([{ ts: T0, value: (1.5 + 2.5 + 3) / 3 }]);
  });

  it('returns the latest value of every metric with its type', async () => {
    await store.write([
      r(1, T0, [
        { metric: 'temp', kind: 'f32', value: 20.5 },
        { metric: 'door', kind: 'bool', value: true },
        { metric: 'count', kind: 'int', value: 7 },
        { metric: 'state', kind: 'string', value: 'idle' },
      ]),
      r(2, T0 + 1000, [
        { metric: 'temp', kind: 'f32', value: 21 },
        { metric: 'door', kind: 'bool', value: false },
      ]),
      r(3, T0 - 5000, [{ metric: 'state', kind: 'string', value: 'older' }]), // out of order: not the latest
    ]);
    expect(await store.latest('d1')).toEqual({
      temp: { ts: T0 + 1000, value: 21 },
      door: { ts: T0 + 1000, value: false },
      count: { ts: T0, value: 7 },
      state: { ts: T0, value: 'idle' },
    });
    expect(await store.latest('nobody')).toEqual({});
  });

  it('computes mean, min, max, last and count per bucket in SQL and leaves empty buckets out', async () => {
    const values = [1, 3, 10, 20, 7];
    const tss = [T0, T0 + 500, T0 + 1000, T0 + 1999, T0 + 4000];
    await store.write(values.map((v, i) => r(i + 1, tss[i]!, [{ metric: 'x', kind: 'f64', value: v }])));
    const q = { deviceId: 'd1', metric: 'x', from: T0, to: T0 + 5000, stepMs: 1000 } as const;
    expect(await store.series({ ...q, agg: 'mean' })).toEqual([
      { ts: T0, value: 2 },
      { ts: T0 + 1000, value: 15 },
      { ts: T0 + 4000, value: 7 },
    ]);
    expect(await store.series({ ...q, agg: 'min' })).toEqual([
      { ts: T0, value: 1 },
      { ts: T0 + 1000, value: 10 },
      { ts: T0 + 4000, value: 7 },
    ]);
    expect(await store.series({ ...q, agg: 'max' })).toEqual([
      { ts: T0, value: 3 },
      { ts: T0 + 1000, value: 20 },
      { ts: T0 + 4000, value: 7 },
    ]);
    expect(await store.series({ ...q, agg: 'last' })).toEqual([
      { ts: T0, value: 3 },
      { ts: T0 + 1000, value: 20 },
      { ts: T0 + 4000, value: 7 },
    ]);
    expect(await store.series({ ...q, agg: 'count' })).toEqual([
      { ts: T0, value: 2 },
      { ts: T0 + 1000, value: 2 },
      { ts: T0 + 4000, value: 1 },
    ]);
    // from inclusive, to exclusive; buckets start at from + k * step.
    expect(await store.series({ ...q, from: T0 + 500, to: T0 + 1999, stepMs: 10_000, agg: 'count' })).toEqual([
      { ts: T0 + 500, value: 2 },
    ]);
  });

  it('treats bools as 0/1 for mean/min/max and as booleans for last', async () => {
    await store.write(
      [true, false, true, true].map((b, i) => r(i + 1, T0 + i, [{ metric: 'on', kind: 'bool', value: b }])),
    );
    const q = { deviceId: 'd1', metric: 'on', from: T0, to: T0 + 10, stepMs: 10 } as const;
    expect(await store.series({ ...q, agg: 'mean' })).toEqual([{ ts: T0, value: 0.75 }]);
    expect(await store.series({ ...q, agg: 'min' })).toEqual([{ ts: T0, value: 0 }]);
    expect(await store.series({ ...q, agg: 'max' })).toEqual([{ ts: T0, value: 1 }]);
    expect(await store.series({ ...q, agg: 'last' })).toEqual([{ ts: T0, value: true }]);
  });

  it('offers only last and count for strings', async () => {
    await store.write([
      r(1, T0, [{ metric: 's', kind: 'string', value: 'a' }]),
      r(2, T0 + 1, [{ metric: 's', kind: 'string', value: 'b' }]),
    ]);
    const q = { deviceId: 'd1', metric: 's', from: T0, to: T0 + 10, stepMs: 10 } as const;
    expect(await store.series({ ...q, agg: 'last' })).toEqual([{ ts: T0, value: 'b' }]);
    expect(await store.series({ ...q, agg: 'count' })).toEqual([{ ts: T0, value: 2 }]);
    await expect(store.series({ ...q, agg: 'mean' })).rejects.toThrow(/last and count/);
  });

  it('answers an unknown series with no points, and keeps data across a reopen', async () => {
    expect(await store.series({ deviceId: 'd1', metric: 'none', from: 0, to: T0, stepMs: 1000, agg: 'mean' })).toEqual(
      [],
    );
    await store.write([r(1, T0, [{ metric: 'k', kind: 'int', value: 5 }])]);
    await store.close();
    store = new SqliteStore(dir.path);
    expect(await store.latest('d1')).toEqual({ k: { ts: T0, value: 5 } });
    await store.write([r(1, T0, [{ metric: 'k', kind: 'int', value: 6 }])]); // still idempotent after reopen
    expect(await store.latest('d1')).toEqual({ k: { ts: T0, value: 5 } });
  });

  it('prunes readings older than a cutoff (retention)', async () => {
    await store.write(
      [1, 2, 3, 4].map((i) =>
        r(i, T0 + i * 1000, [
          { metric: 'a', kind: 'int', value: i },
          { metric: 'b', kind: 'int', value: i },
        ]),
      ),
    );
    expect(store.pruneBefore(T0 + 3000)).toBe(2);
    const q = { deviceId: 'd1', from: 0, to: T0 + 10_000, stepMs: T0 + 10_000, agg: 'count' } as const;
    expect(await store.series({ ...q, metric: 'a' })).toEqual([{ ts: 0, value: 2 }]);
    expect(await store.series({ ...q, metric: 'b' })).toEqual([{ ts: 0, value: 2 }]);
  });

  it('rejects every call once closed (ping is what /readyz uses)', async () => {
    await store.ping();
    await store.close();
    await expect(store.ping()).rejects.toThrow(/closed/);
    await expect(store.write([r(1, T0, [{ metric: 'k', kind: 'int', value: 1 }])])).rejects.toThrow(/closed/);
  });

  it('answers time ranges from the (device, ts) index', async () => {
    await store.write([r(1, T0, [{ metric: 'k', kind: 'int', value: 1 }])]);
    const plan = store.db
      .prepare(
        `EXPLAIN QUERY PLAN SELECT v FROM readings WHERE device = 1 AND ts >= 0 AND ts < 10 AND v ->> '$."1"' IS NOT NULL`,
      )
      .all() as Array<{ detail: string }>;
    expect(plan.map((p) => p.detail).join(' ')).toContain('readings_by_time');
  });

  it('stores a reading once per (device, epoch, seq) even when a resend carries another timestamp', async () => {
    await store.write([r(1, T0, [{ metric: 'k', kind: 'int', value: 1 }])]);
    await store.write([r(1, T0 + 999, [{ metric: 'k', kind: 'int', value: 1 }])]);
    expect(
      await store.series({ deviceId: 'd1', metric: 'k', from: 0, to: T0 + 10_000, stepMs: T0 + 10_000, agg: 'count' }),
    ).toEqual([{ ts: 0, value: 1 }]);
  });

  it('leaves out buckets where other metrics of the device have readings but this one has none', async () => {
    await store.write([
      r(1, T0, [{ metric: 'a', kind: 'int', value: 1 }]),
      r(2, T0 + 1000, [{ metric: 'b', kind: 'int', value: 2 }]),
    ]);
    expect(
      await store.series({ deviceId: 'd1', metric: 'a', from: T0, to: T0 + 2000, stepMs: 1000, agg: 'count' }),
    ).toEqual([{ ts: T0, value: 1 }]);
    expect(
      await store.series({ deviceId: 'd1', metric: 'b', from: T0, to: T0 + 2000, stepMs: 1000, agg: 'last' }),
    ).toEqual([{ ts: T0 + 1000, value: 2 }]);
  });
});
