/**
 * The broker link against a real Mosquitto: PUBACKs only once a message is handled and only in PUBLISH
 * order [MQTT-4.6.0-2], keepalive alive while acks are held, the persistent session resending what was not
 * acknowledged, back-off reconnects.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMosquitto, waitFor, type MosquittoServer } from '../../test/support/index.js';
import { systemClock, systemTimers } from '../src/core/clock.js';
import {
  BrokerLink,
  type BrokerLinkListener,
  type BrokerLinkOptions,
  type InboundMessage,
} from '../src/mqtt/broker-link.js';

let broker: MosquittoServer;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.stop();
});

interface Recorder extends BrokerLinkListener {
  messages: InboundMessage[];
  ups: boolean[];
  downs: string[];
  subscribedCount: number;
}

function recorder(): Recorder {
  const r: Recorder = {
    messages: [],
    ups: [],
    downs: [],
    subscribedCount: 0,
    up: (sessionPresent) => r.ups.push(sessionPresent),
    down: (reason) => r.downs.push(reason),
    subscribed: () => r.subscribedCount++,
    message: (m) => r.messages.push(m),
  };
  return r;
}

function linkOptions(clientId: string, topic: string, extra: Partial<BrokerLinkOptions> = {}): BrokerLinkOptions {
  return {
    url: broker.url,
    clientId,
    protocolVersion: 5,
    keepaliveSec: 60,
    sessionExpirySec: 3600,
    receiveMaximum: 100,
    maximumPacketSize: 1 << 20,
    connectTimeoutMs: 5000,
    reconnectInitialMs: 20,
    reconnectMaxMs: 200,
    subscriptions: [[{ topic, qos: 1 }]],
    clock: systemClock,
    timers: systemTimers,
    ...extra,
  };
}

async function publisher(): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
}

describe.each([5, 4] as const)('broker link, MQTT %s', (protocolVersion) => {
  it('acks nothing while the first message is held, then everything in order', async () => {
    const topic = `t/${protocolVersion}/order`;
    const rec = recorder();
    const link = new BrokerLink(linkOptions(`hub-order-${protocolVersion}`, topic, { protocolVersion }), rec);
    link.start();
    await waitFor(() => rec.subscribedCount === 1, { what: 'the SUBACK', timeoutMs: 5000 });
    const pub = await publisher();
    for (let i = 1; i <= 10; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    await waitFor(() => rec.messages.length === 10, { what: '10 messages at the link', timeoutMs: 5000 });
    expect(rec.messages.map((m) => m.payload.toString())).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    // Handled out of order: 2..10 first. Nothing may be acked while 1 is outstanding.
    for (const m of rec.messages.slice(1)) m.complete();
    await new Promise((r) => setImmediate(r));
    expect(link.counts.pubacksSent).toBe(0);
    expect(link.unacked).toBe(10);
    // A cut now: the broker resends all ten, marked DUP, since none was acknowledged.
    link.cut();
    await waitFor(() => rec.messages.length === 20, {
      what: 'the broker resending 10 unacked messages',
      timeoutMs: 5000,
    });
    const resent = rec.messages.slice(10);
    expect(resent.map((m) => m.payload.toString())).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    expect(resent.every((m) => m.dup)).toBe(true);
    expect(rec.ups.at(-1)).toBe(true); // session present
    // Completing a slot of the dead connection sends nothing.
    rec.messages[0]!.complete();
    resent[0]!.complete();
    await new Promise((r) => setImmediate(r));
    expect(link.counts.pubacksSent).toBe(1);
    for (const m of resent.slice(1)) m.complete();
    await waitFor(() => link.counts.pubacksSent === 10, { what: '10 PUBACKs', timeoutMs: 2000 });
    expect(link.unacked).toBe(0);
    // All acknowledged: a reconnect brings nothing back.
    const before = rec.messages.length;
    link.cut();
    await waitFor(() => rec.subscribedCount === 3, { what: 'the third SUBACK', timeoutMs: 5000 });
    await pub.publishAsync(topic, 'after', { qos: 1 });
    await waitFor(() => rec.messages.length === before + 1, {
      what: 'the message published after the reconnect',
      timeoutMs: 5000,
    });
    expect(rec.messages.at(-1)!.payload.toString()).toBe('after');
    await pub.endAsync();
    await link.close();
  });
});

it('keepalive goes on while acks are held (PINGREQ every keepalive; the broker would cut us after 1.5x)', async () => {
  const topic = 't/keepalive';
  const rec = recorder();
  const link = new BrokerLink(linkOptions('hub-keepalive', topic, { keepaliveSec: 1 }), rec);
  link.start();
  await waitFor(() => rec.subscribedCount === 1, { what: 'the SUBACK', timeoutMs: 5000 });
  const pub = await publisher();
  await pub.publishAsync(topic, 'held', { qos: 1 });
  await waitFor(() => rec.messages.length === 1, { what: 'the held message', timeoutMs: 5000 });
  const started = Date.now();
  // 3.5 keepalive periods with the only message unacknowledged.
  await waitFor(() => Date.now() - started > 3500, { what: '3.5 s', timeoutMs: 5000, intervalMs: 100 });
  expect(rec.downs).toEqual([]);
  expect(link.state).toBe('up');
  await pub.publishAsync(topic, 'next', { qos: 1 });
  await waitFor(() => rec.messages.length === 2, { what: 'a message behind the held one', timeoutMs: 5000 });
  rec.messages[1]!.complete();
  rec.messages[0]!.complete();
  await waitFor(() => link.counts.pubacksSent === 2, { what: '2 PUBACKs', timeoutMs: 2000 });
  await pub.endAsync();
  await link.close();
});

it('reconnects with back-off while the broker is away and reports why it is down', async () => {
  const server = await startMosquitto();
  const rec = recorder();
  const link = new BrokerLink({ ...linkOptions('hub-reconnect', 't/x'), url: server.url }, rec);
  link.start();
  await waitFor(() => rec.ups.length === 1, { what: 'the first CONNACK', timeoutMs: 5000 });
  await server.kill9();
  await waitFor(() => link.state !== 'up', { what: 'the link to notice the broker is gone', timeoutMs: 5000 });
  await waitFor(() => rec.downs.length >= 3, { what: 'repeated failed attempts', timeoutMs: 5000 });
  expect(link.lastError).toMatch(/ECONNREFUSED|closed/);
  await server.restart();
  await waitFor(() => rec.ups.length === 2, { what: 'a reconnect after the broker came back', timeoutMs: 5000 });
  expect(link.lastError).toBeNull();
  await link.close();
  expect(link.state).toBe('closed');
  await server.stop();
});

it('publishes QoS 1 and resolves on PUBACK; returns null while down', async () => {
  const rec = recorder();
  const link = new BrokerLink(linkOptions('hub-publish', 't/none'), rec);
  expect(link.publish('t/out', Buffer.from('x'), { qos: 1 })).toBeNull();
  link.start();
  await waitFor(() => rec.subscribedCount === 1, { what: 'the SUBACK', timeoutMs: 5000 });
  const sub = await publisher();
  const got: Array<{ topic: string; payload: string; expiry: number | undefined }> = [];
  sub.on('message', (topic, payload, packet) =>
    got.push({ topic, payload: payload.toString(), expiry: packet.properties?.messageExpiryInterval }),
  );
  await sub.subscribeAsync('t/out', { qos: 1 });
  await expect(link.publish('t/out', Buffer.from('hello'), { qos: 1, expirySec: 30 })).resolves.toBe(true);
  await waitFor(() => got.length === 1, { what: 'the subscriber to get the message', timeoutMs: 5000 });
  expect(got[0]!.payload).toBe('hello');
  expect(got[0]!.expiry).toBeGreaterThan(25);
  await sub.endAsync();
  await link.close();
});
