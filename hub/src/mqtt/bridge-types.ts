/**
 * The MQTT bridge's options, status and counters (see bridge.ts).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { MetricDeclaration } from '@tendril/device-sdk/codec';
import type { Clock, Timers } from '../core/clock.js';
import type { DeviceAttacher } from '../devices/types.js';
import type { BrokerLinkOptions } from './broker-link.js';
import type { DataLimits } from './payload.js';
import type { CompiledTemplate } from './templates.js';

/** The hub's one logger type (fastify's pino logger). */
export type BridgeLog = FastifyBaseLogger;

export interface RegisteredDevice {
  disabled: boolean;
  transport: 'ws' | 'mqtt' | null;
  epoch: number | null;
  metrics: readonly MetricDeclaration[];
  firmware: string | null;
  sdk: string | null;
  dropped: number;
}

/** What the bridge needs of the registry: whether a device is registered, and quarantine creation. */
export interface BridgeRegistry {
  /**
   * The registered device, with what it last declared (kept by the devices layer at every attach): the
   * declaration a restarted hub uses for data that comes before the device's retained birth.
   */
  get(id: string): RegisteredDevice | undefined;
  /** Registers `id` disabled, labelled quarantine=mqtt, for an admin to approve (autoRegister only). */
  quarantine?(id: string): void;
}

export interface BridgeOptions {
  link: Omit<BrokerLinkOptions, 'subscriptions' | 'clock' | 'timers' | 'random'>;
  templates: readonly CompiledTemplate[];
  /** Homie 5 devices (read only), their hub id made from the Homie id; null = off. */
  homie?: { deviceId: string } | null | undefined;
  autoRegister: boolean;
  limits: DataLimits;
  attacher: DeviceAttacher;
  registry: BridgeRegistry;
  clock: Clock;
  timers: Timers;
  log: BridgeLog;
  random?: () => number;
  /** How long messages for a device whose attach was refused are refused without asking again. */
  refusalCooldownMs?: number;
}

export type BrokerState = 'connecting' | 'up' | 'down' | 'closed';

export interface BridgeStatus {
  broker: BrokerState;
  /** Why the broker is not reachable (null while up). */
  lastError: string | null;
  since: number;
  /** Reconnects tried or waiting since the broker was last reachable (0 while up). */
  reconnectAttempts: number;
  url: string;
  devicesAttached: number;
  unackedMessages: number;
  /** Messages or values the bridge refused since the hub started (every code of tendril_mqtt_refused_total). */
  refused: number;
  /** $SYS/broker/publish/messages/dropped as the broker last published it (null: never seen). */
  brokerDropped: number | null;
  /** Increase of brokerDropped since the hub connected (what the broker lost while the hub ran). */
  brokerDroppedSinceStart: number;
}

/** Counters the metrics read at scrape time. */
export interface BridgeCounts {
  messages: Record<'data' | 'birth' | 'state' | 'cmdResult' | 'template' | 'sys' | 'unrouted', number>;
  refused: Map<string, number>;
  unknownDevices: number;
  quarantined: number;
  readingsFed: number;
  qos0Dropped: number;
  commandsPublished: number;
  errorsPublished: number;
  /** Error messages not sent: over the device's budget. */
  errorsSuppressed: number;
  storeBusyPauses: number;
}

/** The broker URL without its password, for status and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}
