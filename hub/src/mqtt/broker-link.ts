/**
 * The hub's MQTT client connection: a receive loop on mqtt-packet over a net/tls socket (docs/mqtt.md §6
 * says why not MQTT.js). Every packet is parsed as it arrives and handed on at once; a QoS 1 PUBLISH gets
 * a slot in an ordered window and its PUBACK goes out only when its slot completes and every slot before it
 * has (PUBACKs in PUBLISH order, MQTT 5 §4.6 [MQTT-4.6.0-2], 3.1.1 §4.6). A slot waiting for durability
 * never holds up parsing, PINGREQ/PINGRESP or other messages: keepalive cannot stall.
 *
 * Persistent session: clean start off (3.1.1: clean session 0) and, for MQTT 5, a session expiry, so the
 * broker keeps QoS 1 messages while the hub is away and resends the unacknowledged ones after a reconnect.
 * Reconnects with exponential back-off and full jitter.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import mqttPacket, { type IConnectPacket, type IPublishPacket, type Packet } from 'mqtt-packet';
import type { Clock, TimerHandle, Timers } from '../core/clock.js';

export interface BrokerLinkOptions {
  /** mqtt://host:port, mqtts://host:port (also tcp://, ssl://, tls://). */
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  /** PEM: CA to trust, client certificate and key (mqtts). */
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  clientId: string;
  protocolVersion: 4 | 5;
  keepaliveSec: number;
  /** MQTT 5: how long the broker keeps the session (and queued QoS 1 messages) while the hub is away. */
  sessionExpirySec: number;
  /** MQTT 5: most QoS 1 messages the broker sends before a PUBACK (3.1.1: the broker's max_inflight_messages). */
  receiveMaximum: number;
  /** MQTT 5: larger packets the broker must not send us. */
  maximumPacketSize: number;
  connectTimeoutMs: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  /** SUBSCRIBE packets sent after every CONNACK, in this order (each one's retained messages come before the next SUBACK). */
  subscriptions: ReadonlyArray<ReadonlyArray<{ topic: string; qos: 0 | 1 }>>;
  clock: Clock;
  timers: Timers;
  random?: () => number;
}

export interface InboundMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1;
  readonly retain: boolean;
  readonly dup: boolean;
  readonly messageId: number;
  /**
   * The message is handled (durable, or refused and reported): its PUBACK may go once all before it went.
   * `onAcked` runs when the PUBACK is written (never, if the connection ends first).
   */
  complete(onAcked?: () => void): void;
}

export interface BrokerLinkListener {
  /** Connected and CONNACKed; `sessionPresent`: the broker kept our session. */
  up(sessionPresent: boolean): void;
  /** Every SUBACK of this connection arrived (the retained messages of every subscription are in). */
  subscribed(failures: string[]): void;
  /** The connection ended (or a connect attempt failed); the link reconnects by itself unless closed. */
  down(reason: string): void;
  message(message: InboundMessage): void;
}

export type LinkState = 'connecting' | 'up' | 'down' | 'closed';

const NOOP = (): void => {};
/** Outbound QoS 1 messages (commands) awaiting their PUBACK at most. */
const MAX_OUTBOUND = 1024;

/**
 * One connection's ordered PUBACK window. Slots are numbered from 0 for the life of the connection; the
 * arrays hold the slots from `offset` on (the sent prefix is dropped now and then).
 */
class AckWindow {
  private ids: number[] = [];
  private done: boolean[] = [];
  private readonly callbacks = new Map<number, () => void>();
  /** Slot number of ids[0]. */
  private offset = 0;
  /** Index (into ids) of the first slot whose PUBACK has not gone. */
  private head = 0;
  private flushScheduled = false;
  open = true;

  constructor(private readonly write: (bytes: Buffer) => void) {}

  get pending(): number {
    return this.ids.length - this.head;
  }

  push(messageId: number): number {
    this.ids.push(messageId);
    this.done.push(false);
    return this.offset + this.ids.length - 1;
  }

  complete(slot: number, onAcked?: () => void): void {
    const i = slot - this.offset;
    if (!this.open || i < this.head || this.done[i]) return;
    this.done[i] = true;
    if (onAcked) this.callbacks.set(slot, onAcked);
    // One write for every PUBACK that becomes sendable in this turn of the event loop.
    if (i === this.head && !this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (!this.open) return;
    let end = this.head;
    while (end < this.ids.length && this.done[end]) end++;
    const n = end - this.head;
    if (n === 0) return;
    // PUBACK: 0x40, remaining length 2, packet id. MQTT 5 allows the same 4 bytes for reason 0 with no properties.
    const out = Buffer.allocUnsafe(4 * n);
    for (let k = 0; k < n; k++) {
      const id = this.ids[this.head + k]!;
      out[4 * k] = 0x40;
      out[4 * k + 1] = 2;
      out[4 * k + 2] = id >> 8;
      out[4 * k + 3] = id & 0xff;
    }
    const first = this.head;
    this.head = end;
    this.write(out);
    if (this.callbacks.size > 0) {
      for (let k = first; k < end; k++) {
        const cb = this.callbacks.get(this.offset + k);
        if (cb) {
          this.callbacks.delete(this.offset + k);
          cb();
        }
      }
    }
    // Drop the sent prefix now and then instead of shifting on every ack.
    if (this.head > 4096 && this.head * 2 > this.ids.length) {
      this.ids = this.ids.slice(this.head);
      this.done = this.done.slice(this.head);
      this.offset += this.head;
      this.head = 0;
    }
  }
}

interface OutboundPublish {
  packet: IPublishPacket;
  resolve: (acked: boolean) => void;
}

export class BrokerLink {
  private socket: Socket | null = null;
  private parser: ReturnType<typeof mqttPacket.parser> | null = null;
  private window: AckWindow | null = null;
  private stateValue: LinkState = 'down';
  /** Reconnects tried or waiting since the link was last up (the back-off's exponent; status shows it). */
  attempts = 0;
  private reconnectTimer: TimerHandle | null = null;
  private connectTimer: TimerHandle | null = null;
  private pingTimer: TimerHandle | null = null;
  private awaitingPingresp = false;
  private subacksPending = 0;
  private subscribeFailures: string[] = [];
  private nextPacketId = 1;
  private readonly outbound = new Map<number, OutboundPublish>();
  private readonly random: () => number;
  /** Last reason the connection is not up (null while up). */
  lastError: string | null = 'not connected yet';
  /** When the link last went up or down, ms. */
  since: number;
  readonly counts = { connects: 0, disconnects: 0, messagesIn: 0, pubacksSent: 0, publishesOut: 0 };

  constructor(
    private readonly opts: BrokerLinkOptions,
    private readonly listener: BrokerLinkListener,
  ) {
    this.random = opts.random ?? Math.random;
    this.since = opts.clock.now();
  }

  get state(): LinkState {
    return this.stateValue;
  }

  /** QoS 1 messages received on this connection whose PUBACK has not gone yet. */
  get unacked(): number {
    return this.window?.pending ?? 0;
  }

  start(): void {
    if (this.stateValue === 'closed' || this.socket !== null) return;
    this.connect();
  }

  private connect(): void {
    this.reconnectTimer = null;
    if (this.stateValue === 'closed') return;
    this.stateValue = 'connecting';
    const url = new URL(this.opts.url);
    const secure = url.protocol === 'mqtts:' || url.protocol === 'ssl:' || url.protocol === 'tls:';
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = url.port === '' ? (secure ? 8883 : 1883) : Number(url.port);
    const socket = secure
      ? tlsConnect({
          host,
          port,
          servername: /^[\d.:]+$/.test(host) ? undefined : host,
          ca: this.opts.ca,
          cert: this.opts.cert,
          key: this.opts.key,
        })
      : netConnect({ host, port });
    socket.setNoDelay(true);
    this.socket = socket;
    const parser = mqttPacket.parser({ protocolVersion: this.opts.protocolVersion });
    this.parser = parser;
    const window = new AckWindow((bytes) => {
      if (this.socket === socket && !socket.destroyed) {
        socket.write(bytes);
        this.counts.pubacksSent += bytes.length / 4;
      }
    });
    this.window = window;
    parser.on('packet', (packet: Packet) => this.onPacket(packet, socket, window));
    parser.on('error', (err: Error) => this.drop(socket, `malformed packet from the broker: ${err.message}`));
    socket.on(secure ? 'secureConnect' : 'connect', () => this.sendConnect(socket));
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) parser.parse(chunk);
    });
    socket.on('error', (err: Error) => this.drop(socket, err.message));
    socket.on('close', () => this.drop(socket, 'the broker closed the connection'));
    this.connectTimer = this.opts.timers.setTimeout(() => {
      this.connectTimer = null;
      this.drop(socket, `no CONNACK within ${this.opts.connectTimeoutMs} ms`);
    }, this.opts.connectTimeoutMs);
  }

  private sendConnect(socket: Socket): void {
    const o = this.opts;
    const packet: IConnectPacket = {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: o.protocolVersion,
      clientId: o.clientId,
      clean: false,
      keepalive: o.keepaliveSec,
    };
    if (o.username !== undefined) packet.username = o.username;
    if (o.password !== undefined) packet.password = Buffer.from(o.password, 'utf8');
    if (o.protocolVersion === 5) {
      packet.properties = {
        sessionExpiryInterval: o.sessionExpirySec,
        receiveMaximum: o.receiveMaximum,
        maximumPacketSize: o.maximumPacketSize,
      };
    }
    this.writePacket(socket, packet);
  }

  private writePacket(socket: Socket, packet: Packet): void {
    if (socket.destroyed) return;
    socket.write(mqttPacket.generate(packet, { protocolVersion: this.opts.protocolVersion }));
  }

  private onPacket(packet: Packet, socket: Socket, window: AckWindow): void {
    if (this.socket !== socket) return;
    switch (packet.cmd) {
      case 'publish':
        return this.onPublish(packet, socket, window);
      case 'connack':
        return this.onConnack(packet.returnCode ?? packet.reasonCode ?? 0, packet.sessionPresent, socket);
      case 'suback': {
        const granted = packet.granted as number[];
        granted.forEach((code) => {
          if (code >= 0x80) this.subscribeFailures.push(`SUBSCRIBE refused (reason 0x${code.toString(16)})`);
        });
        if (--this.subacksPending === 0) this.listener.subscribed(this.subscribeFailures);
        return;
      }
      case 'puback': {
        const out = this.outbound.get(packet.messageId!);
        if (out) {
          this.outbound.delete(packet.messageId!);
          out.resolve((packet.reasonCode ?? 0) < 0x80);
        }
        return;
      }
      case 'pingresp':
        this.awaitingPingresp = false;
        return;
      case 'disconnect':
        return this.drop(socket, `the broker sent DISCONNECT (reason 0x${(packet.reasonCode ?? 0).toString(16)})`);
      case 'pubrel':
        // Only with QoS 2, which the bridge never subscribes at; complete the exchange anyway.
        return this.writePacket(socket, { cmd: 'pubcomp', messageId: packet.messageId! });
      default:
        return;
    }
  }

  private onConnack(code: number, sessionPresent: boolean, socket: Socket): void {
    if (this.connectTimer !== null) {
      this.opts.timers.clearTimeout(this.connectTimer);
      this.connectTimer = null;
    }
    if (code !== 0)
      return this.drop(socket, `the broker refused the connection: ${connackReason(code, this.opts.protocolVersion)}`);
    this.stateValue = 'up';
    this.attempts = 0;
    this.lastError = null;
    this.since = this.opts.clock.now();
    this.counts.connects++;
    this.awaitingPingresp = false;
    this.pingTimer = this.opts.timers.setInterval(() => this.ping(socket), this.opts.keepaliveSec * 1000);
    this.listener.up(sessionPresent);
    // Outbound QoS 1 messages not acknowledged on the last connection go again (MQTT-4.4.0-1).
    for (const out of this.outbound.values()) {
      out.packet.dup = true;
      this.writePacket(socket, out.packet);
    }
    this.subscribeFailures = [];
    this.subacksPending = this.opts.subscriptions.length;
    for (const group of this.opts.subscriptions) {
      this.writePacket(socket, {
        cmd: 'subscribe',
        messageId: this.allocatePacketId(),
        subscriptions: group.map((s) => ({ topic: s.topic, qos: s.qos })),
      });
    }
    if (this.subacksPending === 0) this.listener.subscribed([]);
  }

  private onPublish(packet: IPublishPacket, socket: Socket, window: AckWindow): void {
    this.counts.messagesIn++;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const qos = packet.qos === 0 ? 0 : 1;
    let complete = NOOP;
    if (packet.qos === 1) {
      const slot = window.push(packet.messageId!);
      complete = (onAcked?: () => void) => window.complete(slot, onAcked);
    } else if (packet.qos === 2) {
      // Never subscribed at QoS 2; answer PUBREC so the broker does not keep it in flight forever.
      this.writePacket(socket, { cmd: 'pubrec', messageId: packet.messageId! });
    }
    this.listener.message({
      topic: packet.topic,
      payload,
      qos,
      retain: packet.retain,
      dup: packet.dup,
      messageId: packet.messageId ?? 0,
      complete,
    });
  }

  private ping(socket: Socket): void {
    if (this.socket !== socket) return;
    if (this.awaitingPingresp) return this.drop(socket, `no PINGRESP within ${this.opts.keepaliveSec} s`);
    this.awaitingPingresp = true;
    this.writePacket(socket, { cmd: 'pingreq' });
  }

  private allocatePacketId(): number {
    for (let i = 0; i < 65535; i++) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.outbound.has(id)) return id;
    }
    throw new Error('every MQTT packet id is in flight');
  }

  /**
   * Publishes; QoS 1 resolves true once the broker acknowledged it (false: refused, or the link closed).
   * Returns null when nothing was sent: the link is not up, or 1024 QoS 1 messages await their PUBACK.
   */
  publish(
    topic: string,
    payload: Buffer,
    options: { qos: 0 | 1; retain?: boolean; expirySec?: number },
  ): Promise<boolean> | null {
    const socket = this.socket;
    if (this.stateValue !== 'up' || socket === null) return null;
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic,
      payload,
      qos: options.qos,
      dup: false,
      retain: options.retain ?? false,
    };
    if (options.expirySec !== undefined && this.opts.protocolVersion === 5)
      packet.properties = { messageExpiryInterval: options.expirySec };
    if (options.qos === 1 && this.outbound.size >= MAX_OUTBOUND) return null;
    this.counts.publishesOut++;
    if (options.qos === 0) {
      this.writePacket(socket, packet);
      return Promise.resolve(true);
    }
    packet.messageId = this.allocatePacketId();
    return new Promise((resolve) => {
      this.outbound.set(packet.messageId!, { packet, resolve });
      this.writePacket(socket, packet);
    });
  }

  private drop(socket: Socket, reason: string): void {
    if (this.socket !== socket) return;
    this.socket = null;
    this.parser = null;
    if (this.window) this.window.open = false;
    this.window = null;
    socket.destroy();
    if (this.connectTimer !== null) this.opts.timers.clearTimeout(this.connectTimer);
    if (this.pingTimer !== null) this.opts.timers.clearInterval(this.pingTimer);
    this.connectTimer = this.pingTimer = null;
    const wasUp = this.stateValue === 'up';
    if (this.stateValue !== 'closed') this.stateValue = 'down';
    this.lastError = this.stateValue === 'closed' ? 'closed by the hub' : reason;
    if (wasUp) {
      this.since = this.opts.clock.now();
      this.counts.disconnects++;
    }
    this.listener.down(reason);
    if (this.stateValue === 'closed') {
      for (const out of this.outbound.values()) out.resolve(false);
      this.outbound.clear();
      return;
    }
    // §6.7-style back-off: uniform in [0, min(max, initial * 2^n)].
    const ceiling = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectInitialMs * 2 ** Math.min(this.attempts, 20));
    this.attempts++;
    const delay = Math.floor(this.random() * ceiling);
    this.reconnectTimer = this.opts.timers.setTimeout(() => this.connect(), delay);
  }

  /** Ends the current connection without DISCONNECT, as a network cut would (the broker publishes nothing of ours; the link reconnects). */
  cut(reason = 'connection cut by the hub'): void {
    if (this.socket !== null) this.drop(this.socket, reason);
  }

  /** Sends DISCONNECT (the broker keeps the session: queued messages wait for the next start) and stops reconnecting. */
  async close(): Promise<void> {
    const prev = this.stateValue;
    this.stateValue = 'closed';
    if (this.reconnectTimer !== null) {
      this.opts.timers.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    const socket = this.socket;
    if (socket === null) {
      for (const out of this.outbound.values()) out.resolve(false);
      this.outbound.clear();
      return;
    }
    if (prev === 'up') this.writePacket(socket, { cmd: 'disconnect' });
    await new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve();
      socket.once('close', () => resolve());
      socket.end();
      const t = this.opts.timers.setTimeout(() => socket.destroy(), 2000);
      socket.once('close', () => this.opts.timers.clearTimeout(t));
    });
    this.drop(socket, 'closed by the hub');
  }
}

function connackReason(code: number, version: 4 | 5): string {
  if (version === 4) {
    return (
      [
        'accepted',
        'unacceptable protocol version',
        'client id rejected',
        'server unavailable',
        'bad user name or password',
        'not authorized',
      ][code] ?? `return code ${code}`
    );
  }
  const names: Record<number, string> = {
    0x80: 'unspecified error',
    0x84: 'unsupported protocol version',
    0x85: 'client id not valid',
    0x86: 'bad user name or password',
    0x87: 'not authorized',
    0x88: 'server unavailable',
    0x89: 'server busy',
    0x8a: 'banned',
    0x8c: 'bad authentication method',
    0x95: 'packet too large',
    0x97: 'quota exceeded',
  };
  return `${names[code] ?? 'reason'} (0x${code.toString(16)})`;
}
