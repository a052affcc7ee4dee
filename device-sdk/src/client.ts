/**
 * The device client: one reconnecting tendril.v1 connection, a bounded buffer of unacked readings, and
 * command handlers (docs/sdk.md). It uses only the WHATWG WebSocket surface (on* handlers, send, close,
 * readyState, binaryType, protocol), so it runs in browsers, Deno, Bun and Node 22, and on Node 20 with
 * the `ws` package passed in. Zero runtime dependencies.
 */
import { encodeDeviceFrame, fitsKind, truncateUtf8 } from './codec/encode.js';
import { decodeHubFrame } from './codec/decode.js';
import {
  SUBPROTOCOL,
  type DeltaContext,
  type DeviceFrame,
  type HubFrame,
  type MetricDeclaration,
  type MetricKind,
  type Reading,
  type Value,
  type WelcomeFrame,
} from './codec/frames.js';
import { DEFAULT_LIMITS } from './codec/limits.js';

export const SDK_VERSION = 'ts-0.1.0';

/**
 * What the browser's WebSocket, `ws`'s and the host's timers type differently (event objects, constructor
 * options, timer handles), and command arguments, which are whatever JSON the hub sent. Typed `any` so that
 * every one of them fits: with exact types an event handler fits only one class, as handler parameters are
 * checked contravariantly.
 */
// biome-ignore lint/suspicious/noExplicitAny: see above
type Loose = any;

/** The part of a WHATWG WebSocket the client uses. `ws`'s WebSocket class fits it. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: Loose) => void) | null;
  onmessage: ((ev: Loose) => void) | null;
  onclose: ((ev: Loose) => void) | null;
  onerror: ((ev: Loose) => void) | null;
}

/** Called as `new WebSocket(url, 'tendril.v1', wsOptions)`; browsers ignore the third argument. */
export type WebSocketConstructor = new (url: string, protocol: string, options?: Loose) => WebSocketLike;

export interface MetricOption {
  name: string;
  kind: MetricKind;
  /** Defaults to the metric's index in `metrics`. */
  alias?: number;
  unit?: string;
  min?: number;
  max?: number;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: Loose): void;
}

export interface TendrilDeviceOptions {
  url: string;
  deviceId: string;
  token: string;
  metrics: MetricOption[];
  WebSocket?: WebSocketConstructor;
  /** Third constructor argument (with `ws`: TLS options such as `ca`). */
  wsOptions?: Record<string, unknown>;
  firmware?: string;
  /** Most unacked readings kept; on overflow the oldest is dropped. Default 10 000. */
  bufferSize?: number;
  /** u32 identifying this run of the sequence counter. Default random. */
  epoch?: number;
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** ms since the Unix epoch; timestamps and rate pacing. Default Date.now. */
  clock?: () => number;
  /** [0, 1); reconnect jitter and the default epoch. Default Math.random. */
  random?: () => number;
  timers?: Timers;
}

export interface DisconnectInfo {
  code: number;
  reason: string;
  willReconnect: boolean;
}

export interface RejectInfo {
  seq: number;
  alias: number | null;
  /** Name of the metric the alias stands for; undefined when the whole reading was rejected. */
  metric: string | undefined;
  code: string;
  message: string;
}

export interface CommandContext {
  commandId: number;
  name: string;
  /** How long the hub waits for a final status, ms. */
  timeoutMs: number;
}

export type CommandHandler = (args: Loose, ctx: CommandContext) => unknown;

export interface TendrilDeviceEvents {
  connect: (welcome: WelcomeFrame) => void;
  disconnect: (info: DisconnectInfo) => void;
  ack: (seq: number) => void;
  drop: (info: { count: number; total: number }) => void;
  reject: (info: RejectInfo) => void;
  backoff: (info: { code: string; pauseMs: number }) => void;
  error: (err: Error) => void;
}

export interface DeviceStats {
  /** Readings accepted by send(). Always sent = acked + dropped + buffered. */
  sent: number;
  /** Readings an ACK (or WELCOME.ackedSeq) covered: durable in the hub or rejected by it. */
  acked: number;
  /** Per-value rejections by the hub, by error code. */
  rejected: Record<string, number>;
  /** Readings discarded unsent: buffer overflow (oldest first), or too large for the hub's frame limit. */
  dropped: number;
  /** Readings held until an ACK covers them. */
  buffered: number;
  /** Connection attempts after the first. */
  reconnects: number;
  /** True between WELCOME and the end of that connection. */
  connected: boolean;
}

/** Throw this from a command handler to answer `rejected` (the device will not do it) instead of `failed`. */
export class CommandRejected extends Error {
  override readonly name = 'CommandRejected';
}

/** An ERROR frame from the hub, or a protocol failure the client detected; `code` is a registry code. */
export class TendrilError extends Error {
  override readonly name = 'TendrilError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** §6.4, §6.7.2: close reasons after which reconnecting cannot help (docs/sdk.md, "When it stops"). */
const TERMINAL = ['AUTH_FAILED', 'REPLACED', 'DEVICE_DISABLED'];
/** Heartbeat assumed before WELCOME tells the real one (the hub's default, §6). */
const DEFAULT_HEARTBEAT_MS = 10_000;
/** Silent heartbeat periods after which the connection counts as dead. */
const DEAD_AFTER_PERIODS = 3;
/** Command ids remembered for duplicate detection. */
const RECENT_COMMANDS = 256;
const CLOSE_GRACE_MS = 5000;
const { maxStringValueBytes, maxDetailBytes } = DEFAULT_LIMITS;

/** One timer that is pending or not: arm() replaces a pending run, cancel() drops it. */
class Timer {
  #timers: Timers;
  #handle: unknown;
  constructor(timers: Timers) {
    this.#timers = timers;
  }

  get pending(): boolean {
    return this.#handle !== undefined;
  }

  arm(ms: number, fn: () => void): void {
    this.cancel();
    this.#handle = this.#timers.setTimeout(() => {
      this.#handle = undefined;
      fn();
    }, ms);
  }

  cancel(): void {
    if (this.#handle !== undefined) this.#timers.clearTimeout(this.#handle);
    this.#handle = undefined;
  }
}

interface CommandEntry {
  /** Final COMMAND_RESULT once the handler settled. */
  done?: DeviceFrame;
  /** The final result still has to reach the hub (the connection dropped before it was sent). */
  unsent?: boolean;
}

export class TendrilDevice {
  readonly #o: TendrilDeviceOptions;
  readonly #WS: WebSocketConstructor;
  readonly #metrics: MetricDeclaration[];
  readonly #byName = new Map<string, MetricDeclaration>();
  readonly #byAlias = new Map<number, MetricDeclaration>();
  readonly #clock: () => number;
  readonly #random: () => number;
  readonly #timers: Timers;
  readonly #bufferSize: number;
  readonly epoch: number;

  #listeners: { [E in keyof TendrilDeviceEvents]?: Array<TendrilDeviceEvents[E]> } = {};
  #handlers = new Map<string, CommandHandler>();
  #commands = new Map<number, CommandEntry>();

  /** Unacked readings, oldest first (ascending seq). */
  #pending: Reading[] = [];
  /** How many of `pending`, from the front, went out on the current connection since it began or the last BACKOFF. */
  #sentCount = 0;
  #seq = 0;
  #ackedSeq = 0;
  /** The first WELCOME of this instance has arrived (see onWelcome). */
  #numbered = false;

  #running = false;
  #sock: WebSocketLike | undefined;
  #welcome: WelcomeFrame | undefined;
  #ctx: DeltaContext = { prevSeq: 0, prevTs: 0 };
  #helloClock = 0;
  #lastErrorCode = '';
  #attempt = 0;
  #quiet = 0;
  #seesPings = false;

  #tokens = 0;
  #refilledAt = 0;

  #tick: Timer;
  #reconnect: Timer;
  /** Waits for rate tokens (WELCOME.maxRate). */
  #pace: Timer;
  /** Pending while a BACKOFF pause lasts: no readings go out. */
  #pause: Timer;
  /** close() waits this long for the hub's close frame. */
  #closeGrace: Timer;

  #dropsToReport = 0;
  /** The dropped count the hub last heard, in HELLO or STATUS. */
  #reportedDropped = 0;
  #flushWaiters: Array<() => void> = [];
  #closeWaiters: Array<() => void> = [];

  #counts = { sent: 0, acked: 0, dropped: 0, reconnects: 0 };
  #rejectedByCode: Record<string, number> = {};

  constructor(options: TendrilDeviceOptions) {
    this.#o = options;
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError('no WebSocket: pass { WebSocket } (on Node 20: import WebSocket from "ws")');
    this.#WS = WS;
    this.#clock = options.clock ?? Date.now;
    this.#random = options.random ?? Math.random;
    // Browsers refuse window.setTimeout called on another object, so the globals are called unbound.
    const t = options.timers;
    const timers: Timers =
      t && t.setTimeout !== setTimeout
        ? t
        : { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h) };
    this.#timers = timers;
    this.#tick = new Timer(timers);
    this.#reconnect = new Timer(timers);
    this.#pace = new Timer(timers);
    this.#pause = new Timer(timers);
    this.#closeGrace = new Timer(timers);
    this.#bufferSize = options.bufferSize ?? 10_000;
    if (!(this.#bufferSize >= 1)) throw new TypeError('bufferSize must be >= 1');
    this.epoch = options.epoch ?? Math.floor(this.#random() * 2 ** 32);
    // The encoder reads min/max only when defined, as HELLO carries them (§4.2).
    this.#metrics = options.metrics.map(({ name, kind, alias, unit = '', min, max }, i) => {
      const d: MetricDeclaration = { alias: alias ?? i, name, kind, unit, min, max };
      this.#byName.set(name, d);
      this.#byAlias.set(d.alias, d);
      return d;
    });
    // The codec validates id, token, epoch and every declaration (§4); a bad option fails here, not at connect.
    try {
      this.#encode(this.#hello());
    } catch (err) {
      throw new TypeError(`invalid TendrilDevice options: ${(err as Error).message}`);
    }
  }

  get stats(): DeviceStats {
    return {
      ...this.#counts,
      rejected: { ...this.#rejectedByCode },
      buffered: this.#pending.length,
      connected: !!this.#welcome,
    };
  }

  on<E extends keyof TendrilDeviceEvents>(event: E, listener: TendrilDeviceEvents[E]): this {
    ((this.#listeners[event] ??= []) as Array<TendrilDeviceEvents[E]>).push(listener);
    return this;
  }

  off<E extends keyof TendrilDeviceEvents>(event: E, listener: TendrilDeviceEvents[E]): this {
    const list = this.#listeners[event] as Array<TendrilDeviceEvents[E]> | undefined;
    const i = list ? list.indexOf(listener) : -1;
    if (i >= 0) list!.splice(i, 1);
    return this;
  }

  /** Registers the handler for COMMAND frames named `name` (one per name; a later call replaces it). */
  onCommand(name: string, handler: CommandHandler): this {
    this.#handlers.set(name, handler);
    return this;
  }

  /** Connects, and keeps reconnecting until close() or a terminal close (AUTH_FAILED, REPLACED, DEVICE_DISABLED). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#attempt = 0;
    if (!this.#sock && !this.#reconnect.pending) this.#connect();
  }

  /**
   * Buffers a reading and sends it when the connection and the rate allow. Returns its seq.
   * `ts`: ms since the Unix epoch (default clock()), or null to let the hub stamp its arrival time.
   * Throws TypeError for an unknown metric or a value of the wrong JS type; range is the hub's call.
   */
  send(values: Record<string, number | boolean | string | undefined>, ts: number | null = this.#clock()): number {
    const out: Value[] = [];
    for (const name in values) {
      const value = values[name];
      if (value === undefined) continue;
      const m = this.#byName.get(name);
      if (!m) throw new TypeError(`unknown metric "${name}"; declared: ${[...this.#byName.keys()].join(', ')}`);
      if (!fitsKind(m.kind, value))
        throw new TypeError(`metric "${name}" is declared ${m.kind}; got ${typeof value} ${String(value)}`);
      // §9.2: a longer string (or one with a lone surrogate) cannot be encoded at all.
      if (typeof value === 'string' && truncateUtf8(value, maxStringValueBytes) !== value) {
        throw new TypeError(`metric "${name}": a string value is at most ${maxStringValueBytes} bytes of UTF-8`);
      }
      out.push({ alias: m.alias, kind: m.kind, value });
    }
    if (!out.length) throw new TypeError('a reading needs at least one value');
    if (ts !== null && !(ts >= 0 && ts <= Number.MAX_SAFE_INTEGER))
      throw new TypeError(`timestamp must be ms since the Unix epoch, got ${ts}`);
    const seq = ++this.#seq;
    this.#pending.push({ seq, ts: ts === null ? null : Math.floor(ts), values: out });
    this.#counts.sent++;
    if (this.#pending.length > this.#bufferSize) {
      // §7.5: overflow drops the oldest, counts it, and tells the hub (HELLO.dropped, STATUS).
      this.#pending.shift();
      if (this.#sentCount > 0) this.#sentCount--;
      this.#counts.dropped++;
      this.#reportDrops();
    }
    this.#pump();
    return seq;
  }

  /** Resolves once every buffered reading is acked; rejects after timeoutMs. */
  flush(timeoutMs: number): Promise<void> {
    if (!this.#pending.length) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = this.#timers.setTimeout(() => {
        this.#flushWaiters = this.#flushWaiters.filter((w) => w !== done);
        reject(
          new TendrilError(
            'FLUSH_TIMEOUT',
            `flush timed out after ${timeoutMs} ms with ${this.#pending.length} reading(s) unacked`,
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        this.#timers.clearTimeout(t);
        resolve();
      };
      this.#flushWaiters.push(done);
    });
  }

  /** Stops reconnecting and closes the connection with 1000. Unacked readings stay in memory. */
  close(): Promise<void> {
    this.#running = false;
    this.#reconnect.cancel();
    this.#pause.cancel();
    this.#pace.cancel();
    const s = this.#sock;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => {
      this.#closeWaiters.push(resolve);
      if (this.#closeGrace.pending) return;
      // A peer that never answers the close frame must not hold close() open.
      this.#closeGrace.arm(CLOSE_GRACE_MS, () => this.#ended(s, 1006, 'close timeout'));
      try {
        s.close(1000);
      } catch {
        this.#ended(s, 1006, '');
      }
    });
  }

  // ---- connection ----

  #hello(): DeviceFrame {
    const o = this.#o;
    return {
      type: 'hello',
      deviceId: o.deviceId,
      token: o.token,
      firmware: o.firmware ?? '',
      sdk: SDK_VERSION,
      epoch: this.epoch,
      lastSeq: this.#seq,
      clock: this.#helloClock,
      dropped: this.#counts.dropped,
      metrics: this.#metrics,
    };
  }

  #encode(frame: DeviceFrame): Uint8Array {
    const w = this.#welcome;
    return encodeDeviceFrame(frame, this.#ctx, w && { maxFrameBytes: w.maxFrameBytes, maxBatch: w.maxBatch });
  }

  #connect(): void {
    let s: WebSocketLike;
    try {
      s = new this.#WS(this.#o.url, SUBPROTOCOL, { perMessageDeflate: false, ...this.#o.wsOptions });
      s.binaryType = 'arraybuffer';
    } catch (err) {
      this.#emit('error', err as Error);
      this.#reconnectLater();
      return;
    }
    this.#sock = s;
    this.#quiet = 0;
    this.#lastErrorCode = '';
    const guard =
      <A extends unknown[]>(fn: (...a: A) => void) =>
      (...a: A): void => {
        // Events of a socket this client already gave up on are ignored.
        if (this.#sock !== s) return;
        try {
          fn(...a);
        } catch (err) {
          this.#emit('error', err as Error);
        }
      };
    s.onopen = guard(() => {
      // §1.1: the hub must have selected the subprotocol.
      if (s.protocol !== SUBPROTOCOL) {
        this.#emit(
          'error',
          new TendrilError('UNEXPECTED_FRAME', `the hub chose subprotocol "${s.protocol}", not ${SUBPROTOCOL}`),
        );
        return this.#abandon(s, 1002, 'UNEXPECTED_FRAME');
      }
      // §6.1: HELLO first, then nothing until WELCOME.
      this.#helloClock = Math.max(0, Math.floor(this.#clock()));
      this.#reportedDropped = this.#counts.dropped;
      this.#write(this.#encode(this.#hello()));
    });
    s.onmessage = guard((ev: { data: unknown }) => this.#receive(s, ev.data));
    s.onclose = guard((ev: { code: number; reason: string }) => this.#ended(s, ev.code, ev.reason));
    // The close event that follows carries what there is to know; but without an error listener `ws`
    // would throw the error out of its event emitter.
    s.onerror = () => {};
    // Node's `ws` shows the hub's pings; WHATWG sockets answer them invisibly (see tick()).
    const on = (s as { on?: unknown }).on;
    this.#seesPings = typeof on === 'function';
    if (this.#seesPings)
      (on as (e: string, f: () => void) => void).call(
        s,
        'ping',
        guard(() => (this.#quiet = 0)),
      );
    this.#armTick(DEFAULT_HEARTBEAT_MS);
  }

  #receive(s: WebSocketLike, data: unknown): void {
    this.#quiet = 0;
    let f: HubFrame;
    try {
      if (typeof data === 'string') throw new TendrilError('TEXT_FRAME', 'a text message');
      f = decodeHubFrame(new Uint8Array(data as ArrayBuffer));
      // §3.2: nothing but WELCOME or ERROR before WELCOME, and one WELCOME per connection.
      if ((f.type === 'welcome') === !!this.#welcome && f.type !== 'error') {
        throw new TendrilError('UNEXPECTED_FRAME', `${f.type} frame ${this.#welcome ? 'after' : 'before'} WELCOME`);
      }
    } catch (err) {
      const { code = 'FRAME_TRUNCATED', message } = err as TendrilError;
      this.#emit('error', new TendrilError(code, `bad frame from the hub: ${message}`));
      // §6.6.5
      this.#abandon(s, 1002, code);
      return;
    }
    switch (f.type) {
      case 'welcome':
        return this.#onWelcome(f);
      case 'ack':
        return this.#acked(f.seq);
      case 'error':
        if (f.seq > 0) {
          // §7.1: a per-value rejection; the other values of the reading were stored and it will be acked.
          this.#rejectedByCode[f.code] = (this.#rejectedByCode[f.code] ?? 0) + 1;
          const metric = f.alias === null ? undefined : this.#byAlias.get(f.alias)?.name;
          this.#emit('reject', { seq: f.seq, alias: f.alias, metric, code: f.code, message: f.message });
        } else {
          this.#lastErrorCode = f.code;
          this.#emit('error', new TendrilError(f.code, f.message || f.code));
        }
        return;
      case 'backoff':
        return this.#backoff(f.code, f.pauseMs);
      case 'command':
        return this.#command(f.commandId, f.name, f.args, f.timeoutMs);
    }
  }

  #onWelcome(w: WelcomeFrame): void {
    if (!this.#numbered) {
      // First WELCOME of this instance: the hub holds none of its readings yet. With a persisted epoch the
      // hub may already hold seqs 1..ackedSeq from an earlier run; number ours after them, or the hub
      // would take them for duplicates (§6.3.5).
      this.#numbered = true;
      const base = w.ackedSeq;
      if (base > 0) {
        for (const r of this.#pending) r.seq += base;
        this.#seq += base;
        this.#ackedSeq = base;
      }
    }
    this.#welcome = { ...w, maxBatch: Math.max(1, w.maxBatch) };
    this.#attempt = 0;
    this.#sentCount = 0;
    // §5.1: both ends start the delta context at {WELCOME.ackedSeq, HELLO.clock}.
    this.#ctx = { prevSeq: w.ackedSeq, prevTs: this.#helloClock };
    this.#tokens = Math.max(1, w.maxRate);
    this.#refilledAt = this.#clock();
    this.#armTick(w.heartbeatMs);
    this.#acked(w.ackedSeq);
    this.#emit('connect', w);
    for (const entry of this.#commands.values()) {
      if (entry.unsent) this.#sendResult(entry);
    }
    this.#syncStatus();
    this.#pump();
  }

  /** §7.3: ACK is cumulative. */
  #acked(seq: number): void {
    let n = 0;
    while (n < this.#pending.length && this.#pending[n]!.seq <= seq) n++;
    if (n) {
      this.#pending.splice(0, n);
      this.#sentCount = Math.max(0, this.#sentCount - n);
      this.#counts.acked += n;
    }
    if (seq > this.#ackedSeq) {
      this.#ackedSeq = seq;
      this.#emit('ack', seq);
    }
    this.#settleFlush();
  }

  #settleFlush(): void {
    if (this.#pending.length) return;
    const waiters = this.#flushWaiters;
    this.#flushWaiters = [];
    for (const w of waiters) w();
  }

  /** §7.4: no readings for pauseMs; then everything unacked again, oldest first. */
  #backoff(code: string, pauseMs: number): void {
    this.#sentCount = 0;
    if (code === 'RATE_LIMITED') this.#tokens = Math.min(this.#tokens, 0);
    this.#pace.cancel();
    this.#pause.arm(pauseMs, () => this.#pump());
    this.#emit('backoff', { code, pauseMs });
  }

  /**
   * Sends what is unsent, oldest first, within WELCOME.maxRate: several readings as BATCH frames
   * (<= maxBatch, <= maxFrameBytes), a single one as READING (§4.3.1, §5.4, §6.3.4).
   */
  #pump(): void {
    const w = this.#welcome;
    const pending = this.#pending;
    if (!w || this.#pause.pending || this.#pace.pending) return;
    while (this.#sentCount < pending.length) {
      const first = this.#sentCount;
      let n = Math.min(pending.length - first, w.maxBatch);
      if (w.maxRate > 0) {
        const now = this.#clock();
        this.#tokens = Math.min(
          Math.max(1, w.maxRate),
          this.#tokens + (Math.max(0, now - this.#refilledAt) * w.maxRate) / 1000,
        );
        this.#refilledAt = now;
        if (this.#tokens < 1)
          return this.#pace.arm(Math.ceil(((1 - this.#tokens) * 1000) / w.maxRate), () => this.#pump());
        n = Math.min(n, Math.floor(this.#tokens));
      }
      // §5.4: every BATCH entry carries a timestamp; untimed readings travel alone.
      let k = 1;
      if (pending[first]!.ts !== null) while (k < n && pending[first + k]!.ts !== null) k++;
      let bytes: Uint8Array | undefined;
      for (; ; k = Math.ceil(k / 2)) {
        const batch = pending.slice(first, first + k);
        try {
          bytes = this.#encode(
            k > 1
              ? { type: 'batch', readings: batch as Array<Reading & { ts: number }> }
              : { type: 'reading', ...batch[0]! },
          );
          break;
        } catch (err) {
          if (k > 1) continue;
          // A reading the hub's frame limit cannot carry would block every later one: discard it.
          const [r] = pending.splice(first, 1);
          const { code = 'FRAME_TOO_LARGE', message } = err as TendrilError;
          this.#counts.dropped++;
          this.#reportDrops();
          this.#settleFlush();
          this.#emit('error', new TendrilError(code, `reading ${r!.seq} cannot be sent and was dropped: ${message}`));
          break;
        }
      }
      if (!bytes) continue;
      this.#write(bytes);
      this.#sentCount += k;
      this.#tokens -= k;
    }
  }

  #write(bytes: Uint8Array): void {
    const s = this.#sock;
    if (s && s.readyState === 1) s.send(bytes);
  }

  /** Coalesced: one 'drop' event and at most one STATUS per burst of drops. */
  #reportDrops(): void {
    if (this.#dropsToReport++) return;
    queueMicrotask(() => {
      const count = this.#dropsToReport;
      this.#dropsToReport = 0;
      this.#syncStatus();
      this.#emit('drop', { count, total: this.#counts.dropped });
    });
  }

  /** §7.5: STATUS whenever the dropped count changed since the hub last heard it. */
  #syncStatus(): void {
    if (!this.#welcome || this.#counts.dropped === this.#reportedDropped) return;
    this.#reportedDropped = this.#counts.dropped;
    this.#write(this.#encode({ type: 'status', dropped: this.#counts.dropped }));
  }

  // ---- liveness ----

  #armTick(heartbeatMs: number): void {
    this.#tick.cancel();
    if (heartbeatMs > 0) this.#tick.arm(heartbeatMs, () => this.#onTick(heartbeatMs));
  }

  /**
   * §6.5.4: the hub pings every heartbeatMs. A connection that delivers nothing for DEAD_AFTER_PERIODS
   * ticks (so at most 3 x heartbeatMs) is dead. Where pings are visible (ws) every ping counts; on a WHATWG
   * socket pings are invisible, so silence counts only while an answer is owed: WELCOME, or an ACK for
   * readings sent on this connection.
   */
  #onTick(heartbeatMs: number): void {
    this.#armTick(heartbeatMs);
    const owed = !this.#welcome || (!this.#pause.pending && this.#sentCount > 0);
    if (!this.#seesPings && !owed) this.#quiet = 0;
    else if (++this.#quiet >= DEAD_AFTER_PERIODS && this.#sock) this.#abandon(this.#sock, 4000, 'HEARTBEAT_LOST');
  }

  /** Gives up on a socket at once (dead or misbehaving) without waiting for its close handshake. */
  #abandon(s: WebSocketLike, code: number, reason: string): void {
    try {
      // Browsers refuse close codes below 3000 other than 1000: 1002 becomes 4002 there.
      try {
        s.close(code, reason);
      } catch {
        s.close(code + 3000, reason);
      }
    } catch {
      // Already closing; the socket is forgotten either way.
    }
    this.#ended(s, 1006, reason);
  }

  #ended(s: WebSocketLike, code: number, reason: string): void {
    if (this.#sock !== s) return;
    this.#sock = undefined;
    this.#welcome = undefined;
    this.#sentCount = 0;
    this.#tick.cancel();
    this.#pace.cancel();
    this.#closeGrace.cancel();
    // §6.7.2: retrying cannot fix bad credentials or a disabled device, and a REPLACED device would
    // displace its own replacement (§6.4); the application decides what to do.
    if (code === 1008 && (TERMINAL.includes(reason) || TERMINAL.includes(this.#lastErrorCode))) this.#running = false;
    const willReconnect = this.#running;
    if (willReconnect) this.#reconnectLater();
    this.#emit('disconnect', { code, reason, willReconnect });
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const w of waiters) w();
  }

  /** §6.7.1: exponential back-off with full jitter: random() * min(maxDelayMs, initialDelayMs * 2^attempt). */
  #reconnectLater(): void {
    const r = this.#o.reconnect;
    const cap = Math.min(r?.maxDelayMs ?? 30_000, (r?.initialDelayMs ?? 500) * 2 ** this.#attempt++);
    this.#reconnect.arm(this.#random() * cap, () => {
      this.#counts.reconnects++;
      this.#connect();
    });
  }

  // ---- commands (§8) ----

  #command(commandId: number, name: string, args: string, timeoutMs: number): void {
    const delivered: DeviceFrame = { type: 'commandResult', commandId, status: 'delivered', detail: '' };
    const seen = this.#commands.get(commandId);
    // §8.3: a duplicate delivery runs nothing; the hub gets the final result again, or `delivered` while it runs.
    if (seen) return this.#sendResult(seen, delivered);
    const entry: CommandEntry = {};
    this.#commands.set(commandId, entry);
    if (this.#commands.size > RECENT_COMMANDS) this.#commands.delete(this.#commands.keys().next().value!);
    // §8.2.1: `delivered` at once, before the handler runs.
    this.#sendResult(entry, delivered);
    const max = maxDetailBytes;
    const finish = (status: 'succeeded' | 'failed' | 'rejected', detail: string): void => {
      entry.done = { type: 'commandResult', commandId, status, detail: truncateUtf8(detail, max) };
      this.#sendResult(entry);
    };
    const handler = this.#handlers.get(name);
    if (!handler) return finish('rejected', `unknown command "${name}"`);
    let parsed: unknown;
    try {
      parsed = args === '' ? undefined : JSON.parse(args);
    } catch {
      return finish('rejected', `arguments of "${name}" are not valid JSON`);
    }
    new Promise((resolve) => resolve(handler(parsed, { commandId, name, timeoutMs })))
      .then(
        (result) => {
          const json = JSON.stringify(result ?? null) ?? 'null';
          if (truncateUtf8(json, max) !== json)
            finish('failed', `result of "${name}" is longer than ${max} bytes of JSON`);
          else finish('succeeded', json);
        },
        (err: unknown) => {
          const e = err as Error | undefined;
          finish(e?.name === 'CommandRejected' ? 'rejected' : 'failed', e?.message ?? String(err));
        },
      )
      .catch((err: unknown) => finish('failed', String(err)));
  }

  #sendResult(entry: CommandEntry, otherwise?: DeviceFrame): void {
    const frame = entry.done ?? otherwise;
    entry.unsent = !!entry.done && !this.#welcome;
    if (frame && this.#welcome) this.#write(this.#encode(frame));
  }

  #emit<E extends keyof TendrilDeviceEvents>(event: E, ...args: Parameters<TendrilDeviceEvents[E]>): void {
    for (const fn of (this.#listeners[event] ?? []).slice()) {
      try {
        (fn as (...a: unknown[]) => void)(...args);
      } catch (err) {
        // A throwing listener must not break the socket callbacks; it becomes an 'error' event.
        if (event !== 'error') this.#emit('error', err as Error);
      }
    }
  }
}
