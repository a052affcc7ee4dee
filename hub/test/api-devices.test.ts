import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { auth, startHub, type TestHub } from './helpers.js';

describe('device provisioning API', () => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startHub({ listen: false });
  });
  afterEach(async () => {
    await hub.dispose();
  });

  it('creates a device, shows its token once and stores only its SHA-256', async () => {
    const res = await hub.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: auth,
      payload: { id: 'env-1', name: 'Env sensor 1', model: 'env-sensor', labels: { room: 'lab' } },
    });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({ id: 'env-1', name: 'Env sensor 1', model: 'env-sensor', labels: { room: 'lab' } });
    expect(body.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(typeof body.createdAt).toBe('number');

    const got = await hub.app.inject({ method: 'GET', url: '/api/v1/devices/env-1', headers: auth });
    expect(got.statusCode).toBe(200);
    expect(got.body).not.toContain(body.token);
    expect(got.json()).toMatchObject({
      id: 'env-1',
      transport: null,
      presence: { state: 'never', reason: null, since: null, lastSeen: null, remote: null },
      metrics: [],
      latest: {},
      ackedSeq: 0,
      dropped: 0,
    });
    const list = await hub.app.inject({ method: 'GET', url: '/api/v1/devices', headers: auth });
    expect(list.body).not.toContain(body.token);
    expect(list.json().devices.map((d: { id: string }) => d.id)).toEqual(['env-1']);

    // At rest: the registry holds a 32-byte hash, and the token appears nowhere in the database files.
    hub.app.devices.registry.flush();
    const db = new Database(join(hub.dataDir, 'hub.db'), { readonly: true });
    const row = db.prepare('SELECT token_hash FROM devices WHERE id = ?').get('env-1') as { token_hash: Buffer };
    db.close();
    const { createHash } = await import('node:crypto');
    expect(row.token_hash.equals(createHash('sha256').update(body.token).digest())).toBe(true);
    const { readFileSync, readdirSync } = await import('node:fs');
    const files = readdirSync(hub.dataDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    expect(files.length).toBeGreaterThan(0);
    for (const f of files)
      expect(readFileSync(join(f.parentPath, f.name)).includes(Buffer.from(body.token))).toBe(false);
  });

  it('answers 409 DEVICE_EXISTS for a second device with the same id', async () => {
    await hub.app.inject({ method: 'POST', url: '/api/v1/devices', headers: auth, payload: { id: 'dup' } });
    const res = await hub.app.inject({ method: 'POST', url: '/api/v1/devices', headers: auth, payload: { id: 'dup' } });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('DEVICE_EXISTS');
  });

  it('answers 400 INVALID_REQUEST naming the field', async () => {
    const badId = await hub.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: auth,
      payload: { id: 'no spaces' },
    });
    expect(badId.statusCode).toBe(400);
    expect(badId.json().error).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(badId.json().error.message).toContain('body/id');
    const unknown = await hub.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: auth,
      payload: { id: 'a', colour: 'red' },
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.message).toContain('colour');
    const badLabel = await hub.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: auth,
      payload: { id: 'a', labels: { room: { nested: true } } },
    });
    expect(badLabel.statusCode).toBe(400);
    expect(badLabel.json().error.message).toContain('body/labels/room');
    const missing = await hub.app.inject({ method: 'POST', url: '/api/v1/devices', headers: auth, payload: {} });
    expect(missing.json().error.message).toContain('"id"');
  });

  it('refuses requests without the admin token with 401 UNAUTHORIZED', async () => {
    for (const headers of [
      {},
      { authorization: 'Bearer wrong-token-of-some-length' },
      { authorization: 'Basic abc' },
    ]) {
      const res = await hub.app.inject({ method: 'GET', url: '/api/v1/devices', headers });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toContain('Bearer');
    }
    const post = await hub.app.inject({ method: 'POST', url: '/api/v1/devices', payload: { id: 'x' } });
    expect(post.statusCode).toBe(401);
    expect(hub.app.devices.registry.get('x')).toBeUndefined();
  });

  it('rotates a token, answers 404 DEVICE_NOT_FOUND for unknown ids, deletes with 204', async () => {
    const created = (
      await hub.app.inject({ method: 'POST', url: '/api/v1/devices', headers: auth, payload: { id: 'rot' } })
    ).json();
    const rotated = await hub.app.inject({ method: 'POST', url: '/api/v1/devices/rot/token', headers: auth });
    expect(rotated.statusCode).toBe(200);
    expect(rotated.json().id).toBe('rot');
    expect(rotated.json().token).not.toBe(created.token);
    expect(hub.app.devices.registry.authenticate('rot', created.token)).toBeNull();
    expect(hub.app.devices.registry.authenticate('rot', rotated.json().token)?.id).toBe('rot');

    for (const [method, url] of [
      ['GET', '/api/v1/devices/nope'],
      ['POST', '/api/v1/devices/nope/token'],
      ['DELETE', '/api/v1/devices/nope'],
      ['PATCH', '/api/v1/devices/nope'],
    ] as const) {
      const res = await hub.app.inject({
        method,
        url,
        headers: auth,
        ...(method === 'PATCH' ? { payload: { name: 'x' } } : {}),
      });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json().error.code).toBe('DEVICE_NOT_FOUND');
    }
    const del = await hub.app.inject({ method: 'DELETE', url: '/api/v1/devices/rot', headers: auth });
    expect(del.statusCode).toBe(204);
    expect((await hub.app.inject({ method: 'GET', url: '/api/v1/devices/rot', headers: auth })).statusCode).toBe(404);
  });

  it('updates name, labels and the disabled flag with PATCH', async () => {
    await hub.app.inject({ method: 'POST', url: '/api/v1/devices', headers: auth, payload: { id: 'p1' } });
    const res = await hub.app.inject({
      method: 'PATCH',
      url: '/api/v1/devices/p1',
      headers: auth,
      payload: { name: 'Pump', labels: { site: 'north' }, disabled: true },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: 'p1', name: 'Pump', labels: { site: 'north' }, disabled: true });
  });

  it('answers unknown API routes with 404 NOT_FOUND in the error format', async () => {
    const res = await hub.app.inject({ method: 'GET', url: '/api/v1/nothing-here', headers: auth });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('NOT_FOUND');
  });

  it('keeps devices across a restart', async () => {
    await hub.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: auth,
      payload: { id: 'keep', labels: { a: 'b' } },
    });
    const dataDir = hub.dataDir;
    await hub.app.close();
    const again = await startHub({ listen: false, dataDir });
    try {
      const res = await again.app.inject({ method: 'GET', url: '/api/v1/devices/keep', headers: auth });
      expect(res.json()).toMatchObject({ id: 'keep', labels: { a: 'b' } });
    } finally {
      await again.app.close();
    }
  });
});

describe('device changes reach those who follow the fleet', () => {
  it('emits a changed event for each device created, updated and deleted through the API', async () => {
    const hub = await startHub({ listen: false });
    try {
      const seen: string[] = [];
      hub.app.devices.sessions.events.on('changed', (e) => seen.push(`${e.deviceId}:${e.change}`));
      await hub.app.inject({ method: 'POST', url: '/api/v1/devices', headers: auth, payload: { id: 'ch-1' } });
      await hub.app.inject({
        method: 'PATCH',
        url: '/api/v1/devices/ch-1',
        headers: auth,
        payload: { name: 'Greenhouse' },
      });
      await hub.app.inject({ method: 'DELETE', url: '/api/v1/devices/ch-1', headers: auth });
      expect(seen).toEqual(['ch-1:created', 'ch-1:updated', 'ch-1:deleted']);
    } finally {
      await hub.dispose();
    }
  });
});

describe('strict request bodies (docs/api.md)', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startHub({ listen: false });
  });
  afterAll(async () => {
    await hub.dispose();
  });

  it('refuses a device id that is dots only, which no URL could address', async () => {
    for (const id of ['.', '..', '...']) {
      const res = await hub.app.inject({ method: 'POST', url: '/api/v1/devices', headers: auth, payload: { id } });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'INVALID_REQUEST' });
      expect(res.json().error.message).toContain('not dots only');
    }
    expect(
      (await hub.app.inject({ method: 'POST', url: '/api/v1/devices', headers: auth, payload: { id: 'a.b' } }))
        .statusCode,
    ).toBe(201);
  });

  it('does not coerce body types: {"id": 123} is refused, not stored as "123"', async () => {
    const res = await hub.app.inject({ method: 'POST', url: '/api/v1/devices', headers: auth, payload: { id: 123 } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toContain('body/id must be string');
    expect(hub.app.devices.registry.get('123')).toBeUndefined();
  });

  it('answers a text/plain body with 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const res = await hub.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: { ...auth, 'content-type': 'text/plain' },
      payload: 'id=x',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('still coerces path parameters and query strings, which arrive as text', async () => {
    const res = await hub.app.inject({ method: 'GET', url: '/api/v1/commands/7', headers: auth });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('COMMAND_NOT_FOUND');
  });
});

describe('data directory permissions', () => {
  it('tightens an existing 0755 data directory to 0700 and creates the databases 0600', async () => {
    const { mkdtempSync, chmodSync, statSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'tendril-perm-'));
    chmodSync(dir, 0o755);
    const h = await startHub({ listen: false, dataDir: dir });
    try {
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      for (const f of ['hub.db', 'readings.db']) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    } finally {
      await h.dispose();
    }
  });
});
