/**
 * The one owner of the live socket (docs/live.md, tendril.live.v1). Plain TypeScript with injectable
 * WebSocket and timers, so it is unit-tested without a browser; live/index.ts makes its status reactive.
 *
 * - Opens the socket while anything holds a subscription (retain/release), closes it a little after the
 *   last one goes (so switching views does not reconnect).
 * - Reconnects after any close except 1008 with back-off 1 s doubling to 30 s with jitter (§9), counting
 *   attempts, and at once when the browser says it is online again.
 * - Resubscribes every subscription on the new connection with `resume: { epoch, offset }` (§6.2); the
 *   subscription's handler hears whether it was recovered, and a replacing snapshot follows when not.
 * - Joins snapshot parts and hands over the whole snapshot once (§5.4.2); takes a batch of events (§3.6)
 *   apart into its events, in order.
 * - Tells the truth about the connection: `live` only after hello; `stale` when nothing at all arrived for
 *   `staleAfterMs` although the hub is asked to answer a ping every `pingEveryMs`; then the socket is
 *   dropped and reconnected (a half-open TCP connection otherwise looks "live" forever).
 */
import {
  SUBPROTOCOL,
  type Hello,
  type LiveEvent,
  type Principal,
  type ServerMessage,
  type Snapshot,
  type SubscribeResult,
  type SubscribeSpec,
} from './protocol.js';

export type ConnectionState = 'idle' | 'connecting' | 'live' | 'stale' | 'reconnecting' | 'offline';

export interface LiveStatus {
  state: ConnectionState;
  /** Reconnection attempts since the connection was last live. */
  attempt: number;
  /** When the current state began (ms). */
  since: number;
  /** When any message last arrived (ms), 0 before the first. */
  lastMessageAt: number;
  /** When the next reconnection attempt is due (reconnecting). */
  retryAt: number | null;
  /** Why offline / why the last connection closed. */
  detail: string | null;
  principal: Principal | null;
}

export interface SubscriptionHandler {
  /** A subscribe was answered; `resumed` says a resume was asked for. */
  onResult?(result: SubscribeResult, resumed: boolean): void;
  onEvent(event: LiveEvent, offset: number): void;
  onError?(error: { code: string; message: string }): void;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

type SocketCtor = new (url: string, protocols: string | string[]) => WebSocket;

export interface LiveClientOptions {
  url: string | (() => string);
  WebSocket?: SocketCtor;
  timers?: Timers;
  random?: () => number;
  pingEveryMs?: number;
  staleAfterMs?: number;
  /** A stale connection is dropped and reconnected after this long without any message. */
  deadAfterMs?: number;
  /** Close the socket this long after the last subscription went away. */
  idleCloseMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Told when the hub refuses the session (close 1008 UNAUTHORIZED or hello auth "required"). */
  onUnauthorized?: () => void;
  /**
   * Told after a second connection attempt in a row failed before hello: a browser cannot see why an upgrade
   * was refused (an expired session is refused with HTTP 401 before the upgrade, docs/live.md §2.1.4), so the
   * app asks the HTTP API, which says 401 when that is the reason.
   */
  onConnectFailures?: (attempt: number) => void;
}

const defaultTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

export class Subscription {
  /** Id of the subscribe request on the current connection; null while not subscribed. */
  wireId: number | null = null;
  epoch: string | null = null;
  offset: number | null = null;
  /** Epoch of a subscribe answered "not recovered", until its snapshot is complete. */
  pendingEpoch: string | null = null;
  closed = false;
  #parts: Snapshot[] = [];

  constructor(
    private readonly client: LiveClient,
    public spec: SubscribeSpec,
    readonly handler: SubscriptionHandler,
  ) {}

  /** Changes the subscription in place (§4.3); the spec remembered for resubscribing follows. */
  async update(change: {
    addDevices?: string[];
    removeDevices?: string[];
    addMetrics?: string[];
    removeMetrics?: string[];
    minIntervalMs?: number | null;
  }): Promise<void> {
    const devices = new Set(this.spec.devices ?? []);
    for (const d of change.addDevices ?? []) devices.add(d);
    for (const d of change.removeDevices ?? []) devices.delete(d);
    const spec: SubscribeSpec = { ...this.spec, ...(this.spec.devices ? { devices: [...devices] } : {}) };
    if (this.spec.metrics) {
      const metrics = new Set(this.spec.metrics);
      for (const m of change.addMetrics ?? []) metrics.add(m);
      for (const m of change.removeMetrics ?? []) metrics.delete(m);
      spec.metrics = [...metrics];
    }
    if (change.minIntervalMs === null) delete spec.minIntervalMs;
    else if (change.minIntervalMs !== undefined) spec.minIntervalMs = change.minIntervalMs;
    this.spec = spec;
    if (this.wireId === null) return;
    await this.client.request({ type: 'update', subscription: this.wireId, ...change });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.drop(this);
  }

  /** @internal */
  receive(event: LiveEvent & { part?: number; parts?: number; last?: boolean }, offset: number): void {
    if (event.kind === 'snapshot') {
      const part = event.part ?? 0;
      const parts = event.parts ?? 1;
      if (part === 0) this.#parts = [];
      this.#parts.push(event);
      // The final part: `last` (docs/live.md §5.4.2), or the count when a hub sends no `last`.
      if (event.last !== true && (event.last === false || part < parts - 1)) return;
      const whole: Snapshot = { kind: 'snapshot', gap: this.#parts.some((p) => p.gap) };
      for (const p of this.#parts) {
        if (p.devices) (whole.devices ??= []).push(...p.devices);
        if (p.commands) (whole.commands ??= []).push(...p.commands);
        if (p.health) whole.health = p.health;
      }
      this.#parts = [];
      if (this.pendingEpoch !== null) this.epoch = this.pendingEpoch;
      this.pendingEpoch = null;
      this.offset = offset;
      this.handler.onEvent(whole, offset);
      return;
    }
    // Events before the snapshot completed (none should come) do not move the resume point.
    if (this.pendingEpoch === null) this.offset = offset;
    this.handler.onEvent(event, offset);
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export class LiveRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class LiveClient {
  status: LiveStatus;
  #opts: Required<Omit<LiveClientOptions, 'onUnauthorized' | 'onConnectFailures' | 'url' | 'WebSocket'>> &
    Pick<LiveClientOptions, 'onUnauthorized' | 'onConnectFailures'>;
  #url: () => string;
  #WebSocket: SocketCtor | undefined;
  #socket: WebSocket | null = null;
  #subs = new Set<Subscription>();
  #byWireId = new Map<number, Subscription>();
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #listeners = new Set<(s: LiveStatus) => void>();
  #retryTimer: unknown = null;
  #pingTimer: unknown = null;
  #idleTimer: unknown = null;
  #holds = 0;
  #greeted = false;
  #stopped = false;

  constructor(opts: LiveClientOptions) {
    const url = opts.url;
    this.#url = typeof url === 'function' ? url : () => url;
    this.#WebSocket = opts.WebSocket ?? (typeof WebSocket !== 'undefined' ? WebSocket : undefined);
    this.#opts = {
      timers: opts.timers ?? defaultTimers,
      random: opts.random ?? Math.random,
      pingEveryMs: opts.pingEveryMs ?? 10_000,
      staleAfterMs: opts.staleAfterMs ?? 15_000,
      deadAfterMs: opts.deadAfterMs ?? 25_000,
      idleCloseMs: opts.idleCloseMs ?? 5_000,
      backoffBaseMs: opts.backoffBaseMs ?? 1_000,
      backoffMaxMs: opts.backoffMaxMs ?? 30_000,
      onUnauthorized: opts.onUnauthorized,
      onConnectFailures: opts.onConnectFailures,
    };
    this.status = {
      state: 'idle',
      attempt: 0,
      since: this.#opts.timers.now(),
      lastMessageAt: 0,
      retryAt: null,
      detail: null,
      principal: null,
    };
  }

  onStatus(fn: (s: LiveStatus) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Keeps the socket open (the reactive status does this while it is shown). */
  retain(): () => void {
    this.#holds++;
    this.#wake();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#holds--;
      this.#maybeIdle();
    };
  }

  subscribe(spec: SubscribeSpec, handler: SubscriptionHandler): Subscription {
    const sub = new Subscription(this, spec, handler);
    this.#subs.add(sub);
    this.#wake();
    if (this.status.state === 'live' || this.status.state === 'stale') this.#sendSubscribe(sub);
    return sub;
  }

  /** @internal Subscription.close() */
  drop(sub: Subscription): void {
    this.#subs.delete(sub);
    if (sub.wireId !== null) {
      this.#byWireId.delete(sub.wireId);
      if (this.#socket?.readyState === 1)
        this.request({ type: 'unsubscribe', subscription: sub.wireId }).catch(() => {});
      sub.wireId = null;
    }
    this.#maybeIdle();
  }

  /** Sends a request and resolves with its result (rejects with LiveRequestError on `error`). */
  request(msg: Record<string, unknown>): Promise<unknown> {
    const socket = this.#socket;
    if (socket?.readyState !== 1)
      return Promise.reject(new LiveRequestError('NOT_CONNECTED', 'The live channel is not connected.'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ ...msg, id }));
    });
  }

  /** The browser went online again: do not wait out the back-off. */
  networkOnline(): void {
    if (this.status.state === 'reconnecting' || this.status.state === 'offline') {
      this.#clearRetry();
      if (this.#wanted()) this.#connect();
    }
  }

  /** The browser says it is offline: say so, and drop a socket that can no longer be working. */
  networkOffline(): void {
    if (!this.#wanted()) return;
    this.#dropSocket();
    this.#clearRetry();
    this.#setStatus({ state: 'offline', detail: 'The browser is offline.', retryAt: null });
  }

  /** Stops for good (logout): closes the socket and forgets every subscription. */
  stop(): void {
    this.#stopped = true;
    for (const s of this.#subs) s.closed = true;
    this.#subs.clear();
    this.#byWireId.clear();
    this.#dropSocket(1000);
    this.#clearRetry();
    this.#setStatus({ state: 'idle', detail: null, retryAt: null });
  }

  /** Allows connecting again after stop() (a new login). */
  restart(): void {
    this.#stopped = false;
    this.#setStatus({ attempt: 0 });
    this.#wake();
  }

  get subscriptionCount(): number {
    return this.#subs.size;
  }

  // ---- internals ----

  #wanted(): boolean {
    return !this.#stopped && (this.#holds > 0 || this.#subs.size > 0);
  }

  #wake(): void {
    const t = this.#opts.timers;
    if (this.#idleTimer !== null) {
      t.clearTimeout(this.#idleTimer);
      this.#idleTimer = null;
    }
    if (!this.#wanted() || this.#socket || this.#retryTimer !== null) return;
    if (this.status.state === 'offline' && this.status.detail === 'The browser is offline.') return;
    this.#connect();
  }

  #maybeIdle(): void {
    if (this.#wanted() || this.#idleTimer !== null) return;
    const t = this.#opts.timers;
    this.#idleTimer = t.setTimeout(() => {
      this.#idleTimer = null;
      if (this.#wanted()) return;
      this.#clearRetry();
      this.#dropSocket(1000);
      this.#setStatus({ state: 'idle', retryAt: null });
    }, this.#opts.idleCloseMs);
  }

  #setStatus(patch: Partial<LiveStatus>): void {
    const next = { ...this.status, ...patch };
    if (patch.state !== undefined && patch.state !== this.status.state) next.since = this.#opts.timers.now();
    this.status = next;
    for (const fn of this.#listeners) fn(next);
  }

  #connect(): void {
    const Ctor = this.#WebSocket;
    if (!Ctor) {
      this.#setStatus({ state: 'offline', detail: 'This browser has no WebSocket.' });
      return;
    }
    this.#setStatus({ state: this.status.attempt > 0 ? 'reconnecting' : 'connecting', retryAt: null });
    let socket: WebSocket;
    try {
      socket = new Ctor(this.#url(), SUBPROTOCOL);
    } catch (err) {
      this.#scheduleRetry(`Could not open the live channel: ${(err as Error).message}`);
      return;
    }
    this.#socket = socket;
    this.#greeted = false;
    socket.onmessage = (ev: MessageEvent) => {
      if (this.#socket !== socket) return;
      this.#onMessage(typeof ev.data === 'string' ? ev.data : '');
    };
    socket.onclose = (ev: CloseEvent) => {
      if (this.#socket !== socket) return;
      this.#onClose(ev.code, ev.reason);
    };
    socket.onerror = () => {
      // A close event follows; it carries what there is to say.
    };
  }

  #onMessage(text: string): void {
    const now = this.#opts.timers.now();
    this.status.lastMessageAt = now;
    if (this.status.state === 'stale') this.#setStatus({ state: 'live', detail: null });
    let msg: ServerMessage;
    try {
      msg = JSON.parse(text) as ServerMessage;
    } catch {
      return;
    }
    switch (msg.type) {
      case 'hello':
        this.#onHello(msg);
        return;
      case 'event': {
        const sub = this.#byWireId.get(msg.id);
        if (sub && !sub.closed) sub.receive(msg.event, msg.offset);
        return;
      }
      case 'events': {
        // §3.6: several events of one subscription, applied in order as if each had come alone.
        const sub = this.#byWireId.get(msg.id);
        if (!sub) return;
        for (const item of msg.events) {
          if (sub.closed || this.#byWireId.get(msg.id) !== sub) return;
          sub.receive(item.event, item.offset);
        }
        return;
      }
      case 'result': {
        const p = this.#pending.get(msg.id);
        if (p) {
          this.#pending.delete(msg.id);
          p.resolve(msg.result);
        }
        return;
      }
      case 'error': {
        if (msg.id === null) {
          this.status.detail = `${msg.error.code}: ${msg.error.message}`;
          return;
        }
        const p = this.#pending.get(msg.id);
        if (p) {
          this.#pending.delete(msg.id);
          p.reject(new LiveRequestError(msg.error.code, msg.error.message));
        }
        return;
      }
      default:
        return;
    }
  }

  #onHello(hello: Hello): void {
    if (hello.auth !== 'ok') {
      // A browser without a valid session cookie: the page must log in again.
      this.#dropSocket(1000);
      this.#setStatus({ state: 'offline', detail: 'Not logged in.', principal: null });
      this.#opts.onUnauthorized?.();
      return;
    }
    this.#greeted = true;
    this.#setStatus({ state: 'live', attempt: 0, detail: null, retryAt: null, principal: hello.principal });
    this.#armPing();
    for (const sub of this.#subs) this.#sendSubscribe(sub);
  }

  #sendSubscribe(sub: Subscription): void {
    const socket = this.#socket;
    if (socket?.readyState !== 1 || sub.closed) return;
    const id = this.#nextId++;
    const resume = sub.epoch !== null && sub.offset !== null ? { epoch: sub.epoch, offset: sub.offset } : null;
    sub.wireId = id;
    sub.pendingEpoch = null; // a snapshot cut short on the last connection is forgotten
    this.#byWireId.set(id, sub);
    this.#pending.set(id, {
      resolve: (r) => {
        const result = r as SubscribeResult;
        // Not recovered: the resume point moves only with the snapshot's last part (§5.4.2); a cut in the
        // middle of the snapshot resumes from the point held before.
        if (result.recovered) {
          sub.epoch = result.epoch;
          sub.offset = result.offset;
        } else {
          sub.pendingEpoch = result.epoch;
        }
        sub.handler.onResult?.(result, resume !== null);
      },
      reject: (err) => {
        this.#byWireId.delete(id);
        if (sub.wireId === id) sub.wireId = null;
        const e = err as LiveRequestError;
        sub.handler.onError?.({ code: e.code ?? 'ERROR', message: e.message });
      },
    });
    socket.send(JSON.stringify({ type: 'subscribe', id, ...sub.spec, ...(resume ? { resume } : {}) }));
  }

  #armPing(): void {
    const t = this.#opts.timers;
    if (this.#pingTimer !== null) t.clearTimeout(this.#pingTimer);
    this.#pingTimer = t.setTimeout(
      () => {
        this.#pingTimer = null;
        const socket = this.#socket;
        if (!socket) return;
        const quiet = t.now() - this.status.lastMessageAt;
        if (quiet >= this.#opts.deadAfterMs) {
          // Half-open: the hub is not answering. Drop it and reconnect (with resume).
          this.#dropSocket();
          this.#scheduleRetry('No answer from the hub.');
          return;
        }
        if (quiet >= this.#opts.staleAfterMs && this.status.state === 'live') this.#setStatus({ state: 'stale' });
        if (socket.readyState === 1) this.request({ type: 'ping' }).catch(() => {});
        this.#armPing();
      },
      Math.min(this.#opts.pingEveryMs, 5_000),
    );
  }

  #onClose(code: number, reason: string): void {
    this.#socket = null;
    this.#failPending();
    this.#unbindSubs();
    if (code === 1008) {
      // Policy: not for retrying (§9). UNAUTHORIZED: the session ended.
      this.#clearPing();
      this.#setStatus({ state: 'offline', detail: reason || 'Refused by the hub.', retryAt: null });
      // The session ended, or its user must change the password first or lost the role: log in again.
      if (['UNAUTHORIZED', 'SESSION_EXPIRED', 'PASSWORD_CHANGE_REQUIRED', 'FORBIDDEN'].includes(reason)) {
        this.#opts.onUnauthorized?.();
      }
      return;
    }
    if (!this.#wanted()) {
      this.#clearPing();
      this.#setStatus({ state: 'idle', retryAt: null });
      return;
    }
    const neverGreeted = this.#greeted === false;
    this.#scheduleRetry(reason ? `Closed by the hub (${code} ${reason}).` : `Connection closed (${code}).`);
    if (neverGreeted && this.status.attempt >= 2) this.#opts.onConnectFailures?.(this.status.attempt);
  }

  #scheduleRetry(detail: string): void {
    this.#clearPing();
    const attempt = this.status.attempt + 1;
    const base = Math.min(this.#opts.backoffMaxMs, this.#opts.backoffBaseMs * 2 ** (attempt - 1));
    // Full jitter on the upper half: between base/2 and base.
    const delay = Math.round(base / 2 + (this.#opts.random() * base) / 2);
    const t = this.#opts.timers;
    this.#setStatus({ state: 'reconnecting', attempt, detail, retryAt: t.now() + delay });
    this.#retryTimer = t.setTimeout(() => {
      this.#retryTimer = null;
      if (this.#wanted()) this.#connect();
    }, delay);
  }

  #clearRetry(): void {
    if (this.#retryTimer !== null) this.#opts.timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
  }

  #clearPing(): void {
    if (this.#pingTimer !== null) this.#opts.timers.clearTimeout(this.#pingTimer);
    this.#pingTimer = null;
  }

  #failPending(): void {
    for (const p of this.#pending.values())
      p.reject(new LiveRequestError('NOT_CONNECTED', 'The live connection closed.'));
    this.#pending.clear();
  }

  #unbindSubs(): void {
    for (const sub of this.#subs) sub.wireId = null;
    this.#byWireId.clear();
  }

  #dropSocket(code?: number): void {
    const s = this.#socket;
    this.#socket = null;
    this.#clearPing();
    this.#failPending();
    this.#unbindSubs();
    if (s) {
      s.onmessage = null;
      s.onclose = null;
      s.onerror = null;
      try {
        if (code !== undefined) s.close(code);
        else s.close();
      } catch {
        // already closing
      }
    }
  }
}
