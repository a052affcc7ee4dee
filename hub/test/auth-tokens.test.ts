/** API tokens and roles: create, list, revoke (the next request fails), role ceilings, expiry, bootstrap token. */
import { afterEach, describe, expect, it } from 'vitest';
import { setDefaultRouteRole } from '../src/auth/plugin.js';
import { authApp, BOOTSTRAP, bearer, ORIGIN, userWithSession, type AuthApp } from './auth-fixture.js';

let h: AuthApp;
afterEach(async () => h?.close());

async function createToken(h: AuthApp, cookie: string, body: Record<string, unknown>) {
  return h.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { cookie, origin: ORIGIN }, payload: body });
}

describe('API tokens', () => {
  it('are shown once with the tdl_ prefix, stored hashed, listed with last use, and revoked at once', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'operator');
    const res = await createToken(h, cookie, { name: 'ci deploy' });
    expect(res.statusCode).toBe(201);
    const created = res.json();
    expect(created.token).toMatch(/^tdl_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({
      name: 'ci deploy',
      role: 'operator',
      owner: 'ada',
      createdBy: 'ada',
      expiresAt: null,
      lastUsedAt: null,
    });
    expect(JSON.stringify(h.db.prepare('SELECT * FROM auth_tokens').all())).not.toContain(created.token.slice(4));

    h.clock.advance(5000);
    const use = await h.app.inject({ method: 'POST', url: '/t/operator', headers: bearer(created.token) });
    expect(use.statusCode).toBe(200);
    expect(use.json().principal).toMatchObject({
      kind: 'token',
      name: 'ada',
      role: 'operator',
      tokenId: created.id,
      tokenName: 'ci deploy',
    });

    const list = (await h.app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { cookie } })).json().tokens;
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ id: created.id, lastUsedAt: h.clock.now(), lastUsedFrom: '127.0.0.1' });
    expect(list[0].token).toBeUndefined();

    const del = await h.app.inject({
      method: 'DELETE',
      url: `/api/v1/tokens/${created.id}`,
      headers: { cookie, origin: ORIGIN },
    });
    expect(del.statusCode).toBe(204);
    const after = await h.app.inject({ method: 'POST', url: '/t/operator', headers: bearer(created.token) });
    expect(after.statusCode).toBe(401);
    expect(after.json().error.code).toBe('UNAUTHORIZED');
    expect(after.headers['www-authenticate']).toBe('Bearer realm="tendril"');
  });

  it("have a role up to their creator's (403 ROLE_NOT_ALLOWED above it), and never above the owner's current role", async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'operator');
    const tooHigh = await createToken(h, cookie, { name: 'x', role: 'admin' });
    expect(tooHigh.statusCode).toBe(403);
    expect(tooHigh.json().error.code).toBe('ROLE_NOT_ALLOWED');
    const viewer = (await createToken(h, cookie, { name: 'read-only', role: 'viewer' })).json();
    const denied = await h.app.inject({ method: 'POST', url: '/t/operator', headers: bearer(viewer.token) });
    expect(denied.statusCode).toBe(403);
    expect(denied.json().error.code).toBe('FORBIDDEN');
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: bearer(viewer.token) })).statusCode).toBe(
      200,
    );

    // Demote the owner: their operator token acts as a viewer from then on; disable them: it stops working.
    const op = (await createToken(h, cookie, { name: 'op' })).json();
    await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers: bearer(BOOTSTRAP),
      payload: { role: 'viewer' },
    });
    expect((await h.app.inject({ method: 'POST', url: '/t/operator', headers: bearer(op.token) })).statusCode).toBe(
      403,
    );
    await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers: bearer(BOOTSTRAP),
      payload: { disabled: true },
    });
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: bearer(op.token) })).statusCode).toBe(401);
  });

  it('expire at expiresAt or after expiresInDays', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'viewer');
    const days = (await createToken(h, cookie, { name: 'week', expiresInDays: 7 })).json();
    expect(days.expiresAt).toBe(h.clock.now() + 7 * 86_400_000);
    const at = (await createToken(h, cookie, { name: 'hour', expiresAt: h.clock.now() + 3_600_000 })).json();
    const past = await createToken(h, cookie, { name: 'past', expiresAt: h.clock.now() - 1 });
    expect(past.statusCode).toBe(400);
    h.clock.advance(3_600_000);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: bearer(at.token) })).statusCode).toBe(401);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: bearer(days.token) })).statusCode).toBe(200);
    h.clock.advance(7 * 86_400_000);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: bearer(days.token) })).statusCode).toBe(401);
  });

  it("a user lists and revokes only their own; an admin lists everyone's and revokes any", async () => {
    h = await authApp();
    const ada = await userWithSession(h.app, 'ada', 'operator');
    const bob = await userWithSession(h.app, 'bob', 'viewer');
    const root = await userWithSession(h.app, 'root', 'admin');
    const adas = (await createToken(h, ada, { name: 'a' })).json();
    await createToken(h, bob, { name: 'b' });
    expect(
      (await h.app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { cookie: bob } }))
        .json()
        .tokens.map((t: { name: string }) => t.name),
    ).toEqual(['b']);
    const steal = await h.app.inject({
      method: 'DELETE',
      url: `/api/v1/tokens/${adas.id}`,
      headers: { cookie: bob, origin: ORIGIN },
    });
    expect(steal.statusCode).toBe(404);
    expect(steal.json().error.code).toBe('TOKEN_NOT_FOUND');
    expect(
      (await h.app.inject({ method: 'GET', url: '/api/v1/tokens?user=ada', headers: { cookie: bob } })).statusCode,
    ).toBe(403);
    const all = (await h.app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { cookie: root } })).json().tokens;
    expect(all.map((t: { name: string }) => t.name).sort()).toEqual(['a', 'b']);
    expect(
      (
        await h.app.inject({
          method: 'DELETE',
          url: `/api/v1/tokens/${adas.id}`,
          headers: { cookie: root, origin: ORIGIN },
        })
      ).statusCode,
    ).toBe(204);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: bearer(adas.token) })).statusCode).toBe(401);
  });
});

describe('roles', () => {
  it.each([
    ['viewer', { viewer: 200, operator: 403, admin: 403 }],
    ['operator', { viewer: 200, operator: 200, admin: 403 }],
    ['admin', { viewer: 200, operator: 200, admin: 200 }],
  ] as const)('%s reaches exactly the routes of its role and below', async (role, expected) => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'u', role);
    const headers = { cookie, origin: ORIGIN };
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers })).statusCode).toBe(expected.viewer);
    const op = await h.app.inject({ method: 'POST', url: '/t/operator', headers });
    expect(op.statusCode).toBe(expected.operator);
    if (op.statusCode === 403) expect(op.json().error.code).toBe('FORBIDDEN');
    expect((await h.app.inject({ method: 'POST', url: '/t/admin', headers })).statusCode).toBe(expected.admin);
    expect((await h.app.inject({ method: 'GET', url: '/t/public' })).statusCode).toBe(200);
  });

  it('setDefaultRouteRole gives a role to the routes a third-party plugin adds in one context only', async () => {
    h = await authApp({
      routes: (app) => {
        app.register(async (child) => {
          setDefaultRouteRole(child, 'viewer');
          child.get('/t/third-party', async () => 'ok');
        });
      },
    });
    expect(h.app.auth.routes.find((r) => r.url === '/t/third-party')?.role).toBe('viewer');
    expect((await h.app.inject({ method: 'GET', url: '/t/third-party' })).statusCode).toBe(401);
    expect(h.app.authDefaultRole).toBeNull();
  });

  it('no credentials on a protected route: 401 UNAUTHORIZED with WWW-Authenticate', async () => {
    h = await authApp();
    const res = await h.app.inject({ method: 'GET', url: '/t/viewer' });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe('UNAUTHORIZED');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="tendril"');
  });

  it('a route without a role is refused when it is added', async () => {
    await expect(authApp({ routes: (app) => app.get('/forgotten', async () => 'x') })).rejects.toThrow(
      /declares no valid role/,
    );
    await expect(
      authApp({ routes: (app) => app.get('/typo', { config: { role: 'superuser' as never } }, async () => 'x') }),
    ).rejects.toThrow(/declares no valid role/);
  });
});

describe('bootstrap admin token', () => {
  it('works as an admin bearer token', async () => {
    h = await authApp();
    const res = await h.app.inject({ method: 'POST', url: '/t/admin', headers: bearer(BOOTSTRAP) });
    expect(res.json().principal).toEqual({ kind: 'bootstrap', name: 'admin-token', role: 'admin' });
  });

  it('must be at least 32 characters', async () => {
    await expect(authApp({ adminToken: 'x'.repeat(31) })).rejects.toThrow(/at least 32/);
  });

  it('can create tokens, owned by no user', async () => {
    h = await authApp();
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: bearer(BOOTSTRAP),
      payload: { name: 'grafana', role: 'viewer' },
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ owner: null, createdBy: 'admin-token', role: 'viewer' });
    const use = await h.app.inject({ method: 'GET', url: '/t/viewer', headers: bearer(res.json().token) });
    expect(use.json().principal).toMatchObject({ kind: 'token', name: 'token:grafana', role: 'viewer' });
  });
});
