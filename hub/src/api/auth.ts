/** Bearer-token authentication of the HTTP API. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from '../errors.js';
import { secretsEqual } from '../devices/registry.js';

const BEARER = /^Bearer[ \t]+(\S{1,512})[ \t]*$/i;

/**
 * onRequest hook that admits requests carrying `Authorization: Bearer <adminToken>`. The comparison
 * hashes both sides first and then compares the hashes in constant time, so neither the position of a
 * differing character nor the token's length shows in the response time.
 */
export function requireAdminToken(adminToken: string | null) {
  return async function authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    const presented = header === undefined ? null : (BEARER.exec(header)?.[1] ?? null);
    let message: string | null = null;
    if (adminToken === null) message = 'The hub has no admin token configured; set HUB_ADMIN_TOKEN and restart.';
    else if (presented === null) message = 'Missing bearer token: send `Authorization: Bearer <token>` (the hub admin token, HUB_ADMIN_TOKEN).';
    else if (!secretsEqual(presented, adminToken)) message = 'The bearer token is not valid for this hub; check HUB_ADMIN_TOKEN or the admin-token file in the data directory.';
    if (message !== null) {
      await reply.code(401).header('www-authenticate', 'Bearer realm="tendril"').send(errorBody('UNAUTHORIZED', message));
    }
  };
}
