/** FleetState (src/lib/state/fleet.svelte.ts), compiled with runes: buffering, snapshots that replace, filters. */
import { beforeAll, describe, expect, it } from 'vitest';
import type * as FleetModule from '../src/lib/state/fleet.svelte.js';
import type { LiveEvent } from '../src/lib/live/protocol.js';
import type { Device } from '../src/lib/types.js';
import { importRunes, ManualFrames, svelteClient } from './runes.js';

let Fleet: typeof FleetModule;
let runtime: Awaited<ReturnType<typeof svelteClient>>;
beforeAll(async () => {
  Fleet = await importRunes<typeof FleetModule>('../src/lib/state/fleet.svelte.ts');
  runtime = await svelteClient();
});

const device = (id: string, patch: Partial<Device> = {}): Device => ({
  id,
  name: id,
  model: id.startsWith('env') ? 'env-sensor' : 'power-meter',
  labels: {},
  transport: 'ws',
  presence: { state: 'online', reason: null, since: 1000 },
  metrics: [{ name: 'temperature', kind: 'f32', unit: '°C' }],
  latest: {},
  dropped: 0,
  rejected: 0,
  ...patch,
});

function setup() {
  const frames = new ManualFrames();
  let handler: { onEvent(e: LiveEvent, o: number): void } | undefined;
  const live = {
    status: { state: 'live' },
    subscribe: (_spec: unknown, h: typeof handler) => {
      handler = h;
      return { close: () => {} };
    },
  };
  const fleet = new Fleet.FleetState({
    live,
    loadDevices: async () => [],
    frames,
    timers: { setInterval: () => 0, clearInterval: () => {} },
  });
  const stop = fleet.start();
  const send = (e: LiveEvent) => handler!.onEvent(e, 1);
  return { fleet, frames, send, stop };
}

describe('FleetState', () => {
  it('applies buffered updates only at the next frame, latest value winning', () => {
    const { fleet, frames, send, stop } = setup();
    send({ kind: 'snapshot', gap: false, devices: [device('env-1'), device('env-2')] });
    expect(fleet.loaded).toBe(false);
    frames.run();
    expect(fleet.loaded).toBe(true);
    expect(fleet.counts.total).toBe(2);
    for (let i = 0; i < 100; i++)
      send({ kind: 'values', deviceId: 'env-1', latest: { temperature: { ts: 2000 + i, value: i } } });
    expect(frames.queue.size).toBe(1); // one flush queued for a hundred events
    expect(fleet.get('env-1')!.latest.temperature).toBeUndefined();
    frames.run();
    expect(fleet.get('env-1')!.latest.temperature).toEqual({ ts: 2099, value: 99 });
    stop();
  });

  it('a snapshot replaces the rows: a device missing from it disappears (also what was buffered before it)', () => {
    const { fleet, frames, send, stop } = setup();
    send({ kind: 'snapshot', gap: false, devices: [device('env-1'), device('env-7')] });
    frames.run();
    const row = fleet.get('env-1');
    send({ kind: 'values', deviceId: 'env-7', latest: { temperature: { ts: 1, value: 1 } } });
    send({ kind: 'snapshot', gap: true, devices: [device('env-1', { name: 'Renamed' })] });
    frames.run();
    expect(fleet.rows.map((r) => r.id)).toEqual(['env-1']);
    expect(fleet.get('env-7')).toBeUndefined();
    expect(fleet.get('env-1')).toBe(row); // same row object, new fields
    expect(row!.name).toBe('Renamed');
    stop();
  });

  it('applies presence, counters, created and deleted devices', () => {
    const { fleet, frames, send, stop } = setup();
    send({ kind: 'snapshot', gap: false, devices: [device('env-1'), device('env-2')] });
    send({
      kind: 'presence',
      deviceId: 'env-1',
      transport: 'ws',
      presence: { state: 'offline', reason: 'HEARTBEAT_LOST', since: 5000 },
    });
    send({ kind: 'counters', deviceId: 'env-2', rejected: 3, dropped: 12 });
    send({ kind: 'device', change: 'created', deviceId: 'power-1', device: device('power-1') });
    send({ kind: 'device', change: 'deleted', deviceId: 'env-2', device: null });
    frames.run();
    expect(fleet.get('env-1')!.presence).toMatchObject({ state: 'offline', reason: 'HEARTBEAT_LOST' });
    expect(fleet.get('env-2')).toBeUndefined();
    expect(fleet.rows.map((r) => r.id).sort()).toEqual(['env-1', 'power-1']);
    expect(fleet.counts).toEqual({ total: 2, online: 1, offline: 1, never: 0 });
    stop();
  });

  it('visible follows the query and the rows ($derived)', () => {
    const { fleet, frames, send, stop } = setup();
    send({
      kind: 'snapshot',
      gap: false,
      devices: [
        device('env-1', { labels: { room: 'lab' } }),
        device('env-2', { presence: { state: 'offline', reason: 'CLOSED', since: 10 } }),
        device('power-1', { labels: { room: 'hall' } }),
      ],
    });
    frames.run();
    const cleanup = runtime.effect_root(() => {});
    fleet.setQuery({ presence: 'offline' });
    expect(fleet.visible.map((r) => r.id)).toEqual(['env-2']);
    fleet.setQuery({ presence: 'all', model: 'env-sensor' });
    expect(fleet.visible.map((r) => r.id)).toEqual(['env-1', 'env-2']);
    fleet.setQuery({ model: '', label: 'room=hall' });
    expect(fleet.visible.map((r) => r.id)).toEqual(['power-1']);
    fleet.setQuery({ label: '', sort: 'presence' });
    expect(fleet.visible[0]!.id).toBe('env-2');
    // a presence change re-sorts
    send({
      kind: 'presence',
      deviceId: 'power-1',
      presence: { state: 'offline', reason: 'HEARTBEAT_LOST', since: 20 },
    });
    frames.run();
    expect(fleet.visible.slice(0, 2).map((r) => r.id)).toEqual(['power-1', 'env-2']);
    expect(fleet.facets).toEqual({ models: ['env-sensor', 'power-meter'], labels: ['room=hall', 'room=lab'] });
    cleanup();
    stop();
  });

  it('counts, facets and the order follow presence, counters and registry changes, and values leave them alone', () => {
    const { fleet, frames, send, stop } = setup();
    send({ kind: 'snapshot', gap: false, devices: [device('env-1'), device('env-2'), device('power-1')] });
    frames.run();
    fleet.setQuery({ sort: 'rejected' });
    expect(fleet.counts).toMatchObject({ total: 3, online: 3 });
    send({ kind: 'counters', deviceId: 'power-1', rejected: 4, dropped: 0 });
    frames.run();
    expect(fleet.visible[0]!.id).toBe('power-1');
    const visible = fleet.visible;
    send({ kind: 'values', deviceId: 'env-2', latest: { temperature: { ts: 5, value: 1 } } });
    frames.run();
    expect(fleet.visible).toBe(visible); // not recomputed for values
    send({ kind: 'presence', deviceId: 'env-1', presence: { state: 'offline', reason: 'CLOSED', since: 9 } });
    frames.run();
    expect(fleet.counts).toMatchObject({ total: 3, online: 2, offline: 1 });
    send({ kind: 'device', change: 'changed', deviceId: 'env-2', device: device('env-2', { model: 'door-motion' }) });
    frames.run();
    expect(fleet.facets.models).toEqual(['door-motion', 'env-sensor', 'power-meter']);
    stop();
  });

  it('shows values at most every valuesEveryMs, presence at once', () => {
    const frames = new ManualFrames();
    let handler: { onEvent(e: LiveEvent, o: number): void } | undefined;
    const clock = { t: 1000 };
    const fleet = new Fleet.FleetState({
      live: {
        status: { state: 'live' },
        subscribe: (_s: unknown, h: typeof handler) => ((handler = h), { close: () => {} }),
      },
      loadDevices: async () => [],
      frames,
      timers: { setInterval: () => 0, clearInterval: () => {} },
      now: () => clock.t,
      valuesEveryMs: 250,
    });
    const stop = fleet.start();
    handler!.onEvent({ kind: 'snapshot', gap: false, devices: [device('env-1')] }, 1);
    frames.run();
    const value = (v: number) =>
      handler!.onEvent({ kind: 'values', deviceId: 'env-1', latest: { temperature: { ts: v, value: v } } }, 1);
    value(1);
    frames.run();
    expect(fleet.get('env-1')!.latest.temperature!.value).toBe(1);
    clock.t += 16;
    value(2);
    handler!.onEvent(
      { kind: 'presence', deviceId: 'env-1', presence: { state: 'offline', reason: 'CLOSED', since: 5 } },
      1,
    );
    frames.run();
    expect(fleet.get('env-1')!.presence.state).toBe('offline'); // control: at once
    expect(fleet.get('env-1')!.latest.temperature!.value).toBe(1); // values: held
    expect(frames.queue.size).toBe(1); // and tried again next frame
    clock.t += 250;
    frames.run();
    expect(fleet.get('env-1')!.latest.temperature!.value).toBe(2);
    stop();
  });

  it('handles ten thousand devices and a second of their updates quickly, a slice per frame', () => {
    const { fleet, frames, send, stop } = setup();
    const devices = Array.from({ length: 10_000 }, (_, i) => device(`env-${String(i).padStart(5, '0')}`));
    send({ kind: 'snapshot', gap: false, devices });
    // Built a slice per frame (no long task), swapped in whole at the end.
    let built = 0;
    while (frames.queue.size > 0) {
      expect(fleet.rows.length === 0 || fleet.rows.length === 10_000).toBe(true);
      frames.run();
      built++;
    }
    expect(built).toBeGreaterThan(1);
    expect(fleet.rows).toHaveLength(10_000);
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++)
      send({ kind: 'values', deviceId: devices[i]!.id, latest: { temperature: { ts: 5000, value: i } } });
    // A second of values for ten thousand devices is shown over a few frames, a slice per frame, each frame
    // right after the other (not a values period apart).
    frames.run();
    expect(fleet.get('env-00000')!.latest.temperature!.value).toBe(0);
    expect(fleet.get('env-09999')!.latest.temperature).toBeUndefined();
    let frames2 = 1;
    while (frames.queue.size > 0) {
      frames.run();
      frames2++;
    }
    const ms = performance.now() - t0;
    expect(frames2).toBeGreaterThan(1);
    expect(frames2).toBeLessThan(10);
    expect(fleet.get('env-09999')!.latest.temperature!.value).toBe(9999);
    expect(ms).toBeLessThan(1000); // generous on a shared machine; the browser bench measures the real budget
    stop();
  });
  it('a big snapshot: facets a frame before the rows, derivations prepared, events during the build kept', () => {
    const { fleet, frames, send, stop } = setup();
    const devices = Array.from({ length: 6000 }, (_, i) =>
      device(`env-${String(i).padStart(5, '0')}`, i === 5999 ? { model: 'power-meter' } : {}),
    );
    send({ kind: 'snapshot', gap: false, devices });
    frames.run(); // a slice of rows
    // Events that arrive while the rows are built apply to the new rows once they are swapped in.
    send({
      kind: 'presence',
      deviceId: 'env-00001',
      presence: { state: 'offline', reason: 'HEARTBEAT_LOST', since: 9000 },
    });
    send({ kind: 'values', deviceId: 'env-05999', latest: { temperature: { ts: 9000, value: 7 } } });
    let facetsFirst = false;
    while (fleet.rows.length === 0) {
      expect(frames.queue.size).toBe(1);
      frames.run();
      if (fleet.rows.length === 0 && fleet.facets.models.includes('power-meter')) facetsFirst = true;
    }
    expect(facetsFirst).toBe(true);
    expect(fleet.counts).toEqual({ total: 6000, online: 6000, offline: 0, never: 0 });
    expect(fleet.visible).toHaveLength(6000);
    while (frames.queue.size > 0) frames.run();
    expect(fleet.get('env-00001')!.presence.state).toBe('offline');
    expect(fleet.get('env-05999')!.latest.temperature!.value).toBe(7);
    expect(fleet.counts).toEqual({ total: 6000, online: 5999, offline: 1, never: 0 });
    fleet.setQuery({ sort: 'presence' });
    expect(fleet.visible[0]!.id).toBe('env-00001');
    stop();
  });

  it('asks HTTP for the list only while the live channel is down or refused the subscription', async () => {
    let handler: { onEvent(e: LiveEvent, o: number): void; onError?(e: { code: string; message: string }): void };
    const status = { state: 'live' };
    let polls = 0;
    let poll: (() => void) | undefined;
    const frames = new ManualFrames();
    const fleet = new Fleet.FleetState({
      live: { status, subscribe: (_s: unknown, h: typeof handler) => ((handler = h), { close: () => {} }) },
      loadDevices: async () => {
        polls++;
        return [device('env-http')];
      },
      frames,
      timers: { setInterval: (fn) => ((poll = fn), 0), clearInterval: () => {} },
    });
    const stop = fleet.start();
    // Live, the snapshot not here yet (a big fleet on a slow machine): no second copy of the list over HTTP.
    poll!();
    expect(polls).toBe(0);
    status.state = 'reconnecting';
    poll!();
    expect(polls).toBe(1);
    await Promise.resolve();
    frames.run();
    expect(fleet.source).toBe('http');
    expect(fleet.get('env-http')).toBeDefined();
    // Up again, but the hub refused the fleet subscription: HTTP keeps the list current.
    status.state = 'live';
    handler!.onError!({ code: 'FORBIDDEN', message: 'no' });
    poll!();
    expect(polls).toBe(2);
    // A live snapshot arrives: HTTP stops.
    handler!.onEvent({ kind: 'snapshot', gap: false, devices: [device('env-1')] }, 1);
    frames.run();
    poll!();
    expect(polls).toBe(2);
    stop();
  });
});
