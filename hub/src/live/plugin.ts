/**
 * The live channel as a fastify plugin: the WebSocket route /v1/live (docs/live.md) and the `app.live`
 * decorator (the LiveHub). @fastify/websocket must be registered first (app.ts does it once for every route).
 *
 * The plugin reads the hub's capabilities from the instance's decorators (app.devices, app.commands,
 * app.durability, app.clock, app.timers) unless `sources` gives them; authentication is injected
 * (`authenticate` for the upgrade request's cookie, `verifyToken` for the first-message token).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Principal } from '../auth/types.js';
import { systemClock, systemTimers, type Clock, type Timers } from '../core/clock.js';
import type { DeviceEvents } from '../devices/types.js';
import { errorBody, type HttpErrorCode } from '../errors.js';
import type { LiveLogger, TokenCheck } from './client.js';
import type { RegistryView } from './fleet-state.js';
import { type EventsOf, type LiveCommandSource, type LiveHealthBase, LiveHub } from './live-hub.js';
import {
  CLOSE,
  DEFAULT_LIVE_LIMITS,
  LIVE_PATH,
  LIVE_SUBPROTOCOL,
  type LiveLimits,
  type StreamName,
} from './protocol.js';
import type { LatestValue, StreamWindow } from './stream-log.js';

/** What the live channel listens to and reads. */
export interface LiveSources {
  registry: RegistryView;
  /** The devices layer's events (DeviceSessions.events). */
  deviceEvents: EventsOf<DeviceEvents>;
  /** PresenceTracker.latest: stored latest values, loaded once per device at start. */
  latest?: (deviceId: string) => Promise<Record<string, LatestValue>>;
  commands?: LiveCommandSource;
  health: () => LiveHealthBase;
}

/** A refusal of the auth layer: the upgrade's HTTP status and error code, or the close reason after `auth`. */
export interface LiveAuthFailure {
  ok: false;
  status: number;
  code: HttpErrorCode;
  message: string;
}

/** The auth layer as the live channel uses it: `app.auth` (hub/src/auth/plugin.ts) fits. */
export interface LiveAuthProvider {
  /** The upgrade request: its Origin (when present) must be the hub's, its session cookie gives the principal. */
  authenticateLive(request: FastifyRequest): Promise<{ ok: true; principal: Principal | null } | LiveAuthFailure>;
  /** An API token (or the admin token) sent in the first message, throttled per client address. */
  authenticateToken(token: string, client: string): { ok: true; principal: Principal | null } | LiveAuthFailure;
  /** Sessions, users' access or tokens that ended: their live connections are closed (§9). */
  onRevoke?(listener: (event: RevocationEvent) => void): () => void;
}

export type RevocationEvent =
  | { kind: 'session'; sessionId: string; userName: string }
  | { kind: 'user'; userName: string }
  | { kind: 'token'; tokenId: string };

export interface LivePluginOptions {
  /** Default: the instance's `app.auth` (the auth plugin). Takes precedence over authenticate/verifyToken. */
  auth?: LiveAuthProvider;
  /** Without `auth`: the principal of the upgrade request's session cookie, or null (§2.1). */
  authenticate?: (request: FastifyRequest) => Promise<Principal | null> | Principal | null;
  /** Without `auth`: the principal of an API token sent in the first message, or null (§2.2). */
  verifyToken?: (token: string) => Promise<Principal | null> | Principal | null;
  /** Origins allowed besides the hub's own (HUB_ALLOWED_ORIGINS), e.g. `https://dash.example.com`. */
  allowedOrigins?: readonly string[];
  /** Replaces the Origin check entirely (the auth plugin's, when it has one). */
  isOriginAllowed?: (origin: string, request: FastifyRequest) => boolean;
  limits?: Partial<LiveLimits>;
  windows?: Partial<Record<StreamName, Partial<StreamWindow>>>;
  /** Default: from the instance's decorators (app.devices, app.commands, app.durability). */
  sources?: LiveSources;
  clock?: Clock;
  timers?: Timers;
  healthIntervalMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The live channel (docs/live.md): streams, clients, fan-out. */
    live: LiveHub;
  }
}

const kPrincipal = Symbol('tendril.live.principal');
type UpgradeRequest = { [kPrincipal]?: Principal | null };

/** True when the Sec-WebSocket-Protocol header offers tendril.live.v1 (§1.1.2). */
export function offersLiveSubprotocol(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const values = Array.isArray(header) ? header : [header];
  return values.some((v) => v.split(',').some((p) => p.trim() === LIVE_SUBPROTOCOL));
}

/** §2.1.2: the hub's own origin (as the request reached it) or one of `allowed`. */
export function originAllowed(origin: string, request: FastifyRequest, allowed: readonly string[]): boolean {
  const o = origin.toLowerCase();
  const host = request.headers.host?.toLowerCase();
  if (host !== undefined && o === `${request.protocol}://${host}`) return true;
  return allowed.some((a) => a.toLowerCase().replace(/\/$/, '') === o);
}

/** What the live channel's upgrade check needs (built once by the plugin). */
interface UpgradeGate {
  hub: LiveHub;
  limits: LiveLimits;
  checkOrigin(origin: string, request: FastifyRequest): boolean;
  provider: LiveAuthProvider | null;
  opts: LivePluginOptions;
}

/**
 * The checks before a live connection is upgraded (§1.1, §2.1, §8): a WebSocket request, room for another
 * connection, the subprotocol, an allowed Origin, and the session cookie (or none: a token may follow).
 */
async function liveUpgradeGate(
  gate: UpgradeGate,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply | undefined> {
  const { hub, limits, checkOrigin, provider, opts } = gate;
  if (!request.ws) {
    return reply
      .code(400)
      .send(
        errorBody(
          'INVALID_REQUEST',
          `${LIVE_PATH} is a WebSocket endpoint: open it with the subprotocol ${LIVE_SUBPROTOCOL} (docs/live.md §1.1).`,
        ),
      );
  }
  // §8: connections in all and per address, refused before the upgrade (each costs up to §7.3's cap).
  const fromAddress = hub.clientsFrom(request.ip);
  if (hub.clients.size >= limits.maxClients || fromAddress >= limits.maxClientsPerAddress) {
    const which =
      fromAddress >= limits.maxClientsPerAddress ? `${fromAddress} from ${request.ip}` : `${hub.clients.size} in all`;
    return reply
      .code(429)
      .header('retry-after', '10')
      .send(
        errorBody('RATE_LIMITED', `Too many live connections (${which}); close some or retry later (docs/live.md §8).`),
      );
  }
  // §1.1.2
  if (!offersLiveSubprotocol(request.headers['sec-websocket-protocol'])) {
    return reply
      .code(400)
      .send(
        errorBody(
          'INVALID_REQUEST',
          `The live channel requires the WebSocket subprotocol ${LIVE_SUBPROTOCOL}: send "Sec-WebSocket-Protocol: ${LIVE_SUBPROTOCOL}" (docs/live.md §1.1).`,
        ),
      );
  }
  // §2.1.2: a page of another origin is refused whatever credentials it carries (the auth layer checks it
  // too, against the same list).
  const origin = request.headers.origin;
  if (origin !== undefined && !checkOrigin(origin, request)) {
    return reply
      .code(403)
      .send(
        errorBody(
          'ORIGIN_NOT_ALLOWED',
          `Origin ${origin} may not open the live channel; open the dashboard from the hub's own address (docs/live.md §2.1).`,
        ),
      );
  }
  let principal: Principal | null = null;
  if (provider) {
    // §2.1: an expired session or a user who must change the password is refused at the upgrade.
    const r = await provider.authenticateLive(request);
    if (!r.ok) return reply.code(r.status).send(errorBody(r.code, r.message));
    principal = r.principal;
  } else if (opts.authenticate) {
    try {
      principal = await opts.authenticate(request);
    } catch (err) {
      request.log.warn({ err }, 'live channel: authenticating the session cookie failed; the client may send a token');
    }
  }
  (request.raw as UpgradeRequest)[kPrincipal] = principal;

  return undefined;
}

async function livePlugin(app: FastifyInstance, opts: LivePluginOptions): Promise<void> {
  const decorated = app as unknown as Record<string, unknown>;
  const clock = opts.clock ?? (decorated.clock as Clock | undefined) ?? systemClock;
  const timers = opts.timers ?? (decorated.timers as Timers | undefined) ?? systemTimers;
  const sources = opts.sources ?? sourcesFromDecorators(app);
  const limits: LiveLimits = { ...DEFAULT_LIVE_LIMITS, ...opts.limits };
  const log: LiveLogger = app.log.child({ component: 'live' });
  const provider = opts.auth ?? defaultAuth(app, opts);
  const verifyToken = async (token: string, remote: string | null): Promise<TokenCheck> => {
    if (provider) {
      const r = provider.authenticateToken(token, remote ?? '');
      return r.ok ? r.principal : { code: r.code, message: r.message };
    }
    return opts.verifyToken ? await opts.verifyToken(token) : null;
  };
  const hub = new LiveHub({
    limits,
    clock,
    timers,
    log,
    registry: sources.registry,
    deviceEvents: sources.deviceEvents,
    ...(sources.latest ? { latest: sources.latest } : {}),
    ...(sources.commands ? { commands: sources.commands } : {}),
    health: sources.health,
    verifyToken,
    ...(opts.windows ? { windows: opts.windows } : {}),
    ...(opts.healthIntervalMs !== undefined ? { healthIntervalMs: opts.healthIntervalMs } : {}),
  });
  app.decorate('live', hub);
  const metrics = (app as unknown as { metrics?: { registry?: Registry } }).metrics?.registry;
  if (metrics) registerLiveMetrics(metrics, hub);
  const stopRevocations = provider?.onRevoke?.((event) => hub.revoke(event));
  if (stopRevocations) app.addHook('onClose', async () => stopRevocations());
  // Dashboards hear 1001 SHUTTING_DOWN in the shutdown's client phase, before the server closes what is left.
  const lifecycle = (app as unknown as { lifecycle?: { onShutdown(phase: 'clients', task: () => void): void } })
    .lifecycle;
  if (lifecycle) lifecycle.onShutdown('clients', () => hub.close());
  else app.addHook('preClose', async () => hub.close());
  app.addHook('onClose', async () => hub.close());

  const allowed = opts.allowedOrigins ?? [];
  const providerOrigins = (
    app as unknown as { auth?: { isOriginAllowed?(request: FastifyRequest, origin: string): boolean } }
  ).auth;
  const checkOrigin =
    opts.isOriginAllowed ??
    (providerOrigins?.isOriginAllowed && opts.allowedOrigins === undefined
      ? (origin: string, request: FastifyRequest) => providerOrigins.isOriginAllowed!(request, origin)
      : (origin: string, request: FastifyRequest) => originAllowed(origin, request, allowed));

  app.route({
    method: 'GET',
    url: LIVE_PATH,
    websocket: true,
    // The channel authenticates itself (cookie at the upgrade, or a token in the first message, §2).
    config: { role: 'public' },
    preValidation: (request, reply) => liveUpgradeGate({ hub, limits, checkOrigin, provider, opts }, request, reply),
    handler: (socket, request) => {
      const raw = request.raw as UpgradeRequest;
      const principal = raw[kPrincipal] ?? null;
      delete raw[kPrincipal];
      if (socket.protocol !== LIVE_SUBPROTOCOL) {
        // handleProtocols (app.ts) selects the first offered protocol here: tendril.live.v1 must come first.
        socket.close(CLOSE.subprotocol[0], CLOSE.subprotocol[1]);
        return;
      }
      hub.accept(socket, principal, request.ip);
    },
  });
}

/** `app.auth` when the auth plugin is registered and no functions were given. */
function defaultAuth(app: FastifyInstance, opts: LivePluginOptions): LiveAuthProvider | null {
  if (opts.authenticate || opts.verifyToken) return null;
  const auth = (app as unknown as { auth?: Partial<LiveAuthProvider> }).auth;
  if (auth?.authenticateLive && auth.authenticateToken) return auth as LiveAuthProvider;
  throw new Error(
    'The live channel needs the auth plugin (app.auth) registered first, or the auth / authenticate and verifyToken options.',
  );
}

/** The live channel's series in the hub's registry (docs/live.md §11). */
function registerLiveMetrics(registry: Registry, hub: LiveHub): void {
  const registers = [registry];
  new Gauge({
    name: 'tendril_live_clients',
    help: 'Open live channel connections.',
    registers,
    collect() {
      this.set(hub.clients.size);
    },
  });
  new Gauge({
    name: 'tendril_live_subscriptions',
    help: 'Active live subscriptions, by stream.',
    labelNames: ['stream'],
    registers,
    collect() {
      for (const [stream, n] of Object.entries(hub.subscriptionCounts())) this.set({ stream }, n);
    },
  });
  const total = (name: string, help: string, pick: (t: ReturnType<LiveHub['totals']>) => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(pick(hub.totals()));
      },
    });
  };
  total('tendril_live_messages_sent_total', 'Messages written to live clients.', (t) => t.messagesSent);
  total(
    'tendril_live_batched_events_total',
    'Events sent inside `events` messages (several events of one subscription in one message).',
    (t) => t.batchedEvents,
  );
  total(
    'tendril_live_coalesced_total',
    'Data events kept latest-wins in a client outbox instead of sent at once (slow client or maximum rate).',
    (t) => t.coalesced,
  );
  total(
    'tendril_live_resyncs_total',
    'Subscriptions that passed an outbox cap and started over from a snapshot instead of disconnecting.',
    (t) => t.resyncs,
  );
}

/** The live plugin: registers /v1/live and decorates `app.live`. */
export const liveChannelPlugin = fp(livePlugin, { name: 'tendril-live', fastify: '5.x' });

// ---- sources from the re-laid-out hub's decorators

interface DecoratedHub {
  devices?: {
    registry: RegistryView;
    presence?: { latest(deviceId: string): Promise<Record<string, LatestValue>> };
    sessions: { events: EventsOf<DeviceEvents>; isConnected?(id: string): boolean };
  };
  commands?: CommandQueueLike;
  durability?: DurabilityLike;
  lifecycle?: { shuttingDown: boolean };
  /** The MQTT bridge (null or absent when the hub runs without it), read at every health check. */
  mqttBridge?: { status(): MqttStatusLike } | null;
}

/** The parts of CommandQueue the live channel uses. */
export interface CommandQueueLike {
  events: EventsOf<{ commandChanged: import('../commands/model.js').Command }>;
  get(id: number): import('../commands/model.js').Command | undefined;
  list(query: {
    deviceId: string;
    states?: readonly import('../commands/model.js').CommandState[];
    limit?: number;
  }): import('../commands/model.js').Command[];
  store: { unfinished(): ReadonlyArray<{ id: number }> };
}

/** The parts of app.durability the health stream reads. */
export interface DurabilityLike {
  store: { kind: string };
  sink: { accepting: boolean };
  spool?:
    | {
        storeState: string;
        state: { accepting: boolean; depthBytes: number; depthReadings: number; oldestUndrainedAgeMs: number };
      }
    | undefined;
}

export function commandSource(queue: CommandQueueLike): LiveCommandSource {
  return {
    events: queue.events,
    get: (id) => queue.get(id),
    list: (q) => queue.list(q),
    unfinishedIds: () =>
      queue.store
        .unfinished()
        .map((c) => c.id)
        .sort((a, b) => a - b),
  };
}

/** The parts of app.mqttBridge.status() the health stream reads (hub/src/mqtt/bridge-types.ts BridgeStatus). */
export interface MqttStatusLike {
  broker: string;
  lastError: string | null;
  since: number;
  reconnectAttempts: number;
  url: string;
  devicesAttached: number;
  unackedMessages: number;
  refused: number;
  brokerDropped: number | null;
  brokerDroppedSinceStart: number;
}

/** The MQTT bridge in the health object (§5.3.2): present only when the hub runs the bridge. */
export interface LiveMqttHealth {
  broker: string;
  /** The broker's address, without user name or password: the health stream goes to every viewer. */
  url: string;
  since: number;
  reconnectAttempts: number;
  lastError: string | null;
  brokerDropped: number | null;
  brokerDroppedSinceStart: number;
  refused: number;
  unackedMessages: number;
  devicesAttached: number;
}

export type LiveHealth = LiveHealthBase & { mqtt?: LiveMqttHealth };

function brokerAddress(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(invalid URL)';
  }
}

function mqttHealth(s: MqttStatusLike): LiveMqttHealth {
  return {
    broker: s.broker,
    url: brokerAddress(s.url),
    since: s.since,
    reconnectAttempts: s.reconnectAttempts,
    lastError: s.lastError,
    brokerDropped: s.brokerDropped,
    brokerDroppedSinceStart: s.brokerDroppedSinceStart,
    refused: s.refused,
    unackedMessages: s.unackedMessages,
    devicesAttached: s.devicesAttached,
  };
}

/** `mqtt`: the bridge's status (app.mqttBridge.status), or null while the hub runs without the bridge. */
export function healthSource(
  durability: DurabilityLike,
  isShuttingDown: () => boolean = () => false,
  mqtt: () => MqttStatusLike | null = () => null,
): () => LiveHealth {
  return () => {
    const spool = durability.spool;
    const state = spool
      ? spool.storeState === 'up' || spool.storeState === 'down'
        ? spool.storeState
        : 'unknown'
      : durability.sink.accepting
        ? 'up'
        : 'down';
    const bridge = mqtt();
    return {
      store: { kind: durability.store.kind, state },
      spool: spool
        ? {
            accepting: spool.state.accepting,
            depthBytes: spool.state.depthBytes,
            depthReadings: spool.state.depthReadings,
            oldestUndrainedAgeMs: spool.state.oldestUndrainedAgeMs,
          }
        : null,
      shuttingDown: isShuttingDown(),
      ...(bridge ? { mqtt: mqttHealth(bridge) } : {}),
    };
  };
}

function sourcesFromDecorators(app: FastifyInstance): LiveSources {
  const hub = app as unknown as DecoratedHub;
  if (!hub.devices || !hub.durability) {
    throw new Error(
      'The live channel needs app.devices and app.durability (register those plugins first), or the `sources` option.',
    );
  }
  const { devices } = hub;
  const presence = devices.presence;
  return {
    registry: devices.registry,
    deviceEvents: devices.sessions.events,
    ...(presence ? { latest: (id: string) => presence.latest(id) } : {}),
    ...(hub.commands ? { commands: commandSource(hub.commands) } : {}),
    health: healthSource(
      hub.durability,
      () => hub.lifecycle?.shuttingDown ?? false,
      () => hub.mqttBridge?.status() ?? null,
    ),
  };
}
