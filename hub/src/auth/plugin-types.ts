/**
 * The auth plugin's types: its options, what `app.auth` offers (AuthServices) and the results of
 * authentication. Apart from plugin.ts so the modules the plugin is made of (core, hooks, principal, live,
 * login, services, routes) can use them without importing the plugin (no import cycle).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { HttpErrorCode } from '../errors.js';
import type { SqliteDatabase } from '../storage/sqlite.js';
import type { AuditLog } from './audit.js';
import type { InitialAdmin } from './initial-admin.js';
import type { PasswordHasher, ScryptParams } from './passwords.js';
import type { SessionRecord, SessionStore } from './sessions.js';
import type { AuthSettings } from './settings.js';
import type { FailureThrottle } from './throttle.js';
import type { TokenStore } from './tokens.js';
import type { Principal, RouteRole } from './types.js';
import type { UserRecord, UserStore } from './users.js';
import type { ThrottleRule } from './throttle.js';

export interface ThrottleSettings {
  /** Failed logins per user name (default 5 at once, then one a minute). */
  loginPerUser: ThrottleRule;
  /** Failed logins per client address (default 20 at once, then one every 10 s). */
  loginPerClient: ThrottleRule;
  /** Failed bearer tokens per client address (default 20 at once, then one every 3 s). */
  bearerPerClient: ThrottleRule;
}

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
