/** SessionState (runes) and the path routes. */
import { beforeAll, describe, expect, it } from 'vitest';
import { devicePath, parseRoute } from '../src/lib/routes.js';
import type * as SessionModule from '../src/lib/state/session.svelte.js';
import { importRunes } from './runes.js';

let S: typeof SessionModule;
beforeAll(async () => {
  S = await importRunes<typeof SessionModule>('../src/lib/state/session.svelte.ts');
});

const fail = (status: number, code: string) => Object.assign(new Error(code), { status, code });

describe('SessionState', () => {
  it('starts anonymous without a session, logs in, knows the role, must change a generated password', async () => {
    let me: () => Promise<any> = async () => {
      throw fail(401, 'UNAUTHORIZED');
    };
    const changed: any[] = [];
    const session = new S.SessionState({
      me: () => me(),
      login: async (username) => ({ user: { name: username, role: 'admin', mustChangePassword: true } }),
      logout: async () => {},
      changePassword: async (...a) => void changed.push(a),
    });
    await session.init();
    expect(session.status).toBe('anonymous');
    await session.login('admin', 'generated-password');
    expect(session.status).toBe('authenticated');
    expect(session.mustChangePassword).toBe(true);
    expect(session.canOperate).toBe(true);
    await session.changePassword('generated-password', 'a long new passphrase');
    expect(changed).toEqual([['admin', 'generated-password', 'a long new passphrase']]);
    expect(session.mustChangePassword).toBe(false);
    session.expired();
    expect(session.status).toBe('anonymous');
    expect(session.notice).toMatch(/log in again/);
    me = async () => ({ user: { name: 'vic', role: 'viewer', mustChangePassword: false } });
    await session.init();
    expect(session.user?.name).toBe('vic');
    expect(session.canOperate).toBe(false); // viewers get no command form
  });

  it('a token principal without a user still has a name and role', async () => {
    const session = new S.SessionState({
      me: async () => ({ user: null, principal: { name: 'admin-token', role: 'admin' } }),
      login: async () => ({ user: { name: 'x', role: 'viewer', mustChangePassword: false } }),
      logout: async () => {},
      changePassword: async () => {},
    });
    await session.init();
    expect(session.user).toEqual({ name: 'admin-token', role: 'admin', mustChangePassword: false });
  });
});

describe('routes', () => {
  it('parses the fleet, a device (deep link with its range), login and anything else', () => {
    expect(parseRoute('/', '?presence=offline')).toMatchObject({ name: 'fleet' });
    const d = parseRoute('/devices/env%3A0001', '?range=1h');
    expect(d).toMatchObject({ name: 'device', id: 'env:0001' });
    expect(d.params.get('range')).toBe('1h');
    expect(parseRoute('/login', '')).toMatchObject({ name: 'login' });
    expect(parseRoute('/devices/%E0%A4%A', '')).toMatchObject({ name: 'not-found' });
    expect(parseRoute('/nope', '')).toMatchObject({ name: 'not-found', path: '/nope' });
    expect(devicePath('env:0001', new URLSearchParams({ range: '24h' }))).toBe('/devices/env%3A0001?range=24h');
  });
});
