/** Browser sessions: first admin, cookie flags, rotation, idle and absolute expiry, logout, revocation, Origin. */
import { readFileSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { liveAuthOptions } from '../src/auth/index.js';
import {
  authApp,
  BOOTSTRAP,
  bearer,
  GOOD_PASSWORD,
  login,
  ORIGIN,
  sessionCookie,
  userWithSession,
  type AuthApp,
} from './auth-fixture.js';

let h: AuthApp;
afterEach(async () => h?.close());

describe('first start', () => {
  it('creates admin with a generated password in initial-admin-password (0600) that must be changed at first login', async () => {
    h = await authApp();
    const file = join(h.dataDir, 'initial-admin-password');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(h.adminPassword);
    expect(h.adminPassword.length).toBeGreaterThanOrEqual(20);
    // The database with the password hashes is the hub account's only, whoever created it.
    expect(statSync(join(h.dataDir, 'hub.db')).mode & 0o777).toBe(0o600);

    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      payload: { username: 'admin', password: h.adminPassword },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ user: { name: 'admin', role: 'admin', mustChangePassword: true } });
    const cookie = sessionCookie(res)!;

    // Until the password is changed, only /me, logout and the own password change are open.
    const blocked = await h.app.inject({ method: 'GET', url: '/api/v1/users', headers: { cookie } });
    expect(blocked.statusCode).toBe(403);
    expect(blocked.json().error.code).toBe('PASSWORD_CHANGE_REQUIRED');
    const me = await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie } });
    expect(me.json().user).toEqual({ name: 'admin', role: 'admin', mustChangePassword: true });

    const change = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/admin',
      headers: { cookie, origin: ORIGIN },
      payload: { currentPassword: h.adminPassword, password: GOOD_PASSWORD },
    });
    expect(change.statusCode).toBe(200);
    expect(change.json().user.mustChangePassword).toBe(false);
    expect(existsSync(file)).toBe(false);
    const after = await h.app.inject({ method: 'GET', url: '/api/v1/users', headers: { cookie } });
    expect(after.statusCode).toBe(200);
  });

  it('does not create another admin when users exist', async () => {
    h = await authApp();
    const dataDir = h.dataDir;
    await h.app.close();
    h.db.close();
    const again = await authApp({ dataDir });
    try {
      expect(again.adminPassword).toBe('');
      expect(again.app.auth.users.list().map((u) => u.name)).toEqual(['admin']);
    } finally {
      await again.close();
    }
  });
});

describe('session cookie', () => {
  it('is HttpOnly, SameSite=Strict, Path=/, not Secure, named tendril_session on plain http', async () => {
    h = await authApp();
    await userWithSession(h.app, 'ada', 'viewer');
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      payload: { username: 'ada', password: GOOD_PASSWORD },
    });
    const header = String(res.headers['set-cookie']);
    expect(header).toMatch(/^tendril_session=[A-Za-z0-9_-]{43};/);
    expect(header).toMatch(/; HttpOnly/);
    expect(header).toMatch(/; SameSite=Strict/);
    expect(header).toMatch(/; Path=\//);
    expect(header).not.toMatch(/Secure/);
    expect(header).toMatch(/Max-Age=604800/);
  });

  it('is Secure with the __Host- prefix when the hub serves TLS', async () => {
    h = await authApp({ tls: true });
    await userWithSession(h.app, 'ada', 'viewer');
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      payload: { username: 'ada', password: GOOD_PASSWORD },
    });
    const header = String(res.headers['set-cookie']);
    expect(header).toMatch(/^__Host-tendril_session=[A-Za-z0-9_-]{43};/);
    expect(header).toMatch(/; Secure/);
    expect(header).toMatch(/; HttpOnly/);
    expect(header).toMatch(/; SameSite=Strict/);
    expect(header).toMatch(/; Path=\//);
    expect(header).not.toMatch(/Domain=/);
  });

  it('stores only a hash of the cookie secret', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'viewer');
    const secret = cookie.split('=')[1]!;
    const dump = JSON.stringify(h.db.prepare('SELECT * FROM auth_sessions').all());
    expect(dump).not.toContain(secret);
  });
});

describe('login', () => {
  it('gives a new session id at every login and ends the session the browser held', async () => {
    h = await authApp();
    const first = await userWithSession(h.app, 'ada', 'viewer');
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      headers: { cookie: first },
      payload: { username: 'ada', password: GOOD_PASSWORD },
    });
    const second = sessionCookie(res)!;
    expect(second).not.toBe(first);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie: first } })).statusCode).toBe(401);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie: second } })).statusCode).toBe(200);
    expect(h.app.auth.sessions.list('ada')).toHaveLength(1);
  });

  it('resolves the principal from the cookie', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'operator');
    const res = await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie } });
    expect(res.json().principal).toMatchObject({ kind: 'user', name: 'ada', role: 'operator' });
  });
});

describe('bounds', () => {
  it('keeps at most 50 sessions per user (the oldest end first) and deletes expired ones at the next login', async () => {
    h = await authApp({ settings: { sessionIdleMs: 60 * 60_000, sessionAbsoluteMs: 24 * 3_600_000 } });
    await userWithSession(h.app, 'ada', 'viewer');
    await userWithSession(h.app, 'bob', 'viewer');
    const first = h.app.auth.sessions.create('ada').session.id;
    for (let i = 0; i < 60; i++) {
      h.clock.advance(1);
      h.app.auth.sessions.create('ada');
    }
    expect(h.app.auth.sessions.list('ada')).toHaveLength(50);
    expect(h.app.auth.sessions.get(first)).toBeUndefined();
    h.clock.advance(2 * 60 * 60_000);
    await login(h.app, 'bob', GOOD_PASSWORD);
    const count = h.db.prepare('SELECT count(*) FROM auth_sessions').pluck().get();
    expect(count).toBe(1);
  });

  it('refuses a 101st API token of one owner', async () => {
    h = await authApp();
    await userWithSession(h.app, 'ada', 'viewer');
    for (let i = 0; i < 100; i++)
      h.app.auth.tokens.create({ name: `t${i}`, role: 'viewer', owner: 'ada', createdBy: 'ada', expiresAt: null });
    expect(() =>
      h.app.auth.tokens.create({ name: 'one more', role: 'viewer', owner: 'ada', createdBy: 'ada', expiresAt: null }),
    ).toThrow(/100 API tokens/);
  });
});

describe('timeouts (injected clock)', () => {
  it('ends a session unused for the idle timeout with SESSION_EXPIRED and clears the cookie', async () => {
    h = await authApp({ settings: { sessionIdleMs: 30 * 60_000, sessionAbsoluteMs: 24 * 3_600_000 } });
    const cookie = await userWithSession(h.app, 'ada', 'viewer');
    // Used every 20 minutes, the session lives on past the idle timeout.
    for (let i = 0; i < 4; i++) {
      h.clock.advance(20 * 60_000);
      expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie } })).statusCode).toBe(200);
    }
    h.clock.advance(30 * 60_000);
    const res = await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie } });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe('SESSION_EXPIRED');
    expect(String(res.headers['set-cookie'])).toMatch(/^tendril_session=;/);
  });

  it('ends a session at the absolute timeout even when it is in use', async () => {
    h = await authApp({ settings: { sessionIdleMs: 60 * 60_000, sessionAbsoluteMs: 3 * 3_600_000 } });
    const cookie = await userWithSession(h.app, 'ada', 'viewer');
    for (let i = 0; i < 5; i++) {
      h.clock.advance(30 * 60_000);
      expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie } })).statusCode).toBe(200);
    }
    h.clock.advance(30 * 60_000);
    const res = await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie } });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe('SESSION_EXPIRED');
  });
});

describe('logout and revocation', () => {
  it('DELETE /api/v1/session ends the session and clears the cookie', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'viewer');
    const res = await h.app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie, origin: ORIGIN } });
    expect(res.statusCode).toBe(204);
    expect(String(res.headers['set-cookie'])).toMatch(/^tendril_session=;/);
    const after = await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie } });
    expect(after.statusCode).toBe(401);
    expect(after.json().error.code).toBe('UNAUTHORIZED');
  });

  it("a user lists and revokes their own sessions, not others'; an admin sees and revokes anyone's", async () => {
    h = await authApp();
    const ada1 = await userWithSession(h.app, 'ada', 'viewer');
    const ada2 = await login(h.app, 'ada', GOOD_PASSWORD);
    const bob = await userWithSession(h.app, 'bob', 'viewer');
    const root = await userWithSession(h.app, 'root', 'admin');

    const mine = (await h.app.inject({ method: 'GET', url: '/api/v1/sessions', headers: { cookie: ada1 } })).json()
      .sessions;
    expect(mine).toHaveLength(2);
    expect(mine.filter((s: { current: boolean }) => s.current)).toHaveLength(1);
    expect(mine.every((s: { user: string }) => s.user === 'ada')).toBe(true);
    const other = await h.app.inject({ method: 'GET', url: '/api/v1/sessions?user=bob', headers: { cookie: ada1 } });
    expect(other.statusCode).toBe(403);

    const bobsId = (await h.app.inject({ method: 'GET', url: '/api/v1/sessions', headers: { cookie: bob } })).json()
      .sessions[0].id;
    const notYours = await h.app.inject({
      method: 'DELETE',
      url: `/api/v1/sessions/${bobsId}`,
      headers: { cookie: ada1, origin: ORIGIN },
    });
    expect(notYours.statusCode).toBe(404);
    expect(notYours.json().error.code).toBe('SESSION_NOT_FOUND');

    const otherAda = mine.find((s: { current: boolean }) => !s.current).id;
    expect(
      (
        await h.app.inject({
          method: 'DELETE',
          url: `/api/v1/sessions/${otherAda}`,
          headers: { cookie: ada1, origin: ORIGIN },
        })
      ).statusCode,
    ).toBe(204);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie: ada2 } })).statusCode).toBe(401);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie: ada1 } })).statusCode).toBe(200);

    const all = (await h.app.inject({ method: 'GET', url: '/api/v1/sessions', headers: { cookie: root } })).json()
      .sessions;
    expect(new Set(all.map((s: { user: string }) => s.user))).toEqual(new Set(['ada', 'bob', 'root']));
    const onlyBob = (
      await h.app.inject({ method: 'GET', url: '/api/v1/sessions?user=bob', headers: { cookie: root } })
    ).json().sessions;
    expect(onlyBob.map((s: { id: string }) => s.id)).toEqual([bobsId]);
    expect(
      (
        await h.app.inject({
          method: 'DELETE',
          url: `/api/v1/sessions/${bobsId}`,
          headers: { cookie: root, origin: ORIGIN },
        })
      ).statusCode,
    ).toBe(204);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie: bob } })).statusCode).toBe(401);
  });

  it('tells revocation listeners (the live channel) when a session ends', async () => {
    h = await authApp();
    const events: unknown[] = [];
    h.app.auth.onRevoke((e) => events.push(e));
    const cookie = await userWithSession(h.app, 'ada', 'viewer');
    await h.app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie, origin: ORIGIN } });
    expect(events).toEqual([expect.objectContaining({ kind: 'session', userName: 'ada' })]);
  });

  it('a password change tells listeners exactly which other sessions ended; a role change names the user', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'viewer');
    const other = await login(h.app, 'ada', GOOD_PASSWORD);
    const otherId = (await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: other } })).json()
      .session.id;
    const events: unknown[] = [];
    h.app.auth.onRevoke((e) => events.push(e));
    const change = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers: { cookie, origin: ORIGIN },
      payload: { currentPassword: GOOD_PASSWORD, password: 'yet another long passphrase' },
    });
    expect(change.statusCode).toBe(200);
    expect(events).toEqual([{ kind: 'session', sessionId: otherId, userName: 'ada' }]);
    events.length = 0;
    await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers: bearer(BOOTSTRAP),
      payload: { role: 'operator' },
    });
    expect(events).toEqual([{ kind: 'user', userName: 'ada' }]);
  });

  it('disabling a user ends their sessions at once', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'operator');
    const res = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers: bearer(BOOTSTRAP),
      payload: { disabled: true },
    });
    expect(res.statusCode).toBe(200);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie } })).statusCode).toBe(401);
    const again = await h.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      payload: { username: 'ada', password: GOOD_PASSWORD },
    });
    expect(again.statusCode).toBe(401);
    expect(again.json().error.code).toBe('INVALID_CREDENTIALS');
  });
});

describe('Origin of cookie-authenticated requests', () => {
  it('refuses a state-changing request from another origin, or with no Origin, with 403 ORIGIN_NOT_ALLOWED', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'operator');
    for (const headers of [{ cookie, origin: 'https://evil.example' }, { cookie }, { cookie, origin: 'null' }]) {
      const res = await h.app.inject({ method: 'POST', url: '/t/operator', headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(403);
      expect(res.json().error.code).toBe('ORIGIN_NOT_ALLOWED');
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
    }
    expect(
      (await h.app.inject({ method: 'POST', url: '/t/operator', headers: { cookie, origin: ORIGIN } })).statusCode,
    ).toBe(200);
    // A Referer of the hub's own origin stands in for a missing Origin.
    expect(
      (await h.app.inject({ method: 'POST', url: '/t/operator', headers: { cookie, referer: `${ORIGIN}/devices` } }))
        .statusCode,
    ).toBe(200);
    // Reads need no Origin; bearer tokens are not cookies, so no Origin check either.
    expect(
      (await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie, origin: 'https://evil.example' } }))
        .statusCode,
    ).toBe(200);
    expect(
      (
        await h.app.inject({
          method: 'POST',
          url: '/t/admin',
          headers: { ...bearer(BOOTSTRAP), origin: 'https://evil.example' },
        })
      ).statusCode,
    ).toBe(200);
  });

  it('refuses a login from a foreign origin', async () => {
    h = await authApp();
    await userWithSession(h.app, 'ada', 'viewer');
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      headers: { origin: 'https://evil.example' },
      payload: { username: 'ada', password: GOOD_PASSWORD },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe('ORIGIN_NOT_ALLOWED');
    expect(sessionCookie(res)).toBeUndefined();
  });

  it('accepts HUB_ALLOWED_ORIGINS and sends CORS headers only to them', async () => {
    h = await authApp({ settings: { allowedOrigins: ['https://ops.example.com'] } });
    const cookie = await userWithSession(h.app, 'ada', 'operator');
    const ok = await h.app.inject({
      method: 'POST',
      url: '/t/operator',
      headers: { cookie, origin: 'https://ops.example.com' },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['access-control-allow-origin']).toBe('https://ops.example.com');
    expect(ok.headers['access-control-allow-credentials']).toBe('true');
    const pre = await h.app.inject({
      method: 'OPTIONS',
      url: '/t/operator',
      headers: { origin: 'https://ops.example.com', 'access-control-request-method': 'POST' },
    });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers['access-control-allow-methods']).toContain('POST');
    const evil = await h.app.inject({
      method: 'POST',
      url: '/t/operator',
      headers: { cookie, origin: 'https://evil.example' },
    });
    expect(evil.statusCode).toBe(403);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('sends no CORS headers when HUB_ALLOWED_ORIGINS is empty', async () => {
    h = await authApp();
    const res = await h.app.inject({ method: 'GET', url: '/t/public', headers: { origin: 'https://ops.example.com' } });
    expect(Object.keys(res.headers).filter((k) => k.startsWith('access-control-'))).toEqual([]);
  });
});

describe('live channel helper', () => {
  it('authenticateLive: cookie with the hub origin, foreign origin refused, no cookie = token needed', async () => {
    h = await authApp({
      routes: (app) =>
        app.get('/t/live', { config: { role: 'public' } }, async (request, reply) => {
          const result = await app.auth.authenticateLive(request);
          return result.ok
            ? { principal: result.principal }
            : reply.code(result.status).send({ error: { code: result.code } });
        }),
    });
    const cookie = await userWithSession(h.app, 'ada', 'viewer');
    const ok = await h.app.inject({ method: 'GET', url: '/t/live', headers: { cookie, origin: ORIGIN } });
    expect(ok.json().principal).toMatchObject({ kind: 'user', name: 'ada', role: 'viewer' });
    const evil = await h.app.inject({
      method: 'GET',
      url: '/t/live',
      headers: { cookie, origin: 'https://evil.example' },
    });
    expect(evil.statusCode).toBe(403);
    expect(evil.json().error.code).toBe('ORIGIN_NOT_ALLOWED');
    const none = await h.app.inject({ method: 'GET', url: '/t/live', headers: { origin: ORIGIN } });
    expect(none.json().principal).toBeNull();
    expect(h.app.auth.authenticateToken(BOOTSTRAP, '127.0.0.1')).toMatchObject({
      ok: true,
      principal: { kind: 'bootstrap', role: 'admin' },
    });
    expect(h.app.auth.authenticateToken('tdl_nope', '127.0.0.1')).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });

    // The adapter for the live plugin's options.
    const live = liveAuthOptions(h.app.auth);
    expect(live.verifyToken(BOOTSTRAP, '10.0.0.1')).toMatchObject({ kind: 'bootstrap', role: 'admin' });
    expect(live.verifyToken('tdl_nope', '10.0.0.1')).toBeNull();
    expect(live.isOriginAllowed('https://evil.example', { protocol: 'http', host: 'localhost:80' } as never)).toBe(
      false,
    );
    expect(live.isOriginAllowed('http://localhost', { protocol: 'http', host: 'localhost:80' } as never)).toBe(true);
  });
});
