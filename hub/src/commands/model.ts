/**
 * The command lifecycle (docs/commands.md): states, limits and the Command object of the HTTP API.
 *
 *   queued ──► sent ──► delivered ──► succeeded | failed | rejected
 *     │          └──────────┴──► failed (TIMEOUT: no final status within timeoutMs of the first send)
 *     ├──► expired (still queued when its TTL passed)
 *     └──► cancelled (an operator cancelled it while still queued)
 */
import { DEFAULT_LIMITS } from '@tendril/device-sdk/codec';

export type CommandState =
  | 'queued'
  | 'sent'
  | 'delivered'
  | 'succeeded'
  | 'failed'
  | 'rejected'
  | 'expired'
  | 'cancelled';

export const COMMAND_STATES: readonly CommandState[] = [
  'queued',
  'sent',
  'delivered',
  'succeeded',
  'failed',
  'rejected',
  'expired',
  'cancelled',
];

/** States a command can still leave; at most COMMAND_LIMITS.maxUnfinishedPerDevice per device. */
export const UNFINISHED_STATES: readonly CommandState[] = ['queued', 'sent', 'delivered'];

export function isUnfinished(state: CommandState): boolean {
  return state === 'queued' || state === 'sent' || state === 'delivered';
}

const HOUR = 3_600_000;

export const COMMAND_LIMITS = Object.freeze({
  /** §8.1: COMMAND.name, UTF-8 bytes. */
  maxNameBytes: DEFAULT_LIMITS.maxCommandNameBytes,
  /** §8.1: COMMAND.args (JSON text), UTF-8 bytes. */
  maxArgsBytes: DEFAULT_LIMITS.maxCommandArgsBytes,
  defaultTtlMs: HOUR,
  minTtlMs: 1000,
  maxTtlMs: 7 * 24 * HOUR,
  defaultTimeoutMs: 30_000,
  minTimeoutMs: 100,
  maxTimeoutMs: HOUR,
  /** Commands in queued, sent or delivered per device; more are refused with COMMAND_QUEUE_FULL. */
  maxUnfinishedPerDevice: 1000,
  /** How long an idempotency key names the command it created. */
  idempotencyWindowMs: 24 * HOUR,
  maxIdempotencyKeyLength: 128,
  defaultPageSize: 50,
  maxPageSize: 500,
});

export interface CommandHistoryEntry {
  state: CommandState;
  /** ms since the Unix epoch. */
  at: number;
  detail?: string;
}

/** The Command object of the HTTP API and of the `commandChanged` event. */
export interface Command {
  /** Global, never reused; the commandId on the wire (§8.1). */
  id: number;
  deviceId: string;
  name: string;
  /** The arguments as given (any JSON value); null when the command has none. */
  args: unknown;
  state: CommandState;
  /**
   * succeeded: the device's result as JSON text; failed / rejected: the reason (from the device, or
   * `TIMEOUT: ...` from the hub); expired: why; cancelled: who cancelled it; null before a final state.
   */
  detail: string | null;
  /** succeeded: `detail` parsed as JSON (null when it is not JSON); null otherwise. */
  result: unknown;
  /** Who asked for it: the API principal ('admin' for the hub admin token). */
  requestedBy: string;
  idempotencyKey: string | null;
  createdAt: number;
  /** A command still queued at this time expires. */
  expiresAt: number;
  /** Time the device has, from the first send, to report a final status. */
  timeoutMs: number;
  /** Every state reached, oldest first; `sent` again for each re-send after a reconnect. */
  history: CommandHistoryEntry[];
}
