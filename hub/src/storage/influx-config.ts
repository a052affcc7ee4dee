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
import type { InfluxStoreConfig } from './influx-store.js';
import { retentionDaysFromEnv } from './retention.js';

export class InfluxConfigError extends Error {
  override readonly name = 'InfluxConfigError';
}

type Env = Record<string, string | undefined>;

function text(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new InfluxConfigError(`${name}="${raw}" must be a whole number in ${min}..${max} (default ${fallback}).`);
  }
  return Number(raw);
}

/**
 * The store configuration, or null when no InfluxDB is configured (the hub then uses SQLite).
 * `dataDir` holds the dead-letter file (dead-letter/influx.jsonl).
 */
export function influxConfigFromEnv(env: Env, dataDir: string): InfluxStoreConfig | null {
  const url = text(env, 'INFLUX_URL');
  const db = text(env, 'INFLUX_DB');
  const org = text(env, 'INFLUX_ORG');
  const bucket = text(env, 'INFLUX_BUCKET');
  const token = text(env, 'INFLUX_TOKEN');
  const anySet = [url, db, org, bucket, token].some((v) => v !== undefined);
  if (!anySet) return null;
  if (url === undefined) {
    throw new InfluxConfigError('INFLUX_URL is not set but other INFLUX_* variables are; set INFLUX_URL (e.g. http://127.0.0.1:8086) or unset them all to use the embedded SQLite store.');
  }
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new InfluxConfigError(`INFLUX_URL="${url}" is not an http:// or https:// URL.`);
  }
  const v2 = org !== undefined || bucket !== undefined;
  if (v2) {
    if (org === undefined || bucket === undefined || token === undefined) {
      throw new InfluxConfigError('InfluxDB 2.x needs INFLUX_ORG, INFLUX_BUCKET and INFLUX_TOKEN together (or use INFLUX_DB for the v1-compatible API).');
    }
    if (db !== undefined) {
      throw new InfluxConfigError('Set either INFLUX_DB (1.x / v1-compatible API) or INFLUX_ORG + INFLUX_BUCKET (2.x write API), not both.');
    }
  } else if (db === undefined) {
    throw new InfluxConfigError('INFLUX_URL is set without INFLUX_DB; set INFLUX_DB (1.x, or the 2.x/3.x bucket through the v1 API) or INFLUX_ORG + INFLUX_BUCKET + INFLUX_TOKEN.');
  }
  const user = text(env, 'INFLUX_USER');
  const password = env.INFLUX_PASSWORD;
  if (password !== undefined && password !== '' && user === undefined) {
    throw new InfluxConfigError('INFLUX_PASSWORD is set without INFLUX_USER.');
  }
  const gzipRaw = text(env, 'INFLUX_GZIP') ?? '0';
  if (gzipRaw !== '0' && gzipRaw !== '1') throw new InfluxConfigError(`INFLUX_GZIP="${gzipRaw}" must be 0 or 1.`);
  let retentionDays: number;
  try {
    retentionDays = retentionDaysFromEnv(env);
  } catch (err) {
    throw new InfluxConfigError((err as Error).message);
  }
  return {
    url,
    db: v2 ? undefined : db,
    rp: text(env, 'INFLUX_RP'),
    org,
    bucket,
    token,
    username: user,
    password: user === undefined ? undefined : (password ?? ''),
    gzip: gzipRaw === '1',
    batchLines: int(env, 'INFLUX_BATCH_LINES', 5000, 1, 100_000),
    timeoutMs: int(env, 'INFLUX_TIMEOUT_MS', 10_000, 100, 600_000),
    retentionDays,
    deadLetterPath: join(dataDir, 'dead-letter', 'influx.jsonl'),
  };
}
