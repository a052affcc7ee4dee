/**
 * A FAKE devices layer for the MQTT bridge's unit tests: it implements the DeviceAttacher contract
 * (hub/src/devices/types.ts) and the IngestSession contract (hub/src/ingest/types.ts) with the real
 * validator, and lets a test decide when readings become durable and when the store is busy. The plugin
 * and end-to-end tests run the bridge against the real devices layer; this fake only makes orderings
 * reachable that the real chain makes hard to force.
 */
import type { CommandStatus, Reading } from '@tendril/device-sdk/codec';
import type {
  AttachedDevice,
  AttachInfo,
  DeviceAttacher,
  OfflineReason,
  TransportHandle,
} from '../src/devices/types.js';
import type { IngestReporter, IngestSession } from '../src/ingest/types.js';
import { Declarations } from '../src/ingest/validate.js';
import type { RegisteredDevice } from '../src/mqtt/bridge.js';

export interface FakeStored {
  deviceId: string;
  epoch: number;
  seq: number;
  ts: number;
  values: Record<string, unknown>;
}

export class FakeIngest implements IngestSession {
  accepted: number;
  durableSeq: number;
  private readonly declarations: Declarations;
  private resyncUntil = 0;
  closed = false;

  constructor(
    readonly deviceId: string,
    readonly epoch: number,
    readonly ackedSeq: number,
    info: AttachInfo,
    private readonly reporter: IngestReporter,
    private readonly devices: FakeDevices,
  ) {
    this.accepted = this.durableSeq = ackedSeq;
    this.declarations = new Declarations(info.metrics);
  }

  ingest(readings: readonly Reading[], _prevSeq: number, now: number): void {
    if (this.closed) return;
    if (now < this.resyncUntil) return;
    let dup = false;
    for (const r of readings) {
      if (r.seq <= this.accepted) {
        this.devices.duplicates++;
        dup = true;
        continue;
      }
      if (this.devices.busy) {
        this.resyncUntil = now + this.devices.busyPauseMs;
        this.reporter.onRefused('STORE_BUSY', this.devices.busyPauseMs);
        return;
      }
      const ts = r.ts ?? now;
      const values = this.declarations.validate(r, r.ts !== null, ts, now, {
        rejectValue: (code, seq, alias, message) => this.reporter.onRejected(code, seq, alias, message),
      });
      this.accepted = r.seq;
      const stored: FakeStored = {
        deviceId: this.deviceId,
        epoch: this.epoch,
        seq: r.seq,
        ts,
        values: Object.fromEntries(values.map((v) => [v.metric, v.value])),
      };
      this.devices.inFlight.push({ session: this, stored, seq: r.seq });
    }
    if (dup && this.accepted === this.durableSeq) queueMicrotask(() => this.reporter.onDurable(this.durableSeq));
    if (this.devices.autoDurable) this.devices.scheduleDurable();
  }

  makeDurable(seq: number): void {
    if (seq <= this.durableSeq || this.closed) return;
    this.durableSeq = seq;
    this.reporter.onDurable(seq);
  }

  settled(): Promise<void> {
    return this.devices.whenIdle();
  }

  flush(): void {}

  close(): void {
    this.closed = true;
  }
}

export interface FakeAttachment extends AttachedDevice {
  handle: TransportHandle;
  info: AttachInfo;
  detachedWith: OfflineReason | null;
  online(): void;
}

/** The fake devices layer: registered ids, attachments, stored readings, events as plain arrays. */
export class FakeDevices implements DeviceAttacher {
  readonly registered = new Map<string, RegisteredDevice>();
  readonly attachments: FakeAttachment[] = [];
  readonly stored: FakeStored[] = [];
  readonly presence: Array<{ deviceId: string; state: 'online' | 'offline'; reason: string | null }> = [];
  readonly results: Array<{ deviceId: string; commandId: number; status: CommandStatus; detail: string }> = [];
  readonly sentCommands = new Set<string>();
  inFlight: Array<{ session: FakeIngest; stored: FakeStored; seq: number }> = [];
  /** Readings become durable in the next macrotask unless false (then the test calls durableNow()). */
  autoDurable = true;
  busy = false;
  busyPauseMs = 50;
  duplicates = 0;
  private scheduled = false;
  private idleWaiters: Array<() => void> = [];

  register(...ids: string[]): void {
    for (const id of ids)
      this.registered.set(id, {
        disabled: false,
        transport: null,
        epoch: null,
        metrics: [],
        firmware: null,
        sdk: null,
        dropped: 0,
      });
  }

  get(id: string): RegisteredDevice | undefined {
    return this.registered.get(id);
  }

  async attach(
    deviceId: string,
    info: AttachInfo,
    handle: TransportHandle,
    reporter: IngestReporter,
  ): Promise<AttachedDevice> {
    const reg = this.registered.get(deviceId);
    if (!reg) throw Object.assign(new Error('unknown device'), { code: 'AUTH_FAILED' });
    if (reg.disabled) throw Object.assign(new Error('disabled'), { code: 'DEVICE_DISABLED' });
    const ackedSeq = Math.max(
      0,
      ...this.stored.filter((s) => s.deviceId === deviceId && s.epoch === info.epoch).map((s) => s.seq),
    );
    const ingest = new FakeIngest(deviceId, info.epoch, ackedSeq, info, reporter, this);
    const devices = this;
    const attachment: FakeAttachment = {
      deviceId,
      ingest,
      replaced: false,
      handle,
      info,
      detachedWith: null,
      online() {
        devices.presence.push({ deviceId, state: 'online', reason: null });
      },
      seen() {},
      commandResult(commandId, status, detail) {
        if (!devices.sentCommands.has(`${deviceId}/${commandId}`)) return false;
        devices.results.push({ deviceId, commandId, status, detail });
        return true;
      },
      status() {},
      detach(reason) {
        if (attachment.detachedWith !== null) return;
        attachment.detachedWith = reason;
        ingest.close();
        if (reason !== 'REPLACED') devices.presence.push({ deviceId, state: 'offline', reason });
      },
    };
    this.attachments.push(attachment);
    return attachment;
  }

  /** Sends a command the way the devices layer does (remembering its id for the result). */
  sendCommand(deviceId: string, commandId: number, name: string, args: string, timeoutMs = 30_000): boolean {
    const a = this.current(deviceId);
    if (!a) return false;
    const ok = a.handle.sendCommand({ commandId, name, args, timeoutMs });
    if (ok) this.sentCommands.add(`${deviceId}/${commandId}`);
    return ok;
  }

  current(deviceId: string): FakeAttachment | undefined {
    return this.attachments.filter((a) => a.deviceId === deviceId && a.detachedWith === null).at(-1);
  }

  scheduleDurable(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.durableNow();
    });
  }

  /** Everything in flight becomes durable (store order), and each session reports its durable seq. */
  durableNow(): void {
    const batch = this.inFlight;
    this.inFlight = [];
    const top = new Map<FakeIngest, number>();
    for (const f of batch) {
      if (f.session.closed) continue;
      if (
        !this.stored.some(
          (s) => s.deviceId === f.stored.deviceId && s.epoch === f.stored.epoch && s.seq === f.stored.seq,
        )
      )
        this.stored.push(f.stored);
      top.set(f.session, Math.max(top.get(f.session) ?? 0, f.seq));
    }
    for (const [session, seq] of top) session.makeDurable(seq);
    if (this.inFlight.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  whenIdle(): Promise<void> {
    if (this.inFlight.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
