/** Origins (docs/security.md): which pages may use the session cookie, and CORS for HUB_ALLOWED_ORIGINS. */
import type { FastifyRequest } from 'fastify';

/** `scheme://host[:port]` with default ports dropped and case folded, as browsers send it; null if not one. */
export function normalOrigin(text: string): string | null {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : null;
  } catch {
    return null;
  }
}

/** True when `origin` is the request's own origin or one of `allowedOrigins` (HUB_ALLOWED_ORIGINS). */
export function originAllowed(
  allowedOrigins: readonly string[],
  request: FastifyRequest,
  origin: string | undefined,
): boolean {
  if (origin === undefined || origin === 'null') return false;
  const o = normalOrigin(origin);
  if (o === null) return false;
  return o === normalOrigin(`${request.protocol}://${request.host}`) || allowedOrigins.includes(o);
}

/** The Origin of a request, or the origin of its Referer when a browser sent no Origin. */
export function requestOrigin(request: FastifyRequest): string | undefined {
  const origin = request.headers.origin;
  if (origin !== undefined) return origin;
  const referer = request.headers.referer;
  if (referer === undefined) return undefined;
  try {
    return new URL(referer).origin;
  } catch {
    return undefined;
  }
}

/** The request's Origin when HUB_ALLOWED_ORIGINS names it (CORS answers it), else null. Never a wildcard. */
export function corsOrigin(allowedOrigins: readonly string[], request: FastifyRequest): string | null {
  const origin = request.headers.origin;
  const cors = origin === undefined ? null : normalOrigin(origin);
  return cors !== null && allowedOrigins.includes(cors) ? cors : null;
}
