/**
 * One connected device's ingest, whatever transport carries it (see types.ts). Section numbers (§) are
 * docs/protocol.md.
 *
 * Acceptance keeps seq order: the valid readings a device delivers in one turn of the event loop go to the
 * sink as one accept(); completions are applied in arrival order, and the durable seq (what onDurable
 * reports) only advances over a contiguous prefix of completed writes. A failed write drops everything
 * after it and reports STORE_BUSY, so the device resends from its oldest unacked reading and no
 * acknowledgement can ever skip a reading that did not become durable.
 *
 * After a refusal the session takes readings again only where the device's resend begins (§7.4.5), never
 * over a reading it refused or ignored itself; a gap the device made (its buffer dropped the oldest, §7.5)
 * is taken as it comes.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Reading } from '@tendril/device-sdk/codec';
import type { Clock } from '../core/clock.js';
import type { HubMetrics } from '../ops/metrics.js';
import type { AcceptCallback, ReadingSink, StoredReading } from '../storage/types.js';
import { TokenBucket } from './rate-limit.js';
import type { EndOfTurn } from './turn.js';
import type { IngestDeclaration, IngestReporter, IngestSession, RefusalCode, ValidationCode } from './types.js';
import { Declarations, type RejectionSink } from './validate.js';

/** What every session of a hub shares. */
export interface IngestContext {
  sink: ReadingSink;
  metrics: HubMetrics;
  turn: EndOfTurn;
  clock: Clock;
  /** Readings per second per device on average, and at once (§7.4). */
  deviceRate: number;
  deviceBurst: number;
  /** Pause announced with STORE_BUSY. */
  storeBusyPauseMs: number;
  /**
   * §7.4.1: when a session's oldest reading not yet durable was taken this long ago, the hub is falling
   * behind and the device is told to back off (STORE_BUSY) instead of piling readings up. Default
   * OVERLOAD_ACK_MS.
   */
  overloadAckMs?: number;
  /** True once the hub stops taking readings (§6.6.3: they stay unacked; the device resends). */
  isShuttingDown(): boolean;
  log: FastifyBaseLogger;
}

/** What the devices layer learns from one session. */
export interface DurabilityListener {
  /** The durable seq of the session's epoch moved (the registry keeps it for WELCOME.ackedSeq). */
  durableSeq(seq: number): void;
  /** Valid readings that just became durable, in seq order. */
  durableReadings(readings: readonly StoredReading[]): void;
  /** A value or reading was rejected by validation. */
  rejected?(code: ValidationCode): void;
}

/**
 * §7.3.4: an ACK goes out at once when this many readings wait for it, else within ACK_LINGER_MS. 4 rather than
 * 8 with the 30 ms linger: at 20 000 readings/s from 100 devices, 8 readings took longer than the linger to
 * come, and the ack p99 reached 50-53 ms in two runs of three (32-37 ms with 4; docs/performance.md, issue 16).
 */
export const ACK_EVERY = 4;
/** §7.4.1: readings taken this long ago and still not durable make the hub answer BACKOFF STORE_BUSY. */
export const OVERLOAD_ACK_MS = 1000;

/** The readings of one turn handed to the sink, until they are durable (or dropped after a failure). */
class PendingWrite implements AcceptCallback {
  done: boolean;
  /** Dropped after an earlier write failed: its completion must not move the durable seq. */
  abandoned = false;

  constructor(
    private readonly session: DeviceIngestSession,
    /** Highest seq covered by this entry (readings of one turn, valid or rejected). */
    readonly seq: number,
    /** When the entry was handed to the sink (clock ms): the age of the oldest tells an overload. */
    readonly at: number,
    /** Valid readings handed to the sink; null when every reading was rejected. */
    readonly readings: StoredReading[] | null,
  ) {
    this.done = readings === null;
  }

  durable(): void {
    if (this.abandoned) return;
    this.done = true;
    this.session.advance();
  }

  failed(err: unknown): void {
    if (!this.abandoned) this.session.writeFailed(this, err);
  }
}

/**
 * The session's explicit state: taking readings, ignoring them until the resend after a refusal begins
 * (§7.4.5), or closed.
 */
type IngestState =
  | { kind: 'taking' }
  | { kind: 'resyncing'; code: RefusalCode; pauseUntil: number; resendFrom: number }
  | { kind: 'closed' };

export class DeviceIngestSession implements IngestSession, RejectionSink {
  private state: IngestState = { kind: 'taking' };
  private readonly declarations: Declarations;
  private readonly bucket: TokenBucket;
  /** Highest seq durable for (device, epoch) as this session knows it; what onDurable reports. */
  private durable: number;
  /** Highest seq handed to the sink (or rejected); readings at or below are duplicates. */
  private acceptedSeq: number;
  private lastReported: number;
  private ackScheduled = false;
  private ackLingering = false;
  /** When the durable seq last moved (clock ms): tells a device sending faster than the linger. */
  private lastAdvanceAt = 0;
  /** When the oldest durable reading not yet acknowledged was handed to the sink (clock ms); null: none. */
  private unreportedSince: number | null = null;
  private ackForced = false;
  private readonly queue: PendingWrite[] = [];
  /** Valid readings taken in this turn of the event loop, not yet handed to the sink. */
  private open: StoredReading[] | null = null;
  private openScheduled = false;
  private settleWaiters: Array<() => void> = [];
  private readonly flushOpenTask = () => this.closeOpen();
  private readonly flushAckTask = () => {
    this.ackScheduled = false;
    this.flushAck();
  };
  private readonly lingerAckTask = () => {
    this.ackLingering = false;
    this.flushAck();
  };
  private readonly overloadAckMs: number;

  constructor(
    readonly deviceId: string,
    declaration: IngestDeclaration,
    readonly ackedSeq: number,
    private readonly ctx: IngestContext,
    private readonly reporter: IngestReporter,
    private readonly listener: DurabilityListener,
    now: number,
  ) {
    this.epoch = declaration.epoch;
    this.declarations = new Declarations(declaration.metrics);
    this.bucket = new TokenBucket(ctx.deviceRate, ctx.deviceBurst, now);
    this.durable = this.acceptedSeq = this.lastReported = ackedSeq;
    this.overloadAckMs = ctx.overloadAckMs ?? OVERLOAD_ACK_MS;
  }

  readonly epoch: number;

  /** §7.1.1: a rejected value (or reading, alias null). */
  rejectValue(code: ValidationCode, seq: number, alias: number | null, message: string): void {
    this.ctx.metrics.rejectedBy(code).inc();
    this.listener.rejected?.(code);
    this.reporter.onRejected(code, seq, alias, message);
  }

  ingest(readings: readonly Reading[], prevSeq: number, now: number): void {
    // §6.6.3: a hub that is shutting down takes no more readings (they stay unacked; the device resends).
    if (this.state.kind === 'closed' || this.ctx.isShuttingDown()) return;
    const { sink, metrics } = this.ctx;
    let taken = false;
    let ackDuplicate = false;
    let prev = prevSeq;
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i]!;
      const stepsBack = r.seq <= prev;
      prev = r.seq;
      const state = this.state;
      if (state.kind === 'resyncing') {
        // §7.4.2: ignore every reading until the pause has elapsed.
        if (now < state.pauseUntil) {
          if (r.seq > this.acceptedSeq && r.seq < state.resendFrom) state.resendFrom = r.seq;
          continue;
        }
        // §7.4.5: take readings again from the first that skips nothing the hub refused or ignored, or that
        // steps back to a reading already sent: the start of a resend, which begins at the device's oldest
        // unacked reading (above resendFrom only if the device dropped those, §7.5). Anything else was sent
        // before the device saw the refusal; taking it would let a cumulative ACK cover readings never
        // stored, so ask for the resend again.
        if (r.seq > state.resendFrom && !stepsBack) {
          this.refuse(state.code, now, readings.length - i, r.seq);
          continue;
        }
        this.state = { kind: 'taking' };
      }
      // §7.2: durable or in flight already.
      if (r.seq <= this.acceptedSeq) {
        metrics.count.readingsDuplicate++;
        if (r.seq <= this.durable) ackDuplicate = true;
        continue;
      }
      // §7.4.1: the store is down and the spool full, or durability has fallen behind.
      if (!sink.accepting || this.fallingBehind(now)) {
        this.refuse('STORE_BUSY', now, readings.length - i, r.seq);
        continue;
      }
      if (!this.bucket.take(now)) {
        this.refuse('RATE_LIMITED', now, readings.length - i, r.seq);
        continue;
      }
      const ts = r.ts ?? now; // §7.1.4: untimed readings get the hub's arrival time
      const values = this.declarations.validate(r, r.ts !== null, ts, now, this);
      this.acceptedSeq = r.seq;
      taken = true;
      if (values.length > 0)
        (this.open ??= []).push({ deviceId: this.deviceId, epoch: this.epoch, seq: r.seq, ts, values });
    }
    if (taken && !this.openScheduled) {
      // One accept() per session per turn of the event loop: readings read together travel together.
      this.openScheduled = true;
      this.ctx.turn.first(this.flushOpenTask);
    }
    if (ackDuplicate) this.scheduleAck(true);
  }

  /** §7.4.1: the oldest reading handed to the sink has waited overloadAckMs or more to become durable. */
  private fallingBehind(now: number): boolean {
    const head = this.queue[0];
    return head !== undefined && now - head.at >= this.overloadAckMs;
  }

  /** §7.4.1: `refusedSeq` is the first reading not taken; the resync waits for a resend that covers it. */
  private refuse(code: RefusalCode, now: number, refused: number, refusedSeq: number): void {
    let pauseMs: number;
    if (code === 'RATE_LIMITED') {
      // Pause until the bucket holds enough for the refused readings, or a tenth of a second's worth.
      pauseMs = this.bucket.msUntil(Math.max(refused, Math.ceil(this.ctx.deviceRate / 10)), now);
    } else {
      pauseMs = this.ctx.storeBusyPauseMs;
    }
    const resendFrom = this.state.kind === 'resyncing' ? Math.min(this.state.resendFrom, refusedSeq) : refusedSeq;
    this.state = { kind: 'resyncing', code, pauseUntil: now + pauseMs, resendFrom };
    this.reporter.onRefused(code, pauseMs);
  }

  /** Hands the readings taken since the last call to the sink as one entry of the queue. */
  private closeOpen(): void {
    if (!this.openScheduled) return;
    this.openScheduled = false;
    const readings = this.open;
    this.open = null;
    this.enqueue(readings, this.acceptedSeq);
  }

  private enqueue(readings: StoredReading[] | null, seq: number): void {
    const entry = new PendingWrite(this, seq, this.ctx.clock.now(), readings);
    this.queue.push(entry);
    if (readings === null) {
      this.advance();
      return;
    }
    const sink = this.ctx.sink;
    if (sink.acceptThen) sink.acceptThen(readings, entry);
    else
      sink.accept(readings).then(
        () => entry.durable(),
        (err: unknown) => entry.failed(err),
      );
  }

  /** Moves the durable seq over the completed prefix of the queue, then schedules one report. @internal */
  advance(): void {
    const queue = this.queue;
    let advanced = false;
    while (queue.length > 0 && queue[0]!.done) {
      const entry = queue.shift()!;
      if (entry.seq > this.durable) {
        this.durable = entry.seq;
        advanced = true;
        this.unreportedSince ??= entry.at;
      }
      if (entry.readings !== null) {
        this.ctx.metrics.count.readingsAccepted += entry.readings.length;
        this.listener.durableReadings(entry.readings);
      }
    }
    if (advanced) {
      this.listener.durableSeq(this.durable);
      this.scheduleAck(false);
    }
    if (queue.length === 0 && this.settleWaiters.length > 0) {
      const waiters = this.settleWaiters;
      this.settleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** @internal PendingWrite's */
  writeFailed(entry: PendingWrite, err: unknown): void {
    this.ctx.log.warn(
      { err, deviceId: this.deviceId },
      'store write failed; readings stay unacked and the device is asked to resend',
    );
    const idx = this.queue.indexOf(entry);
    for (let i = idx; i < this.queue.length; i++) this.queue[i]!.abandoned = true;
    this.queue.length = idx;
    // Readings taken after the failed ones but not handed over yet go too: the device resends them.
    this.open = null;
    this.openScheduled = false;
    this.acceptedSeq = idx > 0 ? this.queue[idx - 1]!.seq : this.durable;
    this.advance();
    // §7.4: not durable, so not acked; the device resends after the pause.
    if (this.state.kind !== 'closed') this.refuse('STORE_BUSY', this.ctx.clock.now(), 1, this.acceptedSeq + 1);
  }

  /**
   * §7.3.4: a transport that coalesces ACKs (coalesceAcks) reports once ACK_LINGER_MS have passed since the
   * oldest reading it would acknowledge was handed to the sink (the time its commit took counts), or at the end
   * of the turn once ACK_EVERY readings wait, when that time is already up, or when the previous advance is a
   * linger or more ago; others (and a duplicate's ACK, §7.2) at the end of the turn. Every write that completes
   * in one turn shares one report either way.
   */
  private scheduleAck(force: boolean): void {
    if (force) this.ackForced = true;
    // A device whose readings became durable less often than the linger would gain nothing from it: its
    // next reading would not arrive in time to share the ACK, so it is acked at once.
    const now = this.ctx.clock.now();
    const lingerMs = this.ctx.turn.lingerMs;
    const sparse = now - this.lastAdvanceAt >= lingerMs;
    this.lastAdvanceAt = now;
    const waitMs = this.unreportedSince === null ? lingerMs : this.unreportedSince + lingerMs - now;
    if (
      force ||
      !this.reporter.coalesceAcks ||
      sparse ||
      waitMs <= 0 ||
      this.durable - this.lastReported >= ACK_EVERY
    ) {
      if (!this.ackScheduled) {
        this.ackScheduled = true;
        this.ctx.turn.last(this.flushAckTask);
      }
    } else if (!this.ackLingering) {
      this.ackLingering = true;
      this.ctx.turn.linger(this.lingerAckTask, waitMs);
    }
  }

  flush(): void {
    this.closeOpen();
    this.flushAck();
  }

  /** Reports the durable seq now if it moved (or a duplicate asked for it). §7.3 */
  private flushAck(): void {
    if (this.state.kind === 'closed') return;
    if (this.durable > this.lastReported || (this.ackForced && this.durable > 0)) {
      this.lastReported = this.durable;
      this.unreportedSince = null;
      this.reporter.onDurable(this.durable);
    }
    this.ackForced = false;
  }

  settled(): Promise<void> {
    this.closeOpen();
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  close(): void {
    this.state = { kind: 'closed' };
  }
}
