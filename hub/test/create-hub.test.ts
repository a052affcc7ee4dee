/**
 * createHub: storage built from the configuration (docs/storage.md): the spool in front of SQLite or
 * InfluxDB, readiness and metrics that show the store and the spool, durable seqs after a crash.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createHub } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { listenHub } from '../src/server.js';
import { TestDevice } from './device-client.js';
import { ADMIN_TOKEN, provision, tempDir, waitFor } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function config(dataDir: string, env: Record<string, string> = {}) {
  return loadConfig({
    HUB_DATA_DIR: dataDir,
    HUB_ADMIN_TOKEN: ADMIN_TOKEN,
    HOST: '127.0.0.1',
    PORT: '0',
    HUB_LOG_LEVEL: 'silent',
    ...env,
  });
}

async function start(
  dataDir: string,
  env: Record<string, string> = {},
): Promise<{ app: FastifyInstance; deviceUrl: string }> {
  const cfg = config(dataDir, env);
  const app = await createHub(cfg, { spoolOptions: { drainLingerMs: 0, backoff: { baseMs: 20, maxMs: 100 } } });
  let closed = false;
  app.addHook('onClose', async () => {
    closed = true;
  });
  cleanups.push(async () => {
    if (!closed) await app.close();
  });
  const where = await listenHub(app, cfg);
  return { app, deviceUrl: where.deviceUrl };
}

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`metric ${name} not in /metrics`);
  return Number(line.slice(name.length + 1));
}

/** A port with nothing listening on it: an InfluxDB that is down. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('createHub', () => {
  it('SQLite by default, with the spool in front: readings are acked, drained into the store, and /readyz and /metrics show the spool', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const { app, deviceUrl } = await start(dir.path);
    expect(app.durability.store.kind).toBe('sqlite');
    const token = await provision(app, 'c-1');
    const d = await TestDevice.connect(deviceUrl);
    cleanups.push(() => d.close());
    await d.hello({ deviceId: 'c-1', token });
    for (let seq = 1; seq <= 20; seq++)
      d.send({ type: 'reading', seq, ts: Date.now(), values: [{ alias: 2, kind: 'int', value: seq }] });
    await d.ackFor(20);
    await waitFor('the 20 readings to be drained into SQLite', async () => {
      const [point] = await app.durability.store.series({
        deviceId: 'c-1',
        metric: 'count',
        agg: 'count',
        from: 0,
        to: Date.now() + 60_000,
        stepMs: 86_400_000 * 365 * 100,
      });
      return point?.value === 20;
    });
    const ready = await app.inject({
      method: 'GET',
      url: '/readyz',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({
      status: 'ready',
      checks: { store: 'ok', writer: 'ok' },
      spool: { store: 'up', accepting: true, depthReadings: 0 },
    });
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metric(text, 'tendril_store_up')).toBe(1);
    expect(metric(text, 'tendril_spool_accepting')).toBe(1);
    expect(metric(text, 'tendril_spool_drained_readings_total')).toBe(20);
  });

  it('InfluxDB that does not answer: the hub starts, acks readings into the spool, and is degraded (200) with the store down and the spool depth shown', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const port = await deadPort();
    const { app, deviceUrl } = await start(dir.path, {
      INFLUX_URL: `http://127.0.0.1:${port}`,
      INFLUX_DB: 'tendril',
      INFLUX_TIMEOUT_MS: '500',
    });
    expect(app.durability.store.kind).toBe('influxdb');
    const token = await provision(app, 'c-2');
    const d = await TestDevice.connect(deviceUrl);
    cleanups.push(() => d.close());
    await d.hello({ deviceId: 'c-2', token });
    for (let seq = 1; seq <= 5; seq++)
      d.send({ type: 'reading', seq, ts: Date.now(), values: [{ alias: 2, kind: 'int', value: seq }] });
    await d.ackFor(5);
    await waitFor(
      'the spool drainer to find the store down',
      () =>
        app.metrics.registry.getSingleMetric('tendril_store_up') !== undefined &&
        (app.durability.sink as { storeState?: string }).storeState === 'down',
    );
    const ready = await app.inject({
      method: 'GET',
      url: '/readyz',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(ready.statusCode).toBe(200);
    const body = ready.json();
    expect(body.status).toBe('degraded');
    expect(body.checks.store).toContain('influxdb store not reachable');
    expect(body.checks.writer).toBe('ok');
    expect(body.spool).toMatchObject({ store: 'down', accepting: true, depthReadings: 5 });
    expect(body.spool.writeErrors.unreachable).toBeGreaterThanOrEqual(1);
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metric(text, 'tendril_store_up')).toBe(0);
    expect(metric(text, 'tendril_spool_readings')).toBe(5);
    expect(metric(text, 'tendril_store_write_errors_total{kind="unreachable"}')).toBeGreaterThanOrEqual(1);
    expect(text).toContain('tendril_influx_requests_total');
  });

  it("after a crash, WELCOME.ackedSeq is the spool's durable seq even where the registry's flushed seq lags", async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const first = await start(dir.path);
    const token = await provision(first.app, 'c-3');
    const d = await TestDevice.connect(first.deviceUrl);
    await d.hello({ deviceId: 'c-3', token, epoch: 11 });
    for (let seq = 1; seq <= 30; seq++)
      d.send({ type: 'reading', seq, ts: Date.now(), values: [{ alias: 2, kind: 'int', value: seq }] });
    await d.ackFor(30);
    d.close();
    await first.app.close();
    // What a kill -9 leaves when the last registry flush ran before these acks: an older durable seq.
    const db = new Database(join(dir.path, 'hub.db'));
    db.prepare('UPDATE device_epochs SET acked_seq = 4 WHERE device_id = ? AND epoch = ?').run('c-3', 11);
    db.close();

    const second = await start(dir.path);
    const again = await TestDevice.connect(second.deviceUrl);
    cleanups.push(() => again.close());
    const welcome = await again.hello({ deviceId: 'c-3', token, epoch: 11 });
    expect(welcome.ackedSeq).toBe(30);
  });
});
