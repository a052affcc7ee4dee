/**
 * TendrilDevice against the FAKE hub (test/support/fake-hub.ts) over real sockets on 127.0.0.1:
 * handshake, acks, buffering, resend and resume, batches, backoff, pacing, STATUS. Clauses are docs/protocol.md.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SDK_VERSION, TendrilDevice, type MetricOption, type TendrilDeviceOptions } from '@tendril/device-sdk';
import { FakeHub, nextEvent, waitUntil } from './support/fake-hub.js';

const METRICS: MetricOption[] = [
  { name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
  { name: 'door', kind: 'bool' },
  { name: 'count', kind: 'int', alias: 9 },
  { name: 'note', kind: 'string' },
];

let hub: FakeHub | undefined;
let devices: TendrilDevice[] = [];

afterEach(async () => {
  await Promise.all(devices.map((d) => d.close()));
  devices = [];
  const violations = hub?.violations ?? [];
  await hub?.close();
  hub = undefined;
  // No test may see the device break the protocol.
  expect(violations).toEqual([]);
});

function device(h: FakeHub, extra: Partial<TendrilDeviceOptions> = {}): TendrilDevice {
  const d = new TendrilDevice({
    url: h.url,
    deviceId: 'env-1',
    token: 'secret',
    metrics: METRICS,
    WebSocket,
    epoch: 7,
    reconnect: { initialDelayMs: 5, maxDelayMs: 20 },
    ...extra,
  });
  devices.push(d);
  return d;
}

const seqsOf = (rs: Array<{ seq: number }>): number[] => rs.map((r) => r.seq);

describe('handshake (§6.1)', () => {
  it('sends HELLO with its declarations and nothing else until WELCOME', async () => {
    hub = await FakeHub.start({ holdWelcome: true });
    const d = device(hub, { firmware: '1.2.0' });
    d.start();
    const conn = await hub.connection(0);
    expect(conn.ws.protocol).toBe('tendril.v1');
    expect(conn.hello).toMatchObject({
      deviceId: 'env-1',
      token: 'secret',
      firmware: '1.2.0',
      sdk: SDK_VERSION,
      epoch: 7,
      lastSeq: 0,
      dropped: 0,
      metrics: [
        { alias: 0, name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
        { alias: 1, name: 'door', kind: 'bool', unit: '' },
        { alias: 9, name: 'count', kind: 'int', unit: '' },
        { alias: 3, name: 'note', kind: 'string', unit: '' },
      ],
    });
    expect(Math.abs(conn.hello!.clock - Date.now())).toBeLessThan(5000);

    const seq = d.send({ temperature: 21.5 });
    expect(seq).toBe(1);
    await conn.roundTrip();
    expect(conn.frames.map((f) => f.type)).toEqual(['hello']);
    expect(d.stats.connected).toBe(false);

    const connected = nextEvent(d, 'connect', 'the connect event');
    conn.welcome();
    const welcome = await connected;
    expect(welcome).toMatchObject({ type: 'welcome', ackedSeq: 0, maxBatch: 256 });
    expect(d.stats.connected).toBe(true);
    await waitUntil(() => hub!.storedSeqs('env-1', 7).length === 1, 'reading 1 to be stored');
    expect(conn.frames.map((f) => f.type)).toEqual(['hello', 'reading']);
    expect(hub.violations).toEqual([]);
  });

  it('refuses bad options at construction, not at connect', () => {
    const base = { url: 'ws://127.0.0.1:1/v1/device', deviceId: 'env-1', token: 't', WebSocket, metrics: METRICS };
    expect(() => new TendrilDevice({ ...base, deviceId: 'bad id!' })).toThrow(TypeError);
    expect(
      () =>
        new TendrilDevice({
          ...base,
          metrics: [
            { name: 'a', kind: 'f32' },
            { name: 'b', kind: 'f32', alias: 0 },
          ],
        }),
    ).toThrow(/alias 0/);
    expect(() => new TendrilDevice({ ...base, metrics: [{ name: 'door', kind: 'bool', min: 0 }] })).toThrow(/range/);
    expect(() => new TendrilDevice({ ...base, epoch: 2 ** 32 })).toThrow(/epoch/);
  });
});

describe('send() (§5.2, §7.1)', () => {
  it('checks names and JS types at the call site, but leaves ranges to the hub', async () => {
    hub = await FakeHub.start();
    const d = device(hub);
    expect(() => d.send({ humidity: 40 })).toThrow(
      /unknown metric "humidity"; declared: temperature, door, count, note/,
    );
    expect(() => d.send({ door: 1 as unknown as boolean })).toThrow(TypeError);
    expect(() => d.send({ count: 1.5 })).toThrow(/declared int/);
    expect(() => d.send({ note: 'x'.repeat(257) })).toThrow(/256 bytes/);
    expect(() => d.send({})).toThrow(/at least one value/);
    expect(() => d.send({ temperature: 1 }, -5)).toThrow(/timestamp/);
    expect(d.stats.sent).toBe(0);

    const rejected = nextEvent(d, 'reject', 'the reject event');
    d.start();
    const seq = d.send({ temperature: 500, door: false, count: -3, note: 'héllo' }, 1_700_000_000_123.7);
    const conn = await hub.connection(0);
    await waitUntil(() => conn.readings.length === 1, 'the out-of-range reading to arrive');
    expect(conn.readings[0]).toEqual({
      type: 'reading',
      seq,
      ts: 1_700_000_000_123,
      values: [
        { alias: 0, kind: 'f32', value: 500 },
        { alias: 1, kind: 'bool', value: false },
        { alias: 9, kind: 'int', value: -3 },
        { alias: 3, kind: 'string', value: 'héllo' },
      ],
    });
    // The hub decides: here it rejects the value (§7.1) and acks the reading.
    conn.send({ type: 'error', code: 'OUT_OF_RANGE', seq, alias: 0, message: 'temperature 500 is above max 85' });
    expect(await rejected).toEqual({
      seq,
      alias: 0,
      metric: 'temperature',
      code: 'OUT_OF_RANGE',
      message: 'temperature 500 is above max 85',
    });
    expect(d.stats.rejected).toEqual({ OUT_OF_RANGE: 1 });
  });

  it('sends untimed readings as READING_UNTIMED, alone even in a replay (§5.3, §5.4)', async () => {
    hub = await FakeHub.start();
    const d = device(hub);
    d.send({ count: 1 }, 1_700_000_000_000);
    d.send({ count: 2 }, 1_700_000_000_100);
    d.send({ count: 3 }, null);
    d.send({ count: 4 }, 1_700_000_000_300);
    d.start();
    await waitUntil(() => hub!.storedSeqs('env-1', 7).length === 4, 'four readings stored');
    const conn = hub.connections[0]!;
    expect(conn.frames.map((f) => f.type)).toEqual(['hello', 'batch', 'reading', 'reading']);
    expect(conn.readings.map((r) => r.ts)).toEqual([1_700_000_000_000, 1_700_000_000_100, null, 1_700_000_000_300]);
  });
});

describe('acks and the buffer (§7.3)', () => {
  it('keeps readings until a cumulative ACK covers them', async () => {
    hub = await FakeHub.start({ autoAck: false });
    const d = device(hub);
    const acks: number[] = [];
    d.on('ack', (seq) => acks.push(seq));
    const connected = nextEvent(d, 'connect', 'the connect event');
    d.start();
    const conn = await hub.connection(0);
    await connected;
    for (let i = 0; i < 3; i++) d.send({ temperature: 20 + i });
    await waitUntil(() => conn.readings.length === 3, 'three readings to arrive');
    expect(d.stats).toMatchObject({ sent: 3, acked: 0, buffered: 3 });

    conn.ack(2);
    await waitUntil(() => acks.length === 1, 'the ack event for seq 2');
    expect(d.stats).toMatchObject({ sent: 3, acked: 2, buffered: 1 });
    conn.ack(3);
    await waitUntil(() => acks.length === 2, 'the ack event for seq 3');
    expect(acks).toEqual([2, 3]);
    const s = d.stats;
    expect(s).toMatchObject({ sent: 3, acked: 3, dropped: 0, buffered: 0 });
    expect(s.sent).toBe(s.acked + s.dropped + s.buffered);
  });

  it('flush() resolves when everything is acked and rejects on timeout', async () => {
    hub = await FakeHub.start({ holdReadings: true });
    const d = device(hub);
    await expect(d.flush(10)).resolves.toBeUndefined();
    d.start();
    d.send({ door: true });
    d.send({ door: false });
    await expect(d.flush(100)).rejects.toThrow(/flush timed out after 100 ms with 2 reading\(s\) unacked/);
    const flushed = d.flush(5000);
    hub.connections[0]!.ack(2);
    await expect(flushed).resolves.toBeUndefined();
    expect(d.stats.buffered).toBe(0);
  });

  it('overflow drops the oldest, emits drop, and reports the count in HELLO and STATUS (§7.5)', async () => {
    hub = await FakeHub.start();
    const d = device(hub, { bufferSize: 3 });
    const drop = nextEvent(d, 'drop', 'the drop event');
    for (let i = 1; i <= 5; i++) d.send({ count: i });
    // Overflows within one turn are reported once.
    expect(await drop).toEqual({ count: 2, total: 2 });
    expect(d.stats).toMatchObject({ sent: 5, dropped: 2, buffered: 3 });

    d.start();
    const conn = await hub.connection(0);
    expect(conn.hello).toMatchObject({ dropped: 2, lastSeq: 5 });
    await waitUntil(() => hub!.storedSeqs('env-1', 7).length === 3, 'the three kept readings to be stored');
    expect(hub.storedSeqs('env-1', 7)).toEqual([3, 4, 5]);
    await d.flush(5000);

    hub.options.holdReadings = true;
    const drop2 = nextEvent(d, 'drop', 'the second drop event');
    for (let i = 6; i <= 9; i++) d.send({ count: i });
    expect(await drop2).toEqual({ count: 1, total: 3 });
    await waitUntil(() => conn.frames.find((f) => f.type === 'status'), 'a STATUS frame');
    expect(conn.frames.filter((f) => f.type === 'status')).toEqual([{ type: 'status', dropped: 3 }]);
    const s = d.stats;
    expect(s).toMatchObject({ sent: 9, acked: 3, dropped: 3, buffered: 3 });
    expect(s.sent).toBe(s.acked + s.dropped + s.buffered);
  });
});

describe('resend and resume (§6.3)', () => {
  it('resends unacked readings after the hub kills the socket, and the hub stores them once', async () => {
    hub = await FakeHub.start({ holdReadings: true });
    const d = device(hub);
    const connected = nextEvent(d, 'connect', 'the first connect');
    d.start();
    const conn0 = await hub.connection(0);
    await connected;
    for (let i = 1; i <= 3; i++) d.send({ count: i });
    await waitUntil(() => conn0.readings.length === 3, 'three live readings');
    expect(conn0.frames.map((f) => f.type)).toEqual(['hello', 'reading', 'reading', 'reading']);

    const disconnected = nextEvent(d, 'disconnect', 'the disconnect event');
    hub.options.holdReadings = false;
    conn0.kill();
    expect(await disconnected).toMatchObject({ code: 1006, willReconnect: true });
    const conn1 = await hub.connection(1);
    expect(conn1.hello!.lastSeq).toBe(3);
    await d.flush(5000);
    expect(conn1.frames.map((f) => f.type)).toEqual(['hello', 'batch']);
    expect(seqsOf(conn1.readings)).toEqual([1, 2, 3]);
    expect(hub.storedSeqs('env-1', 7)).toEqual([1, 2, 3]);
    expect(d.stats).toMatchObject({ sent: 3, acked: 3, buffered: 0, reconnects: 1, connected: true });
  });

  it('resumes after WELCOME.ackedSeq: durable readings whose ACK was lost are not resent', async () => {
    hub = await FakeHub.start({ autoAck: false });
    const d = device(hub);
    const connected = nextEvent(d, 'connect', 'the first connect');
    d.start();
    const conn0 = await hub.connection(0);
    await connected;
    for (let i = 1; i <= 3; i++) d.send({ count: i });
    await waitUntil(() => hub!.storedSeqs('env-1', 7).length === 3, 'readings 1..3 stored (their acks withheld)');
    hub.options.holdReadings = true;
    d.send({ count: 4 });
    d.send({ count: 5 });
    await waitUntil(() => conn0.readings.length === 5, 'readings 4 and 5 to arrive (not stored)');

    hub.options.holdReadings = false;
    hub.options.autoAck = true;
    const acked = nextEvent(d, 'ack', 'the ack from WELCOME.ackedSeq', (seq: number) => seq === 3);
    conn0.kill();
    const conn1 = await hub.connection(1);
    await acked;
    expect(conn1.welcomed!.ackedSeq).toBe(3);
    await d.flush(5000);
    // The fake decodes with the context {prevSeq: 3, prevTs: HELLO.clock}: the seqs prove both ends agree (§5.1).
    expect(seqsOf(conn1.readings)).toEqual([4, 5]);
    expect(hub.storedSeqs('env-1', 7)).toEqual([1, 2, 3, 4, 5]);
    expect(hub.duplicates.size).toBe(0);
    expect(d.stats).toMatchObject({ sent: 5, acked: 5, buffered: 0 });
  });

  it('numbers readings above a durable seq left by an earlier run with the same epoch (§6.3.5)', async () => {
    hub = await FakeHub.start();
    hub.setDurableSeq('env-1', 7, 100);
    const d = device(hub);
    d.send({ count: 1 });
    d.send({ count: 2 });
    d.start();
    await d.flush(5000);
    expect(hub.storedSeqs('env-1', 7)).toEqual([101, 102]);
    expect(hub.duplicates.size).toBe(0);
    expect(d.send({ count: 3 })).toBe(103);
    await d.flush(5000);
    expect(hub.storedSeqs('env-1', 7)).toEqual([101, 102, 103]);
  });
});

describe('batches (§5.4)', () => {
  it('replays a backlog in BATCH frames of at most WELCOME.maxBatch readings', async () => {
    hub = await FakeHub.start({ maxBatch: 4 });
    const d = device(hub);
    for (let i = 1; i <= 10; i++) d.send({ count: i }, 1_700_000_000_000 + i * 1000);
    d.start();
    await d.flush(5000);
    const conn = hub.connections[0]!;
    expect(conn.frames.map((f) => (f.type === 'batch' ? f.readings.length : f.type))).toEqual(['hello', 4, 4, 2]);
    expect(hub.storedSeqs('env-1', 7)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Live readings after the replay travel alone.
    d.send({ count: 11 });
    await d.flush(5000);
    expect(conn.frames.at(-1)!.type).toBe('reading');
  });

  it('keeps every frame within WELCOME.maxFrameBytes', async () => {
    hub = await FakeHub.start({ maxFrameBytes: 600 });
    const d = device(hub);
    for (let i = 0; i < 12; i++) d.send({ note: `${i}`.padEnd(100, '.') });
    d.start();
    await d.flush(5000);
    const conn = hub.connections[0]!;
    expect(Math.max(...conn.sizes)).toBeLessThanOrEqual(600);
    expect(conn.frames.filter((f) => f.type === 'batch').length).toBeGreaterThan(1);
    expect(hub.storedSeqs('env-1', 7)).toHaveLength(12);
  });
});

describe('flow control (§7.4, §4.3)', () => {
  it('on BACKOFF sends nothing for pauseMs, then resends everything unacked, oldest first', async () => {
    hub = await FakeHub.start({ backoffNext: { code: 'STORE_BUSY', pauseMs: 150 } });
    const d = device(hub);
    const connected = nextEvent(d, 'connect', 'the connect event');
    d.start();
    const conn = await hub.connection(0);
    await connected;
    let pausedAt = 0;
    d.on('backoff', () => (pausedAt = Date.now()));
    const backoff = nextEvent(d, 'backoff', 'the backoff event');
    d.send({ count: 1 });
    expect(await backoff).toEqual({ code: 'STORE_BUSY', pauseMs: 150 });
    d.send({ count: 2 });
    d.send({ count: 3 });
    await conn.roundTrip();
    expect(seqsOf(conn.readings)).toEqual([1]);

    await d.flush(5000);
    expect(Date.now() - pausedAt).toBeGreaterThanOrEqual(145);
    expect(conn.ignored).toHaveLength(1);
    expect(seqsOf(conn.readings)).toEqual([1, 1, 2, 3]);
    expect(conn.frames.slice(2).map((f) => f.type)).toEqual(['batch']);
    expect(hub.storedSeqs('env-1', 7)).toEqual([1, 2, 3]);
  });

  it('paces readings to WELCOME.maxRate so a steady device never trips the rate limit', async () => {
    // The fake's token bucket: 100 readings/s, burst 110 (the real hub's default burst is 10 x rate).
    hub = await FakeHub.start({ maxRate: 100, burst: 110 });
    const d = device(hub);
    const backoffs: unknown[] = [];
    d.on('backoff', (b) => backoffs.push(b));
    for (let i = 1; i <= 150; i++) d.send({ count: i }, 1_700_000_000_000 + i);
    const t0 = Date.now();
    d.start();
    await d.flush(10_000);
    // 100 go at once (one second's worth), the other 50 at 100/s.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(backoffs).toEqual([]);
    expect(hub.connections[0]!.ignored).toEqual([]);
    expect(hub.storedSeqs('env-1', 7)).toHaveLength(150);
  });

  it('slows down after a RATE_LIMITED BACKOFF and delivers everything', async () => {
    // A hub whose burst is smaller than the client assumes: one BACKOFF, then the client paces.
    hub = await FakeHub.start({ maxRate: 200, burst: 20 });
    const d = device(hub);
    const backoffs: Array<{ code: string }> = [];
    d.on('backoff', (b) => backoffs.push(b));
    for (let i = 1; i <= 60; i++) d.send({ count: i }, 1_700_000_000_000 + i);
    d.start();
    await d.flush(10_000);
    expect(backoffs.length).toBeGreaterThanOrEqual(1);
    expect(backoffs[0]!.code).toBe('RATE_LIMITED');
    expect(hub.storedSeqs('env-1', 7)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  });
});
