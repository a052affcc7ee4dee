/** Resume after a reconnect (docs/live.md §6.2): replay from the window, or a snapshot that replaces state. */
import { afterEach, describe, expect, it } from 'vitest';
import { FleetModel, LiveTestClient, type LiveTestHub, type Msg, startLiveHub } from './live-helpers.js';

let hub: LiveTestHub;
const clients: LiveTestClient[] = [];

async function viewer(): Promise<LiveTestClient> {
  const c = await LiveTestClient.viewer(hub);
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await hub.close();
});

function lastOffset(c: LiveTestClient, sub: number): number {
  const events = c.events(sub);
  return events[events.length - 1]!.offset as number;
}

describe('no client connected', () => {
  it('readings while nobody watches are in the next snapshot, and the offsets they took are not replayable', async () => {
    hub = await startLiveHub({ devices: 2 });
    hub.readings('dev-0000', 1, 1000, { temperature: 20 });
    hub.readings('dev-0000', 2, 2000, { temperature: 21 });
    const a = await viewer();
    const { result } = await a.subscribe({ stream: 'fleet' });
    const model = new FleetModel();
    for (const m of a.events(1)) model.apply(m);
    expect(model.rows.get('dev-0000')!.latest.temperature).toEqual({ ts: 2000, value: 21 });
    // Both readings took an offset of the device and fleet streams; nothing of them is kept to replay.
    expect(result.offset).toBeGreaterThanOrEqual(2);
    const b = await viewer();
    const answer = await b.request({
      type: 'subscribe',
      id: 1,
      stream: 'fleet',
      resume: { epoch: result.epoch, offset: 0 },
    });
    expect(answer.result).toMatchObject({ recovered: false });
  });
});

describe('a stream nobody subscribes to (§6.2.5)', () => {
  it('keeps nothing of it while another stream is watched: only that stream replays', async () => {
    hub = await startLiveHub({ devices: 2 });
    const a = await viewer();
    const fleet = (await a.subscribe({ stream: 'fleet' })).result;
    hub.readings('dev-0000', 1, 1000, { temperature: 20 });
    hub.readings('dev-0000', 2, 2000, { temperature: 21 });
    await a.until(() => a.events(1, 'values').length === 2, 'both values events on the fleet stream');
    // The device stream had no subscription since the hub started: its events took offsets, nothing is kept.
    const b = await viewer();
    const device = (await b.subscribe({ stream: 'device', devices: ['dev-0000'] })).result;
    expect(device.offset).toBeGreaterThanOrEqual(2);
    const c = await viewer();
    const fromDevice = await c.request({
      type: 'subscribe',
      id: 1,
      stream: 'device',
      devices: ['dev-0000'],
      resume: { epoch: device.epoch, offset: 0 },
    });
    expect(fromDevice.result).toMatchObject({ recovered: false });
    // The fleet stream, watched all along, replays the same readings' values.
    const fromFleet = await c.request({
      type: 'subscribe',
      id: 2,
      stream: 'fleet',
      resume: { epoch: fleet.epoch, offset: fleet.offset },
    });
    expect(fromFleet.result).toMatchObject({ recovered: true });
    await c.until(() => c.events(2, 'values').length === 2, 'the two replayed values events');
  });
});

describe('resume', () => {
  it('§6.2.2: with the same epoch and an offset still in the window, the hub replays exactly what was missed', async () => {
    hub = await startLiveHub({ devices: 3 });
    const a = await viewer();
    const { result } = await a.subscribe({ stream: 'fleet' });
    const model = new FleetModel();
    hub.readings('dev-0000', 1, 1000, { temperature: 20 });
    await a.until(() => a.events(1, 'values').length === 1, 'the first values event');
    for (const m of a.events(1)) model.apply(m);
    const resumeAt = lastOffset(a, 1);
    a.close();
    await a.closed;

    // Missed while disconnected.
    hub.readings('dev-0000', 2, 2000, { temperature: 21 });
    hub.online('dev-0001', 5000);
    hub.readings('dev-0001', 1, 5001, { humidity: 55 });

    const b = await viewer();
    const answer = await b.request({
      type: 'subscribe',
      id: 1,
      stream: 'fleet',
      resume: { epoch: result.epoch, offset: resumeAt },
    });
    expect(answer.result).toMatchObject({ recovered: true, epoch: result.epoch });
    await b.until(() => b.events(1).length === 3, 'three replayed events');
    const replayed = b.events(1);
    expect(replayed.map((m) => m.event.kind)).toEqual(['values', 'presence', 'values']);
    expect(replayed.every((m) => (m.offset as number) > resumeAt)).toBe(true);
    expect(b.events(1, 'snapshot')).toEqual([]);
    for (const m of replayed) model.apply(m);
    expect(model.rows.get('dev-0000')!.latest.temperature).toEqual({ ts: 2000, value: 21 });
    expect(model.rows.get('dev-0001')!.presence.state).toBe('online');
    expect(model.rows.get('dev-0001')!.latest.humidity).toEqual({ ts: 5001, value: 55 });

    // Live events continue after the replay.
    hub.readings('dev-0002', 1, 6000, { count: 3 });
    const live = await b.next((m) => m.event?.deviceId === 'dev-0002', 'a live event after the replay');
    expect(live.offset).toBeGreaterThan(replayed[2]!.offset);
  });

  it('§6.2.2: a device subscription resumes its readings, filtered by its devices and metrics', async () => {
    hub = await startLiveHub({ devices: 2 });
    const a = await viewer();
    const { result } = await a.subscribe({ stream: 'device', devices: ['dev-0000'], metrics: ['temperature'] });
    a.close();
    await a.closed;
    for (let seq = 1; seq <= 5; seq++)
      hub.readings(seq % 2 ? 'dev-0000' : 'dev-0001', seq, seq * 1000, { temperature: seq, humidity: 50 });
    const b = await viewer();
    const answer = await b.request({
      type: 'subscribe',
      id: 7,
      stream: 'device',
      devices: ['dev-0000'],
      metrics: ['temperature'],
      resume: { epoch: result.epoch, offset: result.offset },
    });
    expect(answer.result.recovered).toBe(true);
    await b.until(() => b.events(7, 'readings').length === 3, 'three replayed readings of dev-0000');
    expect(b.events(7, 'readings').map((m) => m.event.readings[0])).toEqual([
      { seq: 1, ts: 1000, values: { temperature: 1 } },
      { seq: 3, ts: 3000, values: { temperature: 3 } },
      { seq: 5, ts: 5000, values: { temperature: 5 } },
    ]);
  });

  it('§6.2.3: past the window the answer is recovered:false and a gap-marked snapshot REPLACES the client state', async () => {
    hub = await startLiveHub({ devices: 3, plugin: { windows: { fleet: { maxEvents: 4 } } } });
    const a = await viewer();
    const { result } = await a.subscribe({ stream: 'fleet' });
    const model = new FleetModel();
    for (const m of a.events(1)) model.apply(m);
    expect(model.rows.size).toBe(3);
    a.close();
    await a.closed;

    // More than the window holds, and a device deleted meanwhile.
    for (let seq = 1; seq <= 10; seq++) hub.readings('dev-0000', seq, seq * 1000, { temperature: seq });
    hub.registry.delete('dev-0002');
    hub.events.emit('changed', { deviceId: 'dev-0002', change: 'deleted' });

    const b = await viewer();
    const { result: again, snapshot } = await b.subscribe({
      id: 1,
      stream: 'fleet',
      resume: { epoch: result.epoch, offset: model.offset },
    });
    expect(again.recovered).toBe(false);
    expect(snapshot[0]!.event.gap).toBe(true);
    for (const m of b.events(1)) model.apply(m);
    // The snapshot replaced the old state: the deleted device is gone, not left on screen.
    expect([...model.rows.keys()].sort()).toEqual(['dev-0000', 'dev-0001']);
    expect(model.rows.get('dev-0000')!.latest.temperature).toEqual({ ts: 10_000, value: 10 });
    expect(model.gaps).toBe(1);
  });

  it('§6.2.3: another epoch (a restarted hub) is not recovered', async () => {
    hub = await startLiveHub({ devices: 1 });
    const a = await viewer();
    const answer = await a.request({ type: 'subscribe', stream: 'fleet', resume: { epoch: 'other-run', offset: 0 } });
    expect(answer.result.recovered).toBe(false);
    const snap: Msg = await a.next((m) => m.event?.kind === 'snapshot', 'the snapshot');
    expect(snap.event).toMatchObject({ gap: true, last: true });
    // An offset ahead of the stream (not from this run) is not recovered either.
    const health = await a.request({ type: 'subscribe', id: 20, stream: 'health' });
    await a.request({ type: 'unsubscribe', subscription: 20 });
    const ahead = await a.request({
      type: 'subscribe',
      id: 21,
      stream: 'health',
      resume: { epoch: health.result.epoch, offset: health.result.offset + 1000 },
    });
    expect(ahead.result.recovered).toBe(false);
    const same = await a.request({
      type: 'subscribe',
      id: 22,
      stream: 'health',
      resume: { epoch: health.result.epoch, offset: health.result.offset },
    });
    expect(same.result.recovered).toBe(true);
  });
});

describe('a long replay (§6.2.4)', () => {
  it('replays at most maxReplayEvents to a subscription, then resyncs it with a snapshot', async () => {
    hub = await startLiveHub({ devices: 2, limits: { maxReplayEvents: 50 } });
    const a = await viewer();
    const { result } = await a.subscribe({ stream: 'device', devices: ['dev-0000'], metrics: ['humidity'] });
    for (let seq = 1; seq <= 200; seq++) hub.readings('dev-0000', seq, 1000 + seq, { temperature: 20 + seq / 10 });
    // Emitted synchronously: all 200 are in the device stream's window now (none reaches `a`: no humidity).
    // A resume from before all 200 (none carries the subscribed metric: each used to be parsed, all 200).
    const b = await viewer();
    const answer = await b.request({
      type: 'subscribe',
      id: 1,
      stream: 'device',
      devices: ['dev-0000'],
      metrics: ['humidity'],
      resume: { epoch: result.epoch, offset: result.offset },
    });
    expect(answer.result).toMatchObject({ recovered: true });
    await b.next((m) => m.type === 'event' && m.event.kind === 'resync', 'the resync after 50 replayed events');
    await b.next((m) => m.type === 'event' && m.event.kind === 'snapshot' && m.event.gap === true, 'a gap snapshot');
  });
});
