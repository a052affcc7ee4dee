/** The on-disk spool between the device channel and the time-series store (docs/storage.md). */
export {
  createSpool,
  DEFAULT_SPOOL_MAX_BYTES,
  SpoolClosedError,
  SpoolFailedError,
  SpoolFormatError,
  SpoolFullError,
  SpoolLockedError,
  SpoolPermissionError,
  type Spool,
  type SpoolOptions,
  type SpoolState,
  type StoreState,
} from './spool.js';
export { spoolConfigFromEnv } from './config.js';
export { registerStorageMetrics } from './metrics.js';
