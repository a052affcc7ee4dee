/** Login (POST /api/v1/session, docs/security.md): throttled per user name and client address, audited. */
import type { FastifyRequest } from 'fastify';
import { fail, type AuthCore } from './core.js';
import type { AuthFailure } from './plugin-types.js';
import type { SessionRecord } from './sessions.js';
import type { UserRecord } from './users.js';

export type LoginResult = { ok: true; user: UserRecord; secret: string; session: SessionRecord } | AuthFailure;

/** Checks the password (with throttling and audit) and opens a new session, ending the one the browser held. */
export async function login(
  core: AuthCore,
  request: FastifyRequest,
  username: string,
  password: string,
): Promise<LoginResult> {
  const { throttles, users, sessions, audit, cookieName } = core;
  const name = username.trim().toLowerCase();
  const userKey = `user:${name.slice(0, 64)}`;
  const waitUser = throttles.loginPerUser.retryAfterMs(userKey);
  const waitClient = throttles.loginPerClient.retryAfterMs(request.ip);
  if (waitUser > 0 || waitClient > 0) {
    return core.report.throttledFailure(
      'login',
      Math.max(waitUser, waitClient),
      request,
      waitClient > 0 ? `client ${request.ip}` : 'this user name',
    );
  }
  // The attempt counts as a failure before the password is checked, and is given back if it was right: so
  // concurrent attempts cannot all pass the check above while the first ones are still hashing.
  const startsUser = throttles.loginPerUser.fail(userKey);
  const startsClient = throttles.loginPerClient.fail(request.ip);
  const user = await users.verifyPassword(name, password, { recordLogin: true });
  if (!user) {
    if (startsUser || startsClient)
      request.log.warn({ client: request.ip, user: name }, 'throttling logins after repeated failures');
    core.report.noteFailure('login', request, { user: name });
    audit.record({
      action: 'login',
      actor: null,
      client: request.ip,
      target: `user:${name.slice(0, 64)}`,
      outcome: 'failure',
    });
    return fail(401, 'INVALID_CREDENTIALS', 'Unknown user name or wrong password (or the account is disabled).');
  }
  throttles.loginPerUser.reset(userKey);
  throttles.loginPerClient.refund(request.ip);
  // A new session id at every login; the session the browser held before (if any) ends.
  const previous = request.cookies?.[cookieName];
  if (previous) {
    const old = sessions.lookup(previous);
    if (old.state === 'valid') sessions.revoke(old.session.id);
  }
  sessions.prune();
  const { secret, session } = sessions.create(user.name, {
    client: request.ip,
    userAgent: request.headers['user-agent'] ?? null,
  });
  audit.record({
    action: 'login',
    actor: { kind: 'user', name: user.name, role: user.role },
    client: request.ip,
    target: `session:${session.id}`,
  });
  return { ok: true, user, secret, session };
}
