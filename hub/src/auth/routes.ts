/**
 * HTTP routes of users, sessions, API tokens and the audit log (docs/api.md#users-sessions-and-tokens).
 * Register under the /api/v1 prefix, after authPlugin (which provides `app.auth` and enforces each `role`).
 *
 * One module per resource: session-routes.ts (login, logout, sessions, /me), user-routes.ts (with
 * user-patch.ts), token-routes.ts, audit-routes.ts; what they share is in routes-shared.ts.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { registerAuditRoutes } from './audit-routes.js';
import type { AuthRoutesOptions } from './routes-shared.js';
import { registerSessionRoutes } from './session-routes.js';
import { registerTokenRoutes } from './token-routes.js';
import { registerUserRoutes } from './user-routes.js';

export type { AuthRoutesOptions } from './routes-shared.js';
export { tokenView, userView } from './views.js';

export const authRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (app: FastifyInstance, options) => {
  const deps = { auth: app.auth, options };
  registerSessionRoutes(app, deps);
  registerUserRoutes(app, deps);
  registerTokenRoutes(app, deps);
  registerAuditRoutes(app, deps);
};
