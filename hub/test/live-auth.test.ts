/** Authentication, Origin and role on the live channel (docs/live.md §1.1, §2, §9). */
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import type { Principal } from '../src/auth/types.js';
import { GOOD_TOKEN, LiveTestClient, type LiveTestHub, startLiveHub } from './live-helpers.js';

let hub: LiveTestHub;
const clients: LiveTestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await hub?.close();
});

async function connect(opts: Parameters<typeof LiveTestClient.connect>[1] = {}): Promise<LiveTestClient> {
  const c = await LiveTestClient.connect(hub.url, opts);
  clients.push(c);
  return c;
}

/** The HTTP answer to an upgrade the hub refuses. */
function refusal(
  url: string,
  opts: { headers?: Record<string, string>; protocols?: string[]; origin?: string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols ?? ['tendril.live.v1'], {
      headers: opts.headers ?? {},
      ...(opts.origin ? { origin: opts.origin } : {}),
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('open', () => {
      ws.close();
      reject(new Error('the upgrade was accepted'));
    });
    ws.on('error', () => undefined);
  });
}

describe('authentication', () => {
  it('§2.1, §2.3: a session cookie authenticates at the upgrade; hello says so with the principal and limits', async () => {
    hub = await startLiveHub();
    const c = await connect({ cookie: 'sid=viewer' });
    const hello = await c.next((m) => m.type === 'hello', 'hello');
    expect(hello).toMatchObject({
      protocol: 'tendril.live.v1',
      auth: 'ok',
      principal: { kind: 'user', name: 'vera', role: 'viewer' },
    });
    expect(hello.limits).toMatchObject({
      maxMessageBytes: 16_384,
      maxSubscriptions: 32,
      maxDevicesPerSubscription: 500,
    });
    expect(c.ws.protocol).toBe('tendril.live.v1');
    const pong = await c.request({ type: 'ping' });
    expect(pong.type).toBe('result');
  });

  it('§2.2: a program without a cookie sends its token first; requests pipelined behind it are answered after auth_ok', async () => {
    hub = await startLiveHub();
    const c = await connect();
    const hello = await c.next((m) => m.type === 'hello', 'hello');
    expect(hello).toMatchObject({ auth: 'required', principal: null });
    c.send({ type: 'auth', token: GOOD_TOKEN });
    c.send({ type: 'subscribe', id: 1, stream: 'health' });
    const ok = await c.next((m) => m.type === 'auth_ok', 'auth_ok');
    expect(ok.principal).toEqual({ kind: 'token', name: 'ci', role: 'viewer' });
    const result = await c.next((m) => m.type === 'result' && m.id === 1, 'the subscribe result');
    expect(result.result.recovered).toBe(false);
    c.send({ type: 'auth', token: GOOD_TOKEN });
    const err = await c.next(
      (m) => m.type === 'error' && m.error.message.includes('already authenticated'),
      'the error for a second auth',
    );
    expect(err.error.code).toBe('INVALID_REQUEST');
  });

  it('§2.2.2: a wrong token, or another first message, closes with 1008 UNAUTHORIZED after an error', async () => {
    hub = await startLiveHub();
    const c = await connect();
    c.send({ type: 'auth', token: 'wrong' });
    expect(await c.closed).toEqual({ code: 1008, reason: 'UNAUTHORIZED' });
    expect(c.messages.find((m) => m.type === 'error')).toMatchObject({ id: null, error: { code: 'UNAUTHORIZED' } });

    const d = await connect();
    d.send({ type: 'subscribe', id: 1, stream: 'fleet' });
    expect(await d.closed).toEqual({ code: 1008, reason: 'UNAUTHORIZED' });
  });

  it('§2.2.2: no auth within authTimeoutMs closes with 1008', async () => {
    hub = await startLiveHub({ limits: { authTimeoutMs: 200 } });
    const c = await connect();
    const started = Date.now();
    expect(await c.closed).toEqual({ code: 1008, reason: 'UNAUTHORIZED' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('§2.4: a principal without a role, or one that must change its password, is closed with 1008', async () => {
    hub = await startLiveHub({
      plugin: { verifyToken: () => ({ kind: 'token', name: 'x', role: 'guest' }) as unknown as Principal },
    });
    const c = await connect();
    c.send({ type: 'auth', token: 'anything' });
    expect(await c.closed).toEqual({ code: 1008, reason: 'FORBIDDEN' });
    const d = await connect({ cookie: 'sid=newpw' });
    expect(await d.closed).toEqual({ code: 1008, reason: 'PASSWORD_CHANGE_REQUIRED' });
  });
});

describe('handshake', () => {
  it('§2.1.2: a page from another origin is refused with 403 ORIGIN_NOT_ALLOWED, even with a valid cookie', async () => {
    hub = await startLiveHub({ plugin: { allowedOrigins: ['https://dash.example.com'] } });
    const refused = await refusal(hub.url, { headers: { cookie: 'sid=viewer' }, origin: 'https://evil.example' });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'ORIGIN_NOT_ALLOWED' } });
    // The hub's own origin and a configured one are allowed.
    const own = await connect({ cookie: 'sid=viewer', origin: hub.origin });
    expect((await own.next((m) => m.type === 'hello', 'hello')).auth).toBe('ok');
    const listed = await connect({ cookie: 'sid=viewer', origin: 'https://dash.example.com' });
    expect((await listed.next((m) => m.type === 'hello', 'hello')).auth).toBe('ok');
  });

  it('§1.1.2: an upgrade without tendril.live.v1 is refused with 400 INVALID_REQUEST', async () => {
    hub = await startLiveHub();
    const refused = await refusal(hub.url, { headers: { cookie: 'sid=viewer' }, protocols: ['tendril.v1'] });
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body).error.code).toBe('INVALID_REQUEST');
  });
});
