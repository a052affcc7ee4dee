/**
 * A fleet of simulated devices, each a real TendrilDevice (the device SDK) over its own WebSocket. One
 * shared Scheduler drives everything: reading cadence, connection pacing, faults and the SDK's own timers,
 * so 10,000 devices cost one timer on the event loop.
 */
import {
  CommandRejected,
  SDK_VERSION,
  TendrilDevice,
  type CommandContext,
  type CommandHandler,
  type DeviceStats,
  type DisconnectInfo,
  type RejectInfo,
  type TendrilDeviceEvents,
} from '@tendril/device-sdk';
import { FleetCounters, ReadingLedger } from './accounting.js';
import { MalformedSender, type MalformedCounters, type MalformedDeviceSpec } from './malformed.js';
import { MqttSimDevice } from './mqtt-device.js';
import type { DeviceModel, ModelInstance, Sample } from './models/index.js';
import { NO_FAULTS, type FaultOptions } from './options.js';
import { deriveSeed, exponential, seededRandom, type RandomSource } from './random.js';
import { Scheduler, type ScheduledTask, type Timers } from './scheduler.js';
import { SimSocket, SOCKET_OWNER, type SocketOwner } from './sim-socket.js';

export interface FleetDeviceSpec {
  id: string;
  name: string;
  model: DeviceModel;
  token: string;
  /** Seed of this device's values and faults. */
  seed: number;
  /** How it reaches the hub: its own WebSocket (default), or an MQTT broker and the hub's bridge. */
  transport?: 'ws' | 'mqtt';
}

/** What the fleet uses of a device client: the SDK's TendrilDevice, or MqttSimDevice. */
export interface DeviceClient {
  readonly epoch: number;
  on<E extends keyof TendrilDeviceEvents>(event: E, listener: TendrilDeviceEvents[E]): unknown;
  onCommand(name: string, handler: CommandHandler): unknown;
  send(values: Record<string, number | boolean | string | undefined>, ts?: number | null): number;
  start(): void;
  close(): Promise<void>;
  flush(timeoutMs: number): Promise<void>;
  /** The SDK's buffer counts (sent, acked, dropped, ...); MQTT devices have none. */
  readonly stats?: DeviceStats;
}

export interface FleetOptions {
  /** ws(s)://host:port/v1/device */
  deviceUrl: string;
  devices: readonly FleetDeviceSpec[];
  /** Readings per second per device (until a set-interval command changes one device's). */
  ratePerSecond: number;
  /** Devices that send malformed frames over a raw socket (provisioned like the others). */
  malformedDevices?: readonly MalformedDeviceSpec[];
  faults?: Partial<FaultOptions>;
  /** Seed of fleet-wide randomness (start phases). Default 1. */
  seed?: number;
  /** New connections per second while the fleet comes up. Default 200. */
  connectsPerSecond?: number;
  /** SDK buffer size per device. */
  bufferSize?: number;
  /** Extra options for every socket (e.g. `ca` for wss with a private CA). */
  wsOptions?: Record<string, unknown>;
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  scheduler?: Scheduler;
  /** Pause between one malformed device's attempts. Default 2000 ms. */
  malformedEveryMs?: number;
  /** Timers for added latency; real timers by default (finer than the scheduler's tick). */
  latencyTimers?: Timers;
  /** The broker for devices with transport 'mqtt'; their login is their id and `password`. */
  mqtt?: { url: string; password?: string | undefined; ca?: Buffer | undefined };
}

/** What a reboot command may ask for, ms. */
export const MAX_REBOOT_DELAY_MS = 600_000;
export const MIN_INTERVAL_MS = 100;
export const MAX_INTERVAL_MS = 86_400_000;
/** Pause between a reboot command's result and the disconnect, so the result leaves first. */
const REBOOT_GRACE_MS = 50;

export interface FleetSnapshot {
  devices: number;
  connected: number;
  sent: number;
  acked: number;
  rejected: number;
  dropped: number;
  buffered: number;
  commandsHandled: number;
  errorsByCode: Record<string, number>;
  rejectedByCode: Record<string, number>;
  backoffsByCode: Record<string, number>;
}

export interface FaultCounters {
  dropsInjected: number;
  storms: number;
  bursts: number;
  burstReadings: number;
}

export class Fleet {
  readonly scheduler: Scheduler;
  readonly counters = new FleetCounters();
  readonly faultCounters: FaultCounters = { dropsInjected: 0, storms: 0, bursts: 0, burstReadings: 0 };
  readonly devices: SimulatedDevice[];
  readonly faults: FaultOptions;
  readonly malformed: MalformedSender | null;
  private readonly ownsScheduler: boolean;
  private readonly connectQueue: SimulatedDevice[];
  private removePacer: (() => void) | null = null;
  private stormTask: ScheduledTask | null = null;
  private stopping = false;
  private readonly connectsPerTick: number;
  private connectCredit = 0;

  constructor(readonly options: FleetOptions) {
    this.faults = { ...NO_FAULTS, ...options.faults };
    this.ownsScheduler = !options.scheduler;
    this.scheduler = options.scheduler ?? new Scheduler();
    this.connectsPerTick = ((options.connectsPerSecond ?? 200) * this.scheduler.tickMs) / 1000;
    const phase = seededRandom(deriveSeed(options.seed ?? 1, 0xfa5e));
    this.devices = options.devices.map((spec) => new SimulatedDevice(this, spec, phase()));
    this.connectQueue = [...this.devices];
    this.malformed = options.malformedDevices?.length
      ? new MalformedSender({
          url: options.deviceUrl,
          devices: options.malformedDevices,
          scheduler: this.scheduler,
          wsOptions: options.wsOptions ?? {},
          ...(options.malformedEveryMs ? { everyMs: options.malformedEveryMs } : {}),
        })
      : null;
  }

  /** Starts connecting (paced), sending, and the configured faults. */
  start(): void {
    if (this.ownsScheduler) this.scheduler.start();
    this.removePacer = this.scheduler.onTick(() => this.connectNext());
    this.connectNext();
    if (this.faults.reconnectStormSeconds > 0) this.scheduleStorm();
    this.malformed?.start();
  }

  private connectNext(): void {
    if (this.stopping) return;
    this.connectCredit = Math.min(this.connectCredit + this.connectsPerTick, Math.max(1, this.connectsPerTick));
    while (this.connectCredit >= 1 && this.connectQueue.length > 0) {
      this.connectCredit--;
      this.connectQueue.shift()!.start();
    }
    if (this.connectQueue.length === 0) {
      this.removePacer?.();
      this.removePacer = null;
    }
  }

  private scheduleStorm(): void {
    this.stormTask = this.scheduler.after(this.faults.reconnectStormSeconds * 1000, () => {
      if (this.stopping) return;
      this.storm();
      this.scheduleStorm();
    });
  }

  /** Cuts every device's connection at the same moment. */
  storm(): void {
    this.faultCounters.storms++;
    for (const d of this.devices) d.cutConnection();
  }

  get connected(): number {
    return this.counters.connected;
  }

  snapshot(): FleetSnapshot {
    const c = this.counters;
    return {
      devices: this.devices.length,
      connected: c.connected,
      sent: c.sent,
      acked: c.acked,
      rejected: c.rejected,
      dropped: c.dropped,
      buffered: c.buffered,
      commandsHandled: c.commandsHandled,
      errorsByCode: { ...c.errorsByCode },
      rejectedByCode: { ...c.rejectedByCode },
      backoffsByCode: { ...c.backoffsByCode },
    };
  }

  get malformedCounters(): MalformedCounters | null {
    return this.malformed?.counters ?? null;
  }

  /** Stops sending new readings and faults; the connections stay up so buffered readings can be acked. */
  stopSending(): void {
    this.stopping = true;
    this.removePacer?.();
    this.removePacer = null;
    this.scheduler.cancel(this.stormTask);
    for (const d of this.devices) d.stopSending();
    this.malformed?.stop();
  }

  /** Waits until every device's buffer is acked, or `timeoutMs` passes. Resolves true when all were. */
  async drain(timeoutMs: number): Promise<boolean> {
    const results = await Promise.allSettled(this.devices.map((d) => d.flush(timeoutMs)));
    return results.every((r) => r.status === 'fulfilled');
  }

  /** Stops everything and closes every connection (1000). */
  async close(): Promise<void> {
    if (!this.stopping) this.stopSending();
    await Promise.all(this.devices.map((d) => d.close()));
    await this.malformed?.close();
    if (this.ownsScheduler) this.scheduler.stop();
  }
}

/** One simulated device: a model instance behind a real TendrilDevice. */
export class SimulatedDevice implements SocketOwner {
  readonly sdk: DeviceClient;
  private readonly mqtt: MqttSimDevice | null = null;
  readonly instance: ModelInstance;
  readonly ledger: ReadingLedger;
  readonly latencyMs: number;
  readonly latencyTimers: Timers | undefined;
  intervalMs: number;
  connected = false;
  rebooting = false;
  private socket: SimSocket | null = null;
  private nextReading: ScheduledTask | null = null;
  private nextDrop: ScheduledTask | null = null;
  private nextBurst: ScheduledTask | null = null;
  private sending = true;
  private startedAt = 0;
  private lastTs = 0;
  private readonly random: RandomSource;
  private readonly clock: () => number;

  constructor(
    private readonly fleet: Fleet,
    readonly spec: FleetDeviceSpec,
    /** Where in its interval this device reports, 0..1, so a fleet does not report in lockstep. */
    private readonly phase: number,
  ) {
    const o = fleet.options;
    const scheduler = fleet.scheduler;
    const skew = fleet.faults.clockSkewMs;
    this.clock = skew === 0 ? scheduler.clock : () => scheduler.clock() + skew;
    this.random = seededRandom(deriveSeed(spec.seed, 0xd00d));
    this.intervalMs = Math.max(1, Math.round(1000 / o.ratePerSecond));
    this.latencyMs = fleet.faults.latencyMs;
    this.latencyTimers = o.latencyTimers;
    this.ledger = new ReadingLedger(fleet.counters);
    this.instance = spec.model.create(spec.seed, this.clock());
    const sdkTimers: Timers = {
      setTimeout: (fn, ms) => scheduler.after(ms, fn),
      clearTimeout: (task) => scheduler.cancel(task as ScheduledTask),
    };
    if (spec.transport === 'mqtt') {
      if (!o.mqtt) throw new Error(`device ${spec.id} goes over MQTT but the fleet has no broker (FleetOptions.mqtt)`);
      this.mqtt = new MqttSimDevice({
        url: o.mqtt.url,
        deviceId: spec.id,
        password: o.mqtt.password,
        ca: o.mqtt.ca,
        metrics: spec.model.metrics.map((m) => ({ ...m })),
        firmware: spec.model.firmware,
        epoch: Math.floor(Math.random() * 2 ** 32),
        clock: this.clock,
      });
      this.sdk = this.mqtt;
      this.wireEvents();
      this.wireCommands();
      return;
    }
    this.sdk = new TendrilDevice({
      url: o.deviceUrl,
      deviceId: spec.id,
      token: spec.token,
      metrics: spec.model.metrics.map((m) => ({ ...m })),
      WebSocket: SimSocket as never,
      wsOptions: { perMessageDeflate: false, ...o.wsOptions, [SOCKET_OWNER]: this },
      firmware: spec.model.firmware,
      ...(o.bufferSize ? { bufferSize: o.bufferSize } : {}),
      // A fresh epoch per run: the seed fixes the values, not the identity of this run's counter.
      epoch: Math.floor(Math.random() * 2 ** 32),
      reconnect: { initialDelayMs: 500, maxDelayMs: 30_000, ...o.reconnect },
      clock: this.clock,
      random: seededRandom(deriveSeed(spec.seed, 0x5eed)),
      timers: sdkTimers,
    });
    this.wireEvents();
    this.wireCommands();
  }

  attach(socket: SimSocket): void {
    this.socket = socket;
  }

  start(): void {
    this.startedAt = this.fleet.scheduler.clock();
    this.sdk.start();
    const drops = this.fleet.faults.dropRatePerHour;
    if (drops > 0) this.scheduleDrop(drops);
  }

  private wireEvents(): void {
    const c = this.fleet.counters;
    const now = this.fleet.scheduler.clock;
    this.sdk.on('connect', () => {
      if (!this.connected) c.connected++;
      this.connected = true;
      c.connects++;
      // A device starts reporting once it is first welcomed (its phase spreads the fleet over the interval).
      if (!this.nextReading && this.sending && !this.rebooting) {
        this.nextReading = this.fleet.scheduler.after(this.phase * this.intervalMs, () => this.report());
        this.scheduleBurst(true);
      }
    });
    this.sdk.on('disconnect', (info: DisconnectInfo) => {
      if (this.connected) c.connected--;
      this.connected = false;
      c.disconnects++;
      c.countClose(info.code);
    });
    this.sdk.on('ack', (seq: number) => this.ledger.ack(seq, now()));
    this.sdk.on('reject', (info: RejectInfo) => this.ledger.reject(info.seq, info.code));
    this.sdk.on('drop', (info: { count: number }) => this.ledger.drop(info.count));
    this.sdk.on('backoff', (info: { code: string }) => c.countBackoff(info.code));
    this.sdk.on('error', (err: Error) => c.countError((err as { code?: string }).code ?? err.name));
  }

  private wireCommands(): void {
    const c = this.fleet.counters;
    const model = this.spec.model;
    const handle = (name: string, fn: (args: Record<string, unknown>, ctx: CommandContext) => unknown): void => {
      this.sdk.onCommand(name, (args: unknown, ctx: CommandContext) => {
        try {
          const result = fn(args !== null && typeof args === 'object' ? (args as Record<string, unknown>) : {}, ctx);
          c.countCommand(name, false);
          return result;
        } catch (error) {
          c.countCommand(name, true);
          throw error;
        }
      });
    };
    handle('set-interval', (args) => {
      const ms = args.ms;
      if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS) {
        throw new CommandRejected(
          `set-interval needs {"ms": integer ${MIN_INTERVAL_MS}..${MAX_INTERVAL_MS}}, got ${JSON.stringify(args.ms)}`,
        );
      }
      this.setInterval(ms);
      return { intervalMs: ms };
    });
    handle('reboot', (args) => {
      const delayMs = args.delayMs ?? 5000;
      if (typeof delayMs !== 'number' || !Number.isInteger(delayMs) || delayMs < 0 || delayMs > MAX_REBOOT_DELAY_MS) {
        throw new CommandRejected(
          `reboot needs {"delayMs": integer 0..${MAX_REBOOT_DELAY_MS}}, got ${JSON.stringify(args.delayMs)}`,
        );
      }
      if (this.rebooting) throw new CommandRejected('already rebooting');
      this.fleet.scheduler.after(REBOOT_GRACE_MS, () => void this.reboot(delayMs));
      return { rebooting: true, delayMs };
    });
    for (const name of ['relay', 'led'] as const) {
      handle(name, (args) => {
        if (name !== model.switchName)
          throw new CommandRejected(
            `a ${model.name} has a ${model.switchName}, not a ${name}; send "${model.switchName}"`,
          );
        if (typeof args.on !== 'boolean')
          throw new CommandRejected(`${name} needs {"on": true|false}, got ${JSON.stringify(args.on)}`);
        this.instance.switchOn = args.on;
        // The new state goes out as a reading at once, not at the next interval.
        this.sendReading({ [name]: args.on });
        return { [name]: args.on };
      });
    }
    handle('firmware-info', () => ({
      model: model.name,
      firmware: model.firmware,
      sdk: SDK_VERSION,
      epoch: this.sdk.epoch,
      intervalMs: this.intervalMs,
      uptimeMs: this.fleet.scheduler.clock() - this.startedAt,
    }));
  }

  /** Sends one reading now with a strictly increasing device timestamp (no two readings share a ts). */
  private sendReading(values: Sample): void {
    const ts = Math.max(Math.floor(this.clock()), this.lastTs + 1);
    this.lastTs = ts;
    const seq = this.sdk.send(values, ts);
    this.ledger.sent(seq, this.fleet.scheduler.clock());
  }

  private report(): void {
    this.nextReading = null;
    if (!this.sending || this.rebooting) return;
    this.sendReading(this.instance.sample(this.clock()));
    this.nextReading = this.fleet.scheduler.after(this.intervalMs, () => this.report());
  }

  setInterval(ms: number): void {
    this.intervalMs = ms;
    if (this.nextReading) {
      this.fleet.scheduler.cancel(this.nextReading);
      this.nextReading = this.fleet.scheduler.after(ms, () => this.report());
    }
  }

  private scheduleBurst(first: boolean): void {
    const burst = this.fleet.faults.burst;
    if (!burst || this.nextBurst) return;
    const every = burst.everySeconds * 1000;
    this.nextBurst = this.fleet.scheduler.after(first ? this.phase * every + every / 2 : every, () => {
      this.nextBurst = null;
      if (!this.sending) return;
      if (!this.rebooting) {
        this.fleet.faultCounters.bursts++;
        this.fleet.faultCounters.burstReadings += burst.readings;
        for (let i = 0; i < burst.readings; i++) this.sendReading(this.instance.sample(this.clock()));
      }
      this.scheduleBurst(false);
    });
  }

  private scheduleDrop(perHour: number): void {
    this.nextDrop = this.fleet.scheduler.after(exponential(this.random, 3_600_000 / perHour), () => {
      this.nextDrop = null;
      if (!this.sending) return;
      if (this.connected) {
        this.fleet.faultCounters.dropsInjected++;
        this.cutConnection();
      }
      this.scheduleDrop(perHour);
    });
  }

  /** A network failure: the socket dies without a close handshake; the SDK reconnects. */
  cutConnection(): void {
    if (this.rebooting) return;
    this.socket?.cut();
    this.mqtt?.cut();
  }

  private async reboot(delayMs: number): Promise<void> {
    this.rebooting = true;
    this.fleet.scheduler.cancel(this.nextReading);
    this.nextReading = null;
    // The buffer survives the reboot (kept in flash), so its readings are resent afterwards.
    await this.sdk.close();
    this.fleet.scheduler.after(delayMs, () => {
      this.rebooting = false;
      this.startedAt = this.fleet.scheduler.clock();
      if (this.sending) this.sdk.start();
    });
  }

  stopSending(): void {
    this.sending = false;
    for (const task of [this.nextReading, this.nextDrop, this.nextBurst]) this.fleet.scheduler.cancel(task);
    this.nextReading = this.nextDrop = this.nextBurst = null;
  }

  flush(timeoutMs: number): Promise<void> {
    return this.sdk.flush(timeoutMs);
  }

  close(): Promise<void> {
    this.stopSending();
    return this.sdk.close();
  }
}
