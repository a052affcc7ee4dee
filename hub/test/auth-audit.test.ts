/** The audit log: an entry for each auth action, the record() API, filters, pagination, retention. */
import { afterEach, describe, expect, it } from 'vitest';
import {
  authApp,
  BOOTSTRAP,
  bearer,
  GOOD_PASSWORD,
  login,
  ORIGIN,
  userWithSession,
  type AuthApp,
} from './auth-fixture.js';

let h: AuthApp;
afterEach(async () => h?.close());

const admin = bearer(BOOTSTRAP);

async function audit(h: AuthApp, query = '') {
  const res = await h.app.inject({ method: 'GET', url: `/api/v1/audit${query}`, headers: admin });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as { entries: Array<Record<string, unknown>>; nextCursor: string | null };
}

describe('audit entries', () => {
  it('records every auth action with time, actor, client address, target and outcome', async () => {
    h = await authApp();
    const start = h.clock.now();
    // user.create (by the bootstrap token), login, failed login, token create/revoke, session revoke, password change,
    // user update, logout, user delete.
    await h.app.inject({
      method: 'POST',
      url: '/api/v1/users',
      headers: admin,
      payload: { name: 'ada', role: 'operator', password: GOOD_PASSWORD, mustChangePassword: false },
    });
    const cookie = await login(h.app, 'ada', GOOD_PASSWORD);
    const headers = { cookie, origin: ORIGIN };
    await h.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      payload: { username: 'ada', password: 'wrong password!' },
      remoteAddress: '203.0.113.5',
    });
    const token = (
      await h.app.inject({ method: 'POST', url: '/api/v1/tokens', headers, payload: { name: 'ci' } })
    ).json();
    await h.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${token.id}`, headers });
    const second = await login(h.app, 'ada', GOOD_PASSWORD);
    const secondId = (await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: second } })).json()
      .session.id;
    await h.app.inject({ method: 'DELETE', url: `/api/v1/sessions/${secondId}`, headers });
    await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers,
      payload: { currentPassword: 'nope nope nope', password: 'a new long passphrase' },
    });
    await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers,
      payload: { currentPassword: GOOD_PASSWORD, password: 'a new long passphrase' },
    });
    await h.app.inject({ method: 'PATCH', url: '/api/v1/users/ada', headers: admin, payload: { role: 'viewer' } });
    await h.app.inject({ method: 'DELETE', url: '/api/v1/session', headers });
    await h.app.inject({ method: 'DELETE', url: '/api/v1/users/ada', headers: admin });

    const { entries } = await audit(h, '?limit=1000');
    const got = entries.map((e) => [e.action, e.actor, e.outcome]).reverse();
    expect(got).toEqual([
      ['user.create', 'system', 'success'], // the first admin, at first start
      ['user.create', 'admin-token', 'success'],
      ['login', 'ada', 'success'],
      ['login', null, 'failure'],
      ['token.create', 'ada', 'success'],
      ['token.revoke', 'ada', 'success'],
      ['login', 'ada', 'success'],
      ['session.revoke', 'ada', 'success'],
      ['password.change', 'ada', 'failure'],
      ['password.change', 'ada', 'success'],
      ['user.update', 'admin-token', 'success'],
      ['logout', 'ada', 'success'],
      ['user.delete', 'admin-token', 'success'],
    ]);
    const failed = entries.find((e) => e.action === 'login' && e.outcome === 'failure')!;
    expect(failed).toMatchObject({ client: '203.0.113.5', target: 'user:ada', at: start });
    expect(entries.find((e) => e.action === 'user.update')!.detail).toEqual({
      role: { from: 'operator', to: 'viewer' },
    });
    expect(entries.find((e) => e.action === 'token.create')!).toMatchObject({
      target: `token:${token.id}`,
      client: '127.0.0.1',
      actorKind: 'user',
    });
    expect(JSON.stringify(entries)).not.toContain(GOOD_PASSWORD);
    expect(JSON.stringify(entries)).not.toContain(token.token);
  });

  it('audit.record() takes actor and client from a request, and names the token a principal used', async () => {
    h = await authApp({
      routes: (app) =>
        app.post<{ Params: { id: string } }>(
          '/t/devices/:id/commands',
          { config: { role: 'operator' } },
          async (request) =>
            app.auth.audit.record({
              action: 'command.send',
              request,
              device: request.params.id,
              target: 'cmd-1',
              detail: { name: 'relay', idempotencyKey: 'k-1' },
            }),
        ),
    });
    const cookie = await userWithSession(h.app, 'ada', 'operator');
    const token = (
      await h.app.inject({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: { cookie, origin: ORIGIN },
        payload: { name: 'bot' },
      })
    ).json();
    const res = await h.app.inject({
      method: 'POST',
      url: '/t/devices/env-1/commands',
      headers: bearer(token.token),
      remoteAddress: '10.1.2.3',
    });
    expect(res.json()).toMatchObject({
      action: 'command.send',
      actor: 'ada',
      actorKind: 'token',
      client: '10.1.2.3',
      device: 'env-1',
      target: 'cmd-1',
      outcome: 'success',
      detail: { name: 'relay', idempotencyKey: 'k-1', token: token.id, tokenName: 'bot' },
    });
  });

  it('is for admins only', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'operator');
    const res = await h.app.inject({ method: 'GET', url: '/api/v1/audit', headers: { cookie } });
    expect(res.statusCode).toBe(403);
  });
});

describe('audit queries', () => {
  async function seed(h: AuthApp) {
    const log = h.app.auth.audit;
    for (let i = 0; i < 25; i++) {
      h.clock.advance(1000);
      log.record({
        action: i % 2 === 0 ? 'command.send' : 'device.update',
        actor: i % 3 === 0 ? 'ada' : 'bob',
        device: `env-${i % 5}`,
        client: '10.0.0.1',
      });
    }
  }

  it('filters by actor, device, action (exact or prefix.*) and time', async () => {
    h = await authApp();
    const t0 = h.clock.now();
    await seed(h);
    const byActor = (await audit(h, '?actor=ada&limit=1000')).entries;
    expect(byActor).toHaveLength(9);
    expect(byActor.every((e) => e.actor === 'ada')).toBe(true);
    const byDevice = (await audit(h, '?device=env-2&limit=1000')).entries;
    expect(byDevice.map((e) => e.device)).toEqual(Array(5).fill('env-2'));
    expect((await audit(h, '?action=device.update&limit=1000')).entries).toHaveLength(12);
    expect((await audit(h, '?action=device.*&limit=1000')).entries).toHaveLength(12);
    expect((await audit(h, '?action=command.*&device=env-0&limit=1000')).entries).toHaveLength(3);
    const window = (await audit(h, `?from=${t0 + 5000}&to=${t0 + 9000}&limit=1000`)).entries;
    expect(window.map((e) => e.at)).toEqual([9, 8, 7, 6, 5].map((s) => t0 + s * 1000));
    const iso = (await audit(h, `?from=${new Date(t0 + 24_000).toISOString()}`)).entries;
    expect(iso).toHaveLength(2);
    const bad = await h.app.inject({ method: 'GET', url: '/api/v1/audit?from=yesterday', headers: admin });
    expect(bad.statusCode).toBe(400);
  });

  it('pages newest first with a cursor, without gaps or repeats', async () => {
    h = await authApp();
    await seed(h);
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await audit(h, `?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...page.entries.map((e) => e.seq as number));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(4); // 26 entries (25 + the first admin's creation) in pages of 7
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
    expect(new Set(seen).size).toBe(26);
    const bad = await h.app.inject({ method: 'GET', url: '/api/v1/audit?cursor=abc', headers: admin });
    expect(bad.statusCode).toBe(400);
  });

  it('keeps entries for the retention and deletes older ones', async () => {
    h = await authApp({ settings: { auditRetentionDays: 30 } });
    h.app.auth.audit.record({ action: 'device.delete', actor: 'ada', device: 'old' });
    h.clock.advance(31 * 86_400_000);
    h.app.auth.audit.record({ action: 'device.delete', actor: 'ada', device: 'new' });
    const devices = (await audit(h, '?action=device.delete')).entries.map((e) => e.device);
    expect(devices).toEqual(['new']);
  });
});
