/**
 * One device WebSocket connection: the tendril.v1 framing around a transport-neutral IngestSession.
 * It decodes frames, runs the handshake (HELLO -> attach -> WELCOME), hands readings to the session, and
 * turns the session's reports into ACK, BACKOFF and ERROR frames; it also answers commands, keeps the
 * heartbeat and closes with the right code. Dedupe, validation, rate limits and durability are the
 * session's (hub/src/ingest/). Section numbers (§) are docs/protocol.md.
 *
 * The connection's state machine:
 *
 *   awaitingHello --HELLO--> attaching --attached--> ready
 *         \______________________\_____________________\____ fail/terminate/peer close --> closing
 */
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import {
  DEFAULT_LIMITS,
  decodeDeviceFrame,
  encodeHubFrame,
  errorInfo,
  FrameError,
  FrameType,
  type CommandResultFrame,
  type DeltaContext,
  type DeviceFrame,
  type HelloFrame,
  type HubFrame,
  type Limits,
  type Reading,
} from '@tendril/device-sdk/codec';
import type { TimerHandle } from '../core/clock.js';
import { AttachError } from '../devices/sessions.js';
import type { AttachedDevice, DetachRequest, OutgoingCommand, TransportHandle } from '../devices/types.js';
import type { IngestReporter, RefusalCode, ValidationCode } from '../ingest/types.js';
import {
  CLOSE_HANDSHAKE_MS,
  MAX_PENDING_PONGS,
  peerCloseReason,
  WS_ERROR_REASONS,
  WS_LAYER_CLOSES,
} from './close-codes.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { DeviceSessions } from '../devices/sessions.js';
import type { HubMetrics } from '../ops/metrics.js';
import { ackMessage, directSocket, receiveSmallFrames, SMALL_HEADER_BYTES, writeSmallFrame } from './small-frame.js';
import type { Clock, Timers } from '../core/clock.js';

type State = 'awaitingHello' | 'attaching' | 'ready' | 'closing';

/** What a connection needs from the channel that holds it (DeviceChannel implements it). */
export interface ConnectionHost {
  readonly opts: {
    registry: DeviceRegistry;
    sessions: DeviceSessions;
    metrics: HubMetrics;
    clock: Clock;
    timers: Timers;
    heartbeatMs: number;
    helloTimeoutMs: number;
    deviceRate: number;
    maxFrameBytes: number;
    log: FastifyBaseLogger;
  };
  readonly maxBufferedBytes: number;
  noteFrame(conn: DeviceConnection): void;
  hasDeviceSlot(conn: DeviceConnection, deviceId: string): boolean;
  authenticated(conn: DeviceConnection): void;
  authFailed(conn: DeviceConnection): void;
  authThrottled(conn: DeviceConnection): boolean;
  readonly authThrottleDelayMs: number;
  readonly authFailureWindowMs: number;
  errorBudget(conn: DeviceConnection): boolean;
  forget(conn: DeviceConnection): void;
}

const OPEN = 1;
/** §6.5.2: heartbeats a Ping may go unanswered while the device keeps delivering frames. */
export const PONG_WAIT_BEATS = 5;

const kConnection = Symbol('tendril.deviceConnection');
type TaggedSocket = WebSocket & { [kConnection]: DeviceConnection };

export class DeviceConnection implements TransportHandle, IngestReporter {
  readonly transport = 'ws' as const;
  /** §7.3.4: one ACK frame may cover the readings of several group commits. */
  readonly coalesceAcks = true;
  private state: State = 'awaitingHello';
  private attached: AttachedDevice | null = null;
  private readonly ctx: DeltaContext = { prevSeq: 0, prevTs: 0 };
  private helloTimer: TimerHandle | null = null;
  /** Payload of the hub's last Ping still unanswered, or null (§6.5.2: only its Pong proves the device reads). */
  private pingPayload: Buffer | null = null;
  private pingCounter = 0;
  /** A frame arrived since the last heartbeat (§6.5.2: liveness while the Pong queues behind readings). */
  private heard = false;
  /** Heartbeats the outstanding Ping has waited while frames kept arriving. */
  private pongWaits = 0;
  /** Why the connection ends (presence reason); null until known. */
  private endReason: string | null = null;
  private isClosed = false;
  private closedWaiters: Array<() => void> | null = null;
  private readonly limits: Partial<Limits> | undefined;
  private terminateSocket: () => void = () => this.socket.terminate();
  private closeTimer: TimerHandle | null = null;
  private readonly one: Reading[] = [];

  constructor(
    private readonly channel: ConnectionHost,
    private readonly socket: WebSocket,
    readonly remote: string | null,
  ) {
    // Passing no limits keeps the codec on its precomputed defaults (no per-frame allocation).
    const maxFrameBytes = channel.opts.maxFrameBytes;
    this.limits = maxFrameBytes === DEFAULT_LIMITS.maxFrameBytes ? undefined : { maxFrameBytes };
  }

  get deviceId(): string | null {
    return this.attached?.deviceId ?? null;
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  /** True until HELLO was accepted or the connection ended: the socket holds a pre-authentication slot. */
  get unauthenticated(): boolean {
    return this.state === 'awaitingHello' || this.state === 'attaching';
  }

  // Socket listeners shared by every connection (no closures per connection): `this` is the socket.
  private static onSocketMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
    (this as TaggedSocket)[kConnection].onMessage(data, isBinary);
  }
  private static onSocketPong(this: WebSocket, data: Buffer): void {
    (this as TaggedSocket)[kConnection].onPong(data);
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

  start(): void {
    const s = this.socket as TaggedSocket;
    s[kConnection] = this;
    this.explainWebSocketLayerCloses();
    s.on('message', DeviceConnection.onSocketMessage);
    // Small frames (every reading frame of a few values) skip ws's Receiver; the rest still goes through it.
    receiveSmallFrames(s);
    s.on('pong', DeviceConnection.onSocketPong);
    s.on('error', DeviceConnection.onSocketErrorEvent);
    s.on('close', DeviceConnection.onSocketClose);
    // §6.2
    const { timers, helloTimeoutMs } = this.channel.opts;
    this.helloTimer = timers.setTimeout(() => {
      this.helloTimer = null;
      if (this.state === 'awaitingHello')
        this.fail('HELLO_TIMEOUT', `no HELLO within ${helloTimeoutMs} ms of the upgrade`);
    }, helloTimeoutMs);
  }

  /**
   * §10.1: the WebSocket layer (ws) refuses some messages itself and closes with a bare code, or drops the
   * TCP connection after a flood of Pings. Give each of those ends its code and reason, as the hub's own
   * closes have, so a device (and presence) can tell them from a network failure.
   */
  private explainWebSocketLayerCloses(): void {
    const socket = this.socket;
    const close = socket.close.bind(socket);
    const terminate = socket.terminate.bind(socket);
    this.terminateSocket = terminate;
    socket.close = (code?: number, reason?: string | Buffer) => {
      if (reason !== undefined || code === undefined) return close(code, reason);
      // Only ws itself closes without a reason: the hub always names the code (fail()).
      const explained = WS_LAYER_CLOSES[code] ?? { code, reason: 'PROTOCOL_ERROR' };
      if (this.endReason === null) this.endReason = explained.reason;
      this.state = 'closing';
      close(explained.code, explained.reason);
    };
    // ws terminates a peer whose Pings outrun the Pongs it can send (maxPendingAutoPongs).
    socket.terminate = () =>
      this.fail(
        'TOO_MANY_PINGS',
        `more than ${MAX_PENDING_PONGS} Pings arrived before the hub could answer them; send Pings sparingly (§6.5.5)`,
      );
  }

  // ---- receiving ----

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closing') return;
    this.heard = true;
    this.channel.noteFrame(this);
    const { metrics, clock } = this.channel.opts;
    const count = metrics.count;
    count.bytesIn += data.length;
    // §1.2.3
    if (!isBinary)
      return this.fail('TEXT_FRAME', 'text message on the device channel: every frame is one binary message (§1.2)');
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
    try {
      switch (this.state) {
        case 'awaitingHello':
          // §3.2.1
          if (frame.type !== 'hello')
            return this.fail('UNEXPECTED_FRAME', `the first frame must be HELLO, got ${frame.type}`);
          void this.onHello(frame).catch((err: unknown) => this.internalError(err));
          return;
        case 'attaching':
          // §6.1.4: nothing may follow HELLO before WELCOME, not even in the same TCP segment.
          return this.fail(
            'UNEXPECTED_FRAME',
            `${frame.type} arrived before WELCOME; send nothing after HELLO until WELCOME`,
          );
        case 'ready':
          return this.onReadyFrame(frame, prevSeq, clock.now());
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  private onReadyFrame(frame: DeviceFrame, prevSeq: number, now: number): void {
    const attached = this.attached!;
    attached.seen(now);
    switch (frame.type) {
      case 'reading':
        this.one[0] = frame; // ingest() keeps the readings, never the array
        return attached.ingest.ingest(this.one, prevSeq, now);
      case 'batch':
        return attached.ingest.ingest(frame.readings, prevSeq, now);
      case 'commandResult':
        return this.onCommandResult(frame, now);
      case 'status':
        return attached.status(frame.dropped);
      case 'hello':
        return this.fail('UNEXPECTED_FRAME', 'a second HELLO on the same connection');
    }
  }

  private async onHello(hello: HelloFrame): Promise<void> {
    const { registry, sessions, metrics, heartbeatMs, maxFrameBytes, deviceRate } = this.channel.opts;
    this.state = 'attaching';
    this.clearHelloTimer();
    // §6.1.6: an address that failed too often gets a slow answer and no check of its token.
    if (this.channel.authThrottled(this)) {
      const delay = this.channel.authThrottleDelayMs;
      // In the hello timer's slot: a socket that closes first clears it (onClose) instead of being held.
      this.helloTimer = this.channel.opts.timers.setTimeout(() => {
        this.helloTimer = null;
        this.fail(
          'AUTH_THROTTLED',
          `too many failed HELLOs from this address; retry in ${Math.ceil(this.channel.authFailureWindowMs / 1000)} s at most`,
        );
      }, delay);
      return;
    }
    // §6.1.2: unknown id and wrong token take the same path and get the same answer.
    const device = registry.authenticate(hello.deviceId, hello.token);
    if (device === null) {
      this.channel.authFailed(this);
      return this.fail('AUTH_FAILED', 'unknown device or wrong token');
    }
    if (!this.channel.hasDeviceSlot(this, device.id)) return;
    let attached: AttachedDevice;
    try {
      const info = {
        epoch: hello.epoch,
        metrics: hello.metrics,
        firmware: hello.firmware,
        sdk: hello.sdk,
        dropped: hello.dropped,
      };
      attached = await sessions.attach(device.id, info, this, this);
    } catch (err) {
      if (err instanceof AttachError) return this.fail(err.code, err.message, err.code);
      throw err;
    }
    // Closed (or replaced in turn) while the attach waited for an older connection's writes.
    if (this.state !== 'attaching') return attached.detach(this.endReason ?? 'CLOSED');
    this.attached = attached;
    const acked = attached.ingest.ackedSeq;
    this.ctx.prevSeq = acked;
    this.ctx.prevTs = hello.clock;
    const serverTime = this.channel.opts.clock.now();
    this.send({
      type: 'welcome',
      serverTime,
      ackedSeq: acked,
      heartbeatMs,
      maxFrameBytes,
      maxBatch: DEFAULT_LIMITS.maxBatch,
      maxRate: deviceRate,
    });
    this.state = 'ready';
    metrics.count.devicesConnected++;
    this.channel.authenticated(this);
    attached.online();
  }

  private onCommandResult(frame: CommandResultFrame, now: number): void {
    // §8.2.4
    if (!this.attached!.commandResult(frame.commandId, frame.status, frame.detail, now)) {
      this.send({
        type: 'error',
        code: 'UNKNOWN_COMMAND_ID',
        seq: 0,
        alias: null,
        message: `command ${frame.commandId} was not sent to this device`,
      });
    }
  }

  // ---- what the ingest session reports (IngestReporter) ----

  /** §7.3: one cumulative ACK. */
  onDurable(seq: number): void {
    if (this.state !== 'ready' || this.socket.readyState !== OPEN) return;
    const message = ackMessage(seq);
    const raw = directSocket(this.socket);
    if (raw) raw.write(message);
    else this.socket.send(message.subarray(SMALL_HEADER_BYTES));
    this.sent(FrameType.ACK, message.length - SMALL_HEADER_BYTES);
    this.channel.opts.metrics.count.acksSent++;
  }

  /** §7.4.1 */
  onRefused(code: RefusalCode, pauseMs: number): void {
    this.send({ type: 'backoff', code, pauseMs });
  }

  /** §7.1.1: ERROR {code, seq, alias}, within the connection's budget of ERROR frames (§7.1.5). */
  onRejected(code: ValidationCode, seq: number, alias: number | null, message: string): void {
    if (!this.channel.errorBudget(this)) return;
    this.send({ type: 'error', code, seq, alias, message });
  }

  // ---- what the devices layer asks (TransportHandle) ----

  sendCommand(command: OutgoingCommand): boolean {
    if (this.state !== 'ready') return false;
    this.sendBytes(
      encodeHubFrame({
        type: 'command',
        commandId: command.commandId,
        name: command.name,
        args: command.args,
        timeoutMs: command.timeoutMs,
      }),
    );
    return true;
  }

  close(reason: DetachRequest, message: string): void {
    // Each request is its own error code, except DELETED: the device is told AUTH_FAILED (§6.1.2).
    this.fail(reason === 'DELETED' ? 'AUTH_FAILED' : reason, message, reason);
  }

  /** Resolves once every reading this connection handed to its session is durable or failed. */
  settled(): Promise<void> {
    return this.attached?.ingest.settled() ?? Promise.resolve();
  }

  /** Sends the pending ACK now (shutdown). */
  flushAck(): void {
    this.attached?.ingest.flush();
  }

  // ---- heartbeat and closing ----

  /**
   * §6.5.2: called every heartbeatMs. Only a Pong that echoes the hub's own Ping proves the device reads;
   * while it is outstanding, frames still arriving prove the device is there (its Pong queues behind them),
   * for PONG_WAIT_BEATS heartbeats at most.
   */
  heartbeat(): void {
    if (this.state === 'closing') return;
    if (this.pingPayload !== null) {
      if (!this.heard || ++this.pongWaits >= PONG_WAIT_BEATS) return this.terminate('HEARTBEAT_LOST');
      this.heard = false;
      return;
    }
    this.heard = false;
    this.pongWaits = 0;
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(++this.pingCounter >>> 0);
    this.pingPayload = payload;
    this.socket.ping(payload);
  }

  private onPong(data: Buffer): void {
    // RFC 6455 §5.5.3 allows unsolicited Pongs; they prove nothing about the device reading what we send.
    if (this.pingPayload === null || !data.equals(this.pingPayload)) return;
    this.pingPayload = null;
    // An idle device is still seen: its pongs count for presence.lastSeen.
    if (this.state === 'ready') this.attached!.seen(this.channel.opts.clock.now());
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
    // §6.6.6: a device that does not answer the close within the bound is cut (ws itself would wait 30 s).
    const timer = this.channel.opts.timers.setTimeout(() => this.terminateSocket(), CLOSE_HANDSHAKE_MS);
    timer.unref?.();
    this.closeTimer = timer;
  }

  /** Ends the connection without a close handshake. */
  terminate(reason: string): void {
    if (this.socket.readyState === 3) return;
    if (this.state !== 'closing' || this.endReason === null) this.endReason = reason;
    this.state = 'closing';
    this.terminateSocket();
  }

  private internalError(err: unknown): void {
    this.channel.opts.log.error({ err, deviceId: this.deviceId }, 'device connection failed');
    this.fail('INTERNAL_ERROR', 'the hub failed while handling this connection');
  }

  private onSocketError(err: Error & { code?: string }): void {
    // The WebSocket layer refused a message (too big, bad framing) and is closing with its own code.
    if (this.endReason === null) this.endReason = WS_ERROR_REASONS[err.code ?? ''] ?? 'PROTOCOL_ERROR';
    this.state = 'closing';
  }

  private onClose(code: number): void {
    const { metrics } = this.channel.opts;
    const wasReady = this.attached !== null;
    this.state = 'closing';
    this.clearHelloTimer();
    this.channel.forget(this);
    if (this.closeTimer !== null) this.channel.opts.timers.clearTimeout(this.closeTimer);
    const reason = this.endReason ?? peerCloseReason(code);
    metrics.closedBy(reason).inc();
    if (wasReady) metrics.count.devicesConnected--;
    // An attach still waiting detaches itself when it completes (onHello).
    this.attached?.detach(reason);
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
    if (!writeSmallFrame(this.socket, bytes)) this.socket.send(bytes);
    this.sent(bytes[0]!, bytes.length);
  }

  /** Counts a frame sent (or queued) to the device, and cuts off a device that does not read. */
  private sent(frameType: number, payloadBytes: number): void {
    const count = this.channel.opts.metrics.count;
    count.framesOut[frameType]!++;
    count.bytesOut += payloadBytes;
    // §9.2: what the hub queues for one device is bounded; a device that does not read is cut off.
    if (this.socket.bufferedAmount > this.channel.maxBufferedBytes) this.slowConsumer();
  }

  private slowConsumer(): void {
    this.channel.opts.log.warn(
      { deviceId: this.deviceId, remote: this.remote, bufferedBytes: this.socket.bufferedAmount },
      'device does not read what the hub sends; closing its connection',
    );
    // The close frame would queue behind what the device does not read: end the TCP connection.
    this.terminate('SLOW_CONSUMER');
  }
}
