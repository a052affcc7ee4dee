/**
 * The command queue: takes commands for devices, keeps them in SQLite, delivers them over the device
 * sessions (to whichever transport holds the device) and follows each through its lifecycle (docs/commands.md, protocol §8).
 *
 * Per device, commands go out in creation order with at most one in flight (sent or delivered, not yet
 * final). The SDK runs handlers concurrently, so without this a `reboot` could overtake the
 * `set-interval` queued before it, and a device would face as many parallel handlers as operators
 * queued commands. The next command goes out when the one in flight reaches a final state.
 *
 * Delivery is at least once: when a device comes online, its command in flight is sent again with the
 * same id (the connection may have dropped before the COMMAND arrived, or before its result came back);
 * the device answers a duplicate from its memory of recent ids without running it again (§8.3).
 *
 * Deadlines, per device, on one timer armed for the earliest: a queued command expires at `expiresAt`
 * (TTL); a command in flight fails with TIMEOUT at first send + `timeoutMs`. Both hold while the device
 * is offline and across restarts (checked at start-up).
 */
import type { FastifyBaseLogger } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CommandStatus } from '@tendril/device-sdk/codec';
import type { Clock, TimerHandle, Timers } from '../core/clock.js';
import type { DeviceSessions } from '../devices/sessions.js';
import { TypedEvents } from '../core/events.js';
import type { SqliteDatabase } from '../storage/sqlite.js';
import { HubHttpError } from '../errors.js';
import { COMMAND_LIMITS, COMMAND_STATES, type Command, type CommandState } from './model.js';
import { CommandStore, type ListQuery, type UnfinishedCommand } from './store.js';
import { differences, validate } from './request-checks.js';

/** The part of the device sessions the queue uses: delivery to whichever transport holds a device. */
export type CommandSessions = Pick<DeviceSessions, 'sendCommand' | 'forgetCommand' | 'setCommandLookup' | 'events'>;

export interface CommandQueueOptions {
  /** The registry's database (hub.db): commands reference their device. */
  db: SqliteDatabase;
  sessions: CommandSessions;
  deviceExists(deviceId: string): boolean;
  clock: Clock;
  timers: Timers;
  /** The hub's Prometheus registry. */
  metrics: Registry;
  log: FastifyBaseLogger;
}

export interface CommandQueueEvents extends Record<string, unknown> {
  /** A command was created or changed state (or was sent again); the live channel forwards it. */
  commandChanged: Command;
}

/** A request to run a command; fields as in POST /api/v1/devices/:id/commands. */
export interface CommandRequest {
  deviceId: string;
  name: string;
  /** Any JSON value; undefined = no arguments. */
  args?: unknown;
  ttlMs?: number | undefined;
  timeoutMs?: number | undefined;
  idempotencyKey?: string | undefined;
  /** The API principal. */
  requestedBy: string;
}

export interface ListCommandsQuery {
  deviceId: string;
  states?: readonly CommandState[] | undefined;
  before?: number | undefined;
  limit?: number | undefined;
}

/** A device's unfinished commands in creation order; the first one is the only one that may be in flight. */
interface DeviceLine {
  items: UnfinishedCommand[];
  timer: TimerHandle | null;
  timerAt: number;
}

/** setTimeout takes at most 2^31 - 1 ms; a later deadline is reached by re-arming. */
const MAX_TIMER_MS = 2_147_483_647;

export class CommandQueue {
  readonly events = new TypedEvents<CommandQueueEvents>();
  readonly store: CommandStore;
  private readonly lines = new Map<string, DeviceLine>();
  private readonly reached: Record<CommandState, { inc(): void }>;
  private readonly unsubscribe: Array<() => void>;
  private closed = false;

  constructor(private readonly opts: CommandQueueOptions) {
    this.store = new CommandStore(opts.db);
    const registers = [opts.metrics];
    const total = new Counter({
      name: 'tendril_commands_total',
      help: 'Commands that reached a state, by state.',
      labelNames: ['state'],
      registers,
    });
    this.reached = Object.fromEntries(COMMAND_STATES.map((s) => [s, total.labels(s)])) as Record<
      CommandState,
      { inc(): void }
    >;
    // A scrape shows every state from the start, at zero.
    for (const s of COMMAND_STATES) total.inc({ state: s }, 0);
    const lines = this.lines;
    new Gauge({
      name: 'tendril_commands_unfinished',
      help: 'Commands queued, sent or delivered (not yet in a final state).',
      registers,
      collect() {
        let n = 0;
        for (const line of lines.values()) n += line.items.length;
        this.set(n);
      },
    });

    for (const c of this.store.unfinished()) this.lineOf(c.deviceId).items.push(c);
    const sessions = opts.sessions;
    this.unsubscribe = [
      sessions.events.on('online', (e) =>
        this.guard('delivering commands to a device that came online', () => this.pump(e.deviceId, true)),
      ),
      sessions.events.on('commandResult', (e) =>
        this.guard('applying a command result', () => this.onResult(e.deviceId, e.commandId, e.status, e.detail)),
      ),
    ];
    // §8.2.4: after a restart the device sessions have no memory of what was sent; the store has.
    sessions.setCommandLookup((deviceId, commandId) => !this.closed && this.store.wasSentTo(deviceId, commandId));
    // TTLs and timeouts that passed while the hub was down take effect now; the rest get their timers.
    for (const deviceId of [...this.lines.keys()]) this.pump(deviceId, false);
  }

  /**
   * Queues a command (and sends it at once when the device is online and has nothing in flight).
   * With an idempotency key already used for this device within 24 h: the existing command when the
   * request is the same (`created` false), else IDEMPOTENCY_CONFLICT.
   */
  submit(request: CommandRequest): { command: Command; created: boolean } {
    const now = this.opts.clock.now();
    const name = request.name;
    const argsJson = request.args === undefined ? null : JSON.stringify(request.args);
    const ttlMs = request.ttlMs ?? COMMAND_LIMITS.defaultTtlMs;
    const timeoutMs = request.timeoutMs ?? COMMAND_LIMITS.defaultTimeoutMs;
    validate(name, argsJson, ttlMs, timeoutMs, request.idempotencyKey);
    if (!this.opts.deviceExists(request.deviceId)) {
      throw new HubHttpError(
        'DEVICE_NOT_FOUND',
        `No device "${request.deviceId}" is registered; list devices with GET /api/v1/devices or create it with POST /api/v1/devices.`,
      );
    }
    const key = request.idempotencyKey ?? null;
    if (key !== null) {
      const existing = this.store.byIdempotencyKey(request.deviceId, key, now - COMMAND_LIMITS.idempotencyWindowMs);
      if (existing) {
        const differs = differences(existing, name, argsJson, ttlMs, timeoutMs);
        if (differs.length > 0) {
          throw new HubHttpError(
            'IDEMPOTENCY_CONFLICT',
            `Idempotency key "${key}" already created command ${existing.id} for device "${request.deviceId}" with a different ${differs.join(', ')}; ` +
              'repeat the original request exactly, or use a new key for a new command.',
          );
        }
        return { command: this.store.view(existing.id)!, created: false };
      }
    }
    const line = this.lineOf(request.deviceId);
    if (line.items.length >= COMMAND_LIMITS.maxUnfinishedPerDevice) {
      throw new HubHttpError(
        'COMMAND_QUEUE_FULL',
        `Device "${request.deviceId}" already has ${line.items.length} unfinished commands (the limit is ${COMMAND_LIMITS.maxUnfinishedPerDevice}); ` +
          'wait for them to finish or expire (is the device offline?) and retry.',
      );
    }
    const expiresAt = now + ttlMs;
    const id = this.store.insert({
      deviceId: request.deviceId,
      name,
      argsJson,
      requestedBy: request.requestedBy,
      idempotencyKey: key,
      createdAt: now,
      expiresAt,
      timeoutMs,
    });
    line.items.push({
      id,
      deviceId: request.deviceId,
      state: 'queued',
      createdAt: now,
      expiresAt,
      timeoutMs,
      firstSentAt: null,
    });
    this.changed(id, 'queued');
    this.pump(request.deviceId, false);
    return { command: this.store.view(id)!, created: true };
  }

  get(id: number): Command | undefined {
    return this.store.view(id);
  }

  /** A device's commands, newest first. */
  list(query: ListCommandsQuery): Command[] {
    const q: ListQuery = {
      deviceId: query.deviceId,
      states: query.states && query.states.length > 0 ? query.states : null,
      before: query.before ?? null,
      limit: query.limit ?? COMMAND_LIMITS.defaultPageSize,
    };
    return this.store.list(q);
  }

  /** Unfinished commands of a device (queued, sent, delivered). */
  unfinishedCount(deviceId: string): number {
    return this.lines.get(deviceId)?.items.length ?? 0;
  }

  /** Stops timers and listeners; call before the database closes. Commands stay stored. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.unsubscribe) off();
    this.opts.sessions.setCommandLookup(null);
    for (const line of this.lines.values()) this.clearTimer(line);
    this.lines.clear();
  }

  private lineOf(deviceId: string): DeviceLine {
    let line = this.lines.get(deviceId);
    if (!line) {
      line = { items: [], timer: null, timerAt: 0 };
      this.lines.set(deviceId, line);
    }
    return line;
  }

  /** Event handlers run inside the device sessions' callbacks: a failure here is logged, not thrown there. */
  private guard(what: string, fn: () => void): void {
    if (this.closed) return;
    try {
      fn();
    } catch (err) {
      this.opts.log.error({ err }, `command queue: ${what} failed`);
    }
  }

  /**
   * Applies due deadlines, sends the first command when nothing is in flight, and re-arms the device's
   * timer. `deviceCameOnline`: the command in flight (if any) is sent again (at-least-once, §8.3).
   */
  private pump(deviceId: string, deviceCameOnline: boolean): void {
    if (this.closed) return;
    const line = this.lines.get(deviceId);
    if (!line) return;
    if (!this.opts.deviceExists(deviceId)) {
      // The device was deleted: its commands went with it (ON DELETE CASCADE).
      this.clearTimer(line);
      this.lines.delete(deviceId);
      return;
    }
    const now = this.opts.clock.now();
    for (const item of [...line.items]) {
      if (item.state === 'queued' && item.expiresAt <= now) {
        this.finish(
          line,
          item,
          'expired',
          `EXPIRED: still queued when its TTL of ${item.expiresAt - item.createdAt} ms passed; the device was offline or busy with earlier commands.`,
        );
      } else if (item.state !== 'queued' && item.firstSentAt !== null && item.firstSentAt + item.timeoutMs <= now) {
        this.finish(
          line,
          item,
          'failed',
          `TIMEOUT: no final status from the device within ${item.timeoutMs} ms of sending the command.`,
        );
      }
    }
    const head = line.items[0];
    if (head !== undefined) {
      if (head.state === 'queued') this.send(line, head, now);
      else if (deviceCameOnline) this.resend(head, now);
    }
    if (line.items.length === 0) {
      this.clearTimer(line);
      this.lines.delete(deviceId);
    } else {
      this.arm(deviceId, line, now);
    }
  }

  /** First send of a queued command; it stays queued when the device is not connected. */
  private send(line: DeviceLine, item: UnfinishedCommand, now: number): void {
    const record = this.store.get(item.id);
    if (!record) return this.drop(line, item);
    let sent: boolean;
    try {
      sent = this.opts.sessions.sendCommand(item.deviceId, {
        commandId: item.id,
        name: record.name,
        args: record.argsJson ?? '',
        timeoutMs: item.timeoutMs,
      });
    } catch (err) {
      // A command the device's transport cannot carry (a hub bug, or a row stored before a check existed) is
      // failed, not left at the head of the line, where it would hold back every command after it.
      this.opts.log.error(
        { err, deviceId: item.deviceId, commandId: item.id },
        'a command could not be sent; it is failed',
      );
      const why = err instanceof Error ? err.message : String(err);
      this.finish(line, item, 'failed', `UNDELIVERABLE: the hub could not send this command to the device (${why}).`);
      const next = line.items[0];
      if (next !== undefined && next.state === 'queued') this.send(line, next, now);
      return;
    }
    if (!sent) return;
    if (!this.store.transition(item.id, 'sent', now)) return this.drop(line, item);
    item.state = 'sent';
    item.firstSentAt = now;
    this.changed(item.id, 'sent');
  }

  /** Sends the command in flight again, with the same id and the time it has left. */
  private resend(item: UnfinishedCommand, now: number): void {
    const record = this.store.get(item.id);
    if (!record || item.firstSentAt === null) return;
    const left = Math.max(1, item.firstSentAt + item.timeoutMs - now);
    const sent = this.opts.sessions.sendCommand(item.deviceId, {
      commandId: item.id,
      name: record.name,
      args: record.argsJson ?? '',
      timeoutMs: left,
    });
    if (!sent) return;
    this.store.recordResend(item.id, now, `sent again after the device reconnected (${left} ms of the timeout left)`);
    this.opts.log.debug({ deviceId: item.deviceId, commandId: item.id }, 'command sent again after a reconnect');
    this.emitChanged(item.id);
  }

  private onResult(deviceId: string, commandId: number, status: CommandStatus, detail: string): void {
    const line = this.lines.get(deviceId);
    const item = line?.items.find((i) => i.id === commandId);
    if (!line || !item) {
      // Final already (a duplicate answer after a re-send, §8.3, or a result after TIMEOUT): nothing changes.
      this.opts.log.debug(
        { deviceId, commandId, status },
        'result for a command that is no longer unfinished; ignored',
      );
      return;
    }
    const now = this.opts.clock.now();
    if (status === 'delivered') {
      // §8.2.1: delivered comes first; a repeat (answer to a re-send while it runs) changes nothing.
      if (item.state === 'delivered') return;
      if (!this.store.transition(item.id, 'delivered', now)) return this.drop(line, item);
      item.state = 'delivered';
      item.firstSentAt ??= now;
      this.changed(item.id, 'delivered');
      this.arm(deviceId, line, now);
      return;
    }
    // §8.2.2: the one final status.
    this.finish(line, item, status, detail);
    this.pump(deviceId, false);
  }

  /**
   * Cancels a command that is still queued (never sent): it reaches `cancelled` and the next one may go out.
   * A command already sent cannot be recalled from the device: COMMAND_NOT_CANCELLABLE.
   */
  cancel(commandId: number, by: string): Command {
    const record = this.store.view(commandId);
    if (!record)
      throw new HubHttpError('COMMAND_NOT_FOUND', `No command ${commandId} exists (or its device was deleted).`);
    const line = this.lines.get(record.deviceId);
    const item = line?.items.find((i) => i.id === commandId);
    if (!line || !item || item.state !== 'queued') {
      throw new HubHttpError(
        'COMMAND_NOT_CANCELLABLE',
        `Command ${commandId} is ${record.state}: only a queued command (not yet sent to the device) can be cancelled.`,
      );
    }
    this.finish(line, item, 'cancelled', `CANCELLED by ${by}`);
    this.arm(record.deviceId, line, this.opts.clock.now());
    return this.store.view(commandId)!;
  }

  private finish(line: DeviceLine, item: UnfinishedCommand, state: CommandState, detail: string): void {
    const now = this.opts.clock.now();
    line.items.splice(line.items.indexOf(item), 1);
    this.opts.sessions.forgetCommand(item.deviceId, item.id);
    if (!this.store.transition(item.id, state, now, detail)) return;
    this.changed(item.id, state);
  }

  /** The command's row is gone (its device was deleted): forget it. */
  private drop(line: DeviceLine, item: UnfinishedCommand): void {
    const at = line.items.indexOf(item);
    if (at >= 0) line.items.splice(at, 1);
  }

  private changed(id: number, state: CommandState): void {
    this.reached[state].inc();
    this.emitChanged(id);
  }

  private emitChanged(id: number): void {
    if (!this.events.has('commandChanged')) return;
    const view = this.store.view(id);
    if (view) this.events.emit('commandChanged', view);
  }

  /** Arms the device's timer for its earliest deadline (TTL of a queued command, timeout of the one in flight). */
  private arm(deviceId: string, line: DeviceLine, now: number): void {
    let next = Infinity;
    for (const item of line.items) {
      const due =
        item.state === 'queued'
          ? item.expiresAt
          : item.firstSentAt === null
            ? Infinity
            : item.firstSentAt + item.timeoutMs;
      if (due < next) next = due;
    }
    if (line.timer !== null && line.timerAt === next) return;
    this.clearTimer(line);
    if (next === Infinity) return;
    line.timerAt = next;
    line.timer = this.opts.timers.setTimeout(
      () => {
        line.timer = null;
        this.guard('applying command deadlines', () => this.pump(deviceId, false));
      },
      Math.min(MAX_TIMER_MS, Math.max(0, next - now)),
    );
    line.timer.unref?.();
  }

  private clearTimer(line: DeviceLine): void {
    if (line.timer !== null) {
      this.opts.timers.clearTimeout(line.timer);
      line.timer = null;
    }
  }
}
