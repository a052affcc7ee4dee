/**
 * A simulated device that reaches the hub through an MQTT broker and the hub's MQTT bridge (docs/mqtt.md)
 * instead of the tendril.v1 WebSocket. It offers the part of TendrilDevice's interface the fleet uses, so a
 * fleet can run half over MQTT (--transport mix):
 *
 * - start(): connects (MQTT 5, persistent session, retained last will `offline` on .../state), publishes
 *   its birth (retained, with its epoch: it numbers its readings) and `online`, reads .../cmd and .../error;
 * - send(): one reading at QoS 1 on .../data with seq and ts; 'ack' when the broker acknowledges it (the
 *   bridge acknowledges to the broker only once durable; the broker keeps it meanwhile);
 * - .../error -> 'reject' (with seq) or 'error'; .../cmd -> the command handlers, results on .../cmd/result;
 * - cut(): a dead TCP connection (the broker publishes the will); MQTT.js reconnects and resends.
 */
import { CommandRejected, type CommandHandler, type MetricOption, type TendrilDeviceEvents } from '@tendril/device-sdk';
import mqtt from 'mqtt';

export interface MqttDeviceOptions {
  /** mqtt(s)://host:port of the broker. */
  url: string;
  deviceId: string;
  /** Broker login: the device id and this password (the shipped broker's ACL keys on the user name). */
  password?: string | undefined;
  metrics: readonly MetricOption[];
  firmware: string;
  epoch: number;
  clock: () => number;
  ca?: Buffer | undefined;
  reconnectMs?: number;
}

type Listener = (...args: never[]) => void;

export class MqttSimDevice {
  readonly epoch: number;
  private client: mqtt.MqttClient | null = null;
  private readonly listeners = new Map<string, Listener[]>();
  private readonly handlers = new Map<string, CommandHandler>();
  private seq = 0;
  private acked = 0;
  private readonly unacked = new Set<number>();
  private flushWaiters: Array<() => void> = [];
  private connected = false;
  private readonly topic: string;

  constructor(private readonly opts: MqttDeviceOptions) {
    this.epoch = opts.epoch;
    this.topic = `tendril/v1/${opts.deviceId}`;
  }

  on<E extends keyof TendrilDeviceEvents>(event: E, listener: TendrilDeviceEvents[E]): this {
    const list = this.listeners.get(event) ?? [];
    list.push(listener as Listener);
    this.listeners.set(event, list);
    return this;
  }

  private emit(event: keyof TendrilDeviceEvents, ...args: unknown[]): void {
    for (const l of this.listeners.get(event) ?? []) (l as (...a: unknown[]) => void)(...args);
  }

  onCommand(name: string, handler: CommandHandler): this {
    this.handlers.set(name, handler);
    return this;
  }

  start(): void {
    if (this.client) return;
    const o = this.opts;
    const client = mqtt.connect(o.url, {
      protocolVersion: 5,
      clientId: `sim-${o.deviceId}`,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      reconnectPeriod: o.reconnectMs ?? 1000,
      ...(o.password !== undefined ? { username: o.deviceId, password: o.password } : {}),
      ...(o.ca ? { ca: o.ca } : {}),
      will: { topic: `${this.topic}/state`, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    this.client = client;
    client.on('connect', () => {
      const birth = {
        epoch: this.epoch,
        firmware: o.firmware,
        sdk: 'simulator/mqtt',
        metrics: o.metrics.map(({ name, kind, unit, min, max }) => ({ name, kind, unit, min, max })),
      };
      client.publish(`${this.topic}/birth`, JSON.stringify(birth), { qos: 1, retain: true });
      client.publish(`${this.topic}/state`, 'online', { qos: 1, retain: true });
      client.subscribe([`${this.topic}/cmd`, `${this.topic}/error`], { qos: 1 });
      this.connected = true;
      this.emit('connect', {
        type: 'welcome',
        serverTime: Date.now(),
        ackedSeq: this.acked,
        heartbeatMs: 0,
        maxFrameBytes: 0,
        maxBatch: 0,
        maxRate: 0,
      });
    });
    client.on('close', () => {
      if (!this.connected) return;
      this.connected = false;
      this.emit('disconnect', { code: 1006, reason: 'MQTT connection closed', willReconnect: this.client !== null });
    });
    client.on('error', (err) => this.emit('error', err));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  private onMessage(topic: string, payload: Buffer): void {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    } catch {
      return;
    }
    if (topic.endsWith('/error')) {
      const code = String(json.code);
      if (typeof json.seq === 'number')
        this.emit('reject', {
          seq: json.seq,
          alias: null,
          metric: json.metric as string | undefined,
          code,
          message: String(json.message),
        });
      else this.emit('error', Object.assign(new Error(String(json.message)), { code }));
      return;
    }
    void this.runCommand(json);
  }

  private async runCommand(cmd: Record<string, unknown>): Promise<void> {
    const id = cmd.id as number;
    const name = String(cmd.name);
    const result = (status: string, detail: string) =>
      this.client?.publish(`${this.topic}/cmd/result`, JSON.stringify({ id, status, detail }), { qos: 1 });
    result('delivered', '');
    const handler = this.handlers.get(name);
    if (!handler) return void result('rejected', `unknown command ${name}`);
    try {
      const value = await handler(cmd.args ?? {}, { commandId: id, name, timeoutMs: Number(cmd.timeoutMs) });
      result('succeeded', value === undefined ? '' : JSON.stringify(value));
    } catch (err) {
      result(err instanceof CommandRejected ? 'rejected' : 'failed', (err as Error).message);
    }
  }

  /** Publishes one reading (QoS 1); returns its seq. MQTT.js keeps it until the broker acknowledges it. */
  send(values: Record<string, number | boolean | string | undefined>, ts: number | null = this.opts.clock()): number {
    const seq = ++this.seq;
    const clean: Record<string, number | boolean | string> = {};
    for (const [k, v] of Object.entries(values)) if (v !== undefined) clean[k] = v;
    this.unacked.add(seq);
    this.client?.publish(
      `${this.topic}/data`,
      JSON.stringify({ seq, ...(ts !== null ? { ts } : {}), values: clean }),
      { qos: 1 },
      (err) => {
        if (err) return;
        this.unacked.delete(seq);
        this.acked = Math.max(this.acked, seq);
        this.emit('ack', seq);
        if (this.unacked.size === 0) for (const w of this.flushWaiters.splice(0)) w();
      },
    );
    return seq;
  }

  flush(timeoutMs: number): Promise<void> {
    if (this.unacked.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () =>
          reject(new Error(`${this.unacked.size} reading(s) not acknowledged by the broker within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.flushWaiters.push(() => (clearTimeout(t), resolve()));
    });
  }

  /** A dead TCP connection: no DISCONNECT, so the broker publishes the will; MQTT.js reconnects. */
  cut(): void {
    (this.client as unknown as { stream?: { destroy(): void } } | null)?.stream?.destroy();
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (!client) return;
    if (client.connected)
      await client
        .publishAsync(`${this.topic}/state`, JSON.stringify({ state: 'offline', reason: 'CLOSED' }), {
          qos: 1,
          retain: true,
        })
        .catch(() => undefined);
    await client.endAsync();
  }
}
