/**
 * Who is calling (docs/security.md): the principal of a request from `Authorization: Bearer` (an API token
 * `tdl_...` or the bootstrap admin token) or else from the session cookie.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { fail, type AuthCore, type FailingRequest } from './core.js';
import type { AuthResult } from './plugin-types.js';
import { sha256 } from './sessions.js';
import { looksLikeApiToken } from './tokens.js';
import { lowerRole, type Principal } from './types.js';

const BEARER = /^Bearer[ \t]+(\S{1,512})[ \t]*$/i;

function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

/** The principal of an API token, or null when it is unknown or its owner is gone or disabled. */
function apiTokenPrincipal(core: AuthCore, secret: string, client: string): Principal | null {
  const token = core.tokens.lookup(secret);
  if (!token) return null;
  let role = token.role;
  if (token.owner !== null) {
    const owner = core.users.get(token.owner);
    if (!owner || owner.disabled) return null;
    role = lowerRole(token.role, owner.role);
  }
  core.tokens.markUsed(token, client);
  return {
    kind: 'token',
    name: token.owner ?? `token:${token.name}`,
    role,
    tokenId: token.id,
    tokenName: token.name,
  };
}

/** A bearer secret: API token or the bootstrap admin token. */
export function resolveBearer(core: AuthCore, secret: string, request: FailingRequest, count: boolean): AuthResult {
  const { throttles, options } = core;
  const wait = throttles.bearerPerClient.retryAfterMs(request.ip);
  if (wait > 0)
    return count
      ? core.report.throttledFailure('token', wait, request, `client ${request.ip}`)
      : fail(401, 'UNAUTHORIZED', 'throttled');
  let principal: Principal | null = null;
  if (looksLikeApiToken(secret)) {
    principal = apiTokenPrincipal(core, secret, request.ip);
  } else if (options.adminToken !== null && secretsEqual(secret, options.adminToken)) {
    principal = { kind: 'bootstrap', name: 'admin-token', role: 'admin' };
  }
  if (principal) return { ok: true, principal, via: 'bearer' };
  if (count) {
    if (throttles.bearerPerClient.fail(request.ip))
      request.log.warn({ client: request.ip }, `throttling bearer tokens from ${request.ip} after repeated failures`);
    core.report.noteFailure('token', request, { prefix: secret.slice(0, 4) });
  }
  return fail(
    401,
    'UNAUTHORIZED',
    'The bearer token is not valid for this hub (unknown, revoked or expired API token, or not the admin token); create a token with POST /api/v1/tokens.',
  );
}

/** A session cookie's secret: the user's principal, or why the session is not (or no longer) valid. */
export function resolveCookieSession(core: AuthCore, secret: string): AuthResult {
  const { sessions, users } = core;
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

/** Resolves the caller of a request from its bearer token or session cookie. */
export async function authenticateRequest(
  core: AuthCore,
  request: FastifyRequest,
  opts: { countFailures?: boolean } = {},
): Promise<AuthResult> {
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
    return resolveBearer(core, secret, request, count);
  }
  const cookie = request.cookies?.[core.cookieName];
  if (cookie !== undefined && cookie !== '') return resolveCookieSession(core, cookie);
  return { ok: true, principal: null, via: 'none' };
}
