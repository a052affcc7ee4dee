/**
 * One device WebSocket connection: HELLO/WELCOME, reading acceptance with cumulative ACKs after
 * durability, flow control, commands, heartbeat, closing. Section numbers (§) are docs/protocol.md.
 *
 * Acceptance keeps seq order: the valid readings a connection delivers in one turn of the event loop
 * go to the sink as one accept(); completions are applied in arrival order, and the durable seq (what ACK reports) only advances over
 * a contiguous prefix of completed writes. A failed write drops everything after it and answers
 * BACKOFF STORE_BUSY, so the device resends from its oldest unacked reading and no ACK can ever skip a
 * reading that did not become durable.
 *
 * After a BACKOFF the hub takes readings again only where the device's resend begins (§7.4.5), never
 * over a reading it refused or ignored itself; a gap the device made (its buffer dropped the oldest, §7.5)
 * is taken as it comes.
 */
import type { WebSocket } from 'ws';
import {
  DEFAULT_LIMITS,
  decodeDeviceFrame,
  encodeHubFrame,
  errorInfo,
  FrameError,
  type CommandResultFrame,
  type DeltaContext,
  type DeviceFrame,
  type HelloFrame,
  type HubFrame,
  type Limits,
  type Reading,
} from '@tendril/device-sdk';
import type { TimerHandle } from '../clock.js';
import type { DeviceRecord } from '../registry.js';
import type { StoredReading } from '../storage/types.js';
import type { DeviceChannel } from './channel.js';
import { TokenBucket } from './rate-limit.js';
import { Declarations, type RejectionSink, type ValidationCode } from './validate.js';

type State = 'awaitingHello' | 'authenticating' | 'ready' | 'closing';

interface PendingWrite {
  /** Highest seq covered by this entry (readings of one frame, valid or rejected). */
  seq: number;
  /** Valid readings handed to the sink; null when every reading of the frame was rejected. */
  readings: StoredReading[] | null;
  done: boolean;
  /** Dropped after an earlier write failed: its completion must not move the durable seq. */
  abandoned: boolean;
}

/** Longest a HELLO that replaces a connection waits for the old connection's writes. */
const REPLACE_SETTLE_MS = 5000;
const OPEN = 1;
const kConnection = Symbol('tendril.deviceConnection');
type TaggedSocket = WebSocket & { [kConnection]: DeviceConnection };

export class DeviceConnection implements RejectionSink {
  deviceId: string | null = null;
  private device: DeviceRecord | null = null;
  private state: State = 'awaitingHello';
  private epoch = 0;
  private readonly ctx: DeltaContext = { prevSeq: 0, prevTs: 0 };
  private declarations: Declarations | null = null;
  private bucket: TokenBucket | null = null;
  /** Highest seq durable for (device, epoch) as this connection knows it; what ACK reports. */
  private durableSeq = 0;
  /** Highest seq handed to the sink (or rejected) on this connection; readings at or below are duplicates. */
  private acceptedSeq = 0;
  private lastAckSent = 0;
  private ackScheduled = false;
  private ackForced = false;
  private readonly queue: PendingWrite[] = [];
  /** Valid readings taken in this turn of the event loop, not yet handed to the sink. */
  private open: StoredReading[] | null = null;
  private openScheduled = false;
  private settleWaiters: Array<() => void> = [];
  /** After BACKOFF: readings are ignored until pauseUntil, then until the device's resend begins. */
  private resyncing = false;
  /** While resyncing: the lowest seq above acceptedSeq the hub refused or ignored; no reading may skip it. */
  private resendFrom = 0;
  private pauseUntil = 0;
  private backoffCode: 'RATE_LIMITED' | 'STORE_BUSY' = 'RATE_LIMITED';
  private helloTimer: TimerHandle | null = null;
  private awaitingPong = false;
  /** Why the connection ends (presence reason); null until known. */
  private endReason: string | null = null;
  private counted = false;
  private replacedOther = false;
  private isClosed = false;
  private closedWaiters: Array<() => void> | null = null;
  private readonly limits: Partial<Limits> | undefined;

  constructor(
    private readonly channel: DeviceChannel,
    private readonly socket: WebSocket,
    readonly remote: string | null,
  ) {
    // Passing no limits keeps the codec on its precomputed defaults (no per-frame allocation).
    const maxFrameBytes = channel.opts.maxFrameBytes;
    this.limits = maxFrameBytes === DEFAULT_LIMITS.maxFrameBytes ? undefined : { maxFrameBytes };
  }

  /** §7.1.1: ERROR {code, seq, alias} for a rejected value (or reading, alias null). */
  rejectValue(code: ValidationCode, seq: number, alias: number | null, message: string): void {
    this.channel.opts.metrics.rejectedBy(code).inc();
    this.send({ type: 'error', code, seq, alias, message });
  }

  // Socket listeners shared by every connection (no closures per connection): `this` is the socket.
  private static onSocketMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
    (this as TaggedSocket)[kConnection].onMessage(data, isBinary);
  }
  private static onSocketPong(this: WebSocket): void {
    const conn = (this as TaggedSocket)[kConnection];
    conn.awaitingPong = false;
    // An idle device is still seen: its pongs count for presence.lastSeen.
    if (conn.device !== null && conn.state === 'ready') conn.device.presence.lastSeen = conn.channel.opts.clock.now();
  }
  private static onSocketErrorEvent(this: WebSocket, err: Error & { code?: string }): void {
    (this as TaggedSocket)[kConnection].onSocketError(err);
  }
  private static onSocketClose(this: WebSocket, code: number): void {
    (this as TaggedSocket)[kConnection].onClose(code);
  }

  /** Stops reading frames until resumeReading() (see DeviceChannel.noteFrame). False if it was not reading. */
  pauseReading(): boolean {
    if (this.isClosed || this.socket.isPaused || this.socket.readyState !== this.socket.OPEN) return false;
    this.socket.pause();
    return true;
  }

  resumeReading(): void {
    if (!this.isClosed) this.socket.resume();
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  start(): void {
    const s = this.socket as TaggedSocket;
    s[kConnection] = this;
    s.on('message', DeviceConnection.onSocketMessage);
    s.on('pong', DeviceConnection.onSocketPong);
    s.on('error', DeviceConnection.onSocketErrorEvent);
    s.on('close', DeviceConnection.onSocketClose);
    // §6.2
    this.helloTimer = this.channel.opts.timers.setTimeout(() => {
      this.helloTimer = null;
      if (this.state === 'awaitingHello') this.fail('HELLO_TIMEOUT', `no HELLO within ${this.channel.opts.helloTimeoutMs} ms of the upgrade`);
    }, this.channel.opts.helloTimeoutMs);
  }

  // ---- receiving ----

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closing') return;
    this.channel.noteFrame(this);
    const { metrics, clock } = this.channel.opts;
    const count = metrics.count;
    count.bytesIn += data.length;
    // §1.2.3
    if (!isBinary) return this.fail('TEXT_FRAME', 'text message on the device channel: every frame is one binary message (§1.2)');
    let frame: DeviceFrame;
    const prevSeq = this.ctx.prevSeq;
    try {
      // §5.1.5: decoding advances the delta context even for readings that are then ignored.
      frame = decodeDeviceFrame(data, this.ctx, this.limits);
    } catch (err) {
      // §9.1.2: every decoding failure is fatal.
      if (err instanceof FrameError) return this.fail(err.code, err.message);
      return this.internalError(err);
    }
    count.framesIn[data[0]!]!++;
    const now = clock.now();
    try {
      switch (this.state) {
        case 'awaitingHello':
          // §3.2.1
          if (frame.type !== 'hello') return this.fail('UNEXPECTED_FRAME', `the first frame must be HELLO, got ${frame.type}`);
          void this.onHello(frame).catch((err: unknown) => this.internalError(err));
          return;
        case 'authenticating':
          // §6.1.4
          return this.fail('UNEXPECTED_FRAME', `${frame.type} arrived before WELCOME; send nothing after HELLO until WELCOME`);
        case 'ready':
          this.device!.presence.lastSeen = now;
          switch (frame.type) {
            case 'reading':
              return this.onReadings([frame], now, prevSeq);
            case 'batch':
              return this.onReadings(frame.readings, now, prevSeq);
            case 'commandResult':
              return this.onCommandResult(frame, now);
            case 'status':
              return this.onStatus(frame.dropped);
            case 'hello':
              return this.fail('UNEXPECTED_FRAME', 'a second HELLO on the same connection');
          }
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  private async onHello(hello: HelloFrame): Promise<void> {
    const { registry, presence, clock, timers, metrics } = this.channel.opts;
    this.state = 'authenticating';
    this.clearHelloTimer();
    // §6.1.2: unknown id and wrong token take the same path and get the same answer.
    const device = registry.authenticate(hello.deviceId, hello.token);
    if (device === null) return this.fail('AUTH_FAILED', 'unknown device or wrong token');
    if (device.disabled) return this.fail('DEVICE_DISABLED', 'an operator disabled this device');
    if (this.channel.shuttingDown) return this.fail('SHUTTING_DOWN', 'the hub is shutting down; reconnect later');
    this.device = device;
    this.deviceId = device.id;
    const older = this.channel.byDevice.get(device.id);
    this.channel.byDevice.set(device.id, this);
    if (older !== undefined && older !== this) {
      // §6.4: the newer connection wins. Its WELCOME waits until what the older one took is durable,
      // so WELCOME.ackedSeq counts those readings and the device does not resend them.
      this.replacedOther = true;
      older.fail('REPLACED', 'a newer connection for this device id replaced this one', 'REPLACED');
      let timer: TimerHandle | undefined;
      await Promise.race([
        older.settled(),
        new Promise<void>((resolve) => {
          timer = timers.setTimeout(resolve, REPLACE_SETTLE_MS);
        }),
      ]);
      if (timer !== undefined) timers.clearTimeout(timer);
      if (this.state !== 'authenticating') return; // closed or replaced in turn meanwhile
    }
    const now = clock.now();
    device.firmware = hello.firmware;
    device.sdk = hello.sdk;
    device.metrics = hello.metrics;
    device.dropped = hello.dropped;
    registry.setEpoch(device, hello.epoch);
    this.epoch = hello.epoch;
    // §6.3.4 / §5.1.2: resume after the durable seq of this epoch (0 for a new epoch).
    const acked = device.ackedSeq;
    this.durableSeq = this.acceptedSeq = this.lastAckSent = acked;
    this.ctx.prevSeq = acked;
    this.ctx.prevTs = hello.clock;
    this.declarations = new Declarations(hello.metrics);
    const { deviceRate, deviceBurst, heartbeatMs, maxFrameBytes } = this.channel.opts;
    this.bucket = new TokenBucket(deviceRate, deviceBurst, now);
    this.send({ type: 'welcome', serverTime: now, ackedSeq: acked, heartbeatMs, maxFrameBytes, maxBatch: DEFAULT_LIMITS.maxBatch, maxRate: deviceRate });
    this.state = 'ready';
    this.counted = true;
    metrics.count.devicesConnected++;
    presence.online(device, 'ws', this.remote, this.replacedOther ? 'REPLACED' : null);
    const events = this.channel.events;
    events.emit('online', { deviceId: device.id, remote: this.remote, since: now, replaced: this.replacedOther });
    events.emit('status', { deviceId: device.id, dropped: hello.dropped });
  }

  /** `prevSeq` is the seq of the reading decoded on this connection just before these (§5.1.3). */
  private onReadings(readings: readonly Reading[], now: number, prevSeq: number): void {
    // §6.6.3: a hub that is shutting down takes no more readings (they stay unacked; the device resends).
    if (this.channel.shuttingDown) return;
    const { sink, metrics } = this.channel.opts;
    const declarations = this.declarations!;
    let taken = false;
    let ackDuplicate = false;
    let prev = prevSeq;
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i]!;
      const stepsBack = r.seq <= prev;
      prev = r.seq;
      if (this.resyncing) {
        // §7.4.2: ignore every reading until the pause has elapsed.
        if (now < this.pauseUntil) {
          if (r.seq > this.acceptedSeq && r.seq < this.resendFrom) this.resendFrom = r.seq;
          continue;
        }
        // §7.4.5: take readings again from the first that skips nothing the hub refused or ignored, or
        // that steps back to a reading already sent: the start of a resend, which begins at the device's
        // oldest unacked reading (above resendFrom only if the device dropped those, §7.5). Anything else
        // was sent before the device saw BACKOFF; taking it would let a cumulative ACK cover readings
        // never stored, so ask for the resend again.
        if (r.seq > this.resendFrom && !stepsBack) {
          this.backoff(this.backoffCode, now, readings.length - i, r.seq);
          continue;
        }
        this.resyncing = false;
      }
      // §7.2: durable or in flight already.
      if (r.seq <= this.acceptedSeq) {
        metrics.count.readingsDuplicate++;
        if (r.seq <= this.durableSeq) ackDuplicate = true;
        continue;
      }
      // §7.4.1
      if (!sink.accepting) {
        this.backoff('STORE_BUSY', now, readings.length - i, r.seq);
        continue;
      }
      if (!this.bucket!.take(now)) {
        this.backoff('RATE_LIMITED', now, readings.length - i, r.seq);
        continue;
      }
      const ts = r.ts ?? now; // §7.1.4: untimed readings get the hub's arrival time
      const values = declarations.validate(r, r.ts !== null, ts, now, this);
      this.acceptedSeq = r.seq;
      taken = true;
      if (values.length > 0) (this.open ??= []).push({ deviceId: this.deviceId!, epoch: this.epoch, seq: r.seq, ts, values });
    }
    if (taken && !this.openScheduled) {
      // One accept() per connection per turn of the event loop: frames read together travel together.
      this.openScheduled = true;
      this.channel.scheduleOpen(this);
    }
    if (ackDuplicate) this.scheduleAck(true);
  }

  /** §7.4.1: `refusedSeq` is the first reading not taken; the resync waits for a resend that covers it. */
  private backoff(code: 'RATE_LIMITED' | 'STORE_BUSY', now: number, refused: number, refusedSeq: number): void {
    let pauseMs: number;
    if (code === 'RATE_LIMITED') {
      // Pause until the bucket holds enough for the refused readings, or a tenth of a second's worth.
      const rate = this.channel.opts.deviceRate;
      pauseMs = this.bucket!.msUntil(Math.max(refused, Math.ceil(rate / 10)), now);
    } else {
      pauseMs = this.channel.storeBusyPauseMs;
    }
    this.resendFrom = this.resyncing ? Math.min(this.resendFrom, refusedSeq) : refusedSeq;
    this.resyncing = true;
    this.backoffCode = code;
    this.pauseUntil = now + pauseMs;
    this.send({ type: 'backoff', code, pauseMs });
  }

  /** Hands the readings taken since the last call to the sink as one entry of the queue. */
  closeOpen(): void {
    if (!this.openScheduled) return;
    this.openScheduled = false;
    const readings = this.open;
    this.open = null;
    this.enqueue(readings, this.acceptedSeq);
  }

  private enqueue(readings: StoredReading[] | null, seq: number): void {
    const entry: PendingWrite = { seq, readings, done: readings === null, abandoned: false };
    this.queue.push(entry);
    if (readings === null) {
      this.advance();
      return;
    }
    this.channel.opts.sink.accept(readings).then(
      () => {
        if (entry.abandoned) return;
        entry.done = true;
        this.advance();
      },
      (err: unknown) => {
        if (!entry.abandoned) this.writeFailed(entry, err);
      },
    );
  }

  /** Moves the durable seq over the completed prefix of the queue, then schedules one ACK. */
  private advance(): void {
    const { registry, presence, metrics } = this.channel.opts;
    const events = this.channel.events;
    const queue = this.queue;
    let advanced = false;
    while (queue.length > 0 && queue[0]!.done) {
      const entry = queue.shift()!;
      if (entry.seq > this.durableSeq) {
        this.durableSeq = entry.seq;
        advanced = true;
      }
      if (entry.readings !== null) {
        metrics.count.readingsAccepted += entry.readings.length;
        presence.stored(this.deviceId!, entry.readings);
        if (events.has('readings')) events.emit('readings', { deviceId: this.deviceId!, epoch: this.epoch, readings: entry.readings });
      }
    }
    if (advanced) {
      registry.setAckedSeq(this.device!, this.epoch, this.durableSeq);
      this.scheduleAck(false);
    }
    if (queue.length === 0 && this.settleWaiters.length > 0) {
      const waiters = this.settleWaiters;
      this.settleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private writeFailed(entry: PendingWrite, err: unknown): void {
    this.channel.opts.log.warn({ err, deviceId: this.deviceId }, 'store write failed; readings stay unacked and the device is asked to resend');
    const idx = this.queue.indexOf(entry);
    for (let i = idx; i < this.queue.length; i++) this.queue[i]!.abandoned = true;
    this.queue.length = idx;
    // Readings taken after the failed ones but not handed over yet go too: the device resends them.
    this.open = null;
    this.openScheduled = false;
    this.acceptedSeq = idx > 0 ? this.queue[idx - 1]!.seq : this.durableSeq;
    this.advance();
    // §7.4: not durable, so not acked; the device resends after the pause.
    if (this.state === 'ready') this.backoff('STORE_BUSY', this.channel.opts.clock.now(), 1, this.acceptedSeq + 1);
  }

  private scheduleAck(force: boolean): void {
    if (force) this.ackForced = true;
    if (!this.ackScheduled) {
      this.ackScheduled = true;
      // Coalesce: every write that completes in this turn of the event loop shares one ACK.
      this.channel.scheduleAck(this);
    }
  }

  /** Sends the cumulative ACK now if the durable seq moved (or a duplicate asked for it). §7.3 */
  flushAck(): void {
    this.ackScheduled = false;
    if (this.state !== 'ready') return;
    if (this.durableSeq > this.lastAckSent || (this.ackForced && this.durableSeq > 0)) {
      this.lastAckSent = this.durableSeq;
      this.send({ type: 'ack', seq: this.durableSeq });
      this.channel.opts.metrics.count.acksSent++;
    }
    this.ackForced = false;
  }

  /** Resolves once every reading this connection handed to the sink is durable or failed. */
  settled(): Promise<void> {
    this.closeOpen();
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  private onCommandResult(frame: CommandResultFrame, now: number): void {
    // §8.2.4
    if (!this.channel.claimCommandResult(this.deviceId!, frame.commandId, frame.status)) {
      this.send({ type: 'error', code: 'UNKNOWN_COMMAND_ID', seq: 0, alias: null, message: `command ${frame.commandId} was not sent to this device` });
      return;
    }
    this.channel.events.emit('commandResult', { deviceId: this.deviceId!, commandId: frame.commandId, status: frame.status, detail: frame.detail, receivedAt: now });
  }

  /** §7.5 */
  private onStatus(dropped: number): void {
    const device = this.device!;
    if (device.dropped === dropped) return;
    device.dropped = dropped;
    this.channel.opts.registry.markDirty(device);
    this.channel.events.emit('status', { deviceId: device.id, dropped });
  }

  // ---- heartbeat and closing ----

  /** §6.5.2: called every heartbeatMs. */
  heartbeat(): void {
    if (this.state === 'closing') return;
    if (this.awaitingPong) return this.terminate('HEARTBEAT_LOST');
    this.awaitingPong = true;
    this.socket.ping();
  }

  /**
   * §6.6.1: ERROR {code} then close with the registry's close code and the code as reason.
   * `presenceReason` is what the device's presence shows afterwards (defaults to the code).
   */
  fail(code: string, message: string, presenceReason: string = code): void {
    if (this.state === 'closing') return;
    this.state = 'closing';
    this.endReason = presenceReason;
    this.clearHelloTimer();
    this.send({ type: 'error', code, seq: 0, alias: null, message });
    this.socket.close(errorInfo(code)?.close ?? 1011, code);
  }

  /** Ends the connection without a close handshake. */
  terminate(reason: string): void {
    if (this.socket.readyState === 3) return;
    if (this.state !== 'closing' || this.endReason === null) this.endReason = reason;
    this.state = 'closing';
    this.socket.terminate();
  }

  private internalError(err: unknown): void {
    this.channel.opts.log.error({ err, deviceId: this.deviceId }, 'device connection failed');
    this.fail('INTERNAL_ERROR', 'the hub failed while handling this connection');
  }

  private onSocketError(err: Error & { code?: string }): void {
    // The WebSocket layer refused a message (too big, bad framing) and is closing with its own code.
    if (this.endReason === null) this.endReason = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'FRAME_TOO_LARGE' : 'PROTOCOL_ERROR';
    this.state = 'closing';
  }

  private onClose(code: number): void {
    const { metrics, presence } = this.channel.opts;
    this.state = 'closing';
    this.clearHelloTimer();
    this.channel.forget(this);
    const reason = this.endReason ?? peerCloseReason(code);
    metrics.closedBy(reason).inc();
    if (this.counted) metrics.count.devicesConnected--;
    // A replaced connection leaves presence to its successor: no offline flap (§6.4).
    if (this.device !== null && (this.counted || this.replacedOther) && reason !== 'REPLACED') {
      presence.offline(this.device, reason);
      this.channel.events.emit('offline', { deviceId: this.device.id, reason, since: this.device.presence.since ?? 0, lastSeen: this.device.presence.lastSeen });
    }
    this.isClosed = true;
    const waiters = this.closedWaiters;
    this.closedWaiters = null;
    if (waiters) for (const w of waiters) w();
  }

  /** Resolves once the socket has closed. */
  closed(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolve) => (this.closedWaiters ??= []).push(resolve));
  }

  private clearHelloTimer(): void {
    if (this.helloTimer !== null) {
      this.channel.opts.timers.clearTimeout(this.helloTimer);
      this.helloTimer = null;
    }
  }

  private send(frame: HubFrame): void {
    this.sendBytes(encodeHubFrame(frame));
  }

  sendBytes(bytes: Uint8Array): void {
    if (this.socket.readyState !== OPEN) return;
    this.socket.send(bytes);
    const count = this.channel.opts.metrics.count;
    count.framesOut[bytes[0]!]!++;
    count.bytesOut += bytes.length;
  }
}

/** Presence reason for a close the device started (or a dropped TCP connection). */
function peerCloseReason(code: number): string {
  switch (code) {
    case 1000:
    case 1001:
    case 1005:
      return 'CLOSED';
    case 1006:
      return 'CONNECTION_LOST';
    case 1009:
      return 'FRAME_TOO_LARGE';
    default:
      return 'PROTOCOL_ERROR';
  }
}
