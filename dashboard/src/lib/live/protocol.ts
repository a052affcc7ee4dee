/** Messages of tendril.live.v1 as the dashboard uses them (docs/live.md). Unknown fields are ignored (§1.2.4). */
import type { Command, Device, LatestValue, Presence, Role } from '../types.js';

export const SUBPROTOCOL = 'tendril.live.v1';

export type Stream = 'fleet' | 'device' | 'commands' | 'health';

export interface SubscribeSpec {
  stream: Stream;
  devices?: string[];
  metrics?: string[];
  minIntervalMs?: number;
}

export interface Principal {
  kind: string;
  name: string;
  role: Role;
}

export interface Hello {
  type: 'hello';
  protocol: string;
  auth: 'ok' | 'required';
  principal: Principal | null;
  serverTime: number;
  limits?: Record<string, number>;
}

export interface Reading {
  seq: number;
  ts: number;
  values: Record<string, number | boolean | string>;
}

export interface Health {
  store: { kind: string; state: 'up' | 'down' | 'unknown' };
  spool: { accepting: boolean; depthBytes: number; depthReadings: number; oldestUndrainedAgeMs: number } | null;
  devices: { connected: number; registered: number };
  shuttingDown: boolean;
  /** Present only when the hub runs the MQTT bridge (docs/live.md §5.3.2). */
  mqtt?: MqttHealth;
}

export interface MqttHealth {
  broker: 'up' | 'connecting' | 'down' | 'closed';
  url: string;
  since: number;
  reconnectAttempts: number;
  lastError: string | null;
  brokerDropped: number | null;
  brokerDroppedSinceStart: number;
  refused: number;
  unackedMessages: number;
  devicesAttached: number;
}

/** A complete snapshot (every part joined, §5.4.2). */
export interface Snapshot {
  kind: 'snapshot';
  gap: boolean;
  devices?: Device[];
  commands?: Command[];
  health?: Health;
}

export type LiveEvent =
  | Snapshot
  | { kind: 'presence'; deviceId: string; transport?: string | null; presence: Presence }
  | { kind: 'values'; deviceId: string; latest: Record<string, LatestValue> }
  | { kind: 'counters'; deviceId: string; rejected?: number; dropped?: number }
  | { kind: 'device'; change: 'created' | 'changed' | 'deleted'; deviceId: string; device: Device | null }
  | { kind: 'readings'; deviceId: string; readings: Reading[]; coalesced?: Record<string, number> }
  | { kind: 'command'; command: Command }
  | { kind: 'health'; health: Health }
  | { kind: 'added'; devices: Device[] }
  | { kind: 'resync' };

/** An event as it comes on the wire: a snapshot or `added` may be one part of several (§5.4.2). */
export type WireEvent = LiveEvent & { part?: number; parts?: number; last?: boolean };

export interface SubscribeResult {
  epoch: string;
  offset: number;
  recovered: boolean;
}

export type ServerMessage =
  | Hello
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number | null; error: { code: string; message: string } }
  | { type: 'event'; id: number; offset: number; event: WireEvent }
  | { type: 'events'; id: number; events: Array<{ offset: number; event: WireEvent }> }
  | { type: 'auth_ok'; principal: Principal };
