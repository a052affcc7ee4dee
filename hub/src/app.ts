/**
 * Builds the hub: one fastify instance, each capability a plugin that owns its state, its decorators and its
 * shutdown, registered here in dependency order (docs/architecture.md). Does not listen: tests use inject()
 * or listenHub() on port 0.
 *
 * createHub() is the one place that builds storage from the configuration (InfluxDB or SQLite, the on-disk
 * spool in front of it, retention); main.ts, `npm start`, benchmarks and end-to-end tests use it.
 * buildHub() takes storage as injected dependencies (tests inject a store or sink of their own).
 */
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fastifyWebsocket from '@fastify/websocket';
import { SUBPROTOCOL } from '@tendril/device-sdk/codec';
import { apiPlugin } from './api/plugin.js';
import { authPlugin, authRoutes } from './auth/index.js';
import { installErrorHandler } from './api/error-handler.js';
import { commandsPlugin } from './commands/plugin.js';
import type { HubConfig } from './config.js';
import type { Clock, Timers } from './core/clock.js';
import { secureDataDir } from './core/data-dir.js';
import { earlyLogger } from './core/early-log.js';
import { validatorCompiler } from './core/validation.js';
import { MAX_FRAGMENTS, MAX_PENDING_PONGS } from './device-channel/close-codes.js';
import {
  DEVICE_CHANNEL_TUNING,
  deviceChannelPlugin,
  type DeviceChannelPluginOptions,
} from './device-channel/plugin.js';
import { devicesPlugin } from './devices/plugin.js';
import { durabilityPlugin, type DurabilityOptions } from './durability/plugin.js';
import { hubBase } from './hub-base.js';
import { liveChannelPlugin } from './live/index.js';
import { mqttBridgePlugin, type MqttBridgePluginOptions } from './mqtt/plugin.js';
import { opsPlugin } from './ops/plugin.js';
import { webPlugin } from './web/plugin.js';
import { createSpool, type Spool, type SpoolOptions } from './spool/index.js';
import { createInfluxStore } from './storage/influx-store.js';
import { startPruningJob, type PruningJob } from './storage/retention.js';
import { SqliteStore } from './storage/sqlite-store.js';
import type { TimeSeriesStore } from './storage/types.js';

export interface HubDeps extends DurabilityOptions, DeviceChannelPluginOptions {
  clock?: Clock;
  timers?: Timers;
  /** fastify logger option; default from config.logLevel. */
  logger?: FastifyServerOptions['logger'];
  /** How often connection state (durable seq, presence) is written to the registry. */
  registryFlushMs?: number;
  /** Pause announced in BACKOFF STORE_BUSY (default 1000 ms). */
  storeBusyPauseMs?: number;
  /** The MQTT bridge (docs/mqtt.md); default: configured from MQTT_* (no bridge without MQTT_URL). */
  mqtt?: MqttBridgePluginOptions;
}

export function buildHub(config: HubConfig, deps: HubDeps = {}): FastifyInstance {
  // Read the certificate first: a bad path should fail before any database is opened.
  const https = config.tls ? { cert: readFileSync(config.tls.certPath), key: readFileSync(config.tls.keyPath) } : null;
  secureDataDir(config.dataDir);
  const app = Fastify({
    logger: deps.logger ?? (config.logLevel === 'silent' ? false : { level: config.logLevel }),
    // One line per HTTP request drowns what matters at info level; it is there at debug and trace.
    // (Failed requests are still logged: the hub's error handler logs every 500 itself.)
    logController: new LogController({
      disableRequestLogging: config.logLevel !== 'debug' && config.logLevel !== 'trace',
    }),
    bodyLimit: config.bodyLimit,
    ...(https ? { https } : {}),
  }) as unknown as FastifyInstance;
  installErrorHandler(app);
  // Bodies are JSON, validated strictly (no coercion of their types); docs/api.md says 415 for anything else.
  app.setValidatorCompiler(validatorCompiler());
  app.removeContentTypeParser('text/plain');

  app.register(hubBase, { config, clock: deps.clock, timers: deps.timers });
  app.register(durabilityPlugin, {
    store: deps.store,
    sink: deps.sink,
    spool: deps.spool,
    influx: deps.influx,
    pruning: deps.pruning,
  });
  app.register(devicesPlugin, { registryFlushMs: deps.registryFlushMs, storeBusyPauseMs: deps.storeBusyPauseMs });
  app.register(commandsPlugin);
  // Users, sessions, API tokens, audit (docs/security.md). Enforces every route's config.role: before any plugin adding routes.
  app.register(authPlugin, (hub) => ({
    db: hub.devices.registry.db,
    dataDir: config.dataDir,
    adminToken: config.adminToken,
    tls: config.tls !== null,
    settings: config.auth,
    clock: hub.clock,
    metricsRegistry: hub.metrics.registry,
  }));
  app.register(authRoutes, { prefix: '/api/v1', dataDir: config.dataDir });
  // One WebSocket server for every WebSocket route of the hub. Device frames are small and already
  // compact: no permessage-deflate (§1.3), and ws refuses bigger messages with 1009 before buffering them.
  app.register(fastifyWebsocket, {
    options: {
      perMessageDeflate: false,
      maxPayload: config.maxFrameBytes,
      // Limits of the WebSocket layer set on purpose, each with its close code and reason (protocol §9.2, §10).
      // (ws 8.23 takes both; @types/ws does not list them yet.)
      ...({ maxFragments: MAX_FRAGMENTS, maxPendingAutoPongs: MAX_PENDING_PONGS } as object),
      handleProtocols: (offered: Set<string>) =>
        offered.has(SUBPROTOCOL) ? SUBPROTOCOL : (offered.values().next().value ?? false),
    },
    // ws has already started its own close (1002/1009) when it reports a socket error; let it finish.
    errorHandler: (err, socket) => {
      app.log.debug({ err }, 'websocket error');
      if (socket.readyState === socket.OPEN) socket.terminate();
    },
    // Graceful shutdown, before the HTTP server stops: transports settle and close their devices, client
    // channels say goodbye, then whatever WebSocket is still open is closed.
    preClose: async function closeWebSockets() {
      await app.lifecycle.shutdown();
      await closeRemainingSockets(app);
    },
  });
  app.register(deviceChannelPlugin, Object.fromEntries(DEVICE_CHANNEL_TUNING.map((k) => [k, deps[k]])));
  app.register(mqttBridgePlugin, deps.mqtt ?? {});
  // The live channel (docs/live.md): /v1/live, authenticated by app.auth, fed by devices, commands, durability.
  app.register(liveChannelPlugin);
  app.register(opsPlugin);
  app.register(apiPlugin);
  app.register(webPlugin);
  return app;
}

async function closeRemainingSockets(app: FastifyInstance): Promise<void> {
  const remaining = [...app.websocketServer.clients];
  await Promise.race([
    Promise.all(
      remaining.map(
        (client) =>
          new Promise<void>((resolve) => {
            if (client.readyState === client.CLOSED) return resolve();
            client.once('close', () => resolve());
            client.close(1001, 'SHUTTING_DOWN');
          }),
      ),
    ),
    new Promise<void>((resolve) => setTimeout(resolve, 2000).unref()),
  ]);
  for (const client of remaining) if (client.readyState !== client.CLOSED) client.terminate();
  app.websocketServer.close();
}

export interface CreateHubDeps extends Omit<HubDeps, 'store' | 'sink' | 'spool' | 'influx' | 'pruning'> {
  /** Spool tuning over the configured directory and cap (tests shorten the drain linger or back-off). */
  spoolOptions?: Partial<Omit<SpoolOptions, 'dir' | 'store' | 'maxBytes'>>;
}

/**
 * Builds the hub with the storage its configuration asks for (docs/storage.md): InfluxDB when INFLUX_* is
 * set, else SQLite in the data directory; the on-disk spool in front of either (a reading is acked once it is
 * in the spool); the SQLite pruning job for retention (InfluxDB 1.x gets a retention policy instead).
 * An InfluxDB that does not answer at start is not fatal: readings are spooled until it does.
 */
export async function createHub(config: HubConfig, deps: CreateHubDeps = {}): Promise<FastifyInstance> {
  secureDataDir(config.dataDir);
  // Storage logs before fastify (and its logger) exists: keep those lines and hand them over once it does.
  const early = earlyLogger();
  const logger = early.logger;

  const { storage } = config;
  const influx = storage.influx ? createInfluxStore({ ...storage.influx, logger }) : undefined;
  const sqlite = influx ? undefined : new SqliteStore(config.dataDir, { logger });
  const store: TimeSeriesStore = influx ?? sqlite!;
  let spool: Spool | undefined;
  let pruning: PruningJob | undefined;
  try {
    if (influx) {
      await influx.init().catch((err: unknown) => {
        logger.warn(
          { err, url: storage.influx!.url },
          'InfluxDB does not answer at start; readings are spooled until it does',
        );
      });
    }
    spool = await createSpool({
      memoryTailReadings: storage.spool.memoryTailReadings,
      ...deps.spoolOptions,
      dir: storage.spool.dir,
      maxBytes: storage.spool.maxBytes,
      store,
      logger,
    });
    if (sqlite) {
      pruning = startPruningJob({
        prune: (cutoff) => sqlite.pruneBefore(cutoff),
        retentionDays: storage.retentionDays,
        onPruned: (deleted, cutoff) => {
          if (deleted > 0)
            logger.info({ deleted, before: new Date(cutoff).toISOString() }, 'retention: old readings deleted');
        },
        onError: (err) => logger.error({ err }, 'retention: pruning failed; retrying at the next run'),
      });
    }
    const app = buildHub(config, {
      ...deps,
      store,
      spool,
      ...(influx ? { influx } : {}),
      ...(pruning ? { pruning } : {}),
    });
    early.attach(app.log);
    return app;
  } catch (err) {
    await spool?.close().catch(() => undefined);
    await pruning?.stop();
    await store.close().catch(() => undefined);
    early.toStderr();
    throw err;
  }
}
