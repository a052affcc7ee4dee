/**
 * Embedded time-series store (HUB_DATA_DIR/readings.db) for when no InfluxDB is configured.
 *
 * One row per reading in one B-tree: primary key (device, ts, epoch, seq), so writing a reading again is a
 * no-op, and time ranges of a device are ranges of the key. A reading's ts is part of its identity, as in
 * InfluxDB (whose point identity is device + a timestamp made of ts, epoch and seq): a resend and a spool
 * replay carry the reading's ts, so they hit the same row. Hubs before issue 16 keyed rows by (device, epoch,
 * seq) with a second index on (device, ts); migrateReadings() converts such a file once. The values travel
 * in a small JSON object keyed by series id (a series is one metric of one device, with its kind), and the
 * aggregates of series() are computed in SQL by extracting that key per row. A reading costs one B-tree
 * insert however many values it carries (the second index cost a third of the store's CPU per reading), and
 * rows go ROWS_PER_INSERT to a statement.
 * `latest` keeps the newest value of every series, updated once per series per write.
 * Values keep their JSON type: numbers, true/false (1/0 in SQL, so mean/min/max see 0/1), strings.
 *
 * Writes run one at a time, in call order. A spool batch (tens of thousands of readings under load) is one
 * transaction, so the pages it touches are written to the WAL once, but it yields to the event loop every
 * SLICE_READINGS readings: a batch used to hold the hub's only thread for 30-50 ms, which is what the devices'
 * ack latency p99 was made of at 10 000 readings/s and more.
 */
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { MetricKind } from '@tendril/device-sdk/codec';
import { openDatabase, type SqliteDatabase } from './sqlite.js';
import {
  type DeviceInfo,
  ROWS_PER_INSERT,
  RowsWrittenBefore,
  RowWriter,
  type SeriesInfo,
  seriesInfo,
} from './sqlite-rows.js';

export { ROWS_PER_INSERT };
import type {
  LatestValue,
  ReadingBatch,
  ReadingVisitor,
  ScalarValue,
  SeriesPoint,
  SeriesQuery,
  StoredReading,
  TimeSeriesStore,
} from './types.js';

/** Readings rows, keyed as the file header says. */
function readingsTable(name: string): string {
  return `CREATE TABLE IF NOT EXISTS ${name} (
  device INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  v TEXT NOT NULL,
  PRIMARY KEY (device, ts, epoch, seq)
) STRICT, WITHOUT ROWID;`;
}

/**
 * A turn of the event loop inside a batch's transaction visits readings for SLICE_MS (the clock is read every
 * SLICE_STEP readings), and SLICE_READINGS at most however fast the machine is. Slices of a fixed 1 000
 * readings took 3-5 ms, and 20-30 ms at their worst, which put the devices' ack p99 at 20 000 readings/s over
 * 50 ms (docs/performance.md, "Shorter SQLite slices").
 */
export const SLICE_MS = 2;
const SLICE_STEP = 100;
export const SLICE_READINGS = 1000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
) STRICT;
CREATE TABLE IF NOT EXISTS series (
  id INTEGER PRIMARY KEY,
  device INTEGER NOT NULL REFERENCES devices(id),
  metric TEXT NOT NULL,
  kind TEXT NOT NULL,
  UNIQUE (device, metric)
) STRICT;
${readingsTable('readings')}
CREATE TABLE IF NOT EXISTS latest (
  series INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  value ANY NOT NULL
) STRICT;
`;

const BUCKET = 'CAST((ts - @from) / @step AS INTEGER)';
const X = 'v ->> @path';
const WHERE = `device = @device AND ts >= @from AND ts < @to AND ${X} IS NOT NULL`;
const AGGREGATE_SQL = {
  mean: `SELECT ${BUCKET} AS b, avg(${X}) AS v FROM readings WHERE ${WHERE} GROUP BY b ORDER BY b`,
  min: `SELECT ${BUCKET} AS b, min(${X}) AS v FROM readings WHERE ${WHERE} GROUP BY b ORDER BY b`,
  max: `SELECT ${BUCKET} AS b, max(${X}) AS v FROM readings WHERE ${WHERE} GROUP BY b ORDER BY b`,
  count: `SELECT ${BUCKET} AS b, count(*) AS v FROM readings WHERE ${WHERE} GROUP BY b ORDER BY b`,
  // SQLite returns the bare column from the row that holds max(ts) of the group.
  last: `SELECT ${BUCKET} AS b, ${X} AS v, max(ts) AS t FROM readings WHERE ${WHERE} GROUP BY b ORDER BY b`,
} as const;

export class SqliteStore implements TimeSeriesStore {
  readonly kind = 'sqlite' as const;
  readonly db: SqliteDatabase;
  private readonly devices = new Map<string, DeviceInfo>();
  private readonly stmt;
  private readonly rows: RowWriter;
  private readonly insertRows: (feed: (visitor: ReadingVisitor) => void, multi: boolean) => void;
  /** The write in progress and those queued behind it: writes run one at a time (see the file header). */
  private writeQueue: Promise<void> = Promise.resolve();
  private closed = false;

  /** Opens (or creates) `readings.db` in `dataDir`, converting an earlier hub's layout first. */
  /** How long a slice of a batch may hold the event loop, ms (SLICE_MS; tests set 0: one step per slice). */
  private readonly sliceMs: number;

  constructor(dataDir: string, opts: { logger?: FastifyBaseLogger; sliceMs?: number } = {}) {
    this.sliceMs = opts.sliceMs ?? SLICE_MS;
    const path = join(dataDir, 'readings.db');
    restrictToOwner(path);
    this.db = openDatabase(path);
    migrateReadings(this.db, opts.logger);
    this.db.exec(SCHEMA);
    this.stmt = {
      insert: this.db.prepare('INSERT OR IGNORE INTO readings (device, epoch, seq, ts, v) VALUES (?, ?, ?, ?, ?)'),
      insertMany: this.db.prepare(
        `INSERT OR IGNORE INTO readings (device, epoch, seq, ts, v) VALUES ${Array(ROWS_PER_INSERT).fill('(?, ?, ?, ?, ?)').join(', ')}`,
      ),
      addDevice: this.db
        .prepare(
          'INSERT INTO devices (name) VALUES (?) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id',
        )
        .pluck(),
      addSeries: this.db
        .prepare(
          'INSERT INTO series (device, metric, kind) VALUES (?, ?, ?) ON CONFLICT (device, metric) DO UPDATE SET kind = excluded.kind RETURNING id',
        )
        .pluck(),
      setLatest: this.db.prepare(
        'INSERT INTO latest (series, ts, value) VALUES (?, ?, ?) ON CONFLICT (series) DO UPDATE SET ts = excluded.ts, value = excluded.value WHERE excluded.ts >= latest.ts',
      ),
      latestOf: this.db.prepare(
        'SELECT s.metric, s.kind, l.ts, l.value FROM latest l JOIN series s ON s.id = l.series WHERE s.device = ?',
      ),
      prune: this.db.prepare('DELETE FROM readings WHERE device = ? AND ts < ?'),
      ping: this.db.prepare('SELECT 1').pluck(),
      aggregate: Object.fromEntries(Object.entries(AGGREGATE_SQL).map(([k, sql]) => [k, this.db.prepare(sql)])),
    };
    this.loadIds();
    const rows = (this.rows = new RowWriter(this, this.stmt.insert, this.stmt.insertMany, this.stmt.setLatest));
    this.insertRows = this.db.transaction((feed: (visitor: ReadingVisitor) => void, multi: boolean) => {
      rows.reset(multi);
      feed(rows);
      rows.finish();
    });
  }

  private loadIds(): void {
    this.devices.clear();
    const byId = new Map<number, DeviceInfo>();
    for (const row of this.db.prepare('SELECT id, name FROM devices').all() as Array<{ id: number; name: string }>) {
      const info: DeviceInfo = { id: row.id, series: new Map() };
      this.devices.set(row.name, info);
      byId.set(row.id, info);
    }
    for (const row of this.db.prepare('SELECT id, device, metric, kind FROM series').all() as Array<{
      id: number;
      device: number;
      metric: string;
      kind: MetricKind;
    }>) {
      byId.get(row.device)?.series.set(row.metric, seriesInfo(row.id, row.kind));
    }
  }

  /** @internal RowWriter's */
  deviceOf(name: string): DeviceInfo {
    let info = this.devices.get(name);
    if (info === undefined) {
      info = { id: this.stmt.addDevice.get(name) as number, series: new Map() };
      this.devices.set(name, info);
    }
    return info;
  }

  /** @internal RowWriter's */
  addSeries(device: DeviceInfo, metric: string, kind: MetricKind): SeriesInfo {
    const id = this.stmt.addSeries.get(device.id, metric, kind) as number;
    const info = seriesInfo(id, kind);
    device.series.set(metric, info);
    return info;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the SQLite store is closed');
  }

  async write(readings: readonly StoredReading[]): Promise<void> {
    this.assertOpen();
    if (readings.length === 0) return;
    await this.queued(() =>
      this.insert((visitor) => {
        for (const r of readings) {
          visitor.begin(r.deviceId, r.epoch, r.seq, r.ts);
          for (const v of r.values) visitor.value(v.metric, v.kind, v.value);
          visitor.end();
        }
      }),
    );
  }

  /**
   * As write(batch.toArray()), visiting the spool's records: no object per reading and per value. One
   * transaction, yielding to the event loop between slices (SLICE_MS, at most SLICE_READINGS readings).
   */
  async writeBatch(batch: ReadingBatch): Promise<void> {
    this.assertOpen();
    if (batch.length === 0) return;
    await this.queued(() => this.insertSliced(batch));
  }

  /** Runs `write` after every write queued before it (whatever their outcome). */
  private queued(write: () => void | Promise<void>): Promise<void> {
    // A write accepted before close() runs: close() waits for the queue.
    const run = this.writeQueue.then(write);
    this.writeQueue = run.catch(() => undefined);
    return run;
  }

  private insert(feed: (visitor: ReadingVisitor) => void): void {
    try {
      this.insertRows(feed, true);
    } catch (err) {
      // The transaction rolled back: ids created inside it may not exist. Reload them.
      this.loadIds();
      if (!(err instanceof RowsWrittenBefore)) throw err;
      this.insertOneRowPerStatement(feed);
    }
  }

  private insertOneRowPerStatement(feed: (visitor: ReadingVisitor) => void): void {
    try {
      this.insertRows(feed, false);
    } catch (err) {
      this.loadIds();
      throw err;
    }
  }

  /**
   * insertRows() spread over turns of the event loop: BEGIN, a slice of readings per turn, COMMIT. Nothing
   * else writes on this connection meanwhile (writes are queued; close() waits for them), and the API's
   * reads on it see the rows early, which is harmless: the spool already holds them durably.
   */
  private async insertSliced(batch: ReadingBatch): Promise<void> {
    try {
      await this.insertSlicedOnce(batch, true);
    } catch (err) {
      if (!(err instanceof RowsWrittenBefore)) throw err;
      await this.insertSlicedOnce(batch, false);
    }
  }

  private async insertSlicedOnce(batch: ReadingBatch, multi: boolean): Promise<void> {
    const { db, rows } = this;
    const cursor = batch.cursor();
    db.exec('BEGIN');
    try {
      rows.reset(multi);
      for (let left = batch.length; left > 0; ) {
        const sliceEnds = performance.now() + this.sliceMs;
        let inSlice = 0;
        do {
          const visited = cursor.read(rows, Math.min(left, SLICE_STEP, SLICE_READINGS - inSlice));
          // The batch holds fewer readings than it counts: nothing more to visit.
          left = visited === 0 ? 0 : left - visited;
          inSlice += visited;
        } while (left > 0 && inSlice < SLICE_READINGS && performance.now() < sliceEnds);
        if (rows.writtenBefore) break; // finish() throws: the batch is written again, one row per statement
        if (left > 0) await nextTurn();
      }
      rows.finish();
      db.exec('COMMIT');
    } catch (err) {
      if (db.open && db.inTransaction) db.exec('ROLLBACK');
      this.loadIds();
      throw err;
    }
  }

  async latest(deviceId: string): Promise<Record<string, LatestValue>> {
    this.assertOpen();
    const out: Record<string, LatestValue> = {};
    const device = this.devices.get(deviceId);
    if (!device) return out;
    for (const row of this.stmt.latestOf.all(device.id) as Array<{
      metric: string;
      kind: MetricKind;
      ts: number;
      value: number | string;
    }>) {
      out[row.metric] = { ts: row.ts, value: fromSql(row.value, row.kind) };
    }
    return out;
  }

  async series(q: SeriesQuery): Promise<SeriesPoint[]> {
    this.assertOpen();
    if (!(q.stepMs >= 1)) throw new RangeError(`stepMs must be >= 1, got ${q.stepMs}`);
    const device = this.devices.get(q.deviceId);
    const info = device?.series.get(q.metric);
    if (!device || !info || q.to <= q.from) return [];
    if (info.kind === 'string' && q.agg !== 'last' && q.agg !== 'count') {
      throw new RangeError(`metric ${q.metric} holds strings: only the aggregates last and count apply, not ${q.agg}`);
    }
    const stmt = this.stmt.aggregate[q.agg];
    if (!stmt) throw new RangeError(`unknown aggregate ${String(q.agg)}`);
    const rows = stmt.all({ device: device.id, path: info.path, from: q.from, to: q.to, step: q.stepMs }) as Array<{
      b: number;
      v: number | string | null;
    }>;
    const asKind = q.agg === 'last' ? info.kind : null;
    return rows.map((r) => ({
      ts: q.from + r.b * q.stepMs,
      value: r.v === null ? null : asKind ? fromSql(r.v, asKind) : r.v,
    }));
  }

  /**
   * Deletes readings with ts < cutoffMs (retention) and returns how many went. One statement per device
   * over the (device, ts) key prefix, so writers are not held up for long. `latest` keeps the newest values.
   * Run while a batch's transaction is open, the deletes join it (and are retried next time if it rolls back).
   */
  pruneBefore(cutoffMs: number): number {
    this.assertOpen();
    let deleted = 0;
    for (const device of this.devices.values()) deleted += this.stmt.prune.run(device.id, cutoffMs).changes;
    return deleted;
  }

  async ping(): Promise<void> {
    this.assertOpen();
    this.stmt.ping.get();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writeQueue; // a batch's transaction may span turns: let it end before the connection does
    this.db.close();
  }
}

/**
 * Converts a readings table keyed (device, epoch, seq) with an index on (device, ts), as hubs before issue 16
 * made it, to the one-B-tree layout, in one transaction (a crash midway leaves the old file as it was).
 * Same rows, same identity for every reading the hub wrote: a resend or replay carries the same ts.
 */
function migrateReadings(db: SqliteDatabase, logger: FastifyBaseLogger | undefined): void {
  const old = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = 'readings_by_time'").get();
  if (old === undefined) return;
  const started = performance.now();
  const rows = db.transaction(() => {
    db.exec(readingsTable('readings_rekeyed'));
    const copied = db
      .prepare(
        'INSERT INTO readings_rekeyed (device, epoch, seq, ts, v) SELECT device, epoch, seq, ts, v FROM readings ORDER BY device, ts, epoch, seq',
      )
      .run().changes;
    db.exec('DROP TABLE readings; ALTER TABLE readings_rekeyed RENAME TO readings;');
    return copied;
  })();
  logger?.info(
    { rows, ms: Math.round(performance.now() - started) },
    'readings.db: readings re-keyed by (device, ts, epoch, seq), one B-tree instead of two (issue 16)',
  );
}

function fromSql(v: number | string, kind: MetricKind): ScalarValue {
  if (kind === 'bool') return v === 1;
  return v;
}

/**
 * Readings are for the hub's user only (issue 11, item 7): readings.db is created 0600 before SQLite opens it
 * (SQLite gives its -wal and -shm files the database file's mode), and files an earlier hub left 0644 are
 * restricted.
 */
function restrictToOwner(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
