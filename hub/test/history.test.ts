/**
 * History API over fastify inject(): every parameter error names its parameter, both time formats, the
 * default bucket width, CSV (header, both time columns, quoting, streaming across store windows), latest,
 * auth and store failures. Data in the real SQLite store; one answer compared with InfluxDB. Readings acked by
 * the spool are in an answer at once, though its drainer lingers up to a second before writing the store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInfluxDB } from '../../test/support/index.js';
import { historyRoutes, parseStep, parseTime, roundStep, type HistoryRoutesOptions } from '../src/api/history.js';
import { createSpool } from '../src/spool/spool.js';
import { createInfluxStore } from '../src/storage/influx-store.js';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import type { StoredReading, TimeSeriesStore } from '../src/storage/types.js';

const T0 = Date.UTC(2026, 4, 1, 12, 0, 0); // 2026-05-01T12:00:00Z
const NOW = T0 + 3_600_000;
let dir: string;
let store: SqliteStore;
let app: FastifyInstance;

/** d1: temp every second for 30 s (20.0, 20.5, ...), a string and a bool metric; power/phase1 for '/' in names. */
const data: StoredReading[] = Array.from({ length: 30 }, (_, i) => ({
  deviceId: 'd1',
  epoch: 1,
  seq: i + 1,
  ts: T0 + i * 1000,
  values: [
    { metric: 'temp', kind: 'f64' as const, value: 20 + i / 2 },
    { metric: 'note', kind: 'string' as const, value: i === 29 ? '=SUM(A1:A2), "quoted"' : `n${i}` },
    { metric: 'door', kind: 'bool' as const, value: i % 3 === 0 },
    { metric: 'power/phase1', kind: 'int' as const, value: i * 10 },
  ],
}));

async function buildApp(s: TimeSeriesStore, opts: Partial<HistoryRoutesOptions> = {}): Promise<FastifyInstance> {
  const a = Fastify();
  await a.register(historyRoutes, { prefix: '/api/v1', store: s, clock: { now: () => NOW }, ...opts });
  await a.ready();
  return a;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tendril-history-test-'));
  store = new SqliteStore(dir);
  await store.write(data);
  app = await buildApp(store);
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(url: string, headers: Record<string, string> = {}, a = app) {
  return a.inject({ method: 'GET', url, headers });
}

const series = (qs: string, metric = 'temp') => `/api/v1/devices/d1/series/${encodeURIComponent(metric)}?${qs}`;

describe('parameter errors: 400 INVALID_REQUEST naming the parameter', () => {
  const cases: Array<[string, string, RegExp?]> = [
    ['from=yesterday', 'from', /RFC 3339/],
    ['to=2026-13-01T00:00:00Z', 'to', /not a valid date/],
    ['from=2026-02-30T00:00:00Z&to=2026-03-02T00:00:00Z', 'from'],
    ['from=1746100000000&to=1746100000000', 'from', /not before to/],
    [`from=${T0 + 10}&to=${T0}`, 'from', /not before to/],
    [`from=${T0}&to=${T0 + 1000}&step=0.5ms`, 'step', /less than 1 ms/],
    [`from=${T0}&to=${T0 + 1000}&step=0`, 'step', /less than 1 ms/],
    [`from=${T0}&to=${T0 + 1000}&step=1.5ms`, 'step', /whole number/],
    [`from=${T0}&to=${T0 + 1000}&step=fast`, 'step', /not a duration/],
    ['agg=median', 'agg', /mean, min, max, last, count/],
    ['points=10001', 'points', /limit of 10000/],
    ['points=0', 'points'],
    ['points=many', 'points'],
    [`from=${T0}&to=${T0 + 3_600_000}&step=1ms`, 'step', /3600000 buckets/],
    [`from=${T0}&to=${T0 + 60_000}&step=1s&points=10`, 'step', /points=10/],
    ['format=xml', 'format'],
    ['agg=mean&agg=max', 'agg', /more than once/],
    ['from=2026-05-01T12:00:00+25:00', 'from'],
  ];
  for (const [qs, param, detail] of cases) {
    it(`${qs} -> ${param}`, async () => {
      const res = await get(series(qs));
      expect(res.statusCode).toBe(400);
      const body = res.json() as { error: { code: string; message: string } };
      expect(body.error.code).toBe('INVALID_REQUEST');
      expect(body.error.message.startsWith(`${param}: `)).toBe(true);
      if (detail) expect(body.error.message).toMatch(detail);
    });
  }

  it('bad device id and metric name', async () => {
    const badId = await get('/api/v1/devices/bad%20id/series/temp');
    expect(badId.statusCode).toBe(400);
    expect(badId.json().error.message).toMatch(/^id: /);
    const badMetric = await get('/api/v1/devices/d1/series/1temp');
    expect(badMetric.statusCode).toBe(400);
    expect(badMetric.json().error.message).toMatch(/^metric: /);
    const latest = await get('/api/v1/devices/bad%20id/latest');
    expect(latest.statusCode).toBe(400);
    expect(latest.json().error.message).toMatch(/^id: /);
  });

  it('an aggregate that does not apply to the metric (mean of strings) names agg', async () => {
    const res = await get(series(`from=${T0}&to=${T0 + 30_000}&step=10s&agg=mean`, 'note'));
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/^agg: mean does not apply/);
  });
});

describe('series', () => {
  it('takes RFC 3339 (any offset, fractions) and epoch ms alike, and returns both', async () => {
    const byMs = await get(series(`from=${T0}&to=${T0 + 30_000}&step=10s&agg=mean`));
    const byIso = await get(series('from=2026-05-01T14:00:00.000%2B02:00&to=2026-05-01T12:00:30Z&step=10000&agg=mean'));
    expect(byMs.statusCode).toBe(200);
    expect(byIso.json()).toEqual(byMs.json());
    const body = byMs.json();
    expect(body).toMatchObject({
      deviceId: 'd1',
      metric: 'temp',
      agg: 'mean',
      stepMs: 10_000,
      from: T0,
      to: T0 + 30_000,
      fromTime: '2026-05-01T12:00:00.000Z',
    });
    expect(body.points).toEqual([
      { ts: T0, time: '2026-05-01T12:00:00.000Z', value: 22.25 },
      { ts: T0 + 10_000, time: '2026-05-01T12:00:10.000Z', value: 27.25 },
      { ts: T0 + 20_000, time: '2026-05-01T12:00:20.000Z', value: 32.25 },
    ]);
  });

  it('answers every aggregate; empty buckets are left out', async () => {
    const q = (agg: string) => get(series(`from=${T0 - 20_000}&to=${T0 + 20_000}&step=10s&agg=${agg}`));
    const values = async (agg: string) =>
      ((await q(agg)).json().points as Array<{ ts: number; value: unknown }>).map((p) => [p.ts - T0, p.value]);
    expect(await values('min')).toEqual([
      [0, 20],
      [10_000, 25],
    ]);
    expect(await values('max')).toEqual([
      [0, 24.5],
      [10_000, 29.5],
    ]);
    expect(await values('last')).toEqual([
      [0, 24.5],
      [10_000, 29.5],
    ]);
    expect(await values('count')).toEqual([
      [0, 10],
      [10_000, 10],
    ]);
  });

  it('defaults to the last hour in at most 500 round buckets', async () => {
    const res = await get('/api/v1/devices/d1/series/temp?agg=count');
    const body = res.json();
    expect(body.from).toBe(NOW - 3_600_000);
    expect(body.to).toBe(NOW);
    expect(body.stepMs).toBe(10_000); // 3 600 000 / 500 = 7 200 -> 10 s
    expect(body.points.reduce((n: number, p: { value: number }) => n + p.value, 0)).toBe(30);
    const fine = await get(`/api/v1/devices/d1/series/temp?agg=count&from=${T0}&to=${T0 + 30_000}&points=3`);
    expect(fine.json().stepMs).toBe(10_000);
    expect(fine.json().points).toHaveLength(3);
  });

  it('finds a metric whose name has a slash (sent as %2F)', async () => {
    const res = await get(series(`from=${T0}&to=${T0 + 30_000}&step=30s&agg=max`, 'power/phase1'));
    expect(res.statusCode).toBe(200);
    expect(res.json().points).toEqual([{ ts: T0, time: '2026-05-01T12:00:00.000Z', value: 290 }]);
  });

  it('exports CSV with a header, RFC 3339 and epoch-ms columns, quoting, for ?format=csv and Accept: text/csv', async () => {
    const res = await get(series(`from=${T0}&to=${T0 + 3000}&step=1s&agg=last&format=csv`, 'note'));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toBe('attachment; filename="d1-note-last.csv"');
    expect(res.body).toBe(
      'time,ts,value\r\n2026-05-01T12:00:00.000Z,1777636800000,n0\r\n2026-05-01T12:00:01.000Z,1777636801000,n1\r\n2026-05-01T12:00:02.000Z,1777636802000,n2\r\n',
    );
    const formula = await get(series(`from=${T0 + 29_000}&to=${T0 + 30_000}&step=1s&agg=last`, 'note'), {
      accept: 'text/csv',
    });
    // A spreadsheet would run "=SUM(...)": it gets a leading apostrophe; the quotes and comma are escaped.
    expect(formula.body.split('\r\n')[1]).toBe('2026-05-01T12:00:29.000Z,1777636829000,"\'=SUM(A1:A2), ""quoted"""');
  });

  it('streams a CSV export longer than one store window (10 000 buckets) completely and in order', async () => {
    // 1 ms buckets over 30 s = 30 000 buckets = 3 windows; the 30 readings fall in all three.
    const res = await get(series(`from=${T0}&to=${T0 + 30_000}&step=1ms&agg=count&format=csv`));
    expect(res.statusCode).toBe(200);
    const rows = res.body.trim().split('\r\n');
    expect(rows[0]).toBe('time,ts,value');
    expect(rows.slice(1).map((r) => Number(r.split(',')[1]))).toEqual(data.map((r) => r.ts));
  });
});

describe('latest', () => {
  it('returns every metric with its time in RFC 3339 and epoch ms', async () => {
    const res = await get('/api/v1/devices/d1/latest');
    expect(res.statusCode).toBe(200);
    const last = T0 + 29_000;
    expect(res.json()).toEqual({
      deviceId: 'd1',
      metrics: {
        door: { ts: last, time: '2026-05-01T12:00:29.000Z', value: false },
        note: { ts: last, time: '2026-05-01T12:00:29.000Z', value: '=SUM(A1:A2), "quoted"' },
        'power/phase1': { ts: last, time: '2026-05-01T12:00:29.000Z', value: 290 },
        temp: { ts: last, time: '2026-05-01T12:00:29.000Z', value: 34.5 },
      },
    });
    expect((await get('/api/v1/devices/nobody/latest')).json()).toEqual({ deviceId: 'nobody', metrics: {} });
  });
});

describe('auth, unknown devices, store failures', () => {
  it('runs the given preHandler (401 without a token) and answers 404 for devices the registry denies', async () => {
    const guarded = await buildApp(store, {
      preHandler: async (request, reply) => {
        if (request.headers.authorization !== 'Bearer good')
          await reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'no' } });
      },
      deviceExists: (id) => id === 'd1',
    });
    try {
      expect((await get('/api/v1/devices/d1/latest', {}, guarded)).statusCode).toBe(401);
      expect((await get(series('agg=count'), {}, guarded)).statusCode).toBe(401);
      expect((await get('/api/v1/devices/d1/latest', { authorization: 'Bearer good' }, guarded)).statusCode).toBe(200);
      const missing = await get('/api/v1/devices/ghost/series/temp', { authorization: 'Bearer good' }, guarded);
      expect(missing.statusCode).toBe(404);
      expect(missing.json().error.code).toBe('DEVICE_NOT_FOUND');
    } finally {
      await guarded.close();
    }
  });

  it('answers 503 NOT_READY when the store fails', async () => {
    const closedDir = mkdtempSync(join(tmpdir(), 'tendril-history-closed-'));
    const closed = new SqliteStore(closedDir);
    await closed.close();
    const a = await buildApp(closed);
    try {
      for (const url of ['/api/v1/devices/d1/latest', series('agg=mean'), series('agg=mean&format=csv')]) {
        const res = await get(url, {}, a);
        expect(res.statusCode).toBe(503);
        expect(res.json().error.code).toBe('NOT_READY');
      }
    } finally {
      await a.close();
      rmSync(closedDir, { recursive: true, force: true });
    }
  });
});

describe('InfluxDB gives the same answers through the API', () => {
  it('series (every aggregate), CSV and latest match SQLite', async () => {
    const influx = await startInfluxDB();
    const influxStore = createInfluxStore({ url: influx.url, db: 'history' });
    const a = await buildApp(influxStore);
    try {
      await influxStore.write(data);
      for (const agg of ['mean', 'min', 'max', 'last', 'count']) {
        const url = series(`from=${T0 - 5000}&to=${T0 + 40_000}&step=7s&agg=${agg}`);
        expect((await get(url, {}, a)).json()).toEqual((await get(url)).json());
      }
      const csv = series(`from=${T0}&to=${T0 + 30_000}&step=1ms&agg=last&format=csv`, 'note');
      expect((await get(csv, {}, a)).body).toBe((await get(csv)).body);
      expect((await get('/api/v1/devices/d1/latest', {}, a)).json()).toEqual(
        (await get('/api/v1/devices/d1/latest')).json(),
      );
    } finally {
      await a.close();
      await influxStore.close();
      await influx.stop();
    }
  });
});

describe('readings acked by the spool', () => {
  it('are in the answer to the next request, though the drainer lingers (Spool.whenStored)', async () => {
    const spoolDir = mkdtempSync(join(tmpdir(), 'tendril-history-spool-'));
    const s = new SqliteStore(spoolDir);
    // The default linger (1 s) for a fuller store write, and a longer one to be sure the test sees it.
    const spool = await createSpool({ dir: join(spoolDir, 'spool'), store: s, drainLingerMs: 1000 });
    const waiting = await buildApp(s); // the route without the wait: what the linger alone leaves
    const acked = await buildApp(s, { storeAcked: () => spool.whenStored() });
    try {
      const reading = (seq: number): StoredReading[] => [
        { deviceId: 'd2', epoch: 1, seq, ts: T0 + seq * 1000, values: [{ metric: 'temp', kind: 'f64', value: seq }] },
      ];
      const url = `/api/v1/devices/d2/series/temp?from=${T0}&to=${T0 + 60_000}&step=1s&agg=last`;
      await spool.accept(reading(1));
      // Acked, but the drainer is still lingering: the store does not have it yet.
      expect((await get(url, {}, waiting)).json().points).toEqual([]);
      const started = performance.now();
      expect((await get(url, {}, acked)).json().points.map((p: { value: number }) => p.value)).toEqual([1]);
      expect(performance.now() - started).toBeLessThan(900); // the linger was cut short, not waited out
      await spool.accept(reading(2));
      expect((await get('/api/v1/devices/d2/latest', {}, acked)).json().metrics.temp.value).toBe(2);
      // Drained already: no wait, the same answer.
      expect(await spool.whenStored()).toBe(true);
    } finally {
      await waiting.close();
      await acked.close();
      await spool.close();
      await s.close();
      rmSync(spoolDir, { recursive: true, force: true });
    }
  });

  it('whenStored gives up after its timeout while a store write hangs, and resolves once it lands', async () => {
    const spoolDir = mkdtempSync(join(tmpdir(), 'tendril-history-spool-'));
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    /** The real store, each write held until the test releases it (a store that does not answer). */
    class HeldStore extends SqliteStore {
      override async write(readings: readonly StoredReading[]): Promise<void> {
        await gate;
        return super.write(readings);
      }
      override async writeBatch(batch: Parameters<SqliteStore['writeBatch']>[0]): Promise<void> {
        await gate;
        return super.writeBatch(batch);
      }
    }
    const s = new HeldStore(spoolDir);
    const spool = await createSpool({ dir: join(spoolDir, 'spool'), store: s, drainLingerMs: 1000 });
    try {
      await spool.accept([
        { deviceId: 'd3', epoch: 1, seq: 1, ts: T0, values: [{ metric: 'temp', kind: 'f64', value: 1 }] },
      ]);
      expect(await spool.whenStored(200)).toBe(false);
      release();
      expect(await spool.whenStored(5000)).toBe(true);
      expect((await s.latest('d3')).temp?.value).toBe(1);
    } finally {
      release();
      await spool.close();
      await s.close();
      rmSync(spoolDir, { recursive: true, force: true });
    }
  });
});

describe('parsers', () => {
  it('parseTime, parseStep, roundStep', () => {
    expect(parseTime('from', '2026-05-01T12:00:00Z')).toBe(T0);
    expect(parseTime('from', '2026-05-01 12:00:00.1234z')).toBe(T0 + 123);
    expect(parseTime('from', '2026-05-01T10:30:00-01:30')).toBe(T0);
    expect(parseTime('from', '2016-12-31T23:59:60Z')).toBe(Date.UTC(2016, 11, 31, 23, 59, 59, 999));
    expect(parseTime('from', String(T0))).toBe(T0);
    expect(() => parseTime('to', '-5')).toThrow(/^to: /);
    expect(parseStep('1500ms')).toBe(1500);
    expect(parseStep('1.5m')).toBe(90_000);
    expect(parseStep('2w')).toBe(1_209_600_000);
    expect(roundStep(7200)).toBe(10_000);
    expect(roundStep(0.3)).toBe(1);
    expect(roundStep(40 * 86_400_000 + 1)).toBe(41 * 86_400_000);
  });
});
