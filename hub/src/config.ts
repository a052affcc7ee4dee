/**
 * Hub configuration from environment variables (docs/operations.md lists every one with its default),
 * storage included: INFLUX_* selects InfluxDB (else SQLite), HUB_SPOOL_MAX_BYTES caps the spool,
 * HUB_RETENTION_DAYS sets retention (docs/storage.md). Variables of other components (MQTT_URL, ...) are
 * ignored here, not rejected.
 */
import { resolve } from 'node:path';
import { authSettingsFromEnv, type AuthSettings } from './auth/settings.js';
import { ConfigError, EnvReader, type Env } from './core/env.js';
import { spoolConfigFromEnv, type SpoolSettings } from './spool/config.js';
import { influxConfigFromEnv } from './storage/influx-config.js';
import type { InfluxStoreConfig } from './storage/influx-store.js';
import { retentionDaysFromEnv } from './storage/retention.js';

export { ConfigError };

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
  /** Users, sessions, origins and the audit log (docs/security.md). */
  auth: AuthSettings;
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

/** Reads the hub configuration from `env` (usually process.env). Throws ConfigError naming the variable. */
export function loadConfig(env: Env = process.env): HubConfig {
  const e = new EnvReader(env);
  const adminToken = e.raw('HUB_ADMIN_TOKEN') ?? null;
  // Issue 11: an operator-chosen bootstrap token must be long enough not to be guessed (generated ones are 43).
  if (adminToken !== null && adminToken.length < 32) {
    throw e.error(
      'HUB_ADMIN_TOKEN',
      'is shorter than 32 characters; use a long random secret (e.g. `openssl rand -base64 32`) or unset it to have one generated',
    );
  }
  const certPath = e.text('HUB_TLS_CERT') ?? '';
  const keyPath = e.text('HUB_TLS_KEY') ?? '';
  if ((certPath === '') !== (keyPath === '')) {
    throw e.error(
      certPath === '' ? 'HUB_TLS_CERT' : 'HUB_TLS_KEY',
      'HUB_TLS_CERT and HUB_TLS_KEY must be set together (PEM certificate and private key paths), or both left unset for plain http/ws',
    );
  }
  const dataDir = resolve(e.text('HUB_DATA_DIR') ?? CONFIG_DEFAULTS.dataDir);
  return {
    port: e.int('PORT', CONFIG_DEFAULTS.port, { max: 65_535 }),
    host: e.text('HOST') ?? CONFIG_DEFAULTS.host,
    dataDir,
    adminToken,
    tls: certPath ? { certPath: resolve(certPath), keyPath: resolve(keyPath) } : null,
    heartbeatMs: e.duration('HUB_HEARTBEAT_MS', CONFIG_DEFAULTS.heartbeatMs, { min: 10, max: 3_600_000 }),
    helloTimeoutMs: e.duration('HUB_HELLO_TIMEOUT_MS', CONFIG_DEFAULTS.helloTimeoutMs, { min: 10, max: 600_000 }),
    deviceRate: e.int('HUB_DEVICE_RATE', CONFIG_DEFAULTS.deviceRate, { min: 1, max: 1_000_000 }),
    deviceBurst: e.int('HUB_DEVICE_BURST', CONFIG_DEFAULTS.deviceBurst, { min: 1, max: 10_000_000 }),
    // The lower bound leaves room for a HELLO with a few metric declarations.
    maxFrameBytes: e.bytes('HUB_MAX_FRAME_BYTES', CONFIG_DEFAULTS.maxFrameBytes, { min: 512, max: 1_048_576 }),
    maxConnections: e.int('HUB_MAX_CONNECTIONS', CONFIG_DEFAULTS.maxConnections, { min: 1, max: 1_000_000 }),
    logLevel: e.oneOf('HUB_LOG_LEVEL', LOG_LEVELS, CONFIG_DEFAULTS.logLevel),
    bodyLimit: CONFIG_DEFAULTS.bodyLimit,
    storage: {
      influx: influxConfigFromEnv(e, dataDir),
      spool: spoolConfigFromEnv(e, dataDir),
      retentionDays: retentionDaysFromEnv(e),
    },
    auth: authSettingsFromEnv(e),
  };
}
