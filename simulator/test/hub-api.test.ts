import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubApi, HubApiError, hubEndpoints } from '../src/hub-api.js';
import { MODELS } from '../src/models/index.js';
import { startHub, type TestHub } from './hub-harness.js';

describe('hubEndpoints', () => {
  it('derives the API base and the device channel from http(s), ws(s) or host:port', () => {
    expect(hubEndpoints('http://127.0.0.1:8080')).toEqual({
      httpBase: 'http://127.0.0.1:8080',
      deviceUrl: 'ws://127.0.0.1:8080/v1/device',
    });
    expect(hubEndpoints('wss://hub.example:443/v1/device')).toEqual({
      httpBase: 'https://hub.example',
      deviceUrl: 'wss://hub.example/v1/device',
    });
    expect(hubEndpoints('localhost:9000').deviceUrl).toBe('ws://localhost:9000/v1/device');
    expect(() => hubEndpoints('ftp://x')).toThrow(/expected an http\(s\):\/\/ or ws\(s\):\/\/ URL/);
  });
});

describe('provisioning against the real hub', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startHub();
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('creates a device (201) and, when it exists (409), rotates its token instead', async () => {
    const api = new HubApi({ httpBase: hub.url, adminToken: hub.adminToken });
    try {
      const first = await api.provision({ id: 'env-0001', name: 'Env sensor 1', model: 'env-sensor' });
      expect(first.token.length).toBeGreaterThan(10);
      const again = await api.provision({ id: 'env-0001', name: 'Env sensor 1', model: 'env-sensor' });
      expect(again.token).not.toBe(first.token);
      const device = await api.getDevice('env-0001');
      expect(device).toMatchObject({ id: 'env-0001', name: 'Env sensor 1', model: 'env-sensor' });
    } finally {
      api.close();
    }
  });

  it("registers every model's command catalogue, and the hub then checks commands against it", async () => {
    const api = new HubApi({ httpBase: hub.url, adminToken: hub.adminToken });
    try {
      expect(await api.registerCommands(MODELS)).toBe(true);
      const list = await api.request('GET', '/api/v1/models');
      const models = (list.body as { models: Array<{ model: string; commands: Array<{ name: string }> }> }).models;
      expect(models.map((m) => m.model).sort()).toEqual(MODELS.map((m) => m.name).sort());
      const power = models.find((m) => m.model === 'power-meter')!;
      expect(power.commands.map((c) => c.name)).toEqual(['relay', 'set-interval', 'reboot', 'firmware-info']);
      const env = models.find((m) => m.model === 'env-sensor')!;
      expect(env.commands[0]!.name).toBe(MODELS.find((m) => m.name === 'env-sensor')!.switchName);

      await api.provision({ id: 'cat-0001', name: 'Catalogued', model: 'power-meter' });
      const bad = await api.request('POST', '/api/v1/devices/cat-0001/commands', {
        name: 'set-interval',
        args: { ms: 5 },
      });
      expect(bad.status).toBe(400);
      expect((bad.body as { error: { code: string } }).error.code).toBe('COMMAND_ARGS_INVALID');
      // allowUnlisted: free JSON still reaches the device.
      const free = await api.request('POST', '/api/v1/devices/cat-0001/commands', { name: 'ping', args: [1] });
      expect(free.status).toBe(202);
      // Registering again replaces, it does not fail.
      expect(await api.registerCommands(MODELS)).toBe(true);
    } finally {
      api.close();
    }
  });

  it('provisions many devices with bounded concurrency, in order', async () => {
    const api = new HubApi({ httpBase: hub.url, adminToken: hub.adminToken, concurrency: 4 });
    try {
      const wanted = Array.from({ length: 30 }, (_, i) => ({
        id: `bulk-${i}`,
        name: `Bulk ${i}`,
        model: 'power-meter',
      }));
      const done: number[] = [];
      const result = await api.provisionAll(wanted, (n) => done.push(n));
      expect(result.map((d) => d.id)).toEqual(wanted.map((d) => d.id));
      expect(new Set(result.map((d) => d.token)).size).toBe(30);
      expect(done.at(-1)).toBe(30);
    } finally {
      api.close();
    }
  });

  it('a wrong admin token fails with 401 and says what to do', async () => {
    const api = new HubApi({ httpBase: hub.url, adminToken: 'not-the-admin-token-at-all' });
    try {
      const error = await api.provision({ id: 'x-1', name: 'x', model: 'env-sensor' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HubApiError);
      expect((error as HubApiError).status).toBe(401);
      expect((error as Error).message).toMatch(/--token or HUB_ADMIN_TOKEN/);
    } finally {
      api.close();
    }
  });

  it('an unreachable hub fails with a network error that names the address', async () => {
    const api = new HubApi({ httpBase: 'http://127.0.0.1:1', adminToken: 'whatever-token-123456' });
    try {
      await expect(api.provision({ id: 'x-1', name: 'x', model: 'env-sensor' })).rejects.toThrow(
        /is the hub running at http:\/\/127.0.0.1:1/,
      );
    } finally {
      api.close();
    }
  });
});
