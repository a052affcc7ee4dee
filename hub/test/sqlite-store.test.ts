/** The embedded SQLite time-series store (TimeSeriesStore contract, hub/src/storage/types.ts). */
import { chmodSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeRecord, RecordBatch, recordView } from '../src/spool/record.js';
import { ROWS_PER_INSERT, SLICE_READINGS, SqliteStore } from '../src/storage/sqlite-store.js';
import { type StoredReading, UnreadableBatchError } from '../src/storage/types.js';
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

  it('is idempotent on (device, ts, epoch, seq)', async () => {
    const batch = [
      r(1, T0, [{ metric: 'temp', kind: 'f64', value: 1.5 }]),
      r(2, T0 + 1000, [{ metric: 'temp', kind: 'f64', value: 2.5 }]),
    ];
    await store.write(batch);
    await store.write(batch);
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

  it('writes rows ROWS_PER_INSERT to a statement, and a write holding a reading written before goes row by row: that reading changes nothing, not even latest', async () => {
    const n = 2 * ROWS_PER_INSERT + 5; // two full statements and a few rows one at a time
    const temp = (seq: number, value: number) => r(seq, T0 + seq, [{ metric: 'temp', kind: 'f64', value }]);
    const rowsOf = (s: SqliteStore): unknown[] =>
      s.db.prepare('SELECT device, epoch, seq, ts, v FROM readings ORDER BY ts').all();
    const asBatch = (readings: StoredReading[]): RecordBatch => {
      const b = new RecordBatch();
      b.addRecord(recordView(encodeRecord(readings, T0)));
      return b;
    };
    // A write of n new readings but one, written before with another value and the newest ts, in its first
    // statement's worth: the rows after it (the last few too) are new.
    const withOld = (oldSeq: number) =>
      Array.from({ length: n }, (_, i) => (i === 2 ? temp(oldSeq, oldSeq) : temp(i + 1, i + 1)));
    await store.write([temp(1000, -1)]);
    await store.write(withOld(1000));
    expect((await store.latest('d1')).temp).toEqual({ ts: T0 + 1000, value: -1 });
    await store.writeBatch(asBatch([temp(2000, -2)]));
    await store.writeBatch(asBatch(withOld(2000)));
    expect((await store.latest('d1')).temp).toEqual({ ts: T0 + 2000, value: -2 });
    // The same reading twice inside one statement's worth of a write: the first one counts.
    const twice = [
      temp(3000, 100),
      ...Array.from({ length: ROWS_PER_INSERT + 3 }, (_, i) => (i === 1 ? temp(3000, 200) : temp(2001 + i, i))),
    ];
    await store.writeBatch(asBatch(twice));
    expect((await store.latest('d1')).temp).toEqual({ ts: T0 + 3000, value: 100 });
    const reference = new SqliteStore(join(dir.path, 'reference'));
    try {
      // The same readings, one per write (every row its own statement).
      for (const reading of [temp(1000, -1), ...withOld(1000), temp(2000, -2), ...withOld(2000), ...twice])
        await reference.write([reading]);
      expect(rowsOf(store)).toEqual(rowsOf(reference));
      expect(rowsOf(store)).toHaveLength(n + 2 + ROWS_PER_INSERT + 2);
      expect(await store.latest('d1')).toEqual(await reference.latest('d1'));
    } finally {
      await reference.close();
    }
  });

  it('takes latest from the newest reading a write adds, when no reading was written before', async () => {
    const n = 3 * ROWS_PER_INSERT + 2;
    await store.write(
      Array.from({ length: n }, (_, i) => r(i + 1, T0 + n - i, [{ metric: 'temp', kind: 'f64', value: i }])),
    );
    expect((await store.latest('d1')).temp).toEqual({ ts: T0 + n, value: 0 });
    const count = await store.series({
      deviceId: 'd1',
      metric: 'temp',
      from: T0,
      to: T0 + 2 * n,
      stepMs: 2 * n,
      agg: 'count',
    });
    expect(count).toEqual([{ ts: T0, value: n }]);
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

  it('answers time ranges from the primary key (device, ts, ...), the only B-tree of readings', async () => {
    await store.write([r(1, T0, [{ metric: 'k', kind: 'int', value: 1 }])]);
    const plan = store.db
      .prepare(
        `EXPLAIN QUERY PLAN SELECT v FROM readings WHERE device = 1 AND ts >= 0 AND ts < 10 AND v ->> '$."1"' IS NOT NULL`,
      )
      .all() as Array<{ detail: string }>;
    expect(plan.map((p) => p.detail).join(' ')).toMatch(
      /SEARCH readings USING PRIMARY KEY \(device=\? AND ts>\? AND ts<\?\)/,
    );
    expect(
      store.db.prepare("SELECT name FROM sqlite_schema WHERE tbl_name = 'readings' AND type = 'index'").all(),
    ).toEqual([]);
  });

  it('stores a reading once per (device, ts, epoch, seq), the identity InfluxDB gives its point', async () => {
    const reading = r(1, T0, [{ metric: 'k', kind: 'int', value: 1 }]);
    await store.write([reading]);
    await store.write([reading, r(2, T0, [{ metric: 'k', kind: 'int', value: 2 }])]);
    expect(
      await store.series({ deviceId: 'd1', metric: 'k', from: 0, to: T0 + 10_000, stepMs: T0 + 10_000, agg: 'count' }),
    ).toEqual([{ ts: 0, value: 2 }]);
  });

  it("re-keys an earlier hub's readings table (device, epoch, seq) + index (device, ts) once, keeping every row", async () => {
    await store.close();
    const legacyDir = join(dir.path, 'legacy');
    const legacy = new SqliteStore(legacyDir);
    await legacy.write([
      r(1, T0, [{ metric: 'k', kind: 'int', value: 1 }]),
      r(2, T0 + 1000, [{ metric: 'k', kind: 'int', value: 2 }]),
      r(1, T0 + 5, [{ metric: 'k', kind: 'int', value: 7 }], 1, 'd2'),
    ]);
    // The layout hubs before issue 16 created.
    legacy.db.exec(`CREATE TABLE old (device INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
      ts INTEGER NOT NULL, v TEXT NOT NULL, PRIMARY KEY (device, epoch, seq)) STRICT, WITHOUT ROWID;
      INSERT INTO old SELECT device, epoch, seq, ts, v FROM readings; DROP TABLE readings;
      ALTER TABLE old RENAME TO readings; CREATE INDEX readings_by_time ON readings (device, ts);`);
    await legacy.close();

    const lines: Array<{ rows: number }> = [];
    const logger = { info: (o: { rows: number }) => lines.push(o) } as never;
    store = new SqliteStore(legacyDir, { logger });
    expect(lines).toEqual([expect.objectContaining({ rows: 3 })]);
    const schema = store.db.prepare("SELECT sql FROM sqlite_schema WHERE tbl_name = 'readings'").pluck().all();
    expect(schema).toEqual([expect.stringContaining('PRIMARY KEY (device, ts, epoch, seq)')]);
    expect(
      await store.series({ deviceId: 'd1', metric: 'k', from: T0, to: T0 + 2000, stepMs: 1000, agg: 'last' }),
    ).toEqual([
      { ts: T0, value: 1 },
      { ts: T0 + 1000, value: 2 },
    ]);
    expect(await store.latest('d2')).toEqual({ k: { ts: T0 + 5, value: 7 } });
    // A spool replay across the upgrade lands on the same rows.
    await store.write([r(2, T0 + 1000, [{ metric: 'k', kind: 'int', value: 2 }])]);
    expect(store.db.prepare('SELECT count(*) FROM readings').pluck().get()).toBe(3);
    await store.close();
    store = new SqliteStore(legacyDir, { logger });
    expect(lines).toHaveLength(1); // converted once
  });

  it('writes a batch larger than a slice as one transaction, letting the event loop run between slices', async () => {
    const readings = Array.from({ length: SLICE_READINGS * 2 + 10 }, (_, i) =>
      r(i + 1, T0 + i, [{ metric: 'k', kind: 'int', value: i }]),
    );
    const batch = new RecordBatch();
    batch.addRecord(recordView(encodeRecord(readings, T0)));
    const count = (): number => store.db.prepare('SELECT count(*) FROM readings').pluck().get() as number;
    let turns = 0;
    let inTransactionMeanwhile = false;
    const ticker = setInterval(() => {
      turns++;
      inTransactionMeanwhile ||= store.db.inTransaction;
    }, 0);
    const queuedBehind = store.write([r(1, T0, [{ metric: 'k', kind: 'int', value: -1 }], 2)]);
    const written = store.writeBatch(batch);
    await written;
    await queuedBehind;
    clearInterval(ticker);
    expect(count()).toBe(readings.length + 1);
    expect(inTransactionMeanwhile).toBe(true); // other work ran while the batch's transaction was open
    expect(turns).toBeGreaterThan(0);
    expect(store.db.inTransaction).toBe(false);
    expect(await store.latest('d1')).toEqual({ k: { ts: T0 + readings.length - 1, value: readings.length - 1 } });
  });

  it('ends a slice once its time is up, before SLICE_READINGS readings', async () => {
    const timed = new SqliteStore(join(dir.path, 'timed'), { sliceMs: 0 }); // every step of readings is a slice
    try {
      const readings = Array.from({ length: 350 }, (_, i) =>
        r(i + 1, T0 + i, [{ metric: 'k', kind: 'int', value: i }]),
      );
      const batch = new RecordBatch();
      batch.addRecord(recordView(encodeRecord(readings, T0)));
      const seen: number[] = [];
      const count = (): number => timed.db.prepare('SELECT count(*) FROM readings').pluck().get() as number;
      // Runs in every check phase, as the store's slices do: it sees each pause between two slices.
      let writing = true;
      const tick = (): void => {
        if (timed.db.inTransaction) seen.push(count());
        if (writing) setImmediate(tick);
      };
      setImmediate(tick);
      await timed.writeBatch(batch);
      writing = false;
      // Other work ran between slices of one batch of fewer than SLICE_READINGS, each slice adding rows.
      expect(seen.length).toBeGreaterThanOrEqual(3);
      expect(seen.every((n, i) => n < readings.length && (i === 0 || n > seen[i - 1]!))).toBe(true);
      expect(readings.length).toBeLessThan(SLICE_READINGS);
      expect(count()).toBe(readings.length);
    } finally {
      await timed.close();
    }
  });

  it('rolls a sliced batch back whole when a later slice fails, and the next write goes on', async () => {
    const good = Array.from({ length: SLICE_READINGS + 5 }, (_, i) =>
      r(i + 1, T0 + i, [{ metric: 'k', kind: 'int', value: i }]),
    );
    const batch = new RecordBatch();
    batch.addRecord(recordView(encodeRecord(good, T0)));
    // A second record whose body is cut: reading it fails after the first slice went in.
    const bad = recordView(encodeRecord([r(1, T0, [{ metric: 'k', kind: 'int', value: 1 }], 1, 'd9')], T0));
    batch.addRecord({ ...bad, body: bad.body.subarray(0, bad.body.length - 3) });
    await expect(store.writeBatch(batch)).rejects.toThrow(UnreadableBatchError);
    expect(store.db.inTransaction).toBe(false);
    expect(store.db.prepare('SELECT count(*) FROM readings').pluck().get()).toBe(0);
    await store.write([r(1, T0, [{ metric: 'k', kind: 'int', value: 1 }], 1, 'd9')]);
    expect(await store.latest('d9')).toEqual({ k: { ts: T0, value: 1 } });
  });

  it('close() lets a sliced batch in progress finish first', async () => {
    const readings = Array.from({ length: SLICE_READINGS * 3 }, (_, i) =>
      r(i + 1, T0 + i, [{ metric: 'k', kind: 'int', value: i }]),
    );
    const batch = new RecordBatch();
    batch.addRecord(recordView(encodeRecord(readings, T0)));
    const written = store.writeBatch(batch);
    await store.close();
    await written;
    const reopened = new SqliteStore(dir.path);
    try {
      expect(reopened.db.prepare('SELECT count(*) FROM readings').pluck().get()).toBe(readings.length);
    } finally {
      await reopened.close();
    }
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
