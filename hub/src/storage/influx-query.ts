/**
 * Reading back from InfluxDB (docs/storage.md, "Queries"): InfluxQL over /query, which 1.x serves natively and
 * 2.x/3.x through their v1-compatibility API; series() in buckets and latest() per metric.
 */
import { InfluxQueryError, UnsupportedAggregateError } from './influx-errors.js';
import type { InfluxHttp } from './influx-http.js';
import {
  DEVICE_TAG,
  fieldKeyOf,
  metricOfField,
  quoteIdent,
  quoteString,
  type InfluxQLResult,
} from './influx-schema.js';
import type { LatestValue, ScalarValue, SeriesPoint, SeriesQuery } from './types.js';

export class InfluxQueries {
  constructor(
    private readonly http: InfluxHttp,
    private readonly db: string,
    private readonly rp: string | undefined,
    private readonly measurement: string,
    /** The store's set-up (database created), awaited before each select. */
    private readonly init: () => Promise<void>,
  ) {}

  async query(q: string): Promise<InfluxQLResult[]> {
    const params: Record<string, string> = { db: this.db, epoch: 'ms' };
    if (this.rp) params.rp = this.rp;
    const res = await this.http.request('POST', '/query', params, {
      data: new URLSearchParams({ q }).toString(),
      contentType: 'application/x-www-form-urlencoded',
    });
    let parsed: { results?: InfluxQLResult[]; error?: string };
    try {
      parsed = JSON.parse(res.body) as typeof parsed;
    } catch {
      throw new InfluxQueryError(
        `InfluxDB /query answered ${res.status} with a body that is not JSON: ${res.body.slice(0, 200)}`,
      );
    }
    if (res.status < 200 || res.status >= 300 || parsed.error) {
      throw new InfluxQueryError(`InfluxDB /query answered ${res.status}: ${parsed.error ?? res.body.slice(0, 200)}`);
    }
    return parsed.results ?? [];
  }

  private async select(q: string): Promise<InfluxQLResult[]> {
    await this.init();
    const results = await this.query(q);
    for (const r of results) {
      if (!r.error) continue;
      if (/unsupported \w+ iterator type/.test(r.error)) throw new UnsupportedAggregateError(r.error);
      if (r.error.startsWith('database not found')) return [];
      throw new InfluxQueryError(`InfluxQL failed: ${r.error}`);
    }
    return results;
  }

  private from(): string {
    return quoteIdent(this.measurement);
  }

  /** A metric's field, qualified: a metric may share its name with the `device` tag. */
  private field(metric: string): string {
    return `${quoteIdent(fieldKeyOf(metric))}::field`;
  }

  private deviceIs(deviceId: string): string {
    return `${quoteIdent(DEVICE_TAG)}::tag = ${quoteString(deviceId)}`;
  }

  async series(q: SeriesQuery): Promise<SeriesPoint[]> {
    if (!(q.stepMs >= 1)) throw new RangeError(`stepMs must be >= 1, got ${q.stepMs}`);
    if (q.to <= q.from) return [];
    try {
      const rows = await this.bucketRows(q, `${q.agg}(${this.field(q.metric)})`, '');
      // min/max of a bool come back as booleans; as numbers (0/1) they chart and match mean (fraction true).
      const numeric = q.agg === 'min' || q.agg === 'max';
      return rows.map(([ts, value]) => ({ ts, value: numeric && typeof value === 'boolean' ? Number(value) : value }));
    } catch (err) {
      // InfluxQL has no mean() of booleans; the fraction of true values is count(true) / count(all).
      if (err instanceof UnsupportedAggregateError && q.agg === 'mean' && err.message.includes('boolean'))
        return this.booleanMean(q);
      throw err;
    }
  }

  private bucketWhere(q: SeriesQuery, extra: string): { where: string; groupBy: string } {
    const step = Math.floor(q.stepMs);
    // Buckets start at from + k * step: GROUP BY time() aligns to the epoch plus the offset.
    const offset = ((q.from % step) + step) % step;
    return {
      where: `WHERE ${this.deviceIs(q.deviceId)}${extra} AND time >= ${Math.floor(q.from)}ms AND time < ${Math.ceil(q.to)}ms`,
      groupBy: `GROUP BY time(${step}ms, ${offset}ms) fill(none)`,
    };
  }

  private async bucketRows(
    q: SeriesQuery,
    selector: string,
    extra: string,
  ): Promise<Array<[number, ScalarValue | null]>> {
    const { where, groupBy } = this.bucketWhere(q, extra);
    const [result] = await this.select(`SELECT ${selector} FROM ${this.from()} ${where} ${groupBy}`);
    return (result?.series?.[0]?.values ?? []).map((row) => [row[0] as number, (row[1] ?? null) as ScalarValue | null]);
  }

  private async booleanMean(q: SeriesQuery): Promise<SeriesPoint[]> {
    const field = this.field(q.metric);
    const all = this.bucketWhere(q, '');
    const yes = this.bucketWhere(q, ` AND ${field} = true`);
    const [total, trues] = await this.select(
      `SELECT count(${field}) FROM ${this.from()} ${all.where} ${all.groupBy}; ` +
        `SELECT count(${field}) FROM ${this.from()} ${yes.where} ${yes.groupBy}`,
    );
    const trueCount = new Map<number, number>();
    for (const row of trues?.series?.[0]?.values ?? []) trueCount.set(row[0] as number, row[1] as number);
    return (total?.series?.[0]?.values ?? []).map((row) => {
      const ts = row[0] as number;
      return { ts, value: (trueCount.get(ts) ?? 0) / (row[1] as number) };
    });
  }

  async latest(deviceId: string): Promise<Record<string, LatestValue>> {
    const where = `WHERE ${this.deviceIs(deviceId)}`;
    // LAST(*) says which fields this device has (its time column is meaningless with several fields) ...
    const [all] = await this.select(`SELECT last(*) FROM ${this.from()} ${where}`);
    const series = all?.series?.[0];
    if (!series?.values?.[0]) return {};
    const row = series.values[0];
    const fields: string[] = [];
    series.columns.forEach((col, i) => {
      if (i === 0 || !col.startsWith('last_') || row[i] === null || row[i] === undefined) return;
      const metric = metricOfField(col.slice('last_'.length));
      if (metric !== null) fields.push(metric);
    });
    if (fields.length === 0) return {};
    // ... and one LAST() per field gives each its own time.
    const results = await this.select(
      fields.map((f) => `SELECT last(${this.field(f)}) FROM ${this.from()} ${where}`).join('; '),
    );
    const out: Record<string, LatestValue> = {};
    results.forEach((r, i) => {
      const field = fields[r.statement_id ?? i];
      const first = r.series?.[0]?.values?.[0] as [number, ScalarValue | null] | undefined;
      if (field === undefined || !first || first[1] === null) return;
      out[field] = { ts: first[0], value: first[1] };
    });
    return out;
  }
}
