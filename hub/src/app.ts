/**
 * Builds the hub: one fastify instance with each capability as a plugin, wired to the shared core
 * (registry, time-series store, reading sink, presence, metrics). Does not listen: tests use inject()
 * or listenHub() on port 0.
 */
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { systemClock, systemTimers, type Clock, type TimerHandle, type Timers } from './clock.js';
import { deviceApi, type DeviceConnections } from './api/devices.js';
import { requireAdminToken } from './api/auth.js';
import { installErrorHandler } from './api/error-handler.js';
import type { HubConfig } from './config.js';
import { errorBody } from './errors.js';
import { healthPlugin } from './health.js';
import { HubMetrics } from './metrics.js';
import { PresenceTracker } from './presence.js';
import { DeviceRegistry } from './registry.js';
import { GroupCommitWriter } from './storage/group-commit.js';
import { SqliteStore } from './storage/sqlite-store.js';
import type { ReadingSink, TimeSeriesStore } from './storage/types.js';

export interface HubDeps {
  clock?: Clock;
  timers?: Timers;
  /** Time-series store; default: SQLite in the data directory. The hub closes it on shutdown. */
  store?: TimeSeriesStore;
  /** Where accepted readings go; default: a group-commit writer over the store. The hub closes it. */
  sink?: ReadingSink | ((store: TimeSeriesStore, metrics: HubMetrics) => ReadingSink);
  /** fastify logger option; default from config.logLevel. */
  logger?: FastifyServerOptions['logger'];
  /** How often connection state (durable seq, presence) is written to the registry. */
  registryFlushMs?: number;
}

/** The hub's shared core, decorated on the fastify instance as `app.tendril` for plugins to use. */
export interface HubContext {
  config: HubConfig;
  clock: Clock;
  timers: Timers;
  registry: DeviceRegistry;
  store: TimeSeriesStore;
  sink: ReadingSink;
  presence: PresenceTracker;
  metrics: HubMetrics;
  /** True from the moment close() starts. */
  readonly shuttingDown: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    tendril: HubContext;
  }
}

export function buildHub(config: HubConfig, deps: HubDeps = {}): FastifyInstance {
  // Read the certificate first: a bad path should fail before any database is opened.
  const https = config.tls ? { cert: readFileSync(config.tls.certPath), key: readFileSync(config.tls.keyPath) } : null;
  const clock = deps.clock ?? systemClock;
  const timers = deps.timers ?? systemTimers;
  const metrics = new HubMetrics();
  const registry = new DeviceRegistry(config.dataDir);
  const store = deps.store ?? new SqliteStore(config.dataDir);
  const sink =
    typeof deps.sink === 'function'
      ? deps.sink(store, metrics)
      : (deps.sink ??
        new GroupCommitWriter(store, {
          timers,
          onCommit: (seconds) => metrics.storeCommitSeconds.observe(seconds),
        }));
  const presence = new PresenceTracker(registry, store, clock);
  let shuttingDown = false;
  const context: HubContext = {
    config,
    clock,
    timers,
    registry,
    store,
    sink,
    presence,
    metrics,
    get shuttingDown() {
      return shuttingDown;
    },
  };

  const app = Fastify({
    logger: deps.logger ?? (config.logLevel === 'silent' ? false : { level: config.logLevel }),
    bodyLimit: config.bodyLimit,
    // Unknown fields are an error the client should hear about, not something to drop silently.
    ajv: { customOptions: { removeAdditional: false } },
    ...(https ? { https } : {}),
  }) as unknown as FastifyInstance;

  app.decorate('tendril', context);
  installErrorHandler(app);

  const flushTimer: TimerHandle = timers.setInterval(() => {
    try {
      registry.flush();
    } catch (err) {
      app.log.error({ err }, 'writing connection state to the registry failed; retrying at the next flush');
    }
  }, deps.registryFlushMs ?? 1000);
  flushTimer.unref?.();

  app.addHook('preClose', async () => {
    shuttingDown = true;
  });
  app.addHook('onClose', async () => {
    timers.clearInterval(flushTimer);
    await sink.close();
    registry.close();
    await store.close();
  });

  // Until the device channel is registered there are no device connections to close.
  const connections: DeviceConnections = { disconnect: () => undefined };

  app.register(healthPlugin, { store, sink, metrics, isShuttingDown: () => shuttingDown });
  app.register(
    async (api) => {
      api.addHook('onRequest', requireAdminToken(config.adminToken));
      api.setNotFoundHandler(async (request, reply) =>
        reply.code(404).send(errorBody('NOT_FOUND', `No route ${request.method} ${request.url}; see docs/api.md for the routes of /api/v1.`)),
      );
      await api.register(deviceApi, { registry, presence, connections, clock });
    },
    { prefix: '/api/v1' },
  );

  return app;
}
