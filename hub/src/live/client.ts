import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import type { Principal } from '../auth/types.js';
import { isRole } from '../auth/types.js';
import type { TimerHandle } from '../core/clock.js';
import {
  CLOSE,
  type ClientRequest,
  errorMessage,
  LIVE_SUBPROTOCOL,
  LiveRequestError,
  parseClientMessage,
  publicLimits,
} from './protocol.js';
import type { LiveEvent } from './stream-log.js';
import { Outbox, type OutboxHost } from './outbox.js';
import type { Subscription } from './subscription.js';

/** The hub's one logger type (fastify's pino logger), here a child with `component: 'live'`. */
export type LiveLogger = FastifyBaseLogger;

/** What a client needs from the live hub. */
export interface LiveHost extends OutboxHost {
  readonly log: LiveLogger;
  verifyToken(token: string, remote: string | null): Promise<TokenCheck> | TokenCheck;
  /** Runs a request; throws LiveRequestError to refuse it. Answers through client.answer(). */
  handleRequest(client: LiveClient, request: ClientRequest): void;
  clientClosed(client: LiveClient): void;
}

/** A token's principal, null (not accepted), or the auth layer's refusal (e.g. TOO_MANY_ATTEMPTS). */
export type TokenCheck = Principal | null | { code: string; message: string };

type State = 'auth' | 'authenticating' | 'open' | 'closed';

/** Messages a client may pipeline behind `auth` before the token is checked. */
const MAX_EARLY_MESSAGES = 16;

export class LiveClient {
  principal: Principal | null = null;
  readonly subs = new Map<number, Subscription>();
  private state: State = 'auth';
  private early: string[] = [];
  private tokens: number;
  private refilledAt: number;
  private authTimer: TimerHandle | null = null;
  lastHeard: number;
  readonly outbox: Outbox;

  constructor(
    readonly socket: WebSocket,
    private readonly host: LiveHost,
    readonly remote: string | null,
  ) {
    const now = host.clock.now();
    this.lastHeard = now;
    this.refilledAt = now;
    this.tokens = host.limits.requestBurst;
    this.outbox = new Outbox(socket, host, this.subs, () => this.closeWith(CLOSE.controlQueueFull, null));
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
          this.closeWith(
            CLOSE.unauthorized,
            `No auth message within ${this.host.limits.authTimeoutMs} ms (docs/live.md §2.2).`,
          );
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

  /** What the hub holds for this client now (§7.3). */
  accountedBytes(): number {
    return this.outbox.accountedBytes();
  }

  dataBytes(): number {
    return this.outbox.dataBytes();
  }

  get stats(): Outbox['stats'] {
    return this.outbox.stats;
  }

  /** An answer (§3.2, §3.3); lossless, in order, ahead of data. */
  answer(text: string): void {
    if (this.state !== 'closed') this.outbox.answer(text);
  }

  /** Hands an event of the subscription's stream to this client (the fan-out calls this for each match). */
  deliver(sub: Subscription, ev: LiveEvent): void {
    if (this.state === 'open') this.outbox.deliver(sub, ev);
  }

  /** §7.4.2: drops what is queued for the subscription; a resync event and a snapshot follow. */
  resync(sub: Subscription): void {
    if (this.state === 'open') this.outbox.resync(sub);
  }

  /** Removes a subscription: nothing of it is sent after this (§4.4). */
  dropSubscription(sub: Subscription): void {
    this.outbox.dropSubscription(sub);
  }

  flush(): void {
    this.outbox.flush();
  }

  private sendNow(text: string): void {
    this.outbox.sendNow(text);
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return;
    this.lastHeard = this.host.clock.now();
    // §1.2.2, §1.2.3
    if (isBinary)
      return this.closeWith(
        CLOSE.binary,
        'Binary messages are not part of tendril.live.v1: send JSON text (docs/live.md §1.2).',
      );
    if (data.length > this.host.limits.maxMessageBytes) return this.closeWith(CLOSE.tooLarge, null);
    const text = data.toString('utf8');
    if (this.state === 'auth') return this.onAuth(text);
    if (this.state === 'authenticating') {
      if (this.early.length >= MAX_EARLY_MESSAGES)
        return this.closeWith(CLOSE.unauthorized, 'Too many messages before auth_ok (docs/live.md §2.2).');
      this.early.push(text);
      return;
    }
    this.onRequest(text);
  }

  private onRequest(text: string): void {
    let id: number | null = null;
    try {
      const msg = parseClientMessage(text, this.host.limits);
      if (msg.type === 'auth')
        throw new LiveRequestError(
          'INVALID_REQUEST',
          'This connection is already authenticated (docs/live.md §2.2.3).',
        );
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
        return this.closeWith(
          CLOSE.unauthorized,
          'The first message must be {"type":"auth","token":"..."} on a connection without a session cookie (docs/live.md §2.2).',
        );
      }
      token = msg.token;
    } catch (err) {
      return this.closeWith(
        CLOSE.unauthorized,
        err instanceof Error ? err.message : 'The first message must be auth (docs/live.md §2.2).',
      );
    }
    this.state = 'authenticating';
    Promise.resolve()
      .then(() => this.host.verifyToken(token, this.remote))
      .then(
        (checked) => {
          if (this.state !== 'authenticating') return;
          if (!checked)
            return this.closeWith(CLOSE.unauthorized, 'The hub does not accept this token (docs/live.md §2.2.2).');
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
          if (this.state === 'authenticating')
            this.closeWith(CLOSE.internal, 'The hub failed checking the token; retry.');
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
    if (message !== null && this.socket.readyState === this.socket.OPEN)
      this.socket.send(errorMessage(null, close[1], message));
    this.socket.close(close[0], close[1]);
    this.closed();
  }

  private closed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.authTimer) this.host.timers.clearTimeout(this.authTimer);
    // The hub unindexes the subscriptions first, then they are dropped.
    this.host.clientClosed(this);
    this.outbox.close();
  }
}

function describe(p: Principal): { kind: Principal['kind']; name: string; role: Principal['role'] } {
  return { kind: p.kind, name: p.name, role: p.role };
}
