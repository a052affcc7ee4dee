/** Device channel: acceptance, validation, duplicates, epochs, ACK after commit (docs/protocol.md §5–§7). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDevice } from './device-client.js';
import { GroupCommitWriter } from '../src/storage/group-commit.js';
import { auth, provision, startHub, tempDir, waitFor, type TestHub } from './helpers.js';
import type { SqliteStore } from '../src/storage/sqlite-store.js';
import { FailingSqliteStore, HeldSqliteStore, storedValues } from './stores.js';

/** What the store holds for the device once the spool (when there is one) has drained into it. */
async function rowsOf(
  hub: TestHub,
  deviceId: string,
): Promise<Array<{ metric: string; epoch: number; seq: number; value: unknown }>> {
  await hub.app.durability.spool?.whenDrained();
  return storedValues(hub.app.durability.store as SqliteStore, deviceId);
}

async function metricValue(hub: TestHub, line: string): Promise<number> {
  const text = (await hub.app.inject({ method: 'GET', url: '/metrics' })).body;
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.slice(line.length + 1)) : NaN;
}

async function freshToken(hub: TestHub, id: string): Promise<string> {
  if (!hub.app.devices.registry.get(id)) return provision(hub.app, id);
  return (await hub.app.inject({ method: 'POST', url: `/api/v1/devices/${id}/token`, headers: auth })).json().token;
}

describe('device readings', () => {
  let hub: TestHub;
  let url: string;
  beforeAll(async () => {
    hub = await startHub();
    url = hub.listening!.deviceUrl;
  });
  afterAll(async () => {
    await hub.dispose();
  });

  async function device(id: string, epoch = 1): Promise<TestDevice> {
    const token = await freshToken(hub, id);
    const d = await TestDevice.connect(url);
    await d.hello({ deviceId: id, token, epoch });
    return d;
  }

  it('stores timed, untimed and batched readings and acks them cumulatively', async () => {
    const d = await device('r-1');
    const t0 = Date.now() - 10_000;
    d.send({
      type: 'reading',
      seq: 1,
      ts: t0,
      values: [
        { alias: 0, kind: 'f32', value: 21.5 },
        { alias: 3, kind: 'bool', value: true },
      ],
    });
    d.send({ type: 'reading', seq: 2, ts: null, values: [{ alias: 2, kind: 'int', value: -7 }] });
    d.send({
      type: 'batch',
      readings: [
        { seq: 3, ts: t0 + 1000, values: [{ alias: 1, kind: 'f64', value: 55.25 }] },
        { seq: 4, ts: t0 + 2000, values: [{ alias: 4, kind: 'string', value: 'ok' }] },
      ],
    });
    expect(await d.ackFor(4)).toBe(4);
    expect((await rowsOf(hub, 'r-1')).map(({ metric, seq, value }) => ({ metric, seq, value }))).toEqual([
      { metric: 'door', seq: 1, value: 1 },
      { metric: 'temperature', seq: 1, value: 21.5 },
      { metric: 'count', seq: 2, value: -7 },
      { metric: 'humidity', seq: 3, value: 55.25 },
      { metric: 'label', seq: 4, value: 'ok' },
    ]);
    const view = (await hub.app.inject({ method: 'GET', url: '/api/v1/devices/r-1', headers: auth })).json();
    expect(view).toMatchObject({
      ackedSeq: 4,
      epoch: 1,
      transport: 'ws',
      firmware: 'fw-1',
      sdk: 'test/0',
      presence: { state: 'online' },
    });
    expect(view.metrics.map((m: { name: string }) => m.name)).toEqual([
      'temperature',
      'humidity',
      'count',
      'door',
      'label',
    ]);
    expect(view.latest).toMatchObject({
      temperature: { ts: t0, value: 21.5 },
      door: { value: true },
      count: { value: -7 },
      label: { value: 'ok' },
    });
    d.close();
    await d.closedWithin();
  });

  it('§7.1 sends each validation code with seq and alias, stores the valid values, acks, and counts the codes', async () => {
    const before = new Map<string, number>();
    const codes = [
      'UNKNOWN_ALIAS',
      'DUPLICATE_ALIAS',
      'TYPE_MISMATCH',
      'NOT_FINITE',
      'OUT_OF_RANGE',
      'TIMESTAMP_OUT_OF_RANGE',
    ];
    for (const c of codes) before.set(c, (await metricValue(hub, `tendril_readings_rejected_total{code="${c}"}`)) || 0);
    const d = await device('v-1');
    const now = Date.now();
    d.send({
      type: 'reading',
      seq: 1,
      ts: now,
      values: [
        { alias: 0, kind: 'f32', value: 20 },
        { alias: 9, kind: 'int', value: 1 },
        { alias: 0, kind: 'f32', value: 21 },
        { alias: 1, kind: 'f32', value: 5 },
        { alias: 2, kind: 'int', value: 3 },
      ],
    });
    d.send({
      type: 'reading',
      seq: 2,
      ts: now,
      values: [
        { alias: 0, kind: 'f32', value: NaN },
        { alias: 1, kind: 'f64', value: 100.5 },
        { alias: 3, kind: 'bool', value: false },
      ],
    });
    d.send({ type: 'reading', seq: 3, ts: 1000, values: [{ alias: 2, kind: 'int', value: 1 }] });
    d.send({ type: 'reading', seq: 4, ts: now + 2 * 3_600_000, values: [{ alias: 2, kind: 'int', value: 1 }] });
    expect(await d.ackFor(4)).toBe(4);
    const errors = d.frames
      .filter((f) => f.type === 'error')
      .map((f) => (f.type === 'error' ? { code: f.code, seq: f.seq, alias: f.alias } : null));
    expect(errors).toEqual([
      { code: 'UNKNOWN_ALIAS', seq: 1, alias: 9 },
      { code: 'DUPLICATE_ALIAS', seq: 1, alias: 0 },
      { code: 'TYPE_MISMATCH', seq: 1, alias: 1 },
      { code: 'NOT_FINITE', seq: 2, alias: 0 },
      { code: 'OUT_OF_RANGE', seq: 2, alias: 1 },
      { code: 'TIMESTAMP_OUT_OF_RANGE', seq: 3, alias: null },
      { code: 'TIMESTAMP_OUT_OF_RANGE', seq: 4, alias: null },
    ]);
    expect((await rowsOf(hub, 'v-1')).map(({ metric, seq, value }) => ({ metric, seq, value }))).toEqual([
      { metric: 'count', seq: 1, value: 3 },
      { metric: 'temperature', seq: 1, value: 20 },
      { metric: 'door', seq: 2, value: 0 },
    ]);
    for (const c of codes) {
      const expected = before.get(c)! + (c === 'TIMESTAMP_OUT_OF_RANGE' ? 2 : 1);
      expect(await metricValue(hub, `tendril_readings_rejected_total{code="${c}"}`), c).toBe(expected);
    }
    d.close();
    await d.closedWithin();
  });

  it('§7.2 stores a resent reading once, also after a reconnect with the same epoch', async () => {
    const d = await device('dup-1', 99);
    const ts = Date.now();
    for (let seq = 1; seq <= 3; seq++)
      d.send({ type: 'reading', seq, ts: ts + seq, values: [{ alias: 2, kind: 'int', value: seq }] });
    await d.ackFor(3);
    const dupsBefore = await metricValue(hub, 'tendril_readings_duplicate_total');
    d.send({ type: 'reading', seq: 2, ts: ts + 2, values: [{ alias: 2, kind: 'int', value: 2 }] }); // negative seq delta
    expect((await d.next('ack', 'ACK for the duplicate')).seq).toBe(3);
    expect(await metricValue(hub, 'tendril_readings_duplicate_total')).toBe(dupsBefore + 1);
    d.close();
    await d.closedWithin();

    const again = await device('dup-1', 99);
    expect(again.ctx.prevSeq).toBe(3); // WELCOME.ackedSeq of the epoch
    again.send({ type: 'reading', seq: 3, ts: ts + 3, values: [{ alias: 2, kind: 'int', value: 3 }] });
    again.send({ type: 'reading', seq: 4, ts: ts + 4, values: [{ alias: 2, kind: 'int', value: 4 }] });
    await again.ackFor(4);
    expect((await rowsOf(hub, 'dup-1')).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    again.close();
    await again.closedWithin();

    // §6.3.4: a new epoch starts at 0 and its seq 1 is a different reading from epoch 99's seq 1.
    const fresh = await device('dup-1', 100);
    expect(fresh.ctx.prevSeq).toBe(0);
    fresh.send({ type: 'reading', seq: 1, ts: ts + 10, values: [{ alias: 2, kind: 'int', value: 10 }] });
    await fresh.ackFor(1);
    expect((await rowsOf(hub, 'dup-1')).map((r) => `${r.epoch}:${r.seq}`)).toEqual([
      '99:1',
      '99:2',
      '99:3',
      '99:4',
      '100:1',
    ]);
    fresh.close();
    await fresh.closedWithin();
    // Back to the old epoch: it resumes where it was.
    const back = await device('dup-1', 99);
    expect(back.ctx.prevSeq).toBe(4);
    back.close();
    await back.closedWithin();
  });

  it('§7.5 records the dropped count from HELLO and STATUS', async () => {
    const token = await freshToken(hub, 'st-1');
    const d = await TestDevice.connect(url);
    await d.hello({ deviceId: 'st-1', token, dropped: 3 });
    expect(hub.app.devices.registry.get('st-1')!.dropped).toBe(3);
    const status = new Promise<number>((resolve) => {
      const off = hub.app.devices.sessions.events.on('status', (e) => {
        if (e.deviceId === 'st-1') {
          off();
          resolve(e.dropped);
        }
      });
    });
    d.send({ type: 'status', dropped: 11 });
    expect(await status).toBe(11);
    expect((await hub.app.inject({ method: 'GET', url: '/api/v1/devices/st-1', headers: auth })).json().dropped).toBe(
      11,
    );
    d.close();
    await d.closedWithin();
  });
});

describe('ACK only after the store committed', () => {
  it('§7.3.1 sends no ACK while the write is held, and the ACK once it commits', async () => {
    const dir = tempDir();
    const store = new HeldSqliteStore(dir.path);
    const hub = await startHub({ dataDir: dir.path, deps: { store } });
    try {
      const token = await provision(hub.app, 'held-1');
      const d = await TestDevice.connect(hub.listening!.deviceUrl);
      await d.hello({ deviceId: 'held-1', token });
      const arrived = store.writeArrived();
      d.send({ type: 'reading', seq: 1, ts: Date.now(), values: [{ alias: 0, kind: 'f32', value: 1 }] });
      await arrived;
      // A round trip through the same connection: the hub answers in order, so any ACK would come first.
      d.send({ type: 'commandResult', commandId: 77, status: 'delivered', detail: '' });
      await d.next('error', 'ERROR UNKNOWN_COMMAND_ID');
      expect(d.frames.filter((f) => f.type === 'ack')).toEqual([]);
      expect(await rowsOf(hub, 'held-1')).toEqual([]);
      store.release();
      expect(await d.ackFor(1)).toBe(1);
      expect(await rowsOf(hub, 'held-1')).toHaveLength(1);
      d.close();
      await d.closedWithin();
    } finally {
      await hub.dispose();
      dir.remove();
    }
  });

  it('§6.4: a reconnect after the socket closed waits for its writes; an untimed reading is stored once', async () => {
    const dir = tempDir();
    const store = new HeldSqliteStore(dir.path);
    const hub = await startHub({ dataDir: dir.path, deps: { store } });
    try {
      const token = await provision(hub.app, 'gone-1');
      const first = await TestDevice.connect(hub.listening!.deviceUrl);
      await first.hello({ deviceId: 'gone-1', token, epoch: 3 });
      const arrived = store.writeArrived();
      // Untimed: the hub stamps it with its arrival time.
      first.send({ type: 'reading', seq: 1, ts: null, values: [{ alias: 2, kind: 'int', value: 5 }] });
      await arrived;
      // The connection drops with the write in flight (a NAT or proxy reset), and the device comes back at once.
      first.ws.terminate();
      await waitFor(
        'the hub to see the first connection close',
        () => hub.app.devices.registry.get('gone-1')!.presence.state === 'offline' || null,
      );
      const second = await TestDevice.connect(hub.listening!.deviceUrl);
      const welcome = second.hello({ deviceId: 'gone-1', token, epoch: 3 });
      const sessions = hub.app.devices.sessions as unknown as { attached: Map<string, unknown> };
      await waitFor('the hub to take the second HELLO', () => sessions.attached.has('gone-1') || null);
      store.release();
      // It used to answer at once with ackedSeq 0: the device sent seq 1 again, stamped anew, and it was stored twice.
      expect((await welcome).ackedSeq).toBe(1);
      second.send({ type: 'reading', seq: 1, ts: null, values: [{ alias: 2, kind: 'int', value: 5 }] });
      expect(await second.ackFor(1)).toBe(1);
      expect((await rowsOf(hub, 'gone-1')).map((r) => r.seq)).toEqual([1]);
      second.close();
      await second.closedWithin();
    } finally {
      await hub.dispose();
      dir.remove();
    }
  });

  it('§7.4 answers a failed write with BACKOFF STORE_BUSY, acks nothing, and stores the resend', async () => {
    const dir = tempDir();
    const store = new FailingSqliteStore(dir.path);
    const hub = await startHub({
      dataDir: dir.path,
      deps: { store, storeBusyPauseMs: 20, sink: (st) => new GroupCommitWriter(st, { retryMs: 20 }) },
    });
    try {
      const token = await provision(hub.app, 'fail-1');
      const d = await TestDevice.connect(hub.listening!.deviceUrl);
      await d.hello({ deviceId: 'fail-1', token });
      store.failures = 1;
      const ts = Date.now();
      d.send({ type: 'reading', seq: 1, ts, values: [{ alias: 2, kind: 'int', value: 1 }] });
      const backoff = await d.next('backoff', 'BACKOFF STORE_BUSY');
      expect(backoff).toMatchObject({ code: 'STORE_BUSY', pauseMs: 20 });
      expect(d.frames.filter((f) => f.type === 'ack')).toEqual([]);
      // The writer stops accepting, probes the store, and takes readings again once it answers.
      expect(hub.app.durability.sink.accepting).toBe(false);
      await waitFor('the writer to accept readings again', () => hub.app.durability.sink.accepting, 5000);
      // After the pause the device resends everything unacked, oldest first.
      d.send({ type: 'reading', seq: 1, ts, values: [{ alias: 2, kind: 'int', value: 1 }] });
      d.send({ type: 'reading', seq: 2, ts: ts + 1, values: [{ alias: 2, kind: 'int', value: 2 }] });
      expect(await d.ackFor(2)).toBe(2);
      expect((await rowsOf(hub, 'fail-1')).map((r) => r.seq)).toEqual([1, 2]);
      d.close();
      await d.closedWithin();
    } finally {
      await hub.dispose();
      dir.remove();
    }
  });
});

// Eight sockets: three flooding devices and five idle ones. Up to pauseAllSocketsUpTo sockets a spent budget
// pauses all of them (so a flood that starts on idle sockets is cut short in its first turn); past it, only the
// sockets that delivered frames recently (a pause costs system calls, which thousands of idle sockets add up to).
describe.each([
  { pauseAllSocketsUpTo: 256, paused: 'every socket' },
  { pauseAllSocketsUpTo: 4, paused: 'the flooding sockets only' },
])('device readings under a flood, $paused paused', ({ pauseAllSocketsUpTo }) => {
  let hub: TestHub;
  beforeAll(async () => {
    // A budget of 0 ms: after the first frame of each turn of the event loop, sockets wait for the next.
    hub = await startHub({ deps: { ingestTurnMs: 0, pauseAllSocketsUpTo } });
  });
  afterAll(async () => {
    await hub.dispose();
  });

  it('stops reading sockets for the rest of a turn once its ingest budget is spent, and loses nothing', async () => {
    // Idle devices connected beside the flood.
    const idle = await Promise.all(
      ['idle-1', 'idle-2', 'idle-3', 'idle-4', 'idle-5'].map(async (id) => {
        const token = await provision(hub.app, id);
        const d = await TestDevice.connect(hub.listening!.deviceUrl);
        await d.hello({ deviceId: id, token, epoch: 1 });
        return d;
      }),
    );
    const channel = hub.app.deviceChannel;
    const pausesBefore = channel.socketPauses;
    const turnsBefore = channel.pausedTurns;
    const devices = await Promise.all(
      ['flood-1', 'flood-2', 'flood-3'].map(async (id) => {
        const token = await provision(hub.app, id);
        const d = await TestDevice.connect(hub.listening!.deviceUrl);
        await d.hello({ deviceId: id, token, epoch: 1 });
        return { id, d };
      }),
    );
    const t0 = Date.now() - 60_000;
    // Every device writes all its frames at once, so the hub finds many frames ready in one turn.
    for (const { d } of devices) {
      for (let b = 0; b < 40; b++) {
        d.send({
          type: 'batch',
          readings: Array.from({ length: 10 }, (_, i) => ({
            seq: b * 10 + i + 1,
            ts: t0 + b * 10 + i,
            values: [{ alias: 0, kind: 'f32', value: i }],
          })),
        });
      }
    }
    for (const { d } of devices) expect(await d.ackFor(400)).toBe(400);
    const turns = channel.pausedTurns - turnsBefore;
    expect(turns).toBeGreaterThan(0);
    const pauses = channel.socketPauses - pausesBefore;
    expect(pauses).toBeGreaterThan(0);
    // Every socket: the idle ones too (eight a turn once all are connected). Flooding only: at most three.
    if (pauseAllSocketsUpTo >= 8) expect(pauses).toBeGreaterThan(3 * turns);
    else expect(pauses).toBeLessThanOrEqual(3 * turns);
    for (const d of idle) d.close();
    for (const { id } of devices) {
      const rows = await rowsOf(hub, id);
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    }
  });
});
