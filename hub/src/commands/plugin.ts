/**
 * The command queue as a plugin: commands kept in hub.db, delivered through the device sessions to
 * whichever transport holds a device. Decorates `app.commands`.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { CommandQueue } from './queue.js';

declare module 'fastify' {
  interface FastifyInstance {
    commands: CommandQueue;
  }
}

export const commandsPlugin = fp(
  async (app: FastifyInstance) => {
    const { registry, sessions } = app.devices;
    const commands = new CommandQueue({
      db: registry.db,
      sessions,
      deviceExists: (id) => registry.get(id) !== undefined,
      clock: app.clock,
      timers: app.timers,
      metrics: app.metrics.registry,
      log: app.log,
    });
    app.decorate('commands', commands);
    app.addHook('onClose', async () => commands.close());
  },
  { name: 'tendril-commands', dependencies: ['tendril-devices'] },
);
