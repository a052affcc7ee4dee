/**
 * HTTP routes of users, sessions, API tokens and the audit log (docs/api.md#users-sessions-and-tokens).
 * Register under the /api/v1 prefix, after authPlugin (which provides `app.auth` and enforces each `role`).
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { HubHttpError } from '../errors.js';
import { InvalidCursorError, type AuditQuery } from './audit.js';
import { INITIAL_ADMIN, removeInitialPasswordFile } from './initial-admin.js';
import { generatePassword, PASSWORD_MAX_LENGTH } from './passwords.js';
import type { AuthFailure } from './plugin.js';
import type { SessionRecord } from './sessions.js';
import type { TokenRecord } from './tokens.js';
import { describePrincipal, isRole, roleAtLeast, ROLES, type Principal, type Role } from './types.js';
import { USER_NAME_PATTERN, type UserRecord } from './users.js';

export interface AuthRoutesOptions {
  /** The data directory (initial-admin-password is deleted once the first admin changes it). */
  dataDir: string;
}

export function userView(u: UserRecord) {
  return {
    name: u.name,
    role: u.role,
    disabled: u.disabled,
    mustChangePassword: u.mustChangePassword,
    createdAt: u.createdAt,
    passwordChangedAt: u.passwordChangedAt,
    lastLoginAt: u.lastLoginAt,
  };
}

export function tokenView(t: TokenRecord) {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    owner: t.owner,
    createdBy: t.createdBy,
    createdAt: t.createdAt,
    expiresAt: t.expiresAt,
    lastUsedAt: t.lastUsedAt,
    lastUsedFrom: t.lastUsedFrom,
  };
}

/** The user an authenticated principal acts for; null for the bootstrap token and tokens it made. */
function ownerOf(p: Principal): string | null {
  if (p.kind === 'user') return p.name;
  if (p.kind === 'token' && !p.name.startsWith('token:')) return p.name;
  return null;
}

function principalOf(request: FastifyRequest): Principal {
  // The onRequest hook has refused every request without one on these routes.
  return request.principal!;
}

const roleSchema = { type: 'string', enum: [...ROLES] } as const;
const nameParam = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', maxLength: 64 } },
  additionalProperties: false,
} as const;
const idParam = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', maxLength: 64 } },
  additionalProperties: false,
} as const;
const passwordSchema = { type: 'string', minLength: 1, maxLength: PASSWORD_MAX_LENGTH * 4 } as const;

function parseTime(text: string | undefined, field: string): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d{1,16}$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(n))
    throw new HubHttpError(
      'INVALID_REQUEST',
      `querystring/${field} must be ms since the epoch or an ISO 8601 time, got "${text}".`,
    );
  return n;
}

export const authRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (app: FastifyInstance, options) => {
  const auth = app.auth;
  const { users, sessions, tokens, audit } = auth;

  const refuse = (reply: FastifyReply, failure: AuthFailure): FastifyReply => {
    if (failure.retryAfterS !== undefined) reply.header('retry-after', String(failure.retryAfterS));
    return reply.code(failure.status).send({ error: { code: failure.code, message: failure.message } });
  };

  /** Ends sessions of `name` (all, or all but `except`) and tells the live channel which. */
  const endSessions = (name: string, except: string | null = null): void => {
    for (const sessionId of sessions.revokeAllOf(name, except))
      auth.revoked({ kind: 'session', sessionId, userName: name });
  };

  const sessionView = (s: SessionRecord, current: string | undefined) => ({
    id: s.id,
    user: s.userName,
    createdAt: s.createdAt,
    lastSeenAt: s.lastSeenAt,
    expiresAt: sessions.expiresAt(s),
    client: s.client,
    userAgent: s.userAgent,
    current: s.id === current,
  });

  // ---- sessions ---------------------------------------------------------------------------------

  app.post<{ Body: { username: string; password: string } }>(
    '/session',
    {
      config: { role: 'public' },
      schema: {
        body: {
          type: 'object',
          required: ['username', 'password'],
          properties: { username: { type: 'string', minLength: 1, maxLength: 128 }, password: passwordSchema },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      // Login from a page of another origin (login CSRF) is refused; programs send no Origin.
      const origin = request.headers.origin;
      if (origin !== undefined && !auth.isOriginAllowed(request, origin)) {
        request.log.warn({ client: request.ip, origin }, 'login from a foreign origin refused');
        return refuse(reply, {
          ok: false,
          status: 403,
          code: 'ORIGIN_NOT_ALLOWED',
          message: `Logins are accepted from the hub's own origin or HUB_ALLOWED_ORIGINS, not from ${origin}.`,
        });
      }
      const result = await auth.login(request, request.body.username, request.body.password);
      if (!result.ok) {
        if (result.status === 401) reply.header('www-authenticate', 'Bearer realm="tendril"');
        return refuse(reply, result);
      }
      auth.setSessionCookie(reply, result.secret, result.session);
      reply.header('cache-control', 'no-store');
      return {
        user: { name: result.user.name, role: result.user.role, mustChangePassword: result.user.mustChangePassword },
      };
    },
  );

  app.delete('/session', { config: { role: 'viewer', passwordChangeAllowed: true } }, async (request, reply) => {
    const p = principalOf(request);
    if (p.kind === 'user' && p.sessionId !== undefined) {
      sessions.revoke(p.sessionId);
      audit.record({ action: 'logout', request, target: `session:${p.sessionId}` });
      auth.revoked({ kind: 'session', sessionId: p.sessionId, userName: p.name });
      auth.clearSessionCookie(reply);
    }
    return reply.code(204).send();
  });

  app.get<{ Querystring: { user?: string } }>(
    '/sessions',
    {
      config: { role: 'viewer' },
      schema: {
        querystring: {
          type: 'object',
          properties: { user: { type: 'string', maxLength: 64 } },
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const p = principalOf(request);
      const admin = roleAtLeast(p.role, 'admin');
      const own = ownerOf(p);
      let list: SessionRecord[];
      if (request.query.user !== undefined) {
        if (!admin && request.query.user !== own)
          throw new HubHttpError('FORBIDDEN', 'Only an admin sees the sessions of other users.');
        list = sessions.list(request.query.user);
      } else if (admin) list = sessions.list();
      else list = own === null ? [] : sessions.list(own);
      return { sessions: list.map((s) => sessionView(s, p.sessionId)) };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/sessions/:id',
    { config: { role: 'viewer' }, schema: { params: idParam } },
    async (request, reply) => {
      const p = principalOf(request);
      const session = sessions.get(request.params.id);
      if (!session || (!roleAtLeast(p.role, 'admin') && session.userName !== ownerOf(p))) {
        throw new HubHttpError(
          'SESSION_NOT_FOUND',
          `No session "${request.params.id}" of yours; list them with GET /api/v1/sessions.`,
        );
      }
      sessions.revoke(session.id);
      audit.record({
        action: 'session.revoke',
        request,
        target: `session:${session.id}`,
        detail: { user: session.userName },
      });
      auth.revoked({ kind: 'session', sessionId: session.id, userName: session.userName });
      if (session.id === p.sessionId) auth.clearSessionCookie(reply);
      return reply.code(204).send();
    },
  );

  app.get('/me', { config: { role: 'viewer', passwordChangeAllowed: true } }, async (request) => {
    const p = principalOf(request);
    const own = ownerOf(p);
    const user = own === null ? undefined : users.get(own);
    const session = p.sessionId === undefined ? undefined : sessions.get(p.sessionId);
    return {
      user: user ? { name: user.name, role: user.role, mustChangePassword: user.mustChangePassword } : null,
      principal: describePrincipal(p),
      session: session
        ? { id: session.id, createdAt: session.createdAt, expiresAt: sessions.expiresAt(session) }
        : null,
      token: p.tokenId === undefined ? null : { id: p.tokenId, name: p.tokenName ?? null },
    };
  });

  // ---- users ------------------------------------------------------------------------------------

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

  app.patch<{
    Params: { name: string };
    Body: {
      role?: Role;
      disabled?: boolean;
      mustChangePassword?: boolean;
      password?: string;
      currentPassword?: string;
    };
  }>(
    '/users/:name',
    {
      config: { role: 'viewer', passwordChangeAllowed: true },
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          minProperties: 1,
          properties: {
            role: roleSchema,
            disabled: { type: 'boolean' },
            mustChangePassword: { type: 'boolean' },
            password: passwordSchema,
            currentPassword: passwordSchema,
          },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      const { name } = request.params;
      const body = request.body;
      const self = ownerOf(p) === name;
      const admin = roleAtLeast(p.role, 'admin') && !p.mustChangePassword;
      const adminFields =
        body.role !== undefined || body.disabled !== undefined || body.mustChangePassword !== undefined;
      if (!admin && (!self || adminFields)) {
        throw new HubHttpError(
          p.mustChangePassword ? 'PASSWORD_CHANGE_REQUIRED' : 'FORBIDDEN',
          self
            ? 'You may change only your own password here ({"currentPassword", "password"}); roles and accounts are for admins.'
            : 'Only an admin changes other users.',
        );
      }
      const before = users.require(name);

      // Your own password: always with the current one (a stolen session alone cannot take the account).
      if (self && body.password !== undefined) {
        if (body.currentPassword === undefined) {
          throw new HubHttpError(
            'INVALID_REQUEST',
            'body is missing the required field "currentPassword" to change your own password.',
          );
        }
        const key = `user:${name}`;
        const wait = auth.throttles.loginPerUser.retryAfterMs(key);
        if (wait > 0) {
          const retryAfterS = Math.max(1, Math.ceil(wait / 1000));
          return refuse(reply, {
            ok: false,
            status: 429,
            code: 'TOO_MANY_ATTEMPTS',
            message: `Too many wrong passwords; try again in ${retryAfterS} s.`,
            retryAfterS,
          });
        }
        users.checkPassword(body.password, name);
        // Counted ahead (concurrent guesses cannot slip past the check above), given back when right.
        auth.throttles.loginPerUser.fail(key);
        if (!(await users.verifyPassword(name, body.currentPassword))) {
          auth.noteFailure('password_change', request, { user: name });
          audit.record({
            action: 'password.change',
            request,
            target: `user:${name}`,
            outcome: 'failure',
            detail: { reason: 'wrong current password' },
          });
          throw new HubHttpError('CURRENT_PASSWORD_WRONG', 'currentPassword is not your current password.');
        }
        auth.throttles.loginPerUser.reset(key);
        await users.setPassword(name, body.password, { mustChangePassword: false });
        // Every other session of the user ends; this one (and the user's API tokens) stay.
        endSessions(name, p.sessionId ?? null);
        if (name === INITIAL_ADMIN) removeInitialPasswordFile(options.dataDir);
        audit.record({ action: 'password.change', request, target: `user:${name}` });
        if (!adminFields) return { user: userView(users.require(name)) };
      } else if (body.currentPassword !== undefined) {
        throw new HubHttpError('INVALID_REQUEST', 'currentPassword goes with password, to change your own password.');
      }

      const changes: Record<string, unknown> = {};
      if (!self && body.password !== undefined) {
        await users.setPassword(name, body.password, { mustChangePassword: body.mustChangePassword ?? true });
        changes.password = 'reset';
        endSessions(name);
      }
      if (adminFields) {
        users.update(name, { role: body.role, disabled: body.disabled, mustChangePassword: body.mustChangePassword });
        if (body.role !== undefined && body.role !== before.role) changes.role = { from: before.role, to: body.role };
        if (body.disabled !== undefined && body.disabled !== before.disabled) changes.disabled = body.disabled;
        if (body.mustChangePassword !== undefined) changes.mustChangePassword = body.mustChangePassword;
        if (body.disabled === true) sessions.revokeAllOf(name);
      }
      if (Object.keys(changes).length > 0) {
        audit.record({ action: 'user.update', request, target: `user:${name}`, detail: changes });
        // A new role, a disabled account, a password to change: the user's live connections must authenticate again.
        if (changes.role !== undefined || changes.disabled !== undefined || changes.mustChangePassword !== undefined) {
          auth.revoked({ kind: 'user', userName: name });
        }
      }
      return { user: userView(users.require(name)) };
    },
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

  // ---- API tokens -------------------------------------------------------------------------------

  app.post<{ Body: { name: string; role?: Role; expiresAt?: number; expiresInDays?: number } }>(
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
    async (request, reply) => {
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
    },
  );

  app.get<{ Querystring: { user?: string } }>(
    '/tokens',
    {
      config: { role: 'viewer' },
      schema: {
        querystring: {
          type: 'object',
          properties: { user: { type: 'string', maxLength: 64 } },
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const p = principalOf(request);
      const admin = roleAtLeast(p.role, 'admin');
      const own = ownerOf(p);
      if (request.query.user !== undefined && !admin && request.query.user !== own)
        throw new HubHttpError('FORBIDDEN', 'Only an admin sees the tokens of other users.');
      const list =
        request.query.user !== undefined ? tokens.list(request.query.user) : admin ? tokens.list() : tokens.list(own);
      return { tokens: list.map(tokenView) };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/tokens/:id',
    { config: { role: 'viewer' }, schema: { params: idParam } },
    async (request, reply) => {
      const p = principalOf(request);
      const token = tokens.get(request.params.id);
      if (!token || (!roleAtLeast(p.role, 'admin') && (token.owner === null || token.owner !== ownerOf(p)))) {
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

  // ---- audit log --------------------------------------------------------------------------------

  app.get<{
    Querystring: {
      actor?: string;
      device?: string;
      action?: string;
      from?: string;
      to?: string;
      limit?: number;
      cursor?: string;
    };
  }>(
    '/audit',
    {
      config: { role: 'admin' },
      schema: {
        querystring: {
          type: 'object',
          properties: {
            actor: { type: 'string', maxLength: 256 },
            device: { type: 'string', maxLength: 256 },
            action: { type: 'string', maxLength: 64 },
            from: { type: 'string', maxLength: 40 },
            to: { type: 'string', maxLength: 40 },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            cursor: { type: 'string', maxLength: 32 },
          },
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const query: AuditQuery = {
        actor: q.actor,
        device: q.device,
        action: q.action,
        from: parseTime(q.from, 'from'),
        to: parseTime(q.to, 'to'),
        limit: q.limit,
        cursor: q.cursor,
      };
      try {
        return audit.query(query);
      } catch (err) {
        if (err instanceof InvalidCursorError) throw new HubHttpError('INVALID_REQUEST', `querystring/${err.message}`);
        throw err;
      }
    },
  );
};
