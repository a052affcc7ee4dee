/**
 * Command catalogues per device model (docs/commands.md, "Command catalogue"). Register under /api/v1.
 *   GET    /models                   every model with a catalogue (viewer)
 *   GET    /models/:model            one model's catalogue (viewer)
 *   PUT    /models/:model/commands   set (replace) it (admin, audited)
 *   DELETE /models/:model/commands   remove it: the model's devices take any command again (admin, audited)
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { AuditLog } from '../auth/audit.js';
import { CATALOG_LIMITS, type CommandCatalog, catalogBodySchema, type ModelCatalogInput } from '../commands/catalog.js';
import type { Clock } from '../core/clock.js';
import { HubHttpError } from '../errors.js';

export interface ModelApiOptions {
  catalog: CommandCatalog;
  clock: Clock;
  audit: Pick<AuditLog, 'record'>;
}

const modelParams = {
  type: 'object',
  required: ['model'],
  properties: { model: { type: 'string', minLength: 1, maxLength: CATALOG_LIMITS.maxModelLength } },
} as const;

interface ModelParams {
  model: string;
}

function notFound(model: string): HubHttpError {
  return new HubHttpError(
    'MODEL_NOT_FOUND',
    `No command catalogue is set for model "${model}"; an admin sets one with PUT /api/v1/models/${encodeURIComponent(model)}/commands.`,
  );
}

function readRoutes(app: FastifyInstance, { catalog }: ModelApiOptions): void {
  app.get('/models', { config: { role: 'viewer' } }, async () => ({ models: catalog.list() }));
  app.get<{ Params: ModelParams }>(
    '/models/:model',
    { config: { role: 'viewer' }, schema: { params: modelParams } },
    async (request) => {
      const found = catalog.get(request.params.model);
      if (!found) throw notFound(request.params.model);
      return found;
    },
  );
}

function writeRoutes(app: FastifyInstance, { catalog, clock, audit }: ModelApiOptions): void {
  app.put<{ Params: ModelParams; Body: ModelCatalogInput }>(
    '/models/:model/commands',
    { config: { role: 'admin' }, schema: { params: modelParams, body: catalogBodySchema } },
    async (request) => {
      const { model } = request.params;
      try {
        const saved = catalog.set(model, request.body, request.principal?.name ?? 'anonymous', clock.now());
        audit.record({
          action: 'model.commands.set',
          request,
          target: `model:${model}`,
          detail: { commands: saved.commands.map((c) => c.name), allowUnlisted: saved.allowUnlisted },
        });
        return saved;
      } catch (err) {
        if (err instanceof HubHttpError)
          audit.record({
            action: 'model.commands.set',
            request,
            target: `model:${model}`,
            outcome: 'failure',
            detail: { code: err.code },
          });
        throw err;
      }
    },
  );
  app.delete<{ Params: ModelParams }>(
    '/models/:model/commands',
    { config: { role: 'admin' }, schema: { params: modelParams } },
    async (request, reply) => {
      const { model } = request.params;
      if (!catalog.delete(model)) throw notFound(model);
      audit.record({ action: 'model.commands.delete', request, target: `model:${model}` });
      return reply.code(204).send();
    },
  );
}

export const modelApi: FastifyPluginAsync<ModelApiOptions> = async (app, opts) => {
  readRoutes(app, opts);
  writeRoutes(app, opts);
};
