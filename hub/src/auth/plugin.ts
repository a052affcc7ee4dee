/**
 * The auth plugin (docs/security.md): decorates `app.auth` (users, sessions, tokens, audit) and
 * `request.principal`, and enforces every route's `config.role` in an onRequest hook:
 *
 * 1. A route without a role is refused when it is added (onRoute throws), so no route can be forgotten.
 * 2. The caller is resolved from `Authorization: Bearer` (an API token `tdl_...` or the bootstrap admin token)
 *    or else from the session cookie.
 * 3. No credentials: 401 UNAUTHORIZED. Bad bearer: 401 (throttled per client address: 429 + Retry-After).
 *    Expired session: 401 SESSION_EXPIRED. Cookie-authenticated state-changing request from another origin:
 *    403 ORIGIN_NOT_ALLOWED. Password to change first: 403 PASSWORD_CHANGE_REQUIRED. Role too low: 403 FORBIDDEN.
 *
 * Register it before every plugin that adds routes (its onRoute hook sees only routes added after it).
 */
import { timingSafeEqual } from 'node:crypto';
import { chmodSync, statSync } from 'node:fs';
import fastifyCookie from '@fastify/cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, type Registry } from 'prom-client';
import { systemClock, type Clock } from '../core/clock.js';
import { errorBody, type HttpErrorCode } from '../errors.js';
import type { SqliteDatabase } from '../storage/sqlite.js';
import { AuditLog } from './audit.js';
import { ensureInitialAdmin, initialAdminBanner, type InitialAdmin } from './initial-admin.js';
import { PasswordHasher, type ScryptParams } from './passwords.js';
import { createAuthSchema } from './schema.js';
import { SessionStore, sha256, type SessionRecord } from './sessions.js';
import { loadAuthSettings, type AuthSettings } from './settings.js';
import { FailureThrottle, type ThrottleRule } from './throttle.js';
import { looksLikeApiToken, TokenStore } from './tokens.js';
import { isRouteRole, lowerRole, roleAtLeast, type Principal, type RouteRole } from './types.js';
import { UserStore, type UserRecord } from './users.js';

export interface ThrottleSettings {
  /** Failed logins per user name (default 5 at once, then one a minute). */
  loginPerUser: ThrottleRule;
  /** Failed logins per client address (default 20 at once, then one every 10 s). */
  loginPerClient: ThrottleRule;
  /** Failed bearer tokens per client address (default 20 at once, then one every 3 s). */
  bearerPerClient: ThrottleRule;
}

export const THROTTLE_DEFAULTS: Readonly<ThrottleSettings> = Object.freeze({
  loginPerUser: { burst: 5, refillMs: 60_000 },
  loginPerClient: { burst: 20, refillMs: 10_000 },
  bearerPerClient: { burst: 20, refillMs: 3_000 },
});

/** Bootstrap admin tokens chosen by an operator must be at least this long (issue 11 item 3). */
export const ADMIN_TOKEN_MIN_LENGTH = 32;

export interface AuthPluginOptions {
  /** The hub's database (hub.db, `registry.db`): the plugin creates its tables there. */
  db: SqliteDatabase;
  /** The data directory, for initial-admin-password. */
  dataDir: string;
  /** The bootstrap admin token (HUB_ADMIN_TOKEN or the generated one), or null for none. */
  adminToken: string | null;
  /** True when the hub serves TLS itself: Secure cookie with the __Host- prefix. */
  tls: boolean;
  /** Default: loadAuthSettings(process.env). */
  settings?: Partial<AuthSettings>;
  clock?: Clock;
  /** The hub's prom-client registry for the failure counters. */
  metricsRegistry?: Registry;
  /** Password hashing parameters (tests lower N; production keeps the defaults). */
  scrypt?: Partial<ScryptParams>;
  throttle?: Partial<ThrottleSettings>;
  /** Called once when the first admin is created; default prints initialAdminBanner() on stdout (not when logging is off). */
  onInitialAdmin?: (created: InitialAdmin) => void;
}

export type AuthFailure = {
  ok: false;
  status: 401 | 403 | 429;
  code: HttpErrorCode;
  message: string;
  retryAfterS?: number;
  clearCookie?: boolean;
};
export type AuthSuccess = {
  ok: true;
  principal: Principal | null;
  via: 'cookie' | 'bearer' | 'none';
  session?: SessionRecord;
};
export type AuthResult = AuthSuccess | AuthFailure;

/** Live channel (/v1/live) answers: a principal, or why not (HTTP status and code for the upgrade refusal). */
export type LiveAuthResult = { ok: true; principal: Principal | null } | AuthFailure;

export interface RouteRoleInfo {
  method: string;
  url: string;
  role: RouteRole;
  passwordChangeAllowed: boolean;
}

export type RevocationEvent =
  | { kind: 'session'; sessionId: string; userName: string }
  | { kind: 'user'; userName: string }
  | { kind: 'token'; tokenId: string };

export interface AuthServices {
  users: UserStore;
  sessions: SessionStore;
  tokens: TokenStore;
  audit: AuditLog;
  hasher: PasswordHasher;
  settings: AuthSettings;
  clock: Clock;
  throttles: { loginPerUser: FailureThrottle; loginPerClient: FailureThrottle; bearerPerClient: FailureThrottle };
  /** Every route added after the plugin, with its role (the route table test reads it). */
  routes: RouteRoleInfo[];
  /** `tendril_session`, or `__Host-tendril_session` with Secure cookies. */
  cookieName: string;
  secureCookies: boolean;
  /** Resolves the caller of a request from its bearer token or session cookie. */
  authenticate(request: FastifyRequest, options?: { countFailures?: boolean }): Promise<AuthResult>;
  /**
   * For the live channel's upgrade request: the session cookie (when the request has an Origin, it must be
   * one of the hub's), or `{ ok: true, principal: null }` when there is no cookie (the client then sends a
   * token in its first message: authenticateToken()).
   */
  authenticateLive(request: FastifyRequest): Promise<LiveAuthResult>;
  /** A bearer secret (API token or admin token) from `client`, throttled and counted like the HTTP header. */
  authenticateToken(token: string, client: string): LiveAuthResult;
  /** True when `origin` is the request's own origin or in HUB_ALLOWED_ORIGINS. */
  isOriginAllowed(request: FastifyRequest, origin: string | undefined): boolean;
  /** Login with throttling, audit, and a new session; the routes and tests use it. */
  login(
    request: FastifyRequest,
    username: string,
    password: string,
  ): Promise<{ ok: true; user: UserRecord; secret: string; session: SessionRecord } | AuthFailure>;
  /** Sets the session cookie on a reply. */
  setSessionCookie(reply: FastifyReply, secret: string, session: SessionRecord): void;
  clearSessionCookie(reply: FastifyReply): void;
  /** Tells listeners (the live channel) that sessions, a user's access or a token ended. */
  onRevoke(listener: (event: RevocationEvent) => void): () => void;
  revoked(event: RevocationEvent): void;
  /** A failed authentication: counted in /metrics, logged at warn with the address. */
  noteFailure(
    kind: 'login' | 'token' | 'password_change',
    request: { ip: string; log: FastifyRequest['log'] },
    detail: Record<string, unknown>,
  ): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    auth: AuthServices;
    /** Role of routes added in this context that do not declare one (for third-party plugins' routes only). */
    authDefaultRole: RouteRole | null;
  }
}

const BEARER = /^Bearer[ \t]+(\S{1,512})[ \t]*$/i;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Lets routes that a third-party plugin adds in this encapsulated context (e.g. @fastify/static's, which take
 * no route config) have `role`. Call it in the context that registers that plugin; never at the root.
 */
export function setDefaultRouteRole(instance: FastifyInstance, role: RouteRole): void {
  instance.authDefaultRole = role;
}

/** Password and token hashes and the audit log live in this database: readable by the hub's account only. */
function restrictDatabaseFiles(path: string): void {
  if (path === ':memory:' || path === '') return;
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

async function authPluginImpl(app: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const clock = options.clock ?? systemClock;
  const settings: AuthSettings = { ...loadAuthSettings(process.env), ...options.settings };
  if (options.adminToken !== null && options.adminToken.length < ADMIN_TOKEN_MIN_LENGTH) {
    throw new Error(
      `HUB_ADMIN_TOKEN is ${options.adminToken.length} characters; use at least ${ADMIN_TOKEN_MIN_LENGTH} random ones (e.g. \`openssl rand -base64 32\`) or unset it to have one generated.`,
    );
  }
  createAuthSchema(options.db);
  restrictDatabaseFiles(options.db.name);
  const hasher = new PasswordHasher(options.scrypt);
  await hasher.prepare();
  const users = new UserStore(options.db, hasher, clock);
  const sessions = new SessionStore(options.db, clock, {
    idleMs: settings.sessionIdleMs,
    absoluteMs: settings.sessionAbsoluteMs,
  });
  const tokens = new TokenStore(options.db, clock);
  const audit = new AuditLog(options.db, { clock, retentionDays: settings.auditRetentionDays });
  const rules = { ...THROTTLE_DEFAULTS, ...options.throttle };
  const throttles = {
    loginPerUser: new FailureThrottle(rules.loginPerUser, clock),
    loginPerClient: new FailureThrottle(rules.loginPerClient, clock),
    bearerPerClient: new FailureThrottle(rules.bearerPerClient, clock),
  };
  const secureCookies = settings.secureCookies ?? options.tls;
  const cookieName = secureCookies ? '__Host-tendril_session' : 'tendril_session';
  const registers = options.metricsRegistry ? [options.metricsRegistry] : [];
  const failures = new Counter({
    name: 'tendril_auth_failures_total',
    help: 'Failed authentications: login (wrong user or password), token (bad bearer token), password_change (wrong current password).',
    labelNames: ['kind'],
    registers,
  });
  const throttled = new Counter({
    name: 'tendril_auth_throttled_total',
    help: 'Authentication attempts refused with 429 because of earlier failures, by kind (login, token).',
    labelNames: ['kind'],
    registers,
  });
  for (const kind of ['login', 'token', 'password_change']) failures.labels(kind).inc(0);
  for (const kind of ['login', 'token']) throttled.labels(kind).inc(0);

  const listeners = new Set<(event: RevocationEvent) => void>();
  const routes: RouteRoleInfo[] = [];

  const fail = (
    status: AuthFailure['status'],
    code: HttpErrorCode,
    message: string,
    extra: Partial<AuthFailure> = {},
  ): AuthFailure => ({
    ok: false,
    status,
    code,
    message,
    ...extra,
  });

  function noteFailure(
    kind: 'login' | 'token' | 'password_change',
    request: { ip: string; log: FastifyRequest['log'] },
    detail: Record<string, unknown>,
  ): void {
    failures.labels(kind).inc();
    request.log.warn({ client: request.ip, ...detail }, `authentication failed (${kind}) from ${request.ip}`);
  }

  function throttledFailure(
    kind: 'login' | 'token',
    waitMs: number,
    request: { ip: string; log: FastifyRequest['log'] },
    who: string,
  ): AuthFailure {
    throttled.labels(kind).inc();
    const retryAfterS = Math.max(1, Math.ceil(waitMs / 1000));
    request.log.debug({ client: request.ip, who, retryAfterS }, 'authentication attempt throttled');
    return fail(429, 'TOO_MANY_ATTEMPTS', `Too many failed attempts for ${who}; try again in ${retryAfterS} s.`, {
      retryAfterS,
    });
  }

  /** A bearer secret: API token or the bootstrap admin token. */
  function bearer(secret: string, request: { ip: string; log: FastifyRequest['log'] }, count: boolean): AuthResult {
    const wait = throttles.bearerPerClient.retryAfterMs(request.ip);
    if (wait > 0)
      return count
        ? throttledFailure('token', wait, request, `client ${request.ip}`)
        : fail(401, 'UNAUTHORIZED', 'throttled');
    let principal: Principal | null = null;
    if (looksLikeApiToken(secret)) {
      const token = tokens.lookup(secret);
      if (token) {
        let role = token.role;
        let ok = true;
        if (token.owner !== null) {
          const owner = users.get(token.owner);
          if (!owner || owner.disabled) ok = false;
          else role = lowerRole(token.role, owner.role);
        }
        if (ok) {
          tokens.markUsed(token, request.ip);
          principal = {
            kind: 'token',
            name: token.owner ?? `token:${token.name}`,
            role,
            tokenId: token.id,
            tokenName: token.name,
          };
        }
      }
    } else if (options.adminToken !== null && secretsEqual(secret, options.adminToken)) {
      principal = { kind: 'bootstrap', name: 'admin-token', role: 'admin' };
    }
    if (principal) return { ok: true, principal, via: 'bearer' };
    if (count) {
      if (throttles.bearerPerClient.fail(request.ip))
        request.log.warn({ client: request.ip }, `throttling bearer tokens from ${request.ip} after repeated failures`);
      noteFailure('token', request, { prefix: secret.slice(0, 4) });
    }
    return fail(
      401,
      'UNAUTHORIZED',
      'The bearer token is not valid for this hub (unknown, revoked or expired API token, or not the admin token); create a token with POST /api/v1/tokens.',
    );
  }

  function cookieSession(secret: string): AuthResult {
    const found = sessions.lookup(secret);
    if (found.state === 'unknown') {
      return fail(
        401,
        'UNAUTHORIZED',
        'The session cookie is not valid (logged out, revoked, or from before a restore); log in with POST /api/v1/session.',
        { clearCookie: true },
      );
    }
    if (found.state === 'expired') {
      const why = found.why === 'idle' ? 'after being unused too long' : 'at its maximum age';
      return fail(401, 'SESSION_EXPIRED', `The session ended ${why}; log in again with POST /api/v1/session.`, {
        clearCookie: true,
      });
    }
    const user = users.get(found.session.userName);
    if (!user || user.disabled) {
      sessions.revoke(found.session.id);
      return fail(401, 'SESSION_EXPIRED', 'The session ended: the account was disabled or deleted.', {
        clearCookie: true,
      });
    }
    sessions.touch(found.session);
    return {
      ok: true,
      principal: {
        kind: 'user',
        name: user.name,
        role: user.role,
        sessionId: found.session.id,
        mustChangePassword: user.mustChangePassword,
      },
      via: 'cookie',
      session: found.session,
    };
  }

  async function authenticate(request: FastifyRequest, opts: { countFailures?: boolean } = {}): Promise<AuthResult> {
    const count = opts.countFailures ?? true;
    const header = request.headers.authorization;
    if (header !== undefined) {
      const secret = BEARER.exec(header)?.[1];
      if (secret === undefined) {
        return fail(
          401,
          'UNAUTHORIZED',
          'The Authorization header is not `Bearer <token>`; send an API token or the hub admin token that way.',
        );
      }
      return bearer(secret, request, count);
    }
    const cookie = request.cookies?.[cookieName];
    if (cookie !== undefined && cookie !== '') return cookieSession(cookie);
    return { ok: true, principal: null, via: 'none' };
  }

  /** `scheme://host[:port]` with default ports dropped and case folded, as browsers send it; null if not one. */
  function normalOrigin(text: string): string | null {
    try {
      const url = new URL(text);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : null;
    } catch {
      return null;
    }
  }

  function isOriginAllowed(request: FastifyRequest, origin: string | undefined): boolean {
    if (origin === undefined || origin === 'null') return false;
    const o = normalOrigin(origin);
    if (o === null) return false;
    return o === normalOrigin(`${request.protocol}://${request.host}`) || settings.allowedOrigins.includes(o);
  }

  /** The Origin of a request, or the origin of its Referer when a browser sent no Origin. */
  function requestOrigin(request: FastifyRequest): string | undefined {
    const origin = request.headers.origin;
    if (origin !== undefined) return origin;
    const referer = request.headers.referer;
    if (referer === undefined) return undefined;
    try {
      return new URL(referer).origin;
    } catch {
      return undefined;
    }
  }

  const services: AuthServices = {
    users,
    sessions,
    tokens,
    audit,
    hasher,
    settings,
    clock,
    throttles,
    routes,
    cookieName,
    secureCookies,
    authenticate,
    async authenticateLive(request) {
      const origin = request.headers.origin;
      if (origin !== undefined && !isOriginAllowed(request, origin)) {
        return fail(
          403,
          'ORIGIN_NOT_ALLOWED',
          `Origin ${origin} may not open this channel; allowed: the hub's own origin and HUB_ALLOWED_ORIGINS.`,
        );
      }
      const cookie = request.cookies?.[cookieName];
      if (cookie === undefined || cookie === '') return { ok: true, principal: null };
      const result = cookieSession(cookie);
      if (!result.ok) return result;
      if (result.principal?.mustChangePassword)
        return fail(403, 'PASSWORD_CHANGE_REQUIRED', 'Change your password first (PATCH /api/v1/users/<name>).');
      return { ok: true, principal: result.principal };
    },
    authenticateToken(token, client) {
      const result = bearer(token, { ip: client, log: app.log as FastifyRequest['log'] }, true);
      return result.ok ? { ok: true, principal: result.principal } : result;
    },
    isOriginAllowed,
    async login(request, username, password) {
      const name = username.trim().toLowerCase();
      const userKey = `user:${name.slice(0, 64)}`;
      const waitUser = throttles.loginPerUser.retryAfterMs(userKey);
      const waitClient = throttles.loginPerClient.retryAfterMs(request.ip);
      if (waitUser > 0 || waitClient > 0) {
        return throttledFailure(
          'login',
          Math.max(waitUser, waitClient),
          request,
          waitClient > 0 ? `client ${request.ip}` : 'this user name',
        );
      }
      // The attempt counts as a failure before the password is checked, and is given back if it was right: so
      // concurrent attempts cannot all pass the check above while the first ones are still hashing.
      const startsUser = throttles.loginPerUser.fail(userKey);
      const startsClient = throttles.loginPerClient.fail(request.ip);
      const user = await users.verifyPassword(name, password, { recordLogin: true });
      if (!user) {
        if (startsUser || startsClient)
          request.log.warn({ client: request.ip, user: name }, 'throttling logins after repeated failures');
        noteFailure('login', request, { user: name });
        audit.record({
          action: 'login',
          actor: null,
          client: request.ip,
          target: `user:${name.slice(0, 64)}`,
          outcome: 'failure',
        });
        return fail(401, 'INVALID_CREDENTIALS', 'Unknown user name or wrong password (or the account is disabled).');
      }
      throttles.loginPerUser.reset(userKey);
      throttles.loginPerClient.refund(request.ip);
      // A new session id at every login; the session the browser held before (if any) ends.
      const previous = request.cookies?.[cookieName];
      if (previous) {
        const old = sessions.lookup(previous);
        if (old.state === 'valid') sessions.revoke(old.session.id);
      }
      sessions.prune();
      const { secret, session } = sessions.create(user.name, {
        client: request.ip,
        userAgent: request.headers['user-agent'] ?? null,
      });
      audit.record({
        action: 'login',
        actor: { kind: 'user', name: user.name, role: user.role },
        client: request.ip,
        target: `session:${session.id}`,
      });
      return { ok: true, user, secret, session };
    },
    setSessionCookie(reply, secret, session) {
      const maxAge = Math.max(1, Math.floor((session.createdAt + settings.sessionAbsoluteMs - clock.now()) / 1000));
      reply.setCookie(cookieName, secret, {
        path: '/',
        httpOnly: true,
        sameSite: 'strict',
        secure: secureCookies,
        maxAge,
      });
    },
    clearSessionCookie(reply) {
      reply.clearCookie(cookieName, { path: '/', httpOnly: true, sameSite: 'strict', secure: secureCookies });
    },
    onRevoke(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    revoked(event) {
      for (const listener of listeners) {
        try {
          listener(event);
        } catch (err) {
          app.log.error({ err }, 'a revocation listener failed');
        }
      }
    },
    noteFailure,
  };

  if (!app.hasRequestDecorator('cookies')) await app.register(fastifyCookie);
  app.decorate('auth', services);
  app.decorate('authDefaultRole', null);
  app.decorateRequest('principal', null);

  app.addHook('onRoute', function checkRouteRole(this: FastifyInstance, route: RouteOptions) {
    route.config ??= {};
    const config = route.config as { role?: unknown; passwordChangeAllowed?: boolean };
    if (config.role === undefined && this.authDefaultRole) config.role = this.authDefaultRole;
    if (!isRouteRole(config.role)) {
      const methods = Array.isArray(route.method) ? route.method.join(',') : route.method;
      throw new Error(
        `Route ${methods} ${route.url} declares no valid role (got ${JSON.stringify(config.role)}): add ` +
          `config: { role: 'public' | 'viewer' | 'operator' | 'admin' } to its options (docs/security.md#roles).`,
      );
    }
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      routes.push({
        method,
        url: route.url,
        role: config.role,
        passwordChangeAllowed: config.passwordChangeAllowed === true,
      });
    }
  });

  const refuse = (reply: FastifyReply, failure: AuthFailure): FastifyReply => {
    if (failure.status === 401) reply.header('www-authenticate', 'Bearer realm="tendril"');
    if (failure.retryAfterS !== undefined) reply.header('retry-after', String(failure.retryAfterS));
    if (failure.clearCookie) services.clearSessionCookie(reply);
    return reply.code(failure.status).send(errorBody(failure.code, failure.message));
  };

  app.addHook('onRequest', async function enforceRole(request, reply) {
    // CORS only for the origins HUB_ALLOWED_ORIGINS names; never a wildcard.
    const origin = request.headers.origin;
    const cors = origin === undefined ? null : normalOrigin(origin);
    if (cors !== null && settings.allowedOrigins.includes(cors)) {
      reply.header('access-control-allow-origin', cors);
      reply.header('access-control-allow-credentials', 'true');
      reply.header('vary', 'Origin');
    }
    // Routes the hub does not have (404) need nothing: the answer tells nothing.
    const role: RouteRole = request.routeOptions.config?.role ?? 'public';
    const result = await authenticate(request, { countFailures: role !== 'public' });
    if (role === 'public') {
      request.principal = result.ok ? result.principal : null;
      return;
    }
    if (!result.ok) return refuse(reply, result);
    const principal = result.principal;
    if (principal === null) {
      return refuse(
        reply,
        fail(
          401,
          'UNAUTHORIZED',
          'This route needs credentials: log in (POST /api/v1/session) or send `Authorization: Bearer <API token>`.',
        ),
      );
    }
    request.principal = principal;
    if (
      result.via === 'cookie' &&
      !SAFE_METHODS.has(request.method) &&
      !isOriginAllowed(request, requestOrigin(request))
    ) {
      const seen = requestOrigin(request) ?? 'no Origin header';
      request.log.warn(
        { client: request.ip, origin: seen, user: principal.name },
        'cross-origin request with the session cookie refused',
      );
      return refuse(
        reply,
        fail(
          403,
          'ORIGIN_NOT_ALLOWED',
          `A request with the session cookie must come from the hub's own origin or one in HUB_ALLOWED_ORIGINS; this one came from ${seen}.`,
        ),
      );
    }
    if (principal.mustChangePassword && request.routeOptions.config.passwordChangeAllowed !== true) {
      return refuse(
        reply,
        fail(
          403,
          'PASSWORD_CHANGE_REQUIRED',
          `Change your password first: PATCH /api/v1/users/${principal.name} with {"currentPassword", "password"}.`,
        ),
      );
    }
    if (!roleAtLeast(principal.role, role)) {
      return refuse(
        reply,
        fail(403, 'FORBIDDEN', `This route needs the ${role} role; ${principal.name} has ${principal.role}.`),
      );
    }
  });

  if (settings.allowedOrigins.length > 0) {
    // CORS preflight for the allowed origins (the onRequest hook above adds the allow-origin header).
    app.options('*', { config: { role: 'public' } }, async (request, reply) => {
      const origin = request.headers.origin;
      const cors = origin === undefined ? null : normalOrigin(origin);
      if (cors !== null && settings.allowedOrigins.includes(cors)) {
        reply.header('access-control-allow-methods', 'GET, HEAD, POST, PATCH, PUT, DELETE');
        reply.header('access-control-allow-headers', 'content-type, authorization');
        reply.header('access-control-max-age', '600');
      }
      return reply.code(204).send();
    });
  }

  const created = await ensureInitialAdmin(users, options.dataDir);
  if (created) {
    audit.record({
      action: 'user.create',
      actor: 'system',
      target: `user:${created.user}`,
      detail: { role: 'admin', initial: true },
    });
    // Printed on the console unless logging is off (HUB_LOG_LEVEL=silent, embedded hubs in tests): the file stays.
    const quiet = app.log.level === undefined || app.log.level === 'silent';
    const announce =
      options.onInitialAdmin ??
      ((c: InitialAdmin) => (quiet ? undefined : process.stdout.write(`${initialAdminBanner(c)}\n`)));
    announce(created);
    app.log.info({ file: created.file }, `first start: created user "admin"; its password is in ${created.file}`);
  }
}

/** The auth plugin; see the file comment. Name `tendril-auth`; decorates `auth`, `request.principal`. */
export const authPlugin = fp(authPluginImpl, { name: 'tendril-auth', fastify: '5.x' });
