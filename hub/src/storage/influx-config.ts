/**
 * InfluxDB settings from the environment (docs/storage.md, "Configuration"):
 *
 *   INFLUX_URL + INFLUX_DB                     1.x, or 2.x/3.x through their v1-compatible /write and /query
 *   INFLUX_URL + INFLUX_ORG + INFLUX_BUCKET + INFLUX_TOKEN
 *                                              2.x: writes through the client library's write API, queries
 *                                              through /query with the bucket as database (DBRP mapping)
 *   INFLUX_TOKEN                               sent as `Authorization: Token ...` (either mode)
 *   INFLUX_USER / INFLUX_PASSWORD              1.x authentication (Basic)
 *   INFLUX_RP                                  1.x retention policy (default: the database's default one)
 *   INFLUX_GZIP=1                              gzip write bodies
 *   INFLUX_BATCH_LINES (5000), INFLUX_TIMEOUT_MS (10000)
 *   HUB_RETENTION_DAYS (30; 0 = forever)       applied to the 1.x database's retention policy
 */
import { join } from 'node:path';
import { ConfigError, type EnvReader } from '../core/env.js';
import type { InfluxStoreConfig } from './influx-store.js';
import { retentionDaysFromEnv } from './retention.js';

/**
 * The store configuration, or null when no InfluxDB is configured (the hub then uses SQLite).
 * `dataDir` holds the dead-letter file (dead-letter/influx.jsonl).
 */
export function influxConfigFromEnv(e: EnvReader, dataDir: string): InfluxStoreConfig | null {
  const url = e.text('INFLUX_URL');
  const db = e.text('INFLUX_DB');
  const org = e.text('INFLUX_ORG');
  const bucket = e.text('INFLUX_BUCKET');
  const token = e.text('INFLUX_TOKEN');
  const anySet = [url, db, org, bucket, token].some((v) => v !== undefined);
  if (!anySet) return null;
  if (url === undefined) {
    throw new ConfigError(
      'INFLUX_URL is not set but other INFLUX_* variables are; set INFLUX_URL (e.g. http://127.0.0.1:8086) or unset them all to use the embedded SQLite store.',
    );
  }
  e.url('INFLUX_URL', ['http:', 'https:']);
  const v2 = org !== undefined || bucket !== undefined;
  if (v2) {
    if (org === undefined || bucket === undefined || token === undefined) {
      throw new ConfigError(
        'InfluxDB 2.x needs INFLUX_ORG, INFLUX_BUCKET and INFLUX_TOKEN together (or use INFLUX_DB for the v1-compatible API).',
      );
    }
    if (db !== undefined) {
      throw new ConfigError(
        'Set either INFLUX_DB (1.x / v1-compatible API) or INFLUX_ORG + INFLUX_BUCKET (2.x write API), not both.',
      );
    }
  } else if (db === undefined) {
    throw new ConfigError(
      'INFLUX_URL is set without INFLUX_DB; set INFLUX_DB (1.x, or the 2.x/3.x bucket through the v1 API) or INFLUX_ORG + INFLUX_BUCKET + INFLUX_TOKEN.',
    );
  }
  const user = e.text('INFLUX_USER');
  const password = e.raw('INFLUX_PASSWORD');
  if (password !== undefined && password !== '' && user === undefined) {
    throw new ConfigError('INFLUX_PASSWORD is set without INFLUX_USER.');
  }
  const gzip = e.bool('INFLUX_GZIP', false);
  const retentionDays = retentionDaysFromEnv(e);
  return {
    url,
    db: v2 ? undefined : db,
    rp: e.text('INFLUX_RP'),
    org,
    bucket,
    token,
    username: user,
    password: user === undefined ? undefined : (password ?? ''),
    gzip,
    batchLines: e.int('INFLUX_BATCH_LINES', 5000, { min: 1, max: 100_000 }),
    timeoutMs: e.int('INFLUX_TIMEOUT_MS', 10_000, { min: 100, max: 600_000 }),
    retentionDays,
    deadLetterPath: join(dataDir, 'dead-letter', 'influx.jsonl'),
  };
}
