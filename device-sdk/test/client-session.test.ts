/**
 * Session lifecycle of TendrilDevice against the FAKE hub: reconnect back-off with full jitter (§6.7),
 * closes that stop reconnecting (§6.4, §6.7.2), the dead-connection rule (§6.5.4), bad hub frames (§6.6.5),
 * close(), and listener errors. Timers are injected (FakeTimers) wherever a delay matters, so nothing waits.
 */
import { once } from 'node:events';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TendrilDevice, type TendrilDeviceOptions } from '@tendril/device-sdk';
import { FakeHub, FakeTimers, nextEvent, waitUntil } from './support/fake-hub.js';

let hub: FakeHub | undefined;
let devices: TendrilDevice[] = [];

afterEach(async () => {
  await Promise.all(devices.map((d) => d.close()));
  devices = [];
  const violations = hub?.violations ?? [];
  await hub?.close();
  hub = undefined;
  expect(violations).toEqual([]);
});

function device(url: string, extra: Partial<TendrilDeviceOptions> = {}): TendrilDevice {
  const d = new TendrilDevice({
    url,
    deviceId: 'env-1',
    token: 'secret',
    metrics: [{ name: 'count', kind: 'int' }],
    WebSocket,
    epoch: 7,
    ...extra,
  });
  devices.push(d);
  return d;
}

/** random() returning these values in turn. */
function sequence(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

async function refusedUrl(): Promise<string> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `ws://127.0.0.1:${port}/v1/device`;
}

describe('reconnecting (§6.7)', () => {
  it('waits random() * min(maxDelay, initialDelay * 2^n) before attempt n, back to n = 0 after WELCOME', async () => {
    hub = await FakeHub.start({ holdWelcome: true });
    const timers = new FakeTimers();
    const randoms = [0.5, 1, 0.25, 0.999, 1, 0.1];
    const d = device(hub.url, {
      timers,
      random: sequence(randoms),
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
    });
    d.start();
    const caps = [100, 200, 400, 800, 1000, 1000];
    for (let n = 0; n < caps.length; n++) {
      const conn = await hub.connection(n);
      const disconnected = nextEvent(d, 'disconnect', `disconnect #${n}`);
      conn.closeWith('TRY_AGAIN_LATER');
      expect(await disconnected).toEqual({ code: 1013, reason: 'TRY_AGAIN_LATER', willReconnect: true });
      // Only the reconnect timer is left: the dead-connection tick went with the socket.
      expect(timers.pending()).toEqual([randoms[n]! * caps[n]!]);
      timers.fire();
    }
    const conn = await hub.connection(caps.length);
    const connected = nextEvent(d, 'connect', 'the connect event');
    conn.welcome();
    await connected;
    const disconnected = nextEvent(d, 'disconnect', 'the disconnect after WELCOME');
    conn.kill();
    await disconnected;
    expect(timers.pending()).toEqual([0.5 * 100]);
    expect(d.stats.reconnects).toBe(caps.length);
  });

  it('backs off the same way when the connection is refused before it opens', async () => {
    const timers = new FakeTimers();
    const d = device(await refusedUrl(), {
      timers,
      random: () => 1,
      reconnect: { initialDelayMs: 100, maxDelayMs: 150 },
    });
    const disconnects: unknown[] = [];
    d.on('disconnect', (info) => disconnects.push(info));
    d.start();
    for (const delay of [100, 150, 150]) {
      await waitUntil(
        () => timers.pending().length === 1 && timers.pending()[0] !== 10_000,
        `a reconnect timer of ${delay} ms`,
      );
      expect(timers.pending()).toEqual([delay]);
      timers.fire();
    }
    expect(disconnects[0]).toEqual({ code: 1006, reason: '', willReconnect: true });
  });

  it.each(['AUTH_FAILED', 'DEVICE_DISABLED'])('stops after close 1008 %s and reports the error', async (code) => {
    hub = await FakeHub.start({ holdWelcome: true });
    const timers = new FakeTimers();
    const d = device(hub.url, { timers });
    const errors: Array<{ code: string }> = [];
    d.on('error', (e) => errors.push(e as Error & { code: string }));
    d.start();
    const conn = await hub.connection(0);
    const disconnected = nextEvent(d, 'disconnect', 'the disconnect event');
    conn.closeWith(code);
    expect(await disconnected).toEqual({ code: 1008, reason: code, willReconnect: false });
    expect(errors.map((e) => e.code)).toEqual([code]);
    expect(timers.pending()).toEqual([]);
    expect(d.stats.connected).toBe(false);
  });

  it('stops after REPLACED by a newer connection with the same device id (§6.4)', async () => {
    hub = await FakeHub.start({ tokens: { 'env-1': 'secret' } });
    const timers = new FakeTimers();
    const older = device(hub.url, { timers });
    const connected = nextEvent(older, 'connect', 'the older instance to connect');
    older.start();
    await connected;
    const replaced = nextEvent(older, 'disconnect', 'the older instance to be replaced');
    const newer = device(hub.url);
    newer.start();
    expect(await replaced).toEqual({ code: 1008, reason: 'REPLACED', willReconnect: false });
    expect(timers.pending()).toEqual([]);
    // The newer instance is the one connected, and nothing displaces it.
    newer.send({ count: 1 });
    await newer.flush(5000);
    expect(hub.connections.filter((c) => !c.closed)).toHaveLength(1);
  });

  it('reconnects after HELLO_TIMEOUT, which shares close code 1008', async () => {
    hub = await FakeHub.start({ holdWelcome: true });
    const timers = new FakeTimers();
    const d = device(hub.url, { timers, random: () => 0.5 });
    d.start();
    const conn = await hub.connection(0);
    const disconnected = nextEvent(d, 'disconnect', 'the disconnect event');
    conn.closeWith('HELLO_TIMEOUT');
    expect(await disconnected).toEqual({ code: 1008, reason: 'HELLO_TIMEOUT', willReconnect: true });
    expect(timers.pending()).toEqual([250]);
  });
});

describe('dead connections (§6.5.4)', () => {
  it('with ws (pings visible): abandons a connection silent for 3 heartbeats, survives one that pings', async () => {
    hub = await FakeHub.start({ heartbeatMs: 1000, ping: false });
    const timers = new FakeTimers();
    const d = device(hub.url, { timers, random: () => 0.5 });
    const connected = nextEvent(d, 'connect', 'the connect event');
    d.start();
    const conn = await hub.connection(0);
    await connected;
    // A ping in every period keeps an idle connection alive.
    for (let i = 0; i < 5; i++) {
      await conn.roundTrip();
      timers.fire(1000);
    }
    expect(d.stats.connected).toBe(true);
    // No ping, no frame: the third tick since the last ping gives up on the connection.
    timers.fire(1000);
    expect(d.stats.connected).toBe(true);
    const dead = nextEvent(d, 'disconnect', 'the disconnect of the silent connection');
    timers.fire(1000);
    expect(await dead).toEqual({ code: 1006, reason: 'HEARTBEAT_LOST', willReconnect: true });
    expect(timers.pending()).toEqual([250]);
    timers.fire();
    await hub.connection(1);
  });

  it('gives up on a connection that never delivers WELCOME after 3 default heartbeats', async () => {
    hub = await FakeHub.start({ holdWelcome: true });
    const timers = new FakeTimers();
    const d = device(hub.url, { timers });
    d.start();
    await hub.connection(0);
    const dead = nextEvent(d, 'disconnect', 'the disconnect of the connection without WELCOME');
    timers.fire(10_000);
    timers.fire(10_000);
    timers.fire(10_000);
    expect(await dead).toMatchObject({ reason: 'HEARTBEAT_LOST', willReconnect: true });
  });
});

describe('bad frames from the hub (§6.6.5)', () => {
  it.each([
    ['an unknown frame type', Buffer.from([0x99]), 'UNKNOWN_FRAME_TYPE'],
    ['a text message', 'hello', 'TEXT_FRAME'],
    ['an ACK before WELCOME', Buffer.from([0x42, 0x01]), 'UNEXPECTED_FRAME'],
  ])('on %s: error event, close 1002 with the code, reconnect', async (_what, data, code) => {
    hub = await FakeHub.start({ holdWelcome: true });
    const d = device(hub.url, { reconnect: { initialDelayMs: 1, maxDelayMs: 1 } });
    const error = nextEvent<Error & { code: string }>(d, 'error', 'the error event');
    d.start();
    const conn = await hub.connection(0);
    conn.ws.send(data);
    expect((await error).code).toBe(code);
    await waitUntil(() => conn.closed, 'the fake hub to see the close');
    expect(conn.closed).toEqual({ code: 1002, reason: code });
    await hub.connection(1);
  });
});

describe('close() and errors', () => {
  it('close() ends with 1000, does not reconnect, and keeps unacked readings', async () => {
    hub = await FakeHub.start({ holdReadings: true });
    const timers = new FakeTimers();
    const d = device(hub.url, { timers });
    const connected = nextEvent(d, 'connect', 'the connect event');
    d.start();
    const conn = await hub.connection(0);
    await connected;
    d.send({ count: 1 });
    d.send({ count: 2 });
    const disconnected = nextEvent(d, 'disconnect', 'the disconnect event');
    await d.close();
    expect(await disconnected).toEqual({ code: 1000, reason: '', willReconnect: false });
    await waitUntil(() => conn.closed, 'the fake hub to see the close');
    expect(conn.closed!.code).toBe(1000);
    expect(timers.pending()).toEqual([]);
    expect(d.stats).toMatchObject({ connected: false, buffered: 2, sent: 2 });
  });

  it('a listener that throws becomes an error event and the session goes on', async () => {
    hub = await FakeHub.start();
    const d = device(hub.url);
    const boom = new Error('listener bug');
    d.on('ack', () => {
      throw boom;
    });
    const error = nextEvent(d, 'error', 'the error event');
    d.start();
    d.send({ count: 1 });
    expect(await error).toBe(boom);
    d.send({ count: 2 });
    await d.flush(5000);
    expect(hub.storedSeqs('env-1', 7)).toEqual([1, 2]);
  });

  it('a hub-level ERROR that keeps the connection open is an error event', async () => {
    hub = await FakeHub.start();
    const d = device(hub.url);
    const connected = nextEvent(d, 'connect', 'the connect event');
    d.start();
    const conn = await hub.connection(0);
    await connected;
    const error = nextEvent<Error & { code: string }>(d, 'error', 'the error event');
    conn.send({
      type: 'error',
      code: 'UNKNOWN_COMMAND_ID',
      seq: 0,
      alias: null,
      message: 'no command 9 was sent to env-1',
    });
    const e = await error;
    expect(e.code).toBe('UNKNOWN_COMMAND_ID');
    expect(e.message).toBe('no command 9 was sent to env-1');
    expect(d.stats.connected).toBe(true);
  });
});
