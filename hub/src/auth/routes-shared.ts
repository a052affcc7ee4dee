/** What the auth routes (session-routes.ts, user-routes.ts, token-routes.ts, audit-routes.ts) share. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HubHttpError } from '../errors.js';
import { PASSWORD_MAX_LENGTH } from './passwords.js';
import type { AuthFailure, AuthServices } from './plugin-types.js';
import { ROLES, roleAtLeast, type Principal } from './types.js';

export interface AuthRoutesOptions {
  /** The data directory (initial-admin-password is deleted once the first admin changes it). */
  dataDir: string;
}

/** What every group of auth routes is given: `app.auth` and the routes' options. */
export interface AuthRouteDeps {
  auth: AuthServices;
  options: AuthRoutesOptions;
}

/** The user an authenticated principal acts for; null for the bootstrap token and tokens it made. */
export function ownerOf(p: Principal): string | null {
  if (p.kind === 'user') return p.name;
  if (p.kind === 'token' && !p.name.startsWith('token:')) return p.name;
  return null;
}

export function principalOf(request: FastifyRequest): Principal {
  // The onRequest hook has refused every request without one on these routes.
  return request.principal!;
}

export function refuse(reply: FastifyReply, failure: AuthFailure): FastifyReply {
  if (failure.retryAfterS !== undefined) reply.header('retry-after', String(failure.retryAfterS));
  return reply.code(failure.status).send({ error: { code: failure.code, message: failure.message } });
}

/** Ends sessions of `name` (all, or all but `except`) and tells the live channel which. */
export function endSessions(auth: AuthServices, name: string, except: string | null = null): void {
  for (const sessionId of auth.sessions.revokeAllOf(name, except))
    auth.revoked({ kind: 'session', sessionId, userName: name });
}

export const roleSchema = { type: 'string', enum: [...ROLES] } as const;
export const nameParam = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', maxLength: 64 } },
  additionalProperties: false,
} as const;
export const idParam = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', maxLength: 64 } },
  additionalProperties: false,
} as const;
export const passwordSchema = { type: 'string', minLength: 1, maxLength: PASSWORD_MAX_LENGTH * 4 } as const;

/** `?user=` on GET /sessions and GET /tokens. */
export const userQuerySchema = {
  type: 'object',
  properties: { user: { type: 'string', maxLength: 64 } },
  additionalProperties: false,
} as const;

/**
 * Whose sessions or tokens a caller lists: `undefined` for everyone's (an admin without `?user=`), else one
 * owner (null: the bootstrap token's own). Only an admin may name another user.
 */
export function listScope(
  p: Principal,
  user: string | undefined,
  what: 'sessions' | 'tokens',
): string | null | undefined {
  const admin = roleAtLeast(p.role, 'admin');
  const own = ownerOf(p);
  if (user === undefined) return admin ? undefined : own;
  if (!admin && user !== own) throw new HubHttpError('FORBIDDEN', `Only an admin sees the ${what} of other users.`);
  return user;
}

/** Whether a caller may revoke an item owned by `owner`: an admin any, others their own. */
export function mayRevoke(p: Principal, owner: string | null): boolean {
  return roleAtLeast(p.role, 'admin') || (owner !== null && owner === ownerOf(p));
}
