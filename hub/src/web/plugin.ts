/**
 * The dashboard, served by the hub at `/` (issue 13): the files Vite built into dashboard/dist.
 *
 * - `/assets/*` are content-hashed by Vite: cached for a year as immutable.
 * - Every other GET that asks for HTML and matches no file (a deep link such as `/devices/env-0001`) gets
 *   index.html: the app routes on the path. `/api/*`, `/v1/*` and requests for files keep their 404.
 * - Every HTML answer carries the security headers below: a strict Content-Security-Policy (no inline
 *   script or style, connections to this origin and its WebSocket only, no framing), nosniff, no referrer.
 * - Without a build (a fresh clone where `npm run build` has not run), `/` and deep links answer 503 with a
 *   page that says so; the hub picks the build up without a restart.
 *
 * The page itself is public (it holds no data); everything it shows comes from the authenticated API and the
 * live channel.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

export interface WebOptions {
  /** Where the built dashboard is. Default: dashboard/dist of this repository (from hub/src/web or hub/dist/web). */
  distDir?: string;
}

/** dashboard/dist, three levels above this file's folder: hub/{src,dist}/web -> repository root. */
export function defaultDistDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../dashboard/dist');
}

const YEAR_SECONDS = 31_536_000;

/** The Content-Security-Policy of every HTML answer. `host` is the request's Host (checked), for ws(s)://. */
export function contentSecurityPolicy(host: string | undefined): string {
  // 'self' covers ws/wss of the same host in CSP Level 3 browsers; older ones need the explicit sources.
  const safeHost = host && /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host) ? host : undefined;
  const sockets = safeHost ? ` ws://${safeHost} wss://${safeHost}` : '';
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    `connect-src 'self'${sockets}`,
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
  ].join('; ');
}

function htmlHeaders(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', contentSecurityPolicy(request.headers.host))
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cache-control', 'no-cache');
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** The page shown while dashboard/dist/index.html does not exist. */
export function notBuiltPage(distDir: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tendril: dashboard not built</title>
</head>
<body>
<h1>The Tendril hub is running, but its dashboard is not built</h1>
<p>The hub serves the dashboard from <code>${escapeHtml(distDir)}</code>, which has no <code>index.html</code>.</p>
<p>Build it from the repository root with <code>npm run build</code> (or start with <code>npm start</code>, which builds
first), then reload this page. The hub does not need a restart.</p>
<p>Meanwhile the HTTP API works: <code>/api/v1/devices</code> (see <code>docs/api.md</code>), <code>/healthz</code>,
<code>/readyz</code>, <code>/metrics</code>; devices connect to <code>/v1/device</code>.</p>
</body>
</html>
`;
}

/** Paths that belong to the API and the WebSocket endpoints: never answered with the app. */
const NOT_APP = /^\/(api|v1)(\/|$)|^\/(healthz|readyz|metrics)$/;

export const webPlugin: FastifyPluginAsync<WebOptions> = async (app: FastifyInstance, opts) => {
  const distDir = resolve(opts.distDir ?? defaultDistDir());
  const indexPath = join(distDir, 'index.html');
  // index.html is small and changes only with a build: read again when its mtime changes.
  let cached: { mtimeMs: number; html: string } | undefined;
  const readIndex = (): string | undefined => {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(indexPath).mtimeMs;
    } catch {
      cached = undefined;
      return undefined;
    }
    if (cached?.mtimeMs !== mtimeMs) cached = { mtimeMs, html: readFileSync(indexPath, 'utf8') };
    return cached.html;
  };

  const sendApp = (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    htmlHeaders(request, reply).type('text/html; charset=utf-8');
    const html = readIndex();
    if (html === undefined) return reply.code(503).send(notBuiltPage(distDir));
    return reply.send(html);
  };

  // The page and its files are public (they hold no data); the auth plugin wants every route to say so.
  app.get('/', { config: { role: 'public' } }, async (request, reply) => sendApp(request, reply));
  // @fastify/static's routes take no route config: they get the role through the auth plugin's default for
  // this encapsulated context (setDefaultRouteRole does exactly this assignment).
  (app as unknown as { authDefaultRole: string | null }).authDefaultRole = 'public';

  await app.register(fastifyStatic, {
    // @fastify/static refuses a root that does not exist; the not-built page covers that case.
    root: existsSync(distDir) ? distDir : dirname(distDir),
    prefix: '/',
    index: false,
    wildcard: true,
    dotfiles: 'deny',
    cacheControl: false,
    allowedPath: (pathName) => existsSync(distDir) && !NOT_APP.test(pathName),
    // @fastify/static 10 passes the reply here.
    setHeaders: (reply: FastifyReply, path: string) => {
      reply.header('x-content-type-options', 'nosniff');
      const hashed = path.startsWith(join(distDir, 'assets') + sep);
      reply.header('cache-control', hashed ? `public, max-age=${YEAR_SECONDS}, immutable` : 'no-cache');
      if (path.endsWith('.html')) {
        reply.header('content-security-policy', contentSecurityPolicy(reply.request.headers.host));
        reply.header('referrer-policy', 'no-referrer');
        reply.header('x-frame-options', 'DENY');
      }
    },
  });

  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const wantsHtml = /\btext\/html\b/.test(request.headers.accept ?? '');
    const looksLikeFile = /\.[A-Za-z0-9]{1,8}$/.test(path) || path.startsWith('/assets/');
    if ((request.method === 'GET' || request.method === 'HEAD') && wantsHtml && !looksLikeFile && !NOT_APP.test(path)) {
      return sendApp(request, reply);
    }
    const hint = path.startsWith('/api/') ? '; see docs/api.md for the routes of /api/v1' : '';
    return reply
      .code(404)
      .header('x-content-type-options', 'nosniff')
      .send({ error: { code: 'NOT_FOUND', message: `No route ${request.method} ${path}${hint}.` } });
  });
};
