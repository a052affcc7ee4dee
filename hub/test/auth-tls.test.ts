/** Sessions on the real hub served over TLS: __Host- cookie with Secure, the Origin check against https. */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { makeTestCA } from '../../test/support/tls.js';
import { startHub, tempDir, type TestHub } from './helpers.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe('sessions over TLS (real hub)', () => {
  const certDir = tempDir('tendril-auth-tls-');
  let hub: TestHub;
  let ca: Buffer;

  const send = (method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = request(
        `${hub.listening!.url}${path}`,
        { method, ca, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
        },
      );
      req.on('error', reject);
      req.end(body ? JSON.stringify(body) : undefined);
    });

  beforeAll(async () => {
    const files = await makeTestCA(certDir.path);
    ca = Buffer.from(files.caPem);
    const { tls } = loadConfig({ HUB_TLS_CERT: files.certPath, HUB_TLS_KEY: files.keyPath });
    hub = await startHub({ config: { tls } });
  });
  afterAll(async () => {
    await hub.dispose();
    certDir.remove();
  });

  it('sets __Host-tendril_session with Secure, HttpOnly, SameSite=Strict, Path=/ and checks Origin against https', async () => {
    const password = readFileSync(join(hub.dataDir, 'initial-admin-password'), 'utf8').trim();
    const res = await send('POST', '/api/v1/session', {}, { username: 'admin', password });
    expect(res.status, res.body).toBe(200);
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(/^__Host-tendril_session=[A-Za-z0-9_-]{43}; /);
    for (const flag of ['; Secure', '; HttpOnly', '; SameSite=Strict', '; Path=/']) expect(setCookie).toContain(flag);
    expect(setCookie).not.toContain('Domain=');
    const cookie = setCookie.split(';')[0]!;

    const own = hub.listening!.url; // https://127.0.0.1:PORT
    const change = { currentPassword: password, password: 'a passphrase for the tls test' };
    const plain = await send(
      'PATCH',
      '/api/v1/users/admin',
      { cookie, origin: own.replace('https:', 'http:') },
      change,
    );
    expect(plain.status).toBe(403);
    expect(JSON.parse(plain.body).error.code).toBe('ORIGIN_NOT_ALLOWED');
    const ok = await send('PATCH', '/api/v1/users/admin', { cookie, origin: own }, change);
    expect(ok.status, ok.body).toBe(200);
    expect(JSON.parse(ok.body).user.mustChangePassword).toBe(false);
  });
});
