/**
 * Embedded time-series store (HUB_DATA_DIR/readings.db) for when no InfluxDB is configured.
 *
 * One row per value. A series (device, metric) gets a small integer id so rows stay narrow; the primary
 * key (series, epoch, seq) makes writes idempotent (a resent or replayed reading is ignored), and the
 * index (series, ts) serves latest() and the bucketed aggregates in series().
 * Values keep their SQLite type: numbers REAL, bools 0/1, strings TEXT; the series' kind says how to
 * read them back.
 */
import { join } from 'node:path';
import type { MetricKind } from '@tendril/device-sdk';
import { openDatabase, type SqliteDatabase } from './sqlite.js';
import type { LatestValue, ScalarValue, SeriesPoint, SeriesQuery, StoredReading, TimeSeriesStore } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS series (
  id INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  kind TEXT NOT NULL,
  UNIQUE (device_id, metric)
) STRICT;
CREATE TABLE IF NOT EXISTS samples (
  series INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  value ANY NOT NULL,
  PRIMARY KEY (series, epoch, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS samples_by_time ON samples (series, ts);
`;

interface SeriesInfo {
  id: number;
  kind: MetricKind;
}

const BUCKET = 'CAST((ts - @from) / @step AS INTEGER)';
const WHERE = 'series = @series AND ts >= @from AND ts < @to';
const AGGREGATE_SQL = {
  mean: `SELECT ${BUCKET} AS b, avg(value) AS v FROM samples WHERE ${WHERE} GROUP BY b ORDER BY b`,
  min: `SELECT ${BUCKET} AS b, min(value) AS v FROM samples WHERE ${WHERE} GROUP BY b ORDER BY b`,
  max: `SELECT ${BUCKET} AS b, max(value) AS v FROM samples WHERE ${WHERE} GROUP BY b ORDER BY b`,
  count: `SELECT ${BUCKET} AS b, count(*) AS v FROM samples WHERE ${WHERE} GROUP BY b ORDER BY b`,
  // SQLite returns the bare column `value` from the row that holds max(ts) of the group.
  last: `SELECT ${BUCKET} AS b, value AS v, max(ts) AS t FROM samples WHERE ${WHERE} GROUP BY b ORDER BY b`,
} as const;

export class SqliteStore implements TimeSeriesStore {
  readonly kind = 'sqlite' as const;
  readonly db: SqliteDatabase;
  private readonly seriesIds = new Map<string, Map<string, SeriesInfo>>();
  private readonly stmt;
  private readonly writeBatch: (readings: readonly StoredReading[]) => void;
  private closed = false;

  /** Opens (or creates) `readings.db` in `dataDir`. */
  constructor(dataDir: string) {
    this.db = openDatabase(join(dataDir, 'readings.db'));
    this.db.exec(SCHEMA);
    this.stmt = {
      insert: this.db.prepare('INSERT OR IGNORE INTO samples (series, epoch, seq, ts, value) VALUES (?, ?, ?, ?, ?)'),
      addSeries: this.db.prepare('INSERT INTO series (device_id, metric, kind) VALUES (?, ?, ?) ON CONFLICT (device_id, metric) DO UPDATE SET kind = excluded.kind RETURNING id').pluck(),
      seriesOfDevice: this.db.prepare('SELECT id, metric, kind FROM series WHERE device_id = ?'),
      latestOf: this.db.prepare('SELECT ts, value FROM samples WHERE series = ? ORDER BY ts DESC, epoch DESC, seq DESC LIMIT 1'),
      ping: this.db.prepare('SELECT 1').pluck(),
      allSeriesIds: this.db.prepare('SELECT id FROM series').pluck(),
      pruneSeries: this.db.prepare('DELETE FROM samples WHERE series = ? AND ts < ?'),
      aggregate: Object.fromEntries(Object.entries(AGGREGATE_SQL).map(([k, sql]) => [k, this.db.prepare(sql)])),
    };
    for (const row of this.db.prepare('SELECT id, device_id, metric, kind FROM series').all() as Array<{ id: number; device_id: string; metric: string; kind: MetricKind }>) {
      this.devSeries(row.device_id).set(row.metric, { id: row.id, kind: row.kind });
    }
    const insert = this.stmt.insert;
    this.writeBatch = this.db.transaction((readings: readonly StoredReading[]) => {
      for (const r of readings) {
        const series = this.devSeries(r.deviceId);
        for (const v of r.values) {
          let info = series.get(v.metric);
          if (info === undefined || info.kind !== v.kind) info = this.addSeries(r.deviceId, v.metric, v.kind, series);
          const value = typeof v.value === 'boolean' ? (v.value ? 1 : 0) : v.value;
          insert.run(info.id, r.epoch, r.seq, r.ts, value);
        }
      }
    });
  }

  private devSeries(deviceId: string): Map<string, SeriesInfo> {
    let m = this.seriesIds.get(deviceId);
    if (!m) {
      m = new Map();
      this.seriesIds.set(deviceId, m);
    }
    return m;
  }

  private addSeries(deviceId: string, metric: string, kind: MetricKind, series: Map<string, SeriesInfo>): SeriesInfo {
    const id = this.stmt.addSeries.get(deviceId, metric, kind) as number;
    const info = { id, kind };
    series.set(metric, info);
    return info;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the SQLite store is closed');
  }

  async write(readings: readonly StoredReading[]): Promise<void> {
    this.assertOpen();
    if (readings.length === 0) return;
    try {
      this.writeBatch(readings);
    } catch (err) {
      // The transaction rolled back; a series id created inside it may not exist. Reload on next use.
      this.seriesIds.clear();
      for (const row of this.db.prepare('SELECT id, device_id, metric, kind FROM series').all() as Array<{ id: number; device_id: string; metric: string; kind: MetricKind }>) {
        this.devSeries(row.device_id).set(row.metric, { id: row.id, kind: row.kind });
      }
      throw err;
    }
  }

  async latest(deviceId: string): Promise<Record<string, LatestValue>> {
    this.assertOpen();
    const out: Record<string, LatestValue> = {};
    for (const s of this.stmt.seriesOfDevice.all(deviceId) as Array<{ id: number; metric: string; kind: MetricKind }>) {
      const row = this.stmt.latestOf.get(s.id) as { ts: number; value: number | string } | undefined;
      if (row) out[s.metric] = { ts: row.ts, value: fromSql(row.value, s.kind) };
    }
    return out;
  }

  async series(q: SeriesQuery): Promise<SeriesPoint[]> {
    this.assertOpen();
    if (!(q.stepMs >= 1)) throw new RangeError(`stepMs must be >= 1, got ${q.stepMs}`);
    const info = this.seriesIds.get(q.deviceId)?.get(q.metric);
    if (!info || q.to <= q.from) return [];
    if (info.kind === 'string' && q.agg !== 'last' && q.agg !== 'count') {
      throw new RangeError(`metric ${q.metric} holds strings: only the aggregates last and count apply, not ${q.agg}`);
    }
    const stmt = this.stmt.aggregate[q.agg];
    if (!stmt) throw new RangeError(`unknown aggregate ${String(q.agg)}`);
    const rows = stmt.all({ series: info.id, from: q.from, to: q.to, step: q.stepMs }) as Array<{ b: number; v: number | string | null }>;
    const asKind = q.agg === 'last' ? info.kind : null;
    return rows.map((r) => ({ ts: q.from + r.b * q.stepMs, value: r.v === null ? null : asKind ? fromSql(r.v, asKind) : r.v }));
  }

  /**
   * Deletes readings with ts < cutoffMs (retention) and returns how many values went. Runs per series
   * over the (series, ts) index, one transaction per series, so writers are not held up for long.
   */
  pruneBefore(cutoffMs: number): number {
    this.assertOpen();
    let deleted = 0;
    for (const id of this.stmt.allSeriesIds.all() as number[]) deleted += this.stmt.pruneSeries.run(id, cutoffMs).changes;
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
