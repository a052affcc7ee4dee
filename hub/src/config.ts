/**
 * Hub configuration from environment variables (docs/operations.md lists every one with its default),
 * storage included: INFLUX_* selects InfluxDB (else SQLite), HUB_SPOOL_MAX_BYTES caps the spool,
 * HUB_RETENTION_DAYS sets retention (docs/storage.md). Variables of other components (MQTT_URL, ...) are
 * ignored here, not rejected.
 */
import { resolve } from 'node:path';
import { SpoolConfigError, spoolConfigFromEnv, type SpoolSettings } from './spool/config.js';
import { InfluxConfigError, influxConfigFromEnv } from './storage/influx-config.js';
import type { InfluxStoreConfig } from './storage/influx-store.js';
import { retentionDaysFromEnv } from './storage/retention.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface TlsConfig {
  /** PEM certificate chain path. */
  certPath: string;
  /** PEM private key path. */
  keyPath: string;
}

/** Where readings are kept (docs/storage.md). */
export interface StorageConfig {
  /** InfluxDB store settings; null = embedded SQLite (readings.db in the data directory). */
  influx: InfluxStoreConfig | null;
  /** The on-disk spool in front of the store: its directory and the undrained bytes at which devices are held off. */
  spool: SpoolSettings;
  /** HUB_RETENTION_DAYS; 0 = keep forever. InfluxDB 1.x: its retention policy; SQLite: the pruning job. */
  retentionDays: number;
}

export interface HubConfig {
  port: number;
  host: string;
  /** Absolute path of the data directory (registry hub.db, readings.db, admin-token). */
  dataDir: string;
  /** Bootstrap API token for /api/v1; null = not configured (main.ts generates one). */
  adminToken: string | null;
  tls: TlsConfig | null;
  /** WebSocket ping interval; a connection silent for 2 x heartbeatMs is terminated. */
  heartbeatMs: number;
  /** Time a new device connection has to send HELLO. */
  helloTimeoutMs: number;
  /** Readings per second a device may send on average (token bucket refill rate). */
  deviceRate: number;
  /** Readings a device may send at once above its rate (token bucket size). */
  deviceBurst: number;
  /** Largest device frame (WebSocket message) in bytes. */
  maxFrameBytes: number;
  /** Concurrent device connections; more are closed with 1013 TRY_AGAIN_LATER. */
  maxConnections: number;
  logLevel: LogLevel;
  /** Largest HTTP request body in bytes. */
  bodyLimit: number;
  storage: StorageConfig;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export const CONFIG_DEFAULTS = Object.freeze({
  port: 8080,
  host: '0.0.0.0',
  dataDir: './data',
  heartbeatMs: 10_000,
  helloTimeoutMs: 10_000,
  deviceRate: 100,
  deviceBurst: 1000,
  maxFrameBytes: 16_384,
  maxConnections: 20_000,
  logLevel: 'info' as LogLevel,
  bodyLimit: 65_536,
});

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const text = raw.trim();
  if (!/^\d+$/.test(text)) {
    throw new ConfigError(`${name}="${raw}" is not a whole number; expected an integer in ${min}..${max} (default ${fallback}).`);
  }
  const n = Number(text);
  if (n < min || n > max) {
    throw new ConfigError(`${name}=${n} is outside ${min}..${max}; set it within that range or unset it for the default ${fallback}.`);
  }
  return n;
}

/** Reads the hub configuration from `env` (usually process.env). Throws ConfigError naming the variable. */
export function loadConfig(env: Env = process.env): HubConfig {
  const host = env.HOST?.trim() || CONFIG_DEFAULTS.host;
  const adminToken = env.HUB_ADMIN_TOKEN === undefined || env.HUB_ADMIN_TOKEN === '' ? null : env.HUB_ADMIN_TOKEN;
  if (adminToken !== null && adminToken.length < 16) {
    throw new ConfigError('HUB_ADMIN_TOKEN is shorter than 16 characters; use a long random secret (e.g. `openssl rand -base64 32`) or unset it to have one generated.');
  }
  const certPath = env.HUB_TLS_CERT?.trim() || '';
  const keyPath = env.HUB_TLS_KEY?.trim() || '';
  if ((certPath === '') !== (keyPath === '')) {
    throw new ConfigError('HUB_TLS_CERT and HUB_TLS_KEY must be set together (PEM certificate and private key paths), or both left unset for plain http/ws.');
  }
  const rawLevel = (env.HUB_LOG_LEVEL?.trim() || CONFIG_DEFAULTS.logLevel).toLowerCase();
  if (!LOG_LEVELS.includes(rawLevel as LogLevel)) {
    throw new ConfigError(`HUB_LOG_LEVEL="${env.HUB_LOG_LEVEL}" is not one of ${LOG_LEVELS.join(', ')}.`);
  }
  const heartbeatMs = intVar(env, 'HUB_HEARTBEAT_MS', CONFIG_DEFAULTS.heartbeatMs, 10, 3_600_000);
  const deviceRate = intVar(env, 'HUB_DEVICE_RATE', CONFIG_DEFAULTS.deviceRate, 1, 1_000_000);
  const deviceBurst = intVar(env, 'HUB_DEVICE_BURST', CONFIG_DEFAULTS.deviceBurst, 1, 10_000_000);
  const dataDir = resolve(env.HUB_DATA_DIR?.trim() || CONFIG_DEFAULTS.dataDir);
  return {
    port: intVar(env, 'PORT', CONFIG_DEFAULTS.port, 0, 65_535),
    host,
    dataDir,
    adminToken,
    tls: certPath ? { certPath: resolve(certPath), keyPath: resolve(keyPath) } : null,
    heartbeatMs,
    helloTimeoutMs: intVar(env, 'HUB_HELLO_TIMEOUT_MS', CONFIG_DEFAULTS.helloTimeoutMs, 10, 600_000),
    deviceRate,
    deviceBurst,
    // The lower bound leaves room for a HELLO with a few metric declarations.
    maxFrameBytes: intVar(env, 'HUB_MAX_FRAME_BYTES', CONFIG_DEFAULTS.maxFrameBytes, 512, 1_048_576),
    maxConnections: intVar(env, 'HUB_MAX_CONNECTIONS', CONFIG_DEFAULTS.maxConnections, 1, 1_000_000),
    logLevel: rawLevel as LogLevel,
    bodyLimit: CONFIG_DEFAULTS.bodyLimit,
    storage: storageConfig(env, dataDir),
  };
}

/** The storage part of the configuration; the storage modules' own errors become ConfigErrors. */
function storageConfig(env: Env, dataDir: string): StorageConfig {
  try {
    return {
      influx: influxConfigFromEnv(env, dataDir),
      spool: spoolConfigFromEnv(env, dataDir),
      retentionDays: retentionDaysFromEnv(env),
    };
  } catch (err) {
    if (err instanceof InfluxConfigError || err instanceof SpoolConfigError) throw new ConfigError(err.message);
    if (err instanceof Error && err.message.startsWith('HUB_RETENTION_DAYS')) throw new ConfigError(err.message);
    throw err;
  }
}
