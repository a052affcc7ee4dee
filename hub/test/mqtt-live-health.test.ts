/**
 * The MQTT bridge on the live channel's health stream (docs/live.md §5.3.2, docs/mqtt.md §8), on a real hub
 * and a real Mosquitto: the dashboard learns that the broker is unreachable (with the reason and the
 * reconnect attempts), that it drops messages ($SYS/broker/publish/messages/dropped), and how many
 * messages the bridge refused, instead of those staying in /metrics only.
 */
import mqtt from 'mqtt';
import { afterEach, expect, it } from 'vitest';
import { startMosquitto, type MosquittoServer } from '../../test/support/index.js';
import { healthSource } from '../src/live/plugin.js';
import { mqttConfigFromEnv } from '../src/mqtt/config.js';
import { ADMIN_TOKEN, startHub, waitFor, type TestHub } from './helpers.js';
import { LiveTestClient, type Msg } from './live-helpers.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function bridgedHub(broker: MosquittoServer, clientId: string): Promise<TestHub> {
  const config = mqttConfigFromEnv({ MQTT_URL: broker.url, MQTT_CLIENT_ID: clientId });
  const hub = await startHub({ deps: { mqtt: { config, reconnectInitialMs: 20, reconnectMaxMs: 200 } } });
  cleanup.push(() => hub.dispose());
  return hub;
}

async function healthClient(hub: TestHub): Promise<LiveTestClient> {
  const live = await LiveTestClient.connect(`${hub.listening!.url.replace('http', 'ws')}/v1/live`);
  cleanup.push(() => live.close());
  live.send({ type: 'auth', token: ADMIN_TOKEN });
  await live.next((m) => m.type === 'auth_ok', 'auth_ok');
  return live;
}

/** The first health event (from index `from`) whose mqtt part satisfies `pred`. */
function mqttHealth(live: LiveTestClient, pred: (mqtt: Msg) => boolean, what: string, timeoutMs = 10_000) {
  return live.next((m) => m.event?.kind === 'health' && pred(m.event.health.mqtt ?? {}), what, timeoutMs);
}

it('the health stream shows the broker up, refusals, then the broker unreachable with its reason and attempts', async () => {
  const broker = await startMosquitto();
  cleanup.push(() => broker.stop());
  const hub = await bridgedHub(broker, 'hub-live-health-1');
  await waitFor('the bridge to connect', () => hub.app.mqttBridge?.status().broker === 'up');
  const live = await healthClient(hub);
  const { snapshot } = await live.subscribe({ id: 1, stream: 'health' });
  // Health is looked at every second: the snapshot may still be from before the bridge connected.
  const first =
    snapshot[0]!.event.health.mqtt.broker === 'up'
      ? snapshot[0]!.event.health.mqtt
      : (await mqttHealth(live, (m) => m.broker === 'up', 'a health event with the broker up')).event.health.mqtt;
  expect(first).toEqual({
    broker: 'up',
    url: broker.url,
    since: expect.any(Number),
    reconnectAttempts: 0,
    lastError: null,
    brokerDropped: first.brokerDropped,
    brokerDroppedSinceStart: 0,
    refused: 0,
    unackedMessages: 0,
    devicesAttached: 0,
  });

  // A message for an unregistered device: refused, and counted where the dashboard sees it.
  const device = await mqtt.connectAsync(broker.url, { clientId: 'stranger', reconnectPeriod: 0 });
  cleanup.push(() => device.endAsync(true));
  await device.publishAsync('tendril/v1/nobody/data', JSON.stringify({ temperature: 1 }), { qos: 1 });
  await mqttHealth(live, (m) => m.refused === 1, 'a health event counting the refused message');

  const before = hub.app.mqttBridge!.status().since;
  await broker.kill9();
  const down = await mqttHealth(
    live,
    (m) => m.broker !== 'up' && m.reconnectAttempts >= 2,
    'a health event with the broker unreachable after two reconnect attempts',
  );
  expect(down.event.health.mqtt.lastError).toEqual(expect.any(String));
  expect(down.event.health.mqtt.lastError.length).toBeGreaterThan(0);
  expect(down.event.health.mqtt.since).toBeGreaterThanOrEqual(before);
  await broker.restart();
  const back = await mqttHealth(live, (m) => m.broker === 'up', 'a health event with the broker back');
  expect(back.event.health.mqtt).toMatchObject({ reconnectAttempts: 0, lastError: null });
});

it("the broker's own drops reach the health stream ($SYS/broker/publish/messages/dropped)", async () => {
  // A broker that queues 2 messages for an offline subscriber and reports $SYS every second.
  const broker = await startMosquitto({ extraConfig: 'max_queued_messages 2\nsys_interval 1' });
  cleanup.push(() => broker.stop());
  const hub = await bridgedHub(broker, 'hub-live-health-2');
  await waitFor('the bridge to see the broker drop count', () => hub.app.mqttBridge?.status().brokerDropped !== null);
  const live = await healthClient(hub);
  await live.subscribe({ id: 1, stream: 'health' });

  // A persistent-session subscriber goes away; 10 QoS 1 messages for it: the broker keeps 2, drops the rest.
  const sleeper = await mqtt.connectAsync(broker.url, {
    clientId: 'sleeper',
    clean: false,
    protocolVersion: 5,
    properties: { sessionExpiryInterval: 600 },
    reconnectPeriod: 0,
  });
  await sleeper.subscribeAsync('other/app', { qos: 1 });
  await sleeper.endAsync();
  const publisher = await mqtt.connectAsync(broker.url, { clientId: 'publisher', reconnectPeriod: 0 });
  cleanup.push(() => publisher.endAsync(true));
  for (let i = 0; i < 10; i++) await publisher.publishAsync('other/app', String(i), { qos: 1 });

  const dropped = await mqttHealth(
    live,
    (m) => m.brokerDroppedSinceStart >= 8,
    'a health event with the 8 messages the broker dropped',
  );
  expect(dropped.event.health.mqtt.broker).toBe('up');
  expect(hub.app.mqttBridge!.readiness()).toMatch(/dropped \d+ messages/);
});

it('the health source says nothing of MQTT without the bridge, and never shows broker credentials', () => {
  const durability = { store: { kind: 'sqlite' }, sink: { accepting: true } };
  expect(healthSource(durability)()).not.toHaveProperty('mqtt');
  const status = {
    broker: 'down',
    lastError: 'connection refused',
    since: 1000,
    reconnectAttempts: 3,
    url: 'mqtts://hub:***@broker.example:8883/',
    devicesAttached: 0,
    unackedMessages: 0,
    refused: 4,
    brokerDropped: 12,
    brokerDroppedSinceStart: 5,
  };
  const health = healthSource(durability, undefined, () => status)();
  expect(health.mqtt).toEqual({ ...status, url: 'mqtts://broker.example:8883' });
});
