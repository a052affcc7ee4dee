/**
 * Operations: /healthz, /readyz, /metrics. (The page at / is the dashboard: hub/src/web/.)
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { healthPlugin } from './health.js';

export const opsPlugin = fp(
  async (app: FastifyInstance) => {
    const { durability, metrics, lifecycle } = app;
    await app.register(healthPlugin, {
      store: durability.store,
      sink: durability.sink,
      metrics,
      isShuttingDown: () => lifecycle.shuttingDown,
      degradingChecks: (): Record<string, string> => (app.mqttBridge ? { broker: app.mqttBridge.readiness() } : {}),
      ...(durability.spool ? { spool: durability.spool } : {}),
    });
  },
  { name: 'tendril-ops', dependencies: ['tendril-durability'] },
);
