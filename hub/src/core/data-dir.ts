/**
 * The data directory holds every reading (spool, readings.db), device credentials (hub.db) and the bootstrap
 * secrets: only the hub's own user may read it. It is created 0700, an existing one is tightened to 0700, and
 * the hub refuses to start with a clear message when it cannot do either.
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { ConfigError } from './env.js';

export function secureDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(
      `HUB_DATA_DIR: cannot make ${dir} a directory only the hub's user can read (${code}); create it owned by that user with mode 0700, or point HUB_DATA_DIR elsewhere.`,
      'HUB_DATA_DIR',
    );
  }
}
