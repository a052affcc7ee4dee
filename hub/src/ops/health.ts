/**
 * /healthz (the process answers), /readyz (it can take readings), /metrics (Prometheus text).
 *
 * With the on-disk spool in front of the store, a store that does not answer does not make the hub unready:
 * readings are acked once spooled, so the hub is "degraded" (200) while the spool accepts, and not ready
 * (503) only once the spool is full (devices get BACKOFF STORE_BUSY) or the hub is shutting down.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { HubMetrics } from './metrics.js';
import type { Spool } from '../spool/index.js';
import type { ReadingSink, TimeSeriesStore } from '../storage/types.js';

export interface HealthOptions {
  store: TimeSeriesStore;
  sink: ReadingSink;
  metrics: HubMetrics;
  isShuttingDown: () => boolean;
  /** The spool when it is the sink: its state is shown and a store outage only degrades readiness. */
  spool?: Spool;
  /**
   * Checks of other capabilities that degrade the hub without making it unready (the MQTT bridge's broker):
   * name -> 'ok' or what is wrong.
   */
  degradingChecks?: () => Record<string, Check>;
  /** Longest /readyz waits for the store to answer. */
  storeTimeoutMs?: number;
}

type Check = 'ok' | string;

export const healthPlugin: FastifyPluginAsync<HealthOptions> = async (app, opts) => {
  const storeTimeoutMs = opts.storeTimeoutMs ?? 2000;
  const { spool } = opts;

  app.get('/healthz', { config: { role: 'public' } }, async () => ({ status: 'ok' }));

  // Anonymous callers (load balancers) get the status only; details (store URL, spool path, errors) need
  // credentials of any role (issue 11: they told an anonymous caller the InfluxDB URL and the spool's path).
  app.get('/readyz', { config: { role: 'public' } }, async (request, reply) => {
    const detailed = (request as { principal?: unknown }).principal != null;
    const checks: Record<string, Check> & { store: Check; writer: Check; shutdown: Check } = {
      store: 'ok',
      writer: 'ok',
      shutdown: 'ok',
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        opts.store.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${storeTimeoutMs} ms`)), storeTimeoutMs);
        }),
      ]);
      // The store answers again: let the drainer try now instead of finishing its back-off wait.
      if (spool?.storeState === 'down') spool.retryNow();
    } catch (err) {
      checks.store = `${opts.store.kind} store not reachable: ${err instanceof Error ? err.message : String(err)}`;
    } finally {
      clearTimeout(timer);
    }
    if (spool && checks.store === 'ok' && spool.storeState === 'down' && spool.state.lastWriteError) {
      checks.store = `${opts.store.kind} store refuses writes: ${spool.state.lastWriteError.message}`;
    }
    const spoolFailure = spool?.state.failure;
    if (spoolFailure) {
      checks.writer = `the spool failed writing to disk (${spoolFailure.message}): it takes no readings until the disk is fixed and the hub restarted`;
    } else if (!opts.sink.accepting) {
      checks.writer = spool
        ? `the spool is full (${spool.depthBytes} undrained bytes): devices are told to back off until the store takes readings again`
        : 'the reading writer is not accepting (store failing or too much pending)';
    }
    if (opts.isShuttingDown()) checks.shutdown = 'the hub is shutting down';
    const degrading = opts.degradingChecks?.() ?? {};
    Object.assign(checks, degrading);
    const spoolView = spool ? spoolSummary(spool) : undefined;
    // With a spool, a store outage alone is survivable: readings are durable in the spool and acked.
    const survivable = (k: string) => (spool !== undefined && k === 'store') || k in degrading;
    const failing = Object.entries(checks).filter(([k, v]) => v !== 'ok' && !survivable(k));
    if (failing.length === 0) {
      const status = Object.values(checks).every((v) => v === 'ok') ? 'ready' : 'degraded';
      return detailed ? { status, checks, ...(spoolView ? { spool: spoolView } : {}) } : { status };
    }
    const message = detailed
      ? failing.map(([k, v]) => `${k}: ${v}`).join('; ')
      : `The hub is not ready (${failing.map(([k]) => k).join(', ')}); GET /readyz with credentials for the details.`;
    const error = { code: 'NOT_READY', message };
    return reply
      .code(503)
      .send(
        detailed
          ? { status: 'not_ready', checks, ...(spoolView ? { spool: spoolView } : {}), error }
          : { status: 'not_ready', error },
      );
  });

  app.get('/metrics', { config: { role: 'public' } }, async (_request, reply) => {
    const text = await opts.metrics.registry.metrics();
    return reply.type(opts.metrics.registry.contentType).send(text);
  });
};

function spoolSummary(spool: Spool): object {
  const s = spool.state;
  return {
    store: s.store,
    accepting: s.accepting,
    depthBytes: s.depthBytes,
    depthReadings: s.depthReadings,
    oldestUndrainedAgeMs: s.oldestUndrainedAgeMs,
    writeErrors: s.writeErrors,
    lastWriteError: s.lastWriteError,
    failure: s.failure ?? null,
  };
}
