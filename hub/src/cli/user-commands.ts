/** The `user ...` commands of `npm run hub` (hub.ts): each works on the stores of the hub's database. */
import type { AuditLog } from '../auth/audit.js';
import { generatePassword } from '../auth/passwords.js';
import type { SessionStore } from '../auth/sessions.js';
import { isRole, ROLES, type Role } from '../auth/types.js';
import type { UserRecord, UserStore } from '../auth/users.js';

/** A command line that does not fit USAGE: exit code 2 with the usage text. */
export class UsageError extends Error {}

/** What a user command needs: its arguments, the stores, the output and the audit actor. */
export interface UserCommandContext {
  command: string;
  name: string | undefined;
  extra: string | undefined;
  flags: Map<string, string | true>;
  dataDir: string;
  users: UserStore;
  sessions: SessionStore;
  audit: AuditLog;
  /** `cli:<os user>`. */
  actor: string;
  out(text: string): void;
  readStdin(): Promise<string>;
}

function roleArg(value: string | true | undefined, fallback?: Role): Role {
  if (value === undefined && fallback) return fallback;
  if (!isRole(value))
    throw new UsageError(`Role must be one of ${ROLES.join(', ')}; got ${String(value ?? 'nothing')}.`);
  return value;
}

function line(u: UserRecord): string {
  const state = u.disabled ? 'disabled' : u.mustChangePassword ? 'must change password' : 'active';
  const last = u.lastLoginAt === null ? 'never logged in' : `last login ${new Date(u.lastLoginAt).toISOString()}`;
  return `${u.name.padEnd(20)} ${u.role.padEnd(8)} ${state.padEnd(20)} ${last}`;
}

function record(ctx: UserCommandContext, action: string, detail?: Record<string, unknown>): void {
  ctx.audit.record({
    action,
    actor: ctx.actor,
    client: 'local',
    target: `user:${ctx.name}`,
    ...(detail ? { detail } : {}),
  });
}

function needName(ctx: UserCommandContext): string {
  if (ctx.name === undefined) throw new UsageError(`user ${ctx.command} needs a user name.`);
  return ctx.name;
}

async function newPassword(ctx: UserCommandContext): Promise<{ password: string; generated: boolean }> {
  if (ctx.flags.get('password-stdin') !== true) return { password: generatePassword(), generated: true };
  const text = (await ctx.readStdin()).replace(/\r?\n$/, '');
  return { password: text, generated: false };
}

async function addUser(ctx: UserCommandContext): Promise<number> {
  const user = needName(ctx);
  const role = roleArg(ctx.flags.get('role'), 'viewer');
  const { password, generated } = await newPassword(ctx);
  await ctx.users.create({ name: user, role, password, mustChangePassword: true });
  record(ctx, 'user.create', { role });
  ctx.out(`Created user ${user} (${role}).\n`);
  if (generated) ctx.out(`Password (shown once; it must be changed at first login): ${password}\n`);
  return 0;
}

function setRole(ctx: UserCommandContext): number {
  const user = needName(ctx);
  const role = roleArg(ctx.extra);
  const before = ctx.users.require(user);
  ctx.users.update(user, { role });
  record(ctx, 'user.update', { role: { from: before.role, to: role } });
  ctx.out(`${user} is now ${role}.\n`);
  return 0;
}

async function resetPassword(ctx: UserCommandContext): Promise<number> {
  const user = needName(ctx);
  ctx.users.require(user);
  const { password, generated } = await newPassword(ctx);
  await ctx.users.setPassword(user, password, { mustChangePassword: true });
  const ended = ctx.sessions.revokeAllOf(user).length;
  record(ctx, 'user.update', { password: 'reset', sessionsEnded: ended });
  ctx.out(`New password set for ${user}; ${ended} session(s) ended; it must be changed at the next login.\n`);
  if (generated) ctx.out(`Password (shown once): ${password}\n`);
  return 0;
}

function setDisabled(ctx: UserCommandContext): number {
  const user = needName(ctx);
  const disabled = ctx.command === 'disable';
  ctx.users.update(user, { disabled });
  const ended = disabled ? ctx.sessions.revokeAllOf(user).length : 0;
  record(ctx, 'user.update', { disabled });
  ctx.out(
    disabled
      ? `${user} is disabled; ${ended} session(s) ended; their API tokens stop working.\n`
      : `${user} is enabled.\n`,
  );
  return 0;
}

function deleteUser(ctx: UserCommandContext): number {
  const user = needName(ctx);
  const before = ctx.users.require(user);
  ctx.users.delete(user);
  record(ctx, 'user.delete', { role: before.role });
  ctx.out(`Deleted ${user}, with their sessions and API tokens.\n`);
  return 0;
}

function listUsers(ctx: UserCommandContext): number {
  const list = ctx.users.list();
  if (ctx.flags.get('json') === true) {
    ctx.out(`${JSON.stringify(list.map((u) => ({ ...u })))}\n`);
  } else if (list.length === 0) {
    ctx.out(`No users yet in ${ctx.dataDir}; the hub creates "admin" at its first start.\n`);
  } else {
    ctx.out(`${list.map(line).join('\n')}\n`);
  }
  return 0;
}

/** Runs `user <command>`; returns the exit code (0). Throws UsageError, or HubHttpError when a store refuses. */
export async function runUserCommand(ctx: UserCommandContext): Promise<number> {
  switch (ctx.command) {
    case 'add':
      return addUser(ctx);
    case 'role':
      return setRole(ctx);
    case 'reset-password':
      return resetPassword(ctx);
    case 'disable':
    case 'enable':
      return setDisabled(ctx);
    case 'delete':
      return deleteUser(ctx);
    case 'list':
      return listUsers(ctx);
    default:
      throw new UsageError(`Unknown command "user ${ctx.command}".`);
  }
}
