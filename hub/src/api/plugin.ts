/**
 * The versioned HTTP API under /api/v1 (docs/api.md): devices, commands, history. Built on the devices
 * layer, the command queue and the store; knows no transport.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { errorBody } from '../errors.js';
import { commandApi } from './commands.js';
import { deviceApi } from './devices.js';
import { historyRoutes } from './history.js';
import { modelApi } from './models.js';
import { CommandCatalog } from '../commands/catalog.js';

export const apiPlugin = fp(
  async (app: FastifyInstance) => {
    const { devices, commands, durability, clock } = app;
    const deviceExists = (id: string) => devices.registry.get(id) !== undefined;
    // Command catalogues per model, in hub.db beside the registry (docs/commands.md).
    const catalog = new CommandCatalog(devices.registry.db);
    const modelOf = (id: string) => devices.registry.get(id)?.model;
    await app.register(
      async (api) => {
        api.setNotFoundHandler(async (request, reply) =>
          reply
            .code(404)
            .send(
              errorBody(
                'NOT_FOUND',
                `No route ${request.method} ${request.url}; see docs/api.md for the routes of /api/v1.`,
              ),
            ),
        );
        await api.register(deviceApi, {
          registry: devices.registry,
          presence: devices.presence,
          connections: devices.sessions,
          clock,
          audit: app.auth.audit,
        });
        await api.register(commandApi, { commands, deviceExists, catalog, modelOf, audit: app.auth.audit });
        await api.register(modelApi, { catalog, clock, audit: app.auth.audit });
        const spool = durability.spool;
        await api.register(historyRoutes, {
          store: durability.store,
          clock,
          deviceExists,
          ...(spool ? { storeAcked: () => spool.whenStored() } : {}),
        });
      },
      { prefix: '/api/v1' },
    );
  },
  { name: 'tendril-api', dependencies: ['tendril-commands', 'tendril-auth'] },
);
