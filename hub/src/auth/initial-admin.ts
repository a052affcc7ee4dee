/**
 * First start: with no users at all, the hub creates `admin` with a generated password, writes it to
 * HUB_DATA_DIR/initial-admin-password (mode 0600) and prints it once. The user must change it at first
 * login; the file is deleted when they do.
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatePassword } from './passwords.js';
import type { UserStore } from './users.js';

export const INITIAL_ADMIN = 'admin';
export const INITIAL_PASSWORD_FILE = 'initial-admin-password';

export interface InitialAdmin {
  user: string;
  password: string;
  file: string;
}

/** Creates the first admin when the hub has no user; returns what was created, or null. */
export async function ensureInitialAdmin(users: UserStore, dataDir: string): Promise<InitialAdmin | null> {
  if (users.count() > 0) return null;
  const password = generatePassword();
  await users.create({ name: INITIAL_ADMIN, role: 'admin', password, mustChangePassword: true });
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, INITIAL_PASSWORD_FILE);
  rmSync(file, { force: true });
  writeFileSync(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return { user: INITIAL_ADMIN, password, file };
}

/** The file goes once the first admin has chosen their own password. */
export function removeInitialPasswordFile(dataDir: string): void {
  rmSync(join(dataDir, INITIAL_PASSWORD_FILE), { force: true });
}

/** The console lines for a created first admin. */
export function initialAdminBanner(created: InitialAdmin): string {
  return [
    '',
    '  Tendril: first start, no users yet. Created user "admin" with the password:',
    '',
    `      ${created.password}`,
    '',
    `  (also in ${created.file}, readable by this account only; deleted once the password is changed).`,
    '  Log in with it; the hub asks for a new password at the first login. This is shown only once.',
    '',
  ].join('\n');
}
