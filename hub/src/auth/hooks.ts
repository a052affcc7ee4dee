/**
 * The role-enforcing hooks of the auth plugin (docs/security.md): every route declares `config.role` (onRoute),
 * every request is checked against it (onRequest), and CORS preflights for HUB_ALLOWED_ORIGINS.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { errorBody } from '../errors.js';
import { fail, type AuthCore } from './core.js';
import { corsOrigin, originAllowed, requestOrigin } from './origins.js';
import type { AuthFailure, AuthServices, RouteRoleInfo } from './plugin-types.js';
import { authenticateRequest } from './principal.js';
import type { AuthSettings } from './settings.js';
import { isRouteRole, roleAtLeast, type Principal, type RouteRole } from './types.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A route without a valid role is refused when it is added; the others are listed in `routes`. */
export function addRouteRoleCheck(app: FastifyInstance, routes: RouteRoleInfo[]): void {
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
}

function refuse(services: AuthServices, reply: FastifyReply, failure: AuthFailure): FastifyReply {
  if (failure.status === 401) reply.header('www-authenticate', 'Bearer realm="tendril"');
  if (failure.retryAfterS !== undefined) reply.header('retry-after', String(failure.retryAfterS));
  if (failure.clearCookie) services.clearSessionCookie(reply);
  return reply.code(failure.status).send(errorBody(failure.code, failure.message));
}

/** Why an authenticated principal may not use this route (origin, password to change, role), or null. */
function principalRefusal(
  core: AuthCore,
  request: FastifyRequest,
  principal: Principal,
  via: 'cookie' | 'bearer' | 'none',
  role: RouteRole,
): AuthFailure | null {
  if (
    via === 'cookie' &&
    !SAFE_METHODS.has(request.method) &&
    !originAllowed(core.settings.allowedOrigins, request, requestOrigin(request))
  ) {
    const seen = requestOrigin(request) ?? 'no Origin header';
    request.log.warn(
      { client: request.ip, origin: seen, user: principal.name },
      'cross-origin request with the session cookie refused',
    );
    return fail(
      403,
      'ORIGIN_NOT_ALLOWED',
      `A request with the session cookie must come from the hub's own origin or one in HUB_ALLOWED_ORIGINS; this one came from ${seen}.`,
    );
  }
  if (principal.mustChangePassword && request.routeOptions.config.passwordChangeAllowed !== true) {
    return fail(
      403,
      'PASSWORD_CHANGE_REQUIRED',
      `Change your password first: PATCH /api/v1/users/${principal.name} with {"currentPassword", "password"}.`,
    );
  }
  if (!roleAtLeast(principal.role, role)) {
    return fail(403, 'FORBIDDEN', `This route needs the ${role} role; ${principal.name} has ${principal.role}.`);
  }
  return null;
}

/** Resolves every request's principal and refuses it when its route's role asks for more. */
export function addRoleEnforcement(app: FastifyInstance, core: AuthCore, services: AuthServices): void {
  app.addHook('onRequest', async function enforceRole(request, reply) {
    // CORS only for the origins HUB_ALLOWED_ORIGINS names; never a wildcard.
    const cors = corsOrigin(core.settings.allowedOrigins, request);
    if (cors !== null) {
      reply.header('access-control-allow-origin', cors);
      reply.header('access-control-allow-credentials', 'true');
      reply.header('vary', 'Origin');
    }
    // Routes the hub does not have (404) need nothing: the answer tells nothing.
    const role: RouteRole = request.routeOptions.config?.role ?? 'public';
    const result = await authenticateRequest(core, request, { countFailures: role !== 'public' });
    if (role === 'public') {
      request.principal = result.ok ? result.principal : null;
      return;
    }
    if (!result.ok) return refuse(services, reply, result);
    const principal = result.principal;
    if (principal === null) {
      return refuse(
        services,
        reply,
        fail(
          401,
          'UNAUTHORIZED',
          'This route needs credentials: log in (POST /api/v1/session) or send `Authorization: Bearer <API token>`.',
        ),
      );
    }
    request.principal = principal;
    const refusal = principalRefusal(core, request, principal, result.via, role);
    if (refusal !== null) return refuse(services, reply, refusal);
  });
}

/** CORS preflight for the allowed origins (the onRequest hook adds the allow-origin header). */
export function addCorsPreflight(app: FastifyInstance, settings: AuthSettings): void {
  app.options('*', { config: { role: 'public' } }, async (request, reply) => {
    if (corsOrigin(settings.allowedOrigins, request) !== null) {
      reply.header('access-control-allow-methods', 'GET, HEAD, POST, PATCH, PUT, DELETE');
      reply.header('access-control-allow-headers', 'content-type, authorization');
      reply.header('access-control-max-age', '600');
    }
    return reply.code(204).send();
  });
}
