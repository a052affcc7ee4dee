/**
 * Connection history per device (GET /api/v1/devices/:id/connections): real hub listening on a port, a real
 * WebSocket device connecting and disconnecting, real SQLite (hub.db), requests over HTTP.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONNECTION_LOG_LIMIT, ConnectionLog } from '../src/devices/connection-log.js';
import { PresenceTracker } from '../src/devices/presence.js';
import { DeviceRegistry } from '../src/devices/registry.js';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import { TestDevice } from './device-client.js';
import { auth, provision, startHub, tempDir, type TestHub, waitFor } from './helpers.js';

interface Entry {
  id: number;
  at: number;
  event: 'online' | 'offline';
  transport: string | null;
  reason: string | null;
  remote: string | null;
}

describe('connection history API', () => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startHub();
  });
  afterEach(async () => {
    await hub.dispose();
  });

  async function get(path: string): Promise<{ status: number; body: any }> {
    const res = await fetch(`${hub.listening!.url}${path}`, { headers: auth });
    return { status: res.status, body: await res.json() };
  }

  async function connectOnce(id: string, token: string, end: 'close' | 'terminate'): Promise<void> {
    const d = await TestDevice.connect(hub.listening!.deviceUrl);
    await d.hello({ deviceId: id, token });
    if (end === 'close') d.close();
    else d.ws.terminate();
    await waitFor(`${id} offline`, () => hub.app.devices.registry.get(id)?.presence.state === 'offline');
  }

  it('records connects and disconnects with transport and reason, newest first, paged with before', async () => {
    const token = await provision(hub.app, 'hist-1');
    const t0 = Date.now();
    await connectOnce('hist-1', token, 'close');
    await connectOnce('hist-1', token, 'terminate');

    const all = await get('/api/v1/devices/hist-1/connections');
    expect(all.status).toBe(200);
    const entries = all.body.connections as Entry[];
    expect(entries.map((e) => [e.event, e.reason])).toEqual([
      ['offline', 'CONNECTION_LOST'],
      ['online', null],
      ['offline', 'CLOSED'],
      ['online', null],
    ]);
    for (const e of entries) {
      expect(e.transport).toBe('ws');
      expect(e.remote).toBe('127.0.0.1');
      expect(e.at).toBeGreaterThanOrEqual(t0);
    }
    expect(all.body.nextBefore).toBeNull();

    const first = await get('/api/v1/devices/hist-1/connections?limit=3');
    expect((first.body.connections as Entry[]).map((e) => e.id)).toEqual(entries.slice(0, 3).map((e) => e.id));
    expect(first.body.nextBefore).toBe(entries[2]!.id);
    const rest = await get(`/api/v1/devices/hist-1/connections?limit=3&before=${first.body.nextBefore}`);
    expect((rest.body.connections as Entry[]).map((e) => e.id)).toEqual([entries[3]!.id]);
    expect(rest.body.nextBefore).toBeNull();
  });

  it('records the MQTT reasons the presence layer gives (MQTT_WILL, BRIDGE_DISCONNECTED) with transport mqtt', async () => {
    await provision(hub.app, 'mq-1');
    const { registry, presence } = hub.app.devices;
    const device = registry.get('mq-1')!;
    // The bridge reports MQTT devices to the presence layer exactly like this (mqtt/ is a transport).
    presence.online(device, 'mqtt', null);
    presence.offline(device, 'MQTT_WILL');
    presence.online(device, 'mqtt', null);
    presence.offline(device, 'BRIDGE_DISCONNECTED');
    const { body } = await get('/api/v1/devices/mq-1/connections');
    expect((body.connections as Entry[]).map((e) => [e.event, e.transport, e.reason])).toEqual([
      ['offline', 'mqtt', 'BRIDGE_DISCONNECTED'],
      ['online', 'mqtt', null],
      ['offline', 'mqtt', 'MQTT_WILL'],
      ['online', 'mqtt', null],
    ]);
  });

  it('deletes the history with the device', async () => {
    const token = await provision(hub.app, 'gone-1');
    await connectOnce('gone-1', token, 'close');
    expect((await get('/api/v1/devices/gone-1/connections')).body.connections).toHaveLength(2);
    const del = await fetch(`${hub.listening!.url}/api/v1/devices/gone-1`, { method: 'DELETE', headers: auth });
    expect(del.status).toBe(204);
    const after = await get('/api/v1/devices/gone-1/connections');
    expect(after.status).toBe(404);
    expect(after.body.error.code).toBe('DEVICE_NOT_FOUND');
    hub.app.devices.registry.flush();
    const db = new Database(join(hub.dataDir, 'hub.db'), { readonly: true });
    const rows = db.prepare(`SELECT count(*) FROM device_connections WHERE device_id = 'gone-1'`).pluck().get();
    db.close();
    expect(rows).toBe(0);
  });

  it('answers 400 INVALID_REQUEST for bad paging and 404 for an unknown device', async () => {
    await provision(hub.app, 'bad-1');
    for (const q of [
      'limit=0',
      `limit=${CONNECTION_LOG_LIMIT + 1}`,
      'limit=ten',
      'before=0',
      'before=-5',
      'colour=red',
    ]) {
      const res = await get(`/api/v1/devices/bad-1/connections?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error.code, q).toBe('INVALID_REQUEST');
    }
    const unknown = await get('/api/v1/devices/nobody/connections');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('DEVICE_NOT_FOUND');
  });
});

describe('connection log bounds', () => {
  it('keeps the newest entries per device, in memory and in hub.db, and leaves other devices alone', () => {
    const dir = tempDir();
    const registry = new DeviceRegistry(dir.path);
    try {
      registry.create({ id: 'flappy' }, 1);
      registry.create({ id: 'calm' }, 1);
      const log = registry.connections;
      log.record('calm', { at: 1, event: 'online', transport: 'mqtt', reason: null, remote: null });
      // More than the limit before one flush (memory bound), then more across flushes (table bound).
      for (let i = 0; i < CONNECTION_LOG_LIMIT + 50; i++)
        log.record('flappy', {
          at: i,
          event: i % 2 ? 'offline' : 'online',
          transport: 'ws',
          reason: null,
          remote: null,
        });
      registry.flush();
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 100; j++)
          log.record('flappy', {
            at: 1000 + i * 100 + j,
            event: 'online',
            transport: 'ws',
            reason: null,
            remote: null,
          });
        registry.flush();
      }
      const kept = registry.connectionHistory('flappy', CONNECTION_LOG_LIMIT);
      expect(kept).toHaveLength(CONNECTION_LOG_LIMIT);
      expect(kept[0]!.at).toBe(1299);
      expect(kept.at(-1)!.at).toBe(1100);
      const count = registry.db.prepare(`SELECT count(*) FROM device_connections WHERE device_id = 'flappy'`);
      expect(count.pluck().get()).toBe(CONNECTION_LOG_LIMIT);
      expect(registry.connectionHistory('calm', 10).map((e) => e.transport)).toEqual(['mqtt']);
    } finally {
      registry.close();
      dir.remove();
    }
  });

  it('drops entries recorded for a device that no longer exists instead of failing the flush', () => {
    const dir = tempDir();
    const registry = new DeviceRegistry(dir.path);
    try {
      registry.create({ id: 'a' }, 1);
      registry.connections.record('ghost', {
        at: 1,
        event: 'offline',
        transport: 'ws',
        reason: 'DELETED',
        remote: null,
      });
      registry.connections.record('a', { at: 2, event: 'online', transport: 'ws', reason: null, remote: null });
      registry.flush();
      expect(registry.connectionHistory('a', 5)).toHaveLength(1);
      expect(registry.connections.dirty).toBe(false);
      expect(new ConnectionLog(registry.db).page('ghost', 5)).toEqual([]);
    } finally {
      registry.close();
      dir.remove();
    }
  });
});

describe('connection history across a crash', () => {
  it('records the offline a crash left out (SHUTTING_DOWN at the last-seen time) when the hub starts again', () => {
    const dir = tempDir();
    let now = 1_000;
    const clock = { now: () => now };
    const store = new SqliteStore(dir.path);
    try {
      // First run: the device comes online, is seen at 1 500, and the hub dies without closing it (the
      // registry's periodic flush has persisted it as online; nothing recorded its offline).
      const first = new DeviceRegistry(dir.path);
      const { device } = first.create({ id: 'crashy' }, 1);
      new PresenceTracker(first, store, clock).online(device, 'ws', '127.0.0.1');
      device.presence.lastSeen = 1_500;
      first.markDirty(device);
      first.close();

      now = 9_000;
      const second = new DeviceRegistry(dir.path);
      try {
        new PresenceTracker(second, store, clock);
        expect(second.get('crashy')!.presence).toMatchObject({
          state: 'offline',
          reason: 'SHUTTING_DOWN',
          since: 1_500,
        });
        second.flush();
        const history = second.connectionHistory('crashy', 10);
        expect(history.map((e) => [e.event, e.reason, e.at, e.transport])).toEqual([
          ['offline', 'SHUTTING_DOWN', 1_500, 'ws'],
          ['online', null, 1_000, 'ws'],
        ]);
      } finally {
        second.close();
      }
    } finally {
      store.close();
      dir.remove();
    }
  });
});
