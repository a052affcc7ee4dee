/**
 * The MQTT bridge against a real Mosquitto, with a FAKE devices layer (mqtt-fake-devices.ts) that lets the
 * test decide when readings are durable: acks after durability, every refusal with its code on
 * .../error, declarations, templates, commands, presence by last will, the spool full, a cut.
 */
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMosquitto, waitFor, type MosquittoServer } from '../../test/support/index.js';
import { systemClock, systemTimers } from '../src/core/clock.js';
import Fastify from 'fastify';
import { MqttBridge, type BridgeLog } from '../src/mqtt/bridge.js';
import { DEFAULT_DATA_LIMITS } from '../src/mqtt/payload.js';
import { parseBridgeConfig } from '../src/mqtt/templates.js';
import { FakeDevices } from './mqtt-fake-devices.js';

/** fastify's logger with logging off: the hub's one logger type, silent. */
const silent: BridgeLog = Fastify({ logger: false }).log;
const BIRTH = {
  metrics: [
    { name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
    { name: 'door', kind: 'bool' },
    { name: 'count', kind: 'int' },
  ],
};
const TEMPLATES = parseBridgeConfig(
  JSON.stringify({
    templates: [
      {
        name: 'tasmota',
        topic: 'tele/{device}/SENSOR',
        deviceId: 'tasmota-{device}',
        metrics: [{ name: 'temperature', path: 'AM2301.Temperature', kind: 'f64' }],
        availability: { topic: 'tele/{device}/LWT', online: 'Online', offline: 'Offline' },
      },
    ],
  }),
).templates;

let broker: MosquittoServer;
let devices: FakeDevices;
let bridge: MqttBridge;
let clients: mqtt.MqttClient[];
let n = 0;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.stop();
});

beforeEach(async () => {
  n++;
  devices = new FakeDevices();
  clients = [];
  bridge = new MqttBridge({
    link: {
      url: broker.url,
      clientId: `hub-${n}`,
      protocolVersion: 5,
      keepaliveSec: 30,
      sessionExpirySec: 3600,
      receiveMaximum: 100,
      maximumPacketSize: 1 << 20,
      connectTimeoutMs: 5000,
      reconnectInitialMs: 20,
      reconnectMaxMs: 200,
    },
    templates: TEMPLATES,
    autoRegister: false,
    homie: { deviceId: 'homie-{device}' },
    limits: DEFAULT_DATA_LIMITS,
    attacher: devices,
    registry: devices,
    clock: systemClock,
    timers: systemTimers,
    log: silent,
    refusalCooldownMs: 100,
  });
  bridge.start();
  await waitFor(() => bridge.status().broker === 'up', { what: 'the bridge to connect', timeoutMs: 5000 });
});

afterEach(async () => {
  await bridge.close();
  await Promise.all(clients.map((c) => c.endAsync(true)));
});

/** A device over MQTT: its id in every topic, a retained last will "offline", its error and cmd topics read. */
async function device(id: string, birth: object | null = BIRTH) {
  const errors: Array<Record<string, unknown>> = [];
  const commands: Array<Record<string, unknown>> = [];
  const client = await mqtt.connectAsync(broker.url, {
    protocolVersion: 5,
    clientId: `dev-${id}-${n}`,
    reconnectPeriod: 0,
    will: { topic: `tendril/v1/${id}/state`, payload: Buffer.from('offline'), qos: 1, retain: true },
  });
  clients.push(client);
  client.on('message', (topic, payload) => {
    const json = JSON.parse(payload.toString()) as Record<string, unknown>;
    if (topic.endsWith('/error')) errors.push(json);
    else commands.push(json);
  });
  await client.subscribeAsync([`tendril/v1/${id}/error`, `tendril/v1/${id}/cmd`], { qos: 1 });
  if (birth) await client.publishAsync(`tendril/v1/${id}/birth`, JSON.stringify(birth), { qos: 1, retain: true });
  await client.publishAsync(`tendril/v1/${id}/state`, 'online', { qos: 1, retain: true });
  const data = (payload: unknown, qos: 0 | 1 = 1) =>
    client.publishAsync(`tendril/v1/${id}/data`, typeof payload === 'string' ? payload : JSON.stringify(payload), {
      qos,
    });
  return { client, errors, commands, data };
}

const storedOf = (id: string) => devices.stored.filter((s) => s.deviceId === id);
const allAcked = () =>
  waitFor(() => bridge.link.unacked === 0, { what: 'every message acknowledged', timeoutMs: 5000 });

it('stores readings and acks them only once durable', async () => {
  devices.register('d1');
  devices.autoDurable = false;
  const d = await device('d1');
  await d.data({ temperature: 21.5, door: true });
  await d.data([{ ts: Date.now() - 1000, values: { count: 1 } }, { values: { count: 2 } }]);
  await waitFor(() => devices.inFlight.length === 3, { what: '3 readings handed to ingest', timeoutMs: 5000 });
  const before = bridge.link.counts.pubacksSent;
  expect(bridge.link.unacked).toBe(2);
  devices.durableNow();
  await allAcked();
  expect(bridge.link.counts.pubacksSent - before).toBe(2);
  expect(storedOf('d1').map((s) => [s.seq, s.values])).toEqual([
    [1, { temperature: 21.5, door: true }],
    [2, { count: 1 }],
    [3, { count: 2 }],
  ]);
  expect(devices.presence).toContainEqual({ deviceId: 'd1', state: 'online', reason: null });
  expect(devices.current('d1')!.handle.transport).toBe('mqtt');
});

it('refuses with the hub error code on .../error, counts it, and still acks', async () => {
  devices.register('d2', 'nobirth');
  const d = await device('d2');
  await d.data('{"temperature": ');
  await d.data({ humidity: 3, temperature: 20 });
  await d.data({ temperature: 99 });
  await d.data({ count: 1.5 });
  await d.data({ door: null });
  await d.data({ seq: 0, door: true });
  const nb = await device('nobirth', null);
  await nb.data({ temperature: 1 });
  const stranger = await device('stranger');
  await stranger.data({ temperature: 1 });
  // The stranger's birth can be refused (UNKNOWN_DEVICE) before its data message is counted: wait for both.
  await waitFor(
    () =>
      d.errors.length >= 6 && nb.errors.length >= 1 && stranger.errors.length >= 1 && bridge.counts.unknownDevices >= 1,
    {
      what: 'the error messages and the unknown device counted',
      timeoutMs: 5000,
    },
  );
  // Refusals made before ingest can overtake those made by the ingest session: compare in sorted order.
  expect(d.errors.map((e) => [e.code, e.metric ?? null]).sort()).toEqual([
    ['INVALID_FIELD', null],
    ['INVALID_JSON', null],
    ['OUT_OF_RANGE', 'temperature'],
    ['TYPE_MISMATCH', 'count'],
    ['TYPE_MISMATCH', 'door'],
    ['UNKNOWN_ALIAS', 'humidity'],
  ]);
  expect(d.errors.find((e) => e.code === 'UNKNOWN_ALIAS')!.message).toMatch(
    /metric humidity was not declared in the birth message/,
  );
  expect(nb.errors[0]!.code).toBe('BIRTH_REQUIRED');
  expect(stranger.errors[0]!.code).toBe('UNKNOWN_DEVICE');
  expect(bridge.counts.unknownDevices).toBe(1);
  expect(bridge.counts.refused.get('INVALID_JSON')).toBe(1);
  // The valid value of the partly refused reading is stored.
  expect(storedOf('d2').map((s) => s.values)).toContainEqual({ temperature: 20 });
  await allAcked();
});

it('device numbering: seq from the payload, duplicates acked and stored once, seq required', async () => {
  devices.register('d3');
  const d = await device('d3', { ...BIRTH, epoch: 42 });
  await d.data({ seq: 1, count: 1 });
  await d.data([
    { seq: 2, count: 2 },
    { seq: 3, count: 3 },
  ]);
  await d.data({ seq: 2, count: 2 });
  await d.data({ count: 4 });
  await waitFor(() => d.errors.length === 1 && storedOf('d3').length === 3, {
    what: '3 readings and one refusal',
    timeoutMs: 5000,
  });
  expect(d.errors[0]!.code).toBe('INVALID_FIELD');
  expect(storedOf('d3').map((s) => [s.epoch, s.seq])).toEqual([
    [42, 1],
    [42, 2],
    [42, 3],
  ]);
  await allAcked();
});

it('commands go down on .../cmd with an expiry and results come back by id', async () => {
  devices.register('d4');
  const d = await device('d4');
  await d.data({ count: 1 });
  await waitFor(() => devices.current('d4') !== undefined, { what: 'd4 attached', timeoutMs: 5000 });
  expect(devices.sendCommand('d4', 7, 'set-interval', '{"ms":500}', 10_000)).toBe(true);
  await waitFor(() => d.commands.length === 1, { what: 'the command at the device', timeoutMs: 5000 });
  expect(d.commands[0]).toEqual({ id: 7, name: 'set-interval', args: { ms: 500 }, timeoutMs: 10_000 });
  await d.client.publishAsync(
    'tendril/v1/d4/cmd/result',
    JSON.stringify({ id: 7, status: 'succeeded', detail: 'ok' }),
    { qos: 1 },
  );
  await d.client.publishAsync('tendril/v1/d4/cmd/result', JSON.stringify({ id: 8, status: 'succeeded' }), { qos: 1 });
  await waitFor(() => devices.results.length === 1 && d.errors.length === 1, {
    what: 'the result and the refusal of an unknown id',
    timeoutMs: 5000,
  });
  expect(devices.results[0]).toEqual({ deviceId: 'd4', commandId: 7, status: 'succeeded', detail: 'ok' });
  expect(d.errors[0]!.code).toBe('UNKNOWN_COMMAND_ID');
});

it('presence: online by state, offline with MQTT_WILL when the device vanishes', async () => {
  devices.register('d5');
  const d = await device('d5');
  await waitFor(() => devices.current('d5') !== undefined, {
    what: 'd5 attached by its online state',
    timeoutMs: 5000,
  });
  // A dead TCP connection, not a DISCONNECT: the broker publishes the will.
  (d.client as unknown as { stream: { destroy(): void } }).stream.destroy();
  await waitFor(() => devices.presence.some((p) => p.deviceId === 'd5' && p.state === 'offline'), {
    what: 'd5 offline',
    timeoutMs: 5000,
  });
  expect(devices.presence.filter((p) => p.deviceId === 'd5').at(-1)).toEqual({
    deviceId: 'd5',
    state: 'offline',
    reason: 'MQTT_WILL',
  });
});

it('spool full: nothing acked while STORE_BUSY, everything stored once after', async () => {
  devices.register('d6');
  const d = await device('d6');
  await d.data({ count: 0 });
  await waitFor(() => storedOf('d6').length === 1, { what: 'the first reading', timeoutMs: 5000 });
  await allAcked();
  devices.busy = true;
  for (let i = 1; i <= 5; i++) await d.data({ count: i });
  await waitFor(() => bridge.counts.storeBusyPauses >= 3, {
    what: 'three resends refused with STORE_BUSY',
    timeoutMs: 5000,
  });
  expect(bridge.link.unacked).toBe(5);
  expect(storedOf('d6')).toHaveLength(1);
  devices.busy = false;
  await allAcked();
  expect(storedOf('d6').map((s) => s.values.count)).toEqual([0, 1, 2, 3, 4, 5]);
});

it('templates: a Tasmota SENSOR message becomes a reading of tasmota-<topic>', async () => {
  devices.register('tasmota-kitchen');
  const pub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
  clients.push(pub);
  await pub.publishAsync(
    'tele/kitchen/SENSOR',
    JSON.stringify({ Time: '2026-12-04T10:00:00', AM2301: { Temperature: 19.25, Humidity: 50 } }),
    { qos: 1 },
  );
  await pub.publishAsync('tele/garage/SENSOR', JSON.stringify({ AM2301: { Temperature: 5 } }), { qos: 1 });
  await waitFor(() => storedOf('tasmota-kitchen').length === 1 && bridge.counts.unknownDevices === 1, {
    what: 'the Tasmota reading and the unknown garage',
    timeoutMs: 5000,
  });
  expect(storedOf('tasmota-kitchen')[0]!.values).toEqual({ temperature: 19.25 });
  await allAcked();
  // Tasmota's retained last will on tele/<t>/LWT: offline with MQTT_WILL, online again with Online.
  await pub.publishAsync('tele/kitchen/LWT', 'Offline', { qos: 1, retain: true });
  await waitFor(() => devices.presence.some((p) => p.deviceId === 'tasmota-kitchen' && p.state === 'offline'), {
    what: 'tasmota-kitchen offline',
    timeoutMs: 5000,
  });
  expect(devices.presence.filter((p) => p.deviceId === 'tasmota-kitchen').at(-1)).toEqual({
    deviceId: 'tasmota-kitchen',
    state: 'offline',
    reason: 'MQTT_WILL',
  });
  await pub.publishAsync('tele/kitchen/LWT', 'Online', { qos: 1, retain: true });
  await waitFor(() => devices.current('tasmota-kitchen') !== undefined, {
    what: 'tasmota-kitchen online again',
    timeoutMs: 5000,
  });
  await pub.publishAsync('tele/kitchen/LWT', '', { qos: 1, retain: true });
});

describe('the broker connection', () => {
  it('a cut shows BRIDGE_DISCONNECTED; what was durable but unacked comes back and is not stored twice', async () => {
    devices.register('d7');
    devices.autoDurable = false;
    const d = await device('d7');
    for (let i = 1; i <= 3; i++) await d.data({ count: i });
    await waitFor(() => devices.inFlight.length === 3, { what: '3 readings in flight', timeoutMs: 5000 });
    // Durable, and the connection dies before the PUBACKs leave.
    devices.durableNow();
    bridge.link.cut();
    expect(devices.presence.at(-1)).toEqual({ deviceId: 'd7', state: 'offline', reason: 'BRIDGE_DISCONNECTED' });
    devices.autoDurable = true;
    await waitFor(() => bridge.status().broker === 'up', { what: 'the reconnect', timeoutMs: 5000 });
    await waitFor(
      () => devices.current('d7') !== undefined && bridge.link.unacked === 0 && bridge.counts.readingsFed >= 6,
      { what: 'the resent messages handled', timeoutMs: 5000 },
    );
    expect(storedOf('d7').map((s) => s.values.count)).toEqual([1, 2, 3]);
    expect(devices.duplicates).toBe(3);
  });
});

it('error messages to one device are bounded (100 at once, then 10/s); the rest only counted', async () => {
  devices.register('d8');
  const d = await device('d8');
  for (let i = 0; i < 150; i++) void d.data('{not json', 1);
  await waitFor(() => bridge.counts.refused.get('INVALID_JSON') === 150, { what: '150 refusals', timeoutMs: 10_000 });
  await allAcked();
  expect(bridge.counts.errorsSuppressed).toBeGreaterThanOrEqual(40);
  await waitFor(() => d.errors.length >= 100, { what: 'the first 100 error messages', timeoutMs: 5000 });
  expect(d.errors.length).toBeLessThanOrEqual(110);
});

it('Homie 5: a $description of the wrong shape is refused, and the next one declares the device', async () => {
  devices.register('homie-odd');
  const pub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
  clients.push(pub);
  // A null property used to throw inside the broker link's socket handler: the hub process exited, and
  // again at every start, when the broker sent the retained message back.
  const odd = { homie: '5.0', nodes: { n: { properties: { p: null } } } };
  await pub.publishAsync('homie/5/odd/$description', JSON.stringify(odd), { qos: 1, retain: true });
  await pub.publishAsync('homie/5/odd/$state', 'ready', { qos: 1, retain: true });
  await waitFor(() => bridge.counts.refused.get('INVALID_FIELD') === 1, {
    what: 'the description refused',
    timeoutMs: 5000,
  });
  await allAcked();
  expect(devices.current('homie-odd')).toBeUndefined();
  const good = { homie: '5.0', nodes: { n: { properties: { p: { datatype: 'integer' } } } } };
  await pub.publishAsync('homie/5/odd/$description', JSON.stringify(good), { qos: 1, retain: true });
  await waitFor(() => devices.current('homie-odd') !== undefined, {
    what: 'the Homie device attached',
    timeoutMs: 5000,
  });
  expect(devices.current('homie-odd')!.info.metrics).toEqual([{ alias: 0, name: 'n.p', kind: 'int', unit: '' }]);
  for (const t of ['$description', '$state']) await pub.publishAsync(`homie/5/odd/${t}`, '', { qos: 1, retain: true });
  await allAcked();
});

it('a message the bridge fails on is logged, counted as INTERNAL_ERROR and acknowledged, not thrown', async () => {
  devices.register('d-bug');
  const d = await device('d-bug');
  await allAcked();
  // Stands in for a bug on the message's path: the registry throws for this one device.
  const get = devices.get.bind(devices);
  devices.get = (id: string) => {
    if (id === 'd-bug') throw new Error('a bug');
    return get(id);
  };
  try {
    await d.data({ seq: 1, values: { temperature: 20 } });
    await waitFor(() => bridge.counts.refused.get('INTERNAL_ERROR') === 1, {
      what: 'the failed message counted',
      timeoutMs: 5000,
    });
    await allAcked();
  } finally {
    devices.get = get;
  }
});

it('Homie 5, read only: $description declares, $state is presence, live property values are readings', async () => {
  devices.register('homie-thermo');
  const pub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
  clients.push(pub);
  const description = {
    homie: '5.0',
    version: 3,
    nodes: {
      room: {
        properties: { temperature: { datatype: 'float', unit: '°C', format: '-40:85' }, on: { datatype: 'boolean' } },
      },
    },
  };
  await pub.publishAsync('homie/5/thermo/$description', JSON.stringify(description), { qos: 1, retain: true });
  await pub.publishAsync('homie/5/thermo/$state', 'ready', { qos: 1, retain: true });
  await waitFor(() => devices.current('homie-thermo') !== undefined, {
    what: 'the Homie device attached',
    timeoutMs: 5000,
  });
  expect(devices.current('homie-thermo')!.info.metrics).toEqual([
    { alias: 0, name: 'room.temperature', kind: 'f64', unit: '°C', min: -40, max: 85 },
    { alias: 1, name: 'room.on', kind: 'bool', unit: '' },
  ]);
  await pub.publishAsync('homie/5/thermo/room/temperature', '21.5', { qos: 1 });
  await pub.publishAsync('homie/5/thermo/room/on', 'true', { qos: 1 });
  await pub.publishAsync('homie/5/thermo/room/temperature', '120', { qos: 1 }); // out of range
  await waitFor(() => storedOf('homie-thermo').length === 3, { what: 'three Homie readings', timeoutMs: 5000 });
  expect(storedOf('homie-thermo').map((r) => r.values)).toEqual([
    { 'room.temperature': 21.5 },
    { 'room.on': true },
    {},
  ]);
  await pub.publishAsync('homie/5/thermo/$state', 'lost', { qos: 1, retain: true });
  await waitFor(() => devices.presence.some((p) => p.deviceId === 'homie-thermo' && p.state === 'offline'), {
    what: 'offline',
    timeoutMs: 5000,
  });
  expect(devices.presence.filter((p) => p.deviceId === 'homie-thermo').at(-1)!.reason).toBe('MQTT_WILL');
  for (const t of ['$description', '$state', 'room/temperature'])
    await pub.publishAsync(`homie/5/thermo/${t}`, '', { qos: 1, retain: true });
  await allAcked();
});
