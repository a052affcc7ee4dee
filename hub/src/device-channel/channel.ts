/**
 * The device channel: every device WebSocket connection, one per device id, and the typed events the
 * rest of the hub (live fan-out, command queue) listens to.
 */
import { performance } from 'node:perf_hooks';
import type { WebSocket } from 'ws';
import { encodeHubFrame, type CommandFrame, type CommandStatus } from '@tendril/device-sdk';
import type { Clock, TimerHandle, Timers } from '../clock.js';
import { TypedEvents } from '../events.js';
import type { HubMetrics } from '../metrics.js';
import type { PresenceTracker } from '../presence.js';
import type { DeviceRegistry } from '../registry.js';
import type { ReadingSink, StoredReading } from '../storage/types.js';
import { DeviceConnection } from './connection.js';

export interface DeviceChannelEvents extends Record<string, unknown> {
  /** A device completed HELLO/WELCOME. `replaced`: it took over from an older connection of the same id. */
  online: { deviceId: string; remote: string | null; since: number; replaced: boolean };
  /** A device's connection ended (not emitted for a connection that a newer one replaced). */
  offline: { deviceId: string; reason: string; since: number; lastSeen: number | null };
  /** Readings that just became durable (valid values only). Emitted after the store committed. */
  readings: { deviceId: string; epoch: number; readings: readonly StoredReading[] };
  /** A COMMAND_RESULT for a command this hub sent to the device. */
  commandResult: { deviceId: string; commandId: number; status: CommandStatus; detail: string; receivedAt: number };
  /** The device reported its buffer's dropped-readings total (HELLO or STATUS). */
  status: { deviceId: string; dropped: number };
}

export interface DeviceChannelOptions {
  registry: DeviceRegistry;
  presence: PresenceTracker;
  sink: ReadingSink;
  metrics: HubMetrics;
  clock: Clock;
  timers: Timers;
  heartbeatMs: number;
  helloTimeoutMs: number;
  deviceRate: number;
  deviceBurst: number;
  maxFrameBytes: number;
  maxConnections: number;
  /** Pause announced in BACKOFF STORE_BUSY. */
  storeBusyPauseMs?: number;
  /** Time a turn of the event loop spends on device frames before sockets wait (see noteFrame). Default 3. */
  ingestTurnMs?: number;
  /** Up to this many sockets, a spent ingest budget pauses every one (see noteFrame). Default 256. */
  pauseAllSocketsUpTo?: number;
  /** How long shutdown waits for pending writes, then for devices to answer the close. */
  shutdownGraceMs?: number;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

/** The most command ids remembered per device while waiting for their final status. */
const MAX_OUTSTANDING_COMMANDS = 1024;
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

export class DeviceChannel {
  readonly events = new TypedEvents<DeviceChannelEvents>();
  /** Every open socket, authenticated or not. */
  readonly sockets = new Set<DeviceConnection>();
  /** Authenticated (or authenticating) connection per device id. */
  readonly byDevice = new Map<string, DeviceConnection>();
  readonly storeBusyPauseMs: number;
  private readonly ingestTurnMs: number;
  private readonly pauseAllSocketsUpTo: number;
  /** Turns in which the sockets stopped reading for the rest of the turn (tests, diagnostics). */
  pausedTurns = 0;
  /** Sockets paused for the rest of a turn, counted once per pause (tests, diagnostics). */
  socketPauses = 0;
  private readonly outstandingCommands = new Map<string, Set<number>>();
  private commandLookup: ((deviceId: string, commandId: number) => boolean) | null = null;
  private heartbeat: TimerHandle | null = null;
  // Connections with work for the end of this turn of the event loop: one setImmediate for all of them.
  private openDue: DeviceConnection[] = [];
  private ackDue: DeviceConnection[] = [];
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
    const open = this.openDue;
    this.openDue = [];
    for (const c of open) c.closeOpen();
    const acks = this.ackDue;
    this.ackDue = [];
    for (const c of acks) c.flushAck();
  };
  private closing = false;

  constructor(readonly opts: DeviceChannelOptions) {
    this.storeBusyPauseMs = opts.storeBusyPauseMs ?? 1000;
    this.ingestTurnMs = opts.ingestTurnMs ?? DEFAULT_INGEST_TURN_MS;
    this.pauseAllSocketsUpTo = opts.pauseAllSocketsUpTo ?? DEFAULT_PAUSE_ALL_SOCKETS_UP_TO;
    this.events.onListenerError = (err, event) => opts.log.error({ err, event }, 'a device channel event listener failed');
    // §6.5: one timer pings every connection; a connection that did not pong since the last ping is dead.
    this.heartbeat = opts.timers.setInterval(() => this.beat(), opts.heartbeatMs);
    this.heartbeat.unref?.();
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  /** Devices that completed HELLO/WELCOME. */
  get connectedCount(): number {
    let n = 0;
    for (const c of this.byDevice.values()) if (c.ready) n++;
    return n;
  }

  /** Takes a freshly upgraded socket. */
  accept(socket: WebSocket, remote: string | null): void {
    const conn = new DeviceConnection(this, socket, remote);
    const atLimit = this.sockets.size >= this.opts.maxConnections;
    this.sockets.add(conn);
    conn.start();
    if (this.closing) conn.fail('SHUTTING_DOWN', 'the hub is shutting down; reconnect later');
    // §6.1.2: at the connection limit the hub refuses, possibly before HELLO.
    else if (atLimit) conn.fail('TRY_AGAIN_LATER', `the hub is at its limit of ${this.opts.maxConnections} device connections; reconnect with back-off`);
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

  /** The connection took readings: hand them to the sink at the end of this turn. */
  scheduleOpen(conn: DeviceConnection): void {
    this.openDue.push(conn);
    if (!this.tickScheduled) {
      this.tickScheduled = true;
      setImmediate(this.endOfTurn);
    }
  }

  /** The connection's durable seq moved: send its ACK at the end of this turn. */
  scheduleAck(conn: DeviceConnection): void {
    this.ackDue.push(conn);
    if (!this.tickScheduled) {
      this.tickScheduled = true;
      setImmediate(this.endOfTurn);
    }
  }

  private beat(): void {
    for (const conn of this.sockets) conn.heartbeat();
  }

  /** Called by a connection when its socket closed. */
  forget(conn: DeviceConnection): void {
    this.sockets.delete(conn);
    if (conn.deviceId !== null && this.byDevice.get(conn.deviceId) === conn) this.byDevice.delete(conn.deviceId);
  }

  /**
   * Sends a COMMAND to a connected device. False when the device has no ready connection (the caller
   * keeps the command queued). Remembers the id so the device's COMMAND_RESULT is accepted.
   */
  sendCommand(deviceId: string, frame: Omit<CommandFrame, 'type'> & { type?: 'command' }): boolean {
    const conn = this.byDevice.get(deviceId);
    if (!conn || !conn.ready) return false;
    const bytes = encodeHubFrame({ type: 'command', commandId: frame.commandId, name: frame.name, args: frame.args, timeoutMs: frame.timeoutMs });
    let ids = this.outstandingCommands.get(deviceId);
    if (!ids) {
      ids = new Set();
      this.outstandingCommands.set(deviceId, ids);
    }
    ids.add(frame.commandId);
    if (ids.size > MAX_OUTSTANDING_COMMANDS) ids.delete(ids.values().next().value!);
    conn.sendBytes(bytes);
    return true;
  }

  /**
   * Lets a command queue vouch for command ids this hub instance did not send itself (e.g. sent before a
   * restart). A COMMAND_RESULT is accepted when the id is outstanding here or `lookup` returns true.
   */
  setCommandLookup(lookup: ((deviceId: string, commandId: number) => boolean) | null): void {
    this.commandLookup = lookup;
  }

  /** §8.2.4: true when the result names a command sent to this device; forgets ids that reached a final status. */
  claimCommandResult(deviceId: string, commandId: number, status: CommandStatus): boolean {
    const ids = this.outstandingCommands.get(deviceId);
    const known = (ids?.has(commandId) ?? false) || (this.commandLookup?.(deviceId, commandId) ?? false);
    if (known && status !== 'delivered' && ids) {
      ids.delete(commandId);
      if (ids.size === 0) this.outstandingCommands.delete(deviceId);
    }
    return known;
  }

  /** Closes a device's connection because its credential was revoked, it was disabled, or deleted. */
  disconnect(deviceId: string, reason: 'AUTH_FAILED' | 'DEVICE_DISABLED' | 'DELETED'): void {
    const conn = this.byDevice.get(deviceId);
    if (!conn) return;
    if (reason === 'DEVICE_DISABLED') conn.fail('DEVICE_DISABLED', 'an operator disabled this device', 'DEVICE_DISABLED');
    else if (reason === 'DELETED') conn.fail('AUTH_FAILED', 'this device was deleted from the hub', 'DELETED');
    else conn.fail('AUTH_FAILED', "the device's token was rotated; reconnect with the new token", 'AUTH_FAILED');
    if (reason === 'DELETED') this.outstandingCommands.delete(deviceId);
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
    for (const c of conns) c.fail('SHUTTING_DOWN', 'the hub is shutting down; reconnect later', 'SHUTTING_DOWN');
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
