/** Bounded input on the live channel (docs/live.md §1.2, §7.4.3, §8): each limit, its error, and a test. */
import { afterEach, describe, expect, it } from 'vitest';
import { deviceIds, LiveTestClient, type LiveTestHub, startLiveHub } from './live-helpers.js';

let hub: LiveTestHub;
const clients: LiveTestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await hub?.close();
});

async function viewer(): Promise<LiveTestClient> {
  const c = await LiveTestClient.viewer(hub);
  clients.push(c);
  return c;
}

describe('limits', () => {
  it('§1.2.3: a message over maxMessageBytes closes with 1009 PAYLOAD_TOO_LARGE', async () => {
    hub = await startLiveHub();
    const c = await viewer();
    c.send(JSON.stringify({ type: 'ping', id: 1, pad: 'x'.repeat(16_384) }));
    expect(await c.closed).toEqual({ code: 1009, reason: 'PAYLOAD_TOO_LARGE' });
  });

  it('§1.2.2: a binary message closes with 1003', async () => {
    hub = await startLiveHub();
    const c = await viewer();
    c.ws.send(Buffer.from([1, 2, 3]));
    expect((await c.closed).code).toBe(1003);
  });

  it('§3.3.2: text that is not a JSON object is answered with INVALID_REQUEST and id null; the connection stays', async () => {
    hub = await startLiveHub();
    const c = await viewer();
    c.send('{not json');
    const err = await c.next((m) => m.type === 'error', 'the error for bad JSON');
    expect(err).toMatchObject({ id: null, error: { code: 'INVALID_REQUEST' } });
    c.send('[1,2]');
    c.send({ type: 'ping' });
    await c.until(() => c.messages.filter((m) => m.type === 'error').length === 3, 'three errors');
    expect((await c.request({ type: 'ping' })).type).toBe('result');
  });

  it('§8: past requestsPerSecond (bursts of requestBurst) requests are refused with RATE_LIMITED, not run', async () => {
    hub = await startLiveHub({ limits: { requestsPerSecond: 5, requestBurst: 10 } });
    const c = await viewer();
    for (let id = 1; id <= 30; id++) c.send({ type: 'ping', id });
    await c.until(
      () => c.messages.filter((m) => (m.type === 'result' || m.type === 'error') && m.id === 30).length === 1,
      'the answer to request 30',
    );
    const answers = c.messages.filter((m) => m.type === 'result' || m.type === 'error');
    const ok = answers.filter((m) => m.type === 'result').length;
    const limited = answers.filter((m) => m.type === 'error');
    expect(ok).toBeGreaterThanOrEqual(10);
    expect(ok).toBeLessThanOrEqual(12);
    expect(limited.length).toBe(30 - ok);
    expect(limited[0]!.error).toMatchObject({
      code: 'RATE_LIMITED',
      message: expect.stringMatching(/retry in \d+ ms/),
    });
    expect(limited.every((m) => typeof m.id === 'number')).toBe(true);
  });

  it('§8: more than maxSubscriptions is TOO_MANY_SUBSCRIPTIONS', async () => {
    hub = await startLiveHub({ limits: { maxSubscriptions: 3 } });
    const c = await viewer();
    for (let i = 0; i < 3; i++) expect((await c.request({ type: 'subscribe', stream: 'health' })).type).toBe('result');
    const refused = await c.request({ type: 'subscribe', stream: 'health' });
    expect(refused.error.code).toBe('TOO_MANY_SUBSCRIPTIONS');
    await c.request({ type: 'unsubscribe', subscription: 1 });
    expect((await c.request({ type: 'subscribe', stream: 'health' })).type).toBe('result');
  });

  it('§8: more than maxDevicesPerSubscription is TOO_MANY_DEVICES, at subscribe and at update', async () => {
    hub = await startLiveHub({ devices: 5, limits: { maxDevicesPerSubscription: 2 } });
    const ids = deviceIds(5);
    const c = await viewer();
    const refused = await c.request({ type: 'subscribe', stream: 'device', devices: ids.slice(0, 3) });
    expect(refused.error.code).toBe('TOO_MANY_DEVICES');
    await c.subscribe({ id: 10, stream: 'device', devices: ids.slice(0, 2) });
    const grow = await c.request({ type: 'update', subscription: 10, addDevices: [ids[2]!] });
    expect(grow.error.code).toBe('TOO_MANY_DEVICES');
    const swap = await c.request({ type: 'update', subscription: 10, addDevices: [ids[2]!], removeDevices: [ids[0]!] });
    expect(swap.type).toBe('result');
  });

  it('§7.4.3: answers piling up unread past controlQueueBytes close the connection with 1008 CONTROL_QUEUE_FULL', async () => {
    hub = await startLiveHub({
      devices: 1000,
      limits: { controlQueueBytes: 4096, requestsPerSecond: 1e6, requestBurst: 1e6 },
    });
    const ids = deviceIds(1000);
    const c = await viewer();
    await c.subscribe({ stream: 'fleet' });
    const live = [...hub.app.live.clients][0]!;
    c.pause();
    // Fill the socket with data first: the hub coalesces it, answers then have to wait in the control queue.
    let seq = 0;
    while (live.stats.coalesced === 0) {
      for (let k = 0; k < 2000; k++, seq++) hub.readings(ids[seq % 1000]!, seq, seq, { temperature: seq });
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (let id = 100; id < 300; id++) c.send({ type: 'ping', id });
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 5000;
      const check = (): void => {
        if (!live.isOpen) return resolve();
        if (Date.now() > deadline) return reject(new Error('timed out waiting for the hub to close the client'));
        setTimeout(check, 10);
      };
      check();
    });
    expect(hub.app.live.clients.size).toBe(0);
    c.resume();
    expect(await c.closed).toEqual({ code: 1008, reason: 'CONTROL_QUEUE_FULL' });
  }, 30_000);
});

describe('keepalive', () => {
  it('§7.4.4: a client that answers no ping for 2 x pingIntervalMs is terminated; one that answers stays', async () => {
    hub = await startLiveHub({ limits: { pingIntervalMs: 100 } });
    const silent = await viewer();
    const alive = await viewer();
    silent.pause();
    const started = Date.now();
    const [quiet, answering] = [...hub.app.live.clients];
    expect(quiet!.isOpen && answering!.isOpen).toBe(true);
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (hub.app.live.clients.size === 1) return resolve();
        if (Date.now() - started > 5000)
          return reject(new Error('timed out waiting for the silent client to be terminated'));
        setTimeout(check, 20);
      };
      check();
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect([...hub.app.live.clients]).toEqual([answering]);
    silent.resume();
    expect((await silent.closed).code).toBe(1006);
    expect((await alive.request({ type: 'ping' })).type).toBe('result');
  });
});

describe('connections', () => {
  it('§8: past maxClientsPerAddress (or maxClients) the upgrade is refused with 429 RATE_LIMITED', async () => {
    hub = await startLiveHub({ limits: { maxClientsPerAddress: 2 } });
    const a = await viewer();
    await viewer();
    const refused = await LiveTestClient.connect(hub.url, { cookie: 'sid=viewer' }).then(
      (c) => (c.close(), 'accepted'),
      (err: Error) => err.message,
    );
    expect(refused).toBe('upgrade refused with HTTP 429');
    a.close();
    await a.closed;
    await new Promise<void>((resolve) => {
      const check = (): void => (hub.app.live.clients.size === 1 ? resolve() : void setTimeout(check, 10));
      check();
    });
    const again = await viewer();
    expect((await again.request({ type: 'ping' })).type).toBe('result');
  });
});
