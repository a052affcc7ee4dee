/**
 * The device channel against hostile and careless clients (issue "Hardening"): every limit of the WebSocket
 * layer ends with its own close code and reason, a device that does not read is bounded, failed HELLOs are
 * throttled per address, unsolicited Pongs prove nothing, and nothing may follow HELLO before WELCOME.
 * Section numbers (§) are docs/protocol.md.
 */
import { randomBytes } from 'node:crypto';
import { encodeDeviceFrame, newDeltaContext, type HelloFrame } from '@tendril/device-sdk/codec';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { storedSeqs } from './stores.js';
import { systemTimers, type Timers } from '../src/core/clock.js';
import type { SqliteStore } from '../src/storage/sqlite-store.js';
import { TestDevice, ENV_METRICS } from './device-client.js';
import { provision, startHub, waitFor, type TestHub } from './helpers.js';

const hubs: TestHub[] = [];
afterEach(async () => {
  for (const h of hubs.splice(0)) await h.dispose();
});

async function hub(options: Parameters<typeof startHub>[0] = {}): Promise<TestHub> {
  const h = await startHub(options);
  hubs.push(h);
  return h;
}

function helloFrame(deviceId: string, token: string): HelloFrame {
  return {
    type: 'hello',
    deviceId,
    token,
    firmware: 'fw',
    sdk: 'test/0',
    epoch: 3,
    lastSeq: 0,
    clock: Date.now(),
    dropped: 0,
    metrics: ENV_METRICS,
  };
}

/** One masked client frame, built by hand (RFC 6455 §5.2) so a test can send what no library would. */
function rawFrame(opcode: number, payload: Buffer, options: { fin?: boolean; lengthField?: bigint } = {}): Buffer {
  const { fin = true, lengthField } = options;
  const mask = randomBytes(4);
  let header: Buffer;
  if (lengthField !== undefined) {
    header = Buffer.alloc(10);
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(lengthField, 2);
  } else if (payload.length < 126) {
    header = Buffer.alloc(2);
    header[1] = 0x80 | payload.length;
  } else {
    header = Buffer.alloc(4);
    header[1] = 0x80 | 126;
    header.writeUInt16BE(payload.length, 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i]! ^= mask[i % 4]!;
  return Buffer.concat([header, mask, masked]);
}

/** The raw TCP socket under a ws client, to write bytes the client library would not. */
function tcp(d: TestDevice): import('node:net').Socket {
  return (d.ws as unknown as { _socket: import('node:net').Socket })._socket;
}

describe('limits of the WebSocket layer, each with its close code and reason (§9.2, §10)', () => {
  it('an oversized message closes 1009 FRAME_TOO_LARGE', async () => {
    const h = await hub();
    const d = await TestDevice.connect(h.listening!.deviceUrl);
    d.sendRaw(Buffer.alloc(h.config.maxFrameBytes + 1, 1));
    expect(await d.closedWithin()).toEqual({ code: 1009, reason: 'FRAME_TOO_LARGE' });
  });

  it('a length header above 2^53 - 1 closes 1009 FRAME_TOO_LARGE', async () => {
    const h = await hub();
    const d = await TestDevice.connect(h.listening!.deviceUrl);
    tcp(d).write(rawFrame(0x2, Buffer.alloc(0), { lengthField: 2n ** 60n }));
    expect(await d.closedWithin()).toEqual({ code: 1009, reason: 'FRAME_TOO_LARGE' });
  });

  it('more than 64 fragments in one message close 1009 FRAME_TOO_LARGE', async () => {
    const h = await hub();
    const d = await TestDevice.connect(h.listening!.deviceUrl);
    const parts = [rawFrame(0x2, Buffer.from([1]), { fin: false })];
    for (let i = 0; i < 70; i++) parts.push(rawFrame(0x0, Buffer.from([1]), { fin: false }));
    tcp(d).write(Buffer.concat(parts));
    expect(await d.closedWithin()).toEqual({ code: 1009, reason: 'FRAME_TOO_LARGE' });
  });

  it('a text message that is not UTF-8 closes 1007 TEXT_FRAME; valid text closes 1003 TEXT_FRAME', async () => {
    const h = await hub();
    const bad = await TestDevice.connect(h.listening!.deviceUrl);
    tcp(bad).write(rawFrame(0x1, Buffer.from([0xff, 0xfe, 0xfd])));
    expect(await bad.closedWithin()).toEqual({ code: 1007, reason: 'TEXT_FRAME' });
    const text = await TestDevice.connect(h.listening!.deviceUrl);
    text.sendRaw('hello');
    expect(await text.closedWithin()).toEqual({ code: 1003, reason: 'TEXT_FRAME' });
  });

  it('a burst of Pings beyond what the hub can answer closes 1008 TOO_MANY_PINGS and presence says so (§6.5.5)', async () => {
    const h = await hub();
    const token = await provision(h.app, 'pinger-1');
    const d = await TestDevice.connect(h.listening!.deviceUrl);
    await d.hello({ deviceId: 'pinger-1', token });
    // Stop reading so the hub's Pongs cannot drain, then send a burst in one write.
    tcp(d).pause();
    tcp(d).write(Buffer.concat(Array.from({ length: 200 }, () => rawFrame(0x9, Buffer.from('p')))));
    // The device does not read, so it cannot answer the close: the hub cuts it after the close bound (§6.6.6).
    await waitFor(
      'presence offline with TOO_MANY_PINGS',
      () => h.app.devices.registry.get('pinger-1')!.presence.reason === 'TOO_MANY_PINGS',
    );
    tcp(d).resume();
    // What was queued before the cut still arrives: ERROR TOO_MANY_PINGS, then the close frame.
    expect(await d.closedWithin()).toEqual({ code: 1008, reason: 'TOO_MANY_PINGS' });
  });
});

describe('handshake order (§6.1.4)', () => {
  it('refuses a READING sent in the same TCP write as HELLO, before WELCOME, and stores nothing', async () => {
    const h = await hub();
    const token = await provision(h.app, 'pipe-1');
    const d = await TestDevice.connect(h.listening!.deviceUrl);
    const ctx = newDeltaContext(0, Date.now());
    const hello = encodeDeviceFrame(helloFrame('pipe-1', token), ctx);
    const reading = encodeDeviceFrame(
      { type: 'reading', seq: 1, ts: Date.now(), values: [{ alias: 0, kind: 'f32', value: 21 }] },
      ctx,
    );
    tcp(d).write(Buffer.concat([rawFrame(0x2, Buffer.from(hello)), rawFrame(0x2, Buffer.from(reading))]));
    const error = await d.next('error');
    expect(error.code).toBe('UNEXPECTED_FRAME');
    expect(await d.closedWithin()).toEqual({ code: 1002, reason: 'UNEXPECTED_FRAME' });
    expect(d.frames.some((f) => f.type === 'ack')).toBe(false);
    expect(storedSeqs(h.app.durability.store as SqliteStore, 'pipe-1')).toEqual([]);
  });
});

describe('liveness (§6.5)', () => {
  it("unsolicited Pongs do not keep a device that never answers the hub's Pings alive: HEARTBEAT_LOST", async () => {
    const h = await hub({ config: { heartbeatMs: 200 } });
    const token = await provision(h.app, 'pong-1');
    const d = await TestDevice.connect(h.listening!.deviceUrl, { autoPong: false });
    await d.hello({ deviceId: 'pong-1', token });
    const pongs = setInterval(() => d.ws.pong(Buffer.from('unsolicited')), 50);
    try {
      await waitFor(
        'presence offline with HEARTBEAT_LOST',
        () => h.app.devices.registry.get('pong-1')!.presence.reason === 'HEARTBEAT_LOST',
        3000,
      );
    } finally {
      clearInterval(pongs);
    }
  });
});

describe('what the hub queues for one device is bounded (§7.1.3, §9.2)', () => {
  it('answers a reading with many undeclared aliases within the ERROR budget and counts the rest', async () => {
    const h = await hub({ deps: { errorFramesPerSecond: 1, errorFramesBurst: 5 } });
    const token = await provision(h.app, 'bad-1');
    const d = await TestDevice.connect(h.listening!.deviceUrl);
    await d.hello({ deviceId: 'bad-1', token });
    const values = Array.from({ length: 64 }, (_, i) => ({ alias: 100 + i, kind: 'f32' as const, value: 1 }));
    d.send({ type: 'reading', seq: 1, ts: Date.now(), values });
    await d.ackFor(1);
    expect(d.frames.filter((f) => f.type === 'error')).toHaveLength(5);
    const metrics = (await h.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^tendril_error_frames_suppressed_total 59$/m);
    expect(metrics).toMatch(/^tendril_readings_rejected_total\{code="UNKNOWN_ALIAS"\} 64$/m);
  });

  it('cuts a device that does not read once more than maxBufferedBytes wait for it: SLOW_CONSUMER, no close frame', async () => {
    const h = await hub({ deps: { maxBufferedBytes: 64 * 1024, errorFramesPerSecond: 1e9, errorFramesBurst: 1e9 } });
    const token = await provision(h.app, 'deaf-1');
    const d = await TestDevice.connect(h.listening!.deviceUrl);
    await d.hello({ deviceId: 'deaf-1', token });
    tcp(d).pause();
    // Every reading draws 64 ERRORs (~100 bytes each): the kernel's buffers fill, then the hub's.
    const values = Array.from({ length: 64 }, (_, i) => ({ alias: 100 + i, kind: 'f32' as const, value: 1 }));
    let seq = 0;
    await waitFor(
      'the hub to cut the non-reading device (SLOW_CONSUMER)',
      () => {
        for (let i = 0; i < 50 && d.ws.readyState === WebSocket.OPEN; i++)
          d.send({ type: 'reading', seq: ++seq, ts: Date.now(), values });
        return h.app.devices.registry.get('deaf-1')!.presence.reason === 'SLOW_CONSUMER';
      },
      20_000,
    );
    const metrics = (await h.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^tendril_connections_closed_total\{code="SLOW_CONSUMER"\} 1$/m);
  });
});

describe('failed HELLOs are throttled per address (§6.1.6)', () => {
  it('past the limit answers AUTH_THROTTLED (close 1013) after the delay, without checking the token, and counts it', async () => {
    const h = await hub({ deps: { authFailuresPerAddress: 3, authThrottleDelayMs: 300 } });
    const token = await provision(h.app, 'thr-1');
    for (let i = 0; i < 3; i++) {
      const d = await TestDevice.connect(h.listening!.deviceUrl);
      d.send(helloFrame('thr-1', 'wrong-token'));
      expect(await d.closedWithin()).toEqual({ code: 1008, reason: 'AUTH_FAILED' });
    }
    // Even the right token is not checked now.
    const d = await TestDevice.connect(h.listening!.deviceUrl);
    const started = Date.now();
    d.send(helloFrame('thr-1', token));
    expect((await d.next('error')).code).toBe('AUTH_THROTTLED');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(await d.closedWithin()).toEqual({ code: 1013, reason: 'AUTH_THROTTLED' });
    const metrics = (await h.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^tendril_device_auth_failures_total 3$/m);
    expect(metrics).toMatch(/^tendril_device_auth_throttled_total 1$/m);
  });

  it('forgets a throttled HELLO whose socket closes before the answer', async () => {
    // The hub's timers, with the throttle's 60 s delays that are armed and neither run nor cleared.
    const throttleWaits = new Set<unknown>();
    const timers: Timers = {
      ...systemTimers,
      setTimeout: (fn, ms) => {
        const handle = systemTimers.setTimeout(() => {
          throttleWaits.delete(handle);
          fn();
        }, ms);
        if (ms === 60_000) throttleWaits.add(handle);
        return handle;
      },
      clearTimeout: (handle) => {
        throttleWaits.delete(handle);
        systemTimers.clearTimeout(handle);
      },
    };
    const h = await hub({ deps: { authFailuresPerAddress: 1, authThrottleDelayMs: 60_000, timers } });
    const first = await TestDevice.connect(h.listening!.deviceUrl);
    first.send(helloFrame('nobody', 'wrong-token'));
    expect(await first.closedWithin()).toEqual({ code: 1008, reason: 'AUTH_FAILED' });
    const d = await TestDevice.connect(h.listening!.deviceUrl);
    d.send(helloFrame('nobody', 'wrong-token'));
    await waitFor('the HELLO to be throttled', () => throttleWaits.size === 1 || null);
    d.ws.close();
    // It used to hold the connection for the whole delay, and keep a closing hub waiting for it.
    await waitFor(
      "the hub to drop the throttled HELLO's wait when its socket closed",
      () => throttleWaits.size === 0 || null,
    );
  });
});
