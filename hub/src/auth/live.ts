/**
 * The live channel's (/v1/live) side of authentication: the upgrade request's session cookie with its Origin
 * checked, and the bearer secret a client sends in its first message.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { fail, type AuthCore } from './core.js';
import { originAllowed } from './origins.js';
import type { LiveAuthResult } from './plugin-types.js';
import { resolveBearer, resolveCookieSession } from './principal.js';

/**
 * The session cookie (when the request has an Origin, it must be one of the hub's), or `{ ok: true, principal:
 * null }` when there is no cookie (the client then sends a token in its first message).
 */
export async function authenticateLiveUpgrade(core: AuthCore, request: FastifyRequest): Promise<LiveAuthResult> {
  const origin = request.headers.origin;
  if (origin !== undefined && !originAllowed(core.settings.allowedOrigins, request, origin)) {
    return fail(
      403,
      'ORIGIN_NOT_ALLOWED',
      `Origin ${origin} may not open this channel; allowed: the hub's own origin and HUB_ALLOWED_ORIGINS.`,
    );
  }
  const cookie = request.cookies?.[core.cookieName];
  if (cookie === undefined || cookie === '') return { ok: true, principal: null };
  const result = resolveCookieSession(core, cookie);
  if (!result.ok) return result;
  if (result.principal?.mustChangePassword)
    return fail(403, 'PASSWORD_CHANGE_REQUIRED', 'Change your password first (PATCH /api/v1/users/<name>).');
  return { ok: true, principal: result.principal };
}

/** A bearer secret (API token or admin token) from `client`, throttled and counted like the HTTP header. */
export function authenticateLiveToken(
  core: AuthCore,
  app: FastifyInstance,
  token: string,
  client: string,
): LiveAuthResult {
  const result = resolveBearer(core, token, { ip: client, log: app.log as FastifyRequest['log'] }, true);
  return result.ok ? { ok: true, principal: result.principal } : result;
}
