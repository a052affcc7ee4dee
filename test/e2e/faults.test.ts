/**
 * Issue 3, "Nothing lost, nothing doubled": fault tests through the real SDK, the real hub (a process of its
 * own, built by createHub from its environment, spool in front of the store) and a real store. Each test
 * counts every reading the SDK devices assigned a seq to and every reading the store holds, and asserts they
 * are equal per device: zero lost, none doubled.
 *   (1) InfluxDB killed for 20 s mid-stream and restarted; /readyz and /metrics show the outage meanwhile.
 *   (2) The hub killed with SIGKILL mid-stream and restarted while devices keep sending (SQLite, InfluxDB).
 *   (3) Every device connection cut repeatedly by a TCP proxy while devices send (SQLite, InfluxDB).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TendrilDevice } from '@tendril/device-sdk';
import {
  hubApi,
  startHubProcess,
  startInfluxDB,
  waitFor,
  type HubProcess,
  type InfluxDBServer,
} from '../support/index.js';
import { bundleForProcess } from '../support/hub-bundle.js';

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));
const ADMIN = 'faults-admin-token-0123456789abcdef';
const DEVICES = 4;
/** Each device sends one reading every SEND_EVERY_MS (4 devices: ~400 readings/s into the hub). */
const SEND_EVERY_MS = 10;
/** Issue 3: InfluxDB stopped for 20 s mid-stream. */
const INFLUX_OUTAGE_MS = 20_000;

type StoreKind = 'sqlite' | 'influxdb';

let hubScript: string;
let influx: InfluxDBServer;
let databases = 0;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  // Bundle the hub process from source (no build step needed); npm packages stay external, resolved from
  // the repository's node_modules.
  hubScript = await bundleForProcess(here('./fixtures/hub-process.ts'));
  influx = await startInfluxDB();
});

afterAll(async () => {
  await influx?.stop();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// ---- the hub process ----

interface HubUnderTest extends HubProcess {
  kind: StoreKind;
  /** InfluxDB database of this hub (influxdb only). */
  db: string;
}

async function startHub(kind: StoreKind): Promise<HubUnderTest> {
  const db = `faults_${process.pid}_${++databases}`;
  const hub = await startHubProcess({
    script: hubScript,
    adminToken: ADMIN,
    env: {
      HUB_DEVICE_RATE: '100000',
      HUB_DEVICE_BURST: '100000',
      HUB_HEARTBEAT_MS: '1000',
      HUB_TEST_SPOOL_RETRY_MAX_MS: '500',
      ...(kind === 'influxdb' ? { INFLUX_URL: influx.url, INFLUX_DB: db, INFLUX_TIMEOUT_MS: '2000' } : {}),
    },
  });
  cleanups.push(() => hub.proc.stop());
  return { ...hub, kind, db };
}

const api = (hub: HubUnderTest, method: string, path: string, body?: unknown): Promise<any> =>
  hubApi(hub.base, ADMIN)(method, path, body);

async function readyz(hub: HubUnderTest): Promise<{ httpStatus: number; body: any }> {
  const res = await fetch(`${hub.base}/readyz`, { headers: { authorization: `Bearer ${ADMIN}` } });
  return { httpStatus: res.status, body: await res.json() };
}

async function metric(hub: HubUnderTest, name: string): Promise<number> {
  const text = await (await fetch(`${hub.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`${name} is not in /metrics`);
  return Number(line.slice(name.length + 1));
}

/** Readings of a device in the hub's store: InfluxDB count("@seq") (docs/storage.md), SQLite through the history API. */
async function storedCount(hub: HubUnderTest, deviceId: string, from: number): Promise<number> {
  if (hub.kind === 'influxdb') {
    const [result] = await influx.query(`SELECT count("@seq") FROM readings WHERE "device"::tag = '${deviceId}'`, {
      db: hub.db,
    });
    return Number(result?.series?.[0]?.values?.[0]?.[1] ?? 0);
  }
  const q = new URLSearchParams({ from: String(from), to: String(from + 86_400_000), step: '1d', agg: 'count' });
  const series = await api(hub, 'GET', `/api/v1/devices/${deviceId}/series/temperature?${q}`);
  return series.points.reduce((n: number, p: { value: number }) => n + p.value, 0);
}

// ---- the fleet: SDK devices sending at a steady rate ----

interface Fleet {
  devices: Array<{ id: string; device: TendrilDevice }>;
  start: number;
  stopSending(): void;
}

async function startFleet(hub: HubUnderTest, prefix: string, deviceUrl: string): Promise<Fleet> {
  const start = Date.now();
  const devices: Fleet['devices'] = [];
  for (let i = 0; i < DEVICES; i++) {
    const id = `${prefix}-${i}`;
    const { token } = await api(hub, 'POST', '/api/v1/devices', { id });
    const device = new TendrilDevice({
      url: deviceUrl,
      deviceId: id,
      token,
      metrics: [
        { name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
        { name: 'door', kind: 'bool' },
      ],
      WebSocket: WebSocket as never,
      wsOptions: { perMessageDeflate: false },
      reconnect: { initialDelayMs: 20, maxDelayMs: 300 },
      bufferSize: 100_000,
    });
    device.on('error', () => undefined); // connection failures while the hub is down are expected here
    device.start();
    devices.push({ id, device });
  }
  let n = 0;
  const timer = setInterval(() => {
    n++;
    for (const { device } of devices) device.send({ temperature: 20 + (n % 100) / 10, door: n % 2 === 0 });
  }, SEND_EVERY_MS);
  cleanups.push(async () => {
    clearInterval(timer);
    await Promise.all(devices.map(({ device }) => device.close()));
  });
  return { devices, start, stopSending: () => clearInterval(timer) };
}

/** Sending has stopped: every reading acked, the spool drained into the store, then stored == sent per device. */
async function expectStoredExactlyOnce(hub: HubUnderTest, fleet: Fleet): Promise<void> {
  fleet.stopSending();
  await waitFor(() => fleet.devices.every(({ device }) => device.stats.acked === device.stats.sent), {
    what: 'every device to have every reading acked',
    timeoutMs: 30_000,
  });
  await waitFor(async () => (await readyz(hub)).body.spool?.depthReadings === 0, {
    what: 'the spool to drain into the store',
    timeoutMs: 30_000,
  });
  for (const { id, device } of fleet.devices) {
    const { sent, dropped } = device.stats;
    expect(dropped, `${id} dropped readings`).toBe(0);
    expect(sent, `${id} sent readings`).toBeGreaterThan(100);
    expect(await storedCount(hub, id, fleet.start - 60_000), `${id}: stored readings vs the ${sent} the SDK sent`).toBe(
      sent,
    );
  }
}

/** Waits until every device has had `n` more readings acked than it had when called. */
async function moreAcked(fleet: Fleet, n: number, what: string, timeoutMs = 15_000): Promise<void> {
  const from = fleet.devices.map(({ device }) => device.stats.acked);
  await waitFor(() => fleet.devices.every(({ device }, i) => device.stats.acked >= from[i]! + n), { what, timeoutMs });
}

// ---- (3) a TCP proxy that cuts every connection periodically ----

interface CuttingProxy {
  port: number;
  cuts: number;
  /** Destroys every open connection (both sides) now. */
  cutAll(): void;
  close(): Promise<void>;
}

async function startCuttingProxy(targetPort: number): Promise<CuttingProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: CuttingProxy = {
    port: (server.address() as { port: number }).port,
    cuts: 0,
    cutAll() {
      if (pairs.size > 0) proxy.cuts++;
      for (const [a, b] of [...pairs]) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        proxy.cutAll();
        server.close(() => resolve());
      }),
  };
  return proxy;
}

// ---- the tests ----

describe('faults: zero readings lost, none doubled', () => {
  it('(1) InfluxDB killed for 20 s mid-stream and restarted: readings are acked from the spool meanwhile, then drained in full', async () => {
    const hub = await startHub('influxdb');
    const fleet = await startFleet(hub, 'outage', `ws://127.0.0.1:${hub.port}/v1/device`);
    await moreAcked(fleet, 50, 'readings to flow before the outage');
    await waitFor(async () => (await storedCount(hub, fleet.devices[0]!.id, fleet.start)) > 0, {
      what: 'the first readings to reach InfluxDB',
      timeoutMs: 10_000,
    });

    await influx.kill9();
    await waitFor(async () => (await readyz(hub)).body.spool?.store === 'down', {
      what: 'the hub to see InfluxDB down',
      timeoutMs: 10_000,
    });
    // Devices are still acked: readings are durable in the spool.
    await moreAcked(fleet, 100, 'readings to be acked while InfluxDB is down');
    const during = await readyz(hub);
    expect(during.httpStatus).toBe(200);
    expect(during.body.status).toBe('degraded');
    expect(during.body.checks.store).toContain('influxdb store not reachable');
    expect(during.body.spool.accepting).toBe(true);
    expect(during.body.spool.depthReadings).toBeGreaterThan(0);
    expect(await metric(hub, 'tendril_store_up')).toBe(0);
    expect(await metric(hub, 'tendril_spool_readings')).toBeGreaterThan(0);
    expect(await metric(hub, 'tendril_spool_bytes')).toBeGreaterThan(0);
    expect(await metric(hub, 'tendril_store_write_errors_total{kind="unreachable"}')).toBeGreaterThan(0);
    // The outage itself lasts 20 s (issue 3); this wait is the scenario, not synchronisation.
    await new Promise((resolve) => setTimeout(resolve, INFLUX_OUTAGE_MS));
    const depthBefore = (await readyz(hub)).body.spool.depthReadings as number;
    expect(depthBefore).toBeGreaterThan(DEVICES * 1000); // ~20 s of readings waited in the spool

    await influx.restart();
    await waitFor(async () => (await readyz(hub)).body.spool?.store === 'up', {
      what: 'the hub to write to InfluxDB again',
      timeoutMs: 15_000,
    });
    await moreAcked(fleet, 50, 'readings to flow after InfluxDB returned');
    await expectStoredExactlyOnce(hub, fleet);
    expect((await readyz(hub)).body.status).toBe('ready');
  }, 120_000);

  for (const kind of ['sqlite', 'influxdb'] as const) {
    it(`(2) ${kind}: the hub killed with SIGKILL mid-stream, twice, and restarted on the same port and data dir while devices keep sending`, async () => {
      const hub = await startHub(kind);
      const fleet = await startFleet(hub, `crash-${kind}`, `ws://127.0.0.1:${hub.port}/v1/device`);
      for (let round = 1; round <= 2; round++) {
        await moreAcked(fleet, 100, `readings to be acked before kill ${round}`);
        await hub.proc.kill9();
        // Devices keep sending into their buffers while the hub is gone.
        const sentAtKill = fleet.devices.map(({ device }) => device.stats.sent);
        await waitFor(() => fleet.devices.every(({ device }, i) => device.stats.sent >= sentAtKill[i]! + 20), {
          what: `devices to buffer readings while the hub is down (round ${round})`,
        });
        await hub.proc.restart();
        await moreAcked(fleet, 100, `readings to be acked after restart ${round}`);
      }
      await expectStoredExactlyOnce(hub, fleet);
    }, 90_000);

    it(`(3) ${kind}: every device connection cut every 250 ms by a proxy while the devices send`, async () => {
      const hub = await startHub(kind);
      const proxy = await startCuttingProxy(hub.port);
      cleanups.push(() => proxy.close());
      const fleet = await startFleet(hub, `cuts-${kind}`, `ws://127.0.0.1:${proxy.port}/v1/device`);
      const cutter = setInterval(() => proxy.cutAll(), 250);
      cleanups.push(() => clearInterval(cutter));
      await waitFor(() => proxy.cuts >= 16, { what: '16 rounds of connection cuts', timeoutMs: 30_000 });
      clearInterval(cutter);
      const reconnects = fleet.devices.map(({ device }) => device.stats.reconnects);
      expect(Math.min(...reconnects)).toBeGreaterThanOrEqual(5);
      await expectStoredExactlyOnce(hub, fleet);
    }, 90_000);
  }
});
