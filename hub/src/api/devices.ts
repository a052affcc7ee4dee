/**
 * Device provisioning and inspection: /api/v1/devices (docs/api.md).
 * Register under the /api/v1 prefix.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { DEFAULT_LIMITS, DEVICE_ID_PATTERN, type MetricDeclaration } from '@tendril/device-sdk/codec';
import type { Clock } from '../core/clock.js';
import { errorBody, HubHttpError } from '../errors.js';
import { CONNECTION_LOG_LIMIT } from '../devices/connection-log.js';
import type { PresenceTracker } from '../devices/presence.js';
import {
  DeviceExistsError,
  type DeviceRecord,
  type DeviceRegistry,
  type Presence,
  type Transport,
} from '../devices/registry.js';
import type { AuditLog } from '../auth/audit.js';
import type { LatestValue } from '../storage/types.js';

/** What the API closes a device's connection with when its token is rotated or it is deleted. */
export interface DeviceConnections {
  /**
   * Closes the device's live connection, if any: ERROR DEVICE_DISABLED for a disabled device, else
   * ERROR AUTH_FAILED (its credential no longer holds). Presence gets `reason`.
   */
  disconnect(deviceId: string, reason: 'AUTH_FAILED' | 'DEVICE_DISABLED' | 'DELETED'): void;
  /** Tells those who follow the fleet (the live channel) that the registry changed a device. */
  changed(deviceId: string, change: 'created' | 'updated' | 'deleted'): void;
}

export interface DeviceApiOptions {
  registry: DeviceRegistry;
  presence: PresenceTracker;
  connections: DeviceConnections;
  clock: Clock;
  /** Who provisioned, changed, disabled, rotated or deleted which device (docs/security.md, audit log). */
  audit: Pick<AuditLog, 'record'>;
}

/** The Device object of the HTTP contract. */
export interface DeviceView {
  id: string;
  name: string;
  model: string;
  labels: Record<string, string>;
  createdAt: number;
  disabled: boolean;
  transport: Transport | null;
  firmware: string | null;
  sdk: string | null;
  epoch: number | null;
  presence: Presence;
  metrics: MetricDeclaration[];
  latest: Record<string, LatestValue>;
  ackedSeq: number;
  dropped: number;
}

export async function deviceView(d: DeviceRecord, presence: PresenceTracker): Promise<DeviceView> {
  return {
    id: d.id,
    name: d.name,
    model: d.model,
    labels: d.labels,
    createdAt: d.createdAt,
    disabled: d.disabled,
    transport: d.transport,
    firmware: d.firmware,
    sdk: d.sdk,
    epoch: d.epoch,
    presence: { ...d.presence },
    metrics: d.metrics.map((m) => ({ ...m })),
    latest: { ...(await presence.latest(d.id)) },
    ackedSeq: d.ackedSeq,
    dropped: d.dropped,
  };
}

const idSchema = {
  type: 'string',
  minLength: 1,
  maxLength: DEFAULT_LIMITS.maxDeviceIdBytes,
  pattern: DEVICE_ID_PATTERN.source,
} as const;
/** A new device's id: also not dots only ("." and ".." cannot be addressed in a URL path). */
const newIdSchema = { ...idSchema, pattern: `^(?!\\.+$)${DEVICE_ID_PATTERN.source.slice(1)}` } as const;
const nameSchema = { type: 'string', minLength: 1, maxLength: 128 } as const;
const modelSchema = { type: 'string', maxLength: 64 } as const;
const labelsSchema = {
  type: 'object',
  maxProperties: 32,
  propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' },
  additionalProperties: { type: 'string', maxLength: 256 },
} as const;
const idParams = { type: 'object', required: ['id'], properties: { id: idSchema } } as const;

interface IdParams {
  id: string;
}

function notFound(id: string): HubHttpError {
  return new HubHttpError(
    'DEVICE_NOT_FOUND',
    `No device "${id}" is registered; list devices with GET /api/v1/devices or create it with POST /api/v1/devices.`,
  );
}

/** POST /devices */
function provisionDeviceRoute(app: FastifyInstance, { registry, clock, audit, connections }: DeviceApiOptions): void {
  app.post<{ Body: { id: string; name?: string; model?: string; labels?: Record<string, string> } }>(
    '/devices',
    {
      config: { role: 'admin' },
      schema: {
        body: {
          type: 'object',
          required: ['id'],
          additionalProperties: false,
          properties: { id: newIdSchema, name: nameSchema, model: modelSchema, labels: labelsSchema },
        },
      },
    },
    async (request, reply) => {
      try {
        const { device, token } = registry.create(request.body, clock.now());
        request.log.info({ deviceId: device.id }, 'device registered');
        audit.record({
          action: 'device.provision',
          request,
          target: `device:${device.id}`,
          device: device.id,
          detail: { model: device.model },
        });
        connections.changed(device.id, 'created');
        return reply.code(201).send({
          id: device.id,
          name: device.name,
          model: device.model,
          labels: device.labels,
          token,
          createdAt: device.createdAt,
        });
      } catch (err) {
        if (err instanceof DeviceExistsError) {
          audit.record({
            action: 'device.provision',
            request,
            device: request.body.id,
            outcome: 'failure',
            detail: { code: 'DEVICE_EXISTS' },
          });
          return reply
            .code(409)
            .send(
              errorBody(
                'DEVICE_EXISTS',
                `A device "${request.body.id}" is already registered; pick another id, or rotate its token with POST /api/v1/devices/${request.body.id}/token.`,
              ),
            );
        }
        throw err;
      }
    },
  );
}

/** GET /devices */
function listDevicesRoute(app: FastifyInstance, { registry, presence }: DeviceApiOptions): void {
  app.get('/devices', { config: { role: 'viewer' } }, async () => {
    const devices = await Promise.all(registry.list().map((d) => deviceView(d, presence)));
    return { devices };
  });
}

/** GET /devices/:id */
function getDeviceRoute(app: FastifyInstance, { registry, presence }: DeviceApiOptions): void {
  app.get<{ Params: IdParams }>(
    '/devices/:id',
    { config: { role: 'viewer' }, schema: { params: idParams } },
    async (request) => {
      const device = registry.get(request.params.id);
      if (!device) throw notFound(request.params.id);
      return deviceView(device, presence);
    },
  );
}

/** PATCH /devices/:id */
function updateDeviceRoute(app: FastifyInstance, { registry, presence, connections, audit }: DeviceApiOptions): void {
  app.patch<{
    Params: IdParams;
    Body: { name?: string; model?: string; labels?: Record<string, string>; disabled?: boolean };
  }>(
    '/devices/:id',
    {
      config: { role: 'operator' },
      schema: {
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: { name: nameSchema, model: modelSchema, labels: labelsSchema, disabled: { type: 'boolean' } },
        },
      },
    },
    async (request) => {
      const device = registry.update(request.params.id, request.body);
      if (!device) throw notFound(request.params.id);
      // A disabled device may not stay connected.
      if (request.body.disabled === true) connections.disconnect(device.id, 'DEVICE_DISABLED');
      const action =
        request.body.disabled === true
          ? 'device.disable'
          : request.body.disabled === false
            ? 'device.enable'
            : 'device.update';
      audit.record({
        action,
        request,
        target: `device:${device.id}`,
        device: device.id,
        detail: { fields: Object.keys(request.body) },
      });
      connections.changed(device.id, 'updated');
      return deviceView(device, presence);
    },
  );
}

/** POST /devices/:id/token */
function rotateTokenRoute(app: FastifyInstance, { registry, connections, audit }: DeviceApiOptions): void {
  app.post<{ Params: IdParams }>(
    '/devices/:id/token',
    { config: { role: 'admin' }, schema: { params: idParams } },
    async (request) => {
      const token = registry.rotateToken(request.params.id);
      if (token === undefined) throw notFound(request.params.id);
      // The old token stops working at once, including for a connection that authenticated with it.
      connections.disconnect(request.params.id, 'AUTH_FAILED');
      request.log.info({ deviceId: request.params.id }, 'device token rotated');
      audit.record({
        action: 'device.token.rotate',
        request,
        target: `device:${request.params.id}`,
        device: request.params.id,
      });
      return { id: request.params.id, token };
    },
  );
}

/** DELETE /devices/:id */
function deleteDeviceRoute(app: FastifyInstance, { registry, presence, connections, audit }: DeviceApiOptions): void {
  app.delete<{ Params: IdParams }>(
    '/devices/:id',
    { config: { role: 'admin' }, schema: { params: idParams } },
    async (request, reply) => {
      const device = registry.get(request.params.id);
      if (!device) throw notFound(request.params.id);
      connections.disconnect(device.id, 'DELETED');
      registry.delete(device.id);
      presence.forget(device.id);
      request.log.info({ deviceId: device.id }, 'device deleted');
      audit.record({ action: 'device.delete', request, target: `device:${device.id}`, device: device.id });
      connections.changed(device.id, 'deleted');
      return reply.code(204).send();
    },
  );
}

/** GET /devices/:id/connections: presence transitions, newest first, paged by `before` (docs/api.md). */
function connectionsRoute(app: FastifyInstance, { registry }: DeviceApiOptions): void {
  app.get<{ Params: IdParams; Querystring: { limit?: number; before?: number } }>(
    '/devices/:id/connections',
    {
      config: { role: 'viewer' },
      schema: {
        params: idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: CONNECTION_LOG_LIMIT, default: 50 },
            before: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
          },
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!registry.get(id)) throw notFound(id);
      const limit = request.query.limit ?? 50;
      const connections = registry.connectionHistory(id, limit, request.query.before);
      const last = connections.at(-1);
      return { connections, nextBefore: connections.length === limit && last ? last.id : null };
    },
  );
}

export const deviceApi: FastifyPluginAsync<DeviceApiOptions> = async (app, opts) => {
  connectionsRoute(app, opts);
  provisionDeviceRoute(app, opts);
  listDevicesRoute(app, opts);
  getDeviceRoute(app, opts);
  updateDeviceRoute(app, opts);
  rotateTokenRoute(app, opts);
  deleteDeviceRoute(app, opts);
};
