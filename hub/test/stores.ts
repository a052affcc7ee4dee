/**
 * Test doubles around the real SQLite store (named as such): they delegate to it and only add control
 * over when, or whether, a write completes.
 */
import type { FastifyBaseLogger } from 'fastify';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import type { ReadingBatch, StoredReading } from '../src/storage/types.js';

/** Holds every write until release(); writes then go to the real SQLite store. */
export class HeldSqliteStore extends SqliteStore {
  private held: Array<() => void> = [];
  private onWrite: Array<() => void> = [];
  holding = true;
  writes = 0;

  override async write(readings: readonly StoredReading[]): Promise<void> {
    this.writes++;
    for (const f of this.onWrite.splice(0)) f();
    if (this.holding) await new Promise<void>((resolve) => this.held.push(resolve));
    return super.write(readings);
  }

  /** The spool's batches take the same way (held like any write). */
  override writeBatch(batch: ReadingBatch): Promise<void> {
    return this.write(batch.toArray());
  }

  /** Resolves when the next write reaches the store (or at once if one is held already). */
  writeArrived(): Promise<void> {
    if (this.held.length > 0) return Promise.resolve();
    return new Promise((resolve) => this.onWrite.push(resolve));
  }

  release(): void {
    this.holding = false;
    for (const f of this.held.splice(0)) f();
  }
}

/** Fails the next `failures` writes (as a full disk would), then writes to the real SQLite store. */
export class FailingSqliteStore extends SqliteStore {
  failures = 0;
  failPing = false;
  override async write(readings: readonly StoredReading[]): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('simulated write failure (test double)');
    }
    return super.write(readings);
  }
  /** The spool's batches fail the same way. */
  override writeBatch(batch: ReadingBatch): Promise<void> {
    return this.write(batch.toArray());
  }
  override async ping(): Promise<void> {
    if (this.failPing) throw new Error('simulated ping failure (test double)');
    return super.ping();
  }
}

/** Every stored value of a device, read straight from readings.db, ordered by epoch, seq, metric. */
export function storedValues(
  store: SqliteStore,
  deviceId: string,
): Array<{ epoch: number; seq: number; metric: string; value: unknown }> {
  return store.db
    .prepare(
      `SELECT r.epoch, r.seq, s.metric, j.value FROM readings r JOIN devices d ON d.id = r.device, json_each(r.v) j
         JOIN series s ON s.id = CAST(j.key AS INTEGER) WHERE d.name = ? ORDER BY r.epoch, r.seq, s.metric`,
    )
    .all(deviceId) as Array<{ epoch: number; seq: number; metric: string; value: unknown }>;
}

/** The seqs of a device's stored readings. */
export function storedSeqs(store: SqliteStore, deviceId: string): number[] {
  return store.db
    .prepare('SELECT r.seq FROM readings r JOIN devices d ON d.id = r.device WHERE d.name = ? ORDER BY r.epoch, r.seq')
    .pluck()
    .all(deviceId) as number[];
}

/** A FastifyBaseLogger (the hub's one logger type) that hands every warn and error line to `onLine`. */
export function captureLogger(onLine: (level: 'warn' | 'error', obj: object, msg: string) => void): FastifyBaseLogger {
  const to =
    (level: 'warn' | 'error') =>
    (...args: unknown[]): void =>
      onLine(level, (args[0] ?? {}) as object, String(args[1] ?? ''));
  const ignore = (): void => undefined;
  const logger: FastifyBaseLogger = {
    level: 'info',
    fatal: ignore,
    error: to('error'),
    warn: to('warn'),
    info: ignore,
    debug: ignore,
    trace: ignore,
    silent: ignore,
    child: () => logger,
  };
  return logger;
}
