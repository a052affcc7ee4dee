/**
 * --transport mqtt and mix: simulated devices through a real Mosquitto and the hub's MQTT bridge, next to
 * WebSocket devices, against a real hub. Every reading the fleet sent is stored exactly once.
 */
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildHub, listenHub, loadConfig } from '@tendril/hub';
import { makeTempDir, startMosquitto, waitFor, type MosquittoServer } from '../../test/support/index.js';
import { mqttConfigFromEnv } from '../../hub/src/mqtt/config.js';
import { parseOptions, UsageError } from '../src/options.js';
import { runSimulation } from '../src/run.js';

const ADMIN_TOKEN = 'simulator-mqtt-admin-token-0123456789';
let broker: MosquittoServer;
let hub: { url: string; close(): Promise<void>; count(id: string): Promise<number> };

beforeAll(async () => {
  broker = await startMosquitto();
  const dataDir = await makeTempDir('sim-mqtt-hub');
  // A bridged device may send faster than the default 100/s per device: the simulator's batches are small.
  const config = loadConfig({
    HUB_DATA_DIR: dataDir,
    PORT: '0',
    HOST: '127.0.0.1',
    HUB_ADMIN_TOKEN: ADMIN_TOKEN,
    HUB_LOG_LEVEL: 'silent',
  });
  const app = buildHub(config, {
    mqtt: { config: mqttConfigFromEnv({ MQTT_URL: broker.url, MQTT_CLIENT_ID: 'sim-test-hub' }) },
  });
  const where = await listenHub(app, config);
  await waitFor(() => app.mqttBridge?.status().broker === 'up', { what: 'the bridge to connect', timeoutMs: 5000 });
  hub = {
    url: where.url,
    close: () => app.close(),
    async count(id) {
      const from = Date.now() - 3_600_000;
      let total = 0;
      for (const metric of ['temperature', 'power', 'lat', 'door_open']) {
        const res = await app.inject({
          method: 'GET',
          url: `/api/v1/devices/${id}/series/${metric}?from=${from}&to=${Date.now() + 60_000}&step=2h&agg=count`,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        if (res.statusCode !== 200) continue;
        total = Math.max(
          total,
          ((res.json() as { points: Array<{ value: number }> }).points ?? []).reduce((a, p) => a + p.value, 0),
        );
      }
      return total;
    },
  };
});

afterAll(async () => {
  await hub?.close();
  await broker?.stop();
});

it('refuses --transport mqtt without a broker', () => {
  expect(() => parseOptions(['--hub', 'h:1', '--transport', 'mqtt'])).toThrow(UsageError);
  expect(() => parseOptions(['--hub', 'h:1', '--transport', 'carrier-pigeon', '--mqtt', 'mqtt://x:1'])).toThrow(
    /ws, mqtt or mix/,
  );
  expect(parseOptions(['--hub', 'h:1', '--transport', 'mix', '--mqtt', 'mqtt://127.0.0.1:1883'])).toMatchObject({
    transport: 'mix',
    mqttUrl: 'mqtt://127.0.0.1:1883',
  });
});

it('--transport mix runs half the fleet over MQTT; every reading sent is acknowledged and stored', async () => {
  const options = parseOptions(
    [
      '--hub',
      hub.url,
      '--devices',
      '4',
      '--rate',
      '5',
      '--duration',
      '2',
      '--json',
      '--transport',
      'mix',
      '--mqtt',
      broker.url,
    ],
    { HUB_ADMIN_TOKEN: ADMIN_TOKEN },
  )!;
  const out = new PassThrough();
  const err = new PassThrough();
  let log = '';
  err.on('data', (c: Buffer) => (log += c.toString()));
  const summary = await runSimulation(options, { stdout: out, stderr: err });
  expect(log).toMatch(/2 device\(s\) over MQTT/);
  expect(summary.reconciled).toBe(true);
  expect(summary.sent).toBeGreaterThanOrEqual(16);
  expect(summary.acked).toBe(summary.sent);
  expect(summary.errorsByCode).toEqual({});
  // The MQTT devices' readings are stored too (the broker's ack is not the hub's: check the hub).
  for (const id of ['power-0001', 'door-0001']) {
    await waitFor(async () => (await hub.count(id)) > 0, {
      what: `readings of ${id} (over MQTT) in the hub`,
      timeoutMs: 5000,
    });
  }
});
