/** Device channel: acceptance, validation, duplicates, epochs (docs/protocol.md §5–§7). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDevice } from './device-client.js';
import { auth, provision, startHub, type TestHub } from './helpers.js';

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
    const token = hub.app.tendril.registry.get(id) ? (await hub.app.inject({ method: 'POST', url: `/api/v1/devices/${id}/token`, headers: auth })).json().token : await provision(hub.app, id);
    const d = await TestDevice.connect(url);
    await d.hello({ deviceId: id, token, epoch });
    return d;
  }

  async function rows(deviceId: string): Promise<Array<{ metric: string; seq: number; value: unknown }>> {
    const db = (hub.app.tendril.store as unknown as { db: import('better-sqlite3').Database }).db;
    return db
      .prepare('SELECT s.metric, x.seq, x.value FROM samples x JOIN series s ON s.id = x.series WHERE s.device_id = ? ORDER BY x.seq, s.metric')
      .all(deviceId) as Array<{ metric: string; seq: number; value: unknown }>;
  }

  it('stores timed, untimed and batched readings and acks them cumulatively', async () => {
    const d = await device('r-1');
    const t0 = Date.now() - 10_000;
    d.send({ type: 'reading', seq: 1, ts: t0, values: [{ alias: 0, kind: 'f32', value: 21.5 }, { alias: 3, kind: 'bool', value: true }] });
    d.send({ type: 'reading', seq: 2, ts: null, values: [{ alias: 2, kind: 'int', value: -7 }] });
    d.send({
      type: 'batch',
      readings: [
        { seq: 3, ts: t0 + 1000, values: [{ alias: 1, kind: 'f64', value: 55.25 }] },
        { seq: 4, ts: t0 + 2000, values: [{ alias: 4, kind: 'string', value: 'ok' }] },
      ],
    });
    expect(await d.ackFor(4)).toBe(4);
    expect(await rows('r-1')).toEqual([
      { metric: 'door', seq: 1, value: 1 },
      { metric: 'temperature', seq: 1, value: 21.5 },
      { metric: 'count', seq: 2, value: -7 },
      { metric: 'humidity', seq: 3, value: 55.25 },
      { metric: 'label', seq: 4, value: 'ok' },
    ]);
    const view = (await hub.app.inject({ method: 'GET', url: '/api/v1/devices/r-1', headers: auth })).json();
    expect(view).toMatchObject({ ackedSeq: 4, epoch: 1, transport: 'ws', presence: { state: 'online' } });
    expect(view.latest).toMatchObject({ temperature: { ts: t0, value: 21.5 }, door: { value: true }, count: { value: -7 }, label: { value: 'ok' } });
    d.close();
    await d.closedWithin();
  });
});
