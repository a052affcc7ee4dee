/** Device channel: handshake, authentication and protocol errors (docs/protocol.md §1, §3.2, §6, §9). */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameType } from '@tendril/device-sdk';
import { TestDevice } from './device-client.js';
import { auth, provision, startHub, waitFor, type TestHub } from './helpers.js';

describe('device channel handshake', () => {
  let hub: TestHub;
  let url: string;
  let token: string;
  beforeAll(async () => {
    hub = await startHub({ config: { helloTimeoutMs: 200 } });
    url = hub.listening!.deviceUrl;
    token = await provision(hub.app, 'dev-1');
    await provision(hub.app, 'dev-off');
    await hub.app.inject({
      method: 'PATCH',
      url: '/api/v1/devices/dev-off',
      headers: auth,
      payload: { disabled: true },
    });
  });
  afterAll(async () => {
    await hub.dispose();
  });

  it('§1.1.3 refuses an upgrade without tendril.v1 with HTTP 400 and a clear body', async () => {
    for (const protocols of [[], ['mqtt']]) {
      const ws = new WebSocket(url, protocols);
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        ws.on('open', () => reject(new Error('the hub accepted the upgrade')));
        ws.on('error', () => undefined);
        ws.on('unexpected-response', (_req, response) => {
          let body = '';
          response.on('data', (c: Buffer) => (body += c.toString()));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        });
      });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body).error).toMatchObject({
        code: 'SUBPROTOCOL_REQUIRED',
        message: expect.stringContaining('tendril.v1'),
      });
    }
  });

  it('§1.1.4 selects tendril.v1 and negotiates no compression', async () => {
    const d = await TestDevice.connect(url, { protocols: ['other', 'tendril.v1'], perMessageDeflate: true });
    expect(d.ws.protocol).toBe('tendril.v1');
    expect(d.ws.extensions).toBe('');
    d.close();
    await d.closedWithin();
  });

  it('§6.1.2 answers an unknown device and a wrong token identically: AUTH_FAILED, close 1008', async () => {
    const outcomes = [];
    for (const [deviceId, tok] of [
      ['no-such-device', token],
      ['dev-1', 'wrong-token'],
    ] as const) {
      const d = await TestDevice.connect(url);
      d.send({
        type: 'hello',
        deviceId,
        token: tok,
        firmware: '',
        sdk: '',
        epoch: 1,
        lastSeq: 0,
        clock: 0,
        dropped: 0,
        metrics: [],
      });
      const err = await d.next('error', 'ERROR AUTH_FAILED');
      const closed = await d.closedWithin();
      outcomes.push({ err, closed, rest: d.frames });
    }
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(outcomes[0]!.err).toMatchObject({ code: 'AUTH_FAILED', seq: 0, alias: null });
    expect(outcomes[0]!.closed).toEqual({ code: 1008, reason: 'AUTH_FAILED' });
    expect(outcomes[0]!.rest).toEqual([]);
  });

  it('§6.1.2 refuses a disabled device with DEVICE_DISABLED', async () => {
    const offToken = (
      await hub.app.inject({ method: 'POST', url: '/api/v1/devices/dev-off/token', headers: auth })
    ).json().token;
    const d = await TestDevice.connect(url);
    d.send({
      type: 'hello',
      deviceId: 'dev-off',
      token: offToken,
      firmware: '',
      sdk: '',
      epoch: 1,
      lastSeq: 0,
      clock: 0,
      dropped: 0,
      metrics: [],
    });
    expect((await d.next('error')).code).toBe('DEVICE_DISABLED');
    expect(await d.closedWithin()).toEqual({ code: 1008, reason: 'DEVICE_DISABLED' });
  });

  it('§1.2.3 closes with 1003 after ERROR TEXT_FRAME on a text message', async () => {
    const d = await TestDevice.connect(url);
    d.sendRaw('hello?');
    expect((await d.next('error')).code).toBe('TEXT_FRAME');
    expect(await d.closedWithin()).toEqual({ code: 1003, reason: 'TEXT_FRAME' });
  });

  it('§9.1.2 sends the ERROR code first, then closes 1002 on a malformed frame', async () => {
    const d = await TestDevice.connect(url);
    d.sendRaw(Uint8Array.of(FrameType.HELLO, 0x05, 0x61)); // deviceId length 5, one byte present
    const err = await d.next('error');
    expect(err).toMatchObject({ code: 'FRAME_TRUNCATED', seq: 0, alias: null });
    expect(await d.closedWithin()).toEqual({ code: 1002, reason: 'FRAME_TRUNCATED' });
    const d2 = await TestDevice.connect(url);
    d2.sendRaw(Uint8Array.of(0x7f));
    expect((await d2.next('error')).code).toBe('UNKNOWN_FRAME_TYPE');
    expect(await d2.closedWithin()).toEqual({ code: 1002, reason: 'UNKNOWN_FRAME_TYPE' });
  });

  it('§9.2 closes an oversized message with 1009', async () => {
    const d = await TestDevice.connect(url);
    d.sendRaw(new Uint8Array(hub.config.maxFrameBytes + 1).fill(FrameType.READING, 0, 1));
    const closed = await d.closedWithin();
    expect(closed.code).toBe(1009);
    await waitFor('the hub to count the close as FRAME_TOO_LARGE', async () =>
      /tendril_connections_closed_total\{code="FRAME_TOO_LARGE"\} [1-9]/.test(
        (await hub.app.inject({ method: 'GET', url: '/metrics' })).body,
      ),
    );
  });

  it('§3.2.1 answers a reading before HELLO with UNEXPECTED_FRAME and 1002', async () => {
    const d = await TestDevice.connect(url);
    d.send({ type: 'reading', seq: 1, ts: Date.now(), values: [{ alias: 0, kind: 'f32', value: 1 }] });
    expect((await d.next('error')).code).toBe('UNEXPECTED_FRAME');
    expect(await d.closedWithin()).toEqual({ code: 1002, reason: 'UNEXPECTED_FRAME' });
  });

  it('§3.2.1 answers a second HELLO with UNEXPECTED_FRAME', async () => {
    const d = await TestDevice.connect(url);
    await d.hello({ deviceId: 'dev-1', token });
    d.send({
      type: 'hello',
      deviceId: 'dev-1',
      token,
      firmware: '',
      sdk: '',
      epoch: 1,
      lastSeq: 0,
      clock: 0,
      dropped: 0,
      metrics: [],
    });
    expect((await d.next('error')).code).toBe('UNEXPECTED_FRAME');
    expect(await d.closedWithin()).toEqual({ code: 1002, reason: 'UNEXPECTED_FRAME' });
  });

  it('§6.2 closes a connection that sends no HELLO with HELLO_TIMEOUT, 1008', async () => {
    const d = await TestDevice.connect(url);
    expect((await d.next('error', 'ERROR HELLO_TIMEOUT')).code).toBe('HELLO_TIMEOUT');
    expect(await d.closedWithin()).toEqual({ code: 1008, reason: 'HELLO_TIMEOUT' });
  });

  it('§4.3 WELCOME carries the hub limits and a new epoch starts at 0', async () => {
    const d = await TestDevice.connect(url);
    const before = Date.now();
    const welcome = await d.hello({ deviceId: 'dev-1', token, epoch: 4242 });
    expect(welcome).toMatchObject({
      ackedSeq: 0,
      heartbeatMs: hub.config.heartbeatMs,
      maxFrameBytes: hub.config.maxFrameBytes,
      maxBatch: 256,
      maxRate: hub.config.deviceRate,
    });
    expect(welcome.serverTime).toBeGreaterThanOrEqual(before - 1000);
    d.close();
    await d.closedWithin();
  });
});
