/**
 * `npm run hub -- <command>`: manage the hub's users without the dashboard, on the data directory
 * (HUB_DATA_DIR, or --data-dir). Works while the hub runs: the hub reads users and sessions from the
 * database at every request. Every change is written to the audit log with actor `cli:<os user>`.
 *
 *   user add <name> [--role viewer|operator|admin] [--password-stdin]
 *   user role <name> <viewer|operator|admin>
 *   user reset-password <name> [--password-stdin]
 *   user disable <name> | user enable <name> | user delete <name>
 *   user list [--json]
 */
import { chmodSync, existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { systemClock } from '../core/clock.js';
import { HubHttpError } from '../errors.js';
import { AuditLog } from '../auth/audit.js';
import { generatePassword, PasswordHasher } from '../auth/passwords.js';
import { createAuthSchema } from '../auth/schema.js';
import { SessionStore } from '../auth/sessions.js';
import { loadAuthSettings } from '../auth/settings.js';
import { isRole, ROLES, type Role } from '../auth/types.js';
import { UserStore, type UserRecord } from '../auth/users.js';
import { openDatabase } from '../storage/sqlite.js';

export interface CliIo {
  env: Record<string, string | undefined>;
  out(text: string): void;
  err(text: string): void;
  /** The whole of standard input (for --password-stdin). */
  readStdin(): Promise<string>;
}

export const USAGE = `Usage: npm run hub -- user <command> [options]

  user add <name> [--role viewer|operator|admin] [--password-stdin]
        Create a user (default role viewer). Without --password-stdin a password is generated and printed;
        the user must change it at first login.
  user role <name> <viewer|operator|admin>     Change a user's role.
  user reset-password <name> [--password-stdin]
        Set a new password (generated unless given on stdin), end the user's sessions; they must change it.
  user disable <name>                          Refuse the user's logins and end their sessions and tokens' use.
  user enable <name>                           Allow a disabled user again.
  user delete <name>                           Delete the user, their sessions and their API tokens.
  user list [--json]                           List users.

Options: --data-dir DIR   the hub's data directory (default: HUB_DATA_DIR, else ./data)
`;

class UsageError extends Error {}

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

function parse(argv: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') flags.set('help', true);
    else if (arg === '--json' || arg === '--password-stdin') flags.set(arg.slice(2), true);
    else if (arg === '--role' || arg === '--data-dir') {
      const value = argv[++i];
      if (value === undefined) throw new UsageError(`${arg} needs a value.`);
      flags.set(arg.slice(2), value);
    } else if (arg.startsWith('--role=') || arg.startsWith('--data-dir=')) {
      const eq = arg.indexOf('=');
      flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    } else if (arg.startsWith('-')) throw new UsageError(`Unknown option ${arg}.`);
    else positional.push(arg);
  }
  return { positional, flags };
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

/** Runs one command; returns the process exit code (0 ok, 1 refused, 2 usage). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const [group, command, name, extra] = parsed.positional;
  if (parsed.flags.has('help') || group === undefined) {
    io.out(USAGE);
    return group === undefined && !parsed.flags.has('help') ? 2 : 0;
  }
  if (group !== 'user' || command === undefined) {
    io.err(`Unknown command "${parsed.positional.join(' ')}".\n\n${USAGE}`);
    return 2;
  }
  const dataDir = resolve(String(parsed.flags.get('data-dir') ?? (io.env.HUB_DATA_DIR?.trim() || './data')));
  const dbPath = join(dataDir, 'hub.db');
  const isNew = !existsSync(dbPath);
  const db = openDatabase(dbPath);
  try {
    if (isNew) chmodSync(dbPath, 0o600);
    createAuthSchema(db);
    const settings = loadAuthSettings(io.env);
    const users = new UserStore(db, new PasswordHasher(), systemClock);
    const sessions = new SessionStore(db, systemClock, {
      idleMs: settings.sessionIdleMs,
      absoluteMs: settings.sessionAbsoluteMs,
    });
    const audit = new AuditLog(db, { clock: systemClock, retentionDays: settings.auditRetentionDays });
    let osUser = 'unknown';
    try {
      osUser = userInfo().username;
    } catch {
      // no passwd entry (containers): keep 'unknown'
    }
    const actor = `cli:${osUser}`;
    const record = (action: string, detail?: Record<string, unknown>) =>
      audit.record({ action, actor, client: 'local', target: `user:${name}`, ...(detail ? { detail } : {}) });
    const needName = () => {
      if (name === undefined) throw new UsageError(`user ${command} needs a user name.`);
      return name;
    };
    const newPassword = async (): Promise<{ password: string; generated: boolean }> => {
      if (parsed.flags.get('password-stdin') !== true) return { password: generatePassword(), generated: true };
      const text = (await io.readStdin()).replace(/\r?\n$/, '');
      return { password: text, generated: false };
    };

    switch (command) {
      case 'add': {
        const user = needName();
        const role = roleArg(parsed.flags.get('role'), 'viewer');
        const { password, generated } = await newPassword();
        await users.create({ name: user, role, password, mustChangePassword: true });
        record('user.create', { role });
        io.out(`Created user ${user} (${role}).\n`);
        if (generated) io.out(`Password (shown once; it must be changed at first login): ${password}\n`);
        return 0;
      }
      case 'role': {
        const user = needName();
        const role = roleArg(extra);
        const before = users.require(user);
        users.update(user, { role });
        record('user.update', { role: { from: before.role, to: role } });
        io.out(`${user} is now ${role}.\n`);
        return 0;
      }
      case 'reset-password': {
        const user = needName();
        users.require(user);
        const { password, generated } = await newPassword();
        await users.setPassword(user, password, { mustChangePassword: true });
        const ended = sessions.revokeAllOf(user).length;
        record('user.update', { password: 'reset', sessionsEnded: ended });
        io.out(`New password set for ${user}; ${ended} session(s) ended; it must be changed at the next login.\n`);
        if (generated) io.out(`Password (shown once): ${password}\n`);
        return 0;
      }
      case 'disable':
      case 'enable': {
        const user = needName();
        const disabled = command === 'disable';
        users.update(user, { disabled });
        const ended = disabled ? sessions.revokeAllOf(user).length : 0;
        record('user.update', { disabled });
        io.out(
          disabled
            ? `${user} is disabled; ${ended} session(s) ended; their API tokens stop working.\n`
            : `${user} is enabled.\n`,
        );
        return 0;
      }
      case 'delete': {
        const user = needName();
        const before = users.require(user);
        users.delete(user);
        record('user.delete', { role: before.role });
        io.out(`Deleted ${user}, with their sessions and API tokens.\n`);
        return 0;
      }
      case 'list': {
        const list = users.list();
        if (parsed.flags.get('json') === true) {
          io.out(`${JSON.stringify(list.map((u) => ({ ...u })))}\n`);
        } else if (list.length === 0) {
          io.out(`No users yet in ${dataDir}; the hub creates "admin" at its first start.\n`);
        } else {
          io.out(`${list.map(line).join('\n')}\n`);
        }
        return 0;
      }
      default:
        throw new UsageError(`Unknown command "user ${command}".`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof HubHttpError) {
      io.err(`${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    db.close();
  }
}

/** Reads all of standard input. */
export function readAllStdin(): Promise<string> {
  return new Promise((resolveRead, reject) => {
    if (process.stdin.isTTY) {
      // Interactive: read one line.
      process.stdin.setEncoding('utf8');
      process.stdin.once('data', (chunk) => {
        process.stdin.pause();
        resolveRead(String(chunk));
      });
      return;
    }
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => (text += chunk));
    process.stdin.on('end', () => resolveRead(text));
    process.stdin.on('error', reject);
  });
}
