import type { AddressInfo } from 'node:net';
import { SUBPROTOCOL } from '@tendril/device-sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { waitFor } from '../../test/support/index.js';
import { Fleet } from '../src/fleet.js';
import { MODELS } from '../src/models/index.js';
import { planFleet } from '../src/plan.js';

const timeoutsNow = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('fleet scaling', () => {
  let cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.reverse()) await fn();
    cleanup = [];
  });

  it('500 connected devices share one timer: no per-device setInterval or setTimeout', async () => {
    // A bare ws server that accepts and holds connections (it never welcomes, so the devices stay in their
    // handshake, with the SDK's heartbeat timer armed through the fleet's scheduler).
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      perMessageDeflate: false,
      handleProtocols: (p) => (p.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    await new Promise<void>((r) => wss.once('listening', r));
    cleanup.push(
      () =>
        new Promise<void>((r) => {
          for (const c of wss.clients) c.terminate();
          wss.close(() => r());
        }),
    );
    let hellos = 0;
    wss.on('connection', (ws) => ws.once('message', () => hellos++));

    const before = timeoutsNow();
    const devices = planFleet(500, MODELS, 3).map((p) => ({ ...p, token: `token-${p.id}` }));
    const fleet = new Fleet({
      deviceUrl: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/v1/device`,
      devices,
      ratePerSecond: 1,
      connectsPerSecond: 5000,
    });
    cleanup.push(() => fleet.close());
    fleet.start();
    await waitFor(() => hellos === 500, { what: 'HELLO from all 500 devices', timeoutMs: 20_000 });
    // The scheduler's tick is the only timer the fleet adds.
    expect(timeoutsNow() - before).toBeLessThanOrEqual(1);
    // ...while every device has SDK timers pending in the wheel.
    expect(fleet.scheduler.size).toBeGreaterThanOrEqual(500);
  });

  it('paces connections: at most connectsPerSecond new connections per second', async () => {
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      perMessageDeflate: false,
      handleProtocols: () => SUBPROTOCOL,
    });
    await new Promise<void>((r) => wss.once('listening', r));
    cleanup.push(
      () =>
        new Promise<void>((r) => {
          for (const c of wss.clients) c.terminate();
          wss.close(() => r());
        }),
    );
    const arrivals: number[] = [];
    wss.on('connection', () => arrivals.push(Date.now()));
    const devices = planFleet(60, MODELS, 4).map((p) => ({ ...p, token: 't' }));
    const fleet = new Fleet({
      deviceUrl: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/v1/device`,
      devices,
      ratePerSecond: 1,
      connectsPerSecond: 100,
    });
    cleanup.push(() => fleet.close());
    const started = Date.now();
    fleet.start();
    await waitFor(() => arrivals.length === 60, { what: 'all 60 paced connections', timeoutMs: 10_000 });
    // 60 connections at 100/s take about 0.6 s; unpaced they would all land within a few ms.
    expect(arrivals.at(-1)! - started).toBeGreaterThanOrEqual(450);
    const firstHalfSecond = arrivals.filter((t) => t - started < 250).length;
    expect(firstHalfSecond).toBeLessThanOrEqual(35);
  });
});
