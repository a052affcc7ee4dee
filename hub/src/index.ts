/** Public entry of @tendril/hub. */
export { buildHub, createHub, type CreateHubDeps, type HubDeps } from './app.js';
export { listenHub, type Listening } from './server.js';
export {
  loadConfig,
  ConfigError,
  CONFIG_DEFAULTS,
  type HubConfig,
  type LogLevel,
  type StorageConfig,
  type TlsConfig,
} from './config.js';
export { HTTP_ERRORS, HubHttpError, type HttpErrorCode, type HttpErrorInfo } from './errors.js';
export { systemClock, systemTimers, type Clock, type Timers, type TimerHandle } from './core/clock.js';
export {
  DeviceRegistry,
  type DeviceRecord,
  type Presence,
  type PresenceState,
  type Transport,
} from './devices/registry.js';
export { PresenceTracker, type PresenceChange } from './devices/presence.js';
export { DeviceSessions, AttachError } from './devices/sessions.js';
export type * from './devices/types.js';
export type * from './ingest/types.js';
export { HubMetrics } from './ops/metrics.js';
export { SqliteStore } from './storage/sqlite-store.js';
export { GroupCommitWriter, type GroupCommitOptions } from './storage/group-commit.js';
export {
  createInfluxStore,
  type InfluxStore,
  type InfluxStoreConfig,
  type InfluxStoreStats,
} from './storage/influx-store.js';
export {
  createSpool,
  registerStorageMetrics,
  SpoolFullError,
  SpoolFailedError,
  type Spool,
  type SpoolOptions,
  type SpoolState,
} from './spool/index.js';
export type * from './storage/types.js';
export { deviceView, type DeviceView } from './api/devices.js';
export { DeviceChannel } from './device-channel/channel.js';
export { Declarations, EARLIEST_TIMESTAMP, MAX_CLOCK_AHEAD_MS, type RejectionSink } from './ingest/validate.js';
export { TokenBucket } from './ingest/rate-limit.js';
export { VALIDATION_CODES } from './ops/metrics.js';
