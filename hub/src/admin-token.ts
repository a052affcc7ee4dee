/** The admin API token when HUB_ADMIN_TOKEN is unset: generated once, kept in the data directory. */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HubConfig } from './config.js';

/**
 * Returns the configured admin token, or the one in HUB_DATA_DIR/admin-token, creating that file (mode
 * 0600, 32 random bytes base64url) on first use. `file` is null when the token came from the environment.
 */
export function ensureAdminToken(config: Pick<HubConfig, 'adminToken' | 'dataDir'>): {
  token: string;
  file: string | null;
} {
  if (config.adminToken !== null) return { token: config.adminToken, file: null };
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const file = join(config.dataDir, 'admin-token');
  try {
    const existing = readFileSync(file, 'utf8').trim();
    if (existing.length >= 16) {
      // Tighten the mode if someone loosened it.
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
      return { token: existing, file };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, file };
}
