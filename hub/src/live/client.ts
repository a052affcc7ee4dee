/**
 * One live-channel connection (docs/live.md): authentication (§2), requests with a rate limit (§3, §8), and the
 * outbox (§7): answers and control events in a bounded lossless queue, data coalesced per subscription, both
 * written only while the socket's buffered amount is under the high-water mark.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Principal } from '../auth/types.js';
import { isRole } from '../auth/types.js';
import type { Clock, TimerHandle, Timers } from '../core/clock.js';
import {
  CLOSE,
  type ClientRequest,
  errorMessage,
  eventMessage,
  LIVE_SUBPROTOCOL,
  LiveRequestError,
  type LiveLimits,
  parseClientMessage,
  publicLimits,
} from './protocol.js';
import type { LiveEvent } from './stream-log.js';
import type { Subscription } from './subscription.js';

export interface LiveLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What a client needs from the live hub. */
export interface LiveHost {
  readonly limits: LiveLimits;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly log: LiveLogger;
  verifyToken(token: string, remote: string | null): Promise<TokenCheck> | TokenCheck;
  /** Runs a request; throws LiveRequestError to refuse it. Answers through client.answer(). */
  handleRequest(client: LiveClient, request: ClientRequest): void;
  /** The next part of the subscription's snapshot as its event body; advances the cursor (§5.4.2). */
  renderSnapshotPart(sub: Subscription, maxBytes: number): string;
  /** Takes a fresh snapshot cursor for a subscription marked for resync (§7.4.2); returns its offset. */
  restartSnapshot(sub: Subscription): number;
  clientClosed(client: LiveClient): void;
}

/** A token's principal, null (not accepted), or the auth layer's refusal (e.g. TOO_MANY_ATTEMPTS). */
export type TokenCheck = Principal | null | { code: string; message: string };

interface ControlItem {
  text: string;
  bytes: number;
  /** null: an answer to a request. */
  sub: Subscription | null;
}

type State = 'auth' | 'authenticating' | 'open' | 'closed';

/** Messages a client may pipeline behind `auth` before the token is checked. */
const MAX_EARLY_MESSAGES = 16;
/** ws sends a Buffer as a binary message unless told otherwise; every message here is text (§1.2.1). */
const TEXT = { binary: false } as const;
/** When no 'drain' comes (the socket's own buffer is empty but bufferedAmount is not), look again after this. */
const DRAIN_POLL_MS = 50;

export class LiveClient {
  principal: Principal | null = null;
  readonly subs = new Map<number, Subscription>();
  private state: State = 'auth';
  private control: Array<ControlItem | undefined> = [];
  private controlHead = 0;
  /** Bytes of queued control items and of control events held behind snapshots. */
  controlBytes = 0;
  /** Bytes of queued answers (a part of controlBytes): alone past the cap, they close the connection (§7.4.3). */
  private answerBytes = 0;
  private early: string[] = [];
  private tokens: number;
  private refilledAt: number;
  private authTimer: TimerHandle | null = null;
  private drainTimer: TimerHandle | null = null;
  private waitingDrain = false;
  private flushing = false;
  lastHeard: number;
  /** Counters for tests and metrics. */
  readonly stats = { messagesSent: 0, coalesced: 0, resyncs: 0, maxAccountedBytes: 0 };

  constructor(
    readonly socket: WebSocket,
    private readonly host: LiveHost,
    readonly remote: string | null,
  ) {
    const now = host.clock.now();
    this.lastHeard = now;
    this.refilledAt = now;
    this.tokens = host.limits.requestBurst;
    socket.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    socket.on('pong', () => {
      this.lastHeard = this.host.clock.now();
    });
    socket.on('close', () => this.closed());
    socket.on('error', (err) => this.host.log.debug({ err, remote }, 'live socket error'));
  }

  /** §2.3: hello, then either open (cookie) or waiting for `auth` (§2.2). */
  start(principal: Principal | null): void {
    if (principal) {
      if (!this.accept(principal)) return;
    } else {
      this.authTimer = this.host.timers.setTimeout(() => {
        if (this.state === 'auth' || this.state === 'authenticating') {
          this.closeWith(CLOSE.unauthorized, `No auth message within ${this.host.limits.authTimeoutMs} ms (docs/live.md §2.2).`);
        }
      }, this.host.limits.authTimeoutMs);
    }
    this.sendNow(
      JSON.stringify({
        type: 'hello',
        protocol: LIVE_SUBPROTOCOL,
        auth: principal ? 'ok' : 'required',
        principal: principal ? describe(principal) : null,
        serverTime: this.host.clock.now(),
        limits: publicLimits(this.host.limits),
      }),
    );
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** What the hub holds for this client now (§7.3): queues, outbox, and the socket's buffered bytes. */
  accountedBytes(): number {
    let data = 0;
    for (const sub of this.subs.values()) data += sub.pendingBytes;
    return this.controlBytes + data + this.socket.bufferedAmount;
  }

  dataBytes(): number {
    let data = 0;
    for (const sub of this.subs.values()) data += sub.pendingBytes;
    return data;
  }

  /** An answer (§3.2, §3.3); lossless, in order, ahead of data. */
  answer(text: string): void {
    if (this.state === 'closed') return;
    const bytes = text.length;
    const cap = this.host.limits.controlQueueBytes;
    if (this.answerBytes + bytes > cap) {
      // §7.4.3: the client sends requests and does not read the answers.
      this.closeWith(CLOSE.controlQueueFull, null);
      return;
    }
    // Room for answers first: subscription events queued beside them are dropped for a resync (§7.4.2).
    if (this.controlBytes + bytes > cap) for (const sub of this.subs.values()) this.resync(sub);
    this.control.push({ text, bytes, sub: null });
    this.controlBytes += bytes;
    this.answerBytes += bytes;
    this.flush();
  }

  /** Hands an event of the subscription's stream to this client (the fan-out calls this for each match). */
  deliver(sub: Subscription, ev: LiveEvent): void {
    if (sub.closed || sub.resync || this.state !== 'open') return;
    if (ev.control) {
      this.controlEvent(sub, eventMessage(sub.id, sub.offsetFor(ev.offset), ev.body));
      return;
    }
    const body = sub.bodyFor(ev);
    if (body === null) return;
    const now = this.host.clock.now();
    if (sub.snapshot === null && !sub.hasPending && this.controlHead === this.control.length && this.writable() && (sub.minIntervalMs === null || now >= sub.nextDataAt)) {
      // The fast path: the body serialised once for every client; the whole message encoded once for every
      // client with the same subscription id and offset.
      const offset = sub.offsetFor(ev.offset);
      if (body === ev.body) {
        let frame = ev.frame;
        if (frame === undefined || frame.id !== sub.id || frame.offset !== offset) {
          frame = { id: sub.id, offset, data: Buffer.from(eventMessage(sub.id, offset, body)) };
          ev.frame = frame;
        }
        this.sendNow(frame.data);
      } else {
        this.sendNow(eventMessage(sub.id, offset, body));
      }
      if (sub.minIntervalMs !== null) sub.nextDataAt = now + sub.minIntervalMs;
      return;
    }
    sub.addPending(ev);
    this.stats.coalesced++;
    if (this.dataBytes() > this.host.limits.dataOutboxBytes) {
      // §7.4.2: never disconnected for data; the subscription starts over from a snapshot.
      this.resync(sub);
    }
    this.noteAccounted();
    this.flush();
  }

  /** A control event of a subscription (presence, registry change): lossless unless the cap forces a resync. */
  private controlEvent(sub: Subscription, text: string): void {
    const bytes = text.length;
    if (this.controlBytes + bytes > this.host.limits.controlQueueBytes) {
      this.resync(sub);
      return;
    }
    this.controlBytes += bytes;
    // §5.4: events after the snapshot's offset wait until its last part is out.
    if (sub.snapshot) {
      sub.held.push({ text, bytes });
      sub.heldBytes += bytes;
    } else {
      this.control.push({ text, bytes, sub });
    }
    this.noteAccounted();
    this.flush();
  }

  /** Queues the subscription's snapshot (the cursor is set by the hub) and starts sending it. */
  startSnapshot(): void {
    this.flush();
  }

  /** §7.4.2: drops what is queued for the subscription; a resync event and a snapshot follow once it drains. */
  resync(sub: Subscription): void {
    if (sub.resync) return;
    this.stats.resyncs++;
    this.controlBytes -= sub.heldBytes;
    sub.dropQueued();
    sub.snapshot = null;
    let kept = 0;
    const next: ControlItem[] = [];
    for (let i = this.controlHead; i < this.control.length; i++) {
      const item = this.control[i]!;
      if (item.sub === sub) this.controlBytes -= item.bytes;
      else next[kept++] = item;
    }
    this.control = next;
    this.controlHead = 0;
    sub.resync = true;
    if (sub.timer) {
      this.host.timers.clearTimeout(sub.timer);
      sub.timer = null;
    }
  }

  /** Removes a subscription: nothing of it is sent after this (§4.4). */
  dropSubscription(sub: Subscription): void {
    this.controlBytes -= sub.heldBytes;
    sub.dropQueued();
    sub.closed = true;
    sub.snapshot = null;
    if (sub.timer) this.host.timers.clearTimeout(sub.timer);
    sub.timer = null;
    const next: ControlItem[] = [];
    for (let i = this.controlHead; i < this.control.length; i++) {
      const item = this.control[i]!;
      if (item.sub === sub) this.controlBytes -= item.bytes;
      else next.push(item);
    }
    this.control = next;
    this.controlHead = 0;
    this.subs.delete(sub.id);
  }

  /** Writes while the socket takes it: answers and control first, then snapshots, resyncs and data (§7). */
  flush(): void {
    if (this.flushing || this.state === 'closed') return;
    this.flushing = true;
    try {
      let progressed = true;
      while (progressed && this.writable()) {
        progressed = false;
        if (this.controlHead < this.control.length) {
          this.sendControl();
          progressed = true;
          continue;
        }
        const now = this.host.clock.now();
        for (const sub of this.subs.values()) {
          if (!this.writable()) break;
          if (this.controlHead < this.control.length) break;
          if (sub.snapshot) {
            this.sendSnapshotPart(sub);
            progressed = true;
          } else if (sub.resync) {
            sub.resync = false;
            const offset = this.host.restartSnapshot(sub);
            this.sendNow(eventMessage(sub.id, Math.max(sub.watermark, offset), '{"kind":"resync"}'));
            progressed = true;
          } else if (sub.hasPending) {
            if (sub.minIntervalMs !== null && now < sub.nextDataAt) {
              this.armThrottle(sub, now);
              continue;
            }
            this.sendPending(sub, now);
            progressed = true;
          }
        }
      }
      if (!this.writable() && this.hasQueued()) this.waitDrain();
    } finally {
      this.flushing = false;
    }
  }

  private hasQueued(): boolean {
    if (this.controlHead < this.control.length) return true;
    for (const sub of this.subs.values()) if (sub.snapshot || sub.resync || sub.hasPending) return true;
    return false;
  }

  private sendControl(): void {
    const item = this.control[this.controlHead]!;
    this.control[this.controlHead++] = undefined;
    if (this.controlHead === this.control.length) {
      this.control = [];
      this.controlHead = 0;
    } else if (this.controlHead > 1024 && this.controlHead * 2 > this.control.length) {
      this.control = this.control.slice(this.controlHead);
      this.controlHead = 0;
    }
    this.controlBytes -= item.bytes;
    if (item.sub === null) this.answerBytes -= item.bytes;
    this.sendNow(item.text);
  }

  private sendSnapshotPart(sub: Subscription): void {
    const cursor = sub.snapshot!;
    const body = this.host.renderSnapshotPart(sub, this.host.limits.snapshotPartBytes);
    this.sendNow(eventMessage(sub.id, cursor.offset, body));
    if (sub.snapshot === null) {
      // The last part is out: the control events held behind it go next, in order.
      for (const h of sub.held) this.control.push({ text: h.text, bytes: h.bytes, sub });
      sub.held = [];
      sub.heldBytes = 0;
    }
  }

  private sendPending(sub: Subscription, now: number): void {
    if (sub.minIntervalMs === null) {
      const m = sub.takeOldest()!;
      this.sendNow(eventMessage(sub.id, m.offset, m.body));
      return;
    }
    // §6.3: one tick sends the latest value of every series that changed.
    while (sub.hasPending && this.writable()) {
      const m = sub.takeOldest()!;
      this.sendNow(eventMessage(sub.id, m.offset, m.body));
    }
    sub.nextDataAt = now + sub.minIntervalMs;
  }

  private armThrottle(sub: Subscription, now: number): void {
    if (sub.timer) return;
    sub.timer = this.host.timers.setTimeout(
      () => {
        sub.timer = null;
        this.flush();
      },
      Math.max(0, sub.nextDataAt - now),
    );
  }

  private writable(): boolean {
    return this.state !== 'closed' && this.socket.readyState === this.socket.OPEN && this.socket.bufferedAmount < this.host.limits.highWaterBytes;
  }

  private waitDrain(): void {
    if (this.waitingDrain) return;
    this.waitingDrain = true;
    const raw = (this.socket as unknown as { _socket?: Socket })._socket;
    const onDrain = (): void => {
      if (!this.waitingDrain) return;
      this.waitingDrain = false;
      raw?.off('drain', onDrain);
      if (this.drainTimer) this.host.timers.clearTimeout(this.drainTimer);
      this.drainTimer = null;
      this.flush();
    };
    raw?.once('drain', onDrain);
    // ws may hold bytes of its own beyond the TCP socket's buffer: look again now and then.
    this.drainTimer = this.host.timers.setTimeout(onDrain, DRAIN_POLL_MS);
  }

  private sendNow(text: string | Buffer): void {
    this.stats.messagesSent++;
    this.socket.send(text, TEXT);
    // With nothing queued, what this client holds is the socket's buffer: under high water plus this message.
    if (this.controlBytes > 0 || this.waitingDrain) this.noteAccounted();
  }

  private noteAccounted(): void {
    const b = this.accountedBytes();
    if (b > this.stats.maxAccountedBytes) this.stats.maxAccountedBytes = b;
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return;
    this.lastHeard = this.host.clock.now();
    // §1.2.2, §1.2.3
    if (isBinary) return this.closeWith(CLOSE.binary, 'Binary messages are not part of tendril.live.v1: send JSON text (docs/live.md §1.2).');
    if (data.length > this.host.limits.maxMessageBytes) return this.closeWith(CLOSE.tooLarge, null);
    const text = data.toString('utf8');
    if (this.state === 'auth') return this.onAuth(text);
    if (this.state === 'authenticating') {
      if (this.early.length >= MAX_EARLY_MESSAGES) return this.closeWith(CLOSE.unauthorized, 'Too many messages before auth_ok (docs/live.md §2.2).');
      this.early.push(text);
      return;
    }
    this.onRequest(text);
  }

  private onRequest(text: string): void {
    let id: number | null = null;
    try {
      const msg = parseClientMessage(text, this.host.limits);
      if (msg.type === 'auth') throw new LiveRequestError('INVALID_REQUEST', 'This connection is already authenticated (docs/live.md §2.2.3).');
      id = msg.id;
      if (!this.takeToken()) {
        const l = this.host.limits;
        throw new LiveRequestError(
          'RATE_LIMITED',
          `More than ${l.requestsPerSecond} requests per second (bursts of ${l.requestBurst}); this one was not run, retry in ${this.retryInMs()} ms (docs/live.md §8).`,
          id,
        );
      }
      this.host.handleRequest(this, msg);
    } catch (err) {
      if (err instanceof LiveRequestError) {
        this.answer(errorMessage(err.id ?? id, err.code, err.message));
      } else {
        this.host.log.error({ err, remote: this.remote }, 'a live request failed');
        this.answer(errorMessage(id, 'INTERNAL_ERROR', 'The hub failed on this request; its log has the details.'));
      }
    }
  }

  private takeToken(): boolean {
    const l = this.host.limits;
    const now = this.host.clock.now();
    this.tokens = Math.min(l.requestBurst, this.tokens + ((now - this.refilledAt) * l.requestsPerSecond) / 1000);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private retryInMs(): number {
    return Math.ceil(((1 - this.tokens) * 1000) / this.host.limits.requestsPerSecond);
  }

  private onAuth(text: string): void {
    let token: string;
    try {
      const msg = parseClientMessage(text, this.host.limits);
      if (msg.type !== 'auth') {
        return this.closeWith(CLOSE.unauthorized, 'The first message must be {"type":"auth","token":"..."} on a connection without a session cookie (docs/live.md §2.2).');
      }
      token = msg.token;
    } catch (err) {
      return this.closeWith(CLOSE.unauthorized, err instanceof Error ? err.message : 'The first message must be auth (docs/live.md §2.2).');
    }
    this.state = 'authenticating';
    Promise.resolve()
      .then(() => this.host.verifyToken(token, this.remote))
      .then(
        (checked) => {
          if (this.state !== 'authenticating') return;
          if (!checked) return this.closeWith(CLOSE.unauthorized, 'The hub does not accept this token (docs/live.md §2.2.2).');
          if ('code' in checked) return this.closeWith([1008, checked.code], checked.message);
          const principal = checked;
          if (!this.accept(principal)) return;
          this.sendNow(JSON.stringify({ type: 'auth_ok', principal: describe(principal) }));
          const early = this.early;
          this.early = [];
          for (const t of early) if ((this.state as State) === 'open') this.onRequest(t);
        },
        (err: unknown) => {
          this.host.log.error({ err }, 'verifying a live channel token failed');
          if (this.state === 'authenticating') this.closeWith(CLOSE.internal, 'The hub failed checking the token; retry.');
        },
      );
  }

  /** §2.4: every role may read; a user who must change their password may not yet. */
  private accept(principal: Principal): boolean {
    if (!isRole(principal.role)) {
      this.closeWith(CLOSE.forbidden, 'This principal has no role that may use the live channel (docs/live.md §2.4).');
      return false;
    }
    if (principal.mustChangePassword) {
      this.closeWith(CLOSE.passwordChange, 'Change your password first (PATCH /api/v1/users/<name>), then reconnect.');
      return false;
    }
    this.principal = principal;
    this.state = 'open';
    if (this.authTimer) this.host.timers.clearTimeout(this.authTimer);
    this.authTimer = null;
    return true;
  }

  /** §7.4.4: called every pingIntervalMs by the hub. */
  heartbeat(now: number): void {
    if (this.state === 'closed') return;
    if (now - this.lastHeard > 2 * this.host.limits.pingIntervalMs) {
      this.host.log.debug({ remote: this.remote }, 'live client answered no ping: terminated');
      this.socket.terminate();
      return;
    }
    try {
      this.socket.ping();
    } catch {
      // The socket is closing; 'close' follows.
    }
  }

  /** Sends an error (when `message` is given) and closes with the code and reason (§9). */
  closeWith(close: readonly [number, string], message: string | null): void {
    if (this.state === 'closed') return;
    if (message !== null && this.socket.readyState === this.socket.OPEN) this.socket.send(errorMessage(null, close[1], message));
    this.socket.close(close[0], close[1]);
    this.closed();
  }

  private closed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.authTimer) this.host.timers.clearTimeout(this.authTimer);
    if (this.drainTimer) this.host.timers.clearTimeout(this.drainTimer);
    // The hub unindexes the subscriptions first, then they are dropped.
    this.host.clientClosed(this);
    for (const sub of [...this.subs.values()]) this.dropSubscription(sub);
    this.control = [];
    this.controlHead = 0;
    this.controlBytes = 0;
  }
}

function describe(p: Principal): { kind: Principal['kind']; name: string; role: Principal['role'] } {
  return { kind: p.kind, name: p.name, role: p.role };
}
