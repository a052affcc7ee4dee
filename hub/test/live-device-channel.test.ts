/**
 * The live channel on the real hub (buildHub: durability, devices, commands, device channel), fed by a real
 * SDK device over the device channel: device SDK -> hub -> live client. app.ts registers the plugin with no
 * options: it reads the hub's decorators and authenticates with app.auth.
 */
import { TendrilDevice } from '@tendril/device-sdk';
import WebSocket from 'ws';
import { afterEach, expect, it } from 'vitest';
import { buildHub } from '../src/app.js';
import { listenHub } from '../src/server.js';
import { ADMIN_TOKEN, auth, provision, tempDir, testConfig, waitFor } from './helpers.js';
import { FleetModel, LiveTestClient } from './live-helpers.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

it('a reading, presence and a command of an SDK device reach a live client as they happen', async () => {
  const dir = tempDir('tendril-live-e2e-');
  cleanup.push(() => dir.remove());
  const config = testConfig(dir.path);
  // buildHub registers the live plugin (app.ts); the admin token authenticates in the first message.
  const app = buildHub(config);
  const listening = await listenHub(app, config);
  cleanup.push(() => app.close());
  const token = await provision(app, 'env-1', { name: 'Env 1', model: 'env-sensor' });

  const live = await LiveTestClient.connect(listening.url.replace('http', 'ws') + '/v1/live');
  cleanup.push(() => live.close());
  live.send({ type: 'auth', token: ADMIN_TOKEN });
  expect((await live.next((m) => m.type === 'auth_ok', 'auth_ok')).principal).toEqual({
    kind: 'bootstrap',
    name: 'admin-token',
    role: 'admin',
  });
  await live.subscribe({ id: 1, stream: 'fleet' });
  await live.subscribe({ id: 2, stream: 'device', devices: ['env-1'] });
  await live.subscribe({ id: 3, stream: 'commands', devices: ['env-1'] });
  const model = new FleetModel();

  const device = new TendrilDevice({
    url: listening.deviceUrl,
    deviceId: 'env-1',
    token,
    metrics: [{ name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 }],
    WebSocket: WebSocket as never,
    wsOptions: { perMessageDeflate: false },
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
  });
  device.onCommand('relay', async (args) => ({ on: (args as { on: boolean }).on }));
  cleanup.push(() => device.close());
  device.start();

  // Presence: online over ws, with the declarations of its HELLO.
  const online = await live.next(
    (m) => m.id === 1 && m.event?.kind === 'presence' && m.event.presence.state === 'online',
    'env-1 online on the fleet',
  );
  expect(online.event).toMatchObject({ deviceId: 'env-1', transport: 'ws', presence: { reason: null } });
  const declared = await live.next((m) => m.id === 1 && m.event?.kind === 'device', 'env-1 declarations on the fleet');
  expect(declared.event.device.metrics).toEqual([{ name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 }]);

  // A reading reaches the device subscription once durable, and the fleet's latest values.
  const ts = Date.now();
  device.send({ temperature: 21.5 }, ts);
  const reading = await live.next((m) => m.id === 2 && m.event?.kind === 'readings', 'the reading of env-1');
  expect(reading.event).toEqual({
    kind: 'readings',
    deviceId: 'env-1',
    readings: [{ seq: expect.any(Number), ts, values: { temperature: 21.5 } }],
  });
  await live.next((m) => m.id === 1 && m.event?.kind === 'values', 'the latest value of env-1');

  // A command's lifecycle, live.
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/devices/env-1/commands',
    headers: auth,
    payload: { name: 'relay', args: { on: true } },
  });
  expect(res.statusCode).toBe(202);
  const done = await live.next(
    (m) => m.id === 3 && m.event?.kind === 'command' && m.event.command.state === 'succeeded',
    'the command succeeded',
  );
  expect(done.event.command.result).toEqual({ on: true });
  expect(live.events(3, 'command').map((m) => m.event.command.state)).toContain('queued');

  // /metrics shows the live channel (docs/live.md §11).
  const metrics = (await app.inject({ method: 'GET', url: '/metrics', headers: auth })).body;
  expect(metrics).toMatch(/^tendril_live_clients 1$/m);
  expect(metrics).toMatch(/^tendril_live_subscriptions\{stream="device"\} 1$/m);
  expect(Number(/^tendril_live_messages_sent_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(5);

  // Offline with its reason.
  await device.close();
  const offline = await live.next(
    (m) => m.id === 1 && m.event?.kind === 'presence' && m.event.presence.state === 'offline',
    'env-1 offline',
  );
  expect(offline.event.presence.reason).toBe('CLOSED');
  for (const m of live.events(1)) model.apply(m);
  expect(model.rows.get('env-1')).toMatchObject({
    transport: 'ws',
    presence: { state: 'offline', reason: 'CLOSED' },
    latest: { temperature: { ts, value: 21.5 } },
  });
  await waitFor('the live client still open', () => !live.isClosed);
});

it('with the hub auth plugin: a token in the first message, an Origin of another site refused, a revoked token closed', async () => {
  const dir = tempDir('tendril-live-auth-');
  cleanup.push(() => dir.remove());
  const config = testConfig(dir.path);
  // As app.ts registers it, with no options: app.auth authenticates, the hub's decorators feed the streams.
  const app = buildHub(config);
  const listening = await listenHub(app, config);
  cleanup.push(() => app.close());
  const url = `${listening.url.replace('http', 'ws')}/v1/live`;

  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: auth,
    payload: { name: 'live-test', role: 'viewer' },
  });
  expect(created.statusCode).toBe(201);
  const { token, id } = created.json() as { token: string; id: string };

  const refused = await LiveTestClient.connect(url, { origin: 'https://evil.example' }).then(
    () => 'accepted',
    (err: Error) => err.message,
  );
  expect(refused).toBe('upgrade refused with HTTP 403');

  const bad = await LiveTestClient.connect(url);
  cleanup.push(() => bad.close());
  bad.send({ type: 'auth', token: 'not-a-token' });
  expect((await bad.closed).code).toBe(1008);

  const c = await LiveTestClient.connect(url, { origin: listening.url });
  cleanup.push(() => c.close());
  expect((await c.next((m) => m.type === 'hello', 'hello')).auth).toBe('required');
  c.send({ type: 'auth', token });
  const ok = await c.next((m) => m.type === 'auth_ok', 'auth_ok');
  expect(ok.principal.role).toBe('viewer');
  await c.subscribe({ id: 1, stream: 'health' });

  const revoked = await app.inject({ method: 'DELETE', url: `/api/v1/tokens/${id}`, headers: auth });
  expect(revoked.statusCode).toBeLessThan(300);
  expect(await c.closed).toEqual({ code: 1008, reason: 'UNAUTHORIZED' });
});
