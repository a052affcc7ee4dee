/**
 * Embedded time-series store (HUB_DATA_DIR/readings.db) for when no InfluxDB is configured.
 *
 * One row per reading: primary key (device, epoch, seq), so writing a reading again is a no-op (exact
 * idempotence on the reading's identity), and an index on (device, ts) for time ranges. The values travel
 * in a small JSON object keyed by series id (a series is one metric of one device, with its kind), and the
 * aggregates of series() are computed in SQL by extracting that key per row. A reading costs two B-tree
 * inserts however many values it carries; one row per value would cost two per value, which dominated the
 * hub's ingest CPU. `latest` keeps the newest value of every series, updated once per series per write.
 * Values keep their JSON type: numbers, true/false (1/0 in SQL, so mean/min/max see 0/1), strings.
 */
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type Database from 'better-sqlite3';
import type { MetricKind } from '@tendril/device-sdk/codec';
import { openDatabase, type SqliteDatabase } from './sqlite.js';
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
CREATE TABLE IF NOT EXISTS readings (
  device INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  v TEXT NOT NULL,
  PRIMARY KEY (device, epoch, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_by_time ON readings (device, ts);
CREATE TABLE IF NOT EXISTS latest (
  series INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  value ANY NOT NULL
) STRICT;
`;

interface SeriesInfo {
  id: number;
  kind: MetricKind;
  /** JSON path of this series' values in a reading row: $."<id>". */
  path: string;
}

interface DeviceInfo {
  id: number;
  series: Map<string, SeriesInfo>;
}

/**
 * Writes the readings it visits as rows (inside SqliteStore's transaction): one JSON object of the values per
 * reading, and the newest value per series once per write.
 */
class RowWriter implements ReadingVisitor {
  /** Newest value per series in this write: one `latest` update per series, not per value. */
  private readonly newest = new Map<number, { ts: number; value: number | string }>();
  private readonly ids: number[] = [];
  private readonly sqlValues: Array<number | string> = [];
  private device: DeviceInfo | null = null;
  private epoch = 0;
  private seq = 0;
  private ts = 0;
  private json = '';

  constructor(
    private readonly store: SqliteStore,
    private readonly insert: Database.Statement,
    private readonly setLatest: Database.Statement,
  ) {}

  reset(): void {
    this.newest.clear();
  }

  begin(deviceId: string, epoch: number, seq: number, ts: number): void {
    this.device = this.store.deviceOf(deviceId);
    this.epoch = epoch;
    this.seq = seq;
    this.ts = ts;
    this.json = '{';
    this.ids.length = 0;
    this.sqlValues.length = 0;
  }

  value(metric: string, kind: MetricKind, value: ScalarValue): void {
    const device = this.device!;
    let info = device.series.get(metric);
    if (info === undefined || info.kind !== kind) info = this.store.addSeries(device, metric, kind);
    let text: string;
    let sqlValue: number | string;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return; // not representable in JSON; validation rejects these
      text = String(value);
      sqlValue = value;
    } else if (typeof value === 'boolean') {
      text = value ? 'true' : 'false';
      sqlValue = value ? 1 : 0;
    } else {
      text = JSON.stringify(value);
      sqlValue = value;
    }
    this.json += this.json.length === 1 ? `"${info.id}":${text}` : `,"${info.id}":${text}`;
    this.ids.push(info.id);
    this.sqlValues.push(sqlValue);
  }

  end(): void {
    const ts = this.ts;
    // A reading written before (same device, epoch, seq) changes nothing, not even `latest`.
    if (this.insert.run(this.device!.id, this.epoch, this.seq, ts, this.json + '}').changes === 0) return;
    const { ids, sqlValues, newest } = this;
    for (let i = 0; i < ids.length; i++) {
      const cur = newest.get(ids[i]!);
      if (cur === undefined) newest.set(ids[i]!, { ts, value: sqlValues[i]! });
      else if (cur.ts <= ts) {
        cur.ts = ts;
        cur.value = sqlValues[i]!;
      }
    }
  }

  finish(): void {
    for (const [series, { ts, value }] of this.newest) this.setLatest.run(series, ts, value);
    this.newest.clear();
  }
}

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
  private readonly insertRows: (feed: (visitor: ReadingVisitor) => void) => void;
  private closed = false;

  /** Opens (or creates) `readings.db` in `dataDir`. */
  constructor(dataDir: string) {
    const path = join(dataDir, 'readings.db');
    restrictToOwner(path);
    this.db = openDatabase(path);
    this.db.exec(SCHEMA);
    this.stmt = {
      insert: this.db.prepare('INSERT OR IGNORE INTO readings (device, epoch, seq, ts, v) VALUES (?, ?, ?, ?, ?)'),
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
    const rows = new RowWriter(this, this.stmt.insert, this.stmt.setLatest);
    this.insertRows = this.db.transaction((feed: (visitor: ReadingVisitor) => void) => {
      rows.reset();
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
      byId.get(row.device)?.series.set(row.metric, { id: row.id, kind: row.kind, path: `$."${row.id}"` });
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
    const info = { id, kind, path: `$."${id}"` };
    device.series.set(metric, info);
    return info;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the SQLite store is closed');
  }

  async write(readings: readonly StoredReading[]): Promise<void> {
    this.assertOpen();
    if (readings.length === 0) return;
    this.insert((visitor) => {
      for (const r of readings) {
        visitor.begin(r.deviceId, r.epoch, r.seq, r.ts);
        for (const v of r.values) visitor.value(v.metric, v.kind, v.value);
        visitor.end();
      }
    });
  }

  /** As write(batch.toArray()), visiting the spool's records: no object per reading and per value. */
  async writeBatch(batch: ReadingBatch): Promise<void> {
    this.assertOpen();
    if (batch.length === 0) return;
    this.insert((visitor) => batch.cursor().read(visitor, batch.length));
  }

  private insert(feed: (visitor: ReadingVisitor) => void): void {
    try {
      this.insertRows(feed);
    } catch (err) {
      // The transaction rolled back: ids created inside it may not exist. Reload them.
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
   * over the (device, ts) index, so writers are not held up for long. `latest` keeps the newest values.
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
    this.db.close();
  }
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
