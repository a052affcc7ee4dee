/** Shared test scaffolding: a hub on a temp data dir, admin requests, waiting with named timeouts. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildHub, createHub, type HubDeps } from '../src/app.js';
import { loadConfig, type HubConfig } from '../src/config.js';
import { listenHub, type Listening } from '../src/server.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export function tempDir(prefix = 'tendril-hub-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export function testConfig(dataDir: string, overrides: Partial<HubConfig> = {}): HubConfig {
  return {
    ...loadConfig({
      HUB_DATA_DIR: dataDir,
      HUB_ADMIN_TOKEN: ADMIN_TOKEN,
      HOST: '127.0.0.1',
      PORT: '0',
      HUB_LOG_LEVEL: 'silent',
    }),
    ...overrides,
  };
}

export interface TestHub {
  app: FastifyInstance;
  config: HubConfig;
  dataDir: string;
  listening: Listening | null;
  /** Closes the hub (if not yet closed) and removes the data dir. */
  dispose(): Promise<void>;
}

export async function startHub(
  options: { config?: Partial<HubConfig>; deps?: HubDeps; listen?: boolean; dataDir?: string } = {},
): Promise<TestHub> {
  const dir = options.dataDir ? null : tempDir();
  const dataDir = options.dataDir ?? dir!.path;
  const config = testConfig(dataDir, options.config);
  // The production chain (the on-disk spool in front of SQLite, as createHub builds it) unless the test brings
  // storage of its own.
  const deps = options.deps ?? {};
  const ownStorage = deps.store !== undefined || deps.sink !== undefined || deps.spool !== undefined;
  const app = ownStorage ? buildHub(config, deps) : await createHub(config, deps);
  let closed = false;
  app.addHook('onClose', async () => {
    closed = true;
  });
  const listening = options.listen === false ? null : await listenHub(app, config);
  if (!listening) await app.ready();
  return {
    app,
    config,
    dataDir,
    listening,
    async dispose() {
      if (!closed) await app.close();
      dir?.remove();
    },
  };
}

export const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** Registers a device through the API and returns its token. */
export async function provision(
  app: FastifyInstance,
  id: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/devices', headers: auth, payload: { id, ...extra } });
  if (res.statusCode !== 201) throw new Error(`provisioning ${id} failed: ${res.statusCode} ${res.body}`);
  return (res.json() as { token: string }).token;
}

/** Resolves when `check` returns a truthy value; rejects naming `what` after `timeoutMs`. Polls, never sleeps blindly. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 5000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Rejects naming `what` if `promise` does not settle within `timeoutMs`. */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
