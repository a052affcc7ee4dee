/**
 * Slow clients (docs/live.md §6.1, §6.3, §7): coalescing latest-wins per series, the maximum rate, and the
 * per-client memory cap with a client that stops reading while 1,000 devices send.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIVE_LIMITS, type LiveLimits } from '../src/live/protocol.js';
import { deviceIds, FleetModel, LiveTestClient, type LiveTestHub, startLiveHub } from './live-helpers.js';

let hub: LiveTestHub;
const clients: LiveTestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await hub?.close();
});

async function viewer(): Promise<LiveTestClient> {
  const c = await LiveTestClient.viewer(hub);
  clients.push(c);
  return c;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * §7.3: what one client may cost the hub: both queues, the socket's buffered bytes up to high water, one message,
 * the batches waiting for the end of the turn.
 */
function memoryCap(l: LiveLimits): number {
  return l.highWaterBytes + l.snapshotPartBytes + l.batchBytes + l.dataOutboxBytes + l.controlQueueBytes + 64 * 1024;
}

describe('coalescing', () => {
  it('§6.1: a client that falls behind gets the latest value per series, with counts of what was skipped', async () => {
    hub = await startLiveHub({ devices: 2 });
    const c = await viewer();
    await c.subscribe({ stream: 'device', devices: ['dev-0000', 'dev-0001'] });
    c.pause();
    const live = [...hub.app.live.clients][0]!;
    // Send until the hub's writes back up and it starts coalescing (the TCP buffers take a few MB first).
    let seq = 0;
    while (live.stats.coalesced === 0) {
      for (let i = 0; i < 2000; i++) {
        seq++;
        hub.readings('dev-0000', seq, seq, { temperature: seq % 50, humidity: 40 });
      }
      await turn();
      if (seq > 2_000_000) throw new Error('the hub never started coalescing');
    }
    for (let i = 0; i < 500; i++) {
      seq++;
      hub.readings('dev-0000', seq, seq, { temperature: -1, humidity: 41 });
    }
    hub.readings('dev-0001', 1, 1, { count: 9 });
    const sent = seq + 1;
    c.resume();
    await c.until(
      () =>
        c.events(1, 'readings').some((m) => m.event.deviceId === 'dev-0000' && m.event.readings.at(-1)?.seq === seq),
      'the last reading of dev-0000',
      30_000,
    );
    const readings = c.events(1, 'readings');
    const last = readings.findLast((m) => m.event.deviceId === 'dev-0000')!;
    expect(last.event.readings).toEqual([{ seq, ts: seq, values: { temperature: -1, humidity: 41 } }]);
    expect(last.event.coalesced.temperature).toBeGreaterThan(0);
    expect(readings.some((m) => m.event.deviceId === 'dev-0001')).toBe(true);
    // Fewer messages than readings: the backlog was coalesced, not queued.
    expect(readings.length).toBeLessThan(sent);
    expect(c.isClosed).toBe(false);
  });

  it('§6.3: with minIntervalMs the hub sends at most once per interval, the latest values', async () => {
    hub = await startLiveHub({ devices: 1 });
    const c = await viewer();
    await c.subscribe({ stream: 'device', devices: ['dev-0000'], minIntervalMs: 250 });
    const started = Date.now();
    for (let seq = 1; seq <= 100; seq++) {
      hub.readings('dev-0000', seq, seq, { temperature: seq });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const elapsed = Date.now() - started;
    await c.until(
      () => c.events(1, 'readings').some((m) => m.event.readings.at(-1).values.temperature === 100),
      'the value 100',
      5000,
    );
    const events = c.events(1, 'readings');
    // The first goes out at once, then one per 250 ms tick (plus the last tick after the loop).
    expect(events.length).toBeLessThanOrEqual(Math.ceil(elapsed / 250) + 2);
    expect(events.length).toBeGreaterThanOrEqual(2);
    expect(events[0]!.event.readings[0].values.temperature).toBe(1);
    const skipped = events.reduce((n, m) => n + (m.event.coalesced?.temperature ?? 0), 0);
    expect(skipped + events.length).toBe(100);
  });
});

describe('the outbox cap', () => {
  it('§7.3, §7.4: a client that stops reading while 1,000 devices send for 30 s stays under the cap, stays connected, and gets the current state', async () => {
    hub = await startLiveHub({ devices: 1000 });
    const ids = deviceIds(1000);
    const c = await viewer();
    await c.subscribe({ id: 1, stream: 'fleet' });
    await c.subscribe({ id: 2, stream: 'device', devices: ids.slice(0, 500) });
    const model = new FleetModel();
    for (const m of c.events(1)) model.apply(m);
    const live = [...hub.app.live.clients][0]!;
    const cap = memoryCap(DEFAULT_LIVE_LIMITS);
    c.pause();

    const lastValue = new Map<string, number>();
    let seq = 0;
    let maxSampled = 0;
    const started = Date.now();
    // 1,000 devices, each reporting about twice a second, for 30 s and at least 30,000 readings: on a busy
    // machine the rounds take longer than their 50 ms pause, so the count, not only the clock, ends the loop.
    while (Date.now() - started < 30_000 || seq < 30_000) {
      if (Date.now() - started > 120_000) throw new Error(`only ${seq} readings sent in 120 s`);
      for (let k = 0; k < 100; k++) {
        const id = ids[seq % 1000]!;
        seq++;
        const value = seq % 1000;
        lastValue.set(id, value);
        hub.readings(id, seq, seq, { temperature: value, humidity: 50, count: seq });
      }
      maxSampled = Math.max(maxSampled, live.accountedBytes());
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (process.env.LIVE_TEST_VERBOSE) {
      console.info(
        `outbox cap: ${seq} readings, max accounted ${live.stats.maxAccountedBytes} B (sampled ${maxSampled} B), ` +
          `cap ${cap} B, coalesced ${live.stats.coalesced}, resyncs ${live.stats.resyncs}`,
      );
    }
    expect(seq).toBeGreaterThanOrEqual(30_000);
    expect(maxSampled).toBeLessThanOrEqual(cap);
    expect(live.stats.maxAccountedBytes).toBeLessThanOrEqual(cap);
    expect(live.stats.coalesced).toBeGreaterThan(0);
    expect(live.isOpen).toBe(true);

    let applied = c.messages.length;
    c.resume();
    await c.until(
      () => {
        // Each message once, fleet subscription only.
        for (; applied < c.messages.length; applied++)
          if (c.messages[applied]!.id === 1) model.apply(c.messages[applied]!);
        return ids.every((id) => model.rows.get(id)?.latest.temperature?.value === lastValue.get(id));
      },
      'the current value of every device',
      60_000,
    );
    expect(c.isClosed).toBe(false);
    // Coalesced: far fewer messages than readings (two streams carry each reading).
    expect(c.messages.length).toBeLessThan(seq);
  }, 240_000);

  it('§7.4.2: past dataOutboxBytes the subscription resyncs (resync, then a gap-marked snapshot) instead of disconnecting', async () => {
    hub = await startLiveHub({ devices: 1000, limits: { dataOutboxBytes: 32 * 1024 } });
    const ids = deviceIds(1000);
    const c = await viewer();
    await c.subscribe({ id: 1, stream: 'fleet' });
    const model = new FleetModel();
    for (const m of c.events(1)) model.apply(m);
    const live = [...hub.app.live.clients][0]!;
    c.pause();
    const lastValue = new Map<string, number>();
    let seq = 0;
    while (live.stats.resyncs === 0 || seq < 20_000) {
      for (let k = 0; k < 1000; k++) {
        const id = ids[seq % 1000]!;
        seq++;
        lastValue.set(id, seq);
        hub.readings(id, seq, seq, { temperature: seq });
      }
      expect(live.dataBytes()).toBeLessThanOrEqual(32 * 1024 + 1024);
      await turn();
      if (seq > 2_000_000) throw new Error('the outbox never overflowed');
    }
    expect(live.isOpen).toBe(true);
    c.resume();
    let applied = 0;
    await c.until(
      () => {
        for (; applied < c.messages.length; applied++) model.apply(c.messages[applied]!);
        return ids.every((id) => model.rows.get(id)?.latest.temperature?.value === lastValue.get(id));
      },
      'the current value of every device after the resync',
      30_000,
    );
    expect(c.events(1, 'resync').length).toBeGreaterThanOrEqual(1);
    expect(model.gaps).toBeGreaterThanOrEqual(1);
    expect(c.isClosed).toBe(false);
  }, 90_000);
});

describe('control events', () => {
  it('§6.1.2, §7.2: presence changes are never coalesced: a client behind on data still gets every transition, in order', async () => {
    hub = await startLiveHub({ devices: 200 });
    const ids = deviceIds(200);
    const c = await viewer();
    await c.subscribe({ id: 1, stream: 'fleet' });
    const live = [...hub.app.live.clients][0]!;
    c.pause();
    let seq = 0;
    while (live.stats.coalesced === 0) {
      for (let k = 0; k < 2000; k++, seq++) hub.readings(ids[seq % 200]!, seq, seq, { temperature: seq });
      await turn();
    }
    // Data keeps coming while dev-0007 flaps.
    const reasons = ['CLOSED', 'HEARTBEAT_LOST', 'REPLACED', 'CONNECTION_LOST'];
    for (const [i, reason] of reasons.entries()) {
      hub.online('dev-0007', 1_000_000 + i * 10);
      for (let k = 0; k < 500; k++, seq++) hub.readings(ids[seq % 200]!, seq, seq, { temperature: seq });
      hub.offline('dev-0007', reason, 1_000_005 + i * 10);
    }
    c.resume();
    await c.until(() => c.events(1, 'presence').length === 8, 'eight presence events of dev-0007', 30_000);
    const transitions = c.events(1, 'presence').map((m) => `${m.event.presence.state}:${m.event.presence.reason}`);
    expect(transitions).toEqual(reasons.flatMap((r) => ['online:null', `offline:${r}`]));
    expect(live.stats.resyncs).toBe(0);
  });
});

describe('update while behind', () => {
  it('§4.3.2: metrics removed by an update stop at once, even those already waiting in the outbox', async () => {
    hub = await startLiveHub({ devices: 1 });
    const c = await viewer();
    await c.subscribe({
      id: 1,
      stream: 'device',
      devices: ['dev-0000'],
      metrics: ['temperature', 'humidity'],
      minIntervalMs: 5000,
    });
    // The first reading goes out at once; the next ones wait for the next 5 s tick.
    hub.readings('dev-0000', 1, 1, { temperature: 1, humidity: 1 });
    await c.next((m) => m.event?.kind === 'readings', 'the first reading');
    hub.readings('dev-0000', 2, 2, { temperature: 2, humidity: 2 });
    const answer = await c.request({ type: 'update', subscription: 1, removeMetrics: ['humidity'], minIntervalMs: 50 });
    expect(answer.type).toBe('result');
    const next = await c.next(
      (m) => m.event?.kind === 'readings' && m.event.readings[0].seq === 2,
      'the pending reading',
    );
    expect(next.event.readings[0].values).toEqual({ temperature: 2 });
  });
});
