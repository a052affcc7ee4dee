/** The live socket owner (src/lib/live/client.ts) against a fake WebSocket and hand-run timers. */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LiveClient, type LiveStatus } from '../src/lib/live/client.js';
import type { LiveEvent } from '../src/lib/live/protocol.js';
import type * as FleetModule from '../src/lib/state/fleet.svelte.js';
import { importRunes, ManualFrames } from './runes.js';

class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: any[] = [];
  closedWith: number | undefined;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(
    readonly url: string,
    readonly protocols: string | string[],
  ) {
    FakeSocket.all.push(this);
  }
  send(text: string): void {
    this.sent.push(JSON.parse(text));
  }
  close(code?: number): void {
    this.closedWith = code ?? 1005;
    this.readyState = 3;
  }
  // hub side
  open(): void {
    this.readyState = 1;
  }
  hello(auth: 'ok' | 'required' = 'ok'): void {
    this.open();
    this.push({
      type: 'hello',
      protocol: 'tendril.live.v1',
      auth,
      principal: auth === 'ok' ? { kind: 'user', name: 'ada', role: 'viewer' } : null,
      serverTime: 1,
    });
  }
  push(msg: object): void {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop(code = 1006, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  lastOf(type: string): any {
    return [...this.sent].reverse().find((m) => m.type === type);
  }
}

class Timers {
  t = 1_000_000;
  tasks: Array<{ at: number; fn: () => void; id: number }> = [];
  #id = 0;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.#id;
    this.tasks.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (h: unknown): void => {
    this.tasks = this.tasks.filter((x) => x.id !== h);
  };
  now = (): number => this.t;
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.tasks.sort((a, b) => a.at - b.at);
      const next = this.tasks[0];
      if (!next || next.at > end) break;
      this.tasks.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

let timers: Timers;
let unauthorized = 0;
const make = (): LiveClient =>
  new LiveClient({
    url: 'ws://hub/v1/live',
    WebSocket: FakeSocket as never,
    timers,
    random: () => 0.5,
    onUnauthorized: () => unauthorized++,
  });
const last = (): FakeSocket => FakeSocket.all.at(-1)!;

beforeEach(() => {
  FakeSocket.all = [];
  timers = new Timers();
  unauthorized = 0;
});

describe('connecting', () => {
  it('opens the socket with the subprotocol when something subscribes, and is live only after hello', () => {
    const client = make();
    expect(FakeSocket.all).toHaveLength(0);
    client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    expect(last().protocols).toBe('tendril.live.v1');
    expect(client.status.state).toBe('connecting');
    last().open();
    expect(client.status.state).toBe('connecting');
    last().hello();
    expect(client.status.state).toBe('live');
    expect(client.status.principal?.name).toBe('ada');
    expect(last().lastOf('subscribe')).toMatchObject({ type: 'subscribe', stream: 'fleet' });
    expect(last().lastOf('subscribe').resume).toBeUndefined();
  });

  it('closes the socket a while after the last subscription went away', () => {
    const client = make();
    const sub = client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    last().hello();
    sub.close();
    expect(last().lastOf('unsubscribe')).toMatchObject({ subscription: 1 });
    timers.advance(4000);
    expect(last().closedWith).toBeUndefined();
    timers.advance(2000);
    expect(last().closedWith).toBe(1000);
    expect(client.status.state).toBe('idle');
  });

  it('a hello without a session (auth required) says so and does not retry', () => {
    const client = make();
    client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    last().hello('required');
    expect(client.status.state).toBe('offline');
    expect(unauthorized).toBe(1);
    timers.advance(60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });
});

describe('events', () => {
  it('routes events by subscription, keeps the offset, and joins snapshot parts into one', () => {
    const client = make();
    const got: Array<[LiveEvent, number]> = [];
    const sub = client.subscribe({ stream: 'fleet' }, { onEvent: (e, o) => got.push([e, o]) });
    const other: LiveEvent[] = [];
    client.subscribe({ stream: 'health' }, { onEvent: (e) => other.push(e) });
    last().hello();
    const fleetId = last().sent.find((m) => m.stream === 'fleet').id;
    last().push({ type: 'result', id: fleetId, result: { epoch: 'e1', offset: 10, recovered: false } });
    expect(sub.epoch).toBeNull(); // not recovered: the resume point waits for the whole snapshot
    const dev = (id: string) => ({
      id,
      name: id,
      model: '',
      labels: {},
      transport: null,
      presence: { state: 'never', reason: null, since: 0 },
      metrics: [],
      latest: {},
      dropped: 0,
    });
    last().push({
      type: 'event',
      id: fleetId,
      offset: 10,
      event: { kind: 'snapshot', part: 0, parts: 2, gap: false, devices: [dev('a')] },
    });
    expect(got).toHaveLength(0);
    last().push({
      type: 'event',
      id: fleetId,
      offset: 10,
      event: { kind: 'snapshot', part: 1, parts: 2, gap: false, devices: [dev('b')] },
    });
    expect(got).toHaveLength(1);
    expect(sub.epoch).toBe('e1');
    expect((got[0]![0] as any).devices.map((d: any) => d.id)).toEqual(['a', 'b']);
    last().push({
      type: 'event',
      id: fleetId,
      offset: 12,
      event: { kind: 'values', deviceId: 'a', latest: { t: { ts: 1, value: 2 } } },
    });
    expect(got).toHaveLength(2);
    expect(sub.offset).toBe(12);
    expect(other).toHaveLength(0);
  });

  it('takes the part marked last as the end of a snapshot, and a new part 0 starts it over', () => {
    const client = make();
    const got: LiveEvent[] = [];
    const sub = client.subscribe({ stream: 'fleet' }, { onEvent: (e) => got.push(e) });
    last().hello();
    const id = last().lastOf('subscribe').id;
    const dev = (i: string) => ({
      id: i,
      name: i,
      model: '',
      labels: {},
      transport: null,
      presence: { state: 'never', reason: null, since: 0 },
      metrics: [],
      latest: {},
      dropped: 0,
    });
    const part = (p: number, parts: number, lastPart: boolean, ids: string[]) =>
      last().push({
        type: 'event',
        id,
        offset: 50,
        event: { kind: 'snapshot', part: p, parts, last: lastPart, gap: false, devices: ids.map(dev) },
      });
    part(0, 3, false, ['a']);
    part(1, 3, false, ['b']);
    part(0, 2, false, ['a2']); // changed in place while being sent: starts over
    expect(sub.offset).toBeNull(); // the resume point moves only with the last part
    part(1, 2, true, ['b2']);
    expect(got).toHaveLength(1);
    expect((got[0] as any).devices.map((d: any) => d.id)).toEqual(['a2', 'b2']);
    expect(sub.offset).toBe(50);
  });

  it('answers requests by id and rejects them with the hub error code', async () => {
    const client = make();
    client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    last().hello();
    const p = client.request({ type: 'ping' });
    const id = last().lastOf('ping').id;
    last().push({ type: 'error', id, error: { code: 'RATE_LIMITED', message: 'slow down' } });
    await expect(p).rejects.toMatchObject({ code: 'RATE_LIMITED' });
  });
});

describe('reconnecting', () => {
  it('backs off 1 s doubling with jitter, counts attempts, and resumes every subscription from its offset', () => {
    const client = make();
    const results: Array<[boolean, boolean]> = [];
    client.subscribe(
      { stream: 'device', devices: ['env-1'] },
      { onEvent: () => {}, onResult: (r, resumed) => results.push([r.recovered, resumed]) },
    );
    last().hello();
    const id = last().lastOf('subscribe').id;
    last().push({ type: 'result', id, result: { epoch: 'p0', offset: 100, recovered: false } });
    last().push({
      type: 'event',
      id,
      offset: 100,
      event: { kind: 'snapshot', part: 0, parts: 1, gap: false, devices: [] },
    });
    last().push({ type: 'event', id, offset: 105, event: { kind: 'readings', deviceId: 'env-1', readings: [] } });
    const statuses: LiveStatus[] = [];
    client.onStatus((s) => statuses.push(s));

    last().drop(1006);
    expect(client.status).toMatchObject({ state: 'reconnecting', attempt: 1 });
    expect(client.status.retryAt! - timers.t).toBe(750); // base 1000, jitter 0.5 -> 500 + 250
    timers.advance(749);
    expect(FakeSocket.all).toHaveLength(1);
    timers.advance(1);
    expect(FakeSocket.all).toHaveLength(2);
    last().drop(1006); // failed again
    expect(client.status.attempt).toBe(2);
    expect(client.status.retryAt! - timers.t).toBe(1500);
    timers.advance(1500);
    last().hello();
    expect(client.status).toMatchObject({ state: 'live', attempt: 0 });
    expect(last().lastOf('subscribe')).toMatchObject({
      stream: 'device',
      devices: ['env-1'],
      resume: { epoch: 'p0', offset: 105 },
    });
    const id2 = last().lastOf('subscribe').id;
    expect(id2).toBeGreaterThan(id);
    last().push({ type: 'result', id: id2, result: { epoch: 'p0', offset: 300, recovered: false } });
    expect(results).toEqual([
      [false, false],
      [false, true],
    ]);
    expect(statuses.map((s) => s.state)).toEqual([
      'reconnecting',
      'reconnecting',
      'reconnecting',
      'reconnecting',
      'live',
    ]);
    expect(statuses.map((s) => s.attempt)).toEqual([1, 1, 2, 2, 0]);
  });

  it('a cut in the middle of a snapshot resumes from the point held before it', () => {
    const client = make();
    client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    last().hello();
    let id = last().lastOf('subscribe').id;
    last().push({ type: 'result', id, result: { epoch: 'e1', offset: 10, recovered: false } });
    last().push({
      type: 'event',
      id,
      offset: 10,
      event: { kind: 'snapshot', part: 0, parts: 1, gap: false, devices: [] },
    });
    last().push({ type: 'event', id, offset: 12, event: { kind: 'values', deviceId: 'a', latest: {} } });
    last().drop(1006);
    timers.advance(client.status.retryAt! - timers.t);
    last().hello();
    id = last().lastOf('subscribe').id;
    expect(last().lastOf('subscribe').resume).toEqual({ epoch: 'e1', offset: 12 });
    last().push({ type: 'result', id, result: { epoch: 'e2', offset: 900, recovered: false } });
    last().push({
      type: 'event',
      id,
      offset: 900,
      event: { kind: 'snapshot', part: 0, parts: 2, gap: true, devices: [] },
    });
    last().drop(1006); // cut before the last part
    timers.advance(client.status.retryAt! - timers.t);
    last().hello();
    expect(last().lastOf('subscribe').resume).toEqual({ epoch: 'e1', offset: 12 });
    // Recovered this time: events move the resume point again.
    id = last().lastOf('subscribe').id;
    last().push({ type: 'result', id, result: { epoch: 'e1', offset: 20, recovered: true } });
    last().push({ type: 'event', id, offset: 21, event: { kind: 'values', deviceId: 'a', latest: {} } });
    last().drop(1006);
    timers.advance(client.status.retryAt! - timers.t);
    last().hello();
    expect(last().lastOf('subscribe').resume).toEqual({ epoch: 'e1', offset: 21 });
  });

  it('caps the back-off at 30 s', () => {
    const client = make();
    client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    for (let i = 0; i < 10; i++) {
      last().drop(1006);
      timers.advance(client.status.retryAt! - timers.t);
    }
    last().drop(1006);
    expect(client.status.retryAt! - timers.t).toBe(22_500); // 30 000 * (0.5 + 0.25)
  });

  it('asks the app to check the session when connecting fails twice before hello', () => {
    let asked = 0;
    const client = new LiveClient({
      url: 'ws://hub/v1/live',
      WebSocket: FakeSocket as never,
      timers,
      random: () => 0.5,
      onConnectFailures: () => asked++,
    });
    client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    last().drop(1006); // refused before the upgrade (e.g. HTTP 401): the page sees only 1006
    expect(asked).toBe(0);
    timers.advance(client.status.retryAt! - timers.t);
    last().drop(1006);
    expect(asked).toBe(1);
  });

  it('does not retry after 1008 and reports an expired session', () => {
    const client = make();
    client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    last().hello();
    last().drop(1008, 'UNAUTHORIZED');
    expect(client.status.state).toBe('offline');
    expect(unauthorized).toBe(1);
    timers.advance(120_000);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('reconnects at once when the browser comes back online', () => {
    const client = make();
    client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    last().hello();
    client.networkOffline();
    expect(client.status.state).toBe('offline');
    expect(FakeSocket.all[0]!.closedWith).toBeDefined();
    client.networkOnline();
    expect(FakeSocket.all).toHaveLength(2);
  });
});

describe('truthful status', () => {
  it('turns stale when nothing arrives, then drops a dead connection and reconnects', () => {
    const client = make();
    client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    last().hello();
    timers.advance(5000);
    expect(last().lastOf('ping')).toBeDefined(); // asks the hub for a sign of life
    timers.advance(10_000);
    expect(client.status.state).toBe('stale');
    const staleSince = client.status.since;
    expect(staleSince).toBeGreaterThan(0);
    timers.advance(10_000);
    expect(client.status.state).toBe('reconnecting');
    expect(FakeSocket.all[0]!.closedWith).toBeDefined();
  });

  it('any message makes a stale connection live again', () => {
    const client = make();
    client.subscribe({ stream: 'fleet' }, { onEvent: () => {} });
    last().hello();
    timers.advance(16_000);
    expect(client.status.state).toBe('stale');
    last().push({ type: 'result', id: last().lastOf('ping').id, result: { serverTime: 1 } });
    expect(client.status.state).toBe('live');
  });
});

describe('batches of events (docs/live.md §3.6)', () => {
  let Fleet: typeof FleetModule;
  beforeAll(async () => {
    Fleet = await importRunes<typeof FleetModule>('../src/lib/state/fleet.svelte.ts');
  });
  const row = (id: string) => ({
    id,
    name: id,
    model: 'env-sensor',
    labels: {},
    transport: 'ws',
    presence: { state: 'online' as const, reason: null, since: 1 },
    metrics: [{ name: 't', kind: 'f32', unit: '' }],
    latest: {},
    dropped: 0,
    rejected: 0,
  });
  const values = (deviceId: string, value: number) => ({
    kind: 'values',
    deviceId,
    latest: { t: { ts: 1000 + value, value } },
  });

  it('hands each event of a batch over in order with its offset, and resumes from the last one', () => {
    const client = make();
    const got: Array<[string, number]> = [];
    const sub = client.subscribe({ stream: 'fleet' }, { onEvent: (e, o) => got.push([e.kind, o]) });
    const health: LiveEvent[] = [];
    client.subscribe({ stream: 'health' }, { onEvent: (e) => health.push(e) });
    last().hello();
    let id = last().sent.find((m) => m.stream === 'fleet').id;
    last().push({ type: 'result', id, result: { epoch: 'e1', offset: 10, recovered: false } });
    last().push({
      type: 'event',
      id,
      offset: 10,
      event: { kind: 'snapshot', part: 0, parts: 1, gap: false, devices: [] },
    });
    last().push({
      type: 'events',
      id,
      events: [
        { offset: 11, event: values('a', 1) },
        {
          offset: 12,
          event: { kind: 'presence', deviceId: 'a', presence: { state: 'offline', reason: 'CLOSED', since: 5 } },
        },
        { offset: 13, event: values('b', 2) },
      ],
    });
    expect(got).toEqual([
      ['snapshot', 10],
      ['values', 11],
      ['presence', 12],
      ['values', 13],
    ]);
    expect(sub.offset).toBe(13);
    expect(health).toHaveLength(0); // a batch names one subscription
    // Cut after the batch: the resume point is its last event; the next batch continues from there.
    last().drop(1006);
    timers.advance(client.status.retryAt! - timers.t);
    last().hello();
    expect(last().sent.find((m) => m.stream === 'fleet').resume).toEqual({ epoch: 'e1', offset: 13 });
    id = last().sent.find((m) => m.stream === 'fleet').id;
    last().push({ type: 'result', id, result: { epoch: 'e1', offset: 15, recovered: true } });
    last().push({
      type: 'events',
      id,
      events: [
        { offset: 14, event: values('a', 3) },
        { offset: 15, event: values('b', 4) },
      ],
    });
    expect(got.slice(-2)).toEqual([
      ['values', 14],
      ['values', 15],
    ]);
    expect(sub.offset).toBe(15);
  });

  it('a batch for a subscription closed meanwhile is ignored', () => {
    const client = make();
    const got: LiveEvent[] = [];
    const sub = client.subscribe({ stream: 'fleet' }, { onEvent: (e) => got.push(e) });
    last().hello();
    const id = last().lastOf('subscribe').id;
    last().push({ type: 'result', id, result: { epoch: 'e1', offset: 1, recovered: true } });
    sub.close();
    last().push({ type: 'events', id, events: [{ offset: 2, event: values('a', 1) }] });
    expect(got).toHaveLength(0);
  });

  it('the fleet state applies a batch at the next frame: one flush, latest value per device, presence kept', () => {
    const client = make();
    const frames = new ManualFrames();
    const fleet = new Fleet.FleetState({
      live: client,
      loadDevices: async () => [],
      frames,
      timers: { setInterval: () => 0, clearInterval: () => {} },
      valuesEveryMs: 0,
    });
    const stop = fleet.start();
    last().hello();
    const id = last().lastOf('subscribe').id;
    last().push({ type: 'result', id, result: { epoch: 'e1', offset: 1, recovered: false } });
    last().push({
      type: 'event',
      id,
      offset: 1,
      event: { kind: 'snapshot', part: 0, parts: 1, gap: false, devices: [row('a'), row('b')] },
    });
    frames.run();
    expect(fleet.counts.total).toBe(2);
    const events = [];
    for (let i = 0; i < 200; i++) events.push({ offset: 2 + i, event: values(i % 2 === 0 ? 'a' : 'b', i) });
    events.push({
      offset: 202,
      event: { kind: 'presence', deviceId: 'b', presence: { state: 'offline', reason: 'HEARTBEAT_LOST', since: 9 } },
    });
    last().push({ type: 'events', id, events });
    expect(frames.queue.size).toBe(1); // one flush for the whole batch
    frames.run();
    expect(fleet.get('a')!.latest.t).toEqual({ ts: 1198, value: 198 });
    expect(fleet.get('b')!.latest.t).toEqual({ ts: 1199, value: 199 });
    expect(fleet.get('b')!.presence).toMatchObject({ state: 'offline', reason: 'HEARTBEAT_LOST' });
    stop();
  });
});
