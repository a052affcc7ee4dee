/**
 * The hub's base plugin: what every capability shares. It decorates the instance with the configuration,
 * the clock and timers, the Prometheus metrics, and the shutdown order:
 *
 *   1. `lifecycle.shuttingDown` turns true; the devices layer takes no more attaches or readings;
 *   2. transports (device channel, MQTT bridge) settle what they took, ack it and close their devices;
 *   3. client channels (live dashboards) say goodbye;
 *   4. fastify closes the plugins in reverse order of registration (their onClose hooks): transports,
 *      commands, devices, and durability last (the spool commits what it took).
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { HubConfig } from './config.js';
import { systemClock, systemTimers, type Clock, type Timers } from './core/clock.js';
import { HubMetrics } from './ops/metrics.js';

export type ShutdownPhase = 'transports' | 'clients';

export interface HubLifecycle {
  /** True from the moment close() starts. */
  readonly shuttingDown: boolean;
  /** Registers work for a phase of the graceful shutdown (see the module comment). */
  onShutdown(phase: ShutdownPhase, task: () => Promise<void> | void): void;
  /** Runs the phases in order; called once by the WebSocket layer's preClose. */
  shutdown(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    hubConfig: HubConfig;
    clock: Clock;
    timers: Timers;
    metrics: HubMetrics;
    lifecycle: HubLifecycle;
  }
}

export interface HubBaseOptions {
  config: HubConfig;
  clock?: Clock | undefined;
  timers?: Timers | undefined;
}

export const hubBase = fp<HubBaseOptions>(
  async (app: FastifyInstance, opts) => {
    const tasks: Record<ShutdownPhase, Array<() => Promise<void> | void>> = { transports: [], clients: [] };
    let shuttingDown = false;
    const lifecycle: HubLifecycle = {
      get shuttingDown() {
        return shuttingDown;
      },
      onShutdown(phase, task) {
        tasks[phase].push(task);
      },
      async shutdown() {
        shuttingDown = true;
        for (const phase of ['transports', 'clients'] as const) {
          // Tasks of one phase run together: every transport settles and closes its devices at once.
          const results = await Promise.allSettled(tasks[phase].map(async (task) => task()));
          for (const r of results)
            if (r.status === 'rejected') app.log.error({ err: r.reason, phase }, 'a shutdown task failed');
        }
      },
    };
    app.decorate('hubConfig', opts.config);
    app.decorate('clock', opts.clock ?? systemClock);
    app.decorate('timers', opts.timers ?? systemTimers);
    app.decorate('metrics', new HubMetrics());
    app.decorate('lifecycle', lifecycle);
  },
  { name: 'tendril-base' },
);
