/** The live channel's requests, snapshots and events (docs/live.md §3-§5). */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { waitFor } from './helpers.js';
import { FleetModel, LiveTestClient, type LiveTestHub, startLiveHub } from './live-helpers.js';

let hub: LiveTestHub;
let client: LiveTestClient;

beforeEach(async () => {
  hub = await startLiveHub({ devices: 3 });
  client = await LiveTestClient.viewer(hub);
});

afterEach(async () => {
  client.close();
  await hub.close();
});

describe('fleet subscription', () => {
  it('§4.2, §5.4: answers with epoch and offset, then a snapshot of every device, then changes (§5.1)', async () => {
    hub.readings('dev-0000', 1, 1_767_225_600_000, { temperature: 20.5 });
    const { result, snapshot } = await client.subscribe({ stream: 'fleet' });
    expect(result).toMatchObject({ recovered: false, offset: expect.any(Number), epoch: expect.any(String) });
    expect(snapshot).toHaveLength(1);
    const part = snapshot[0]!;
    expect(part.offset).toBe(result.offset);
    expect(part.event).toMatchObject({ kind: 'snapshot', part: 0, last: true, gap: false });
    const rows = part.event.devices as Array<Record<string, any>>;
    expect(rows.map((r) => r.id)).toEqual(['dev-0000', 'dev-0001', 'dev-0002']);
    expect(rows[0]).toMatchObject({
      name: 'Device dev-0000',
      model: 'env-sensor',
      labels: { room: 'lab' },
      transport: null,
      presence: { state: 'never', reason: null },
      latest: { temperature: { ts: 1_767_225_600_000, value: 20.5 } },
      rejected: 0,
      dropped: 0,
    });
    expect(rows[0]!.metrics).toContainEqual({ name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 });

    const from = client.messages.length;
    hub.online('dev-0001', 1_767_225_700_000);
    hub.readings('dev-0001', 1, 1_767_225_700_100, { temperature: 21, humidity: 40 });
    hub.events.emit('status', { deviceId: 'dev-0001', dropped: 7 });
    hub.offline('dev-0001', 'HEARTBEAT_LOST', 1_767_225_800_000);
    const presence = await client.next(
      (m) => m.event?.kind === 'presence' && m.event.presence.state === 'offline',
      'offline presence',
      5000,
      from,
    );
    expect(presence.event).toEqual({
      kind: 'presence',
      deviceId: 'dev-0001',
      transport: 'ws',
      presence: { state: 'offline', reason: 'HEARTBEAT_LOST', since: 1_767_225_800_000, lastSeen: 1_767_225_799_999 },
    });
    const kinds = client.messages.slice(from).map((m) => m.event.kind);
    expect(kinds).toEqual(['presence', 'values', 'counters', 'presence']);
    const values = client.messages.slice(from).find((m) => m.event.kind === 'values')!;
    expect(values.event.latest).toEqual({
      temperature: { ts: 1_767_225_700_100, value: 21 },
      humidity: { ts: 1_767_225_700_100, value: 40 },
    });
    const counters = client.messages.slice(from).find((m) => m.event.kind === 'counters')!;
    expect(counters.event).toMatchObject({ deviceId: 'dev-0001', rejected: 0, dropped: 7 });
    // Offsets of one subscription never decrease (§3.5.2).
    const offsets = client.events(1).map((m) => m.offset as number);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
  });

  it('§5.1.4: a device created, changed and deleted in the registry reaches the fleet', async () => {
    const { result } = await client.subscribe({ stream: 'fleet' });
    const model = new FleetModel();
    for (const m of client.messages) if (m.id === 1) model.apply(m);
    hub.registry.create({ id: 'dev-new', name: 'New one' }, Date.now());
    hub.events.emit('changed', { deviceId: 'dev-new', change: 'created' });
    hub.registry.update('dev-0000', { labels: { room: 'roof' } });
    hub.events.emit('changed', { deviceId: 'dev-0000', change: 'updated' });
    hub.registry.delete('dev-0002');
    hub.events.emit('changed', { deviceId: 'dev-0002', change: 'deleted' });
    const deleted = await client.next(
      (m) => m.event?.kind === 'device' && m.event.change === 'deleted',
      'the deleted event',
    );
    expect(deleted.event).toEqual({ kind: 'device', change: 'deleted', deviceId: 'dev-0002', device: null });
    for (const m of client.events(1)) model.apply(m);
    expect([...model.rows.keys()].sort()).toEqual(['dev-0000', 'dev-0001', 'dev-new']);
    expect(model.rows.get('dev-0000')!.labels).toEqual({ room: 'roof' });
    expect(model.rows.get('dev-new')!.name).toBe('New one');
    expect(result.offset).toBeGreaterThanOrEqual(0);
  });
});

describe('device subscription', () => {
  it('§5.2.1: readings of the subscribed devices and metrics only, in order, as they become durable', async () => {
    const { snapshot } = await client.subscribe({ stream: 'device', devices: ['dev-0000'], metrics: ['temperature'] });
    expect(snapshot[0]!.event.devices.map((d: { id: string }) => d.id)).toEqual(['dev-0000']);
    hub.readings('dev-0001', 1, 1000, { temperature: 1 });
    hub.readings('dev-0000', 1, 1000, { humidity: 50 });
    hub.readings('dev-0000', 2, 2000, { temperature: 22.5, humidity: 51 });
    hub.readings('dev-0000', 3, 3000, { temperature: 22.75 });
    await client.until(() => client.events(1, 'readings').length === 2, 'two readings events');
    const events = client.events(1, 'readings').map((m) => m.event);
    expect(events).toEqual([
      { kind: 'readings', deviceId: 'dev-0000', readings: [{ seq: 2, ts: 2000, values: { temperature: 22.5 } }] },
      { kind: 'readings', deviceId: 'dev-0000', readings: [{ seq: 3, ts: 3000, values: { temperature: 22.75 } }] },
    ]);
  });

  it('§4.2.3: a device registered since the last fleet update is found without listing the whole registry', async () => {
    hub.registry.create({ id: 'dev-new', name: 'New', model: 'env-sensor', labels: {} }, Date.now());
    const list = vi.spyOn(hub.registry, 'list');
    const found = await client.request({ type: 'subscribe', stream: 'device', devices: ['dev-new'] });
    expect(found.type).toBe('result');
    const unknown = await client.request({ type: 'subscribe', id: 77, stream: 'device', devices: ['nope'] });
    expect(unknown.error.code).toBe('DEVICE_NOT_FOUND');
    // Each request naming an unknown id used to list and sort the whole registry.
    expect(list).not.toHaveBeenCalled();
  });

  it('§4.2.3: unknown devices, a missing devices list and unknown fields are refused with a named code', async () => {
    const unknown = await client.request({ type: 'subscribe', stream: 'device', devices: ['dev-0000', 'nope'] });
    expect(unknown).toMatchObject({ type: 'error', error: { code: 'DEVICE_NOT_FOUND' } });
    expect(unknown.error.message).toContain('"nope"');
    const missing = await client.request({ type: 'subscribe', stream: 'device' });
    expect(missing.error.code).toBe('INVALID_REQUEST');
    const typo = await client.request({ type: 'subscribe', stream: 'fleet', metric: ['x'] });
    expect(typo.error).toMatchObject({
      code: 'INVALID_REQUEST',
      message: expect.stringContaining('Unknown field "metric"'),
    });
    const dup = await client.request({ type: 'subscribe', id: 50, stream: 'fleet' });
    expect(dup.type).toBe('result');
    const again = await client.request({ type: 'subscribe', id: 50, stream: 'health' });
    expect(again.error.code).toBe('SUBSCRIPTION_EXISTS');
  });

  it('§4.3: update adds and drops devices and metrics in place; the added ones come with their state', async () => {
    await client.subscribe({ stream: 'device', devices: ['dev-0000'], metrics: ['temperature'] });
    hub.readings('dev-0001', 1, 1000, { temperature: 30, humidity: 60 });
    const answer = await client.request({
      type: 'update',
      subscription: 1,
      addDevices: ['dev-0001'],
      removeDevices: ['dev-0000'],
      addMetrics: ['humidity'],
    });
    expect(answer).toMatchObject({ type: 'result', result: { offset: expect.any(Number) } });
    const added = await client.next((m) => m.id === 1 && m.event?.kind === 'added', 'the added event');
    expect(added.event.devices.map((d: { id: string }) => d.id)).toEqual(['dev-0001']);
    expect(added.event.devices[0].latest).toEqual({
      temperature: { ts: 1000, value: 30 },
      humidity: { ts: 1000, value: 60 },
    });
    const from = client.messages.length;
    hub.readings('dev-0000', 2, 2000, { temperature: 1 });
    hub.readings('dev-0001', 2, 2000, { temperature: 31, humidity: 61, count: 5 });
    const r = await client.next((m) => m.event?.kind === 'readings', 'readings of dev-0001', 5000, from);
    expect(r.event).toEqual({
      kind: 'readings',
      deviceId: 'dev-0001',
      readings: [{ seq: 2, ts: 2000, values: { temperature: 31, humidity: 61 } }],
    });
    expect(client.messages.slice(from).filter((m) => m.event?.deviceId === 'dev-0000')).toEqual([]);

    const removeAll = await client.request({
      type: 'update',
      subscription: 1,
      removeMetrics: ['temperature', 'humidity'],
    });
    expect(removeAll.error.code).toBe('INVALID_REQUEST');
    const none = await client.request({ type: 'update', subscription: 99, addDevices: ['dev-0001'] });
    expect(none.error.code).toBe('SUBSCRIPTION_NOT_FOUND');
  });

  it('§4.4: after unsubscribe no event of the subscription arrives', async () => {
    await client.subscribe({ stream: 'device', devices: ['dev-0000'] });
    const answer = await client.request({ type: 'unsubscribe', subscription: 1 });
    expect(answer).toEqual({ type: 'result', id: 2, result: {} });
    const from = client.messages.length;
    hub.readings('dev-0000', 1, 1000, { temperature: 1 });
    const pong = await client.request({ type: 'ping' });
    expect(pong.result.serverTime).toEqual(expect.any(Number));
    expect(client.messages.slice(from).filter((m) => m.type === 'event')).toEqual([]);
  });
});

describe('metric names', () => {
  it('a metric named like an Object member (constructor, toString) reaches the fleet row like any other', async () => {
    await client.subscribe({ stream: 'fleet' });
    const from = client.messages.length;
    hub.readings('dev-0000', 1, 1000, { constructor: 5, toString: 6, temperature: 7 });
    const values = await client.next((m) => m.event?.kind === 'values', 'the values event', 5000, from);
    expect(values.event.latest).toEqual({
      constructor: { ts: 1000, value: 5 },
      toString: { ts: 1000, value: 6 },
      temperature: { ts: 1000, value: 7 },
    });
  });
});

describe('counters', () => {
  it('§5.1: a device sends at most a few counters events a second, the first at once and the latest last', async () => {
    await client.subscribe({ stream: 'fleet' });
    const from = client.messages.length;
    // A device reporting a drop per STATUS frame, and one rejected value after another.
    for (let i = 1; i <= 5000; i++) hub.events.emit('status', { deviceId: 'dev-0002', dropped: i });
    for (let i = 0; i < 300; i++) hub.events.emit('rejected', { deviceId: 'dev-0002', code: 'OUT_OF_RANGE' });
    const last = await client.next(
      (m) => m.event?.kind === 'counters' && m.event.dropped === 5000 && m.event.rejected === 300,
      'the latest counters (dropped 5000, rejected 300)',
      5000,
      from,
    );
    const sent = client.messages.slice(from).filter((m) => m.event?.kind === 'counters');
    // The first change at once, the 5 299 after it together at the end of the half second: each used to be an event.
    expect(sent.map((m) => m.event.dropped)).toEqual([1, 5000]);
    expect(sent.at(-1)).toBe(last);
  });
});

describe('subscriptions that end', () => {
  it('are forgotten on unsubscribe and when the connection closes', async () => {
    const live = (hub.app as unknown as { live: { owners: Map<unknown, unknown>; clients: Set<unknown> } }).live;
    const before = live.owners.size;
    await client.subscribe({ stream: 'fleet' });
    await client.subscribe({ stream: 'device', devices: ['dev-0000'] });
    expect(live.owners.size).toBe(before + 2);
    await client.request({ type: 'unsubscribe', subscription: 2 });
    expect(live.owners.size).toBe(before + 1);
    // Each page load subscribes anew: a subscription whose connection closed used to stay, with its client.
    client.close();
    await waitFor('the hub to see the live client close', () => live.clients.size === 0 || null);
    expect(live.owners.size).toBe(0);
  });
});

describe('commands and health', () => {
  it('§5.3.1: command lifecycle updates carry the whole command; the snapshot lists unfinished ones', async () => {
    const first = hub.commands.submit({
      deviceId: 'dev-0000',
      name: 'relay',
      args: { on: true },
      requestedBy: 'ada',
    }).command;
    const { snapshot } = await client.subscribe({ stream: 'commands', devices: ['dev-0000'] });
    expect(snapshot[0]!.event.commands.map((c: { id: number }) => c.id)).toEqual([first.id]);
    hub.commands.submit({ deviceId: 'dev-0001', name: 'reboot', requestedBy: 'ada' });
    const second = hub.commands.submit({
      deviceId: 'dev-0000',
      name: 'set-interval',
      args: { ms: 5000 },
      requestedBy: 'ada',
    }).command;
    const ev = await client.next((m) => m.event?.kind === 'command', 'a command event');
    expect(ev.event.command).toMatchObject({
      id: second.id,
      deviceId: 'dev-0000',
      name: 'set-interval',
      state: 'queued',
      requestedBy: 'ada',
      history: [{ state: 'queued' }],
    });
    expect(client.events(1, 'command')).toHaveLength(1);
  });

  it('§5.3.2: health shows the store and connected devices, and changes when a device connects', async () => {
    const { snapshot } = await client.subscribe({ stream: 'health' });
    expect(snapshot[0]!.event.health).toEqual({
      store: { kind: 'sqlite', state: 'up' },
      spool: null,
      shuttingDown: false,
      devices: { connected: 0, registered: 3 },
    });
    hub.online('dev-0002');
    const ev = await client.next((m) => m.event?.kind === 'health', 'a health event');
    expect(ev.event.health.devices).toEqual({ connected: 1, registered: 3 });
  });
});

describe('commands of every device', () => {
  it('§5.4.4: without devices the snapshot lists every unfinished command, oldest first, and updates of every device follow', async () => {
    const a = hub.commands.submit({
      deviceId: 'dev-0001',
      name: 'relay',
      args: { on: true },
      requestedBy: 'ada',
    }).command;
    const b = hub.commands.submit({ deviceId: 'dev-0002', name: 'reboot', requestedBy: 'bob' }).command;
    const { snapshot } = await client.subscribe({ stream: 'commands' });
    expect(snapshot[0]!.event.commands.map((c: { id: number }) => c.id)).toEqual([a.id, b.id]);
    const c = hub.commands.submit({
      deviceId: 'dev-0000',
      name: 'set-interval',
      args: { ms: 100 },
      requestedBy: 'ada',
    }).command;
    const ev = await client.next((m) => m.event?.kind === 'command', 'a command event');
    expect(ev.event.command).toMatchObject({ id: c.id, deviceId: 'dev-0000', state: 'queued' });
  });
});

describe('snapshot parts', () => {
  it('§5.4.2: a large snapshot comes in parts under snapshotPartBytes, each saying its index and the count', async () => {
    const big = await startLiveHub({ devices: 60, limits: { snapshotPartBytes: 4096 } });
    try {
      const c = await LiveTestClient.viewer(big);
      const { snapshot } = await c.subscribe({ stream: 'fleet' });
      expect(snapshot.length).toBeGreaterThan(3);
      expect(snapshot.map((m) => m.event.part)).toEqual(snapshot.map((_, i) => i));
      expect(snapshot.every((m) => m.event.parts === snapshot.length)).toBe(true);
      expect(snapshot.map((m) => m.event.last)).toEqual(snapshot.map((_, i) => i === snapshot.length - 1));
      expect(new Set(snapshot.map((m) => m.offset)).size).toBe(1);
      const ids = snapshot.flatMap((m) => m.event.devices.map((d: { id: string }) => d.id));
      expect(ids).toEqual(Array.from({ length: 60 }, (_, i) => `dev-${String(i).padStart(4, '0')}`));
      for (const m of snapshot) expect(JSON.stringify(m.event).length).toBeLessThan(4096 + 1024);
      c.close();
    } finally {
      await big.close();
    }
  });
});
