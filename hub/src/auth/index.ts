/** Users, roles, sessions, API tokens and the audit log (docs/security.md). */
export { authPlugin, setDefaultRouteRole, THROTTLE_DEFAULTS, ADMIN_TOKEN_MIN_LENGTH } from './plugin.js';
export type {
  AuthPluginOptions,
  AuthServices,
  AuthResult,
  LiveAuthResult,
  AuthFailure,
  RouteRoleInfo,
  RevocationEvent,
  ThrottleSettings,
} from './plugin.js';
export { authRoutes, type AuthRoutesOptions } from './routes.js';
export { loadAuthSettings, AuthConfigError, AUTH_DEFAULTS, type AuthSettings } from './settings.js';
export {
  AUDIT_ACTIONS,
  type AuditInput,
  type AuditEntry,
  type AuditOutcome,
  type AuditQuery,
  type AuditPage,
  AuditLog,
} from './audit.js';
export { ROLES, roleAtLeast, type Role, type RouteRole, type Principal } from './types.js';
export { INITIAL_PASSWORD_FILE } from './initial-admin.js';

import type { FastifyRequest } from 'fastify';
import type { AuthServices, LiveAuthResult } from './plugin.js';

/**
 * For the live channel (/v1/live): the upgrade request's session cookie, with its Origin checked. `principal`
 * null means no cookie: the client must send a token in its first message (request.server.auth.authenticateToken).
 */
export function authenticateLive(request: FastifyRequest): Promise<LiveAuthResult> {
  return request.server.auth.authenticateLive(request);
}

/**
 * The live plugin's auth options (hub/src/live/plugin.ts: authenticate, verifyToken, isOriginAllowed) from the
 * auth plugin. Pass the client address to verifyToken so failed tokens are throttled per address like on HTTP;
 * close a client's socket when `auth.onRevoke()` reports its session, user or token ended.
 */
export function liveAuthOptions(auth: AuthServices) {
  return {
    authenticate: async (request: FastifyRequest) => {
      const result = await auth.authenticateLive(request);
      return result.ok ? result.principal : null;
    },
    verifyToken: (token: string, client = 'live-channel') => {
      const result = auth.authenticateToken(token, client);
      return result.ok ? result.principal : null;
    },
    isOriginAllowed: (origin: string, request: FastifyRequest) => auth.isOriginAllowed(request, origin),
    allowedOrigins: auth.settings.allowedOrigins,
  };
}
