/**
 * Storage contracts shared by the device channel, the stores (SQLite, InfluxDB) and the spool.
 *
 *   device channel --accept()--> ReadingSink (group-commit writer, later the on-disk spool)
 *                                    \--write()--> TimeSeriesStore (SQLite | InfluxDB)
 *
 * A reading is acknowledged to its device only after ReadingSink.accept() resolves.
 */
import type { MetricKind } from '@tendril/device-sdk/codec';

export type ScalarValue = number | boolean | string;

export interface StoredValue {
  metric: string;
  kind: MetricKind;
  value: ScalarValue;
}

export interface StoredReading {
  deviceId: string;
  /** Device sequence epoch (HELLO.epoch); with seq, the identity of a reading. */
  epoch: number;
  seq: number;
  /** ms since the Unix epoch (device time, or hub arrival time for untimed readings). */
  ts: number;
  values: StoredValue[];
}

/**
 * Receives readings one value at a time (ReadingCursor.read), so a store can encode readings kept in the
 * spool's binary records without an object per reading and per value.
 */
export interface ReadingVisitor {
  /** A reading starts; its values follow as value() calls, then end(). */
  begin(deviceId: string, epoch: number, seq: number, ts: number): void;
  value(metric: string, kind: MetricKind, value: ScalarValue): void;
  end(): void;
}

export interface ReadingCursor {
  /** Visits the next `n` readings (fewer at the end of the batch); returns how many it visited. */
  read(visitor: ReadingVisitor, n: number): number;
}

/**
 * A ReadingBatch whose readings cannot be read back: a spool record whose CRC matched but whose body does not
 * decode (a hub bug, or damage the CRC missed). Stores pass it on as it is, so the spool can tell it from a
 * store failure and set the records at fault aside (skipped, counted as spool damage) instead of retrying them forever.
 */
export class UnreadableBatchError extends Error {
  override readonly name = 'UnreadableBatchError';
  /** The write error kind in metrics, should it be counted as one (see the spool's writeWithRetry). */
  readonly kind = 'unreadable';
}

/** Readings as the spool keeps them (encoded), visited in order or decoded into objects on demand. */
export interface ReadingBatch {
  readonly length: number;
  /** A cursor at reading `from` (0-based). */
  cursor(from?: number): ReadingCursor;
  /** Readings [from, to) as objects, decoded on each call. */
  toArray(from?: number, to?: number): StoredReading[];
}

export type Aggregate = 'mean' | 'min' | 'max' | 'last' | 'count';

export interface SeriesQuery {
  deviceId: string;
  metric: string;
  /** Inclusive, ms. */
  from: number;
  /** Exclusive, ms. */
  to: number;
  /** Bucket width, ms (>= 1). Buckets start at from + k * stepMs. */
  stepMs: number;
  agg: Aggregate;
}

export interface SeriesPoint {
  /** Bucket start, ms. */
  ts: number;
  value: ScalarValue | null;
}

export interface LatestValue {
  ts: number;
  value: ScalarValue;
}

export interface TimeSeriesStore {
  readonly kind: 'sqlite' | 'influxdb';
  /**
   * Makes every reading durable. Idempotent: writing the same (deviceId, epoch, seq) twice stores it
   * once, so a replay after a crash or a resend after a lost ack never doubles data.
   * Rejects when nothing or not everything was made durable; the caller retries the whole batch.
   */
  write(readings: readonly StoredReading[]): Promise<void>;
  /**
   * Optional: the same as write(batch.toArray()), for stores that encode readings without objects (the
   * spool's drainer calls it when present).
   */
  writeBatch?(batch: ReadingBatch): Promise<void>;
  /** Latest value of every metric of a device. */
  latest(deviceId: string): Promise<Record<string, LatestValue>>;
  /** Downsampled series; empty buckets are left out. */
  series(q: SeriesQuery): Promise<SeriesPoint[]>;
  /** Resolves when the store answers; used by /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Hears once whether readings handed to ReadingSink.acceptThen became durable. */
export interface AcceptCallback {
  durable(): void;
  /** Not durable: do not ack. */
  failed(err: unknown): void;
}

/** Where the device channel hands accepted readings. */
export interface ReadingSink {
  /** Resolves once the readings are durable (stored, or in the spool). Rejection = not durable: do not ack. */
  accept(readings: readonly StoredReading[]): Promise<void>;
  /**
   * Optional: accept() reporting to `done` instead of through a promise (the ingest path calls it once per
   * device and turn: no promise and closures each time). `done` hears later, never before this returns.
   */
  acceptThen?(readings: readonly StoredReading[], done: AcceptCallback): void;
  /** False while the sink cannot take more (store down and spool full): the channel answers BACKOFF STORE_BUSY. */
  readonly accepting: boolean;
  /** Flushes what is pending and stops. */
  close(): Promise<void>;
}
