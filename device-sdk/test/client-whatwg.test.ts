/**
 * The client must run on any WHATWG WebSocket (browsers, Deno, Bun, Node 22). Node 20 has none, so this
 * wraps `ws` in a Proxy that exposes only the WHATWG surface and records any other member the client
 * touches. A whole session runs through it against the FAKE hub.
 */
import { afterEach, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TendrilDevice, type WebSocketConstructor } from '@tendril/device-sdk';
import { FakeHub, FakeTimers, nextEvent, waitUntil } from './support/fake-hub.js';

const WHATWG_MEMBERS = new Set([
  'binaryType',
  'readyState',
  'protocol',
  'send',
  'close',
  'onopen',
  'onmessage',
  'onclose',
  'onerror',
  'addEventListener',
  'removeEventListener',
  'url',
  'extensions',
  'bufferedAmount',
]);

/** Members outside the WHATWG surface the client read or wrote. */
const foreign = new Set<string>();
const constructed: unknown[][] = [];
const sockets: WebSocket[] = [];
/** Every event.data the client's onmessage received, to check its type. */
const received: unknown[] = [];

const WhatwgOnlyWebSocket = function (this: unknown, ...args: unknown[]) {
  constructed.push(args);
  // A browser takes (url, protocols); the SDK's third argument goes nowhere, as in a browser.
  const ws = new WebSocket(args[0] as string, args[1] as string);
  sockets.push(ws);
  return new Proxy(ws, {
    get(target, key) {
      if (typeof key === 'string' && !WHATWG_MEMBERS.has(key)) {
        foreign.add(key);
        return undefined;
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
    set(target, key, value) {
      if (typeof key === 'string' && !WHATWG_MEMBERS.has(key)) foreign.add(key);
      if (key === 'onmessage' && typeof value === 'function') {
        const handler = value as (ev: { data: unknown }) => void;
        return Reflect.set(target, key, (ev: { data: unknown }) => {
          received.push(ev.data);
          handler(ev);
        });
      }
      return Reflect.set(target, key, value, target);
    },
  });
} as unknown as WebSocketConstructor;

let hub: FakeHub;
let d: TendrilDevice;

afterEach(async () => {
  await d?.close();
  await hub?.close();
  expect(hub?.violations ?? []).toEqual([]);
});

it('runs a whole session on the WHATWG subset only: handshake, readings, acks, commands', async () => {
  hub = await FakeHub.start({ ping: false, heartbeatMs: 1000 });
  const timers = new FakeTimers();
  d = new TendrilDevice({
    url: hub.url,
    deviceId: 'browser-1',
    token: 'secret',
    metrics: [{ name: 'clicks', kind: 'int' }],
    WebSocket: WhatwgOnlyWebSocket,
    timers,
  });
  const connect = nextEvent(d, 'connect', 'the connect event');
  d.start();
  const conn = await hub.connection(0);
  await connect;
  d.onCommand('ping', () => 'pong');
  d.send({ clicks: 1 });
  d.send({ clicks: 2 });
  await d.flush(5000);
  conn.send({ type: 'command', commandId: 1, name: 'ping', args: '', timeoutMs: 1000 });
  await waitUntil(() => conn.frames.filter((f) => f.type === 'commandResult').length === 2, 'delivered and succeeded');

  expect(hub.storedSeqs('browser-1', d.epoch)).toEqual([1, 2]);
  expect(constructed[0]).toEqual([hub.url, 'tendril.v1', { perMessageDeflate: false }]);
  expect(sockets[0]!.binaryType).toBe('arraybuffer');
  expect(received.length).toBeGreaterThan(0);
  expect(received.every((data) => data instanceof ArrayBuffer)).toBe(true);
  // The client probes `on` once to learn whether pings are visible (they are not on a WHATWG socket).
  expect([...foreign]).toEqual(['on']);
});

it('with pings invisible, counts silence only while an ACK is owed (§6.5.4)', async () => {
  hub = await FakeHub.start({ ping: false, heartbeatMs: 1000 });
  const timers = new FakeTimers();
  d = new TendrilDevice({
    url: hub.url,
    deviceId: 'browser-2',
    token: 'secret',
    metrics: [{ name: 'clicks', kind: 'int' }],
    WebSocket: WhatwgOnlyWebSocket,
    timers,
    random: () => 0.5,
  });
  const connect = nextEvent(d, 'connect', 'the connect event');
  d.start();
  await hub.connection(0);
  await connect;
  // Idle and owed nothing: any number of silent heartbeats is fine.
  for (let i = 0; i < 6; i++) timers.fire(1000);
  expect(d.stats.connected).toBe(true);

  hub.options.holdReadings = true;
  d.send({ clicks: 1 });
  timers.fire(1000);
  timers.fire(1000);
  expect(d.stats.connected).toBe(true);
  const dead = nextEvent(d, 'disconnect', 'the disconnect of the connection that never acked');
  timers.fire(1000);
  expect(await dead).toEqual({ code: 1006, reason: 'HEARTBEAT_LOST', willReconnect: true });
  // The reading is resent on the next connection.
  hub.options.holdReadings = false;
  timers.fire(500 * 0.5);
  await hub.connection(1);
  await d.flush(5000);
  expect(hub.storedSeqs('browser-2', d.epoch)).toEqual([1]);
});
