/** A real hub for the simulator's tests: built in-process, SQLite in a temp dir, listening on 127.0.0.1:0. */
import { rm } from 'node:fs/promises';
import { buildHub, listenHub, loadConfig } from '@tendril/hub';
import { makeTempDir } from '../../test/support/index.js';

export const ADMIN_TOKEN = 'simulator-test-admin-token-0123456789';

export interface TestHub {
  url: string;
  deviceUrl: string;
  adminToken: string;
  close(): Promise<void>;
}

export async function startHub(env: Record<string, string> = {}): Promise<TestHub> {
  const dataDir = await makeTempDir('sim-hub');
  const config = loadConfig({
    HUB_DATA_DIR: dataDir,
    PORT: '0',
    HOST: '127.0.0.1',
    HUB_ADMIN_TOKEN: ADMIN_TOKEN,
    HUB_LOG_LEVEL: 'silent',
    ...env,
  });
  const app = buildHub(config);
  const where = await listenHub(app, config);
  return {
    url: where.url,
    deviceUrl: where.deviceUrl,
    adminToken: ADMIN_TOKEN,
    async close() {
      await app.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
