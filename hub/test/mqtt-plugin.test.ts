/**
 * The MQTT bridge plugin in a real hub (devices layer, command queue, SQLite, API) and a real Mosquitto:
 * readings reach the API, presence shows the transport and the reasons, commands take the same queue and
 * lifecycle as WebSocket devices, /metrics shows the broker, and a hub that stops keeps the broker's
 * session: what was published meanwhile arrives at the next start.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startMosquitto, type MosquittoServer } from '../../test/support/index.js';
import { mqttConfigFromEnv } from '../src/mqtt/config.js';
import { auth, provision, startHub, waitFor, type TestHub } from './helpers.js';

let broker: MosquittoServer;
let hub: TestHub | null = null;
const clients: mqtt.MqttClient[] = [];
let n = 0;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.stop();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await hub?.dispose();
  hub = null;
});

async function bridgedHub(env: Record<string, string> = {}, dataDir?: string): Promise<TestHub> {
  const config = mqttConfigFromEnv({ MQTT_URL: broker.url, MQTT_CLIENT_ID: `hub-plugin-${++n}`, ...env });
  return startHub({
    listen: false,
    deps: { mqtt: { config, reconnectInitialMs: 20, reconnectMaxMs: 200 } },
    ...(dataDir ? { dataDir } : {}),
  });
}

async function mqttDevice(
  id: string,
  birth: object = { metrics: [{ name: 'temperature', kind: 'f64', unit: '°C', min: -40, max: 85 }] },
) {
  const commands: Array<Record<string, unknown>> = [];
  const client = await mqtt.connectAsync(broker.url, {
    protocolVersion: 5,
    clientId: `device-${id}-${n}`,
    reconnectPeriod: 0,
    will: { topic: `tendril/v1/${id}/state`, payload: Buffer.from('offline'), qos: 1, retain: true },
  });
  clients.push(client);
  client.on('message', (_topic, payload) => commands.push(JSON.parse(payload.toString()) as Record<string, unknown>));
  await client.subscribeAsync(`tendril/v1/${id}/cmd`, { qos: 1 });
  await client.publishAsync(`tendril/v1/${id}/birth`, JSON.stringify(birth), { qos: 1, retain: true });
  await client.publishAsync(`tendril/v1/${id}/state`, 'online', { qos: 1, retain: true });
  return { client, commands };
}

async function device(
  app: TestHub['app'],
  id: string,
): Promise<{ transport: string | null; presence: { state: string; reason: string | null }; metrics: unknown[] }> {
  const res = await app.inject({ method: 'GET', url: `/api/v1/devices/${id}`, headers: auth });
  return res.json();
}

it('a reading published over MQTT reaches the API, with presence online over mqtt', async () => {
  hub = await bridgedHub();
  const { app } = hub;
  await waitFor('the bridge to connect', () => app.mqttBridge?.status().broker === 'up');
  await provision(app, 'm1');
  const d = await mqttDevice('m1');
  await d.client.publishAsync('tendril/v1/m1/data', JSON.stringify({ temperature: 21.5 }), { qos: 1 });
  const latest = await waitFor('the reading in /latest', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/devices/m1/latest', headers: auth });
    const body = res.json() as { metrics: Record<string, { value: number }> };
    return res.statusCode === 200 && Object.keys(body.metrics).length > 0 ? body.metrics : null;
  });
  expect(latest.temperature?.value).toBe(21.5);
  const view = await device(app, 'm1');
  expect(view.transport).toBe('mqtt');
  expect(view.presence.state).toBe('online');
  expect(view.metrics).toEqual([{ alias: 0, name: 'temperature', kind: 'f64', unit: '°C', min: -40, max: 85 }]);
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  expect(metrics).toMatch(/^tendril_mqtt_broker_up 1$/m);
  expect(metrics).toMatch(/^tendril_mqtt_messages_total\{kind="data"\} 1$/m);
  expect(app.mqttBridge!.readiness()).toBe('ok');
  await waitFor('the PUBACK', () => app.mqttBridge!.status().unackedMessages === 0);
});

it('commands use the queue and lifecycle of WebSocket devices: queued while offline, delivered over .../cmd', async () => {
  hub = await bridgedHub();
  const { app } = hub;
  await waitFor('the bridge to connect', () => app.mqttBridge?.status().broker === 'up');
  await provision(app, 'm2');
  const submitted = await app.inject({
    method: 'POST',
    url: '/api/v1/devices/m2/commands',
    headers: auth,
    payload: { name: 'reboot', args: { delayMs: 10 }, timeoutMs: 20_000 },
  });
  expect(submitted.statusCode).toBe(202);
  const { id } = submitted.json() as { id: number };
  const d = await mqttDevice('m2');
  await waitFor('the command at the device', () => d.commands.length === 1);
  expect(d.commands[0]).toEqual({ id, name: 'reboot', args: { delayMs: 10 }, timeoutMs: 20_000 });
  await d.client.publishAsync('tendril/v1/m2/cmd/result', JSON.stringify({ id, status: 'delivered' }), { qos: 1 });
  await d.client.publishAsync('tendril/v1/m2/cmd/result', JSON.stringify({ id, status: 'succeeded', detail: 'done' }), {
    qos: 1,
  });
  const final = await waitFor('the command to succeed', async () => {
    const c = (await app.inject({ method: 'GET', url: `/api/v1/commands/${id}`, headers: auth })).json() as {
      state: string;
    };
    return c.state === 'succeeded' ? c : null;
  });
  expect(final).toMatchObject({ state: 'succeeded' });
});

it('presence: MQTT_WILL when a device vanishes, BRIDGE_DISCONNECTED while the broker is away', async () => {
  hub = await bridgedHub();
  const { app } = hub;
  await waitFor('the bridge to connect', () => app.mqttBridge?.status().broker === 'up');
  await provision(app, 'm3');
  await provision(app, 'm4');
  const d3 = await mqttDevice('m3');
  await mqttDevice('m4');
  await waitFor(
    'm3 and m4 online',
    async () =>
      (await device(app, 'm3')).presence.state === 'online' && (await device(app, 'm4')).presence.state === 'online',
  );
  (d3.client as unknown as { stream: { destroy(): void } }).stream.destroy();
  await waitFor('m3 offline by its will', async () => (await device(app, 'm3')).presence.reason === 'MQTT_WILL');
  await broker.kill9();
  await waitFor(
    'm4 BRIDGE_DISCONNECTED',
    async () => (await device(app, 'm4')).presence.reason === 'BRIDGE_DISCONNECTED',
  );
  expect(app.mqttBridge!.readiness()).toMatch(/not reachable/);
  const readyz = await app.inject({ method: 'GET', url: '/readyz', headers: auth });
  expect(readyz.statusCode).toBe(200);
  expect(readyz.json()).toMatchObject({
    status: 'degraded',
    checks: { broker: expect.stringMatching(/MQTT broker .* not reachable/) },
  });
  expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/^tendril_mqtt_broker_up 0$/m);
  await broker.restart();
  await waitFor('the bridge back up', () => app.mqttBridge!.status().broker === 'up', 10_000);
});

it('unknown devices are counted and refused; with autoRegister they wait in quarantine, disabled', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-mqtt-conf-'));
  const file = join(dir, 'bridge.json');
  writeFileSync(file, JSON.stringify({ autoRegister: true, templates: [] }));
  hub = await bridgedHub({ HUB_MQTT_CONFIG: file });
  const { app } = hub;
  await waitFor('the bridge to connect', () => app.mqttBridge?.status().broker === 'up');
  const d = await mqttDevice('newcomer');
  await d.client.publishAsync('tendril/v1/newcomer/data', JSON.stringify({ temperature: 1 }), { qos: 1 });
  await waitFor('the refusal counted', () => app.mqttBridge!.bridge.counts.unknownDevices === 1);
  const res = await app.inject({ method: 'GET', url: '/api/v1/devices/newcomer', headers: auth });
  expect(res.statusCode).toBe(200);
  expect(res.json()).toMatchObject({ disabled: true, labels: { quarantine: 'mqtt' } });
  expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(
    /^tendril_mqtt_unknown_device_messages_total 1$/m,
  );
});

it('the broker keeps the session while the hub is stopped: readings published meanwhile arrive at the next start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-mqtt-hub-'));
  const env = { MQTT_CLIENT_ID: 'hub-session-test' };
  hub = await startHub({
    listen: false,
    dataDir: dir,
    deps: { mqtt: { config: mqttConfigFromEnv({ MQTT_URL: broker.url, ...env }) } },
  });
  await waitFor('the bridge to connect', () => hub!.app.mqttBridge?.status().broker === 'up');
  await provision(hub.app, 'm5');
  const d = await mqttDevice('m5', { epoch: 9, metrics: [{ name: 'n', kind: 'int' }] });
  await hub.app.close();
  for (let seq = 1; seq <= 20; seq++)
    await d.client.publishAsync('tendril/v1/m5/data', JSON.stringify({ seq, n: seq }), { qos: 1 });
  hub = await startHub({
    listen: false,
    dataDir: dir,
    deps: { mqtt: { config: mqttConfigFromEnv({ MQTT_URL: broker.url, ...env }) } },
  });
  const { app } = hub;
  const from = Date.now() - 3_600_000;
  const count = await waitFor(
    '20 readings stored',
    async () => {
      const res = await app.inject({
        method: 'GET',
        url: `/api/v1/devices/m5/series/n?from=${from}&to=${Date.now() + 60_000}&step=2h&agg=count`,
        headers: auth,
      });
      const points = (res.json() as { points?: Array<{ value: number }> }).points ?? [];
      const total = points.reduce((a, p) => a + p.value, 0);
      return total === 20 ? total : null;
    },
    10_000,
  );
  expect(count).toBe(20);
});
