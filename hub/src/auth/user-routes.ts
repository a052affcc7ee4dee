/** User routes (docs/api.md#users-sessions-and-tokens): creating, listing, changing and deleting users. */
import type { FastifyInstance } from 'fastify';
import { HubHttpError } from '../errors.js';
import { generatePassword } from './passwords.js';
import { nameParam, ownerOf, passwordSchema, principalOf, roleSchema, type AuthRouteDeps } from './routes-shared.js';
import { roleAtLeast, type Role } from './types.js';
import { patchUser, patchUserSchema, type PatchUserBody } from './user-patch.js';
import { USER_NAME_PATTERN } from './users.js';
import { userView } from './views.js';

/** POST /users, GET /users, GET /users/:name. */
function registerUserCreateAndReadRoutes(app: FastifyInstance, { auth }: AuthRouteDeps): void {
  const { users, audit } = auth;
  app.post<{ Body: { name: string; role: Role; password?: string; mustChangePassword?: boolean } }>(
    '/users',
    {
      config: { role: 'admin' },
      schema: {
        body: {
          type: 'object',
          required: ['name', 'role'],
          properties: {
            name: { type: 'string', pattern: USER_NAME_PATTERN },
            role: roleSchema,
            password: passwordSchema,
            mustChangePassword: { type: 'boolean' },
          },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const { name, role, password } = request.body;
      const generated = password === undefined ? generatePassword() : null;
      const user = await users.create({
        name,
        role,
        password: password ?? generated!,
        mustChangePassword: request.body.mustChangePassword ?? true,
      });
      audit.record({
        action: 'user.create',
        request,
        target: `user:${name}`,
        detail: { role, mustChangePassword: user.mustChangePassword },
      });
      reply.header('cache-control', 'no-store');
      return reply.code(201).send({ user: userView(user), ...(generated !== null ? { password: generated } : {}) });
    },
  );

  app.get('/users', { config: { role: 'admin' } }, async () => ({ users: users.list().map(userView) }));

  app.get<{ Params: { name: string } }>(
    '/users/:name',
    { config: { role: 'viewer' }, schema: { params: nameParam } },
    async (request) => {
      const p = principalOf(request);
      if (!roleAtLeast(p.role, 'admin') && ownerOf(p) !== request.params.name)
        throw new HubHttpError('FORBIDDEN', 'Only an admin sees other users.');
      return { user: userView(users.require(request.params.name)) };
    },
  );
}

/** PATCH /users/:name (your own password, or an admin's changes) and DELETE /users/:name. */
function registerUserChangeRoutes(app: FastifyInstance, deps: AuthRouteDeps): void {
  const { auth } = deps;
  const { users, audit } = auth;
  app.patch<{ Params: { name: string }; Body: PatchUserBody }>(
    '/users/:name',
    { config: { role: 'viewer', passwordChangeAllowed: true }, schema: patchUserSchema },
    async (request, reply) => patchUser(deps, request, reply),
  );

  app.delete<{ Params: { name: string } }>(
    '/users/:name',
    { config: { role: 'admin' }, schema: { params: nameParam } },
    async (request, reply) => {
      const { name } = request.params;
      const user = users.require(name);
      users.delete(name);
      audit.record({ action: 'user.delete', request, target: `user:${name}`, detail: { role: user.role } });
      auth.revoked({ kind: 'user', userName: name });
      return reply.code(204).send();
    },
  );
}

/** The user routes, in this order (the route table lists them so). */
export function registerUserRoutes(app: FastifyInstance, deps: AuthRouteDeps): void {
  registerUserCreateAndReadRoutes(app, deps);
  registerUserChangeRoutes(app, deps);
}
