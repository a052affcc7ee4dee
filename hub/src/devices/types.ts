/**
 * The devices layer's contract with transports. A transport authenticates a device (with the registry), then
 * attaches it with a handle; the devices layer owns presence and its reasons, opens the device's
 * IngestSession, and routes commands to whichever transport holds the device. Nothing here knows a
 * transport: the live channel and the command queue listen to DeviceEvents only.
 */
import type { CommandStatus, MetricDeclaration } from '@tendril/device-sdk/codec';
import type { IngestReporter, IngestSession } from '../ingest/types.js';
import type { StoredReading } from '../storage/types.js';

export type Transport = 'ws' | 'mqtt';

/**
 * Why a device went offline (docs/api.md). Protocol error codes that closed a connection are reasons too,
 * and so are MQTT_WILL (the broker published the device's last will) and BRIDGE_DISCONNECTED (the hub lost
 * its broker: the device's state is unknown).
 */
export type OfflineReason =
  | 'CLOSED'
  | 'CONNECTION_LOST'
  | 'HEARTBEAT_LOST'
  | 'AUTH_FAILED'
  | 'REPLACED'
  | 'PROTOCOL_ERROR'
  | 'SHUTTING_DOWN'
  | 'DEVICE_DISABLED'
  | 'DELETED'
  | 'MQTT_WILL'
  | 'BRIDGE_DISCONNECTED'
  | (string & {});

/** Why the devices layer asks a transport to end a device's connection. */
export type DetachRequest = 'REPLACED' | 'DEVICE_DISABLED' | 'DELETED' | 'AUTH_FAILED' | 'SHUTTING_DOWN';

/** A COMMAND as the devices layer hands it to a transport (protocol §8.1). */
export interface OutgoingCommand {
  commandId: number;
  name: string;
  /** Arguments as JSON text ('' = none), as COMMAND carries them. */
  args: string;
  timeoutMs: number;
}

/** What a transport gives the devices layer for one attached device. */
export interface TransportHandle {
  readonly transport: Transport;
  /** Remote address (ws) or broker client id (mqtt), for presence; null when unknown. */
  readonly remote: string | null;
  /** Delivers a command now; false when it cannot (the queue keeps it and retries at the next attach). */
  sendCommand(command: OutgoingCommand): boolean;
  /** Ends the device's connection for `reason`; the transport then calls AttachedDevice.detach(). */
  close(reason: DetachRequest, message: string): void;
}

/** What the device declared when it attached: HELLO (§6.1) or an MQTT birth message. */
export interface AttachInfo {
  epoch: number;
  metrics: readonly MetricDeclaration[];
  firmware: string | null;
  sdk: string | null;
  /** Readings its buffer dropped so far (§7.5). */
  dropped: number;
}

/** One attached device, as its transport sees it. */
export interface AttachedDevice {
  readonly deviceId: string;
  readonly ingest: IngestSession;
  /** True when this attach replaced another connection of the same device (§6.4). */
  readonly replaced: boolean;
  /**
   * The transport has told the device it is attached (WELCOME sent, or an MQTT birth taken): presence goes
   * online and queued commands start flowing. Readings may be ingested before this.
   */
  online(): void;
  /** A frame or message arrived: presence.lastSeen. */
  seen(now: number): void;
  /**
   * A COMMAND_RESULT arrived. False when the command id was not sent to this device (§8.2.4: the
   * transport answers UNKNOWN_COMMAND_ID).
   */
  commandResult(commandId: number, status: CommandStatus, detail: string, now: number): boolean;
  /** The device reported its dropped-readings total (§7.5). */
  status(dropped: number): void;
  /**
   * The connection ended; presence goes offline with `reason` (not for a connection that was replaced, nor
   * for one that never went online unless it replaced another).
   */
  detach(reason: OfflineReason): void;
}

/** What a transport calls to attach an authenticated device. */
export interface DeviceAttacher {
  /**
   * Attaches `deviceId` over `handle`. An older attachment of the same device is closed with REPLACED first,
   * and the returned promise resolves once what it took is durable (so ackedSeq counts it). Rejects when
   * the device is unknown, disabled, or the hub is shutting down.
   */
  attach(
    deviceId: string,
    info: AttachInfo,
    handle: TransportHandle,
    reporter: IngestReporter,
  ): Promise<AttachedDevice>;
}

/** Events of the devices layer: what the live channel, the command queue and metrics listen to. */
export interface DeviceEvents extends Record<string, unknown> {
  /** A device attached. `replaced`: it took over from an older connection of the same id. */
  online: { deviceId: string; transport: Transport; remote: string | null; since: number; replaced: boolean };
  /** A device's connection ended (not emitted for a connection that a newer one replaced). */
  offline: {
    deviceId: string;
    transport: Transport | null;
    reason: OfflineReason;
    since: number;
    lastSeen: number | null;
  };
  /** Readings that just became durable (valid values only), in seq order per device. */
  readings: { deviceId: string; epoch: number; readings: readonly StoredReading[] };
  /** A command result from the device, for a command the hub sent it. */
  commandResult: { deviceId: string; commandId: number; status: CommandStatus; detail: string; receivedAt: number };
  /** The device reported its buffer's dropped-readings total (HELLO, STATUS, or a bridge's counter). */
  status: { deviceId: string; dropped: number };
  /** A value or reading of the device was rejected by validation (§7.1); emitted only while someone listens. */
  rejected: { deviceId: string; code: string };
  /** A device was provisioned, changed (name, model, labels, disabled) or deleted (registry writes). */
  changed: { deviceId: string; change: 'created' | 'updated' | 'deleted' };
}
