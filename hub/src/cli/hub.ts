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
import { PasswordHasher } from '../auth/passwords.js';
import { createAuthSchema } from '../auth/schema.js';
import { SessionStore } from '../auth/sessions.js';
import { loadAuthSettings } from '../auth/settings.js';
import { UserStore } from '../auth/users.js';
import { openDatabase, type SqliteDatabase } from '../storage/sqlite.js';
import { runUserCommand, UsageError, type UserCommandContext } from './user-commands.js';

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

/** The parsed command line, or the exit code when there is nothing to run (usage printed). */
function commandLine(argv: string[], io: CliIo): Parsed | number {
  let parsed: Parsed;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const [group, command] = parsed.positional;
  if (parsed.flags.has('help') || group === undefined) {
    io.out(USAGE);
    return group === undefined && !parsed.flags.has('help') ? 2 : 0;
  }
  if (group !== 'user' || command === undefined) {
    io.err(`Unknown command "${parsed.positional.join(' ')}".\n\n${USAGE}`);
    return 2;
  }
  return parsed;
}

/** The OS user running the command, for the audit actor `cli:<os user>`. */
function osUserName(): string {
  let osUser = 'unknown';
  try {
    osUser = userInfo().username;
  } catch {
    // no passwd entry (containers): keep 'unknown'
  }
  return osUser;
}

/** The stores of the hub's database for a user command (tables created if missing). */
function commandContext(db: SqliteDatabase, parsed: Parsed, dataDir: string, io: CliIo): UserCommandContext {
  const [, command, name, extra] = parsed.positional;
  createAuthSchema(db);
  const settings = loadAuthSettings(io.env);
  const users = new UserStore(db, new PasswordHasher(), systemClock);
  const sessions = new SessionStore(db, systemClock, {
    idleMs: settings.sessionIdleMs,
    absoluteMs: settings.sessionAbsoluteMs,
  });
  const audit = new AuditLog(db, { clock: systemClock, retentionDays: settings.auditRetentionDays });
  return {
    command: command!,
    name,
    extra,
    flags: parsed.flags,
    dataDir,
    users,
    sessions,
    audit,
    actor: `cli:${osUserName()}`,
    out: (text) => io.out(text),
    readStdin: () => io.readStdin(),
  };
}

/** Runs one command; returns the process exit code (0 ok, 1 refused, 2 usage). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const parsed = commandLine(argv, io);
  if (typeof parsed === 'number') return parsed;
  const dataDir = resolve(String(parsed.flags.get('data-dir') ?? (io.env.HUB_DATA_DIR?.trim() || './data')));
  const dbPath = join(dataDir, 'hub.db');
  const isNew = !existsSync(dbPath);
  const db = openDatabase(dbPath);
  try {
    if (isNew) chmodSync(dbPath, 0o600);
    return await runUserCommand(commandContext(db, parsed, dataDir, io));
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
