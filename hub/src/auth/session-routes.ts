/** Session routes (docs/api.md#users-sessions-and-tokens): login, logout, listing and ending sessions, /me. */
import type { FastifyInstance } from 'fastify';
import { HubHttpError } from '../errors.js';
import {
  idParam,
  listScope,
  mayRevoke,
  ownerOf,
  passwordSchema,
  principalOf,
  refuse,
  userQuerySchema,
  type AuthRouteDeps,
} from './routes-shared.js';
import type { SessionRecord, SessionStore } from './sessions.js';
import { describePrincipal } from './types.js';

function sessionView(sessions: SessionStore, s: SessionRecord, current: string | undefined) {
  return {
    id: s.id,
    user: s.userName,
    createdAt: s.createdAt,
    lastSeenAt: s.lastSeenAt,
    expiresAt: sessions.expiresAt(s),
    client: s.client,
    userAgent: s.userAgent,
    current: s.id === current,
  };
}

/** POST /session (login) and DELETE /session (logout). */
function registerLoginRoutes(app: FastifyInstance, { auth }: AuthRouteDeps): void {
  const { sessions, audit } = auth;
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
}

/** GET /sessions and DELETE /sessions/:id. */
function registerSessionListRoutes(app: FastifyInstance, { auth }: AuthRouteDeps): void {
  const { sessions, audit } = auth;
  app.get<{ Querystring: { user?: string } }>(
    '/sessions',
    { config: { role: 'viewer' }, schema: { querystring: userQuerySchema } },
    async (request) => {
      const p = principalOf(request);
      const scope = listScope(p, request.query.user, 'sessions');
      // The bootstrap token (scope null) owns no sessions.
      const list: SessionRecord[] = scope === null ? [] : sessions.list(scope);
      return { sessions: list.map((s) => sessionView(sessions, s, p.sessionId)) };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/sessions/:id',
    { config: { role: 'viewer' }, schema: { params: idParam } },
    async (request, reply) => {
      const p = principalOf(request);
      const session = sessions.get(request.params.id);
      if (!session || !mayRevoke(p, session.userName)) {
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
}

/** GET /me: who is calling, with its session or token. */
function registerMeRoute(app: FastifyInstance, { auth }: AuthRouteDeps): void {
  const { users, sessions } = auth;
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
}

/** The session routes and /me, in this order (the route table lists them so). */
export function registerSessionRoutes(app: FastifyInstance, deps: AuthRouteDeps): void {
  registerLoginRoutes(app, deps);
  registerSessionListRoutes(app, deps);
  registerMeRoute(app, deps);
}
