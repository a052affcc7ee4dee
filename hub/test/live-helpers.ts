/**
 * Live channel test scaffolding: a small fastify instance with the live plugin over real objects (a
 * DeviceRegistry and a SQLite store in a temp dir, a PresenceTracker, a CommandQueue), DeviceEvents driven
 * through a real TypedEvents, and a live client on a real `ws` socket that keeps every message and lets
 * tests wait for the next one with a timeout naming what was awaited.
 */
import { Registry } from 'prom-client';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import fastifyWebsocket from '@fastify/websocket';
import WebSocket from 'ws';
import type { MetricDeclaration } from '@tendril/device-sdk/codec';
import type { Principal } from '../src/auth/types.js';
import { CommandQueue } from '../src/commands/queue.js';
import { systemClock, systemTimers } from '../src/core/clock.js';
import { TypedEvents } from '../src/core/events.js';
import { PresenceTracker } from '../src/devices/presence.js';
import { DeviceRegistry } from '../src/devices/registry.js';
import type { DeviceEvents } from '../src/devices/types.js';
import { commandSource, healthSource, liveChannelPlugin, type LivePluginOptions } from '../src/live/index.js';
import type { LiveLimits } from '../src/live/protocol.js';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import { tempDir } from './helpers.js';

export const LIVE_METRICS: MetricDeclaration[] = [
  { alias: 0, name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
  { alias: 1, name: 'humidity', kind: 'f64', unit: '%', min: 0, max: 100 },
  { alias: 2, name: 'count', kind: 'int', unit: '' },
];

export const VIEWER: Principal = { kind: 'user', name: 'vera', role: 'viewer', sessionId: 's1' };
export const TOKEN_PRINCIPAL: Principal = { kind: 'token', name: 'ci', role: 'viewer', tokenId: 't1', tokenName: 'ci' };
export const GOOD_TOKEN = 'good-token-0123456789';

/** Stands in for the auth plugin's cookie check: `sid=viewer` is a viewer session, `sid=newpw` must change its password. */
export function cookieAuth(request: FastifyRequest): Principal | null {
  const cookie = request.headers.cookie ?? '';
  if (/(?:^|;\s*)sid=viewer(?:;|$)/.test(cookie)) return VIEWER;
  if (/(?:^|;\s*)sid=newpw(?:;|$)/.test(cookie)) return { ...VIEWER, mustChangePassword: true };
  return null;
}

export interface LiveTestHub {
  app: FastifyInstance;
  url: string;
  origin: string;
  registry: DeviceRegistry;
  events: TypedEvents<DeviceEvents>;
  commands: CommandQueue;
  /** Emits durable readings of one device (as the devices layer does). */
  readings(deviceId: string, seq: number, ts: number, values: Record<string, number>): void;
  online(deviceId: string, since?: number): void;
  offline(deviceId: string, reason: string, since?: number): void;
  close(): Promise<void>;
}

export interface LiveTestOptions {
  devices?: number;
  limits?: Partial<LiveLimits>;
  plugin?: Partial<LivePluginOptions>;
}

export function deviceIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `dev-${String(i).padStart(4, '0')}`);
}

export async function startLiveHub(options: LiveTestOptions = {}): Promise<LiveTestHub> {
  const dir = tempDir('tendril-live-');
  const registry = new DeviceRegistry(dir.path);
  const now = Date.now();
  for (const id of deviceIds(options.devices ?? 3)) {
    const { device } = registry.create({ id, name: `Device ${id}`, model: 'env-sensor', labels: { room: 'lab' } }, now);
    device.metrics = LIVE_METRICS;
  }
  const store = new SqliteStore(dir.path);
  const presence = new PresenceTracker(registry, store, systemClock);
  const events = new TypedEvents<DeviceEvents>();
  const app = Fastify({ logger: false });
  const commands = new CommandQueue({
    db: registry.db,
    // A stand-in for the device sessions: no device takes commands, so they stay queued.
    sessions: {
      sendCommand: () => false,
      forgetCommand: () => undefined,
      setCommandLookup: () => undefined,
      events,
    } as unknown as ConstructorParameters<typeof CommandQueue>[0]['sessions'],
    deviceExists: (id) => registry.get(id) !== undefined,
    clock: systemClock,
    timers: systemTimers,
    metrics: new Registry(),
    log: app.log,
  });
  await app.register(fastifyWebsocket, {
    options: {
      perMessageDeflate: false,
      maxPayload: 65_536,
      handleProtocols: (offered: Set<string>) =>
        offered.has('tendril.v1') ? 'tendril.v1' : (offered.values().next().value ?? false),
    },
  });
  await app.register(liveChannelPlugin, {
    authenticate: cookieAuth,
    verifyToken: (token) => (token === GOOD_TOKEN ? TOKEN_PRINCIPAL : null),
    sources: {
      registry,
      deviceEvents: events,
      latest: (id) => presence.latest(id),
      commands: commandSource(commands),
      health: healthSource({ store, sink: { accepting: true } }),
    },
    limits: options.limits ?? {},
    healthIntervalMs: 100,
    ...options.plugin,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const origin = `http://127.0.0.1:${port}`;
  return {
    app,
    url: `ws://127.0.0.1:${port}/v1/live`,
    origin,
    registry,
    events,
    commands,
    readings(deviceId, seq, ts, values) {
      const vals = Object.entries(values).map(([metric, value]) => ({ metric, kind: 'f64' as const, value }));
      events.emit('readings', { deviceId, epoch: 1, readings: [{ deviceId, epoch: 1, seq, ts, values: vals }] });
    },
    online(deviceId, since = Date.now()) {
      const d = registry.get(deviceId)!;
      d.presence = { state: 'online', reason: null, since, lastSeen: since, remote: '127.0.0.1' };
      d.transport = 'ws';
      events.emit('online', { deviceId, transport: 'ws', remote: '127.0.0.1', since, replaced: false });
    },
    offline(deviceId, reason, since = Date.now()) {
      events.emit('offline', { deviceId, transport: 'ws', reason, since, lastSeen: since - 1 });
    },
    async close() {
      await app.close();
      commands.close();
      registry.close();
      await store.close();
      dir.remove();
    },
  };
}

// ---- client

export type Msg = Record<string, any>;

export interface Closed {
  code: number;
  reason: string;
}

export class LiveTestClient {
  /** Messages as the client applies them: an `events` batch (§3.6) becomes its events, each `batched: true`. */
  readonly messages: Msg[] = [];
  /** WebSocket messages as they came, with their size in bytes. */
  readonly frames: Array<{ msg: Msg; bytes: number }> = [];
  readonly closed: Promise<Closed>;
  isClosed = false;
  private waiters: Array<() => void> = [];
  private nextId = 1;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) throw new Error('the hub sent a binary message on the live channel');
      const msg = JSON.parse(data.toString('utf8')) as Msg;
      this.frames.push({ msg, bytes: data.length });
      if (msg.type === 'events') {
        // docs/live.md §3.6: a batch is its events, in order, each as if sent alone.
        for (const item of msg.events as Msg[])
          this.messages.push({ type: 'event', id: msg.id, offset: item.offset, event: item.event, batched: true });
      } else {
        this.messages.push(msg);
      }
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.isClosed = true;
        resolve({ code, reason: reason.toString() });
        this.wake();
      });
    });
    ws.on('error', () => undefined);
  }

  static async connect(
    url: string,
    opts: { cookie?: string; origin?: string; protocols?: string[] } = {},
  ): Promise<LiveTestClient> {
    const headers: Record<string, string> = {};
    if (opts.cookie) headers.cookie = opts.cookie;
    const ws = new WebSocket(url, opts.protocols ?? ['tendril.live.v1'], {
      headers,
      ...(opts.origin ? { origin: opts.origin } : {}),
    });
    const client = new LiveTestClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused with HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
    return client;
  }

  /** Connects with the viewer cookie and waits for hello. */
  static async viewer(hub: LiveTestHub): Promise<LiveTestClient> {
    const c = await LiveTestClient.connect(hub.url, { cookie: 'sid=viewer' });
    await c.next((m) => m.type === 'hello', 'hello');
    return c;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  /** Waits for the first message (from index `from`) matching `pred`; the timeout names `what`. */
  async next(pred: (m: Msg) => boolean, what: string, timeoutMs = 5000, from = 0): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    let i = from;
    for (;;) {
      for (; i < this.messages.length; i++) if (pred(this.messages[i]!)) return this.messages[i]!;
      if (this.isClosed) throw new Error(`the socket closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits until `cond()` holds, re-checking after each message. */
  async until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.isClosed) throw new Error(`the socket closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** Sends a request with a fresh id and waits for its result or error. */
  async request(msg: Record<string, unknown>, timeoutMs = 5000): Promise<Msg> {
    const id = (msg.id as number | undefined) ?? this.nextId++;
    if (id >= this.nextId) this.nextId = id + 1;
    const from = this.messages.length;
    this.send({ ...msg, id });
    return this.next(
      (m) => (m.type === 'result' || m.type === 'error') && m.id === id,
      `the answer to request ${id} (${String(msg.type)})`,
      timeoutMs,
      from,
    );
  }

  /** Subscribes and waits for the result and, when not recovered, the whole snapshot. */
  async subscribe(msg: Record<string, unknown>): Promise<{ result: Msg; snapshot: Msg[] }> {
    const from = this.messages.length;
    const answer = await this.request({ type: 'subscribe', ...msg });
    if (answer.type !== 'result') throw new Error(`subscribe refused: ${JSON.stringify(answer)}`);
    const snapshot: Msg[] = [];
    if (!answer.result.recovered) {
      for (;;) {
        const part = await this.next(
          (m) => m.type === 'event' && m.id === answer.id && m.event.kind === 'snapshot' && !snapshot.includes(m),
          `snapshot part ${snapshot.length} of subscription ${answer.id}`,
          10_000,
          from,
        );
        snapshot.push(part);
        if (part.event.last) break;
      }
    }
    return { result: answer.result, snapshot };
  }

  events(sub: number, kind?: string): Msg[] {
    return this.messages.filter(
      (m) => m.type === 'event' && m.id === sub && (kind === undefined || m.event.kind === kind),
    );
  }

  /** Stops reading the socket (the TCP window fills, the hub's writes back up). */
  pause(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  resume(): void {
    (this.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  }

  close(): void {
    this.ws.close();
  }
}

/** A fleet as a client keeps it (docs/live.md §5.1, §5.4): snapshots replace, events set. */
export class FleetModel {
  rows = new Map<string, Msg>();
  offset = 0;
  private parts: Msg[] = [];
  snapshots = 0;
  gaps = 0;

  apply(m: Msg): void {
    if (m.type !== 'event') return;
    this.offset = Math.max(this.offset, m.offset as number);
    const e = m.event;
    switch (e.kind) {
      case 'snapshot':
        this.parts.push(...(e.devices as Msg[]));
        if (e.last) {
          this.rows = new Map(this.parts.map((r) => [r.id as string, r]));
          this.parts = [];
          this.snapshots++;
          if (e.gap) this.gaps++;
        }
        return;
      case 'values': {
        const row = this.rows.get(e.deviceId);
        if (row) row.latest = { ...row.latest, ...e.latest };
        return;
      }
      case 'presence': {
        const row = this.rows.get(e.deviceId);
        if (row) row.presence = e.presence;
        return;
      }
      case 'counters': {
        const row = this.rows.get(e.deviceId);
        if (row) Object.assign(row, { rejected: e.rejected, dropped: e.dropped });
        return;
      }
      case 'device':
        if (e.device === null) this.rows.delete(e.deviceId);
        else this.rows.set(e.deviceId, e.device);
        return;
    }
  }
}
