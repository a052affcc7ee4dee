import { readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureAdminToken } from '../src/admin-token.js';
import { tempDir } from './helpers.js';

describe('admin token without HUB_ADMIN_TOKEN', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  it('generates a token once, in a 0600 file, and reuses it on the next start', () => {
    const first = ensureAdminToken({ adminToken: null, dataDir: join(dir.path, 'data') });
    expect(first.file).toBe(join(dir.path, 'data', 'admin-token'));
    expect(first.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(first.file!).mode & 0o777).toBe(0o600);
    expect(readFileSync(first.file!, 'utf8').trim()).toBe(first.token);
    const again = ensureAdminToken({ adminToken: null, dataDir: join(dir.path, 'data') });
    expect(again.token).toBe(first.token);
  });

  it('tightens a loosened file mode', () => {
    const file = join(dir.path, 'admin-token');
    writeFileSync(file, 'an-existing-admin-token-value\n');
    chmodSync(file, 0o644);
    expect(ensureAdminToken({ adminToken: null, dataDir: dir.path }).token).toBe('an-existing-admin-token-value');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('uses HUB_ADMIN_TOKEN when set and writes no file', () => {
    expect(ensureAdminToken({ adminToken: 'from-the-environment-123', dataDir: dir.path })).toEqual({
      token: 'from-the-environment-123',
      file: null,
    });
  });
});
