/**
 * The InfluxDB store's configuration, statistics and interface (docs/storage.md, "InfluxDB").
 */
import type { FastifyBaseLogger } from 'fastify';
import type { BackoffOptions } from '../core/backoff.js';
import type { InfluxWriteErrorKind } from './influx-errors.js';
import type { InfluxQLResult } from './influx-schema.js';
import type { ReadingBatch, TimeSeriesStore } from './types.js';

export interface InfluxStoreConfig {
  /** Base URL, e.g. http://127.0.0.1:8086. */
  url: string;
  /** v1 mode: database (1.x), or the bucket name mapped as a database (2.x/3.x v1-compat). */
  db?: string | undefined;
  /** v1 mode: retention policy to write to and read from; default: the database's default policy. */
  rp?: string | undefined;
  /** v2 mode (with bucket and token): writes through the client library's WriteApi. */
  org?: string | undefined;
  bucket?: string | undefined;
  /** Sent as `Authorization: Token <token>`. */
  token?: string | undefined;
  /** 1.x authentication (Basic). */
  username?: string | undefined;
  password?: string | undefined;
  measurement?: string;
  /** Lines per write request. Default 5000. */
  batchLines?: number;
  /** Write requests in flight at once. Default 2. */
  concurrency?: number;
  gzip?: boolean;
  /** Per request. Default 10 000. */
  timeoutMs?: number;
  /**
   * A write request without an answer this long makes the store ask /ping (influx-hang.ts); the health probe's
   * ping() gets probeTimeoutMs as its deadline. Defaults 2000 and 2000: a hung server is reported within 4 s.
   */
  stallMs?: number;
  probeTimeoutMs?: number;
  /** Attempts per chunk for transient failures within one write() call. Default 3. */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /**
   * Retention in days applied to the 1.x database's default retention policy at start-up (0 = keep forever).
   * null or undefined: leave it alone. Ignored for 2.x/3.x (set the bucket's retention there).
   */
  retentionDays?: number | null | undefined;
  /** JSON-lines file for lines and values InfluxDB refused for good. null: count them only. */
  deadLetterPath?: string | null | undefined;
  /** How long a learned field type is trusted before values of another type are tried again. Default 10 min. */
  conflictMemoryMs?: number;
  /** ms since the Unix epoch; injectable for tests. */
  clock?: { now(): number };
  /** Injectable wait for retries (tests); default setTimeout, cut short by close(). */
  sleep?: (ms: number) => Promise<void>;
  logger?: FastifyBaseLogger;
}

export interface InfluxStoreStats {
  mode: 'v1' | 'v2';
  /** X-Influxdb-Version of the server, once seen. */
  serverVersion: string | null;
  requests: number;
  /** Lines the server answered 2xx for (a line re-sent after a split counts again). */
  linesWritten: number;
  /** Failed requests by kind (transient ones included, each attempt counted). */
  writeErrors: Record<InfluxWriteErrorKind, number>;
  /** Lines refused for good (recorded in the dead-letter file). */
  deadLetteredLines: number;
  /** Values left out of their reading because of a field type conflict. */
  deadLetteredValues: number;
  lastError: { kind: InfluxWriteErrorKind; message: string; at: number } | null;
}

export interface InfluxStore extends TimeSeriesStore {
  readonly kind: 'influxdb';
  /** Pings the server and, on 1.x, creates the database and applies retention. Runs on first use if not called. */
  init(): Promise<void>;
  stats(): InfluxStoreStats;
  writeBatch(batch: ReadingBatch): Promise<void>;
  /** Runs InfluxQL (statements separated by `;`) against the configured database/bucket. */
  query(q: string): Promise<InfluxQLResult[]>;
}
