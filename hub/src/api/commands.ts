/**
 * The command API (docs/commands.md). Register under the /api/v1 prefix, behind the admin-token hook.
 *   POST /devices/:id/commands     queue a command (202; 200 when an idempotency key repeats a request)
 *   GET  /devices/:id/commands     a device's commands, newest first, paginated
 *   GET  /commands/:commandId      one command with its state history
 *   POST /commands/:commandId/cancel  cancel a command still queued
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { DEFAULT_LIMITS, DEVICE_ID_PATTERN } from '@tendril/device-sdk/codec';
import type { AuditLog } from '../auth/audit.js';
import { HubHttpError } from '../errors.js';
import { type CommandCatalog, checkCommand } from '../commands/catalog.js';
import { COMMAND_LIMITS, COMMAND_STATES, type CommandState } from '../commands/model.js';
import type { CommandQueue } from '../commands/queue.js';

export interface CommandApiOptions {
  commands: CommandQueue;
  deviceExists(deviceId: string): boolean;
  /** Command catalogues per model: a command to a device whose model has one is checked against it. */
  catalog?: Pick<CommandCatalog, 'get'>;
  /** The device's model (undefined for an unknown device). */
  modelOf?(deviceId: string): string | undefined;
  /** Who sent or cancelled which command (docs/security.md, audit log). */
  audit: Pick<AuditLog, 'record'>;
}

const idSchema = {
  type: 'string',
  minLength: 1,
  maxLength: DEFAULT_LIMITS.maxDeviceIdBytes,
  pattern: DEVICE_ID_PATTERN.source,
} as const;
const deviceParams = { type: 'object', required: ['id'], properties: { id: idSchema } } as const;

interface DeviceParams {
  id: string;
}

interface SubmitBody {
  name: string;
  args?: unknown;
  ttlMs?: number;
  timeoutMs?: number;
  idempotencyKey?: string;
}

interface ListQuerystring {
  state?: string;
  limit?: number;
  before?: number;
}

/** Who sent a request, as commands record it: a user's name, an API token's owner, or `admin-token`. */
function principalOf(request: FastifyRequest): string {
  return request.principal?.name ?? 'anonymous';
}

function deviceNotFound(id: string): HubHttpError {
  return new HubHttpError(
    'DEVICE_NOT_FOUND',
    `No device "${id}" is registered; list devices with GET /api/v1/devices or create it with POST /api/v1/devices.`,
  );
}

/** `queued,sent` -> the states, or an INVALID_REQUEST naming the unknown one. */
function parseStates(text: string | undefined): CommandState[] | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const states = text.split(',').map((s) => s.trim());
  for (const s of states) {
    if (!(COMMAND_STATES as readonly string[]).includes(s)) {
      throw new HubHttpError(
        'INVALID_REQUEST',
        `querystring/state "${s}" is not a command state; use one or more of ${COMMAND_STATES.join(', ')}, separated by commas.`,
      );
    }
  }
  return states as CommandState[];
}

/** POST /devices/:id/commands */
function submitCommandRoute(app: FastifyInstance, { commands, audit, catalog, modelOf }: CommandApiOptions): void {
  app.post<{ Params: DeviceParams; Body: SubmitBody }>(
    '/devices/:id/commands',
    {
      config: { role: 'operator' },
      schema: {
        params: deviceParams,
        body: {
          type: 'object',
          required: ['name'],
          additionalProperties: false,
          properties: {
            name: { type: 'string' },
            args: {},
            ttlMs: { type: 'integer' },
            timeoutMs: { type: 'integer' },
            idempotencyKey: { type: 'string' },
          },
        },
      },
    },
    async (request, reply) => {
      const { name, args, ttlMs, timeoutMs, idempotencyKey } = request.body;
      const model = modelOf?.(request.params.id);
      if (catalog && model !== undefined) checkCommand(catalog.get(model), name, args);
      const { command, created } = commands.submit({
        deviceId: request.params.id,
        name,
        ...(Object.hasOwn(request.body, 'args') ? { args } : {}),
        ttlMs,
        timeoutMs,
        idempotencyKey,
        requestedBy: principalOf(request),
      });
      if (created) {
        request.log.info({ deviceId: command.deviceId, commandId: command.id, name: command.name }, 'command queued');
        audit.record({
          action: 'command.send',
          request,
          target: `command:${command.id}`,
          device: command.deviceId,
          detail: { name: command.name, idempotencyKey: command.idempotencyKey },
        });
      }
      return reply
        .code(created ? 202 : 200)
        .header('location', `/api/v1/commands/${command.id}`)
        .send(command);
    },
  );
}

/** GET /devices/:id/commands */
function listCommandsRoute(app: FastifyInstance, { commands, deviceExists }: CommandApiOptions): void {
  app.get<{ Params: DeviceParams; Querystring: ListQuerystring }>(
    '/devices/:id/commands',
    {
      config: { role: 'viewer' },
      schema: {
        params: deviceParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', maxLength: 200 },
            limit: { type: 'integer', minimum: 1, maximum: COMMAND_LIMITS.maxPageSize },
            before: { type: 'integer', minimum: 1 },
          },
        },
      },
    },
    async (request) => {
      if (!deviceExists(request.params.id)) throw deviceNotFound(request.params.id);
      const limit = request.query.limit ?? COMMAND_LIMITS.defaultPageSize;
      const list = commands.list({
        deviceId: request.params.id,
        states: parseStates(request.query.state),
        before: request.query.before,
        limit,
      });
      // A full page may have more behind it: pass nextBefore as `before` for the next page.
      const nextBefore = list.length === limit ? list[list.length - 1]!.id : null;
      return { commands: list, nextBefore };
    },
  );
}

/** GET /commands/:commandId */
function getCommandRoute(app: FastifyInstance, { commands }: CommandApiOptions): void {
  app.get<{ Params: { commandId: number } }>(
    '/commands/:commandId',
    {
      config: { role: 'viewer' },
      schema: {
        params: { type: 'object', required: ['commandId'], properties: { commandId: { type: 'integer', minimum: 1 } } },
      },
    },
    async (request) => {
      const command = commands.get(request.params.commandId);
      if (!command) {
        throw new HubHttpError(
          'COMMAND_NOT_FOUND',
          `No command ${request.params.commandId} exists (or its device was deleted); list a device's commands with GET /api/v1/devices/:id/commands.`,
        );
      }
      return command;
    },
  );
}

/** POST /commands/:commandId/cancel */
function cancelCommandRoute(app: FastifyInstance, { commands, audit }: CommandApiOptions): void {
  app.post<{ Params: { commandId: number } }>(
    '/commands/:commandId/cancel',
    {
      config: { role: 'operator' },
      schema: {
        params: { type: 'object', required: ['commandId'], properties: { commandId: { type: 'integer', minimum: 1 } } },
      },
    },
    async (request) => {
      try {
        const command = commands.cancel(request.params.commandId, principalOf(request));
        audit.record({
          action: 'command.cancel',
          request,
          target: `command:${command.id}`,
          device: command.deviceId,
          detail: { name: command.name },
        });
        return command;
      } catch (err) {
        if (err instanceof HubHttpError) {
          audit.record({
            action: 'command.cancel',
            request,
            target: `command:${request.params.commandId}`,
            outcome: 'failure',
            detail: { code: err.code },
          });
        }
        throw err;
      }
    },
  );
}

export const commandApi: FastifyPluginAsync<CommandApiOptions> = async (app, opts) => {
  submitCommandRoute(app, opts);
  listCommandsRoute(app, opts);
  getCommandRoute(app, opts);
  cancelCommandRoute(app, opts);
};
