import { afterEach, expect, it } from 'vitest';
import { auth, provision, startHub, type TestHub } from './helpers.js';

let hub: TestHub | undefined;
afterEach(async () => {
  await hub?.dispose();
  hub = undefined;
});

it('GET / answers a browser with a page that points to the device channel and the API, and shows no fleet data', async () => {
  hub = await startHub({ listen: false });
  await provision(hub.app, 'secret-device-name');
  const res = await hub.app.inject({ method: 'GET', url: '/' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
  expect(res.body).toContain('/v1/device');
  expect(res.body).toContain('/api/v1/devices');
  expect(res.body).not.toContain('secret-device-name'); // unauthenticated: nothing about the fleet
  // The API itself still wants the token.
  expect((await hub.app.inject({ method: 'GET', url: '/api/v1/devices' })).statusCode).toBe(401);
  expect((await hub.app.inject({ method: 'GET', url: '/api/v1/devices', headers: auth })).statusCode).toBe(200);
});
