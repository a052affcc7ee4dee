/**
 * The drainer (docs/storage.md, "Draining, outages and the cap"): reads committed records in order and writes
 * them to the store in batches, up to drainWindow batches at once, moving the drain position (and, behind it,
 * the checkpoint) past each batch once it and every batch before it are in the store. While the store is
 * down it retries the oldest batch with exponential back-off and full jitter.
 */
import { abortableSleep, type Backoff } from '../core/backoff.js';
import { UnreadableBatchError, type TimeSeriesStore } from '../storage/types.js';
import type { Checkpoint } from './checkpoint.js';
import type { RecordBatch } from './record.js';
import type { Batch, Position, SpoolShared } from './shared.js';

interface InFlightBatch {
  batch: Batch;
  /** True once in the store; false if the spool closed while the store was failing. */
  writing: Promise<boolean>;
}

/** Where batches come from (the spool's reader, through the facade). */
export interface BatchSource {
  readBatch(start: Position): Promise<Batch>;
}

export interface DrainerSettings {
  batchReadings: number;
  /** After new data arrives at an idle drainer, wait up to this long for lingerReadings readings. */
  lingerMs: number;
  lingerReadings: number;
  drainWindow: number;
  backoff: Backoff;
}

export class Drainer {
  private readonly stop = new AbortController();
  private backoffAbort: AbortController | null = null;
  private running: Promise<void> | null = null;
  private readonly inFlight: InFlightBatch[] = [];
  private inFlightReadings = 0;
  /** The last read found nothing past the batches in flight although the counters say there is more. */
  private filesBehindCounters = false;
  /** When the last batch started (performance.now()): readings not in a batch have waited at most since then. */
  private lastStartAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly s: SpoolShared,
    private readonly store: TimeSeriesStore,
    private readonly source: BatchSource,
    private readonly checkpoint: Checkpoint,
    private readonly cfg: DrainerSettings,
    /** Called whenever the drainer finds nothing to drain (whenDrained waiters). */
    private readonly onIdle: () => void,
  ) {}

  start(): void {
    this.running = this.drainLoop().catch((err: unknown) => {
      this.s.logger?.error({ err }, 'spool drainer stopped by an unexpected error');
    });
  }

  /** Stops the drainer (a store write in flight finishes first, a back-off wait is cut short). */
  async stopped(reason: Error): Promise<void> {
    this.stop.abort(reason);
    this.backoffAbort?.abort(reason);
    this.s.wake?.();
    await this.running;
  }

  /** Ends a back-off wait now (e.g. a health probe saw the store answer). */
  retryNow(): void {
    this.backoffAbort?.abort();
  }

  /**
   * Keeps up to drainWindow batches in the store at once, started in spool order and completed (checkpoint
   * moved past them) in spool order. With one batch at a time the store idled at every batch boundary: while
   * the first request of a batch was being built, while its last request ran alone, and during the checkpoint's
   * fdatasync. A later batch that lands before an earlier one is harmless: writes are idempotent, and the
   * checkpoint only ever passes batches whose write, and every write before it, succeeded.
   */
  private async drainLoop(): Promise<void> {
    const sleep = abortableSleep(this.stop.signal);
    let ioFailures = 0;
    while (!this.s.closing) {
      try {
        const step = await this.step();
        if (step === 'stop') break;
        if (step === 'completed') ioFailures = 0;
      } catch (err) {
        // Reading a segment failed (I/O error): keep the position, retry.
        // Writes in flight finish first; those that succeeded in order count as drained.
        await this.settleInFlight().catch(() => undefined);
        this.inFlight.length = 0;
        this.inFlightReadings = 0;
        this.filesBehindCounters = false;
        this.s.countError('spool_io');
        this.s.logger?.error({ err }, 'spool drainer: file operation failed; retrying');
        await sleep(this.cfg.backoff.delay(ioFailures++)).catch(() => undefined);
      }
    }
    // Closing: batches whose write still succeeds are recorded as drained, so a restart does not replay them.
    await this.settleInFlight().catch((err: unknown) =>
      this.s.logger?.error({ err }, 'spool drainer: could not record the last drained batches'),
    );
  }

  /** One turn of the drain loop: wait for work, start a batch, or complete the oldest one. */
  private async step(): Promise<'stop' | 'again' | 'completed'> {
    const s = this.s;
    const inFlight = this.inFlight;
    if (inFlight.length === 0 && s.depthReadings === 0) {
      this.onIdle();
      await s.waitForWake();
      s.wake = null;
      if (s.closing) return 'stop';
      if (this.cfg.lingerMs > 0 && s.depthReadings < this.cfg.lingerReadings) await this.linger();
      // Look again: a wake-up can come with nothing to drain (the spool failing, for one).
      return 'again';
    }
    if (
      inFlight.length < this.cfg.drainWindow &&
      s.depthReadings > this.inFlightReadings &&
      !this.filesBehindCounters
    ) {
      // A batch less than full waits for more (see lingerLeft); with a batch in flight, the wait for it below
      // is that wait. Starting every trickle at once made every other InfluxDB request a small one.
      const left = this.lingerLeft();
      if (left === 0) {
        if (await this.startBatch()) return 'again';
      } else if (inFlight.length === 0) {
        await this.linger(left);
        return 'again';
      }
    }
    const head = inFlight[0];
    if (!head) return 'again';
    // With room in the window, a full batch more starts without waiting for the oldest write; less than
    // a batch waits for it (many small requests would cost the store more than they save).
    if (
      inFlight.length < this.cfg.drainWindow &&
      !this.filesBehindCounters &&
      !(await this.settledOrFullBatch(head.writing))
    )
      return 'again';
    if (!(await head.writing)) return 'stop'; // closing while the store was failing
    this.filesBehindCounters = false;
    inFlight.shift();
    this.inFlightReadings -= head.batch.readings.length;
    this.completeBatch(head.batch, inFlight[0]?.batch.firstAcceptedAt ?? null);
    return 'completed';
  }

  /** Reads the next batch and starts its write; false when the files hold nothing past the batches in flight. */
  private async startBatch(): Promise<boolean> {
    const s = this.s;
    const inFlight = this.inFlight;
    // Let the requests of the batches in flight reach their sockets before reading (in slices) the next.
    if (inFlight.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    /** Where the next batch is read from: after the last batch in flight, or the drain position. */
    const from: Position = inFlight[inFlight.length - 1]?.batch.end ?? s.drainPos;
    const batch = await this.source.readBatch(from);
    if (batch.bytes > 0) {
      if (inFlight.length === 0) s.headAcceptedAt = batch.firstAcceptedAt ?? s.headAcceptedAt;
      this.lastStartAt = performance.now();
      const previous = inFlight[inFlight.length - 1]?.writing ?? null;
      inFlight.push({
        batch,
        writing: batch.readings.length > 0 ? this.writeWithRetry(batch.readings, previous) : Promise.resolve(true),
      });
      this.inFlightReadings += batch.readings.length;
      return true;
    }
    if (inFlight.length === 0) {
      // The counters say there is more, the files do not (only after damage was skipped): trust the files.
      s.logger?.error(
        { depthReadings: s.depthReadings, depthBytes: s.depthBytes },
        'spool: undrained count disagrees with the segment files; resetting it',
      );
      s.committedReadings = s.drainedReadings;
      s.committedBytes = s.drainedBytes;
      return true;
    }
    // Readings of damaged records skipped in a batch still in flight: settle the counters once it is done.
    this.filesBehindCounters = true;
    return false;
  }

  /**
   * How much longer the readings that are in no batch yet wait for more, ms (0: start a batch now). They wait
   * until lingerReadings of them (one full InfluxDB request) are there, or until lingerMs have passed since
   * the last batch started (they all arrived after it, unless that batch was cut short by batchReadings).
   * At low rates this is what makes the store's requests fuller: without it, at 2 000 readings/s, each batch
   * that lingered was followed by one of the few readings that came while it was written (issue 16).
   */
  private lingerLeft(): number {
    const { lingerMs, lingerReadings } = this.cfg;
    if (lingerMs <= 0 || this.hurried() || this.s.depthReadings - this.inFlightReadings >= lingerReadings) return 0;
    return Math.max(0, this.lastStartAt + lingerMs - performance.now());
  }

  /**
   * Waits up to `ms` (lingerMs after an idle spool wakes) for lingerReadings readings, and no longer than it
   * takes them to arrive (under a flood the first batch used to wait the whole linger while the store sat
   * idle). At low rates this is what makes the store's requests fuller: 100 ms made requests of 120 lines at
   * 2 000 readings/s (issue 16).
   */
  private async linger(ms: number = this.cfg.lingerMs): Promise<void> {
    const s = this.s;
    let over = false;
    // A timer of its own, cleared when the wait ends early. A sleep left running held a listener on the stop
    // signal and woke a later wait for nothing when it ran out: under a flood, dozens at a time.
    const timer = setTimeout(() => {
      over = true;
      s.wake?.(); // every wait of the drainer checks its condition again when woken
    }, ms);
    try {
      while (
        !over &&
        !s.closing &&
        !this.hurried() &&
        s.depthReadings - this.inFlightReadings < this.cfg.lingerReadings
      ) {
        await s.waitForWake();
        s.wake = null;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** A whenStored() caller waits for readings that are in no store write yet: no lingering for them. */
  private hurried(): boolean {
    return this.s.storeBarrier > this.s.drainedReadings + this.inFlightReadings;
  }

  /** True once `writing` settles; false before that if a full batch more is waiting, or the spool closes. */
  private async settledOrFullBatch(writing: Promise<boolean>): Promise<boolean> {
    const s = this.s;
    let settled = false;
    const done = (): void => {
      settled = true;
      s.wake?.();
    };
    void writing.then(done, done); // a rejection is the drain loop's to handle (it awaits `writing` next)
    while (!settled && !s.closing && s.depthReadings - this.inFlightReadings < this.cfg.batchReadings) {
      await s.waitForWake();
      s.wake = null;
    }
    return settled;
  }

  /** Waits for the writes in flight; completes, in order, those that succeeded before the first that failed. */
  private async settleInFlight(): Promise<void> {
    const inFlight = this.inFlight;
    const results = await Promise.all(inFlight.map((f) => f.writing));
    for (let i = 0; i < inFlight.length && results[i]; i++)
      this.completeBatch(inFlight[i]!.batch, inFlight[i + 1]?.batch.firstAcceptedAt ?? null);
  }

  /** The batch is in the store: move the drain position past it (the checkpoint follows, see Checkpoint.schedule). */
  private completeBatch(batch: Batch, nextAcceptedAt: number | null): void {
    const s = this.s;
    s.drainPos = batch.end;
    s.drainedBytes += batch.bytes;
    s.drainedReadings += batch.readings.length;
    s.headAcceptedAt = s.depthReadings === 0 ? null : (nextAcceptedAt ?? s.headAcceptedAt);
    this.checkpoint.schedule();
    s.events.noteAccepting();
    s.events.drained(batch.readings.length);
  }

  /**
   * True once written; false if the spool closed while the store was failing. `previous` is the write of the
   * batch before this one, if still in flight: after a failure this batch waits for it instead of retrying
   * on its own, so once an outage ends the store gets the batches in spool order again.
   */
  private async writeWithRetry(readings: RecordBatch, previous: Promise<boolean> | null): Promise<boolean> {
    const s = this.s;
    let checked = false;
    for (let attempt = 0; ; attempt++) {
      try {
        if (this.store.writeBatch) await this.store.writeBatch(readings);
        else await this.store.write(readings.toArray());
        s.setStoreState('up');
        return true;
      } catch (err) {
        if (err instanceof UnreadableBatchError && !checked) {
          // Not the store's fault, and no retry would read the record: write the batch without it (the batch
          // still counts it as drained, so the drain moves past it). Part of the batch may be stored already;
          // writing it again is harmless.
          checked = true;
          readings = readings.readable((record, why) => {
            s.noteDamage(
              { offset: record.offset, readings: record.count, device: record.summary?.deviceId, reason: why.message },
              'spool: a record does not decode; its readings are skipped',
            );
          });
          attempt--;
          continue;
        }
        // Past this point an UnreadableBatchError (readings that passed the check, refused again: a hub bug) is
        // retried with back-off like a store failure, under its own kind: the spool keeps the readings.
        this.noteWriteError(err);
        if (s.closing) return false;
        if (previous) {
          const ok = await previous;
          previous = null;
          if (!ok || s.closing) return false;
          continue; // the store just took the batch before: try again at once
        }
        const hints = err as { retryAfterMs?: unknown };
        const retryAfter = typeof hints.retryAfterMs === 'number' ? hints.retryAfterMs : null;
        // A controller of its own, which retryNow() and stopped() abort: a signal derived from the long-lived
        // stop signal (AbortSignal.any) for every retry is one that some Node versions keep alive from it.
        this.backoffAbort = new AbortController();
        const wait = abortableSleep(this.backoffAbort.signal);
        await wait(this.cfg.backoff.delay(attempt, retryAfter)).catch(() => undefined);
        this.backoffAbort = null;
        if (s.closing) return false;
      }
    }
  }

  /** A failed store write: counted by kind, logged once per outage, and the store marked down. */
  private noteWriteError(err: unknown): void {
    const s = this.s;
    const hints = err as { kind?: unknown; message?: unknown };
    const kind = typeof hints.kind === 'string' ? hints.kind : 'error';
    s.countError(kind);
    s.lastWriteError = { kind, message: String(hints.message ?? err), at: s.clock.now() };
    if (s.storeState !== 'down')
      s.logger?.warn({ err, kind }, 'store write failed: the spool keeps the readings and retries');
    s.setStoreState('down');
  }
}
