/**
 * The on-disk spool: the durability point between the device channel and the time-series store
 * (docs/storage.md, "Spool" and "Durability chain").
 *
 *   accept() --append + fdatasync (group commit)--> segment files --drainer, batches--> TimeSeriesStore
 *
 * - accept() resolves once its record is on disk (after the fdatasync that covers it): the channel may
 *   ack then. All accept() calls waiting while one fdatasync runs share the next one (group commit).
 * - The drainer reads records in order, writes them to the store in batches of thousands, then moves a
 *   durable checkpoint past them and deletes segments that are wholly drained. Store writes are idempotent
 *   by (device, epoch, seq), so replaying records a crash left behind the checkpoint is harmless.
 * - Store outage: the drainer retries with exponential back-off and full jitter while the spool grows. At
 *   maxBytes undrained, `accepting` turns false (the channel answers BACKOFF STORE_BUSY, protocol §7.4) and
 *   accept() refuses; once the store is back the spool drains in order and accepting turns true again.
 * - Start-up: every segment is checked record by record (length + CRC-32). A torn tail (the process was
 *   killed mid-append; such a record was never acknowledged) is cut off; the drainer resumes at the checkpoint.
 * - Disk failure (fail-stop, as databases do after a failed fsync): after a failed append or fdatasync the
 *   kernel may have dropped the dirty pages, so the file's tail cannot be trusted and no later group may commit
 *   behind it (a later seq made durable would count as durable over the failed readings). The failed group and
 *   every accept() queued or arriving afterwards is refused, `accepting` stays false and `state.failure` says
 *   why; what was committed before keeps draining. Only a restart (recovery by CRC) makes the spool take
 *   readings again.
 *
 * This file is the facade: it owns the state (shared.ts) and the events, and wires the parts, one per concern:
 *   directory.ts, recovery.ts   lock, checkpoint and seqs files; start-up scan
 *   commit.ts, writer.ts        group commit; append, fail-stop, rotation
 *   tail.ts                     committed records kept in memory for the drainer
 *   reader.ts, drainer.ts       batches read back; written to the store with retries
 *   checkpoint.ts               drain position made durable, drained segments deleted
 */
import { EventEmitter } from 'node:events';
import { createBackoff } from '../core/backoff.js';
import type { AcceptCallback, StoredReading, TimeSeriesStore } from '../storage/types.js';
import { Checkpoint } from './checkpoint.js';
import { failedError, GroupCommit, MAX_COMMIT_WAIT_MS } from './commit.js';
import { releaseLock, writeSeqsSync } from './directory.js';
import { Drainer } from './drainer.js';
import { SpoolClosedError, SpoolFullError } from './errors.js';
import {
  DEFAULT_CHECKPOINT_INTERVAL_MS,
  DEFAULT_COMMIT_WAIT_MS,
  DEFAULT_INLINE_COMMIT_MAX_MS,
  DEFAULT_DRAIN_LINGER_MS,
  DEFAULT_DRAIN_LINGER_READINGS,
  DEFAULT_GROUP_MAX_BYTES,
  DEFAULT_MEMORY_TAIL_READINGS,
  DEFAULT_SEGMENT_BYTES,
  DEFAULT_SPOOL_MAX_BYTES,
  type Spool,
  type SpoolOptions,
  type SpoolState,
  type StoreState,
} from './options.js';
import { SpoolReader } from './reader.js';
import { measureReadings } from './record.js';
import { recover } from './recovery.js';
import { SpoolShared, type Batch, type Position } from './shared.js';
import { MemoryTail } from './tail.js';
import { SegmentWriter } from './writer.js';

export {
  SpoolClosedError,
  SpoolFailedError,
  SpoolFormatError,
  SpoolFullError,
  SpoolLockedError,
  SpoolPermissionError,
} from './errors.js';
export {
  DEFAULT_GROUP_MAX_BYTES,
  DEFAULT_MEMORY_TAIL_READINGS,
  DEFAULT_SEGMENT_BYTES,
  DEFAULT_SPOOL_MAX_BYTES,
  type Spool,
  type SpoolOptions,
  type SpoolState,
  type StoreState,
} from './options.js';
export { spoolDiskBytes } from './directory.js';

/** take()'s answer for an empty accept: durable at once. */
const DURABLE = Symbol('durable');

/** Opens (recovering if needed) the spool in opts.dir and starts its drainer. */
export async function createSpool(opts: SpoolOptions): Promise<Spool> {
  const spool = new DiskSpool(opts);
  spool.open();
  return spool;
}

class DiskSpool extends EventEmitter implements Spool {
  private readonly s: SpoolShared;
  private readonly store: TimeSeriesStore;
  private readonly maxBytes: number;
  /** Readings in one drainer batch: past this many undrained, whenStored() does not wait (a backlog). */
  private readonly batchReadings: number;
  private readonly tail: MemoryTail;
  private readonly commit: GroupCommit;
  private readonly writer: SegmentWriter;
  private readonly reader: SpoolReader;
  private readonly checkpoint: Checkpoint;
  private readonly drainer: Drainer;
  private wasAccepting = true;
  private closed = false;
  private readonly drainWaiters = new Set<{ resolve: () => void; reject: (err: Error) => void }>();
  /** whenStored() callers: the drained count each waits for. */
  private readonly storeWaiters = new Set<{ mark: number; done: (stored: boolean) => void }>();

  constructor(opts: SpoolOptions) {
    super();
    const s = (this.s = new SpoolShared(opts.dir, opts.clock ?? { now: () => Date.now() }, opts.logger, {
      noteAccepting: () => this.noteAccepting(),
      storeState: (state) => this.emit('store', state),
      drained: (readings) => {
        this.settleStoreWaiters();
        this.emit('drained', readings);
      },
    }));
    this.store = opts.store;
    this.maxBytes = opts.maxBytes ?? DEFAULT_SPOOL_MAX_BYTES;
    const batchReadings = (this.batchReadings = Math.max(1, opts.batchReadings ?? 20_000));
    const memoryTailMax = Math.max(0, opts.memoryTailReadings ?? DEFAULT_MEMORY_TAIL_READINGS);
    this.writer = new SegmentWriter(s, opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES);
    this.tail = new MemoryTail(s, memoryTailMax, batchReadings);
    this.commit = new GroupCommit(s, this.writer, this.tail, {
      groupMaxBytes: Math.max(1, opts.groupMaxBytes ?? DEFAULT_GROUP_MAX_BYTES),
      waitMs: Math.min(MAX_COMMIT_WAIT_MS, Math.max(0, opts.commitWaitMs ?? DEFAULT_COMMIT_WAIT_MS)),
      inlineMaxMs: Math.min(20, Math.max(0, opts.inlineCommitMaxMs ?? DEFAULT_INLINE_COMMIT_MAX_MS)),
      now: opts.monotonicNow ?? (() => performance.now()),
      loopUtilization: opts.loopUtilization ?? loopUtilizationSinceLastCall(),
    });
    this.reader = new SpoolReader(s, this.tail, batchReadings);
    this.checkpoint = new Checkpoint(
      s,
      this.writer,
      this.reader,
      Math.max(0, opts.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS),
    );
    const drainerSettings = {
      batchReadings,
      lingerMs: Math.min(1000, Math.max(0, opts.drainLingerMs ?? DEFAULT_DRAIN_LINGER_MS)),
      lingerReadings: Math.max(1, Math.min(batchReadings, opts.drainLingerReadings ?? DEFAULT_DRAIN_LINGER_READINGS)),
      drainWindow: Math.max(1, opts.drainWindow ?? 4),
      backoff: createBackoff({ baseMs: 200, maxMs: 5000, ...opts.backoff }),
    };
    const source = { readBatch: (start: Position) => this.readBatch(start) };
    this.drainer = new Drainer(s, this.store, source, this.checkpoint, drainerSettings, () =>
      this.settleDrainWaiters(),
    );
  }

  /** Recovers the directory (giving it up again if that fails) and starts the drainer. */
  open(): void {
    try {
      recover(this.s);
    } catch (err) {
      releaseLock(this.s.dir);
      throw err;
    }
    this.tail.on = this.s.depthReadings === 0 && this.tail.max > 0;
    this.drainer.start();
  }

  // ---- state ----

  get depthBytes(): number {
    return this.s.depthBytes;
  }

  get depthReadings(): number {
    return this.s.depthReadings;
  }

  get accepting(): boolean {
    const s = this.s;
    return (
      !s.closing &&
      s.failure === null &&
      s.depthBytes + this.commit.pendingBytes + this.commit.committingBytes < this.maxBytes
    );
  }

  get storeState(): StoreState {
    return this.s.storeState;
  }

  get state(): SpoolState {
    const s = this.s;
    return {
      store: s.storeState,
      accepting: this.accepting,
      depthBytes: s.depthBytes,
      depthReadings: s.depthReadings,
      oldestUndrainedAgeMs:
        s.depthReadings > 0 && s.headAcceptedAt !== null ? Math.max(0, s.clock.now() - s.headAcceptedAt) : 0,
      writeErrors: { ...s.writeErrors },
      lastWriteError: s.lastWriteError,
      acceptedReadings: s.acceptedReadings,
      drainedReadings: s.drainedReadings,
      commits: s.commits,
      inlineCommits: s.inlineCommits,
      segments: s.segments.length,
      recoveredTornBytes: s.recoveredTornBytes,
      replayedReadings: s.replayedReadings,
      drainedFromDisk: s.drainedFromDisk,
      failure: s.failure,
    };
  }

  durableSeq(deviceId: string, epoch: number): number {
    return this.s.seqs.get(deviceId, epoch);
  }

  durableSeqs(): ReadonlyMap<string, ReadonlyMap<number, number>> {
    return this.s.seqs.all();
  }

  private noteAccepting(): void {
    const now = this.accepting;
    if (now !== this.wasAccepting) {
      this.wasAccepting = now;
      this.emit('accepting', now);
    }
  }

  // ---- accept ----

  accept(readings: readonly StoredReading[]): Promise<void> {
    return new Promise<void>((resolve, reject) => this.acceptThen(readings, { durable: resolve, failed: reject }));
  }

  acceptThen(readings: readonly StoredReading[], done: AcceptCallback): void {
    let refusal: unknown;
    try {
      refusal = this.take(readings, done);
    } catch (err) {
      refusal = err;
    }
    if (refusal !== null) queueMicrotask(() => (refusal === DURABLE ? done.durable() : done.failed(refusal)));
  }

  /** Queues the readings for the next group commit (null), or says why not (DURABLE: nothing to write). */
  private take(readings: readonly StoredReading[], done: AcceptCallback): unknown {
    const s = this.s;
    if (s.closing) return new SpoolClosedError('the spool is closed');
    if (s.failure) return failedError(s);
    if (readings.length === 0) return DURABLE;
    const now = s.clock.now();
    // Checked now, so a reading the spool cannot store fails this accept() alone; the group commit encodes.
    const bytes = measureReadings(readings);
    // The cap is checked here, with what waits and what is being committed, so the spool may pass it by one
    // accept() (a frame's worth).
    if (!this.accepting) {
      this.noteAccepting();
      return new SpoolFullError(
        `the spool holds ${s.depthBytes} undrained bytes (limit ${this.maxBytes}); the store is not keeping up or is down`,
      );
    }
    this.commit.enqueue({ bytes, readings, acceptedAt: now, done });
    return null;
  }

  retryNow(): void {
    this.drainer.retryNow();
  }

  /** The next batch from `start` for the drainer (looked up on the spool at each call: tests count the reads). */
  private readBatch(start: Position): Promise<Batch> {
    return this.reader.readBatch(start);
  }

  // ---- drained ----

  private settleDrainWaiters(): void {
    if (this.s.depthReadings !== 0 || this.commit.hasPending) return;
    // Drained includes the checkpoint saying so (tests inject disk faults once nothing is in flight).
    const waiters = [...this.drainWaiters];
    this.drainWaiters.clear();
    void this.checkpoint.written.then(() => {
      for (const w of waiters) w.resolve();
    });
  }

  /** Resolves when every reading whose accept() resolved is in the store. */
  whenDrained(timeoutMs = 30_000): Promise<void> {
    if (this.closed) return Promise.reject(new SpoolClosedError('the spool is closed'));
    if (this.s.depthReadings === 0 && this.commit.idle) return this.checkpoint.written;
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: (): void => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err: Error): void => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        this.drainWaiters.delete(waiter);
        reject(
          new Error(
            `spool not drained within ${timeoutMs} ms: ${this.s.depthReadings} readings undrained, store ${this.s.storeState}`,
          ),
        );
      }, timeoutMs);
      this.drainWaiters.add(waiter);
    });
  }

  /**
   * Resolves true once every reading committed before the call (so every reading acked before it) is in the
   * store; the drainer skips its linger for them meanwhile. False at once while the store is down or more than
   * a batch behind (catching up after an outage: waiting would not help), after timeoutMs, or when the spool
   * closes: the caller then reads what the store has.
   */
  whenStored(timeoutMs = 2000): Promise<boolean> {
    const s = this.s;
    const mark = s.committedReadings;
    if (s.drainedReadings >= mark) return Promise.resolve(true);
    if (this.closed || s.closing || s.storeState === 'down' || s.depthReadings > this.batchReadings)
      return Promise.resolve(false);
    s.storeBarrier = Math.max(s.storeBarrier, mark);
    s.wake?.();
    return new Promise<boolean>((resolve) => {
      const waiter = {
        mark,
        done: (stored: boolean): void => {
          clearTimeout(timer);
          this.storeWaiters.delete(waiter);
          resolve(stored);
        },
      };
      const timer = setTimeout(() => waiter.done(false), timeoutMs);
      this.storeWaiters.add(waiter);
    });
  }

  private settleStoreWaiters(): void {
    for (const w of this.storeWaiters) if (this.s.drainedReadings >= w.mark) w.done(true);
  }

  // ---- shutdown ----

  /**
   * Commits what accept() has pending (those calls resolve), stops the drainer (a store write in flight
   * finishes first, a back-off wait is cut short) and releases the directory. Undrained records stay on disk
   * and are replayed by the next start.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    const s = this.s;
    s.closing = true;
    await this.commit.settled();
    await this.drainer.stopped(new SpoolClosedError('the spool is closed'));
    await this.checkpoint.flush();
    this.closed = true;
    for (const w of this.drainWaiters)
      w.reject(new SpoolClosedError(`the spool closed with ${s.depthReadings} readings undrained (kept on disk)`));
    this.drainWaiters.clear();
    for (const w of this.storeWaiters) w.done(false);
    this.reader.closeFd();
    await this.writer.close();
    try {
      writeSeqsSync(s.dir, s.seqs.toJson());
    } catch (err) {
      // Only a head start for the next scan: every seq in it is also in a segment file or in the file as it was.
      this.s.logger?.error(
        { err },
        'spool: could not save the durable seqs at close; the next start finds them in the segments',
      );
    }
    releaseLock(s.dir, true);
  }
}

/** The event loop's utilization (0-1) between two calls of the returned function. */
function loopUtilizationSinceLastCall(): () => number {
  let mark = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(now, mark);
    mark = now;
    return utilization;
  };
}
