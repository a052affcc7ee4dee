// The hub under test for bench/ingest.mjs: the real hub (built: hub/dist) as createHub builds it (the on-disk
// spool in front of SQLite in a temp dir, or InfluxDB when BENCH_HUB_ENV sets INFLUX_*), rate limit raised
// so the benchmark measures the ingest path, not the limiter. BENCH_SPOOL_OPTIONS (JSON) overrides spool
// settings that have no environment variable, e.g. '{"inlineCommitMaxMs":0}' for an A/B run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createHub, listenHub, loadConfig } from '../../hub/dist/index.js';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tendril-bench-hub-'));
const adminToken = 'bench-admin-token-' + process.pid + '-0123456789abcdef'; // at least 32 characters (docs/security.md)
const config = loadConfig({
  PORT: '0',
  HOST: '127.0.0.1',
  HUB_DATA_DIR: dataDir,
  HUB_ADMIN_TOKEN: adminToken,
  HUB_DEVICE_RATE: '1000000',
  HUB_DEVICE_BURST: '1000000',
  HUB_LOG_LEVEL: 'warn',
  ...(process.env.BENCH_HUB_ENV ? JSON.parse(process.env.BENCH_HUB_ENV) : {}),
});
const spoolOptions = process.env.BENCH_SPOOL_OPTIONS ? JSON.parse(process.env.BENCH_SPOOL_OPTIONS) : undefined;
const app = await createHub(config, spoolOptions ? { spoolOptions } : {});
await listenHub(app, config);
const port = app.server.address().port;
// The event loop's delay between samples (10 ms resolution): a turn that holds the thread delays every ACK.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
process.send({ type: 'ready', port, path: '/v1/device', adminToken });
// The benchmark is gone (killed, or it gave up): do not outlive it.
process.on('disconnect', () => {
  fs.rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
});
process.on('message', async (m) => {
  if (m.type === 'sample')
    process.send({
      type: 'sample',
      cpu: process.cpuUsage(),
      rss: process.memoryUsage().rss,
      heapUsed: process.memoryUsage().heapUsed,
      loopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
    });
  if (m.type === 'sample') loopDelay.reset();
  if (m.type === 'stop') {
    await app.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
    process.exit(0);
  }
});
