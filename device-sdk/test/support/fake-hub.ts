/**
 * FAKE hub for the device SDK's tests. The real hub (hub/) is built in parallel; until end-to-end tests
 * run the SDK against it, this `ws` server on 127.0.0.1 speaks tendril.v1 with the real codec and keeps
 * the hub's side of the contract (docs/protocol.md): WELCOME with the durable seq of the HELLO's epoch,
 * the delta context, dedup by (device, epoch, seq), cumulative ACK, BACKOFF with ignored readings,
 * a token-bucket rate limit, pings every heartbeatMs, ERROR + close with the registry's close code.
 * Tests steer it: withhold acks, send any frame, close with a code, kill the TCP connection.
 *
 * Also here: small waiting helpers and FakeTimers (a recording timer queue the tests fire by hand).
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import {
  decodeDeviceFrame,
  encodeHubFrame,
  errorInfo,
  newDeltaContext,
  type DeltaContext,
  type DeviceFrame,
  type HelloFrame,
  type HubFrame,
  type Reading,
  type WelcomeFrame,
} from '@tendril/device-sdk';

export interface FakeHubOptions {
  heartbeatMs?: number;
  /** Send a WebSocket ping every heartbeatMs, as the real hub does. Default true. */
  ping?: boolean;
  maxFrameBytes?: number;
  maxBatch?: number;
  /** WELCOME.maxRate; 0 = no rate limit. Default 0. */
  maxRate?: number;
  /** Token-bucket burst for maxRate. Default maxRate. */
  burst?: number;
  /** Ack readings as soon as they are stored. Default true. false: stored, but the acks are "lost". */
  autoAck?: boolean;
  /** Neither store nor ack readings (a store write that hangs). Default false. */
  holdReadings?: boolean;
  /** Answer the next reading with this BACKOFF (and ignore it), as the real hub does when the store is full. */
  backoffNext?: { code: 'RATE_LIMITED' | 'STORE_BUSY'; pauseMs: number };
  /** Hold WELCOME until the test calls conn.welcome(). Default false. */
  holdWelcome?: boolean;
  /** Device id -> token. Unset: every device is welcome. */
  tokens?: Record<string, string>;
}

export class FakeConnection {
  hello: HelloFrame | undefined;
  welcomed: WelcomeFrame | undefined;
  /** Every frame the device sent on this connection, in order. */
  readonly frames: DeviceFrame[] = [];
  /** Byte length of each message, parallel to frames. */
  readonly sizes: number[] = [];
  /** Readings the fake refused with BACKOFF or ignored while a BACKOFF was in force. */
  readonly ignored: Reading[] = [];
  closed: { code: number; reason: string } | undefined;
  pongs = 0;
  private ctx: DeltaContext = newDeltaContext();
  private ignoreUntil = 0;
  /** §7.4.5: while set, the lowest seq refused or ignored since the last BACKOFF, and that BACKOFF's code. */
  private resync: { from: number; code: 'RATE_LIMITED' | 'STORE_BUSY' } | undefined;
  /** The previous reading's seq on this connection (§7.4.5's "steps back"). */
  private prevSeq = 0;
  private pingTimer: NodeJS.Timeout | undefined;
  private bucket = { tokens: 0, at: 0 };

  constructor(
    readonly hub: FakeHub,
    readonly ws: WebSocket,
  ) {
    ws.on('pong', () => {
      this.pongs++;
      hub.events.emit('pong', this);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(new Uint8Array(data), isBinary));
    ws.on('close', (code: number, reason: Buffer) => {
      clearInterval(this.pingTimer);
      this.closed = { code, reason: reason.toString() };
      hub.events.emit('close', this);
    });
  }

  /** Readings this connection carried (READING and BATCH entries), in order, ignored ones included. */
  get readings(): Reading[] {
    return this.frames.flatMap((f): Reading[] => (f.type === 'reading' ? [f] : f.type === 'batch' ? f.readings : []));
  }

  send(frame: HubFrame): void {
    this.ws.send(encodeHubFrame(frame));
  }

  /** Sends WELCOME now (with holdWelcome); the durable seq of the HELLO's epoch unless overridden. */
  welcome(overrides: Partial<WelcomeFrame> = {}): void {
    const o = this.hub.options;
    const hello = this.hello!;
    const w: WelcomeFrame = {
      type: 'welcome',
      serverTime: Date.now(),
      ackedSeq: this.hub.durableSeq(hello.deviceId, hello.epoch),
      heartbeatMs: o.heartbeatMs ?? 10_000,
      maxFrameBytes: o.maxFrameBytes ?? 16_384,
      maxBatch: o.maxBatch ?? 256,
      maxRate: o.maxRate ?? 0,
      ...overrides,
    };
    // §5.1.2: the hub's side of the delta context.
    this.ctx = newDeltaContext(w.ackedSeq, hello.clock);
    this.bucket = { tokens: o.burst ?? w.maxRate, at: Date.now() };
    this.prevSeq = w.ackedSeq;
    this.welcomed = w;
    this.send(w);
    this.hub.events.emit('welcome', this);
    if (o.ping ?? true) {
      this.pingTimer = setInterval(() => this.ws.ping(), w.heartbeatMs);
    }
  }

  ack(seq: number): void {
    this.send({ type: 'ack', seq });
  }

  /** §7.4: BACKOFF, then ignore every reading for pauseMs. */
  backoff(code: 'RATE_LIMITED' | 'STORE_BUSY', pauseMs: number): void {
    this.ignoreUntil = Date.now() + pauseMs;
    this.send({ type: 'backoff', code, pauseMs });
    this.hub.events.emit('backoff', this, code);
  }

  /** §7.4.1: BACKOFF for reading `r`, which is not taken; the resync waits for a resend that covers it. */
  private refuse(r: Reading, code: 'RATE_LIMITED' | 'STORE_BUSY', pauseMs: number): void {
    this.resync = { from: Math.min(this.resync?.from ?? r.seq, r.seq), code };
    this.backoff(code, pauseMs);
    this.ignored.push(r);
  }

  /** §6.6: ERROR {code}, then close with the registry's close code and the code as reason. */
  closeWith(code: string): void {
    this.send({ type: 'error', code, seq: 0, alias: null, message: `fake hub closes: ${code}` });
    this.ws.close(errorInfo(code)?.close ?? 1011, code);
  }

  /** Drops the TCP connection without a close handshake (a crash, a cut cable). */
  kill(): void {
    this.ws.terminate();
  }

  stopPinging(): void {
    clearInterval(this.pingTimer);
  }

  /**
   * Pings and waits for the pong. The device's frames travel in order on one TCP stream, so everything it
   * sent before it saw the ping has arrived when this resolves.
   */
  async roundTrip(): Promise<void> {
    const before = this.pongs;
    this.ws.ping();
    await waitUntil(() => this.pongs > before, 'the pong of a round-trip ping');
  }

  private onMessage(bytes: Uint8Array, isBinary: boolean): void {
    if (!isBinary) return this.closeWith('TEXT_FRAME');
    let frame: DeviceFrame;
    try {
      frame = decodeDeviceFrame(bytes, this.ctx);
    } catch (err) {
      this.hub.violations.push(`undecodable frame: ${(err as Error).message}`);
      return this.closeWith((err as { code?: string }).code ?? 'INTERNAL_ERROR');
    }
    const first = this.frames.length === 0;
    this.frames.push(frame);
    this.sizes.push(bytes.length);
    this.hub.events.emit('frame', this, frame);
    // §3.2: HELLO first and once; nothing else before WELCOME.
    if (first !== (frame.type === 'hello') || (frame.type !== 'hello' && !this.welcomed)) {
      this.hub.violations.push(`${frame.type} frame ${first ? 'first' : 'before WELCOME or twice'}`);
      return this.closeWith('UNEXPECTED_FRAME');
    }
    switch (frame.type) {
      case 'hello': {
        this.hello = frame;
        const tokens = this.hub.options.tokens;
        if (tokens && tokens[frame.deviceId] !== frame.token) return this.closeWith('AUTH_FAILED');
        for (const other of this.hub.connections) {
          if (other !== this && other.hello?.deviceId === frame.deviceId && !other.closed) other.closeWith('REPLACED');
        }
        if (!this.hub.options.holdWelcome) this.welcome();
        return;
      }
      case 'reading':
        return this.take([frame]);
      case 'batch':
        return this.take(frame.readings);
      default:
        return;
    }
  }

  private take(readings: Reading[]): void {
    const hello = this.hello!;
    const o = this.hub.options;
    const now = Date.now();
    const rate = this.welcomed!.maxRate;
    let taken = 0;
    for (const r of readings) {
      const stepsBack = r.seq <= this.prevSeq;
      this.prevSeq = r.seq;
      if (now < this.ignoreUntil) {
        if (this.resync && r.seq < this.resync.from) this.resync.from = r.seq;
        this.ignored.push(r);
        continue;
      }
      // §7.4.5: after the pause, only a reading that skips nothing refused, or that steps back (the start of
      // the device's resend), is taken; anything else was sent before the device saw BACKOFF.
      if (this.resync) {
        if (r.seq > this.resync.from && !stepsBack) {
          this.refuse(r, this.resync.code, 50);
          continue;
        }
        this.resync = undefined;
      }
      if (o.backoffNext) {
        const { code, pauseMs } = o.backoffNext;
        o.backoffNext = undefined;
        this.refuse(r, code, pauseMs);
        continue;
      }
      if (o.holdReadings) continue;
      if (rate > 0) {
        const burst = this.hub.options.burst ?? rate;
        this.bucket.tokens = Math.min(burst, this.bucket.tokens + ((now - this.bucket.at) * rate) / 1000);
        this.bucket.at = now;
        if (this.bucket.tokens < 1) {
          this.refuse(r, 'RATE_LIMITED', Math.ceil(((1 - this.bucket.tokens) * 1000) / rate));
          continue;
        }
        this.bucket.tokens -= 1;
      }
      this.hub.store(hello.deviceId, hello.epoch, r);
      taken++;
    }
    if (taken && (o.autoAck ?? true)) {
      const durable = this.hub.durableSeq(hello.deviceId, hello.epoch);
      if (durable > 0) this.ack(durable);
    }
  }
}

export class FakeHub {
  readonly events = new EventEmitter();
  readonly connections: FakeConnection[] = [];
  /** (device:epoch) -> seq -> reading, each stored once. */
  readonly stored = new Map<string, Map<number, Reading>>();
  /** Readings the fake recognised as duplicates (seq <= durable seq), by device:epoch. */
  readonly duplicates = new Map<string, number[]>();
  /** Protocol rules the device broke, in words. */
  readonly violations: string[] = [];
  private readonly durable = new Map<string, number>();

  private constructor(
    readonly options: FakeHubOptions,
    private readonly wss: WebSocketServer,
    readonly url: string,
  ) {
    wss.on('connection', (ws) => {
      const conn = new FakeConnection(this, ws);
      this.connections.push(conn);
      this.events.emit('connection', conn);
    });
  }

  static async start(options: FakeHubOptions = {}): Promise<FakeHub> {
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      perMessageDeflate: false,
      // §1.1: only clients offering tendril.v1 get in.
      handleProtocols: (protocols) => (protocols.has('tendril.v1') ? 'tendril.v1' : false),
    });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    const { port } = wss.address() as AddressInfo;
    return new FakeHub(options, wss, `ws://127.0.0.1:${port}/v1/device`);
  }

  durableSeq(deviceId: string, epoch: number): number {
    return this.durable.get(`${deviceId}:${epoch}`) ?? 0;
  }

  /** Pretends an earlier run already made readings up to `seq` durable. */
  setDurableSeq(deviceId: string, epoch: number, seq: number): void {
    this.durable.set(`${deviceId}:${epoch}`, seq);
  }

  /** §7.2: a reading with seq <= the durable seq is a duplicate: acked, not stored. */
  store(deviceId: string, epoch: number, r: Reading): void {
    const key = `${deviceId}:${epoch}`;
    const durable = this.durable.get(key) ?? 0;
    if (r.seq <= durable) {
      let dups = this.duplicates.get(key);
      if (!dups) this.duplicates.set(key, (dups = []));
      dups.push(r.seq);
      return;
    }
    let m = this.stored.get(key);
    if (!m) this.stored.set(key, (m = new Map()));
    m.set(r.seq, r);
    this.durable.set(key, r.seq);
    this.events.emit('stored', deviceId, epoch, r);
  }

  storedSeqs(deviceId: string, epoch: number): number[] {
    return [...(this.stored.get(`${deviceId}:${epoch}`)?.keys() ?? [])];
  }

  /** The latest connection, once it exists. */
  get last(): FakeConnection | undefined {
    return this.connections[this.connections.length - 1];
  }

  /** Resolves with the n-th connection (0-based) once it has sent HELLO. */
  connection(n: number, timeoutMs = 5000): Promise<FakeConnection> {
    return waitUntil(
      () => (this.connections[n]?.hello ? this.connections[n] : undefined),
      `connection #${n} to send HELLO`,
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.stopPinging();
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/**
 * Resolves with the first truthy value of `probe`, checked now and after every macrotask turn (setImmediate,
 * so socket events in between are seen); rejects naming `what` after timeoutMs.
 */
export function waitUntil<T>(probe: () => T | undefined | null | false, what: string, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = (): void => {
      let value: T | undefined | null | false;
      try {
        value = probe();
      } catch (err) {
        return reject(err);
      }
      if (value) return resolve(value);
      if (Date.now() > deadline) return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(check, 2);
    };
    check();
  });
}

interface Listenable {
  on(event: string, fn: (...args: any[]) => void): unknown;
  off(event: string, fn: (...args: any[]) => void): unknown;
}

/** Resolves with the first argument of the next `event` that passes `filter`; rejects naming `what` after timeoutMs. */
export function nextEvent<T = any>(
  target: Listenable,
  event: string,
  what: string,
  filter: (arg: T) => boolean = () => true,
  timeoutMs = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.off(event, on);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} ('${event}' event)`));
    }, timeoutMs);
    const on = (arg: T): void => {
      if (!filter(arg)) return;
      clearTimeout(timer);
      target.off(event, on);
      resolve(arg);
    };
    target.on(event, on);
  });
}

/** A timer queue the test fires by hand; it records every delay the client asked for. */
export class FakeTimers {
  private nextId = 1;
  readonly active = new Map<number, { fn: () => void; ms: number }>();
  /** Every setTimeout delay, in order. */
  readonly requested: number[] = [];

  readonly setTimeout = (fn: () => void, ms: number): number => {
    const id = this.nextId++;
    this.active.set(id, { fn, ms });
    this.requested.push(ms);
    return id;
  };

  readonly clearTimeout = (id: number): void => {
    this.active.delete(id);
  };

  /** Delays of the timers now pending. */
  pending(): number[] {
    return [...this.active.values()].map((t) => t.ms);
  }

  /** Fires the pending timer with this delay (the only one, if ms is omitted). */
  fire(ms?: number): void {
    const entries = [...this.active.entries()].filter(([, t]) => ms === undefined || t.ms === ms);
    if (entries.length !== 1)
      throw new Error(
        `expected exactly one pending timer${ms === undefined ? '' : ` of ${ms} ms`}, found ${this.pending().join(', ') || 'none'}`,
      );
    const [id, t] = entries[0]!;
    this.active.delete(id);
    t.fn();
  }
}
