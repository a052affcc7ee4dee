/** /healthz, /readyz, /metrics, and graceful shutdown (docs/operations.md). */
import { GroupCommitWriter } from '../src/storage/group-commit.js';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import { TestDevice } from './device-client.js';
import { ADMIN_TOKEN, provision, startHub, tempDir } from './helpers.js';
import { HeldSqliteStore } from './stores.js';

describe('health and metrics', () => {
  it('/healthz answers ok; /readyz is 200 while the store answers and 503 naming the store once it is closed', async () => {
    // Without the spool (a group-commit writer straight over the store) a store that is down makes the hub
    // unready; with the spool it only degrades it (readyz-spool-failure.test.ts).
    const hub = await startHub({ listen: false, deps: { sink: (st) => new GroupCommitWriter(st) } });
    try {
      const health = await hub.app.inject({ method: 'GET', url: '/healthz' });
      expect(health.statusCode).toBe(200);
      expect(health.json()).toEqual({ status: 'ok' });
      const ready = await hub.app.inject({
        method: 'GET',
        url: '/readyz',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(ready.statusCode).toBe(200);
      expect(ready.json()).toMatchObject({ status: 'ready', checks: { store: 'ok', writer: 'ok', shutdown: 'ok' } });
      await hub.app.durability.store.close();
      const notReady = await hub.app.inject({
        method: 'GET',
        url: '/readyz',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(notReady.statusCode).toBe(503);
      expect(notReady.json().status).toBe('not_ready');
      expect(notReady.json().checks.store).toContain('sqlite store not reachable');
      expect(notReady.json().error.code).toBe('NOT_READY');
    } finally {
      await hub.dispose();
    }
  });

  it('/readyz tells an anonymous caller the status only; details (store, spool path, errors) need credentials', async () => {
    const dir = tempDir();
    const store = new SqliteStore(dir.path);
    const hub = await startHub({
      listen: false,
      dataDir: dir.path,
      deps: { store, sink: (st) => new GroupCommitWriter(st) },
    });
    try {
      const anonymous = await hub.app.inject({ method: 'GET', url: '/readyz' });
      expect(anonymous.statusCode).toBe(200);
      expect(anonymous.json()).toEqual({ status: 'ready' });
      await store.close();
      const down = await hub.app.inject({ method: 'GET', url: '/readyz' });
      expect(down.statusCode).toBe(503);
      expect(down.json()).toEqual({
        status: 'not_ready',
        error: { code: 'NOT_READY', message: expect.stringContaining('(store)') },
      });
      expect(down.body).not.toContain('sqlite');
      expect(down.body).not.toContain(dir.path);
      const detailed = await hub.app.inject({
        method: 'GET',
        url: '/readyz',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(detailed.json().checks.store).toContain('sqlite store not reachable');
    } finally {
      await hub.dispose();
      dir.remove();
    }
  });

  it('/metrics exposes the named series in Prometheus text, from its own registry', async () => {
    const hub = await startHub();
    try {
      const token = await provision(hub.app, 'm-1');
      const d = await TestDevice.connect(hub.listening!.deviceUrl);
      await d.hello({ deviceId: 'm-1', token });
      d.send({
        type: 'reading',
        seq: 1,
        ts: Date.now(),
        values: [
          { alias: 2, kind: 'int', value: 1 },
          { alias: 9, kind: 'int', value: 1 },
        ],
      });
      d.send({ type: 'reading', seq: 1, ts: Date.now(), values: [{ alias: 2, kind: 'int', value: 1 }] });
      await d.ackFor(1);
      const res = await hub.app.inject({ method: 'GET', url: '/metrics' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toContain('text/plain');
      const text = res.body;
      const value = (line: string) =>
        Number(
          text
            .split('\n')
            .find((l) => l.startsWith(`${line} `))
            ?.slice(line.length + 1),
        );
      expect(value('tendril_devices_connected')).toBe(1);
      expect(value('tendril_frames_in_total{type="hello"}')).toBe(1);
      expect(value('tendril_frames_in_total{type="reading"}')).toBe(2);
      expect(value('tendril_frames_out_total{type="welcome"}')).toBe(1);
      expect(value('tendril_frames_out_total{type="error"}')).toBe(1);
      expect(value('tendril_bytes_in_total')).toBeGreaterThan(0);
      expect(value('tendril_bytes_out_total')).toBeGreaterThan(0);
      expect(value('tendril_readings_accepted_total')).toBe(1);
      expect(value('tendril_readings_rejected_total{code="UNKNOWN_ALIAS"}')).toBe(1);
      expect(value('tendril_readings_duplicate_total')).toBe(1);
      expect(value('tendril_acks_sent_total')).toBeGreaterThanOrEqual(1);
      // The production chain: the spool's group commits made the reading durable before the ACK.
      expect(value('tendril_spool_commits_total')).toBeGreaterThanOrEqual(1);
      expect(text).toContain('# TYPE tendril_store_commit_seconds histogram');
      expect(text).toContain('process_cpu_user_seconds_total');
      const closed = hub.app.devices.sessions.events;
      const offline = new Promise((resolve) => closed.on('offline', resolve));
      d.close();
      await offline;
      const after = (await hub.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(after).toContain('tendril_connections_closed_total{code="CLOSED"} 1');
      expect(after).toContain('tendril_devices_connected 0');
    } finally {
      await hub.dispose();
    }
  });
});

describe('graceful shutdown', () => {
  it('§6.6.3 acks what became durable during shutdown, then closes devices with SHUTTING_DOWN, 1001', async () => {
    const dir = tempDir();
    const store = new HeldSqliteStore(dir.path);
    const hub = await startHub({ dataDir: dir.path, deps: { store } });
    try {
      const token = await provision(hub.app, 'sd-1');
      const d = await TestDevice.connect(hub.listening!.deviceUrl);
      await d.hello({ deviceId: 'sd-1', token });
      const arrived = store.writeArrived();
      const ts = Date.now();
      d.send({ type: 'reading', seq: 1, ts, values: [{ alias: 2, kind: 'int', value: 1 }] });
      d.send({ type: 'reading', seq: 2, ts: ts + 1, values: [{ alias: 2, kind: 'int', value: 2 }] });
      await arrived;
      // Shutdown starts while the write is held; it must wait for it, ack, and only then close.
      const closing = hub.app.close();
      store.release();
      await closing;
      const closed = await d.closedWithin();
      expect(closed).toEqual({ code: 1001, reason: 'SHUTTING_DOWN' });
      const types = d.frames.map((f) => f.type);
      expect(types.indexOf('ack')).toBeGreaterThanOrEqual(0);
      expect(types.lastIndexOf('ack')).toBeLessThan(types.indexOf('error'));
      const acked = Math.max(...d.frames.map((f) => (f.type === 'ack' ? f.seq : 0)));
      expect(acked).toBe(2);
      expect(d.frames.find((f) => f.type === 'error')).toMatchObject({ code: 'SHUTTING_DOWN' });
      // Everything acked is on disk.
      const reopened = new SqliteStore(dir.path);
      const latest = await reopened.latest('sd-1');
      await reopened.close();
      expect(latest).toEqual({ count: { ts: ts + 1, value: 2 } });
    } finally {
      await hub.dispose();
      dir.remove();
    }
  });
});
