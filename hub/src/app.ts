/**
 * Builds the hub: one fastify instance with each capability as a plugin, wired to the shared core
 * (registry, time-series store, reading sink, presence, metrics). Does not listen: tests use inject()
 * or listenHub() on port 0.
 *
 * createHub() is the one place that builds storage from the configuration (InfluxDB or SQLite, the on-disk
 * spool in front of it, retention); main.ts, `npm start`, benchmarks and end-to-end tests use it.
 * buildHub() takes storage as injected dependencies (tests inject a store or sink of their own).
 */
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fastifyWebsocket from '@fastify/websocket';
import { SUBPROTOCOL } from '@tendril/device-sdk';
import { systemClock, systemTimers, type Clock, type TimerHandle, type Timers } from './clock.js';
import { commandApi } from './api/commands.js';
import { deviceApi } from './api/devices.js';
import { historyRoutes } from './api/history.js';
import { requireAdminToken } from './api/auth.js';
import { installErrorHandler } from './api/error-handler.js';
import { CommandQueue } from './commands/queue.js';
import type { HubConfig } from './config.js';
import { DeviceChannel } from './device-channel/channel.js';
import { deviceChannelPlugin } from './device-channel/plugin.js';
import { errorBody } from './errors.js';
import { healthPlugin } from './health.js';
import { landingPage } from './landing.js';
import { HubMetrics } from './metrics.js';
import { PresenceTracker } from './presence.js';
import { DeviceRegistry } from './registry.js';
import { createSpool, registerStorageMetrics, type Spool, type SpoolOptions } from './spool/index.js';
import { GroupCommitWriter } from './storage/group-commit.js';
import { createInfluxStore, type InfluxStore, type StorageLogger } from './storage/influx-store.js';
import { startPruningJob, type PruningJob } from './storage/retention.js';
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
  /** Pause announced in BACKOFF STORE_BUSY (default 1000 ms). */
  storeBusyPauseMs?: number;
  /** Time a turn of the event loop spends on device frames before sockets wait for the next (default 3 ms). */
  ingestTurnMs?: number;
  /** Up to this many device sockets a spent ingest budget pauses all of them (default 256, see DeviceChannel). */
  pauseAllSocketsUpTo?: number;
  /**
   * The on-disk spool, as the sink (unless `sink` is given): /readyz and /metrics show its state, and the
   * registry's durable seqs are raised to the spool's at start (they may lag after a crash).
   */
  spool?: Spool;
  /** The InfluxDB store (also passed as `store`), for its request and dead-letter metrics. */
  influx?: InfluxStore;
  /** SQLite retention job; stopped at shutdown before the store closes. */
  pruning?: PruningJob;
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
  /** Device connections: events (online, offline, readings, commandResult, status), sendCommand(). */
  channel: DeviceChannel;
  /** Commands to devices: submit(), get(), list(), and events ('commandChanged'). */
  commands: CommandQueue;
  /** True from the moment close() starts. */
  readonly shuttingDown: boolean;
  /**
   * Registers work to do at shutdown after the device channel has closed its connections and before
   * the hub closes every remaining WebSocket (e.g. the live channel saying goodbye to dashboards).
   */
  onShutdown(task: () => Promise<void> | void): void;
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
  if (deps.spool) raiseAckedSeqs(registry, deps.spool);
  const store = deps.store ?? new SqliteStore(config.dataDir);
  const sink =
    typeof deps.sink === 'function'
      ? deps.sink(store, metrics)
      : (deps.sink ??
        deps.spool ??
        new GroupCommitWriter(store, {
          timers,
          onCommit: (seconds) => metrics.storeCommitSeconds.observe(seconds),
        }));
  let shuttingDown = false;
  const shutdownTasks: Array<() => Promise<void> | void> = [];
  const logSink = { current: null as FastifyInstance['log'] | null };
  const presence = new PresenceTracker(registry, store, clock, { error: (obj, msg) => logSink.current?.error(obj, msg) });
  const channel = new DeviceChannel({
    registry,
    presence,
    sink,
    metrics,
    clock,
    timers,
    heartbeatMs: config.heartbeatMs,
    helloTimeoutMs: config.helloTimeoutMs,
    deviceRate: config.deviceRate,
    deviceBurst: config.deviceBurst,
    maxFrameBytes: config.maxFrameBytes,
    maxConnections: config.maxConnections,
    ...(deps.storeBusyPauseMs !== undefined ? { storeBusyPauseMs: deps.storeBusyPauseMs } : {}),
    ...(deps.ingestTurnMs !== undefined ? { ingestTurnMs: deps.ingestTurnMs } : {}),
    ...(deps.pauseAllSocketsUpTo !== undefined ? { pauseAllSocketsUpTo: deps.pauseAllSocketsUpTo } : {}),
    log: {
      warn: (obj, msg) => logSink.current?.warn(obj, msg),
      error: (obj, msg) => logSink.current?.error(obj, msg),
      debug: (obj, msg) => logSink.current?.debug(obj, msg),
    },
  });
  const commands = new CommandQueue({
    db: registry.db,
    channel,
    deviceExists: (id) => registry.get(id) !== undefined,
    clock,
    timers,
    metrics: metrics.registry,
    log: {
      warn: (obj, msg) => logSink.current?.warn(obj, msg),
      error: (obj, msg) => logSink.current?.error(obj, msg),
      debug: (obj, msg) => logSink.current?.debug(obj, msg),
    },
  });
  const context: HubContext = {
    config,
    clock,
    timers,
    registry,
    store,
    sink,
    presence,
    metrics,
    channel,
    commands,
    get shuttingDown() {
      return shuttingDown;
    },
    onShutdown(task) {
      shutdownTasks.push(task);
    },
  };

  const app = Fastify({
    logger: deps.logger ?? (config.logLevel === 'silent' ? false : { level: config.logLevel }),
    // One line per HTTP request drowns what matters at info level; it is there at debug and trace.
    // (Failed requests are still logged: the hub's error handler logs every 500 itself.)
    logController: new LogController({ disableRequestLogging: config.logLevel !== 'debug' && config.logLevel !== 'trace' }),
    bodyLimit: config.bodyLimit,
    // Unknown fields are an error the client should hear about, not something to drop silently.
    ajv: { customOptions: { removeAdditional: false } },
    ...(https ? { https } : {}),
  }) as unknown as FastifyInstance;

  logSink.current = app.log;
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

  if (deps.spool) registerStorageMetrics(metrics.registry, deps.spool, deps.influx);

  app.addHook('onClose', async () => {
    timers.clearInterval(flushTimer);
    // The spool commits what it took and stops draining; what is undrained stays on disk for the next start.
    await sink.close();
    await deps.pruning?.stop();
    commands.close();
    registry.close();
    await store.close();
  });

  // One WebSocket server for every WebSocket route of the hub. Device frames are small and already
  // compact: no permessage-deflate (§1.3), and ws refuses bigger messages with 1009 before buffering them.
  app.register(fastifyWebsocket, {
    options: {
      perMessageDeflate: false,
      maxPayload: config.maxFrameBytes,
      handleProtocols: (offered: Set<string>) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : (offered.values().next().value ?? false)),
    },
    // ws has already started its own close (1002/1009) when it reports a socket error; let it finish.
    errorHandler: (err, socket) => {
      app.log.debug({ err }, 'websocket error');
      if (socket.readyState === socket.OPEN) socket.terminate();
    },
    // Graceful shutdown, before the HTTP server stops: devices first (their readings are acked), then
    // registered shutdown tasks, then whatever WebSocket is still open.
    preClose: async function closeWebSockets() {
      shuttingDown = true;
      await channel.shutdown();
      for (const task of shutdownTasks) {
        try {
          await task();
        } catch (err) {
          app.log.error({ err }, 'a shutdown task failed');
        }
      }
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
    },
  });
  app.register(deviceChannelPlugin, { channel });
  app.register(landingPage);
  app.register(healthPlugin, { store, sink, metrics, isShuttingDown: () => shuttingDown, ...(deps.spool ? { spool: deps.spool } : {}) });
  app.register(
    async (api) => {
      api.addHook('onRequest', requireAdminToken(config.adminToken));
      api.setNotFoundHandler(async (request, reply) =>
        reply.code(404).send(errorBody('NOT_FOUND', `No route ${request.method} ${request.url}; see docs/api.md for the routes of /api/v1.`)),
      );
      await api.register(deviceApi, { registry, presence, connections: channel, clock });
      await api.register(commandApi, { commands, deviceExists: (id) => registry.get(id) !== undefined });
      await api.register(historyRoutes, { store, clock, deviceExists: (id) => registry.get(id) !== undefined });
    },
    { prefix: '/api/v1' },
  );

  return app;
}

/**
 * After a crash the registry's durable seqs (flushed periodically) can lag the spool's (made durable before
 * every ack). Starting from the larger one keeps WELCOME.ackedSeq (§6.3.4) and the duplicate check (§7.2)
 * from re-accepting readings that were already acked.
 */
function raiseAckedSeqs(registry: DeviceRegistry, spool: Spool): void {
  for (const [deviceId, epochs] of spool.durableSeqs()) {
    const device = registry.get(deviceId);
    if (!device) continue;
    for (const [epoch, seq] of epochs) if (seq > registry.ackedSeqOf(deviceId, epoch)) registry.setAckedSeq(device, epoch, seq);
  }
  registry.flush();
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
  // Storage logs before fastify (and its logger) exists: keep those lines and hand them over once it does.
  const early: Array<{ level: 'info' | 'warn' | 'error'; obj: object; msg: string }> = [];
  const target = { current: null as FastifyInstance['log'] | null };
  const logTo =
    (level: 'info' | 'warn' | 'error') =>
    (obj: object, msg: string): void => {
      if (target.current) target.current[level](obj, msg);
      else early.push({ level, obj, msg });
    };
  const logger: StorageLogger & { info(obj: object, msg: string): void } = { info: logTo('info'), warn: logTo('warn'), error: logTo('error') };

  const { storage } = config;
  const influx = storage.influx ? createInfluxStore({ ...storage.influx, logger }) : undefined;
  const sqlite = influx ? undefined : new SqliteStore(config.dataDir);
  const store: TimeSeriesStore = influx ?? sqlite!;
  let spool: Spool | undefined;
  let pruning: PruningJob | undefined;
  try {
    if (influx) {
      await influx.init().catch((err: unknown) => {
        logger.warn({ err, url: storage.influx!.url }, 'InfluxDB does not answer at start; readings are spooled until it does');
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
          if (deleted > 0) logger.info({ deleted, before: new Date(cutoff).toISOString() }, 'retention: old readings deleted');
        },
        onError: (err) => logger.error({ err }, 'retention: pruning failed; retrying at the next run'),
      });
    }
    const app = buildHub(config, { ...deps, store, spool, ...(influx ? { influx } : {}), ...(pruning ? { pruning } : {}) });
    target.current = app.log;
    for (const line of early.splice(0)) app.log[line.level](line.obj, line.msg);
    return app;
  } catch (err) {
    await spool?.close().catch(() => undefined);
    await pruning?.stop();
    await store.close().catch(() => undefined);
    for (const line of early) process.stderr.write(`${line.level}: ${line.msg}\n`);
    throw err;
  }
}
