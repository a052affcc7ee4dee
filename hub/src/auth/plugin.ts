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
import fastifyCookie from '@fastify/cookie';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { openAuthCore, type AuthCore } from './core.js';
import { addCorsPreflight, addRoleEnforcement, addRouteRoleCheck } from './hooks.js';
import { ensureInitialAdmin, initialAdminBanner, type InitialAdmin } from './initial-admin.js';
import { createAuthServices } from './services.js';
import type { RouteRole } from './types.js';

export { ADMIN_TOKEN_MIN_LENGTH, THROTTLE_DEFAULTS, type ThrottleSettings } from './core.js';

import type { AuthPluginOptions, RouteRoleInfo } from './plugin-types.js';

export type {
  AuthPluginOptions,
  AuthFailure,
  AuthSuccess,
  AuthResult,
  LiveAuthResult,
  RouteRoleInfo,
  RevocationEvent,
  AuthServices,
} from './plugin-types.js';

/**
 * Lets routes that a third-party plugin adds in this encapsulated context (e.g. @fastify/static's, which take
 * no route config) have `role`. Call it in the context that registers that plugin; never at the root.
 */
export function setDefaultRouteRole(instance: FastifyInstance, role: RouteRole): void {
  instance.authDefaultRole = role;
}

/** First start: creates user "admin" (password in a file), audits it and announces where the password is. */
async function announceInitialAdmin(app: FastifyInstance, core: AuthCore): Promise<void> {
  const { options, users, audit } = core;
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

async function authPluginImpl(app: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const core = await openAuthCore(options);
  const routes: RouteRoleInfo[] = [];
  const services = createAuthServices(app, core, routes);

  if (!app.hasRequestDecorator('cookies')) await app.register(fastifyCookie);
  app.decorate('auth', services);
  app.decorate('authDefaultRole', null);
  app.decorateRequest('principal', null);

  addRouteRoleCheck(app, routes);
  addRoleEnforcement(app, core, services);
  // CORS preflight for the allowed origins (the onRequest hook adds the allow-origin header).
  if (core.settings.allowedOrigins.length > 0) addCorsPreflight(app, core.settings);

  await announceInitialAdmin(app, core);
}

/** The auth plugin; see the file comment. Name `tendril-auth`; decorates `auth`, `request.principal`. */
export const authPlugin = fp(authPluginImpl, { name: 'tendril-auth', fastify: '5.x' });
