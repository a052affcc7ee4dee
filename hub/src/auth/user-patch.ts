/**
 * PATCH /users/:name (docs/api.md#users-sessions-and-tokens): a user changes their own password (with the current
 * one); an admin changes roles, disables accounts, resets passwords.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HubHttpError } from '../errors.js';
import { INITIAL_ADMIN, removeInitialPasswordFile } from './initial-admin.js';
import {
  endSessions,
  nameParam,
  ownerOf,
  passwordSchema,
  principalOf,
  refuse,
  roleSchema,
  type AuthRouteDeps,
} from './routes-shared.js';
import { roleAtLeast, type Principal, type Role } from './types.js';
import type { UserRecord } from './users.js';
import { userView } from './views.js';

export interface PatchUserBody {
  role?: Role;
  disabled?: boolean;
  mustChangePassword?: boolean;
  password?: string;
  currentPassword?: string;
}

type PatchUserRequest = FastifyRequest<{ Params: { name: string }; Body: PatchUserBody }>;

export const patchUserSchema = {
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
} as const;

/** Who may change what: an admin anything; a user only their own password. Throws otherwise. */
function checkPatchAllowed(p: Principal, self: boolean, adminFields: boolean): void {
  const admin = roleAtLeast(p.role, 'admin') && !p.mustChangePassword;
  if (!admin && (!self || adminFields)) {
    throw new HubHttpError(
      p.mustChangePassword ? 'PASSWORD_CHANGE_REQUIRED' : 'FORBIDDEN',
      self
        ? 'You may change only your own password here ({"currentPassword", "password"}); roles and accounts are for admins.'
        : 'Only an admin changes other users.',
    );
  }
}

/**
 * Your own password: always with the current one (a stolen session alone cannot take the account). Returns the
 * reply when refused (429), else undefined once the password is changed.
 */
async function changeOwnPassword(
  { auth, options }: AuthRouteDeps,
  request: PatchUserRequest,
  reply: FastifyReply,
  p: Principal,
  password: string,
): Promise<FastifyReply | undefined> {
  const { users, audit } = auth;
  const { name } = request.params;
  const body = request.body;
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
  users.checkPassword(password, name);
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
  await users.setPassword(name, password, { mustChangePassword: false });
  // Every other session of the user ends; this one (and the user's API tokens) stay.
  endSessions(auth, name, p.sessionId ?? null);
  if (name === INITIAL_ADMIN) removeInitialPasswordFile(options.dataDir);
  audit.record({ action: 'password.change', request, target: `user:${name}` });
  return undefined;
}

/** An admin's changes to another user (password reset) or to roles and accounts; audited, revocations told. */
async function applyAdminChanges(
  { auth }: AuthRouteDeps,
  request: PatchUserRequest,
  self: boolean,
  before: UserRecord,
): Promise<void> {
  const { users, sessions, audit } = auth;
  const { name } = request.params;
  const body = request.body;
  const adminFields = body.role !== undefined || body.disabled !== undefined || body.mustChangePassword !== undefined;
  const changes: Record<string, unknown> = {};
  if (!self && body.password !== undefined) {
    await users.setPassword(name, body.password, { mustChangePassword: body.mustChangePassword ?? true });
    changes.password = 'reset';
    endSessions(auth, name);
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
}

/** The PATCH /users/:name handler. */
export async function patchUser(deps: AuthRouteDeps, request: PatchUserRequest, reply: FastifyReply) {
  const { users } = deps.auth;
  const p = principalOf(request);
  const { name } = request.params;
  const body = request.body;
  const self = ownerOf(p) === name;
  const adminFields = body.role !== undefined || body.disabled !== undefined || body.mustChangePassword !== undefined;
  checkPatchAllowed(p, self, adminFields);
  const before = users.require(name);
  if (self && body.password !== undefined) {
    const refused = await changeOwnPassword(deps, request, reply, p, body.password);
    if (refused !== undefined) return refused;
    if (!adminFields) return { user: userView(users.require(name)) };
  } else if (body.currentPassword !== undefined) {
    throw new HubHttpError('INVALID_REQUEST', 'currentPassword goes with password, to change your own password.');
  }
  await applyAdminChanges(deps, request, self, before);
  return { user: userView(users.require(name)) };
}
