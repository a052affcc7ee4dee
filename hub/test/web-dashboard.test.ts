/**
 * Serving the dashboard (hub/src/web/plugin.ts): the app at `/` and at deep links, immutable hashed assets,
 * security headers on every HTML answer, and a clear page while the dashboard is not built.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { contentSecurityPolicy, webPlugin } from '../src/web/plugin.js';
import { auth, provision, startHub } from './helpers.js';

const INDEX =
  '<!doctype html><html><head><script type="module" src="/assets/index-abc123.js"></script></head><body></body></html>';
const dirs: string[] = [];
const apps: FastifyInstance[] = [];

afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function makeDist(build = true): string {
  const root = mkdtempSync(join(tmpdir(), 'tendril-web-'));
  dirs.push(root);
  const dist = join(root, 'dist');
  if (!build) return dist;
  mkdirSync(join(dist, 'assets'), { recursive: true });
  writeFileSync(join(dist, 'index.html'), INDEX);
  writeFileSync(join(dist, 'assets', 'index-abc123.js'), 'console.log("app")');
  writeFileSync(join(dist, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  return dist;
}

async function serve(distDir: string): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  await app.register(webPlugin, { distDir });
  // An API scope as the hub has one, to check the app never shadows it.
  await app.register(
    async (api) => {
      api.get('/devices', async () => ({ devices: [] }));
    },
    { prefix: '/api/v1' },
  );
  await app.ready();
  return app;
}

const browser = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8', host: 'hub.example:8080' };

function expectSecurityHeaders(headers: Record<string, unknown>): void {
  const csp = String(headers['content-security-policy']);
  expect(csp).toContain("script-src 'self'");
  expect(csp).not.toContain('unsafe-inline');
  expect(csp).not.toContain('unsafe-eval');
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toMatch(/connect-src 'self' ws:\/\/hub\.example:8080 wss:\/\/hub\.example:8080/);
  expect(headers['x-content-type-options']).toBe('nosniff');
  expect(headers['referrer-policy']).toBe('no-referrer');
}

describe('the built dashboard', () => {
  it('serves index.html at / with the security headers and no caching', async () => {
    const app = await serve(makeDist());
    const res = await app.inject({ url: '/', headers: browser });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toBe(INDEX);
    expectSecurityHeaders(res.headers);
    expect(res.headers['cache-control']).toBe('no-cache');
  });

  it('answers a deep link with the app (the app routes on the path)', async () => {
    const app = await serve(makeDist());
    for (const url of ['/devices/env-0001', '/devices/env-0001?range=1h', '/login']) {
      const res = await app.inject({ url, headers: browser });
      expect(res.statusCode, url).toBe(200);
      expect(res.body, url).toBe(INDEX);
      expectSecurityHeaders(res.headers);
    }
  });

  it('caches hashed assets as immutable for a year, other files not', async () => {
    const app = await serve(makeDist());
    const asset = await app.inject({ url: '/assets/index-abc123.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(asset.headers['x-content-type-options']).toBe('nosniff');
    expect(String(asset.headers['content-type'])).toMatch(/javascript/);
    const icon = await app.inject({ url: '/favicon.svg' });
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['cache-control']).toBe('no-cache');
  });

  it('keeps 404 for missing files, API routes and non-HTML requests', async () => {
    const app = await serve(makeDist());
    const missingAsset = await app.inject({ url: '/assets/gone-123.js', headers: browser });
    expect(missingAsset.statusCode).toBe(404);
    expect(missingAsset.json().error.code).toBe('NOT_FOUND');
    const api = await app.inject({ url: '/api/v1/nothing-here', headers: browser });
    expect(api.statusCode).toBe(404);
    expect(api.json().error.message).toContain('docs/api.md');
    const json = await app.inject({ url: '/devices/env-1', headers: { accept: 'application/json' } });
    expect(json.statusCode).toBe(404);
    const post = await app.inject({ method: 'POST', url: '/devices/env-1', headers: browser });
    expect(post.statusCode).toBe(404);
    expect((await app.inject({ url: '/api/v1/devices' })).json()).toEqual({ devices: [] });
  });

  it('does not serve dot files or escape the dist folder', async () => {
    const dist = makeDist();
    writeFileSync(join(dist, '.env'), 'SECRET=1');
    writeFileSync(join(dist, '..', 'outside.txt'), 'outside');
    const app = await serve(dist);
    expect((await app.inject({ url: '/.env' })).statusCode).not.toBe(200);
    for (const url of ['/../outside.txt', '/%2e%2e/outside.txt', '/assets/%2e%2e/%2e%2e/outside.txt']) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(res.body, url).not.toBe('outside');
    }
  });
});

describe('without a build', () => {
  it('answers / and deep links with a page that says to run npm run build, and picks the build up later', async () => {
    const dist = makeDist(false);
    const app = await serve(dist);
    const res = await app.inject({ url: '/', headers: browser });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('npm run build');
    expectSecurityHeaders(res.headers);
    expect((await app.inject({ url: '/devices/x', headers: browser })).body).toContain('npm run build');
    // Built while the hub runs: / serves the app without a restart.
    mkdirSync(dist, { recursive: true });
    writeFileSync(join(dist, 'index.html'), INDEX);
    const after = await app.inject({ url: '/', headers: browser });
    expect(after.statusCode).toBe(200);
    expect(after.body).toBe(INDEX);
  });
});

describe('contentSecurityPolicy', () => {
  it('names the WebSocket origin only for a well-formed Host', () => {
    expect(contentSecurityPolicy('127.0.0.1:8080')).toContain('ws://127.0.0.1:8080 wss://127.0.0.1:8080');
    expect(contentSecurityPolicy('[::1]:8080')).toContain('ws://[::1]:8080');
    expect(contentSecurityPolicy("evil.com; script-src 'unsafe-inline'")).not.toContain('evil');
    expect(contentSecurityPolicy(undefined)).toContain("connect-src 'self';");
  });
});

describe('in the hub', () => {
  it('GET / answers a browser with the dashboard (or the not-built page), shows no fleet data, and the API still wants credentials', async () => {
    const hub = await startHub({ listen: false });
    try {
      await provision(hub.app, 'secret-device-name');
      const res = await hub.app.inject({ method: 'GET', url: '/', headers: browser });
      expect([200, 503]).toContain(res.statusCode);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.body).toMatch(res.statusCode === 200 ? /<script type="module"/ : /npm run build/);
      expectSecurityHeaders(res.headers);
      expect(res.body).not.toContain('secret-device-name'); // public page: nothing about the fleet
      const deep = await hub.app.inject({ method: 'GET', url: '/devices/secret-device-name', headers: browser });
      expect(deep.statusCode).toBe(res.statusCode);
      expect((await hub.app.inject({ method: 'GET', url: '/api/v1/devices' })).statusCode).toBe(401);
      expect((await hub.app.inject({ method: 'GET', url: '/api/v1/devices', headers: auth })).statusCode).toBe(200);
      expect((await hub.app.inject({ method: 'GET', url: '/api/v1/nope', headers: auth })).statusCode).toBe(404);
    } finally {
      await hub.dispose();
    }
  });
});
