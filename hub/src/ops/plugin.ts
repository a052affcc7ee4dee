/**
 * Operations: /healthz, /readyz, /metrics and the landing page at /.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { healthPlugin } from './health.js';
import { landingPage } from './landing.js';

export const opsPlugin = fp(
  async (app: FastifyInstance) => {
    const { durability, metrics, lifecycle } = app;
    await app.register(landingPage);
    await app.register(healthPlugin, {
      store: durability.store,
      sink: durability.sink,
      metrics,
      isShuttingDown: () => lifecycle.shuttingDown,
      ...(durability.spool ? { spool: durability.spool } : {}),
    });
  },
  { name: 'tendril-ops', dependencies: ['tendril-durability'] },
);
