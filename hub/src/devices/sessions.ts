/**
 * Device sessions: which transport holds each device now, its presence and the reasons it changes, its
 * IngestSession, and the routing of commands to whichever transport holds it. Transports attach devices
 * here (types.ts); the command queue and the live channel listen to `events` and never see a transport.
 * Section numbers (§) are docs/protocol.md.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { CommandStatus } from '@tendril/device-sdk/codec';
import type { Clock, TimerHandle, Timers } from '../core/clock.js';
import { TypedEvents } from '../core/events.js';
import type { IngestContext } from '../ingest/session.js';
import { DeviceIngestSession } from '../ingest/session.js';
import type { IngestReporter } from '../ingest/types.js';
import type { PresenceTracker } from './presence.js';
import type { DeviceRecord, DeviceRegistry } from './registry.js';
import type {
  AttachedDevice,
  AttachInfo,
  DetachRequest,
  DeviceAttacher,
  DeviceEvents,
  OfflineReason,
  OutgoingCommand,
  TransportHandle,
} from './types.js';

/** Why an attach was refused; a transport answers with the protocol error of the same name. */
export class AttachError extends Error {
  override readonly name = 'AttachError';
  constructor(
    readonly code: 'AUTH_FAILED' | 'DEVICE_DISABLED' | 'SHUTTING_DOWN' | 'REPLACED',
    message: string,
  ) {
    super(message);
  }
}

export interface DeviceSessionsOptions {
  registry: DeviceRegistry;
  presence: PresenceTracker;
  /** Shared by every device's ingest session (the sessions add isShuttingDown). */
  ingest: Omit<IngestContext, 'isShuttingDown'>;
  clock: Clock;
  timers: Timers;
  log: FastifyBaseLogger;
}

/** Longest an attach that replaces a connection waits for the old connection's writes (§6.4). */
const REPLACE_SETTLE_MS = 5000;
/** The most command ids remembered per device while waiting for their final status. */
const MAX_OUTSTANDING_COMMANDS = 1024;

class Attachment implements AttachedDevice {
  ingest!: DeviceIngestSession;
  /** online() was called and detach() was not: commands may be sent. */
  isOnline = false;
  private detached = false;

  constructor(
    readonly sessions: DeviceSessions,
    readonly device: DeviceRecord,
    readonly handle: TransportHandle,
    readonly replaced: boolean,
  ) {}

  get deviceId(): string {
    return this.device.id;
  }

  online(): void {
    if (this.detached || this.isOnline) return;
    this.isOnline = true;
    this.sessions.wentOnline(this);
  }

  seen(now: number): void {
    this.device.presence.lastSeen = now;
  }

  commandResult(commandId: number, status: CommandStatus, detail: string, now: number): boolean {
    return this.sessions.commandResult(this.device.id, commandId, status, detail, now);
  }

  status(dropped: number): void {
    this.sessions.status(this.device, dropped);
  }

  detach(reason: OfflineReason): void {
    if (this.detached) return;
    this.detached = true;
    this.ingest?.close();
    this.sessions.detached(this, reason);
  }
}

export class DeviceSessions implements DeviceAttacher {
  readonly events = new TypedEvents<DeviceEvents>();
  private readonly attached = new Map<string, Attachment>();
  /**
   * Attachments that left (their socket closed, or the broker link went down) while their writes may still be
   * in flight, until those settle. The device's next attach waits for them as for a connection it replaces
   * (§6.4): its WELCOME.ackedSeq then counts them, and the device does not send them again. An untimed reading
   * sent again would be stamped anew and stored twice.
   */
  private readonly leaving = new Map<string, Attachment>();
  private readonly outstandingCommands = new Map<string, Set<number>>();
  private commandLookup: ((deviceId: string, commandId: number) => boolean) | null = null;
  private closing = false;
  private readonly ingestContext: IngestContext;

  constructor(private readonly opts: DeviceSessionsOptions) {
    this.ingestContext = { ...opts.ingest, isShuttingDown: () => this.closing };
    this.events.onListenerError = (err, event) => opts.log.error({ err, event }, 'a device event listener failed');
  }

  get registry(): DeviceRegistry {
    return this.opts.registry;
  }

  get presence(): PresenceTracker {
    return this.opts.presence;
  }

  /** True once the hub began shutting down: no attach, no readings. */
  get shuttingDown(): boolean {
    return this.closing;
  }

  /** Devices attached now, on any transport. */
  get connectedCount(): number {
    let n = 0;
    for (const a of this.attached.values()) if (a.isOnline) n++;
    return n;
  }

  isConnected(deviceId: string): boolean {
    return this.attached.get(deviceId)?.isOnline ?? false;
  }

  /** Which transport holds the device now, or null. */
  transportOf(deviceId: string): TransportHandle['transport'] | null {
    const a = this.attached.get(deviceId);
    return a?.isOnline ? a.handle.transport : null;
  }

  async attach(
    deviceId: string,
    info: AttachInfo,
    handle: TransportHandle,
    reporter: IngestReporter,
  ): Promise<AttachedDevice> {
    const { registry, presence, clock } = this.opts;
    const device = registry.get(deviceId);
    if (device === undefined) throw new AttachError('AUTH_FAILED', 'unknown device or wrong token');
    if (device.disabled) throw new AttachError('DEVICE_DISABLED', 'an operator disabled this device');
    if (this.closing) throw new AttachError('SHUTTING_DOWN', 'the hub is shutting down; reconnect later');
    const older = this.attached.get(deviceId);
    const attachment = new Attachment(this, device, handle, older !== undefined);
    this.attached.set(deviceId, attachment);
    if (older !== undefined) {
      // §6.4: the newer connection wins. It is told what is durable only once what the older one took is,
      // so WELCOME.ackedSeq counts those readings and the device does not resend them.
      older.handle.close('REPLACED', 'a newer connection for this device id replaced this one');
      await this.settleBefore(attachment, older);
    }
    // The same for a connection that already left with writes in flight (see `leaving`).
    const left = this.leaving.get(deviceId);
    if (left !== undefined) await this.settleBefore(attachment, left);
    const now = clock.now();
    device.firmware = info.firmware;
    device.sdk = info.sdk;
    device.metrics = [...info.metrics];
    device.dropped = info.dropped;
    registry.setEpoch(device, info.epoch);
    // §6.3.4 / §5.1.2: resume after the durable seq of this epoch (0 for a new epoch).
    const epoch = info.epoch;
    attachment.ingest = new DeviceIngestSession(
      deviceId,
      { epoch, metrics: info.metrics },
      device.ackedSeq,
      this.ingestContext,
      reporter,
      {
        durableSeq: (seq) => registry.setAckedSeq(device, epoch, seq),
        durableReadings: (readings) => {
          presence.stored(deviceId, readings);
          if (this.events.has('readings')) this.events.emit('readings', { deviceId, epoch, readings });
        },
        rejected: (code) => {
          if (this.events.has('rejected')) this.events.emit('rejected', { deviceId, code });
        },
      },
      now,
    );
    return attachment;
  }

  /** Called by Attachment.online(). */
  wentOnline(attachment: Attachment): void {
    const { device, handle, replaced } = attachment;
    if (this.attached.get(device.id) !== attachment) return;
    this.opts.presence.online(device, handle.transport, handle.remote, replaced ? 'REPLACED' : null);
    const since = device.presence.since ?? this.opts.clock.now();
    this.events.emit('online', {
      deviceId: device.id,
      transport: handle.transport,
      remote: handle.remote,
      since,
      replaced,
    });
    this.events.emit('status', { deviceId: device.id, dropped: device.dropped });
  }

  /**
   * Waits (at most REPLACE_SETTLE_MS) for the readings `earlier` took to be durable or failed; throws when a
   * newer attach replaced `attachment` meanwhile, or the hub began to shut down.
   */
  private async settleBefore(attachment: Attachment, earlier: Attachment): Promise<void> {
    if (earlier.ingest !== undefined) {
      let timer: TimerHandle | undefined;
      await Promise.race([
        earlier.ingest.settled(),
        new Promise<void>((resolve) => {
          timer = this.opts.timers.setTimeout(resolve, REPLACE_SETTLE_MS);
        }),
      ]);
      if (timer !== undefined) this.opts.timers.clearTimeout(timer);
    }
    if (this.attached.get(attachment.device.id) !== attachment)
      throw new AttachError('REPLACED', 'a newer connection replaced this one meanwhile');
    if (this.closing) throw new AttachError('SHUTTING_DOWN', 'the hub is shutting down; reconnect later');
  }

  /** Called by Attachment.detach(). A replaced attachment leaves presence to its successor (no flap, §6.4). */
  detached(attachment: Attachment, reason: OfflineReason): void {
    const id = attachment.device.id;
    if (this.attached.get(id) === attachment) {
      this.attached.delete(id);
      const ingest = attachment.ingest;
      if (ingest !== undefined) {
        this.leaving.set(id, attachment);
        void ingest.settled().then(() => {
          if (this.leaving.get(id) === attachment) this.leaving.delete(id);
        });
      }
    }
    // An attach that never went online and replaced nobody leaves presence as it was.
    const wasOnline = attachment.isOnline;
    attachment.isOnline = false;
    if (reason === 'REPLACED' || (!wasOnline && !attachment.replaced)) return;
    const device = attachment.device;
    this.opts.presence.offline(device, reason);
    this.events.emit('offline', {
      deviceId: id,
      transport: device.transport,
      reason,
      since: device.presence.since ?? 0,
      lastSeen: device.presence.lastSeen,
    });
  }

  /**
   * Sends a COMMAND to a connected device over whichever transport holds it. False when the device is not
   * attached or its transport cannot send now (the caller keeps the command queued). Remembers the id so the
   * device's result is accepted (§8.2.4).
   */
  sendCommand(deviceId: string, command: OutgoingCommand): boolean {
    const a = this.attached.get(deviceId);
    if (a === undefined || !a.isOnline) return false;
    if (!a.handle.sendCommand(command)) return false;
    let ids = this.outstandingCommands.get(deviceId);
    if (!ids) {
      ids = new Set();
      this.outstandingCommands.set(deviceId, ids);
    }
    ids.add(command.commandId);
    if (ids.size > MAX_OUTSTANDING_COMMANDS) ids.delete(ids.values().next().value!);
    return true;
  }

  /**
   * The command queue ended a command itself (TIMEOUT, EXPIRED, UNDELIVERABLE): its id is no longer kept here
   * (a device that never answers left up to 1024 per device). A late result stays known through the queue's
   * lookup (§8.2.4).
   */
  forgetCommand(deviceId: string, commandId: number): void {
    const ids = this.outstandingCommands.get(deviceId);
    if (!ids?.delete(commandId)) return;
    if (ids.size === 0) this.outstandingCommands.delete(deviceId);
  }

  /**
   * Lets the command queue vouch for command ids this hub instance did not send itself (sent before a
   * restart). A result is accepted when the id is outstanding here or `lookup` returns true.
   */
  setCommandLookup(lookup: ((deviceId: string, commandId: number) => boolean) | null): void {
    this.commandLookup = lookup;
  }

  /** §8.2.4: false when the result names no command sent to this device; forgets ids that reached a final status. */
  commandResult(deviceId: string, commandId: number, status: CommandStatus, detail: string, now: number): boolean {
    const ids = this.outstandingCommands.get(deviceId);
    const known = (ids?.has(commandId) ?? false) || (this.commandLookup?.(deviceId, commandId) ?? false);
    if (!known) return false;
    if (status !== 'delivered' && ids) {
      ids.delete(commandId);
      if (ids.size === 0) this.outstandingCommands.delete(deviceId);
    }
    this.events.emit('commandResult', { deviceId, commandId, status, detail, receivedAt: now });
    return true;
  }

  /** §7.5 */
  status(device: DeviceRecord, dropped: number): void {
    if (device.dropped === dropped) return;
    device.dropped = dropped;
    this.opts.registry.markDirty(device);
    this.events.emit('status', { deviceId: device.id, dropped });
  }

  /** The registry changed a device (API: provisioned, updated, deleted): the live channel follows. */
  changed(deviceId: string, change: 'created' | 'updated' | 'deleted'): void {
    this.events.emit('changed', { deviceId, change });
  }

  /** Ends a device's connection because its credential was rotated, it was disabled, or deleted. */
  disconnect(deviceId: string, reason: Exclude<DetachRequest, 'REPLACED' | 'SHUTTING_DOWN'>): void {
    const a = this.attached.get(deviceId);
    if (reason === 'DELETED') this.outstandingCommands.delete(deviceId);
    if (a === undefined) return;
    const message =
      reason === 'DEVICE_DISABLED'
        ? 'an operator disabled this device'
        : reason === 'DELETED'
          ? 'this device was deleted from the hub'
          : "the device's token was rotated; reconnect with the new token";
    a.handle.close(reason, message);
  }

  /** §6.6.3, first step: take no more attaches or readings. Transports then settle, ack and close. */
  beginShutdown(): void {
    this.closing = true;
  }
}
