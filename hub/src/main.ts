/**
 * CLI entry: environment -> config, listen, shut down gracefully on SIGINT/SIGTERM.
 * Without HUB_ADMIN_TOKEN a token is generated once and kept in HUB_DATA_DIR/admin-token (mode 0600);
 * the log names that file, never the token.
 */
import { ensureAdminToken } from './admin-token.js';
import { createHub } from './app.js';
import { ConfigError, loadConfig, type HubConfig } from './config.js';
import { listenHub } from './server.js';

async function main(): Promise<void> {
  let config: HubConfig;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tendril hub: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const admin = ensureAdminToken(config);
  config = { ...config, adminToken: admin.token };
  let app: Awaited<ReturnType<typeof createHub>>;
  let where: Awaited<ReturnType<typeof listenHub>>;
  try {
    app = await createHub(config);
    where = await listenHub(app, config);
  } catch (err) {
    // A capability's own section of the configuration (MQTT_*, the bridge's template file, ...) is read when
    // its plugin starts: the same message and exit code as loadConfig's errors.
    if (err instanceof ConfigError) {
      process.stderr.write(`tendril hub: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const store = config.storage.influx ? `InfluxDB ${config.storage.influx.url}` : 'SQLite (readings.db)';
  const bound =
    where.boundAddress === '0.0.0.0' || where.boundAddress === '::'
      ? `every interface (${where.boundAddress})`
      : where.boundAddress;
  app.log.info(
    { url: where.url, boundAddress: where.boundAddress, devices: where.deviceUrl, dataDir: config.dataDir, store },
    `tendril hub listening on ${bound}, port ${where.port} (${where.url}); readings stored in ${store}`,
  );
  if (where.reachableFromNetwork && config.tls === null) {
    app.log.warn(
      { boundAddress: where.boundAddress },
      'the hub is reachable from other machines without TLS: tokens and passwords cross the network in clear. Set HUB_TLS_CERT/HUB_TLS_KEY, or HOST=127.0.0.1 behind a TLS proxy (docs/security.md)',
    );
  }
  if (admin.file) app.log.info({ file: admin.file }, `admin API token (HUB_ADMIN_TOKEN unset) is in ${admin.file}`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      app.log.warn(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
    app.log.info(`${signal}: shutting down (flushing readings, closing device connections)`);
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`tendril hub: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
