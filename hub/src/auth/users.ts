/**
 * Users of the dashboard and the API: name, role, password hash (passwords.ts), disabled flag, and whether
 * they must change their password at their next login. Read from the database at every use (no cache), so
 * the `npm run hub -- user ...` command line acts on a running hub at once.
 */
import type { Clock } from '../core/clock.js';
import { HubHttpError } from '../errors.js';
import type { SqliteDatabase } from '../storage/sqlite.js';
import { passwordProblem, type PasswordHasher } from './passwords.js';
import { isRole, type Role } from './types.js';

/** Lowercase letters, digits, `.`, `_`, `-`; 1-64 characters, starting with a letter or digit. */
export const USER_NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';
const USER_NAME = new RegExp(USER_NAME_PATTERN);

export interface UserRecord {
  name: string;
  role: Role;
  disabled: boolean;
  mustChangePassword: boolean;
  createdAt: number;
  passwordChangedAt: number;
  lastLoginAt: number | null;
}

interface UserRow {
  name: string;
  role: string;
  password_hash: string;
  must_change_password: number;
  disabled: number;
  created_at: number;
  password_changed_at: number;
  last_login_at: number | null;
}

function fromRow(row: UserRow): UserRecord {
  return {
    name: row.name,
    role: row.role as Role,
    disabled: row.disabled !== 0,
    mustChangePassword: row.must_change_password !== 0,
    createdAt: row.created_at,
    passwordChangedAt: row.password_changed_at,
    lastLoginAt: row.last_login_at,
  };
}

export function isUserName(name: string): boolean {
  return USER_NAME.test(name);
}

export interface UserPatch {
  role?: Role | undefined;
  disabled?: boolean | undefined;
  mustChangePassword?: boolean | undefined;
}

export class UserStore {
  private readonly stmt;

  constructor(
    db: SqliteDatabase,
    private readonly hasher: PasswordHasher,
    private readonly clock: Clock,
  ) {
    this.stmt = {
      get: db.prepare(`SELECT * FROM auth_users WHERE name = ?`),
      all: db.prepare(`SELECT * FROM auth_users ORDER BY name`),
      count: db.prepare(`SELECT count(*) FROM auth_users`).pluck(),
      enabledAdmins: db.prepare(`SELECT count(*) FROM auth_users WHERE role = 'admin' AND disabled = 0`).pluck(),
      insert: db.prepare(
        `INSERT INTO auth_users (name, role, password_hash, must_change_password, created_at, password_changed_at)
         VALUES (@name, @role, @hash, @mustChange, @now, @now)`,
      ),
      update: db.prepare(
        `UPDATE auth_users SET role = @role, disabled = @disabled, must_change_password = @mustChange WHERE name = @name`,
      ),
      setPassword: db.prepare(
        `UPDATE auth_users SET password_hash = @hash, must_change_password = @mustChange, password_changed_at = @now WHERE name = @name`,
      ),
      rehash: db.prepare(`UPDATE auth_users SET password_hash = ? WHERE name = ?`),
      loggedIn: db.prepare(`UPDATE auth_users SET last_login_at = ? WHERE name = ?`),
      remove: db.prepare(`DELETE FROM auth_users WHERE name = ?`),
    };
  }

  get(name: string): UserRecord | undefined {
    const row = this.stmt.get.get(name) as UserRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** Like get(), but throws USER_NOT_FOUND. */
  require(name: string): UserRecord {
    const user = this.get(name);
    if (!user) throw new HubHttpError('USER_NOT_FOUND', `No user "${name}"; list users with GET /api/v1/users.`);
    return user;
  }

  list(): UserRecord[] {
    return (this.stmt.all.all() as UserRow[]).map(fromRow);
  }

  count(): number {
    return this.stmt.count.get() as number;
  }

  /** Creates a user. Throws INVALID_REQUEST (name, role), WEAK_PASSWORD, USER_EXISTS. */
  async create(input: {
    name: string;
    role: Role;
    password: string;
    mustChangePassword: boolean;
  }): Promise<UserRecord> {
    if (!isUserName(input.name)) {
      throw new HubHttpError(
        'INVALID_REQUEST',
        `User name "${input.name}" is not valid: 1-64 of a-z 0-9 . _ - (lowercase), starting with a letter or digit.`,
      );
    }
    if (!isRole(input.role))
      throw new HubHttpError('INVALID_REQUEST', `Role "${String(input.role)}" is not one of viewer, operator, admin.`);
    this.checkPassword(input.password, input.name);
    if (this.get(input.name))
      throw new HubHttpError(
        'USER_EXISTS',
        `A user "${input.name}" already exists; change it with PATCH /api/v1/users/${input.name}.`,
      );
    const hash = await this.hasher.hash(input.password);
    try {
      this.stmt.insert.run({
        name: input.name,
        role: input.role,
        hash,
        mustChange: input.mustChangePassword ? 1 : 0,
        now: this.clock.now(),
      });
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new HubHttpError('USER_EXISTS', `A user "${input.name}" already exists.`);
      }
      throw err;
    }
    return this.get(input.name)!;
  }

  /** Changes role, disabled, mustChangePassword. Throws USER_NOT_FOUND, LAST_ADMIN. */
  update(name: string, patch: UserPatch): UserRecord {
    const user = this.require(name);
    const next = {
      role: patch.role ?? user.role,
      disabled: patch.disabled ?? user.disabled,
      mustChangePassword: patch.mustChangePassword ?? user.mustChangePassword,
    };
    if (user.role === 'admin' && !user.disabled && (next.role !== 'admin' || next.disabled)) this.keepAnAdmin(name);
    this.stmt.update.run({
      name,
      role: next.role,
      disabled: next.disabled ? 1 : 0,
      mustChange: next.mustChangePassword ? 1 : 0,
    });
    return this.get(name)!;
  }

  /** Sets a new password (policy-checked). Throws USER_NOT_FOUND, WEAK_PASSWORD. */
  async setPassword(name: string, password: string, options: { mustChangePassword: boolean }): Promise<UserRecord> {
    this.require(name);
    this.checkPassword(password, name);
    const hash = await this.hasher.hash(password);
    this.stmt.setPassword.run({ name, hash, mustChange: options.mustChangePassword ? 1 : 0, now: this.clock.now() });
    return this.get(name)!;
  }

  /** Deletes a user (their sessions and tokens go with them). Throws USER_NOT_FOUND, LAST_ADMIN. */
  delete(name: string): void {
    const user = this.require(name);
    if (user.role === 'admin' && !user.disabled) this.keepAnAdmin(name);
    this.stmt.remove.run(name);
  }

  /**
   * The user when `password` is theirs and the account is enabled, else null. Unknown and disabled users
   * cost one scrypt like everyone else. Rehashes with the current parameters when they changed.
   */
  async verifyPassword(
    name: string,
    password: string,
    options: { recordLogin?: boolean } = {},
  ): Promise<UserRecord | null> {
    const row = (isUserName(name) ? this.stmt.get.get(name) : undefined) as UserRow | undefined;
    if (!row) return this.hasher.verifyDummy(password).then(() => null);
    const ok = await this.hasher.verify(password, row.password_hash);
    if (!ok || row.disabled !== 0) return null;
    if (this.hasher.needsRehash(row.password_hash)) this.stmt.rehash.run(await this.hasher.hash(password), name);
    if (options.recordLogin) this.stmt.loggedIn.run(this.clock.now(), name);
    return this.get(name) ?? null;
  }

  /** Throws WEAK_PASSWORD when the policy refuses `password`. */
  checkPassword(password: string, userName?: string): void {
    const problem = passwordProblem(password, userName === undefined ? {} : { userName });
    if (problem !== null) throw new HubHttpError('WEAK_PASSWORD', problem);
  }

  private keepAnAdmin(name: string): void {
    if ((this.stmt.enabledAdmins.get() as number) <= 1) {
      throw new HubHttpError(
        'LAST_ADMIN',
        `"${name}" is the last enabled admin; make another user admin first, or the hub could not be administered.`,
      );
    }
  }
}
