/**
 * History API (docs/storage.md, "History API"); register under the /api/v1 prefix:
 *
 *   GET /devices/:id/series/:metric?from=&to=&step=&agg=&points=&format=
 *   GET /devices/:id/latest
 *
 * Times are accepted as RFC 3339 or epoch ms and returned as both. Without `step` the bucket width is the
 * smallest "round" width (1 s, 5 s, 1 min, ...) that gives at most `points` buckets (default 500, at most
 * 10 000). `format=csv` or `Accept: text/csv` streams CSV in windows of 10 000 buckets, so a long export
 * never sits in memory whole. Every bad parameter is a 400 INVALID_REQUEST whose message starts with the
 * parameter's name. An answer holds every reading acked before the request (`storeAcked`).
 */
import { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULT_LIMITS, DEVICE_ID_PATTERN, METRIC_NAME_PATTERN } from '@tendril/device-sdk/codec';
import type { Aggregate, ScalarValue, SeriesPoint, TimeSeriesStore } from '../storage/types.js';

export interface HistoryRoutesOptions {
  store: TimeSeriesStore;
  /** Authentication run before each route (e.g. the admin-token hook); omit inside an authenticated scope. */
  preHandler?: RouteHook | RouteHook[];
  /** When given, ids it denies get 404 DEVICE_NOT_FOUND; otherwise an unknown device simply has no data. */
  deviceExists?: (id: string) => boolean | Promise<boolean>;
  clock?: { now(): number };
  /** Default number of buckets. 500. */
  defaultPoints?: number;
  /** Largest `points` for JSON answers. 10 000. */
  maxPoints?: number;
  /** Largest number of buckets of a CSV export. 1 000 000. */
  maxCsvPoints?: number;
  /**
   * Resolves once the store holds every reading acked so far (Spool.whenStored: the spool's drainer lingers
   * up to a second for fuller store writes), or gives up (store down, slow): each query waits for it first.
   * Omit when acks follow the store write itself.
   */
  storeAcked?: () => Promise<unknown>;
}

type RouteHook = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> | undefined;

export const AGGREGATES: readonly Aggregate[] = ['mean', 'min', 'max', 'last', 'count'];
const DEFAULT_RANGE_MS = 3_600_000;
/** Buckets per store query when streaming CSV. */
const CSV_WINDOW_BUCKETS = 10_000;
/** Latest time accepted (the ECMAScript Date range). */
const MAX_TIME_MS = 8.64e15;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
/** Bucket widths chosen when no step is given, ms. */
const ROUND_STEPS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
  900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000, 172_800_000, 604_800_000,
];

class ParamError extends Error {
  constructor(
    readonly param: string,
    detail: string,
  ) {
    super(`${param}: ${detail}`);
  }
}

function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

/** RFC 3339 (e.g. 2026-05-01T12:00:00Z, 2026-05-01T14:00:00.250+02:00) or integer epoch ms. */
export function parseTime(param: string, raw: string): number {
  if (/^-?\d{1,16}$/.test(raw)) {
    const ms = Number(raw);
    if (ms < 0 || ms > MAX_TIME_MS) throw new ParamError(param, `${raw} is outside 0..${MAX_TIME_MS} (epoch ms)`);
    return ms;
  }
  const m =
    /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(raw);
  if (!m) {
    throw new ParamError(param, `"${raw}" is neither RFC 3339 (e.g. 2026-05-01T12:00:00Z) nor epoch milliseconds`);
  }
  const [, y, mo, d, h, mi, s, frac, , sign, oh, om] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  // :60 is a leap second (RFC 3339 §5.6); it is taken as the last millisecond of that minute.
  const leap = Number(s) === 60;
  const second = leap ? 59 : Number(s);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || Number(s) > 60) {
    throw new ParamError(param, `"${raw}" is not a valid date and time`);
  }
  const offsetMin = sign ? (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om)) : 0;
  if (sign && (Number(oh) > 23 || Number(om) > 59)) throw new ParamError(param, `"${raw}" has an invalid UTC offset`);
  const ms = leap ? 999 : Number((frac ?? '').padEnd(3, '0').slice(0, 3));
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  // Date.UTC maps years 0..99 to 1900..1999.
  const fixed = year < 100 ? new Date(utc).setUTCFullYear(year) : utc;
  const value = fixed - offsetMin * 60_000;
  if (value < 0 || value > MAX_TIME_MS) throw new ParamError(param, `"${raw}" is before 1970 or too far in the future`);
  return value;
}

/** Whole milliseconds: "60000", "500ms", "10s", "1.5m", "1h", "1d", "1w". */
export function parseStep(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$/.exec(raw);
  if (!m)
    throw new ParamError(
      'step',
      `"${raw}" is not a duration; use milliseconds (60000) or a number with ms, s, m, h, d or w (e.g. 10s, 5m)`,
    );
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!;
  if (ms < 1) throw new ParamError('step', `${raw} is less than 1 ms`);
  if (!Number.isInteger(ms)) throw new ParamError('step', `${raw} is not a whole number of milliseconds`);
  if (ms > MAX_TIME_MS) throw new ParamError('step', `${raw} is too large`);
  return ms;
}

/** The smallest round bucket width >= rawMs. */
export function roundStep(rawMs: number): number {
  const need = Math.max(1, Math.ceil(rawMs));
  for (const s of ROUND_STEPS) if (s >= need) return s;
  return Math.ceil(need / 86_400_000) * 86_400_000;
}

function single(query: Record<string, unknown>, name: string): string | undefined {
  const v = query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new ParamError(name, 'given more than once');
  return v;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

interface SeriesRequest {
  deviceId: string;
  metric: string;
  from: number;
  to: number;
  stepMs: number;
  agg: Aggregate;
  csv: boolean;
}

function parseSeriesRequest(
  params: { id: string; metric: string },
  query: Record<string, unknown>,
  accept: string | undefined,
  now: number,
  limits: { defaultPoints: number; maxPoints: number; maxCsvPoints: number },
): SeriesRequest {
  checkId(params.id);
  if (params.metric.length > DEFAULT_LIMITS.maxMetricNameBytes || !METRIC_NAME_PATTERN.test(params.metric)) {
    throw new ParamError(
      'metric',
      `"${params.metric}" is not a metric name (a letter, then letters, digits, _ . / -; at most ${DEFAULT_LIMITS.maxMetricNameBytes} characters)`,
    );
  }
  const format = single(query, 'format');
  if (format !== undefined && format !== 'json' && format !== 'csv')
    throw new ParamError('format', `"${format}" is not one of json, csv`);
  const csv = format === 'csv' || (format === undefined && accept !== undefined && /(^|,)\s*text\/csv\b/i.test(accept));
  const fromRaw = single(query, 'from');
  const toRaw = single(query, 'to');
  const stepRaw = single(query, 'step');
  const aggRaw = single(query, 'agg');
  const pointsRaw = single(query, 'points');
  const to = toRaw === undefined ? now : parseTime('to', toRaw);
  const from = fromRaw === undefined ? to - DEFAULT_RANGE_MS : parseTime('from', fromRaw);
  if (from >= to) throw new ParamError('from', `${iso(from)} is not before to (${iso(to)})`);
  const agg = (aggRaw ?? 'mean') as Aggregate;
  if (!AGGREGATES.includes(agg)) throw new ParamError('agg', `"${aggRaw}" is not one of ${AGGREGATES.join(', ')}`);
  const cap = csv ? limits.maxCsvPoints : limits.maxPoints;
  let points: number | undefined;
  if (pointsRaw !== undefined) {
    if (!/^\d+$/.test(pointsRaw) || Number(pointsRaw) < 1)
      throw new ParamError('points', `"${pointsRaw}" is not a whole number >= 1`);
    points = Number(pointsRaw);
    if (points > cap)
      throw new ParamError('points', `${points} is more than the limit of ${cap}${csv ? ' for CSV' : ''}`);
  }
  const range = to - from;
  let stepMs: number;
  if (stepRaw !== undefined) {
    stepMs = parseStep(stepRaw);
    const buckets = Math.ceil(range / stepMs);
    const limit = points ?? cap;
    if (buckets > limit) {
      throw new ParamError(
        'step',
        `${stepRaw} over ${range} ms gives ${buckets} buckets, more than ${points !== undefined ? `points=${points}` : `the limit of ${cap}`}; use a larger step or a shorter range`,
      );
    }
  } else {
    stepMs = roundStep(range / (points ?? Math.min(limits.defaultPoints, cap)));
  }
  return { deviceId: params.id, metric: params.metric, from, to, stepMs, agg, csv };
}

function checkId(id: string): void {
  if (id.length > DEFAULT_LIMITS.maxDeviceIdBytes || !DEVICE_ID_PATTERN.test(id)) {
    throw new ParamError(
      'id',
      `"${id}" is not a device id (1..${DEFAULT_LIMITS.maxDeviceIdBytes} of A-Z a-z 0-9 . _ : -)`,
    );
  }
}

/** RFC 4180 field; strings that a spreadsheet would run as a formula get a leading apostrophe. */
function csvField(value: ScalarValue | null): string {
  if (value === null) return '';
  if (typeof value !== 'string') return String(value);
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

function csvRows(points: readonly SeriesPoint[]): string {
  let out = '';
  for (const p of points) out += `${iso(p.ts)},${p.ts},${csvField(p.value)}\r\n`;
  return out;
}

/** A store error that means "this aggregate does not apply to this metric" rather than "store down". */
function isUnsupportedAggregate(err: unknown): boolean {
  return err instanceof RangeError || (err as { code?: unknown } | null)?.code === 'UNSUPPORTED_AGGREGATE';
}

/** GET /devices/:id/series/:metric: one metric's series as JSON, or streamed as CSV. */
async function seriesRoute(
  ctx: HistoryContext,
  request: FastifyRequest<{ Params: { id: string; metric: string } }>,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { store, clock, limits, deny, storeFailed } = ctx;
  let q: SeriesRequest;
  try {
    q = parseSeriesRequest(
      request.params,
      request.query as Record<string, unknown>,
      request.headers.accept,
      clock.now(),
      limits,
    );
  } catch (err) {
    if (err instanceof ParamError) return reply.code(400).send(errorBody('INVALID_REQUEST', err.message));
    throw err;
  }
  if (await deny(reply, q.deviceId)) return reply;
  await ctx.storeAcked();
  const base = { deviceId: q.deviceId, metric: q.metric, agg: q.agg, stepMs: q.stepMs };
  if (!q.csv) {
    let points: SeriesPoint[];
    try {
      points = await store.series({ ...base, from: q.from, to: q.to });
    } catch (err) {
      return storeFailed(request, reply, err, q.agg, q.metric);
    }
    return reply.send({
      ...base,
      from: q.from,
      to: q.to,
      fromTime: iso(q.from),
      toTime: iso(q.to),
      points: points.map((p) => ({ ts: p.ts, time: iso(p.ts), value: p.value })),
    });
  }
  // CSV: windows of whole buckets (window starts stay on from + k * step). The first window is fetched
  // before the headers go out, so a store that is down or an aggregate that does not apply still gets a
  // proper error status; later failures can only cut the stream.
  const windowMs = q.stepMs * CSV_WINDOW_BUCKETS;
  const window = (start: number): Promise<SeriesPoint[]> =>
    store.series({ ...base, from: start, to: Math.min(start + windowMs, q.to) });
  let first: SeriesPoint[];
  try {
    first = await window(q.from);
  } catch (err) {
    return storeFailed(request, reply, err, q.agg, q.metric);
  }
  async function* rows(): AsyncGenerator<string> {
    yield 'time,ts,value\r\n';
    yield csvRows(first);
    for (let start = q.from + windowMs; start < q.to; start += windowMs) {
      const points = await window(start);
      if (points.length > 0) yield csvRows(points);
    }
  }
  const filename = `${q.deviceId}-${q.metric}-${q.agg}.csv`.replace(/[^A-Za-z0-9._-]/g, '_');
  return reply
    .header('content-type', 'text/csv; charset=utf-8')
    .header('content-disposition', `attachment; filename="${filename}"`)
    .send(Readable.from(rows()));
}

/** GET /devices/:id/latest: the latest value of every metric of a device. */
async function latestRoute(
  ctx: HistoryContext,
  request: FastifyRequest<{ Params: { id: string } }>,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { store, deny, storeFailed } = ctx;
  try {
    checkId(request.params.id);
  } catch (err) {
    if (err instanceof ParamError) return reply.code(400).send(errorBody('INVALID_REQUEST', err.message));
    throw err;
  }
  const id = request.params.id;
  if (await deny(reply, id)) return reply;
  await ctx.storeAcked();
  let latest: Awaited<ReturnType<TimeSeriesStore['latest']>>;
  try {
    latest = await store.latest(id);
  } catch (err) {
    return storeFailed(request, reply, err);
  }
  const metrics: Record<string, { ts: number; time: string; value: ScalarValue }> = {};
  for (const name of Object.keys(latest).sort()) {
    const v = latest[name]!;
    metrics[name] = { ts: v.ts, time: iso(v.ts), value: v.value };
  }
  return reply.send({ deviceId: id, metrics });
}

interface HistoryContext {
  store: TimeSeriesStore;
  storeAcked: () => Promise<unknown>;
  clock: { now(): number };
  limits: { defaultPoints: number; maxPoints: number; maxCsvPoints: number };
  /** Answers 404 DEVICE_NOT_FOUND and returns true when the device does not exist. */
  deny(reply: FastifyReply, id: string): Promise<boolean>;
  /** Answers a failed store query: 400 for an aggregate that does not apply, else 503. */
  storeFailed(
    request: FastifyRequest,
    reply: FastifyReply,
    err: unknown,
    agg?: Aggregate,
    metric?: string,
  ): FastifyReply;
}

export const historyRoutes: FastifyPluginAsync<HistoryRoutesOptions> = async (app, opts) => {
  const { store } = opts;
  const clock = opts.clock ?? { now: () => Date.now() };
  const limits = {
    defaultPoints: opts.defaultPoints ?? 500,
    maxPoints: opts.maxPoints ?? 10_000,
    maxCsvPoints: opts.maxCsvPoints ?? 1_000_000,
  };
  const routeOptions = {
    config: { role: 'viewer' as const },
    ...(opts.preHandler ? { preHandler: opts.preHandler } : {}),
  };

  const deny = async (reply: FastifyReply, id: string): Promise<boolean> => {
    if (!opts.deviceExists || (await opts.deviceExists(id))) return false;
    await reply
      .code(404)
      .send(errorBody('DEVICE_NOT_FOUND', `No device "${id}" is registered; list devices with GET /api/v1/devices.`));
    return true;
  };

  const storeFailed = (
    request: FastifyRequest,
    reply: FastifyReply,
    err: unknown,
    agg?: Aggregate,
    metric?: string,
  ): FastifyReply => {
    if (agg !== undefined && isUnsupportedAggregate(err)) {
      return reply
        .code(400)
        .send(
          errorBody(
            'INVALID_REQUEST',
            `agg: ${agg} does not apply to the values of ${metric} (${(err as Error).message}); last and count apply to every metric`,
          ),
        );
    }
    request.log.warn({ err }, 'history query failed: store did not answer');
    return reply
      .code(503)
      .send(
        errorBody(
          'NOT_READY',
          'The time-series store did not answer; try again shortly (GET /readyz shows the store state).',
        ),
      );
  };

  const storeAcked = opts.storeAcked ?? (() => Promise.resolve());
  const ctx: HistoryContext = { store, storeAcked, clock, limits, deny, storeFailed };
  app.get<{ Params: { id: string; metric: string } }>('/devices/:id/series/:metric', routeOptions, (request, reply) =>
    seriesRoute(ctx, request, reply),
  );
  app.get<{ Params: { id: string } }>('/devices/:id/latest', routeOptions, (request, reply) =>
    latestRoute(ctx, request, reply),
  );
};
