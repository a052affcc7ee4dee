/** The audit log route (docs/api.md#users-sessions-and-tokens): GET /audit, admins only. */
import type { FastifyInstance } from 'fastify';
import { HubHttpError } from '../errors.js';
import { InvalidCursorError, type AuditQuery } from './audit.js';
import type { AuthRouteDeps } from './routes-shared.js';

function parseTime(text: string | undefined, field: string): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d{1,16}$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(n))
    throw new HubHttpError(
      'INVALID_REQUEST',
      `querystring/${field} must be ms since the epoch or an ISO 8601 time, got "${text}".`,
    );
  return n;
}

/** GET /audit. */
export function registerAuditRoutes(app: FastifyInstance, { auth }: AuthRouteDeps): void {
  const { audit } = auth;
  app.get<{
    Querystring: {
      actor?: string;
      device?: string;
      action?: string;
      from?: string;
      to?: string;
      limit?: number;
      cursor?: string;
    };
  }>(
    '/audit',
    {
      config: { role: 'admin' },
      schema: {
        querystring: {
          type: 'object',
          properties: {
            actor: { type: 'string', maxLength: 256 },
            device: { type: 'string', maxLength: 256 },
            action: { type: 'string', maxLength: 64 },
            from: { type: 'string', maxLength: 40 },
            to: { type: 'string', maxLength: 40 },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            cursor: { type: 'string', maxLength: 32 },
          },
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const query: AuditQuery = {
        actor: q.actor,
        device: q.device,
        action: q.action,
        from: parseTime(q.from, 'from'),
        to: parseTime(q.to, 'to'),
        limit: q.limit,
        cursor: q.cursor,
      };
      try {
        return audit.query(query);
      } catch (err) {
        if (err instanceof InvalidCursorError) throw new HubHttpError('INVALID_REQUEST', `querystring/${err.message}`);
        throw err;
      }
    },
  );
}
