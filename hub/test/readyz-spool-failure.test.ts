/**
 * /readyz after the spool failed writing to disk (fail-stop, docs/storage.md): 503 saying the spool failed
 * and the hub must be restarted — not "full" — with the failure in the spool view. The disk error is
 * injected (file-faults.ts); the hub, the spool files, SQLite and the device socket are real.
 */
import { afterEach, expect, it } from 'vitest';
import { createHub } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { listenHub } from '../src/server.js';
import { TestDevice } from './device-client.js';
import { eio, FileFaults } from './file-faults.js';
import { ADMIN_TOKEN, provision, tempDir, waitFor } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

it('answers 503 naming the spool failure once a spool append failed, and backs the device off without an ack', async () => {
  const dir = tempDir();
  cleanups.push(dir.remove);
  const cfg = loadConfig({
    HUB_DATA_DIR: dir.path,
    HUB_ADMIN_TOKEN: ADMIN_TOKEN,
    HOST: '127.0.0.1',
    PORT: '0',
    HUB_LOG_LEVEL: 'silent',
  });
  const app = await createHub(cfg, { spoolOptions: { drainLingerMs: 0, backoff: { baseMs: 20, maxMs: 100 } } });
  cleanups.push(() => app.close());
  const { deviceUrl } = await listenHub(app, cfg);
  const token = await provision(app, 'f-1');

  const faults = await FileFaults.create(dir.path);
  cleanups.push(() => faults.restore());
  faults.wrap('writev', async () => {
    throw eio('writev');
  });

  const d = await TestDevice.connect(deviceUrl);
  cleanups.push(() => d.close());
  await d.hello({ deviceId: 'f-1', token });
  d.send({ type: 'reading', seq: 1, ts: Date.now(), values: [{ alias: 2, kind: 'int', value: 1 }] });
  const backoff = await d.next('backoff', 'BACKOFF after the failed spool append');
  expect(backoff.code).toBe('STORE_BUSY');

  const ready = await waitFor('/readyz to report the failed spool', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/readyz',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    return res.statusCode === 503 ? res.json() : null;
  });
  expect(ready.checks.writer).toMatch(
    /^the spool failed writing to disk \(.*EIO.*\): it takes no readings until the disk is fixed and the hub restarted$/,
  );
  expect(ready.spool.failure).toMatchObject({ code: 'EIO' });
  expect(ready.spool.accepting).toBe(false);
});
