/**
 * The route table test (issue 12): every route the hub registers, taken from fastify's own route list (the
 * auth plugin's onRoute hook, cross-checked against printRoutes()), is tried with no credentials, with each
 * role (session cookie and API token), with a revoked token and with an expired session. The answer must be
 * 401/403 with the documented error code, or not an auth refusal at all. And every route must appear in
 * EXPECTED_ROLES below with the role docs/security.md gives it: a new route fails this test until someone
 * decides its role here. It runs against the real hub (buildHub from app.ts, real SQLite in a temp dir).
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteRoleInfo } from '../src/auth/plugin.js';
import { roleAtLeast, ROLES, type Role, type RouteRole } from '../src/auth/types.js';
import { ADMIN_TOKEN, startHub, type TestHub } from './helpers.js';

/** `METHOD url` -> role. HEAD routes fastify adds for GET ones take the GET route's role. */
export const EXPECTED_ROLES: Record<string, RouteRole> = {
  'POST /api/v1/session': 'public',
  'DELETE /api/v1/session': 'viewer',
  'GET /api/v1/sessions': 'viewer',
  'DELETE /api/v1/sessions/:id': 'viewer',
  'GET /api/v1/me': 'viewer',
  'POST /api/v1/users': 'admin',
  'GET /api/v1/users': 'admin',
  'GET /api/v1/users/:name': 'viewer',
  'PATCH /api/v1/users/:name': 'viewer',
  'DELETE /api/v1/users/:name': 'admin',
  'POST /api/v1/tokens': 'viewer',
  'GET /api/v1/tokens': 'viewer',
  'DELETE /api/v1/tokens/:id': 'viewer',
  'GET /api/v1/audit': 'admin',
  'POST /api/v1/devices': 'admin',
  'GET /api/v1/devices': 'viewer',
  'GET /api/v1/devices/:id': 'viewer',
  'PATCH /api/v1/devices/:id': 'operator',
  'POST /api/v1/devices/:id/token': 'admin',
  'DELETE /api/v1/devices/:id': 'admin',
  'GET /api/v1/devices/:id/connections': 'viewer',
  'POST /api/v1/devices/:id/commands': 'operator',
  'GET /api/v1/devices/:id/commands': 'viewer',
  'GET /api/v1/commands/:commandId': 'viewer',
  'POST /api/v1/commands/:commandId/cancel': 'operator',
  'GET /api/v1/models': 'viewer',
  'GET /api/v1/models/:model': 'viewer',
  'PUT /api/v1/models/:model/commands': 'admin',
  'DELETE /api/v1/models/:model/commands': 'admin',
  'GET /api/v1/devices/:id/series/:metric': 'viewer',
  'GET /api/v1/devices/:id/latest': 'viewer',
  // Authenticate themselves: devices by their token in HELLO, live clients by cookie or first message.
  'GET /v1/device': 'public',
  'GET /v1/live': 'public',
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'GET /metrics': 'public',
  // The dashboard's files: no fleet data.
  'GET /': 'public',
  'GET /*': 'public',
};

type Credential = { headers: Record<string, string> };

let hub: TestHub;
let app: FastifyInstance;
const people = new Map<Role, string>();

beforeAll(async () => {
  hub = await startHub({ listen: false });
  app = hub.app;
  // One user per role (each costs a real scrypt hash); sessions and tokens are made directly, cheaply.
  for (const role of ROLES) {
    await app.auth.users.create({
      name: `rt-${role}`,
      role,
      password: 'route table passphrase',
      mustChangePassword: false,
    });
    people.set(role, `rt-${role}`);
  }
});
afterAll(async () => hub?.dispose());

/** A new session of the `role` user; returns its cookie header and the user name. */
function sessionOf(role: Role): { name: string; cookie: string; id: string } {
  const name = people.get(role)!;
  const { secret, session } = app.auth.sessions.create(name, { client: '127.0.0.1' });
  return { name, cookie: `${app.auth.cookieName}=${secret}`, id: session.id };
}

function tokenOf(role: Role): { name: string; token: string; id: string } {
  const name = people.get(role)!;
  const { token, record } = app.auth.tokens.create({
    name: 'route-table',
    role,
    owner: name,
    createdBy: name,
    expiresAt: null,
  });
  return { name, token, id: record.id };
}

function urlFor(route: RouteRoleInfo, self: string): string {
  // Your own name where a route takes a user name, except DELETE (an admin would delete itself).
  return route.url
    .replace(/:name\b/g, route.method === 'DELETE' ? 'route-table-nobody' : self)
    .replace(/:commandId\b/g, '999999')
    .replace(/:[A-Za-z_]+/g, 'route-table-none')
    .replace(/\*$/, 'route-table-none');
}

async function call(route: RouteRoleInfo, cred: Credential, self = 'route-table-nobody') {
  const unsafe = !['GET', 'HEAD', 'OPTIONS'].includes(route.method);
  return app.inject({
    method: route.method as 'GET',
    url: urlFor(route, self),
    headers: {
      ...cred.headers,
      ...(unsafe ? { origin: 'http://localhost:80', 'content-type': 'application/json' } : {}),
    },
    ...(unsafe && route.method !== 'DELETE' ? { payload: '{}' } : {}),
  });
}

function expectRefused(
  res: { statusCode: number; body: string },
  status: 401 | 403,
  codes: Set<string> | string,
  what: string,
) {
  expect(res.statusCode, `${what}: ${res.body}`).toBe(status);
  const code = (JSON.parse(res.body) as { error: { code: string } }).error.code;
  if (typeof codes === 'string') expect(code, what).toBe(codes);
  else expect(codes.has(code), `${what}: code ${code}`).toBe(true);
}

function expectAdmitted(res: { statusCode: number; body: string; headers: Record<string, unknown> }, what: string) {
  // Admitted: whatever the route answers (200, 204, 400 for the empty body, 404 for the made-up id), it is
  // not the auth hook's 401/403.
  if (res.statusCode === 401 || res.statusCode === 403) {
    const code = (JSON.parse(res.body) as { error?: { code: string } }).error?.code;
    // A route's own 403 about someone else's data is not an auth refusal; the auth hook never sends these.
    expect(
      ['FORBIDDEN', 'UNAUTHORIZED', 'SESSION_EXPIRED', 'ORIGIN_NOT_ALLOWED', 'PASSWORD_CHANGE_REQUIRED'],
      `${what}: ${res.body}`,
    ).not.toContain(code);
  }
  expect(res.statusCode, `${what}: ${res.body}`).not.toBe(429);
}

function routes(): RouteRoleInfo[] {
  return app.auth.routes.filter((r) => r.method !== 'HEAD');
}

describe('route table', () => {
  it('sees every route fastify has (printRoutes), and each has the role EXPECTED_ROLES gives it', () => {
    const seen = new Set(app.auth.routes.map((r) => `${r.method} ${r.url.replace(/^\//, '')}`));
    // printRoutes() draws a tree: each line adds its segment to its parent's path.
    const printed = app.printRoutes({ commonPrefix: false });
    const stack: string[] = [];
    let count = 0;
    for (const line of printed.split('\n')) {
      const m = /^((?:│ {3}| {4})*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
      if (!m) continue;
      const depth = m[1]!.length / 4;
      stack.length = depth + 1;
      stack[depth] = (depth > 0 ? stack[depth - 1]! : '') + m[2]!;
      for (const method of m[3]?.split(', ') ?? []) {
        count++;
        expect(
          seen.has(`${method} ${stack[depth]!.replace(/^\//, '')}`),
          `${method} ${stack[depth]} is not in the auth plugin's list`,
        ).toBe(true);
      }
    }
    expect(count).toBe(app.auth.routes.length);
    const actual = Object.fromEntries(routes().map((r) => [`${r.method} ${r.url}`, r.role]));
    // The live channel is registered only when its plugin is: the rest must match exactly.
    const expected = Object.fromEntries(
      Object.entries(EXPECTED_ROLES).filter(([k]) => k !== 'GET /v1/live' || k in actual),
    );
    expect(actual).toEqual(expected);
  });

  it('docs/api.md gives every route the same role', () => {
    const doc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('### Roles of the routes'), doc.indexOf('## Errors'));
    const documented = Object.fromEntries(
      [...section.matchAll(/^\| `([A-Z]+ \S+)` \| (\w+) \|$/gm)].map((m) => [m[1], m[2]]),
    );
    expect(documented).toEqual(EXPECTED_ROLES);
  });

  it('without credentials: public routes answer, every other route is 401 UNAUTHORIZED', async () => {
    for (const route of routes()) {
      const res = await call(route, { headers: {} });
      const what = `${route.method} ${route.url} anonymous`;
      if (route.role === 'public') expectAdmitted(res, what);
      else expectRefused(res, 401, 'UNAUTHORIZED', what);
    }
  });

  for (const role of ROLES) {
    it(`with a ${role} session and a ${role} API token: admitted at or below ${role}, 403 FORBIDDEN above`, async () => {
      for (const route of routes()) {
        for (const kind of ['session', 'token'] as const) {
          const cred =
            kind === 'session'
              ? ((s) => ({ self: s.name, headers: { cookie: s.cookie } }))(sessionOf(role))
              : ((t) => ({ self: t.name, headers: { authorization: `Bearer ${t.token}` } }))(tokenOf(role));
          const res = await call(route, cred, cred.self);
          const what = `${route.method} ${route.url} as ${role} ${kind}`;
          if (roleAtLeast(role, route.role)) expectAdmitted(res, what);
          else expectRefused(res, 403, 'FORBIDDEN', what);
        }
      }
    });
  }

  it('with the bootstrap admin token: admitted everywhere', async () => {
    for (const route of routes())
      expectAdmitted(
        await call(route, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }),
        `${route.method} ${route.url}`,
      );
  });

  it('with a revoked API token: 401 UNAUTHORIZED on every non-public route', async () => {
    for (const route of routes()) {
      const t = tokenOf('admin');
      app.auth.tokens.revoke(t.id);
      // Each failure counts against 127.0.0.1; more than 20 would be throttled (429), which is not what this checks.
      app.auth.throttles.bearerPerClient.reset('127.0.0.1');
      const res = await call(route, { headers: { authorization: `Bearer ${t.token}` } }, t.name);
      const what = `${route.method} ${route.url} revoked token`;
      if (route.role === 'public') expectAdmitted(res, what);
      else expectRefused(res, 401, 'UNAUTHORIZED', what);
    }
    app.auth.throttles.bearerPerClient.reset('127.0.0.1');
  });

  it('with an expired session: 401 SESSION_EXPIRED on every non-public route', async () => {
    const absolute = app.auth.settings.sessionAbsoluteMs;
    for (const route of routes()) {
      const s = sessionOf('admin');
      app.devices.registry.db
        .prepare('UPDATE auth_sessions SET created_at = created_at - ? WHERE id = ?')
        .run(absolute, s.id);
      const res = await call(route, { headers: { cookie: s.cookie } }, s.name);
      const what = `${route.method} ${route.url} expired session`;
      if (route.role === 'public') expectAdmitted(res, what);
      else expectRefused(res, 401, 'SESSION_EXPIRED', what);
    }
  });
});
