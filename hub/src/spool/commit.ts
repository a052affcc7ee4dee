/**
 * Group commit (docs/storage.md, "Group commit"): accept() calls that arrive while an fdatasync runs wait for
 * the next one, which covers all of them, and the group's readings are written as one record (encodeGroup). A
 * group takes at most groupMaxBytes of readings (as accept() measured them), or a quarter of a larger backlog.
 * A group of fewer than TARGET_RECORDS accepts waits for more while the arrival rate says they are coming,
 * until its first accept has waited waitMs. A group commits on the event loop's own thread (inline) while the
 * disk has been fast and the loop mostly idle, through the thread pool otherwise. A failed append stops the
 * spool for good (fail-stop, "When the disk fails").
 *
 * TARGET_RECORDS and SMALL_GROUP_RECORDS count accepts (each was a record of its own until 2026-12-06).
 */
import { SpoolFailedError } from './errors.js';
import { encodeGroup } from './record.js';
import type { Pending, Position, SpoolShared } from './shared.js';
import type { MemoryTail } from './tail.js';
import type { SegmentWriter } from './writer.js';

/** A group of this many accepts commits without waiting for more. */
export const TARGET_RECORDS = 256;
/** Weight of the newest gap between two arrivals in the running mean (about the last 10 arrivals). */
const GAP_WEIGHT = 0.1;
/** Commits in a row within inlineMaxMs before the next one runs inline. */
export const FAST_COMMITS_BEFORE_INLINE = 8;
/**
 * A commit runs inline only while the event loop was busy less than this share of the time since the last
 * commit: a loaded hub keeps the thread pool, whose fdatasync overlaps the loop's work instead of stopping it.
 */
export const INLINE_MAX_LOOP_UTILIZATION = 0.5;
/**
 * A group of fewer records than this is small (a low rate: single-reading frames below some 3 200 a second
 * with the 20 ms group-commit wait). Only a small group commits inline: there the pool's hand-offs are much of
 * a commit's cost; at higher rates the gain is small and an inline fdatasync holds up more arrivals (without
 * this bound the ack p99 at 20 000 readings/s was 52-65 ms in three rounds, 36-48 ms through the pool that
 * evening).
 */
export const SMALL_GROUP_RECORDS = 64;
/** The longest a group ever waits for more records, ms. */
export const MAX_COMMIT_WAIT_MS = 50;

export interface GroupCommitSettings {
  groupMaxBytes: number;
  /** Upper bound of the wait for a fuller group, from the arrival of its first record. 0: no wait. */
  waitMs: number;
  /**
   * A commit runs inline (writev and fdatasync on the event loop's thread, no thread-pool hand-offs) once the
   * last FAST_COMMITS_BEFORE_INLINE commits each took at most this long, ms. 0: always through the pool.
   */
  inlineMaxMs: number;
  /** Monotonic ms that time a commit (performance.now; injectable for tests). */
  now: () => number;
  /** The event loop's utilization (0-1) since the previous call (eventLoopUtilization; injectable for tests). */
  loopUtilization: () => number;
}

export class GroupCommit {
  private pending: Pending[] = [];
  /** Arrival time (monotonic ms) of each pending record, in the same order. */
  private arrivals: number[] = [];
  /** Bytes (measured, not yet encoded) of the accepts waiting for a group commit. */
  pendingBytes = 0;
  /**
   * Bytes (measured) of the group being committed: they count against the spool's cap until the commit has
   * added the group's real size to the committed bytes, so the cap does not open for the length of every commit.
   */
  committingBytes = 0;
  private committing: Promise<void> | null = null;
  /** Running mean of the gap between two accept() calls, ms (the arrival rate is its inverse). */
  private meanGapMs = 1000;
  private lastArrival = Number.NEGATIVE_INFINITY;
  /** Commits in a row that took at most inlineMaxMs (wall time, a pool commit's hand-offs included). */
  private fastCommits = 0;

  constructor(
    private readonly s: SpoolShared,
    private readonly writer: SegmentWriter,
    private readonly tail: MemoryTail,
    private readonly cfg: GroupCommitSettings,
  ) {}

  /** True while nothing waits for a commit and none runs. */
  get idle(): boolean {
    return this.pending.length === 0 && !this.committing;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /** Queues a record for the next group commit (the caller resolves the accept() through `p`). */
  enqueue(p: Pending): void {
    const now = performance.now();
    this.meanGapMs += GAP_WEIGHT * (Math.min(1000, now - this.lastArrival) - this.meanGapMs);
    this.lastArrival = now;
    this.arrivals.push(now);
    this.pending.push(p);
    this.pendingBytes += p.bytes;
    this.committing ??= this.commitLoop();
  }

  /** Resolves once no commit runs (what was pending is committed or refused). */
  async settled(): Promise<void> {
    while (this.committing) await this.committing;
  }

  private async commitLoop(): Promise<void> {
    const s = this.s;
    try {
      // Let the accept() calls of this tick join the first group.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.pending.length > 0) {
        const wait = this.fullerGroupWait();
        if (wait > 0) await new Promise<void>((resolve) => setTimeout(resolve, wait));
        if (this.pending.length === 0) break; // refused meanwhile
        const group = this.takeGroup();
        let measured = 0;
        for (const p of group) measured += p.bytes;
        this.pendingBytes -= measured;
        this.committingBytes = measured;
        let records: Buffer[];
        try {
          records = encodeGroup(group);
        } catch (err) {
          // accept() measured every reading, so this is a hub bug. Fail-stop as for a disk error: carrying on
          // would let later groups of the same devices become durable past this one's readings, and a durable
          // seq that skips readings never written would tell a device after a restart to drop them.
          this.failStop(
            err,
            group,
            'spool failed: a group of readings could not be encoded (a hub bug: please report it with this log), so the spool takes no more readings (devices keep them unacked); restart the hub',
          );
          return;
        }
        let groupBytes = 0;
        for (const r of records) groupBytes += r.length;
        let at: Position;
        const idleLoop = this.cfg.loopUtilization() < INLINE_MAX_LOOP_UTILIZATION;
        const inline =
          this.cfg.inlineMaxMs > 0 &&
          this.fastCommits >= FAST_COMMITS_BEFORE_INLINE &&
          group.length < SMALL_GROUP_RECORDS &&
          idleLoop;
        const started = this.cfg.now();
        try {
          at = await this.writer.append(records, groupBytes, inline);
        } catch (err) {
          this.failStop(err, group);
          return;
        }
        // One slow commit sends the next ones back to the pool until the disk has been fast again for a while.
        this.fastCommits = this.cfg.now() - started <= this.cfg.inlineMaxMs ? this.fastCommits + 1 : 0;
        if (inline) s.inlineCommits++;
        this.tail.keep(records, group, at);
        for (const p of group) {
          s.seqs.noteRuns(p.readings);
          s.committedReadings += p.readings.length;
          s.acceptedReadings += p.readings.length;
          s.headAcceptedAt ??= p.acceptedAt;
        }
        s.committedBytes += groupBytes;
        this.committingBytes = 0;
        s.commits++;
        s.events.noteAccepting();
        s.wake?.();
        for (const p of group) this.tell(p, null);
      }
    } finally {
      this.committing = null;
    }
  }

  /**
   * How long the next group waits for more records, ms: 0 once it holds TARGET_RECORDS or groupMaxBytes, once
   * its first record has waited waitMs, or when fewer than one more record is expected before then (at a few
   * readings a second waiting buys nothing); else until TARGET_RECORDS are expected, within the bound. At 2 000
   * readings/s in single frames a group used to commit 8 of them (about 250 fdatasyncs/s, issue 16).
   */
  private fullerGroupWait(): number {
    return fullerGroupWait({
      records: this.pending.length,
      bytes: this.pendingBytes,
      waitedMs: performance.now() - this.arrivals[0]!,
      meanGapMs: this.meanGapMs,
      ...this.cfg,
    });
  }

  /**
   * The next group to commit: the pending records, in order, up to groupMaxBytes (at least one record), or up
   * to a quarter of what is pending when more is: a backlog (a disk slower than the devices) is cleared in a
   * few commits, not in as many as groupMaxBytes would make.
   */
  private takeGroup(): Pending[] {
    const pending = this.pending;
    const limit = Math.max(this.cfg.groupMaxBytes, this.pendingBytes / 4);
    let bytes = pending[0]!.bytes;
    let n = 1;
    while (n < pending.length && bytes + pending[n]!.bytes <= limit) bytes += pending[n++]!.bytes;
    if (n === pending.length) {
      this.pending = [];
      this.arrivals = [];
      return pending;
    }
    this.arrivals.splice(0, n);
    return pending.splice(0, n);
  }

  /** Tells an accept() its outcome: durable (err null) or not. A listener that throws stops no one else. */
  private tell(p: Pending, err: unknown): void {
    try {
      if (err === null) p.done.durable();
      else p.done.failed(err);
    } catch (listenerErr) {
      this.s.logger?.error({ err: listenerErr }, 'spool: a listener of a group commit failed');
    }
  }

  /**
   * The disk failed under an append: refuse `group` with the error, refuse everything queued behind it, and
   * stop taking readings until a restart. Durable seqs stay where the last fdatasync left them.
   */
  private failStop(
    err: unknown,
    group: Pending[],
    message = 'spool failed: an append or fdatasync to the spool failed, so the spool takes no more readings (devices keep them unacked); fix the disk and restart the hub',
  ): void {
    const s = this.s;
    const e = err as { message?: unknown; code?: unknown };
    s.failure = {
      message: String(e?.message ?? err),
      code: typeof e?.code === 'string' ? e.code : null,
      at: s.clock.now(),
    };
    s.countError('spool_append');
    const queued = this.pending;
    this.pending = [];
    this.arrivals = [];
    this.pendingBytes = 0;
    this.committingBytes = 0;
    const refused = [...group, ...queued].reduce((n, p) => n + p.readings.length, 0);
    s.logger?.error({ err, segment: this.writer.current?.path, refusedReadings: refused }, message);
    for (const p of group) this.tell(p, err);
    const stopped = failedError(s);
    for (const p of queued) this.tell(p, stopped);
    s.events.noteAccepting();
    // Records committed before the failure are durable: let the drainer carry on with them.
    s.wake?.();
  }
}

/** The wait rule of GroupCommit (pure, for tests): how long a group of `records` waits for more, ms. */
export function fullerGroupWait(g: {
  records: number;
  bytes: number;
  waitedMs: number;
  meanGapMs: number;
  waitMs: number;
  groupMaxBytes: number;
}): number {
  if (g.waitMs <= 0 || g.records >= TARGET_RECORDS || g.bytes >= g.groupMaxBytes) return 0;
  const left = g.waitMs - g.waitedMs;
  if (left <= 0 || left / g.meanGapMs < 1) return 0;
  return Math.min(left, (TARGET_RECORDS - g.records) * g.meanGapMs);
}

/** The error every accept() gets once the spool has failed. */
export function failedError(s: SpoolShared): SpoolFailedError {
  return new SpoolFailedError(
    `the spool failed at ${new Date(s.failure!.at).toISOString()} (${s.failure!.message}) and takes no readings until the hub is restarted`,
  );
}
