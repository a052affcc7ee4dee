/** API token routes (docs/api.md#users-sessions-and-tokens): creating, listing and revoking tokens. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HubHttpError } from '../errors.js';
import type { AuthServices } from './plugin-types.js';
import {
  idParam,
  listScope,
  mayRevoke,
  ownerOf,
  principalOf,
  roleSchema,
  userQuerySchema,
  type AuthRouteDeps,
} from './routes-shared.js';
import { isRole, roleAtLeast, type Role } from './types.js';
import { tokenView } from './views.js';

type CreateTokenBody = { name: string; role?: Role; expiresAt?: number; expiresInDays?: number };

/** The POST /tokens handler: a token of at most its creator's role, with an optional expiry. */
async function createToken(
  auth: AuthServices,
  request: FastifyRequest<{ Body: CreateTokenBody }>,
  reply: FastifyReply,
) {
  const { tokens, audit } = auth;
  const p = principalOf(request);
  const body = request.body;
  const role = body.role ?? p.role;
  if (!isRole(role) || !roleAtLeast(p.role, role)) {
    throw new HubHttpError(
      'ROLE_NOT_ALLOWED',
      `A token's role is at most its creator's: you have ${p.role}, the token asks for ${role}.`,
    );
  }
  if (body.expiresAt !== undefined && body.expiresInDays !== undefined) {
    throw new HubHttpError('INVALID_REQUEST', 'Give expiresAt or expiresInDays, not both.');
  }
  let expiresAt: number | null = null;
  const clockNow = auth.clock.now();
  if (body.expiresAt !== undefined) {
    if (body.expiresAt <= clockNow)
      throw new HubHttpError(
        'INVALID_REQUEST',
        'body/expiresAt is in the past; give a future time in ms since the epoch.',
      );
    expiresAt = body.expiresAt;
  } else if (body.expiresInDays !== undefined) expiresAt = clockNow + body.expiresInDays * 86_400_000;
  const { token, record } = tokens.create({
    name: body.name,
    role,
    owner: ownerOf(p),
    createdBy: p.name,
    expiresAt,
  });
  audit.record({
    action: 'token.create',
    request,
    target: `token:${record.id}`,
    detail: { name: record.name, role, owner: record.owner, expiresAt },
  });
  reply.header('cache-control', 'no-store');
  return reply.code(201).send({ token, ...tokenView(record) });
}

/** POST /tokens. */
function registerTokenCreateRoute(app: FastifyInstance, { auth }: AuthRouteDeps): void {
  app.post<{ Body: CreateTokenBody }>(
    '/tokens',
    {
      config: { role: 'viewer' },
      schema: {
        body: {
          type: 'object',
          required: ['name'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[\\x20-\\x7e]+$' },
            role: roleSchema,
            expiresAt: { type: 'integer', minimum: 0 },
            expiresInDays: { type: 'integer', minimum: 1, maximum: 3650 },
          },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => createToken(auth, request, reply),
  );
}

/** GET /tokens and DELETE /tokens/:id. */
function registerTokenListRoutes(app: FastifyInstance, { auth }: AuthRouteDeps): void {
  const { tokens, audit } = auth;
  app.get<{ Querystring: { user?: string } }>(
    '/tokens',
    { config: { role: 'viewer' }, schema: { querystring: userQuerySchema } },
    async (request) => ({
      tokens: tokens.list(listScope(principalOf(request), request.query.user, 'tokens')).map(tokenView),
    }),
  );

  app.delete<{ Params: { id: string } }>(
    '/tokens/:id',
    { config: { role: 'viewer' }, schema: { params: idParam } },
    async (request, reply) => {
      const p = principalOf(request);
      const token = tokens.get(request.params.id);
      if (!token || !mayRevoke(p, token.owner)) {
        throw new HubHttpError(
          'TOKEN_NOT_FOUND',
          `No API token "${request.params.id}" of yours; list them with GET /api/v1/tokens.`,
        );
      }
      tokens.revoke(token.id);
      audit.record({
        action: 'token.revoke',
        request,
        target: `token:${token.id}`,
        detail: { name: token.name, owner: token.owner },
      });
      auth.revoked({ kind: 'token', tokenId: token.id });
      return reply.code(204).send();
    },
  );
}

/** The token routes, in this order (the route table lists them so). */
export function registerTokenRoutes(app: FastifyInstance, deps: AuthRouteDeps): void {
  registerTokenCreateRoute(app, deps);
  registerTokenListRoutes(app, deps);
}
