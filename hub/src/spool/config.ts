/**
 * Spool settings from the environment (docs/storage.md, "Spool"):
 *   HUB_SPOOL_MAX_BYTES   undrained bytes at which devices are told to hold off (BACKOFF STORE_BUSY).
 *                         Whole bytes or with a unit: 512MiB, 1GiB, 500MB. Default 1 GiB.
 *   HUB_SPOOL_MEMORY_READINGS  committed readings kept in memory for the drainer (about 350 bytes each), so
 *                         it does not read back what it just wrote while it keeps up. Default 100000; 0 = off.
 * The spool lives in HUB_DATA_DIR/spool.
 */
import { join } from 'node:path';
import type { EnvReader } from '../core/env.js';
import { DEFAULT_MEMORY_TAIL_READINGS, DEFAULT_SPOOL_MAX_BYTES } from './spool.js';

export interface SpoolSettings {
  dir: string;
  maxBytes: number;
  memoryTailReadings: number;
}

/** The spool's section of the configuration. */
export function spoolConfigFromEnv(e: EnvReader, dataDir: string): SpoolSettings {
  return {
    dir: join(dataDir, 'spool'),
    // At least room for a few batches.
    maxBytes: e.bytes('HUB_SPOOL_MAX_BYTES', DEFAULT_SPOOL_MAX_BYTES, { min: 1024 * 1024 }),
    memoryTailReadings: e.int('HUB_SPOOL_MEMORY_READINGS', DEFAULT_MEMORY_TAIL_READINGS),
  };
}
