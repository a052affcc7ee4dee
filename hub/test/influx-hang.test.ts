/**
 * Issue 11, item 9: a hung InfluxDB (influxd stopped with SIGSTOP: it keeps accepting TCP connections and
 * answers nothing) is reported within a few seconds: the spool marks the store down (`tendril_store_up` 0) and
 * counts a write error of kind `timeout`, instead of hiding it for about 30 s behind 10 s timeouts x 3
 * attempts. A server that is slow over a write but answers /ping is not called hung. Real influxd throughout.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startInfluxDB, waitFor, type InfluxDBServer } from '../../test/support/index.js';
import { createSpool, registerStorageMetrics, type Spool } from '../src/spool/index.js';
import { createInfluxStore, type InfluxStore } from '../src/storage/influx-store.js';
import type { StoredReading } from '../src/storage/types.js';

let influx: InfluxDBServer;
let stopped = false;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  influx = await startInfluxDB();
}, 30_000);

afterEach(async () => {
  if (stopped) process.kill(influx.pid, 'SIGCONT');
  stopped = false;
  while (cleanups.length > 0) await cleanups.pop()!();
});

afterAll(async () => {
  await influx?.stop();
});

const T0 = Date.UTC(2026, 11, 4);

function readings(from: number, n: number): StoredReading[] {
  return Array.from({ length: n }, (_, i) => ({
    deviceId: 'hang-1',
    epoch: 1,
    seq: from + i,
    ts: T0 + from + i,
    values: [{ metric: 'v', kind: 'f64', value: i }],
  }));
}

async function countReadings(db: string): Promise<number> {
  const [r] = await influx.query('SELECT count("@seq") FROM "readings"', { db });
  return (r?.series?.[0]?.values?.[0]?.[1] as number | undefined) ?? 0;
}

function newStore(url: string, db: string): InfluxStore {
  const store = createInfluxStore({ url, db, retentionDays: null });
  cleanups.push(() => store.close());
  return store;
}

async function newSpool(store: InfluxStore): Promise<Spool> {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-hang-'));
  const spool = await createSpool({
    dir: join(dir, 'spool'),
    store,
    drainLingerMs: 0,
    backoff: { baseMs: 200, maxMs: 1000 },
  });
  cleanups.push(async () => {
    await spool.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return spool;
}

describe('a hung InfluxDB', () => {
  it('is reported within a few seconds of SIGSTOP (store down, a timeout counted, tendril_store_up 0), and nothing is lost once it runs again', async () => {
    const db = 'hang';
    const store = newStore(influx.url, db);
    await store.init();
    const spool = await newSpool(store);
    const registry = new Registry();
    registerStorageMetrics(registry, spool, store);
    await spool.accept(readings(1, 100));
    await spool.whenDrained(5000);
    expect(spool.storeState).toBe('up');

    process.kill(influx.pid, 'SIGSTOP');
    stopped = true;
    const t0 = Date.now();
    await spool.accept(readings(101, 100)); // durable in the spool: acked while the store hangs
    await waitFor(() => spool.storeState === 'down', {
      what: 'the spool to report the hung store down',
      timeoutMs: 10_000,
    });
    const detectedMs = Date.now() - t0;
    expect(detectedMs).toBeLessThan(6000); // stallMs 2000 + probeTimeoutMs 2000, and the drainer's own turns
    expect(spool.state.writeErrors.timeout).toBeGreaterThanOrEqual(1);
    expect(spool.state.lastWriteError?.message).toMatch(
      /did not answer a write within 2000 ms nor \/ping within 2000 ms/,
    );
    const text = await registry.metrics();
    expect(text).toMatch(/^tendril_store_up 0$/m);
    expect(text).toMatch(/^tendril_store_write_errors_total\{kind="timeout"\} [1-9]/m);
    expect(text).toMatch(/^tendril_influx_write_errors_total\{kind="timeout"\} [1-9]/m);

    process.kill(influx.pid, 'SIGCONT');
    stopped = false;
    spool.retryNow();
    await spool.whenDrained(20_000);
    expect(spool.storeState).toBe('up');
    expect(await countReadings(db)).toBe(200);
  }, 40_000);

  it('is not reported for a server slow over a write that still answers /ping', async () => {
    // A proxy in front of the real influxd holds each /write 3 s (longer than stallMs) and passes /ping at once.
    const target = new URL(influx.url);
    const proxy: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const forward = (): void => {
          const upstream = httpRequest(
            { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
            (ures) => {
              res.writeHead(ures.statusCode ?? 502, ures.headers);
              ures.pipe(res);
            },
          );
          upstream.on('error', () => res.destroy());
          upstream.end(Buffer.concat(chunks));
        };
        if (req.url?.startsWith('/write')) setTimeout(forward, 3000);
        else forward();
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const db = 'slow';
    const store = newStore(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, db);
    const started = Date.now();
    await store.write(readings(1, 50));
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
    expect(store.stats().writeErrors.timeout).toBe(0);
    expect(store.stats().requests).toBe(1);
    expect(await countReadings(db)).toBe(50);
  }, 20_000);
});
