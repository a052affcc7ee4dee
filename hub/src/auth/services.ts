/** `app.auth` (AuthServices, hub/src/auth/plugin.ts) assembled from the auth core and its parts. */
import type { FastifyInstance } from 'fastify';
import type { AuthCore } from './core.js';
import { authenticateLiveToken, authenticateLiveUpgrade } from './live.js';
import { login } from './login.js';
import { originAllowed } from './origins.js';
import type { AuthServices, RevocationEvent, RouteRoleInfo } from './plugin-types.js';
import { authenticateRequest } from './principal.js';

/** Revocation listeners (the live channel): onRevoke() adds one, revoked() tells them all. */
function revocationChannel(app: FastifyInstance): Pick<AuthServices, 'onRevoke' | 'revoked'> {
  const listeners = new Set<(event: RevocationEvent) => void>();
  return {
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
  };
}

/** Setting and clearing the session cookie (HttpOnly, SameSite=Strict, Secure with TLS). */
function sessionCookies(core: AuthCore): Pick<AuthServices, 'setSessionCookie' | 'clearSessionCookie'> {
  const { settings, clock, cookieName, secureCookies } = core;
  return {
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
  };
}

/** The services `app.auth` decorates the instance with; `routes` is filled by the onRoute hook. */
export function createAuthServices(app: FastifyInstance, core: AuthCore, routes: RouteRoleInfo[]): AuthServices {
  return {
    users: core.users,
    sessions: core.sessions,
    tokens: core.tokens,
    audit: core.audit,
    hasher: core.hasher,
    settings: core.settings,
    clock: core.clock,
    throttles: core.throttles,
    routes,
    cookieName: core.cookieName,
    secureCookies: core.secureCookies,
    authenticate: (request, opts) => authenticateRequest(core, request, opts),
    authenticateLive: (request) => authenticateLiveUpgrade(core, request),
    authenticateToken: (token, client) => authenticateLiveToken(core, app, token, client),
    isOriginAllowed: (request, origin) => originAllowed(core.settings.allowedOrigins, request, origin),
    login: (request, username, password) => login(core, request, username, password),
    ...sessionCookies(core),
    ...revocationChannel(app),
    noteFailure: core.report.noteFailure,
  };
}
