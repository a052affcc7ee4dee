/**
 * The durability chain as a plugin: the time-series store (InfluxDB or SQLite), the sink readings are
 * accepted into (the on-disk spool, or a group-commit writer straight over the store), and retention.
 * Decorates `app.durability`. Registered first among the capabilities, so it closes last: by then every
 * transport has settled, and the spool commits what it took (what is undrained stays on disk for the next
 * start).
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { registerStorageMetrics, type Spool } from '../spool/index.js';
import { GroupCommitWriter } from '../storage/group-commit.js';
import type { InfluxStore } from '../storage/influx-store.js';
import type { PruningJob } from '../storage/retention.js';
import { SqliteStore } from '../storage/sqlite-store.js';
import type { ReadingSink, TimeSeriesStore } from '../storage/types.js';
import type { HubMetrics } from '../ops/metrics.js';

export interface Durability {
  store: TimeSeriesStore;
  /** Where accepted readings go; accept() resolves once they are durable. */
  sink: ReadingSink;
  /** The on-disk spool when it is the sink: /readyz and /metrics show its state. */
  spool: Spool | null;
}

declare module 'fastify' {
  interface FastifyInstance {
    durability: Durability;
  }
}

export interface DurabilityOptions {
  /** Time-series store; default: SQLite in the data directory. Closed at shutdown. */
  store?: TimeSeriesStore | undefined;
  /** Where accepted readings go; default: the spool, else a group-commit writer over the store. Closed at shutdown. */
  sink?: ReadingSink | ((store: TimeSeriesStore, metrics: HubMetrics) => ReadingSink) | undefined;
  spool?: Spool | undefined;
  /** The InfluxDB store (also passed as `store`), for its request and dead-letter metrics. */
  influx?: InfluxStore | undefined;
  /** SQLite retention job; stopped at shutdown before the store closes. */
  pruning?: PruningJob | undefined;
}

export const durabilityPlugin = fp<DurabilityOptions>(
  async (app: FastifyInstance, opts) => {
    const { metrics, timers } = app;
    const store = opts.store ?? new SqliteStore(app.hubConfig.dataDir);
    const sink =
      typeof opts.sink === 'function'
        ? opts.sink(store, metrics)
        : (opts.sink ??
          opts.spool ??
          new GroupCommitWriter(store, { timers, onCommit: (seconds) => metrics.storeCommitSeconds.observe(seconds) }));
    if (opts.spool) registerStorageMetrics(metrics.registry, opts.spool, opts.influx);
    app.decorate('durability', { store, sink, spool: opts.spool ?? null });
    app.addHook('onClose', async () => {
      await sink.close();
      await opts.pruning?.stop();
      await store.close();
    });
  },
  { name: 'tendril-durability', dependencies: ['tendril-base'] },
);
