/**
 * The spool's public shapes: its options and defaults, its state for /readyz and /metrics, and the Spool
 * interface the hub uses (docs/storage.md, "Spool").
 */
import type { FastifyBaseLogger } from 'fastify';
import type { BackoffOptions } from '../core/backoff.js';
import type { ReadingSink, TimeSeriesStore } from '../storage/types.js';

export const DEFAULT_SPOOL_MAX_BYTES = 1024 ** 3;
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_GROUP_MAX_BYTES = 512 * 1024;
export const DEFAULT_COMMIT_WAIT_MS = 20;
export const DEFAULT_INLINE_COMMIT_MAX_MS = 5;
export const DEFAULT_DRAIN_LINGER_MS = 1000;
export const DEFAULT_DRAIN_LINGER_READINGS = 5000;
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 1000;
/** Committed readings kept in memory for the drainer (HUB_SPOOL_MEMORY_READINGS); some 35 MB. */
export const DEFAULT_MEMORY_TAIL_READINGS = 100_000;

export interface SpoolOptions {
  /** Directory of the spool (HUB_DATA_DIR/spool); created if missing. One hub process per directory. */
  dir: string;
  store: TimeSeriesStore;
  /** HUB_SPOOL_MAX_BYTES: undrained bytes at which `accepting` turns false. Default 1 GiB. */
  maxBytes?: number;
  /** A new segment file is started past this size. Default 64 MiB. */
  segmentBytes?: number;
  /**
   * Record bytes one group commit (append + fdatasync) takes at most; the rest waits for the next (a record
   * larger than this commits on its own). Default 512 KiB: under a flood one group used to take everything
   * that arrived during the fdatasync before it, 50 000-90 000 readings (2-4 MB), whose fdatasync then took
   * 100-300 ms beside a busy InfluxDB on the same disk; acks and the drain (which takes records once they are
   * committed) waited that long (bench/ingest-influx.mjs: 0.61-0.79x raw -> 0.76-0.85x).
   */
  groupMaxBytes?: number;
  /** Readings per store write (the InfluxDB store splits them into requests of its batchLines). Default 20 000. */
  batchReadings?: number;
  /**
   * Committed readings kept in memory for the drainer, so that while it keeps up it takes them from there
   * instead of reading and decoding the records it just wrote. Past this many (the store is slow or down),
   * the drainer reads from disk until it has caught up again. Default 100 000 (the records as written: some
   * 5 MB for readings of three numbers that arrive in batches, some 13 MB with one reading per frame).
   */
  memoryTailReadings?: number;
  /**
   * Batches written to the store at once (each its own write() call; the InfluxDB store sends each as up to
   * 2 requests at a time). Default 4: with 2, InfluxDB sat idle part of the time while devices flooded the hub
   * and each next request was still being built (bench/ingest-influx.mjs).
   */
  drainWindow?: number;
  /**
   * After new data arrives at an idle drainer (one that is not behind), wait up to this long (<= 1 s) for
   * drainLingerReadings readings, so InfluxDB gets fuller requests at low rates (acks do not wait for it, nor
   * does a history query: see Spool.whenStored). Default 1000: at 2 000 readings/s requests of 2 000 lines,
   * which cost influxd less per point than the 1 000 of 500 ms (docs/performance.md, issue 16).
   */
  drainLingerMs?: number;
  /** The linger ends as soon as this many readings are waiting (one full InfluxDB request). Default 5000. */
  drainLingerReadings?: number;
  /**
   * Group commit: once a group's first record has waited this long (<= 50 ms), its commit starts; before that
   * it waits only while the arrival rate says more records are coming (fewer fdatasyncs at low rates, none of
   * that wait when nothing is coming). 0 commits at once. Default 20.
   */
  commitWaitMs?: number;
  /**
   * Group commit: once 8 commits in a row each took at most this long (<= 20 ms), a commit runs inline, on
   * the event loop's thread, instead of as two thread-pool jobs (cheaper: no hand-offs, no wake-ups of pool
   * threads), for a group of fewer than 64 records and as long as the loop was busy less than half the time
   * since the last commit; the first one that takes longer sends them back to the pool. So the event loop is
   * blocked by a commit only at low rates, while the disk is fast and the hub not loaded, at worst once for as
   * long as one slow fdatasync. 0: always through the pool. Default 5.
   */
  inlineCommitMaxMs?: number;
  /** While readings keep flowing, the checkpoint is written at most every this many ms. Default 1000. */
  checkpointIntervalMs?: number;
  /** Drainer retry delays while the store is down. Defaults: base 200 ms, max 5 s. */
  backoff?: BackoffOptions;
  /** ms since the Unix epoch; injectable for tests. */
  clock?: { now(): number };
  /** Monotonic ms that time each group commit (for inlineCommitMaxMs); performance.now, injectable for tests. */
  monotonicNow?: () => number;
  /** The event loop's utilization (0-1) since the previous call, for inline commits; injectable for tests. */
  loopUtilization?: () => number;
  logger?: FastifyBaseLogger;
}

export type StoreState = 'unknown' | 'up' | 'down';

export interface SpoolState {
  store: StoreState;
  accepting: boolean;
  depthBytes: number;
  depthReadings: number;
  /** Age of the oldest reading not yet in the store, ms (0 when drained). */
  oldestUndrainedAgeMs: number;
  /** Failed store writes by error kind (InfluxWriteError.kind, or "error" for stores without kinds). */
  writeErrors: Record<string, number>;
  lastWriteError: { kind: string; message: string; at: number } | null;
  acceptedReadings: number;
  drainedReadings: number;
  /** fdatasync calls made for accept() (group commits). */
  commits: number;
  /** Of `commits`, those made inline, on the event loop's thread (SpoolOptions.inlineCommitMaxMs). */
  inlineCommits: number;
  segments: number;
  /** Bytes cut off at start-up: torn tails and damaged records. */
  recoveredTornBytes: number;
  /** Undrained readings found at start-up (replayed to the store). */
  replayedReadings: number;
  /**
   * Readings the drainer read back from the segment files rather than from memory: those replayed after a
   * start, and those accepted while the store was more than memoryTailReadings behind.
   */
  drainedFromDisk: number;
  /**
   * Set when an append or fdatasync failed: the spool refuses every reading from then on and the hub must be
   * restarted (after the disk is fixed). null while healthy.
   */
  failure: { message: string; code: string | null; at: number } | null;
}

export interface Spool extends ReadingSink {
  readonly depthBytes: number;
  readonly depthReadings: number;
  readonly storeState: StoreState;
  /** Snapshot for /readyz and /metrics. */
  readonly state: SpoolState;
  /**
   * Highest seq per (device, epoch) that is durable: accepted into the spool (now or before a restart),
   * including what was drained since. For the channel's dedup and WELCOME.ackedSeq after a restart.
   */
  durableSeq(deviceId: string, epoch: number): number;
  /** deviceId -> (epoch -> highest durable seq), at most a few recent epochs per device. */
  durableSeqs(): ReadonlyMap<string, ReadonlyMap<number, number>>;
  /** Resolves when everything accepted so far is in the store; rejects after timeoutMs. */
  whenDrained(timeoutMs?: number): Promise<void>;
  /**
   * Resolves true once every reading acked before the call is in the store, the drainer's linger cut short
   * for them (the history API waits for it, so an answer holds every reading acked before the request).
   * False at once while the store is down or more than a drain batch behind, after timeoutMs (default 2000),
   * or when the spool closes.
   */
  whenStored(timeoutMs?: number): Promise<boolean>;
  /** Ends a back-off wait now (e.g. a health probe saw the store answer). */
  retryNow(): void;
  /** 'drained' (batch size), 'store' (StoreState), 'accepting' (boolean). */
  on(event: 'drained', listener: (readings: number) => void): this;
  on(event: 'store', listener: (state: StoreState) => void): this;
  on(event: 'accepting', listener: (accepting: boolean) => void): this;
}
