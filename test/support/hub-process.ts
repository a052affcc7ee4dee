/**
 * A hub in a process of its own for end-to-end tests (to SIGKILL it, restart it, or point a browser at it):
 * a free port on 127.0.0.1, a temp dir with the data dir inside, silent logs unless asked, ready once
 * /healthz answers. Also the two things those tests share around it: a JSON client for the hub's HTTP API
 * with a bearer token, and building the dashboard only when its sources are newer than the build.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getFreePort } from './free-port.js';
import { makeTempDir, type ServerProcess, startServerProcess } from './server-process.js';

const repo = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));

export interface HubProcessOptions {
  /** The script node runs: a bundle from bundleForProcess() or hub/dist/cli/main.js. */
  script: string;
  adminToken: string;
  /** Prefix of the temp dir (it holds the log and `data/`). Default "hub". */
  dirPrefix?: string;
  /** Merged over the defaults (PORT, HOST, HUB_DATA_DIR, HUB_ADMIN_TOKEN, HUB_LOG_LEVEL=warn). */
  env?: Record<string, string>;
  /** The hub serves TLS (HUB_TLS_CERT/KEY in env): URLs are https/wss. The readiness probe is then the caller's. */
  tls?: boolean;
  /** Readiness probe instead of `fetch(base/healthz)` (needed with tls: fetch does not take a CA). */
  ready?: (base: string) => Promise<unknown>;
}

export interface HubProcess {
  proc: ServerProcess;
  port: number;
  /** http(s)://127.0.0.1:port */
  base: string;
  /** ws(s)://127.0.0.1:port/v1/device */
  deviceUrl: string;
  dir: string;
  dataDir: string;
}

export async function startHubProcess(o: HubProcessOptions): Promise<HubProcess> {
  const port = await getFreePort();
  const dir = await makeTempDir(o.dirPrefix ?? 'hub');
  const dataDir = join(dir, 'data');
  const base = `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const probe = o.ready ?? (async (b: string) => (await fetch(`${b}/healthz`)).ok);
  const proc = await startServerProcess({
    name: 'hub',
    command: process.execPath,
    args: [o.script],
    dir,
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      HUB_DATA_DIR: dataDir,
      HUB_ADMIN_TOKEN: o.adminToken,
      HUB_LOG_LEVEL: 'warn',
      ...o.env,
    },
    ready: () => probe(base),
    readyWhat: `GET ${base}/healthz -> 200`,
  });
  return { proc, port, base, deviceUrl: `${o.tls ? 'wss' : 'ws'}://127.0.0.1:${port}/v1/device`, dir, dataDir };
}

/** `api(method, path, body?)`: JSON in and out with the bearer token; throws with the status and body unless 2xx. */
export function hubApi(
  base: string | (() => string),
  token: string,
): (method: string, path: string, body?: unknown) => Promise<any> {
  return async (method, path, body) => {
    const url = `${typeof base === 'string' ? base : base()}${path}`;
    const res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} -> ${res.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Builds the dashboard as `npm run build` does (the hub serves dashboard/dist), only when a source is newer
 * than the build: a rebuild empties dist/, which other tests read.
 */
export function ensureDashboardBuilt(): void {
  const index = repo('dashboard/dist/index.html');
  const stale =
    !existsSync(index) ||
    Math.max(
      newestMtime(repo('dashboard/src')),
      statSync(repo('dashboard/index.html')).mtimeMs,
      statSync(repo('dashboard/vite.config.ts')).mtimeMs,
    ) > statSync(index).mtimeMs;
  if (stale) execFileSync('npm', ['run', 'build', '-w', '@tendril/dashboard'], { cwd: repo('.'), stdio: 'pipe' });
}
