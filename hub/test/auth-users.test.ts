/** Users: CRUD over the API, password policy, own password change, the last admin, password storage. */
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SCRYPT, loadCommonPasswords, PasswordHasher, passwordProblem } from '../src/auth/passwords.js';
import {
  authApp,
  BOOTSTRAP,
  bearer,
  GOOD_PASSWORD,
  login,
  ORIGIN,
  userWithSession,
  type AuthApp,
} from './auth-fixture.js';

let h: AuthApp;
afterEach(async () => h?.close());

const admin = bearer(BOOTSTRAP);

describe('user CRUD', () => {
  it('creates (with a generated password when none is given), lists, changes and deletes users', async () => {
    h = await authApp();
    const created = await h.app.inject({
      method: 'POST',
      url: '/api/v1/users',
      headers: admin,
      payload: { name: 'ada', role: 'operator' },
    });
    expect(created.statusCode).toBe(201);
    const { user, password } = created.json();
    expect(user).toMatchObject({
      name: 'ada',
      role: 'operator',
      disabled: false,
      mustChangePassword: true,
      lastLoginAt: null,
    });
    expect(password).toMatch(/^[A-Za-z0-9_-]{20}$/);
    await login(h.app, 'ada', password);

    const dup = await h.app.inject({
      method: 'POST',
      url: '/api/v1/users',
      headers: admin,
      payload: { name: 'ada', role: 'viewer' },
    });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().error.code).toBe('USER_EXISTS');
    const badName = await h.app.inject({
      method: 'POST',
      url: '/api/v1/users',
      headers: admin,
      payload: { name: 'Ada Lovelace', role: 'viewer' },
    });
    expect(badName.statusCode).toBe(400);
    const extra = await h.app.inject({
      method: 'POST',
      url: '/api/v1/users',
      headers: admin,
      payload: { name: 'eve', role: 'viewer', colour: 'red' },
    });
    expect(extra.statusCode).toBe(400);

    const list = (await h.app.inject({ method: 'GET', url: '/api/v1/users', headers: admin })).json().users;
    expect(list.map((u: { name: string }) => u.name)).toEqual(['ada', 'admin']);
    expect(JSON.stringify(list)).not.toMatch(/hash|scrypt/);

    const patched = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers: admin,
      payload: { role: 'viewer' },
    });
    expect(patched.json().user.role).toBe('viewer');
    const del = await h.app.inject({ method: 'DELETE', url: '/api/v1/users/ada', headers: admin });
    expect(del.statusCode).toBe(204);
    const gone = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers: admin,
      payload: { role: 'viewer' },
    });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error.code).toBe('USER_NOT_FOUND');
  });

  it('only an admin manages users; a user reads only themselves', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'operator');
    const headers = { cookie, origin: ORIGIN };
    expect(
      (await h.app.inject({ method: 'POST', url: '/api/v1/users', headers, payload: { name: 'x', role: 'viewer' } }))
        .statusCode,
    ).toBe(403);
    expect((await h.app.inject({ method: 'GET', url: '/api/v1/users', headers })).statusCode).toBe(403);
    expect((await h.app.inject({ method: 'GET', url: '/api/v1/users/ada', headers })).statusCode).toBe(200);
    expect((await h.app.inject({ method: 'GET', url: '/api/v1/users/admin', headers })).statusCode).toBe(403);
    const promote = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers,
      payload: { role: 'admin' },
    });
    expect(promote.statusCode).toBe(403);
    expect(promote.json().error.code).toBe('FORBIDDEN');
  });

  it('keeps at least one enabled admin (409 LAST_ADMIN)', async () => {
    h = await authApp();
    for (const payload of [{ role: 'operator' }, { disabled: true }]) {
      const res = await h.app.inject({ method: 'PATCH', url: '/api/v1/users/admin', headers: admin, payload });
      expect(res.statusCode).toBe(409);
      expect(res.json().error.code).toBe('LAST_ADMIN');
    }
    expect(
      (await h.app.inject({ method: 'DELETE', url: '/api/v1/users/admin', headers: admin })).json().error.code,
    ).toBe('LAST_ADMIN');
    await h.app.inject({
      method: 'POST',
      url: '/api/v1/users',
      headers: admin,
      payload: { name: 'root', role: 'admin' },
    });
    expect(
      (await h.app.inject({ method: 'PATCH', url: '/api/v1/users/admin', headers: admin, payload: { disabled: true } }))
        .statusCode,
    ).toBe(200);
  });

  it("an admin reset ends the user's sessions and makes them change the password", async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'viewer');
    const res = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers: admin,
      payload: { password: 'a brand new passphrase' },
    });
    expect(res.json().user.mustChangePassword).toBe(true);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie } })).statusCode).toBe(401);
    await login(h.app, 'ada', 'a brand new passphrase');
  });
});

describe('own password', () => {
  it('needs the current password; a wrong one is 403 CURRENT_PASSWORD_WRONG; other sessions end', async () => {
    h = await authApp();
    const cookie = await userWithSession(h.app, 'ada', 'viewer');
    const other = await login(h.app, 'ada', GOOD_PASSWORD);
    const headers = { cookie, origin: ORIGIN };
    const missing = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers,
      payload: { password: 'another long passphrase' },
    });
    expect(missing.statusCode).toBe(400);
    const wrong = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers,
      payload: { currentPassword: 'not my password', password: 'another long passphrase' },
    });
    expect(wrong.statusCode).toBe(403);
    expect(wrong.json().error.code).toBe('CURRENT_PASSWORD_WRONG');
    const ok = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada',
      headers,
      payload: { currentPassword: GOOD_PASSWORD, password: 'another long passphrase' },
    });
    expect(ok.statusCode).toBe(200);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie } })).statusCode).toBe(200);
    expect((await h.app.inject({ method: 'GET', url: '/t/viewer', headers: { cookie: other } })).statusCode).toBe(401);
    await login(h.app, 'ada', 'another long passphrase');
  });

  it.each([
    ['short', 'too short'],
    ['in the list', 'qwertyuiop123'],
    ['a listed word with digits', 'sunshine2024!'],
    ['a listed word repeated', 'monkeymonkeymonkey'],
    ['the user name with digits', 'ada-lovelace1'],
    ['one character repeated', 'aaaaaaaaaaaaaaa'],
  ])('refuses a weak password (%s) with 400 WEAK_PASSWORD', async (_what, password) => {
    h = await authApp();
    await userWithSession(h.app, 'ada-lovelace', 'viewer');
    const res = await h.app.inject({
      method: 'PATCH',
      url: '/api/v1/users/ada-lovelace',
      headers: admin,
      payload: { password },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('WEAK_PASSWORD');
  });
});

describe('password storage', () => {
  it('uses scrypt N=2^15 r=8 p=1, a 32-byte key and a 16-byte salt per password by default', async () => {
    expect(DEFAULT_SCRYPT).toEqual({ N: 32768, r: 8, p: 1, keyLength: 32, saltLength: 16 });
    const hasher = new PasswordHasher();
    const a = await hasher.hash(GOOD_PASSWORD);
    const b = await hasher.hash(GOOD_PASSWORD);
    expect(a).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(a).not.toBe(b);
    expect(await hasher.verify(GOOD_PASSWORD, a)).toBe(true);
    expect(await hasher.verify(`${GOOD_PASSWORD}!`, a)).toBe(false);
    expect(await hasher.verify(GOOD_PASSWORD, 'garbage')).toBe(false);
  });

  it('rehashes at login a hash made with other parameters', async () => {
    h = await authApp();
    const old = await new PasswordHasher({ N: 512 }).hash(GOOD_PASSWORD);
    await userWithSession(h.app, 'ada', 'viewer');
    h.db.prepare('UPDATE auth_users SET password_hash = ? WHERE name = ?').run(old, 'ada');
    await login(h.app, 'ada', GOOD_PASSWORD);
    const stored = h.db.prepare('SELECT password_hash FROM auth_users WHERE name = ?').pluck().get('ada') as string;
    expect(stored).toMatch(/^\$scrypt\$ln=10,/);
  });

  it('ships a list of a few thousand common passwords', () => {
    const list = loadCommonPasswords();
    expect(list.size).toBeGreaterThan(4000);
    expect(list.has('password')).toBe(true);
    expect(passwordProblem('correct horse battery staple')).toBeNull();
    expect(passwordProblem('Password1234')).not.toBeNull();
  });
});
