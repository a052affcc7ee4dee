/**
 * What the auth plugin builds before it decorates anything (docs/security.md): the settings, the stores on the
 * hub's database, the failure throttles, the session cookie's name and the failure counters in /metrics.
 */
import { chmodSync, statSync } from 'node:fs';
import type { FastifyRequest } from 'fastify';
import { Counter } from 'prom-client';
import { systemClock, type Clock } from '../core/clock.js';
import type { HttpErrorCode } from '../errors.js';
import { AuditLog } from './audit.js';
import { PasswordHasher } from './passwords.js';
import type { AuthFailure, AuthPluginOptions, ThrottleSettings } from './plugin-types.js';

export type { ThrottleSettings };
import { createAuthSchema } from './schema.js';
import { SessionStore } from './sessions.js';
import { loadAuthSettings, type AuthSettings } from './settings.js';
import { FailureThrottle } from './throttle.js';
import { TokenStore } from './tokens.js';
import { UserStore } from './users.js';

export const THROTTLE_DEFAULTS: Readonly<ThrottleSettings> = Object.freeze({
  loginPerUser: { burst: 5, refillMs: 60_000 },
  loginPerClient: { burst: 20, refillMs: 10_000 },
  bearerPerClient: { burst: 20, refillMs: 3_000 },
});

/** Bootstrap admin tokens chosen by an operator must be at least this long (issue 11 item 3). */
export const ADMIN_TOKEN_MIN_LENGTH = 32;

/** A request as failure reporting needs it: the client address and a logger. */
export type FailingRequest = { ip: string; log: FastifyRequest['log'] };

/** Counts failed and throttled authentications in /metrics and logs them. */
export interface FailureReporter {
  /** A failed authentication: counted in /metrics, logged at warn with the address. */
  noteFailure(
    kind: 'login' | 'token' | 'password_change',
    request: FailingRequest,
    detail: Record<string, unknown>,
  ): void;
  /** An attempt refused because of earlier failures: counted, logged at debug, answered 429 with Retry-After. */
  throttledFailure(kind: 'login' | 'token', waitMs: number, request: FailingRequest, who: string): AuthFailure;
}

/** Everything the auth plugin's parts share. */
export interface AuthCore {
  options: AuthPluginOptions;
  settings: AuthSettings;
  clock: Clock;
  hasher: PasswordHasher;
  users: UserStore;
  sessions: SessionStore;
  tokens: TokenStore;
  audit: AuditLog;
  throttles: { loginPerUser: FailureThrottle; loginPerClient: FailureThrottle; bearerPerClient: FailureThrottle };
  cookieName: string;
  secureCookies: boolean;
  report: FailureReporter;
}

export function fail(
  status: AuthFailure['status'],
  code: HttpErrorCode,
  message: string,
  extra: Partial<AuthFailure> = {},
): AuthFailure {
  return {
    ok: false,
    status,
    code,
    message,
    ...extra,
  };
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

/** The failure counters (registered in the hub's registry when given) and the reporter that feeds them. */
function createFailureReporter(options: AuthPluginOptions): FailureReporter {
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
  return {
    noteFailure(kind, request, detail) {
      failures.labels(kind).inc();
      request.log.warn({ client: request.ip, ...detail }, `authentication failed (${kind}) from ${request.ip}`);
    },
    throttledFailure(kind, waitMs, request, who) {
      throttled.labels(kind).inc();
      const retryAfterS = Math.max(1, Math.ceil(waitMs / 1000));
      request.log.debug({ client: request.ip, who, retryAfterS }, 'authentication attempt throttled');
      return fail(429, 'TOO_MANY_ATTEMPTS', `Too many failed attempts for ${who}; try again in ${retryAfterS} s.`, {
        retryAfterS,
      });
    },
  };
}

/** Checks the options, creates the auth tables (files readable by the hub only) and opens the stores. */
export async function openAuthCore(options: AuthPluginOptions): Promise<AuthCore> {
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
  const report = createFailureReporter(options);
  return {
    options,
    settings,
    clock,
    hasher,
    users,
    sessions,
    tokens,
    audit,
    throttles,
    cookieName,
    secureCookies,
    report,
  };
}
