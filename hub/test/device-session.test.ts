/** Device channel: presence, replacement, heartbeat, rate limit, commands, limits (docs/protocol.md §6–§8). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceEvents } from '../src/devices/types.js';
import type { SqliteStore } from '../src/storage/sqlite-store.js';
import { storedSeqs as seqsInStore } from './stores.js';
import { TestDevice } from './device-client.js';
import { auth, provision, startHub, within, type TestHub } from './helpers.js';

function nextEvent<K extends keyof DeviceEvents & string>(
  hub: TestHub,
  event: K,
  deviceId: string,
): Promise<DeviceEvents[K]> {
  return within(
    `${event} event of ${deviceId}`,
    new Promise((resolve) => {
      const off = hub.app.devices.sessions.events.on(event, (e) => {
        if ((e as { deviceId: string }).deviceId === deviceId) {
          off();
          resolve(e);
        }
      });
    }),
  );
}

/** The seqs the store holds for the device once the spool has drained into it. */
async function storedSeqs(hub: TestHub, deviceId: string): Promise<number[]> {
  await hub.app.durability.spool?.whenDrained();
  return seqsInStore(hub.app.durability.store as SqliteStore, deviceId);
}

async function getDevice(hub: TestHub, id: string) {
  return (await hub.app.inject({ method: 'GET', url: `/api/v1/devices/${id}`, headers: auth })).json();
}

describe('presence and sessions', () => {
  let hub: TestHub;
  let url: string;
  beforeAll(async () => {
    hub = await startHub();
    url = hub.listening!.deviceUrl;
  });
  afterAll(async () => {
    await hub.dispose();
  });

  it('§6.4 a newer connection replaces the older one without an offline flap', async () => {
    const token = await provision(hub.app, 'rep-1');
    const first = await TestDevice.connect(url);
    await first.hello({ deviceId: 'rep-1', token });
    const offline: unknown[] = [];
    const off = hub.app.devices.sessions.events.on('offline', (e) => e.deviceId === 'rep-1' && offline.push(e));
    const online = nextEvent(hub, 'online', 'rep-1');
    const second = await TestDevice.connect(url);
    await second.hello({ deviceId: 'rep-1', token });
    expect((await first.next('error', 'ERROR REPLACED')).code).toBe('REPLACED');
    expect(await first.closedWithin()).toEqual({ code: 1008, reason: 'REPLACED' });
    expect(await online).toMatchObject({ replaced: true });
    const view = await getDevice(hub, 'rep-1');
    expect(view.presence).toMatchObject({ state: 'online', reason: 'REPLACED' });
    // The surviving connection works.
    second.send({ type: 'reading', seq: 1, ts: Date.now(), values: [{ alias: 2, kind: 'int', value: 1 }] });
    await second.ackFor(1);
    expect(offline).toEqual([]);
    off();
    second.close();
    await second.closedWithin();
  });

  it('shows online, then offline with reason CLOSED, last seen and latest values through the API', async () => {
    const token = await provision(hub.app, 'pres-1');
    const d = await TestDevice.connect(url);
    await d.hello({ deviceId: 'pres-1', token });
    expect((await getDevice(hub, 'pres-1')).presence).toMatchObject({
      state: 'online',
      reason: null,
      remote: '127.0.0.1',
    });
    const ts = Date.now() - 5000;
    d.send({ type: 'reading', seq: 1, ts, values: [{ alias: 0, kind: 'f32', value: 19.5 }] });
    await d.ackFor(1);
    const offline = nextEvent(hub, 'offline', 'pres-1');
    d.close();
    expect(await offline).toMatchObject({ reason: 'CLOSED' });
    const view = await getDevice(hub, 'pres-1');
    expect(view.presence).toMatchObject({ state: 'offline', reason: 'CLOSED' });
    expect(view.presence.lastSeen).toBeGreaterThan(0);
    expect(view.latest).toEqual({ temperature: { ts, value: 19.5 } });
  });

  it('keeps a device connected when an event listener throws', async () => {
    const token = await provision(hub.app, 'evt-1');
    const seen: string[] = [];
    const offA = hub.app.devices.sessions.events.on('online', () => {
      throw new Error('a broken listener (test)');
    });
    const offB = hub.app.devices.sessions.events.on('online', (e) => seen.push(e.deviceId));
    try {
      const d = await TestDevice.connect(url);
      await d.hello({ deviceId: 'evt-1', token });
      d.send({ type: 'reading', seq: 1, ts: Date.now(), values: [{ alias: 2, kind: 'int', value: 1 }] });
      await d.ackFor(1);
      expect(seen).toEqual(['evt-1']);
      d.close();
      await d.closedWithin();
    } finally {
      offA();
      offB();
    }
  });

  it('records CONNECTION_LOST when the TCP connection drops without a close frame', async () => {
    const token = await provision(hub.app, 'lost-1');
    const d = await TestDevice.connect(url);
    await d.hello({ deviceId: 'lost-1', token });
    const offline = nextEvent(hub, 'offline', 'lost-1');
    d.ws.terminate();
    expect(await offline).toMatchObject({ reason: 'CONNECTION_LOST' });
    expect((await getDevice(hub, 'lost-1')).presence).toMatchObject({ state: 'offline', reason: 'CONNECTION_LOST' });
  });

  it('rotating the token closes the open connection with AUTH_FAILED; deleting closes with reason DELETED', async () => {
    const token = await provision(hub.app, 'rot-1');
    const d = await TestDevice.connect(url);
    await d.hello({ deviceId: 'rot-1', token });
    const offline = nextEvent(hub, 'offline', 'rot-1');
    const res = await hub.app.inject({ method: 'POST', url: '/api/v1/devices/rot-1/token', headers: auth });
    expect((await d.next('error')).code).toBe('AUTH_FAILED');
    expect(await d.closedWithin()).toEqual({ code: 1008, reason: 'AUTH_FAILED' });
    expect(await offline).toMatchObject({ reason: 'AUTH_FAILED' });
    expect((await getDevice(hub, 'rot-1')).presence).toMatchObject({ state: 'offline', reason: 'AUTH_FAILED' });

    const d2 = await TestDevice.connect(url);
    await d2.hello({ deviceId: 'rot-1', token: res.json().token });
    const gone = nextEvent(hub, 'offline', 'rot-1');
    expect((await hub.app.inject({ method: 'DELETE', url: '/api/v1/devices/rot-1', headers: auth })).statusCode).toBe(
      204,
    );
    expect(await d2.closedWithin()).toEqual({ code: 1008, reason: 'AUTH_FAILED' });
    expect(await gone).toMatchObject({ reason: 'DELETED' });
  });

  it('§8 delivers a command and reports results; an unknown command id gets UNKNOWN_COMMAND_ID', async () => {
    const token = await provision(hub.app, 'cmd-1');
    expect(
      hub.app.devices.sessions.sendCommand('cmd-1', { commandId: 5, name: 'reboot', args: '', timeoutMs: 1000 }),
    ).toBe(false);
    const d = await TestDevice.connect(url);
    await d.hello({ deviceId: 'cmd-1', token });
    expect(
      hub.app.devices.sessions.sendCommand('cmd-1', {
        commandId: 5,
        name: 'set-interval',
        args: '{"ms":500}',
        timeoutMs: 1000,
      }),
    ).toBe(true);
    expect(await d.next('command')).toEqual({
      type: 'command',
      commandId: 5,
      name: 'set-interval',
      args: '{"ms":500}',
      timeoutMs: 1000,
    });
    const delivered = nextEvent(hub, 'commandResult', 'cmd-1');
    d.send({ type: 'commandResult', commandId: 5, status: 'delivered', detail: '' });
    expect(await delivered).toMatchObject({ commandId: 5, status: 'delivered' });
    const succeeded = nextEvent(hub, 'commandResult', 'cmd-1');
    d.send({ type: 'commandResult', commandId: 5, status: 'succeeded', detail: '{"ok":true}' });
    expect(await succeeded).toMatchObject({ commandId: 5, status: 'succeeded', detail: '{"ok":true}' });
    d.send({ type: 'commandResult', commandId: 6, status: 'failed', detail: 'x' });
    expect(await d.next('error')).toMatchObject({ code: 'UNKNOWN_COMMAND_ID', seq: 0, alias: null });
    // The connection stays open.
    d.send({ type: 'reading', seq: 1, ts: Date.now(), values: [{ alias: 2, kind: 'int', value: 1 }] });
    await d.ackFor(1);
    d.close();
    await d.closedWithin();
  });
});

describe('presence after a restart', () => {
  it('shows devices offline with their last seen time and latest values from the store', async () => {
    const hub = await startHub();
    const dataDir = hub.dataDir;
    const token = await provision(hub.app, 'boot-1');
    const d = await TestDevice.connect(hub.listening!.deviceUrl);
    await d.hello({ deviceId: 'boot-1', token });
    const ts = Date.now() - 1000;
    d.send({
      type: 'reading',
      seq: 1,
      ts,
      values: [
        { alias: 1, kind: 'f64', value: 42.5 },
        { alias: 3, kind: 'bool', value: true },
      ],
    });
    await d.ackFor(1);
    await hub.app.close();
    expect(await d.closedWithin()).toEqual({ code: 1001, reason: 'SHUTTING_DOWN' });
    const again = await startHub({ dataDir, listen: false });
    try {
      const view = await getDevice(again, 'boot-1');
      expect(view.presence).toMatchObject({ state: 'offline', reason: 'SHUTTING_DOWN' });
      expect(view.presence.lastSeen).toBeGreaterThan(0);
      expect(view.latest).toEqual({ humidity: { ts, value: 42.5 }, door: { ts, value: true } });
      expect(view).toMatchObject({ ackedSeq: 1, epoch: 7, firmware: 'fw-1' });
    } finally {
      await again.app.close();
      await hub.dispose();
    }
  });
});

describe('heartbeat', () => {
  it('§6.5 terminates a client that stops answering pings within 2 x heartbeatMs, reason HEARTBEAT_LOST', async () => {
    const heartbeatMs = 100;
    const hub = await startHub({ config: { heartbeatMs } });
    try {
      const token = await provision(hub.app, 'hb-1');
      const d = await TestDevice.connect(hub.listening!.deviceUrl, { autoPong: false });
      await d.hello({ deviceId: 'hb-1', token });
      const offline = nextEvent(hub, 'offline', 'hb-1');
      const silentSince = Date.now();
      const closed = await d.closedWithin(10 * heartbeatMs);
      const elapsed = Date.now() - silentSince;
      expect(closed.code).toBe(1006); // terminated: no close frame
      expect(await offline).toMatchObject({ reason: 'HEARTBEAT_LOST' });
      expect(elapsed).toBeLessThanOrEqual(2 * heartbeatMs + 50);
      // A client that answers pings stays connected across several intervals.
      const alive = await TestDevice.connect(hub.listening!.deviceUrl);
      await alive.hello({ deviceId: 'hb-1', token });
      let pings = 0;
      await within(
        'three pings',
        new Promise<void>((resolve) => alive.ws.on('ping', () => ++pings === 3 && resolve())),
      );
      expect(alive.ws.readyState).toBe(alive.ws.OPEN);
      alive.close();
      await alive.closedWithin();
    } finally {
      await hub.dispose();
    }
  });
});

describe('heartbeat while delivering', () => {
  it('§6.5.2 keeps a device whose Pong queues behind its readings, and cuts one that never answers after 5 heartbeats', async () => {
    const heartbeatMs = 100;
    const hub = await startHub({ config: { heartbeatMs } });
    try {
      const token = await provision(hub.app, 'hb-2');
      // The Pong is written late (1.5 heartbeats after the Ping), as when it queues behind a device's
      // readings: frames arriving meanwhile must count as liveness.
      const late = await TestDevice.connect(hub.listening!.deviceUrl, { autoPong: false });
      await late.hello({ deviceId: 'hb-2', token });
      let seq = 0;
      const send = (d: TestDevice) =>
        d.send({ type: 'reading', seq: ++seq, ts: Date.now(), values: [{ alias: 2, kind: 'int', value: 1 }] });
      const lateTimer = setInterval(() => send(late), heartbeatMs / 5);
      let pings = 0;
      const sixPings = new Promise<void>((resolve) =>
        late.ws.on('ping', (data: Buffer) => {
          setTimeout(() => late.ws.readyState === late.ws.OPEN && late.ws.pong(data), 1.5 * heartbeatMs);
          if (++pings === 6) resolve();
        }),
      );
      try {
        await within('six pings to a device answering each 1.5 heartbeats late', sixPings);
        expect(late.ws.readyState).toBe(late.ws.OPEN);
        expect(await late.ackFor(seq - 5)).toBeGreaterThanOrEqual(seq - 5);
      } finally {
        clearInterval(lateTimer);
      }
      late.close();
      await late.closedWithin();
      // A device that delivers readings but never answers the Ping (it does not read) is cut after
      // PONG_WAIT_BEATS heartbeats, not kept forever.
      const deaf = await TestDevice.connect(hub.listening!.deviceUrl, { autoPong: false });
      const welcome = await deaf.hello({ deviceId: 'hb-2', token });
      seq = welcome.ackedSeq;
      const deafTimer = setInterval(() => send(deaf), heartbeatMs / 5);
      const since = Date.now();
      try {
        const offline = nextEvent(hub, 'offline', 'hb-2');
        const closed = await deaf.closedWithin(20 * heartbeatMs);
        const elapsed = Date.now() - since;
        expect(closed.code).toBe(1006);
        expect(await offline).toMatchObject({ reason: 'HEARTBEAT_LOST' });
        // Without frames counting as liveness it would go after 2 heartbeats; with them, after 5 to 6.
        expect(elapsed).toBeGreaterThanOrEqual(4 * heartbeatMs);
        expect(elapsed).toBeLessThanOrEqual(6 * heartbeatMs + 100);
      } finally {
        clearInterval(deafTimer);
      }
    } finally {
      await hub.dispose();
    }
  });
});

describe('rate limit', () => {
  it('§7.4 answers BACKOFF RATE_LIMITED, ignores readings during the pause, and accepts the resend after it', async () => {
    const clock = {
      t: Date.now(),
      now() {
        return this.t;
      },
    };
    const hub = await startHub({ config: { deviceRate: 10, deviceBurst: 3 }, deps: { clock } });
    try {
      const token = await provision(hub.app, 'rl-1');
      const d = await TestDevice.connect(hub.listening!.deviceUrl);
      await d.hello({ deviceId: 'rl-1', token, clock: clock.t });
      const ts = clock.t - 1000;
      const reading = (seq: number) => ({
        type: 'reading' as const,
        seq,
        ts: ts + seq,
        values: [{ alias: 2, kind: 'int' as const, value: seq }],
      });
      for (let seq = 1; seq <= 4; seq++) d.send(reading(seq));
      const backoff = await d.next('backoff', 'BACKOFF RATE_LIMITED');
      expect(backoff).toMatchObject({ code: 'RATE_LIMITED', pauseMs: 100 });
      d.send(reading(5)); // during the pause: ignored
      d.send({ type: 'commandResult', commandId: 1, status: 'delivered', detail: '' });
      await d.next('error', 'round trip (UNKNOWN_COMMAND_ID)');
      expect(await d.ackFor(3)).toBe(3);
      // Readings 4 (refused) and 5 (ignored) never reached the store.
      expect(await storedSeqs(hub, 'rl-1')).toEqual([1, 2, 3]);
      expect(d.frames.filter((f) => f.type === 'ack')).toEqual([]);
      // The pause refills one token: the resend's first reading is taken, the next one waits again.
      clock.t += backoff.pauseMs;
      d.send(reading(4));
      d.send(reading(5));
      expect(await d.ackFor(4)).toBe(4);
      expect(await d.next('backoff', 'second BACKOFF')).toMatchObject({ code: 'RATE_LIMITED', pauseMs: 100 });
      clock.t += 100;
      d.send(reading(5));
      expect(await d.ackFor(5)).toBe(5);
      expect(hub.app.devices.registry.get('rl-1')!.ackedSeq).toBe(5);
      expect(await storedSeqs(hub, 'rl-1')).toEqual([1, 2, 3, 4, 5]);
      d.close();
      await d.closedWithin();
    } finally {
      await hub.dispose();
    }
  });
});

describe('resend after BACKOFF', () => {
  it('§7.4.5 does not take a reading sent before the device saw BACKOFF, so no ACK skips the ignored ones', async () => {
    const clock = {
      t: Date.now(),
      now() {
        return this.t;
      },
    };
    const hub = await startHub({ config: { deviceRate: 10, deviceBurst: 2 }, deps: { clock } });
    try {
      const token = await provision(hub.app, 'rs-1');
      const d = await TestDevice.connect(hub.listening!.deviceUrl);
      await d.hello({ deviceId: 'rs-1', token, clock: clock.t });
      const reading = (seq: number) => ({
        type: 'reading' as const,
        seq,
        ts: clock.t - 1000 + seq,
        values: [{ alias: 2, kind: 'int' as const, value: seq }],
      });
      d.send(reading(1));
      d.send(reading(2));
      d.send(reading(3)); // refused: BACKOFF
      const backoff = await d.next('backoff', 'BACKOFF');
      await d.ackFor(2);
      clock.t += backoff.pauseMs + 1000; // the bucket is full again
      // Reading 4 was in flight when the device got BACKOFF: it arrives after the pause but is not a resend.
      d.send(reading(4));
      expect(await d.next('backoff', 'BACKOFF for the stale reading')).toMatchObject({ code: 'RATE_LIMITED' });
      clock.t += 1000;
      // The device's resend, oldest unacked first.
      d.send(reading(3));
      d.send(reading(4));
      expect(await d.ackFor(4)).toBe(4);
      expect(await storedSeqs(hub, 'rs-1')).toEqual([1, 2, 3, 4]);
      d.close();
      await d.closedWithin();
    } finally {
      await hub.dispose();
    }
  });
});

describe('connection limit', () => {
  it('§6.1.2 refuses a HELLO beyond HUB_MAX_CONNECTIONS with TRY_AGAIN_LATER, 1013', async () => {
    const hub = await startHub({ config: { maxConnections: 1 } });
    try {
      const tokenA = await provision(hub.app, 'limit-a');
      const tokenB = await provision(hub.app, 'limit-b');
      const first = await TestDevice.connect(hub.listening!.deviceUrl);
      await first.hello({ deviceId: 'limit-a', token: tokenA });
      const second = await TestDevice.connect(hub.listening!.deviceUrl);
      second.send({
        type: 'hello',
        firmware: 'fw',
        sdk: 't',
        epoch: 1,
        lastSeq: 0,
        clock: Date.now(),
        dropped: 0,
        metrics: [],
        deviceId: 'limit-b',
        token: tokenB,
      });
      expect((await second.next('error')).code).toBe('TRY_AGAIN_LATER');
      expect(await second.closedWithin()).toEqual({ code: 1013, reason: 'TRY_AGAIN_LATER' });
      // The device that holds a slot can replace its own connection at the limit.
      const again = await TestDevice.connect(hub.listening!.deviceUrl);
      await again.hello({ deviceId: 'limit-a', token: tokenA });
      expect(await first.closedWithin()).toEqual({ code: 1008, reason: 'REPLACED' });
      again.close();
      await again.closedWithin();
    } finally {
      await hub.dispose();
    }
  });

  it('§6.1.5 sockets waiting for HELLO take no device slot: silent upgrades do not lock devices out', async () => {
    const hub = await startHub({ config: { maxConnections: 2 } });
    try {
      const token = await provision(hub.app, 'slot-1');
      const silent = await Promise.all(Array.from({ length: 5 }, () => TestDevice.connect(hub.listening!.deviceUrl)));
      const d = await TestDevice.connect(hub.listening!.deviceUrl);
      const welcome = await d.hello({ deviceId: 'slot-1', token });
      expect(welcome.type).toBe('welcome');
      for (const s of silent) s.close();
      d.close();
      await d.closedWithin();
    } finally {
      await hub.dispose();
    }
  });

  it('§6.1.5 bounds the sockets waiting for HELLO per client address (TRY_AGAIN_LATER, 1013) and counts the refusals', async () => {
    const hub = await startHub({ deps: { maxPendingPerAddress: 3 } });
    try {
      const waiting = await Promise.all(Array.from({ length: 3 }, () => TestDevice.connect(hub.listening!.deviceUrl)));
      const fourth = await TestDevice.connect(hub.listening!.deviceUrl);
      expect((await fourth.next('error')).code).toBe('TRY_AGAIN_LATER');
      expect(await fourth.closedWithin()).toEqual({ code: 1013, reason: 'TRY_AGAIN_LATER' });
      const metrics = await hub.app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.body).toMatch(/^tendril_device_handshakes_refused_total 1$/m);
      // A slot frees when one of them goes away.
      waiting[0]!.close();
      await waiting[0]!.closedWithin();
      const fifth = await TestDevice.connect(hub.listening!.deviceUrl);
      const token = await provision(hub.app, 'slot-2');
      expect((await fifth.hello({ deviceId: 'slot-2', token })).type).toBe('welcome');
      for (const w of [...waiting.slice(1), fifth]) w.close();
    } finally {
      await hub.dispose();
    }
  });
});
