/** A small fastify app with the auth plugin and routes on a real SQLite database in a temp dir (auth-*.test.ts). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { Registry } from 'prom-client';
import { installErrorHandler } from '../src/api/error-handler.js';
import { authPlugin, type AuthPluginOptions } from '../src/auth/plugin.js';
import { authRoutes } from '../src/auth/routes.js';
import type { AuthSettings } from '../src/auth/settings.js';
import { openDatabase, type SqliteDatabase } from '../src/storage/sqlite.js';

export const BOOTSTRAP = 'bootstrap-admin-token-0123456789abcdef';
/** Fast scrypt for tests (the defaults are checked in auth-passwords.test.ts). */
export const TEST_SCRYPT = { N: 1024 };
export const GOOD_PASSWORD = 'correct horse battery staple';

export class FakeClock {
  constructor(public t = 1_767_225_600_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface AuthApp {
  app: FastifyInstance;
  db: SqliteDatabase;
  dataDir: string;
  clock: FakeClock;
  metrics: Registry;
  /** The generated first admin password. */
  adminPassword: string;
  logs: Array<{ level: number; msg: string; [k: string]: unknown }>;
  close(): Promise<void>;
}

export async function authApp(
  options: {
    tls?: boolean;
    settings?: Partial<AuthSettings>;
    adminToken?: string | null;
    dataDir?: string;
    throttle?: AuthPluginOptions['throttle'];
    /** Password hashing parameters; default TEST_SCRYPT (fast). */
    scrypt?: AuthPluginOptions['scrypt'];
    /** Routes to add after the plugin (they must declare a role). */
    routes?: (app: FastifyInstance) => void;
  } = {},
): Promise<AuthApp> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'tendril-auth-'));
  const db = openDatabase(join(dataDir, 'hub.db'));
  const clock = new FakeClock();
  const metrics = new Registry();
  const logs: AuthApp['logs'] = [];
  const stream = { write: (line: string) => void logs.push(JSON.parse(line)) };
  const app = Fastify({
    logger: { level: 'warn', stream },
    ajv: { customOptions: { removeAdditional: false } },
  }) as unknown as FastifyInstance;
  installErrorHandler(app);
  let adminPassword = '';
  await app.register(authPlugin, {
    db,
    dataDir,
    adminToken: options.adminToken === undefined ? BOOTSTRAP : options.adminToken,
    tls: options.tls ?? false,
    clock,
    metricsRegistry: metrics,
    scrypt: options.scrypt ?? TEST_SCRYPT,
    settings: { allowedOrigins: [], secureCookies: null, ...options.settings },
    ...(options.throttle ? { throttle: options.throttle } : {}),
    onInitialAdmin: (created) => {
      adminPassword = created.password;
    },
  });
  await app.register(authRoutes, { prefix: '/api/v1', dataDir });
  app.get('/t/public', { config: { role: 'public' } }, async (request) => ({ principal: request.principal }));
  app.get('/t/viewer', { config: { role: 'viewer' } }, async (request) => ({ principal: request.principal }));
  app.post('/t/operator', { config: { role: 'operator' } }, async (request) => ({ principal: request.principal }));
  app.post('/t/admin', { config: { role: 'admin' } }, async (request) => ({ principal: request.principal }));
  options.routes?.(app);
  await app.ready();
  return {
    app,
    db,
    dataDir,
    clock,
    metrics,
    adminPassword,
    logs,
    async close() {
      await app.close();
      db.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `name=value` of the session cookie set by a response, or undefined. */
export function sessionCookie(res: LightMyRequestResponse): string | undefined {
  const c = res.cookies.find((c) => c.name.endsWith('tendril_session'));
  return c && c.value !== '' ? `${c.name}=${c.value}` : undefined;
}

export const ORIGIN = 'http://localhost:80';

/** Logs in; returns the cookie header value. Throws with the body when the login fails. */
export async function login(app: FastifyInstance, username: string, password: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/session', payload: { username, password } });
  const cookie = sessionCookie(res);
  if (res.statusCode !== 200 || !cookie) throw new Error(`login of ${username} failed: ${res.statusCode} ${res.body}`);
  return cookie;
}

/** Creates a user (as the bootstrap admin) who need not change their password, and logs them in. */
export async function userWithSession(
  app: FastifyInstance,
  name: string,
  role: 'viewer' | 'operator' | 'admin',
): Promise<string> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/users',
    headers: { authorization: `Bearer ${BOOTSTRAP}` },
    payload: { name, role, password: GOOD_PASSWORD, mustChangePassword: false },
  });
  if (res.statusCode !== 201) throw new Error(`creating ${name} failed: ${res.statusCode} ${res.body}`);
  return login(app, name, GOOD_PASSWORD);
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
