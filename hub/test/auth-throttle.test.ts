/** Failed logins and bearer tokens: same answer for unknown users, throttling (429 + Retry-After), logs, metrics. */
import { afterEach, describe, expect, it } from 'vitest';
import { authApp, bearer, GOOD_PASSWORD, userWithSession, type AuthApp } from './auth-fixture.js';

let h: AuthApp;
afterEach(async () => h?.close());

const attempt = (h: AuthApp, username: string, password: string, remoteAddress = '127.0.0.1') =>
  h.app.inject({ method: 'POST', url: '/api/v1/session', payload: { username, password }, remoteAddress });

async function metric(h: AuthApp, name: string, kind: string): Promise<number> {
  const m = await h.metrics.getSingleMetric(name)!.get();
  return m.values.find((v) => v.labels.kind === kind)?.value ?? 0;
}

describe('failed logins', () => {
  it('answer the same for an unknown user and a wrong password, and take about as long', async () => {
    // A scrypt costly enough (8 MiB) to dominate the time, as the production one (32 MiB) does.
    h = await authApp({ scrypt: { N: 2 ** 13 } });
    await userWithSession(h.app, 'ada', 'viewer');
    const wrong = await attempt(h, 'ada', 'not the password at all');
    const unknown = await attempt(h, 'nobody', 'not the password at all');
    expect(wrong.statusCode).toBe(401);
    expect(unknown.statusCode).toBe(401);
    expect(unknown.body).toBe(wrong.body);
    expect(Object.keys(unknown.headers).sort()).toEqual(Object.keys(wrong.headers).sort());

    // Both run one scrypt: compare medians of alternating runs (loose bounds: shared machines are noisy).
    const once = async (user: string) => {
      h.app.auth.throttles.loginPerUser.reset(`user:${user}`);
      h.app.auth.throttles.loginPerClient.reset('10.9.9.9');
      const t0 = performance.now();
      await attempt(h, user, 'not the password at all', '10.9.9.9');
      return performance.now() - t0;
    };
    const wrongRuns: number[] = [];
    const unknownRuns: number[] = [];
    for (let i = 0; i < 5; i++) {
      wrongRuns.push(await once('ada'));
      unknownRuns.push(await once('nobody-here'));
    }
    const median = (runs: number[]) => runs.sort((a, b) => a - b)[2]!;
    const tWrong = median(wrongRuns);
    const tUnknown = median(unknownRuns);
    expect(tUnknown / tWrong).toBeGreaterThan(0.4);
    expect(tUnknown / tWrong).toBeLessThan(2.5);
  });

  it('are throttled per user name: 429 with Retry-After, whatever the password, for known and unknown users alike', async () => {
    h = await authApp();
    await userWithSession(h.app, 'ada', 'viewer');
    for (const user of ['ada', 'ghost']) {
      for (let i = 0; i < 5; i++)
        expect((await attempt(h, user, `wrong password ${i}`, `10.0.0.${i + 1}`)).statusCode).toBe(401);
      const limited = await attempt(h, user, user === 'ada' ? GOOD_PASSWORD : 'x'.repeat(12), '10.0.1.1');
      expect(limited.statusCode).toBe(429);
      expect(limited.json().error.code).toBe('TOO_MANY_ATTEMPTS');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    }
    // After Retry-After the right password works again.
    h.clock.advance(60_000);
    expect((await attempt(h, 'ada', GOOD_PASSWORD, '10.0.2.1')).statusCode).toBe(200);
    expect(await metric(h, 'tendril_auth_failures_total', 'login')).toBe(10);
    expect(await metric(h, 'tendril_auth_throttled_total', 'login')).toBe(2);
  });

  it('are throttled per client address across user names, and logged at warn with the address', async () => {
    h = await authApp();
    for (let i = 0; i < 20; i++)
      expect((await attempt(h, `user${i}`, 'wrong password!!', '192.0.2.7')).statusCode).toBe(401);
    const limited = await attempt(h, 'someone-else', 'wrong password!!', '192.0.2.7');
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBe(10);
    // Another address is not affected.
    expect((await attempt(h, 'someone-else', 'wrong password!!', '192.0.2.8')).statusCode).toBe(401);
    const warnings = h.logs.filter((l) => l.level === 40 && l.client === '192.0.2.7');
    expect(warnings.length).toBeGreaterThanOrEqual(20);
    expect(warnings[0]!.msg).toContain('192.0.2.7');
  });

  it('counts concurrent attempts at once: of 30 parallel wrong logins for one user, 5 are checked, 25 get 429', async () => {
    h = await authApp();
    await userWithSession(h.app, 'ada', 'viewer');
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => attempt(h, 'ada', `wrong password ${i}`, `10.7.0.${i}`)),
    );
    const codes = answers.map((a) => a.statusCode);
    expect(codes.filter((c) => c === 401)).toHaveLength(5);
    expect(codes.filter((c) => c === 429)).toHaveLength(25);
  });

  it("a successful login resets the user's count", async () => {
    h = await authApp();
    await userWithSession(h.app, 'ada', 'viewer');
    for (let i = 0; i < 4; i++) await attempt(h, 'ada', 'wrong password!!', `10.1.0.${i}`);
    expect((await attempt(h, 'ada', GOOD_PASSWORD)).statusCode).toBe(200);
    for (let i = 0; i < 4; i++)
      expect((await attempt(h, 'ada', 'wrong password!!', `10.2.0.${i}`)).statusCode).toBe(401);
  });
});

describe('failed bearer tokens', () => {
  it('are throttled per client address (429 + Retry-After), counted and logged at warn; other addresses unaffected', async () => {
    h = await authApp();
    const wrong = bearer('tdl_' + 'A'.repeat(43));
    for (let i = 0; i < 20; i++) {
      const res = await h.app.inject({
        method: 'GET',
        url: '/t/viewer',
        headers: wrong,
        remoteAddress: '198.51.100.9',
      });
      expect(res.statusCode).toBe(401);
    }
    const limited = await h.app.inject({
      method: 'GET',
      url: '/t/viewer',
      headers: wrong,
      remoteAddress: '198.51.100.9',
    });
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe('TOO_MANY_ATTEMPTS');
    expect(limited.headers['retry-after']).toBe('3');
    expect(
      (await h.app.inject({ method: 'GET', url: '/t/viewer', headers: wrong, remoteAddress: '198.51.100.10' }))
        .statusCode,
    ).toBe(401);
    expect(await metric(h, 'tendril_auth_failures_total', 'token')).toBe(21);
    expect(await metric(h, 'tendril_auth_throttled_total', 'token')).toBe(1);
    expect(h.logs.some((l) => l.level === 40 && l.client === '198.51.100.9')).toBe(true);
    h.clock.advance(3000);
    expect(
      (await h.app.inject({ method: 'GET', url: '/t/viewer', headers: wrong, remoteAddress: '198.51.100.9' }))
        .statusCode,
    ).toBe(401);
  });

  it('on a public route are ignored, not counted', async () => {
    h = await authApp();
    for (let i = 0; i < 30; i++) {
      expect((await h.app.inject({ method: 'GET', url: '/t/public', headers: bearer('wrong-token') })).statusCode).toBe(
        200,
      );
    }
    expect(await metric(h, 'tendril_auth_failures_total', 'token')).toBe(0);
  });
});
