/**
 * The device channel: the tendril.v1 transport. It takes upgraded sockets, bounds how many may wait for
 * HELLO (in all and per client address) apart from the device slots, shares each turn of the event loop
 * fairly between sockets, pings every connection (§6.5) and closes them all at shutdown (§6.6.3). What a
 * connection does with its frames is connection.ts; ingest is the devices layer's.
 */
import type { FastifyBaseLogger } from 'fastify';
import { performance } from 'node:perf_hooks';
import type { WebSocket } from 'ws';
import type { Clock, TimerHandle, Timers } from '../core/clock.js';
import type { DeviceSessions } from '../devices/sessions.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { HubMetrics } from '../ops/metrics.js';
import { DeviceConnection, type ConnectionHost } from './connection.js';

export interface DeviceChannelOptions {
  registry: DeviceRegistry;
  sessions: DeviceSessions;
  metrics: HubMetrics;
  clock: Clock;
  timers: Timers;
  heartbeatMs: number;
  helloTimeoutMs: number;
  deviceRate: number;
  maxFrameBytes: number;
  /** Authenticated device connections at once (HUB_MAX_CONNECTIONS). */
  maxConnections: number;
  /** Sockets waiting for HELLO at once, in all (default 1024) and per client address (default 32). §6.1.5 */
  maxPendingHandshakes?: number;
  maxPendingPerAddress?: number;
  /** Bytes the hub may queue for one device before it is cut off as not reading (default 1 MiB). §9.2, §6.6.7 */
  maxBufferedBytes?: number;
  /**
   * Failed HELLOs per client address within authFailureWindowMs (defaults 20 in 60 000 ms) past which HELLOs
   * from that address are answered AUTH_THROTTLED after authThrottleDelayMs (default 1000), unchecked. §6.1.6
   */
  authFailuresPerAddress?: number;
  authFailureWindowMs?: number;
  authThrottleDelayMs?: number;
  /** ERROR frames for rejected values per connection per second, and at once (defaults 20 and 100). §7.1.5 */
  errorFramesPerSecond?: number;
  errorFramesBurst?: number;
  /** Time a turn of the event loop spends on device frames before sockets wait (see noteFrame). Default 3. */
  ingestTurnMs?: number;
  /** Up to this many sockets, a spent ingest budget pauses every one (see noteFrame). Default 256. */
  pauseAllSocketsUpTo?: number;
  /** How long shutdown waits for pending writes, then for devices to answer the close. */
  shutdownGraceMs?: number;
  log: FastifyBaseLogger;
}

/**
 * Time one turn of the event loop spends on device frames before the sockets wait for the next turn
 * (noteFrame). Short enough that the drain into the store keeps InfluxDB busy while devices flood the hub
 * (bench/ingest-influx.mjs: 3 ms beat 8 and 15), long enough that a turn reads many frames.
 */
export const DEFAULT_INGEST_TURN_MS = 3;
/**
 * Up to this many device sockets, a spent ingest budget pauses all of them; past it, only those that
 * delivered frames in that turn or the one before (see noteFrame). A pause and a resume cost a system call
 * each, some 5 µs per socket in all: nothing beside the reads they prevent with a few hundred sockets, several
 * milliseconds a turn with thousands of idle ones.
 */
export const DEFAULT_PAUSE_ALL_SOCKETS_UP_TO = 256;
/** Client addresses whose failed HELLOs are remembered at once (the oldest windows are forgotten first). */
const MAX_TRACKED_ADDRESSES = 10_000;

export class DeviceChannel implements ConnectionHost {
  /** Every open socket, authenticated or not. */
  readonly sockets = new Set<DeviceConnection>();
  readonly maxBufferedBytes: number;
  private readonly maxPendingHandshakes: number;
  private readonly maxPendingPerAddress: number;
  /** Sockets that have not completed HELLO, per client address. */
  private readonly pendingByAddress = new Map<string, number>();
  private pendingCount = 0;
  private readonly pending = new WeakSet<DeviceConnection>();
  /** Connections that completed HELLO. */
  private authenticatedCount = 0;
  readonly authFailuresPerAddress: number;
  readonly authFailureWindowMs: number;
  readonly authThrottleDelayMs: number;
  /** Failed HELLOs per client address in the current window (bounded: see authFailed). */
  private readonly authFailures = new Map<string, { count: number; since: number }>();
  private readonly errorFramesPerSecond: number;
  private readonly errorFramesBurst: number;
  /** ERROR-frame budget per connection: tokens and when they were last refilled. */
  private readonly errorTokens = new WeakMap<DeviceConnection, { tokens: number; at: number }>();
  private readonly ingestTurnMs: number;
  private readonly pauseAllSocketsUpTo: number;
  /** Turns in which the sockets stopped reading for the rest of the turn (tests, diagnostics). */
  pausedTurns = 0;
  /** Sockets paused for the rest of a turn, counted once per pause (tests, diagnostics). */
  socketPauses = 0;
  private heartbeat: TimerHandle | null = null;
  private tickScheduled = false;
  /** When this turn's first frame was read (performance.now()); -1 before it. */
  private turnStart = -1;
  /** Sockets that stopped reading for the rest of this turn (the turn's ingest budget was spent). */
  private pausedSockets: DeviceConnection[] = [];
  /** The turn's budget is spent: every socket that delivers a frame stops reading. */
  private overBudget = false;
  /** Connections that delivered frames this turn, and in the turn before that had any (kept past pauseAllSocketsUpTo sockets). */
  private activeNow = new Set<DeviceConnection>();
  private activeBefore = new Set<DeviceConnection>();
  private readonly endOfTurn = () => {
    this.tickScheduled = false;
    this.turnStart = -1;
    this.overBudget = false;
    const paused = this.pausedSockets;
    if (paused.length > 0) {
      this.pausedSockets = [];
      for (const c of paused) c.resumeReading();
    }
    if (this.activeNow.size > 0) {
      const before = this.activeBefore;
      before.clear();
      this.activeBefore = this.activeNow;
      this.activeNow = before;
    }
  };
  private closing = false;

  constructor(readonly opts: DeviceChannelOptions) {
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 1024 * 1024;
    this.maxPendingHandshakes = opts.maxPendingHandshakes ?? 1024;
    this.maxPendingPerAddress = opts.maxPendingPerAddress ?? 32;
    this.authFailuresPerAddress = opts.authFailuresPerAddress ?? 20;
    this.authFailureWindowMs = opts.authFailureWindowMs ?? 60_000;
    this.authThrottleDelayMs = opts.authThrottleDelayMs ?? 1000;
    this.errorFramesPerSecond = opts.errorFramesPerSecond ?? 20;
    this.errorFramesBurst = opts.errorFramesBurst ?? 100;
    this.ingestTurnMs = opts.ingestTurnMs ?? DEFAULT_INGEST_TURN_MS;
    this.pauseAllSocketsUpTo = opts.pauseAllSocketsUpTo ?? DEFAULT_PAUSE_ALL_SOCKETS_UP_TO;
    // §6.5: one timer pings every connection; a connection that did not pong since the last ping is dead.
    this.heartbeat = opts.timers.setInterval(() => this.beat(), opts.heartbeatMs);
    this.heartbeat.unref?.();
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  /** Devices that completed HELLO/WELCOME on this channel. */
  get connectedCount(): number {
    return this.authenticatedCount;
  }

  /** The connection that holds `deviceId` (diagnostics and tests; a linear scan). */
  connectionOf(deviceId: string): DeviceConnection | undefined {
    for (const c of this.sockets) if (c.deviceId === deviceId) return c;
    return undefined;
  }

  /** Takes a freshly upgraded socket. */
  accept(socket: WebSocket, remote: string | null): void {
    const conn = new DeviceConnection(this, socket, remote);
    const address = remote ?? '';
    const fromAddress = this.pendingByAddress.get(address) ?? 0;
    this.sockets.add(conn);
    this.pending.add(conn);
    this.pendingCount++;
    this.pendingByAddress.set(address, fromAddress + 1);
    conn.start();
    if (this.closing) conn.fail('SHUTTING_DOWN', 'the hub is shutting down; reconnect later');
    // §6.1.5: sockets that have not sent HELLO take no device slot, and are bounded apart, in all and per address.
    else if (this.pendingCount > this.maxPendingHandshakes || fromAddress >= this.maxPendingPerAddress) {
      this.opts.metrics.handshakesRefused.inc();
      conn.fail(
        'TRY_AGAIN_LATER',
        `the hub is at its limit of connections waiting for HELLO (${this.maxPendingHandshakes} in all, ${this.maxPendingPerAddress} per address); reconnect with back-off`,
      );
    }
  }

  /** §6.1.2: a HELLO was authenticated; false (and the socket refused) when every device slot is taken. */
  hasDeviceSlot(conn: DeviceConnection, deviceId: string): boolean {
    // A device that replaces its own connection frees the slot it takes.
    if (this.authenticatedCount < this.opts.maxConnections || this.opts.sessions.isConnected(deviceId)) return true;
    conn.fail(
      'TRY_AGAIN_LATER',
      `the hub is at its limit of ${this.opts.maxConnections} device connections; reconnect with back-off`,
    );
    return false;
  }

  /** The connection completed HELLO/WELCOME: it leaves the pre-authentication pool for a device slot. */
  authenticated(conn: DeviceConnection): void {
    this.leavePending(conn);
    this.authenticatedCount++;
  }

  /** A HELLO carried an unknown id or a wrong token. */
  authFailed(conn: DeviceConnection): void {
    const now = this.opts.clock.now();
    const address = conn.remote ?? '';
    let entry = this.authFailures.get(address);
    if (entry === undefined || now - entry.since >= this.authFailureWindowMs) {
      // Bounded memory under a flood from many addresses: forget windows that ended, then the oldest.
      if (entry === undefined && this.authFailures.size >= MAX_TRACKED_ADDRESSES) this.forgetAuthFailures(now);
      entry = { count: 0, since: now };
      this.authFailures.set(address, entry);
    }
    entry.count++;
    this.opts.metrics.deviceAuthFailures.inc();
    this.opts.log.warn(
      { remote: conn.remote, failuresFromAddress: entry.count },
      'device authentication failed (unknown device id or wrong token)',
    );
  }

  /** §6.1.6: true when HELLOs from the connection's address are throttled after too many failures. */
  authThrottled(conn: DeviceConnection): boolean {
    const entry = this.authFailures.get(conn.remote ?? '');
    if (entry === undefined) return false;
    if (this.opts.clock.now() - entry.since >= this.authFailureWindowMs) return false;
    if (entry.count < this.authFailuresPerAddress) return false;
    this.opts.metrics.deviceAuthThrottled.inc();
    return true;
  }

  private forgetAuthFailures(now: number): void {
    for (const [address, e] of this.authFailures)
      if (now - e.since >= this.authFailureWindowMs) this.authFailures.delete(address);
    while (this.authFailures.size >= MAX_TRACKED_ADDRESSES)
      this.authFailures.delete(this.authFailures.keys().next().value!);
  }

  /** §7.1.5: true when the connection may send one more ERROR frame for a rejected value now. */
  errorBudget(conn: DeviceConnection): boolean {
    const now = this.opts.clock.now();
    let b = this.errorTokens.get(conn);
    if (b === undefined) {
      b = { tokens: this.errorFramesBurst, at: now };
      this.errorTokens.set(conn, b);
    } else if (now > b.at) {
      b.tokens = Math.min(this.errorFramesBurst, b.tokens + ((now - b.at) * this.errorFramesPerSecond) / 1000);
      b.at = now;
    }
    if (b.tokens < 1) {
      this.opts.metrics.count.errorFramesSuppressed++;
      return false;
    }
    b.tokens--;
    return true;
  }

  private leavePending(conn: DeviceConnection): void {
    if (!this.pending.delete(conn)) return;
    this.pendingCount--;
    const address = conn.remote ?? '';
    const n = (this.pendingByAddress.get(address) ?? 1) - 1;
    if (n > 0) this.pendingByAddress.set(address, n);
    else this.pendingByAddress.delete(address);
  }

  /**
   * Called for each frame read. Once this turn of the event loop has spent ingestTurnMs on frames, the
   * socket stops reading until the end of the turn: under a flood one turn would otherwise read every ready
   * socket (with many devices, hundreds of milliseconds), and work that runs between turns (the spool's drain
   * into the store, timers) would get a turn only that rarely.
   */
  noteFrame(conn: DeviceConnection): void {
    // Which sockets are active matters only when a spent budget does not pause them all.
    if (this.sockets.size > this.pauseAllSocketsUpTo) this.activeNow.add(conn);
    if (this.turnStart < 0) {
      this.turnStart = performance.now();
      if (!this.tickScheduled) {
        this.tickScheduled = true;
        setImmediate(this.endOfTurn);
      }
      return;
    }
    if (this.overBudget) {
      // A socket that was not paused delivered a read's worth anyway: no more from it this turn.
      if (conn.pauseReading()) this.pause(conn);
      return;
    }
    if (performance.now() - this.turnStart > this.ingestTurnMs) {
      this.overBudget = true;
      this.pausedTurns++;
      // Not just this socket: those epoll already reported ready would each still deliver a read's worth (up
      // to 64 KB, with batched readings some 40 000 readings) in this turn; a paused one is skipped. With a
      // few hundred sockets, all of them: when a flood starts (devices replaying after an outage) none has
      // delivered yet, and the first turn used to read every device's whole window (70 ms for 50 devices).
      // With more, those that delivered frames this turn or the one before (the ones flooding), as pausing
      // every socket would cost two system calls per idle connection per turn.
      if (this.sockets.size <= this.pauseAllSocketsUpTo) {
        for (const c of this.sockets) if (c.pauseReading()) this.pause(c);
      } else {
        for (const c of this.activeNow) if (c.pauseReading()) this.pause(c);
        for (const c of this.activeBefore) if (c.pauseReading()) this.pause(c);
      }
    }
  }

  private pause(conn: DeviceConnection): void {
    this.pausedSockets.push(conn);
    this.socketPauses++;
  }

  private beat(): void {
    for (const conn of this.sockets) conn.heartbeat();
  }

  /** Called by a connection when its socket closed. */
  forget(conn: DeviceConnection): void {
    if (!this.sockets.delete(conn)) return;
    if (this.pending.has(conn)) this.leavePending(conn);
    else if (conn.ready || conn.deviceId !== null) this.authenticatedCount--;
  }

  /**
   * §6.6.3: stop taking readings, wait until what was taken is durable, ack it, then close every device
   * connection with ERROR SHUTTING_DOWN and 1001.
   */
  async shutdown(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.heartbeat !== null) {
      this.opts.timers.clearInterval(this.heartbeat);
      this.heartbeat = null;
    }
    const grace = this.opts.shutdownGraceMs ?? 10_000;
    const conns = [...this.sockets];
    await withDeadline(Promise.all(conns.map((c) => c.settled())), grace);
    for (const c of conns) c.flushAck();
    const closed = conns.map((c) => c.closed());
    for (const c of conns) c.close('SHUTTING_DOWN', 'the hub is shutting down; reconnect later');
    if (!(await withDeadline(Promise.all(closed), Math.min(grace, 3000)))) {
      for (const c of conns) c.terminate('SHUTTING_DOWN');
    }
  }
}

/** Resolves true when `p` settled within `ms`, false otherwise. */
async function withDeadline(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
