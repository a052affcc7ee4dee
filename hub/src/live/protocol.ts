/**
 * tendril.live.v1 (docs/live.md): limits, message shapes and the parsing of client messages. Pure: no socket,
 * no hub state. Section numbers (§) are docs/live.md.
 */
import type { HttpErrorCode } from '../errors.js';

export const LIVE_SUBPROTOCOL = 'tendril.live.v1';
export const LIVE_PATH = '/v1/live';

export type StreamName = 'fleet' | 'device' | 'commands' | 'health';
export const STREAMS: readonly StreamName[] = ['fleet', 'device', 'commands', 'health'];

/** Limits of one client (§8, §7); each is an option of the plugin. */
export interface LiveLimits {
  /** §1.2.3: larger client messages close the connection with 1009. */
  maxMessageBytes: number;
  /** §8: token bucket of requests per client. */
  requestsPerSecond: number;
  requestBurst: number;
  maxSubscriptions: number;
  maxDevicesPerSubscription: number;
  maxMetricsPerSubscription: number;
  /** §4.2: bounds of a subscription's minIntervalMs. */
  minIntervalMs: number;
  maxIntervalMs: number;
  /** §7.4.4: ping period; a client silent for twice this is terminated. */
  pingIntervalMs: number;
  /** §2.2.2: time to send `auth` when the cookie did not authenticate. */
  authTimeoutMs: number;
  /** §7.1.1: the hub writes while the socket's bufferedAmount is below this. */
  highWaterBytes: number;
  /** §7.1.1: cap of the coalesced data outbox of one client. */
  dataOutboxBytes: number;
  /** §7.2.1: cap of the control queue of one client. */
  controlQueueBytes: number;
  /**
   * §5.4.2: size a snapshot part stays under. A browser decodes and parses each part in one task: 64 KiB
   * (about 115 fleet rows) is a few ms, where 256 KiB parts measured 60-90 ms of CPU per part on a busy machine
   * (bench/dashboard-browser.mjs --trace).
   */
  snapshotPartBytes: number;
  /**
   * §3.6: size an `events` message (several events of one subscription ready in the same flush) stays under;
   * also what a client's batches hold in all before they are written (§7.3).
   */
  batchBytes: number;
  /**
   * §6.2.4: events one resume replays to its subscription; past this it resyncs (§7.4.2). Each replayed event
   * of a metric subset is parsed again, so an unbounded replay let one request hold the event loop.
   */
  maxReplayEvents: number;
  /** §8: open live connections in all, and from one client address; more are refused at the upgrade. */
  maxClients: number;
  maxClientsPerAddress: number;
}

export const DEFAULT_LIVE_LIMITS: Readonly<LiveLimits> = Object.freeze({
  maxMessageBytes: 16_384,
  requestsPerSecond: 20,
  requestBurst: 40,
  maxSubscriptions: 32,
  maxDevicesPerSubscription: 500,
  maxMetricsPerSubscription: 64,
  minIntervalMs: 50,
  maxIntervalMs: 60_000,
  pingIntervalMs: 30_000,
  authTimeoutMs: 10_000,
  highWaterBytes: 65_536,
  dataOutboxBytes: 1_048_576,
  controlQueueBytes: 262_144,
  snapshotPartBytes: 65_536,
  batchBytes: 65_536,
  maxReplayEvents: 20_000,
  maxClients: 2000,
  maxClientsPerAddress: 50,
});

/** What `hello.limits` shows a client (§2.3). */
export function publicLimits(l: LiveLimits): Record<string, number> {
  return {
    maxMessageBytes: l.maxMessageBytes,
    requestsPerSecond: l.requestsPerSecond,
    requestBurst: l.requestBurst,
    maxSubscriptions: l.maxSubscriptions,
    maxDevicesPerSubscription: l.maxDevicesPerSubscription,
    maxMetricsPerSubscription: l.maxMetricsPerSubscription,
    minIntervalMs: l.minIntervalMs,
    pingIntervalMs: l.pingIntervalMs,
    dataOutboxBytes: l.dataOutboxBytes,
    controlQueueBytes: l.controlQueueBytes,
  };
}

/** Close codes and reasons (§9). */
export const CLOSE = Object.freeze({
  shuttingDown: [1001, 'SHUTTING_DOWN'],
  binary: [1003, 'INVALID_REQUEST'],
  unauthorized: [1008, 'UNAUTHORIZED'],
  forbidden: [1008, 'FORBIDDEN'],
  passwordChange: [1008, 'PASSWORD_CHANGE_REQUIRED'],
  controlQueueFull: [1008, 'CONTROL_QUEUE_FULL'],
  tooLarge: [1009, 'PAYLOAD_TOO_LARGE'],
  subprotocol: [1002, 'SUBPROTOCOL'],
  internal: [1011, 'INTERNAL_ERROR'],
} as const satisfies Record<string, readonly [number, string]>);

export interface ResumePoint {
  epoch: string;
  offset: number;
}

export interface SubscribeRequest {
  type: 'subscribe';
  id: number;
  stream: StreamName;
  devices: string[] | null;
  metrics: string[] | null;
  minIntervalMs: number | null;
  resume: ResumePoint | null;
}

export interface UpdateRequest {
  type: 'update';
  id: number;
  subscription: number;
  addDevices: string[];
  removeDevices: string[];
  addMetrics: string[];
  removeMetrics: string[];
  /** undefined: unchanged; null: no maximum rate. */
  minIntervalMs: number | null | undefined;
}

export interface UnsubscribeRequest {
  type: 'unsubscribe';
  id: number;
  subscription: number;
}

export interface PingRequest {
  type: 'ping';
  id: number;
}

export interface AuthMessage {
  type: 'auth';
  token: string;
}

export type ClientRequest = SubscribeRequest | UpdateRequest | UnsubscribeRequest | PingRequest;
export type ClientMessage = ClientRequest | AuthMessage;

/** A refused request: answered with `error` (§3.3); `id` null when none could be read. */
export class LiveRequestError extends Error {
  override readonly name = 'LiveRequestError';
  constructor(
    readonly code: HttpErrorCode,
    message: string,
    readonly id: number | null = null,
  ) {
    super(message);
  }
}

const MAX_ID = Number.MAX_SAFE_INTEGER;
const MAX_NAME_CHARS = 128;

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_ID;
}

function invalid(id: number | null, message: string): LiveRequestError {
  return new LiveRequestError('INVALID_REQUEST', message, id);
}

function checkFields(obj: Record<string, unknown>, allowed: readonly string[], id: number | null, type: string): void {
  for (const k of Object.keys(obj)) {
    // §1.2.4: a typo is heard, not ignored.
    if (!allowed.includes(k))
      throw invalid(id, `Unknown field "${k}" in ${type}; allowed: ${allowed.join(', ')} (docs/live.md §4).`);
  }
}

function stringList(
  v: unknown,
  field: string,
  id: number,
  max: number,
  code: HttpErrorCode,
  allowEmpty = false,
): string[] {
  if (!Array.isArray(v)) throw invalid(id, `${field} must be an array of strings.`);
  if (v.length === 0 && !allowEmpty) throw invalid(id, `${field} must not be empty.`);
  if (v.length > max)
    throw new LiveRequestError(
      code,
      `${field} has ${v.length} entries; at most ${max} are allowed (docs/live.md §8).`,
      id,
    );
  const out = new Set<string>();
  for (const s of v) {
    if (typeof s !== 'string' || s.length === 0 || s.length > MAX_NAME_CHARS) {
      throw invalid(id, `${field} must hold strings of 1 to ${MAX_NAME_CHARS} characters.`);
    }
    out.add(s);
  }
  return [...out];
}

function interval(v: unknown, id: number, limits: LiveLimits): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < limits.minIntervalMs || v > limits.maxIntervalMs) {
    throw invalid(id, `minIntervalMs must be an integer from ${limits.minIntervalMs} to ${limits.maxIntervalMs} (ms).`);
  }
  return v;
}

/**
 * Parses one client text message (§1.2, §2.2, §3, §4). Throws LiveRequestError with the code to answer.
 * The size limit (§1.2.3) is checked by the caller before parsing.
 */
export function parseClientMessage(text: string, limits: LiveLimits): ClientMessage {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    throw invalid(null, 'The message is not JSON; every message is one JSON object with a "type" (docs/live.md §1.2).');
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
    throw invalid(
      null,
      'The message is not a JSON object; every message is one JSON object with a "type" (docs/live.md §1.2).',
    );
  }
  const m = msg as Record<string, unknown>;
  if (m.type === 'auth') {
    checkFields(m, ['type', 'token'], null, 'auth');
    if (typeof m.token !== 'string' || m.token.length === 0 || m.token.length > 512) {
      throw invalid(null, 'auth.token must be a string of 1 to 512 characters (docs/live.md §2.2).');
    }
    return { type: 'auth', token: m.token };
  }
  const id = isId(m.id) ? m.id : null;
  if (id === null) {
    throw invalid(
      null,
      'A request needs an integer "id" from 1 to 2^53 - 1 that the answer will echo (docs/live.md §3.1).',
    );
  }
  switch (m.type) {
    case 'ping':
      checkFields(m, ['type', 'id'], id, 'ping');
      return { type: 'ping', id };
    case 'subscribe':
      return parseSubscribe(m, id, limits);
    case 'update':
      return parseUpdate(m, id, limits);
    case 'unsubscribe':
      checkFields(m, ['type', 'id', 'subscription'], id, 'unsubscribe');
      if (!isId(m.subscription)) throw invalid(id, 'unsubscribe.subscription must be the id of a subscribe request.');
      return { type: 'unsubscribe', id, subscription: m.subscription };
    default:
      throw invalid(
        id,
        `Unknown request type ${JSON.stringify(m.type)}; expected subscribe, update, unsubscribe or ping (docs/live.md §3.1).`,
      );
  }
}

function parseSubscribe(m: Record<string, unknown>, id: number, limits: LiveLimits): SubscribeRequest {
  checkFields(m, ['type', 'id', 'stream', 'devices', 'metrics', 'minIntervalMs', 'resume'], id, 'subscribe');
  const stream = m.stream;
  if (typeof stream !== 'string' || !(STREAMS as readonly string[]).includes(stream)) {
    throw invalid(id, `subscribe.stream must be one of ${STREAMS.join(', ')} (docs/live.md §4.1).`);
  }
  const s = stream as StreamName;
  let devices: string[] | null = null;
  if (m.devices !== undefined) {
    if (s !== 'device' && s !== 'commands')
      throw invalid(id, `subscribe.devices applies to the device and commands streams, not ${s}.`);
    devices = stringList(m.devices, 'devices', id, limits.maxDevicesPerSubscription, 'TOO_MANY_DEVICES');
  } else if (s === 'device') {
    throw invalid(
      id,
      'subscribe to the device stream needs "devices": the ids of the devices to follow (docs/live.md §4.2).',
    );
  }
  let metrics: string[] | null = null;
  if (m.metrics !== undefined) {
    if (s !== 'device') throw invalid(id, `subscribe.metrics applies to the device stream, not ${s}.`);
    metrics = stringList(m.metrics, 'metrics', id, limits.maxMetricsPerSubscription, 'INVALID_REQUEST');
  }
  const minIntervalMs = m.minIntervalMs === undefined ? null : interval(m.minIntervalMs, id, limits);
  let resume: ResumePoint | null = null;
  if (m.resume !== undefined) {
    const r = m.resume as Record<string, unknown> | null;
    if (
      typeof r !== 'object' ||
      r === null ||
      typeof r.epoch !== 'string' ||
      r.epoch.length > 64 ||
      typeof r.offset !== 'number' ||
      !Number.isInteger(r.offset) ||
      r.offset < 0
    ) {
      throw invalid(
        id,
        'subscribe.resume must be {"epoch": string, "offset": integer >= 0} from an earlier event (docs/live.md §6.2).',
      );
    }
    checkFields(r, ['epoch', 'offset'], id, 'resume');
    resume = { epoch: r.epoch, offset: r.offset };
  }
  return { type: 'subscribe', id, stream: s, devices, metrics, minIntervalMs, resume };
}

function parseUpdate(m: Record<string, unknown>, id: number, limits: LiveLimits): UpdateRequest {
  checkFields(
    m,
    ['type', 'id', 'subscription', 'addDevices', 'removeDevices', 'addMetrics', 'removeMetrics', 'minIntervalMs'],
    id,
    'update',
  );
  if (!isId(m.subscription)) throw invalid(id, 'update.subscription must be the id of a subscribe request.');
  const list = (field: string, max: number, code: HttpErrorCode): string[] =>
    m[field] === undefined ? [] : stringList(m[field], field, id, max, code);
  const req: UpdateRequest = {
    type: 'update',
    id,
    subscription: m.subscription,
    addDevices: list('addDevices', limits.maxDevicesPerSubscription, 'TOO_MANY_DEVICES'),
    removeDevices: list('removeDevices', limits.maxDevicesPerSubscription, 'INVALID_REQUEST'),
    addMetrics: list('addMetrics', limits.maxMetricsPerSubscription, 'INVALID_REQUEST'),
    removeMetrics: list('removeMetrics', limits.maxMetricsPerSubscription, 'INVALID_REQUEST'),
    minIntervalMs:
      m.minIntervalMs === undefined
        ? undefined
        : m.minIntervalMs === null
          ? null
          : interval(m.minIntervalMs, id, limits),
  };
  if (
    req.addDevices.length + req.removeDevices.length + req.addMetrics.length + req.removeMetrics.length === 0 &&
    req.minIntervalMs === undefined
  ) {
    throw invalid(
      id,
      'update changes nothing: give addDevices, removeDevices, addMetrics, removeMetrics or minIntervalMs (docs/live.md §4.3).',
    );
  }
  return req;
}

/** The `error` answer (§3.3). */
export function errorMessage(id: number | null, code: string, message: string): string {
  return JSON.stringify({ type: 'error', id, error: { code, message } });
}

/** The `result` answer (§3.2). */
export function resultMessage(id: number, result: unknown): string {
  return `{"type":"result","id":${id},"result":${JSON.stringify(result)}}`;
}

/** An event (§3.5) around a body serialised once for every client. */
export function eventMessage(subscription: number, offset: number, body: string): string {
  return `{"type":"event","id":${subscription},"offset":${offset},"event":${body}}`;
}
