/**
 * The rows of the SQLite store (sqlite-store.ts): how a write's readings become `readings` rows and `latest`
 * updates, inside the store's transaction.
 */
import type Database from 'better-sqlite3';
import type { MetricKind } from '@tendril/device-sdk/codec';
import type { ReadingVisitor, ScalarValue } from './types.js';

export interface SeriesInfo {
  id: number;
  kind: MetricKind;
  /** JSON path of this series' values in a reading row: $."<id>". */
  path: string;
  /** Its member in a row's JSON, without and with the separator: "<id>": and ,"<id>": (built once). */
  key: string;
  nextKey: string;
}

export function seriesInfo(id: number, kind: MetricKind): SeriesInfo {
  return { id, kind, path: `$."${id}"`, key: `"${id}":`, nextKey: `,"${id}":` };
}

export interface DeviceInfo {
  id: number;
  series: Map<string, SeriesInfo>;
}

/** Where the row writer gets device and series ids (SqliteStore, which creates the missing ones). */
export interface RowIds {
  deviceOf(name: string): DeviceInfo;
  addSeries(device: DeviceInfo, metric: string, kind: MetricKind): SeriesInfo;
}

/**
 * Rows per INSERT statement. Binding 16 rows at once costs about a fifth less CPU per row than one statement
 * per row, in transactions of the drainer's size (`node bench/sqlite-layout.mjs`, second table).
 */
export const ROWS_PER_INSERT = 16;

/**
 * A multi-row INSERT added fewer rows than it carried: some were written before (a replay after a restart, or
 * the same reading twice in one write). It says how many, not which, and `latest` must not take values from a
 * reading written before; the store rolls the write back and writes it again one row per statement. Thrown by
 * RowWriter.finish(), not while a spool cursor visits (a cursor takes any error there for a damaged record).
 */
export class RowsWrittenBefore extends Error {}

/**
 * Writes the readings it visits as rows (inside SqliteStore's transaction): one JSON object of the values per
 * reading, and the newest value per series once per write. In `multi` mode rows go ROWS_PER_INSERT to a
 * statement (the last few of a write one at a time); once a statement finds a row written before, the rest of
 * the write is skipped and finish() throws RowsWrittenBefore. Otherwise each row has its own statement, and a
 * row written before changes nothing.
 */
export class RowWriter implements ReadingVisitor {
  /** Newest value per series in this write: one `latest` update per series, not per value. */
  private readonly newest = new Map<number, { ts: number; value: number | string }>();
  private readonly ids: number[] = [];
  private readonly sqlValues: Array<number | string> = [];
  private device: DeviceInfo | null = null;
  private epoch = 0;
  private seq = 0;
  private ts = 0;
  private json = '';
  multi = true;
  /** A multi-row statement found a row written before: the write must be made again, one row per statement. */
  writtenBefore = false;
  /** The bound parameters of the rows waiting for the next multi-row statement, 5 per row. */
  private readonly params: Array<number | string> = new Array(5 * ROWS_PER_INSERT);
  private waiting = 0;
  /** The series values of the waiting rows, in order, each with its row's ts. */
  private readonly waitingIds: number[] = [];
  private readonly waitingValues: Array<number | string> = [];
  private readonly waitingTs: number[] = [];

  constructor(
    private readonly store: RowIds,
    private readonly insert: Database.Statement,
    private readonly insertMany: Database.Statement,
    private readonly setLatest: Database.Statement,
  ) {}

  reset(multi: boolean): void {
    this.multi = multi;
    this.writtenBefore = false;
    this.newest.clear();
    this.clearWaiting();
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
    this.json += (this.ids.length === 0 ? info.key : info.nextKey) + text;
    this.ids.push(info.id);
    this.sqlValues.push(sqlValue);
  }

  end(): void {
    const { ts, ids, sqlValues } = this;
    if (!this.multi) {
      // A reading written before (same device, ts, epoch, seq) changes nothing, not even `latest`.
      if (this.insert.run(this.device!.id, this.epoch, this.seq, ts, this.json + '}').changes === 0) return;
      for (let i = 0; i < ids.length; i++) this.noteNewest(ids[i]!, ts, sqlValues[i]!);
      return;
    }
    if (this.writtenBefore) return;
    const p = this.params;
    const o = 5 * this.waiting++;
    p[o] = this.device!.id;
    p[o + 1] = this.epoch;
    p[o + 2] = this.seq;
    p[o + 3] = ts;
    p[o + 4] = this.json + '}';
    for (let i = 0; i < ids.length; i++) {
      this.waitingIds.push(ids[i]!);
      this.waitingValues.push(sqlValues[i]!);
      this.waitingTs.push(ts);
    }
    if (this.waiting === ROWS_PER_INSERT) {
      if (this.insertMany.run(p).changes !== ROWS_PER_INSERT) this.writtenBefore = true;
      else this.noteWaiting(this.waitingIds.length);
      this.clearWaiting();
    }
  }

  finish(): void {
    if (this.writtenBefore) throw new RowsWrittenBefore();
    // The last rows of the write, fewer than a statement's worth, one at a time.
    const p = this.params;
    for (let k = 0; k < this.waiting; k++) {
      const o = 5 * k;
      if (this.insert.run(p[o], p[o + 1], p[o + 2], p[o + 3], p[o + 4]).changes === 0) throw new RowsWrittenBefore();
    }
    this.noteWaiting(this.waitingIds.length);
    this.clearWaiting();
    for (const [series, { ts, value }] of this.newest) this.setLatest.run(series, ts, value);
    this.newest.clear();
  }

  private noteNewest(series: number, ts: number, value: number | string): void {
    const cur = this.newest.get(series);
    if (cur === undefined) this.newest.set(series, { ts, value });
    else if (cur.ts <= ts) {
      cur.ts = ts;
      cur.value = value;
    }
  }

  private noteWaiting(end: number): void {
    const { waitingIds, waitingValues, waitingTs } = this;
    for (let i = 0; i < end; i++) this.noteNewest(waitingIds[i]!, waitingTs[i]!, waitingValues[i]!);
  }

  private clearWaiting(): void {
    this.waiting = 0;
    this.waitingIds.length = 0;
    this.waitingValues.length = 0;
    this.waitingTs.length = 0;
  }
}
