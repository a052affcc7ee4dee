/** The hub's HTTP contract as the dashboard uses it (docs/api.md, docs/commands.md, docs/storage.md). */

export type Role = 'viewer' | 'operator' | 'admin';
export type MetricKind = 'f32' | 'f64' | 'int' | 'bool' | 'string';
export type Scalar = number | boolean | string;
export type PresenceState = 'online' | 'offline' | 'never';

export interface MetricDeclaration {
  alias?: number;
  name: string;
  kind: MetricKind;
  unit?: string;
  min?: number;
  max?: number;
}

export interface Presence {
  state: PresenceState;
  /** Why offline (CLOSED, HEARTBEAT_LOST, ...), REPLACED while online after a takeover, else null. */
  reason: string | null;
  since: number;
  lastSeen?: number | null;
  remote?: string | null;
}

export interface LatestValue {
  ts: number;
  value: Scalar;
}

export interface Device {
  id: string;
  name: string;
  model: string;
  labels: Record<string, string>;
  createdAt?: number;
  disabled?: boolean;
  transport: string | null;
  firmware?: string | null;
  sdk?: string | null;
  presence: Presence;
  metrics: MetricDeclaration[];
  latest: Record<string, LatestValue>;
  dropped: number;
  /** Readings the hub rejected (validation), when the hub reports it. */
  rejected?: number;
}

export type CommandState =
  | 'queued'
  | 'sent'
  | 'delivered'
  | 'succeeded'
  | 'failed'
  | 'rejected'
  | 'expired'
  | 'cancelled';
export const FINAL_STATES: ReadonlySet<CommandState> = new Set([
  'succeeded',
  'failed',
  'rejected',
  'expired',
  'cancelled',
]);

export interface Command {
  id: number;
  deviceId: string;
  name: string;
  args: unknown;
  state: CommandState;
  detail: string | null;
  result?: unknown;
  requestedBy: string;
  idempotencyKey: string | null;
  createdAt: number;
  expiresAt?: number;
  timeoutMs?: number;
  history?: Array<{ state: CommandState; at: number; detail?: string }>;
}

export interface User {
  name: string;
  role: Role;
  mustChangePassword: boolean;
}

export interface HistoryPoint {
  ts: number;
  value: Scalar | null;
}

export interface HistoryAnswer {
  stepMs: number;
  from: number;
  to: number;
  points: HistoryPoint[];
}
