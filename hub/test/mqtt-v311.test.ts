/**
 * MQTT 3.1.1 end to end through the bridge, on a real hub (devices layer, spool, SQLite, command queue) and
 * a real Mosquitto: devices that speak 3.1.1 (protocolVersion 4) use Tendril's topics (birth, data at QoS 0
 * and 1, last will, commands down and results up), with the bridge's own link at 5 and at 3.1.1, and every
 * reading is stored exactly once. At 3.1.1 a command carries no message expiry: the hub's timeout still
 * decides, and a late answer does not change a command that already failed.
 */
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
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

const BIRTH = { epoch: 9, metrics: [{ name: 'temperature', kind: 'f64', unit: '°C', min: -40, max: 85 }] };

async function bridgedHub(protocolVersion: 4 | 5): Promise<TestHub> {
  const config = mqttConfigFromEnv({
    MQTT_URL: broker.url,
    MQTT_CLIENT_ID: `hub-v311-${++n}`,
    MQTT_PROTOCOL_VERSION: String(protocolVersion),
  });
  const h = await startHub({ listen: false, deps: { mqtt: { config, reconnectInitialMs: 20, reconnectMaxMs: 200 } } });
  await waitFor('the bridge to connect', () => h.app.mqttBridge?.status().broker === 'up');
  return h;
}

interface Device3 {
  client: mqtt.MqttClient;
  /** Messages on .../cmd and .../error, parsed. */
  commands: Array<Record<string, any>>;
  errors: Array<Record<string, any>>;
  /** The MQTT 5 properties of the last .../cmd PUBLISH (a 3.1.1 client never has any). */
  cmdProperties: unknown[];
}

/** A device speaking MQTT 3.1.1, as a client library sets it up: last will, cmd and error subscribed. */
async function device311(id: string, opts: { clean?: boolean; birth?: boolean } = {}): Promise<Device3> {
  const client = mqtt.connect(broker.url, {
    protocolVersion: 4,
    clientId: `v311-${id}-${n}`,
    clean: opts.clean ?? true,
    reconnectPeriod: 0,
    will: { topic: `tendril/v1/${id}/state`, payload: Buffer.from('offline'), qos: 1, retain: true },
  });
  clients.push(client);
  const d: Device3 = { client, commands: [], errors: [], cmdProperties: [] };
  // The handler before CONNACK: a persistent session's queued messages come right after it.
  client.on('message', (topic, payload, packet) => {
    const json = JSON.parse(payload.toString()) as Record<string, any>;
    if (topic.endsWith('/cmd')) {
      d.commands.push(json);
      d.cmdProperties.push(packet.properties);
    } else d.errors.push(json);
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync([`tendril/v1/${id}/cmd`, `tendril/v1/${id}/error`], { qos: 1 });
  if (opts.birth !== false) {
    await client.publishAsync(`tendril/v1/${id}/birth`, JSON.stringify(BIRTH), { qos: 1, retain: true });
    await client.publishAsync(`tendril/v1/${id}/state`, 'online', { qos: 1, retain: true });
  }
  return d;
}

async function presence(app: TestHub['app'], id: string): Promise<{ state: string; reason: string | null }> {
  const res = await app.inject({ method: 'GET', url: `/api/v1/devices/${id}`, headers: auth });
  return (res.json() as { presence: { state: string; reason: string | null } }).presence;
}

/** Readings of `id` in the store (SQLite, behind the spool): one count bucket over all time. */
async function stored(app: TestHub['app'], id: string): Promise<number> {
  const points = await app.durability.store.series({
    deviceId: id,
    metric: 'temperature',
    from: 0,
    to: 4_000_000_000_000,
    stepMs: 4_000_000_000_000,
    agg: 'count',
  });
  return points.reduce((sum, p) => sum + Number(p.value ?? 0), 0);
}

async function command(app: TestHub['app'], id: number): Promise<{ state: string; detail: string | null }> {
  return (await app.inject({ method: 'GET', url: `/api/v1/commands/${id}`, headers: auth })).json();
}

describe.each([
  { bridge: 5 as const, label: 'the bridge at MQTT 5' },
  { bridge: 4 as const, label: 'the bridge at MQTT 3.1.1' },
])('3.1.1 devices, $label', ({ bridge }) => {
  it('birth, data at QoS 0 and 1 (a republished seq stored once), presence online over mqtt', async () => {
    hub = await bridgedHub(bridge);
    const { app } = hub;
    await provision(app, 'v1');
    const d = await device311('v1');
    await waitFor('v1 online', async () => (await presence(app, 'v1')).state === 'online');
    const t0 = Date.now() - 60_000;
    const reading = (seq: number) => JSON.stringify({ seq, ts: t0 + seq, values: { temperature: 20 + seq / 10 } });
    for (let seq = 1; seq <= 5; seq++) await d.client.publishAsync('tendril/v1/v1/data', reading(seq), { qos: 1 });
    for (let seq = 6; seq <= 10; seq++) await d.client.publishAsync('tendril/v1/v1/data', reading(seq), { qos: 0 });
    // A batch at QoS 1 that repeats seq 9 and 10 (a device that republished after a lost PUBACK).
    const batch = [9, 10, 11, 12].map((seq) => ({ seq, ts: t0 + seq, values: { temperature: 20 + seq / 10 } }));
    await d.client.publishAsync('tendril/v1/v1/data', JSON.stringify(batch), { qos: 1 });
    await waitFor('12 readings stored', async () => (await stored(app, 'v1')) >= 12, 10_000);
    await waitFor('every PUBACK sent', () => app.mqttBridge!.status().unackedMessages === 0);
    expect(await stored(app, 'v1')).toBe(12);
    const latest = (await app.inject({ method: 'GET', url: '/api/v1/devices/v1/latest', headers: auth })).json() as {
      metrics: Record<string, { value: number; ts: number }>;
    };
    expect(latest.metrics.temperature).toMatchObject({ value: 21.2, ts: t0 + 12 });
    const view = (await app.inject({ method: 'GET', url: '/api/v1/devices/v1', headers: auth })).json() as {
      transport: string;
    };
    expect(view.transport).toBe('mqtt');
    expect(d.errors).toEqual([]);
  });

  it('a refusal reaches the 3.1.1 device on .../error; the last will makes it offline with MQTT_WILL', async () => {
    hub = await bridgedHub(bridge);
    const { app } = hub;
    await provision(app, 'v2');
    const d = await device311('v2');
    await waitFor('v2 online', async () => (await presence(app, 'v2')).state === 'online');
    await d.client.publishAsync('tendril/v1/v2/data', JSON.stringify({ seq: 1, values: { temperature: 99 } }), {
      qos: 1,
    });
    await waitFor('the refusal on .../error', () => d.errors.length === 1);
    expect(d.errors[0]).toMatchObject({ code: 'OUT_OF_RANGE', seq: 1, metric: 'temperature' });
    (d.client as unknown as { stream: { destroy(): void } }).stream.destroy();
    await waitFor('v2 offline by its will', async () => (await presence(app, 'v2')).reason === 'MQTT_WILL');
    expect((await presence(app, 'v2')).state).toBe('offline');
  });

  it('a command goes down on .../cmd and its results come back up from a 3.1.1 device', async () => {
    hub = await bridgedHub(bridge);
    const { app } = hub;
    await provision(app, 'v3');
    const d = await device311('v3');
    await waitFor('v3 online', async () => (await presence(app, 'v3')).state === 'online');
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/devices/v3/commands',
      headers: auth,
      payload: { name: 'relay', args: { on: true }, timeoutMs: 20_000 },
    });
    expect(res.statusCode).toBe(202);
    const { id } = res.json() as { id: number };
    await waitFor('the command at the device', () => d.commands.length === 1);
    expect(d.commands[0]).toEqual({ id, name: 'relay', args: { on: true }, timeoutMs: 20_000 });
    await d.client.publishAsync('tendril/v1/v3/cmd/result', JSON.stringify({ id, status: 'delivered' }), { qos: 1 });
    await d.client.publishAsync('tendril/v1/v3/cmd/result', JSON.stringify({ id, status: 'succeeded', detail: 'on' }), {
      qos: 1,
    });
    await waitFor('the command to succeed', async () => (await command(app, id)).state === 'succeeded');
    expect(d.errors).toEqual([]);
  });
});

it('bridge at 3.1.1: a command has no message expiry, the hub timeout still decides, a late answer changes nothing', async () => {
  hub = await bridgedHub(4);
  const { app } = hub;
  await provision(app, 'v4');
  // A device with a persistent session that disconnects cleanly (no will): the hub still thinks it online.
  const first = await device311('v4', { clean: false });
  await waitFor('v4 online', async () => (await presence(app, 'v4')).state === 'online');
  await first.client.endAsync();
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/devices/v4/commands',
    headers: auth,
    payload: { name: 'photo', timeoutMs: 500 },
  });
  const { id } = res.json() as { id: number };
  const failed = await waitFor('the command to time out in the hub', async () => {
    const c = await command(app, id);
    return c.state === 'failed' ? c : null;
  });
  expect(failed.detail).toMatch(/^TIMEOUT/);
  // The broker kept the command for the session (3.1.1 has no expiry): it arrives late, with no properties.
  const back = await device311('v4', { clean: false, birth: false });
  await waitFor('the stale command at the device', () => back.commands.length === 1);
  expect(back.commands[0]).toMatchObject({ id, name: 'photo' });
  expect(back.cmdProperties[0] ?? {}).not.toHaveProperty('messageExpiryInterval');
  await back.client.publishAsync('tendril/v1/v4/state', 'online', { qos: 1, retain: true });
  const results = app.mqttBridge!.bridge.counts.messages.cmdResult;
  // The device's PUBACK is the broker's: it can come before the broker's copy reaches the bridge.
  await back.client.publishAsync('tendril/v1/v4/cmd/result', JSON.stringify({ id, status: 'succeeded' }), { qos: 1 });
  await waitFor(
    'the bridge to take the late result',
    () => app.mqttBridge!.bridge.counts.messages.cmdResult === results + 1,
  );
  // A result after the command became final is ignored (docs/commands.md): it stays failed by the hub's timeout.
  expect(await command(app, id)).toMatchObject({ state: 'failed', detail: failed.detail });
});
