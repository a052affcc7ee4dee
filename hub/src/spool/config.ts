/**
 * Spool settings from the environment (docs/storage.md, "Spool"):
 *   HUB_SPOOL_MAX_BYTES   undrained bytes at which devices are told to hold off (BACKOFF STORE_BUSY).
 *                         Whole bytes or with a unit: 512MiB, 1GiB, 500MB. Default 1 GiB.
 *   HUB_SPOOL_MEMORY_READINGS  committed readings kept in memory for the drainer (about 350 bytes each), so
 *                         it does not read back what it just wrote while it keeps up. Default 100000; 0 = off.
 * The spool lives in HUB_DATA_DIR/spool.
 */
import { join } from 'node:path';
import { DEFAULT_MEMORY_TAIL_READINGS, DEFAULT_SPOOL_MAX_BYTES } from './spool.js';

export class SpoolConfigError extends Error {
  override readonly name = 'SpoolConfigError';
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** "1073741824", "512MiB", "1.5GB" -> bytes. */
export function parseByteSize(name: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new SpoolConfigError(`${name}="${raw}" is not a size; use bytes (1073741824) or a number with KiB, MiB, GiB, KB, MB or GB (e.g. 512MiB).`);
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1024 * 1024) throw new SpoolConfigError(`${name}="${raw}" is below 1 MiB; the spool needs room for at least a few batches.`);
  return bytes;
}

export interface SpoolSettings {
  dir: string;
  maxBytes: number;
  memoryTailReadings: number;
}

export function spoolConfigFromEnv(env: Record<string, string | undefined>, dataDir: string): SpoolSettings {
  const raw = env.HUB_SPOOL_MAX_BYTES?.trim();
  const memory = env.HUB_SPOOL_MEMORY_READINGS?.trim();
  if (memory && !/^\d+$/.test(memory)) {
    throw new SpoolConfigError(`HUB_SPOOL_MEMORY_READINGS="${memory}" is not a whole number of readings (0 turns the in-memory tail off).`);
  }
  return {
    dir: join(dataDir, 'spool'),
    maxBytes: raw ? parseByteSize('HUB_SPOOL_MAX_BYTES', raw) : DEFAULT_SPOOL_MAX_BYTES,
    memoryTailReadings: memory ? Number(memory) : DEFAULT_MEMORY_TAIL_READINGS,
  };
}
