/** `npm run hub -- user ...`: add, role, reset-password, disable/enable, delete, list, on a data dir a hub is using. */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/hub.js';
import { authApp, BOOTSTRAP, bearer, login, type AuthApp } from './auth-fixture.js';

let dataDir: string;
let h: AuthApp | undefined;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'tendril-cli-'));
});
afterEach(async () => {
  await h?.close();
  h = undefined;
  rmSync(dataDir, { recursive: true, force: true });
});

async function cli(args: string[], stdin = '') {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    env: { HUB_DATA_DIR: dataDir },
    out: (t) => (out += t),
    err: (t) => (err += t),
    readStdin: async () => stdin,
  });
  return { code, out, err };
}

describe('hub CLI', () => {
  it('adds a user with a generated password that works and must be changed; the database file is 0600', async () => {
    const res = await cli(['user', 'add', 'alice', '--role', 'operator']);
    expect(res.code).toBe(0);
    const password = /Password \(shown once[^:]*\): (\S+)/.exec(res.out)?.[1];
    expect(password).toMatch(/^[A-Za-z0-9_-]{20}$/);
    expect(statSync(join(dataDir, 'hub.db')).mode & 0o777).toBe(0o600);
    h = await authApp({ dataDir });
    const me = await h.app.inject({
      method: 'GET',
      url: '/api/v1/me',
      headers: { cookie: await login(h.app, 'alice', password!) },
    });
    expect(me.json().user).toEqual({ name: 'alice', role: 'operator', mustChangePassword: true });
  });

  it('takes a password on stdin and refuses a weak one', async () => {
    expect((await cli(['user', 'add', 'bob', '--password-stdin'], 'a long and unusual passphrase\n')).code).toBe(0);
    const weak = await cli(['user', 'add', 'carol', '--password-stdin'], 'password1234\n');
    expect(weak.code).toBe(1);
    expect(weak.err).toMatch(/common password/);
    h = await authApp({ dataDir });
    await login(h.app, 'bob', 'a long and unusual passphrase');
  });

  it('sets roles, disables and enables, resets passwords and deletes, acting on a running hub at once', async () => {
    h = await authApp({ dataDir }); // creates admin
    await cli(['user', 'add', 'dave', '--password-stdin'], 'dave has a long passphrase');
    const cookie = await login(h.app, 'dave', 'dave has a long passphrase');
    const me = () => h!.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie } });
    expect((await me()).json().user.role).toBe('viewer');

    expect((await cli(['user', 'role', 'dave', 'admin'])).code).toBe(0);
    expect((await me()).json().user.role).toBe('admin');
    expect((await cli(['user', 'role', 'dave', 'root'])).code).toBe(2);

    expect((await cli(['user', 'disable', 'dave'])).code).toBe(0);
    expect((await me()).statusCode).toBe(401);
    expect(
      (
        await h.app.inject({
          method: 'POST',
          url: '/api/v1/session',
          payload: { username: 'dave', password: 'dave has a long passphrase' },
        })
      ).statusCode,
    ).toBe(401);
    expect((await cli(['user', 'enable', 'dave'])).code).toBe(0);
    await login(h.app, 'dave', 'dave has a long passphrase');

    const reset = await cli(['user', 'reset-password', 'dave']);
    expect(reset.code).toBe(0);
    const newPassword = /Password \(shown once\): (\S+)/.exec(reset.out)![1]!;
    await login(h.app, 'dave', newPassword);

    const list = await cli(['user', 'list', '--json']);
    expect(JSON.parse(list.out).map((u: { name: string; role: string }) => [u.name, u.role])).toEqual([
      ['admin', 'admin'],
      ['dave', 'admin'],
    ]);
    expect((await cli(['user', 'list'])).out).toMatch(/^dave\s+admin\s+must change password/m);

    expect((await cli(['user', 'delete', 'dave'])).code).toBe(0);
    expect(h.app.auth.users.get('dave')).toBeUndefined();

    // The CLI's changes are in the audit log with actor cli:<os user>.
    const audit = (
      await h.app.inject({ method: 'GET', url: '/api/v1/audit?action=user.*', headers: bearer(BOOTSTRAP) })
    ).json().entries;
    const cliEntries = audit.filter((e: { actor: string }) => e.actor.startsWith('cli:'));
    expect(cliEntries.map((e: { action: string }) => e.action)).toEqual([
      'user.delete',
      'user.update',
      'user.update',
      'user.update',
      'user.update',
      'user.create',
    ]);
  });

  it('refuses to leave no enabled admin, and unknown users and commands', async () => {
    h = await authApp({ dataDir });
    const last = await cli(['user', 'disable', 'admin']);
    expect(last.code).toBe(1);
    expect(last.err).toMatch(/last enabled admin/);
    expect((await cli(['user', 'role', 'nobody', 'viewer'])).code).toBe(1);
    expect((await cli(['user', 'frobnicate', 'x'])).code).toBe(2);
    expect((await cli([])).code).toBe(2);
    expect((await cli(['--help'])).out).toMatch(/user add <name>/);
  });
});
