/**
 * The command HTTP API without devices (docs/commands.md): the Command object, limits and bad parameters,
 * idempotency keys, listing and pagination, authentication, metrics, and the error codes' documentation.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HTTP_ERRORS } from '../src/errors.js';

/** The command codes of the hub's one HTTP error registry. */
const COMMAND_HTTP_ERRORS = HTTP_ERRORS.filter(
  (e) => e.code.startsWith('COMMAND_') || e.code === 'IDEMPOTENCY_CONFLICT',
);
import { COMMAND_LIMITS } from '../src/commands/model.js';
import { auth, provision, startHub, type TestHub } from './helpers.js';

const commandsDoc = readFileSync(new URL('../../docs/commands.md', import.meta.url), 'utf8');

describe('command API', () => {
  let hub: TestHub;
  const clock = { t: Date.UTC(2025, 5, 1, 12, 0, 0), now: () => clock.t };

  beforeEach(async () => {
    clock.t = Date.UTC(2025, 5, 1, 12, 0, 0);
    hub = await startHub({ listen: false, deps: { clock } });
    await provision(hub.app, 'dev-1');
    await provision(hub.app, 'dev-2');
  });
  afterEach(async () => {
    await hub.dispose();
  });

  const post = (deviceId: string, payload: unknown) =>
    hub.app.inject({
      method: 'POST',
      url: `/api/v1/devices/${deviceId}/commands`,
      headers: auth,
      payload: payload as object,
    });
  const get = (url: string) => hub.app.inject({ method: 'GET', url, headers: auth });

  it('cancels a queued command (operator), records who did it, and refuses to cancel one already final', async () => {
    const first = (await post('dev-1', { name: 'reboot' })).json();
    const second = (await post('dev-1', { name: 'set-interval', args: { ms: 1 } })).json();
    const cancel = (id: number) =>
      hub.app.inject({ method: 'POST', url: `/api/v1/commands/${id}/cancel`, headers: auth });
    const res = await cancel(second.id);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: second.id, state: 'cancelled', detail: 'CANCELLED by admin-token' });
    expect(res.json().history.map((h: { state: string }) => h.state)).toEqual(['queued', 'cancelled']);
    const again = await cancel(second.id);
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('COMMAND_NOT_CANCELLABLE');
    expect((await cancel(999_999)).json().error.code).toBe('COMMAND_NOT_FOUND');
    // The other command stays queued, and cancelled ones can be listed by state.
    expect((await get(`/api/v1/commands/${first.id}`)).json().state).toBe('queued');
    expect(
      (await get('/api/v1/devices/dev-1/commands?state=cancelled')).json().commands.map((c: { id: number }) => c.id),
    ).toEqual([second.id]);
    // The audit log has who sent and who cancelled, with the device and the idempotency key.
    const audit = (await get('/api/v1/audit?device=dev-1')).json();
    const actions = audit.entries.map(
      (e: { action: string; actor: string; outcome: string }) => `${e.action}:${e.actor}:${e.outcome}`,
    );
    expect(actions).toEqual(
      expect.arrayContaining(['command.send:admin-token:success', 'command.cancel:admin-token:success']),
    );
    expect(first.requestedBy).toBe('admin-token');
  });

  it('audits device provisioning, changes, token rotation and deletion', async () => {
    await hub.app.inject({ method: 'PATCH', url: '/api/v1/devices/dev-2', headers: auth, payload: { disabled: true } });
    await hub.app.inject({ method: 'POST', url: '/api/v1/devices/dev-2/token', headers: auth });
    await hub.app.inject({ method: 'DELETE', url: '/api/v1/devices/dev-2', headers: auth });
    const audit = (await get('/api/v1/audit?device=dev-2')).json();
    expect(audit.entries.map((e: { action: string }) => e.action).sort()).toEqual([
      'device.delete',
      'device.disable',
      'device.provision',
      'device.token.rotate',
    ]);
  });

  it('queues a command for an offline device: 202 with the whole Command object and a Location', async () => {
    const res = await post('dev-1', { name: 'set-interval', args: { ms: 5000 }, ttlMs: 60_000, timeoutMs: 10_000 });
    expect(res.statusCode).toBe(202);
    const command = res.json();
    expect(command).toEqual({
      id: expect.any(Number),
      deviceId: 'dev-1',
      name: 'set-interval',
      args: { ms: 5000 },
      state: 'queued',
      detail: null,
      result: null,
      requestedBy: 'admin-token',
      idempotencyKey: null,
      createdAt: clock.t,
      expiresAt: clock.t + 60_000,
      timeoutMs: 10_000,
      history: [{ state: 'queued', at: clock.t }],
    });
    expect(res.headers.location).toBe(`/api/v1/commands/${command.id}`);
    const again = await get(`/api/v1/commands/${command.id}`);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(command);
  });

  it('applies the defaults: no args, TTL 1 h, timeout 30 s', async () => {
    const command = (await post('dev-1', { name: 'reboot' })).json();
    expect(command).toMatchObject({ args: null, expiresAt: clock.t + 3_600_000, timeoutMs: 30_000 });
  });

  it('takes names up to 64 bytes of UTF-8 and refuses longer ones with COMMAND_NAME_TOO_LONG', async () => {
    expect((await post('dev-1', { name: 'n'.repeat(64) })).statusCode).toBe(202);
    const tooLong = await post('dev-1', { name: 'é'.repeat(33) }); // 33 characters, 66 bytes
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.json().error.code).toBe('COMMAND_NAME_TOO_LONG');
    expect(tooLong.json().error.message).toMatch(/66 bytes .* limit is 64 bytes/);
    const empty = await post('dev-1', { name: '' });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().error).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(empty.json().error.message).toContain('body/name');
    // JSON can carry a lone surrogate, which UTF-8 cannot: the COMMAND frame could never be encoded.
    const lone = await post('dev-1', { name: 'relay\ud800' });
    expect(lone.statusCode).toBe(400);
    expect(lone.json().error).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(lone.json().error.message).toContain('surrogate');
  });

  it('takes args up to 4096 bytes of JSON text and refuses more with COMMAND_ARGS_TOO_LARGE', async () => {
    const fits = { s: 'x'.repeat(4096 - '{"s":""}'.length) };
    expect(JSON.stringify(fits).length).toBe(4096);
    expect((await post('dev-1', { name: 'load', args: fits })).statusCode).toBe(202);
    const over = await post('dev-1', { name: 'load', args: { s: fits.s + 'x' } });
    expect(over.statusCode).toBe(400);
    expect(over.json().error.code).toBe('COMMAND_ARGS_TOO_LARGE');
    expect(over.json().error.message).toContain('4097 bytes');
  });

  it('refuses TTLs and timeouts outside their ranges, and bad fields, with INVALID_REQUEST naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: 'x', ttlMs: COMMAND_LIMITS.minTtlMs - 1 }, 'body/ttlMs'],
      [{ name: 'x', ttlMs: COMMAND_LIMITS.maxTtlMs + 1 }, 'body/ttlMs'],
      [{ name: 'x', ttlMs: 1500.5 }, 'body/ttlMs'],
      [{ name: 'x', timeoutMs: COMMAND_LIMITS.minTimeoutMs - 1 }, 'body/timeoutMs'],
      [{ name: 'x', timeoutMs: COMMAND_LIMITS.maxTimeoutMs + 1 }, 'body/timeoutMs'],
      [{ name: 'x', idempotencyKey: 'has space' }, 'body/idempotencyKey'],
      [{ name: 'x', idempotencyKey: 'k'.repeat(129) }, 'body/idempotencyKey'],
      [{ name: 'x', colour: 'red' }, 'colour'],
      [{ args: {} }, '"name"'],
      [{ name: { text: 'reboot' } }, 'body/name'],
    ];
    for (const [payload, field] of cases) {
      const res = await post('dev-1', payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error.code).toBe('INVALID_REQUEST');
      expect(res.json().error.message, JSON.stringify(payload)).toContain(field);
    }
    // The edges are accepted.
    expect(
      (await post('dev-1', { name: 'x', ttlMs: COMMAND_LIMITS.maxTtlMs, timeoutMs: COMMAND_LIMITS.minTimeoutMs }))
        .statusCode,
    ).toBe(202);
    expect(
      (await post('dev-1', { name: 'x', ttlMs: COMMAND_LIMITS.minTtlMs, timeoutMs: COMMAND_LIMITS.maxTimeoutMs }))
        .statusCode,
    ).toBe(202);
  });

  it('answers 404 DEVICE_NOT_FOUND for an unknown device and 404 COMMAND_NOT_FOUND for an unknown command', async () => {
    const postUnknown = await post('ghost', { name: 'reboot' });
    expect(postUnknown.statusCode).toBe(404);
    expect(postUnknown.json().error.code).toBe('DEVICE_NOT_FOUND');
    const listUnknown = await get('/api/v1/devices/ghost/commands');
    expect(listUnknown.statusCode).toBe(404);
    expect(listUnknown.json().error.code).toBe('DEVICE_NOT_FOUND');
    const missing = await get('/api/v1/commands/999999');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('COMMAND_NOT_FOUND');
    const notAnId = await get('/api/v1/commands/abc');
    expect(notAnId.statusCode).toBe(400);
    expect(notAnId.json().error.code).toBe('INVALID_REQUEST');
  });

  it('with an idempotency key: the same request gives the same command (200), a different one 409, and the key is free again after 24 h', async () => {
    const body = { name: 'set-interval', args: { ms: 5000, unit: 'ms' }, idempotencyKey: 'op-7f3a' };
    const first = await post('dev-1', body);
    expect(first.statusCode).toBe(202);
    expect(first.json().idempotencyKey).toBe('op-7f3a');
    clock.t += 60_000;
    // The same arguments with their keys in another order are the same request.
    const repeat = await post('dev-1', { ...body, args: { unit: 'ms', ms: 5000 } });
    expect(repeat.statusCode).toBe(200);
    expect(repeat.json()).toEqual(first.json());

    const conflict = await post('dev-1', { ...body, args: { ms: 6000, unit: 'ms' } });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json().error.code).toBe('IDEMPOTENCY_CONFLICT');
    expect(conflict.json().error.message).toContain(`command ${first.json().id}`);
    expect(conflict.json().error.message).toContain('args');
    const otherTimeout = await post('dev-1', { ...body, timeoutMs: 5000 });
    expect(otherTimeout.statusCode).toBe(409);
    expect(otherTimeout.json().error.message).toContain('timeoutMs');

    // Keys are per device.
    const otherDevice = await post('dev-2', body);
    expect(otherDevice.statusCode).toBe(202);
    expect(otherDevice.json().id).not.toBe(first.json().id);

    clock.t += 24 * 3_600_000;
    const later = await post('dev-1', body);
    expect(later.statusCode).toBe(202);
    expect(later.json().id).toBeGreaterThan(otherDevice.json().id);
  });

  it("lists a device's commands newest first, filtered by state, in pages", async () => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await post('dev-1', { name: `c${i}` })).json().id);
      clock.t += 1000;
    }
    await post('dev-2', { name: 'elsewhere' });
    const all = (await get('/api/v1/devices/dev-1/commands')).json();
    expect(all.commands.map((c: { id: number }) => c.id)).toEqual([...ids].reverse());
    expect(all.nextBefore).toBeNull();

    const page1 = (await get('/api/v1/devices/dev-1/commands?limit=2')).json();
    expect(page1.commands.map((c: { name: string }) => c.name)).toEqual(['c4', 'c3']);
    expect(page1.nextBefore).toBe(ids[3]);
    const page2 = (await get(`/api/v1/devices/dev-1/commands?limit=2&before=${page1.nextBefore}`)).json();
    expect(page2.commands.map((c: { name: string }) => c.name)).toEqual(['c2', 'c1']);
    const page3 = (await get(`/api/v1/devices/dev-1/commands?limit=2&before=${page2.nextBefore}`)).json();
    expect(page3.commands.map((c: { name: string }) => c.name)).toEqual(['c0']);
    expect(page3.nextBefore).toBeNull();

    const queued = (await get('/api/v1/devices/dev-1/commands?state=queued,sent')).json();
    expect(queued.commands).toHaveLength(5);
    expect((await get('/api/v1/devices/dev-1/commands?state=succeeded')).json().commands).toEqual([]);

    for (const bad of ['state=done', 'limit=0', `limit=${COMMAND_LIMITS.maxPageSize + 1}`, 'before=x', 'colour=red']) {
      const res = await get(`/api/v1/devices/dev-1/commands?${bad}`);
      expect(res.statusCode, bad).toBe(400);
      expect(res.json().error.code).toBe('INVALID_REQUEST');
    }
    expect((await get('/api/v1/devices/dev-1/commands?state=done')).json().error.message).toContain(
      '"done" is not a command state',
    );
  });

  it('refuses the 1001st unfinished command of a device with 429 COMMAND_QUEUE_FULL', async () => {
    const { commands } = hub.app;
    const { registry } = hub.app.devices;
    // One outer transaction around the real submit path: one fsync instead of a thousand.
    registry.db.transaction(() => {
      for (let i = 0; i < COMMAND_LIMITS.maxUnfinishedPerDevice; i++)
        commands.submit({ deviceId: 'dev-1', name: 'fill', requestedBy: 'admin' });
    })();
    expect(commands.unfinishedCount('dev-1')).toBe(1000);
    const full = await post('dev-1', { name: 'one-more' });
    expect(full.statusCode).toBe(429);
    expect(full.json().error.code).toBe('COMMAND_QUEUE_FULL');
    expect(full.json().error.message).toContain('1000 unfinished commands');
    // Other devices are not affected.
    expect((await post('dev-2', { name: 'fine' })).statusCode).toBe(202);
  });

  it('requires the admin token on every command route', async () => {
    const routes = [
      { method: 'POST' as const, url: '/api/v1/devices/dev-1/commands', payload: { name: 'reboot' } },
      { method: 'GET' as const, url: '/api/v1/devices/dev-1/commands' },
      { method: 'GET' as const, url: '/api/v1/commands/1' },
    ];
    for (const route of routes) {
      for (const headers of [{}, { authorization: 'Bearer not-the-admin-token-at-all' }]) {
        const res = await hub.app.inject({ ...route, headers });
        expect(res.statusCode, `${route.method} ${route.url}`).toBe(401);
        expect(res.json().error.code).toBe('UNAUTHORIZED');
      }
    }
    expect(hub.app.commands.unfinishedCount('dev-1')).toBe(0);
  });

  it('counts each state reached in tendril_commands_total', async () => {
    await post('dev-1', { name: 'a' });
    await post('dev-1', { name: 'b', ttlMs: 1000 });
    const metrics = (await hub.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^tendril_commands_total\{state="queued"\} 2$/m);
    expect(metrics).toMatch(/^tendril_commands_total\{state="succeeded"\} 0$/m);
    expect(metrics).toMatch(/^tendril_commands_unfinished 2$/m);
  });

  it('deleting a device deletes its commands; command ids are never reused', async () => {
    const first = (await post('dev-1', { name: 'a' })).json();
    expect((await hub.app.inject({ method: 'DELETE', url: '/api/v1/devices/dev-1', headers: auth })).statusCode).toBe(
      204,
    );
    expect((await get(`/api/v1/commands/${first.id}`)).json().error.code).toBe('COMMAND_NOT_FOUND');
    await provision(hub.app, 'dev-1');
    const next = (await post('dev-1', { name: 'a' })).json();
    expect(next.id).toBeGreaterThan(first.id);
    expect((await get('/api/v1/devices/dev-1/commands')).json().commands.map((c: { id: number }) => c.id)).toEqual([
      next.id,
    ]);
  });
});

describe('command error codes', () => {
  it.each(COMMAND_HTTP_ERRORS.map((e) => [e.code, e] as const))(
    '%s is documented in docs/commands.md with its status',
    (code, info) => {
      const row = commandsDoc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
      expect(row, `docs/commands.md has no table row for ${code}`).toBeDefined();
      expect(row!.split('|')[2]!.trim()).toBe(String(info.status));
    },
  );

  it('documents the hub codes the command routes also answer with', () => {
    for (const code of ['INVALID_REQUEST', 'UNAUTHORIZED', 'DEVICE_NOT_FOUND']) {
      expect(
        commandsDoc.split('\n').some((l) => l.startsWith(`| \`${code}\` |`)),
        code,
      ).toBe(true);
    }
  });

  it('has unique codes, each with a one-line meaning', () => {
    const codes = COMMAND_HTTP_ERRORS.map((e) => e.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const e of COMMAND_HTTP_ERRORS) expect(e.meaning).toMatch(/^\S.*\.$/);
  });
});
