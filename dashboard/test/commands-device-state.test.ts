/** CommandsState and DeviceState (src/lib/state/*.svelte.ts), compiled with runes, against fakes of the hub. */
import { beforeAll, describe, expect, it } from 'vitest';
import type * as CommandsModule from '../src/lib/state/commands.svelte.js';
import type * as DeviceModule from '../src/lib/state/device.svelte.js';
import type { LiveEvent } from '../src/lib/live/protocol.js';
import type { Command, Device, HistoryAnswer } from '../src/lib/types.js';
import { importRunes, ManualFrames } from './runes.js';

let C: typeof CommandsModule;
let D: typeof DeviceModule;
beforeAll(async () => {
  C = await importRunes<typeof CommandsModule>('../src/lib/state/commands.svelte.ts');
  D = await importRunes<typeof DeviceModule>('../src/lib/state/device.svelte.ts');
});

function fakeLive() {
  const handlers: Array<{ spec: any; h: any }> = [];
  return {
    handlers,
    subscribe(spec: any, h: any) {
      handlers.push({ spec, h });
      return { close: () => {} };
    },
    send(e: LiveEvent) {
      for (const x of handlers) x.h.onEvent(e, 1);
    },
  };
}

const cmd = (id: number, state: Command['state'], history = 1): Command => ({
  id,
  deviceId: 'power-1',
  name: 'relay',
  args: { on: true },
  state,
  detail: null,
  requestedBy: 'ada',
  idempotencyKey: null,
  createdAt: 1000 + id,
  history: Array.from({ length: history }, (_, i) => ({ state: 'queued' as const, at: i })),
});

describe('CommandsState', () => {
  it('keeps the idempotency key after a failed send (a retry cannot run it twice) and takes a new one after success', async () => {
    let n = 0;
    const bodies: any[] = [];
    let fail = true;
    const live = fakeLive();
    const frames = new ManualFrames();
    const state = new C.CommandsState('power-1', {
      live,
      frames,
      newKey: () => `key-${++n}`,
      api: {
        commands: async () => ({ commands: [] }),
        sendCommand: async (_id, body) => {
          bodies.push(body);
          if (fail) throw new Error('network down');
          return { ...cmd(7, 'queued'), idempotencyKey: body.idempotencyKey };
        },
        cancelCommand: async () => cmd(7, 'cancelled', 2),
      },
    });
    expect(await state.send('relay', { on: true })).toBeUndefined();
    expect(state.error).toBe('network down');
    fail = false;
    await state.send('relay', { on: true });
    expect(bodies.map((b) => b.idempotencyKey)).toEqual(['key-1', 'key-1']);
    expect(state.idempotencyKey).toBe('key-2');
    expect(state.list.map((c) => c.id)).toEqual([7]);
  });

  it('follows the lifecycle live, newest version winning, newest command first, other devices ignored', async () => {
    const live = fakeLive();
    const frames = new ManualFrames();
    const state = new C.CommandsState('power-1', {
      live,
      frames,
      api: {
        commands: async () => ({ commands: [cmd(3, 'succeeded', 4)] }),
        sendCommand: async () => cmd(0, 'queued'),
        cancelCommand: async () => cmd(0, 'cancelled'),
      },
    });
    const stop = state.start();
    expect(live.handlers[0]!.spec).toEqual({ stream: 'commands', devices: ['power-1'] });
    await Promise.resolve();
    live.send({ kind: 'command', command: cmd(5, 'sent', 2) });
    live.send({ kind: 'command', command: cmd(5, 'delivered', 3) });
    live.send({ kind: 'command', command: { ...cmd(6, 'queued'), deviceId: 'env-1' } });
    frames.run();
    expect(state.list.map((c) => [c.id, c.state])).toEqual([
      [5, 'delivered'],
      [3, 'succeeded'],
    ]);
    // An older version arriving late (e.g. a snapshot) does not undo a newer one.
    live.send({ kind: 'snapshot', gap: false, commands: [cmd(5, 'sent', 2)] });
    frames.run();
    expect(state.list[0]!.state).toBe('delivered');
    stop();
  });
});

describe('CommandsState command catalogue', () => {
  it("loads the model's catalogue once per model; a model without one (404) leaves free JSON, other failures say so", async () => {
    const asked: string[] = [];
    const state = new C.CommandsState('power-1', {
      live: fakeLive(),
      frames: new ManualFrames(),
      api: {
        commands: async () => ({ commands: [] }),
        sendCommand: async () => cmd(1, 'queued'),
        cancelCommand: async () => cmd(1, 'cancelled'),
        model: async (model) => {
          asked.push(model);
          if (model === 'power-meter') return { model, allowUnlisted: true, commands: [{ name: 'relay' }] };
          if (model === 'broken') throw Object.assign(new Error('hub down'), { status: 503 });
          throw Object.assign(new Error('no catalogue'), { status: 404 });
        },
      },
    });
    state.loadCatalog('power-meter');
    state.loadCatalog('power-meter');
    await new Promise((r) => setTimeout(r, 0));
    expect(asked).toEqual(['power-meter']);
    expect(state.catalog?.commands.map((c) => c.name)).toEqual(['relay']);
    state.loadCatalog('plain');
    await new Promise((r) => setTimeout(r, 0));
    expect(state.catalog).toBeNull();
    expect(state.catalogLoaded).toBe(true);
    expect(state.error).toBeNull();
    state.loadCatalog('broken');
    await new Promise((r) => setTimeout(r, 0));
    expect(state.error).toContain('hub down');
  });
});

describe('DeviceState', () => {
  const device: Device = {
    id: 'env-1',
    name: 'Env 1',
    model: 'env-sensor',
    labels: {},
    transport: 'ws',
    presence: { state: 'online', reason: null, since: 1000 },
    metrics: [
      { name: 'temperature', kind: 'f32', unit: '°C' },
      { name: 'note', kind: 'string' },
    ],
    latest: {},
    dropped: 0,
  };

  function setup(now: { t: number }) {
    const live = fakeLive();
    const frames = new ManualFrames();
    const calls: Array<{ metric: string; agg: string; from: number; to: number; stepMs: number }> = [];
    const history: Record<string, HistoryAnswer['points']> = { min: [], mean: [], max: [] };
    const state = new D.DeviceState('env-1', {
      live,
      frames,
      now: () => now.t,
      timers: { setInterval: () => 0, clearInterval: () => {} },
      api: {
        device: async () => device,
        series: async (_id, metric, q) => {
          calls.push({ metric, ...q });
          return { stepMs: q.stepMs, from: q.from, to: q.to, points: history[q.agg] ?? [] };
        },
      },
    });
    return { live, frames, state, calls, history };
  }

  it('charts numeric metrics only, asks the history for min, mean and max at about one bucket per pixel', async () => {
    const now = { t: 10_000_000 };
    const { live, frames, state, calls } = setup(now);
    state.width = 600;
    state.setRange({ key: '1h' });
    const stop = state.start();
    live.send({ kind: 'snapshot', gap: false, devices: [device] });
    frames.run();
    await new Promise((r) => setTimeout(r, 0));
    expect(state.charts.map((c) => c.decl.name)).toEqual(['temperature']);
    expect(new Set(calls.map((c) => c.agg))).toEqual(new Set(['min', 'mean', 'max']));
    const step = calls[0]!.stepMs;
    expect(3_600_000 / step).toBeLessThanOrEqual(600);
    expect(3_600_000 / step).toBeGreaterThan(200);
    expect(calls[0]!.from % step).toBe(0); // buckets on multiples of the step: live readings land in the same ones
    stop();
  });

  it('folds live readings into the chart once per frame, and marks a gap when a resume was not recovered', async () => {
    const now = { t: 10_000_000 };
    const { live, frames, state, calls } = setup(now);
    state.setRange({ key: 'live' });
    const stop = state.start();
    live.send({ kind: 'snapshot', gap: false, devices: [device] });
    frames.run();
    await new Promise((r) => setTimeout(r, 0));
    const chart = state.charts[0]!;
    for (let i = 1; i <= 20; i++)
      live.send({
        kind: 'readings',
        deviceId: 'env-1',
        readings: [{ seq: i, ts: now.t + i * 50, values: { temperature: 20 + i } }],
      });
    expect(chart.data[0].length).toBe(0); // nothing until the frame
    frames.run();
    expect(chart.data[3].at(-1)).toBe(40); // the max of the last bucket
    expect(state.lastReadingAt).toBe(now.t + 1000);
    const before = calls.length;
    live.send({ kind: 'snapshot', gap: true, devices: [device] });
    frames.run();
    expect(state.gapsMarked).toBe(1);
    expect(chart.data[2].at(-1)).toBeNull(); // the line ends at the gap
    expect(chart.gapMarks).toBe(1);
    await new Promise((r) => setTimeout(r, 10)); // the refetch of the history runs
    expect(calls.length).toBeGreaterThan(before);
    stop();
  });

  it('asks the history again at about one bucket per pixel once the charts know their width', async () => {
    const now = { t: 10_000_000 };
    const { live, frames, state, calls } = setup(now);
    state.setRange({ key: '24h' });
    const stop = state.start();
    live.send({ kind: 'snapshot', gap: false, devices: [device] });
    frames.run();
    const before = state.charts[0]!.series.stepMs;
    state.setWidth(790); // close to the assumed 800 px: nothing to do
    expect(state.charts[0]!.series.stepMs).toBe(before);
    const asked = calls.length;
    state.setWidth(300);
    expect(state.charts[0]!.series.stepMs).toBeGreaterThan(before);
    expect(86_400_000 / state.charts[0]!.series.stepMs).toBeLessThanOrEqual(300);
    await new Promise((r) => setTimeout(r, 0));
    expect(calls.length).toBeGreaterThan(asked);
    stop();
  });

  it('logs presence changes as connection history', () => {
    const now = { t: 10_000_000 };
    const { live, frames, state } = setup(now);
    const stop = state.start();
    live.send({ kind: 'snapshot', gap: false, devices: [device] });
    live.send({
      kind: 'presence',
      deviceId: 'env-1',
      transport: 'ws',
      presence: { state: 'offline', reason: 'HEARTBEAT_LOST', since: 2000 },
    });
    frames.run();
    expect(state.connectionLog.map((e) => [e.state, e.reason])).toEqual([
      ['offline', 'HEARTBEAT_LOST'],
      ['online', null],
    ]);
    expect(state.device!.presence.state).toBe('offline');
    stop();
  });

  it("loads the hub's connection history and merges live presence events into it, each transition once", async () => {
    const now = { t: 10_000_000 };
    const live = fakeLive();
    const frames = new ManualFrames();
    let answer!: (v: { connections: DeviceModule.ConnectionRecord[] }) => void;
    const asked: Array<[string, number]> = [];
    const state = new D.DeviceState('env-1', {
      live,
      frames,
      now: () => now.t,
      timers: { setInterval: () => 0, clearInterval: () => {} },
      api: {
        device: async () => device,
        series: async (_id, _m, q) => ({ stepMs: q.stepMs, from: q.from, to: q.to, points: [] }),
        connections: (id, limit) => {
          asked.push([id, limit]);
          return new Promise((r) => {
            answer = r;
          });
        },
      },
    });
    const stop = state.start();
    expect(asked).toEqual([['env-1', D.CONNECTION_LOG_MAX]]);
    live.send({ kind: 'snapshot', gap: false, devices: [device] });
    // A presence event that arrives before the stored history: kept when the history comes.
    live.send({
      kind: 'presence',
      deviceId: 'env-1',
      transport: 'mqtt',
      presence: { state: 'offline', reason: 'MQTT_WILL', since: 3000 },
    });
    frames.run();
    expect(state.historyLoaded).toBe(false);
    answer({
      connections: [
        // The same transition as the snapshot's presence (online since 1000): shown once.
        { id: 7, at: 1000, event: 'online', transport: 'ws', reason: null, remote: '10.0.0.1' },
        { id: 6, at: 900, event: 'offline', transport: 'ws', reason: 'HEARTBEAT_LOST', remote: '10.0.0.1' },
        { id: 5, at: 500, event: 'online', transport: 'ws', reason: null, remote: '10.0.0.1' },
      ],
    });
    await new Promise((r) => setTimeout(r, 0));
    expect(state.historyLoaded).toBe(true);
    expect(state.connectionLog.map((e) => [e.at, e.state, e.reason])).toEqual([
      [3000, 'offline', 'MQTT_WILL'],
      [1000, 'online', null],
      [900, 'offline', 'HEARTBEAT_LOST'],
      [500, 'online', null],
    ]);
    live.send({
      kind: 'presence',
      deviceId: 'env-1',
      transport: 'ws',
      presence: { state: 'online', reason: null, since: 4000 },
    });
    frames.run();
    expect(state.connectionLog.map((e) => e.at)).toEqual([4000, 3000, 1000, 900, 500]);
    stop();
  });

  it('keeps at most as many entries as the hub keeps', () => {
    const many = Array.from({ length: 300 }, (_, i) => ({ at: i, state: 'online' as const, reason: null }));
    const merged = D.mergeConnectionLog([], many);
    expect(merged).toHaveLength(D.CONNECTION_LOG_MAX);
    expect(merged[0]!.at).toBe(299);
  });
});
