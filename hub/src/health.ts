/** /healthz (the process answers), /readyz (it can take readings), /metrics (Prometheus text). */
import type { FastifyPluginAsync } from 'fastify';
import type { HubMetrics } from './metrics.js';
import type { ReadingSink, TimeSeriesStore } from './storage/types.js';

export interface HealthOptions {
  store: TimeSeriesStore;
  sink: ReadingSink;
  metrics: HubMetrics;
  isShuttingDown: () => boolean;
  /** Longest /readyz waits for the store to answer. */
  storeTimeoutMs?: number;
}

type Check = 'ok' | string;

export const healthPlugin: FastifyPluginAsync<HealthOptions> = async (app, opts) => {
  const storeTimeoutMs = opts.storeTimeoutMs ?? 2000;

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const checks: { store: Check; writer: Check; shutdown: Check } = { store: 'ok', writer: 'ok', shutdown: 'ok' };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        opts.store.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${storeTimeoutMs} ms`)), storeTimeoutMs);
        }),
      ]);
    } catch (err) {
      checks.store = `${opts.store.kind} store not reachable: ${err instanceof Error ? err.message : String(err)}`;
    } finally {
      clearTimeout(timer);
    }
    if (!opts.sink.accepting) checks.writer = 'the reading writer is not accepting (store failing or too much pending)';
    if (opts.isShuttingDown()) checks.shutdown = 'the hub is shutting down';
    const notReady = Object.entries(checks).filter(([, v]) => v !== 'ok');
    if (notReady.length === 0) return { status: 'ready', checks };
    return reply.code(503).send({
      status: 'not_ready',
      checks,
      error: { code: 'NOT_READY', message: notReady.map(([k, v]) => `${k}: ${v}`).join('; ') },
    });
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await opts.metrics.registry.metrics();
    return reply.type(opts.metrics.registry.contentType).send(text);
  });
};
