import type { TimerHandle } from '../core/clock.js';
import type { AttachedDevice, DetachRequest, OutgoingCommand, TransportHandle } from '../devices/types.js';
import type { IngestReporter, RefusalCode as IngestRefusal, ValidationCode } from '../ingest/types.js';
import type { BrokerLink } from './broker-link.js';
import type { BridgeCounts, BridgeOptions } from './bridge-types.js';
import type { Batch, BridgedDevice } from './bridged-device.js';
import type { DeviceErrors } from './device-errors.js';
import { encodeCommand } from './payload.js';
import { cmdTopic } from './topics.js';

const DEFAULT_COOLDOWN_MS = 5000;
/** A resend after a pause goes this much past it: one the session sees a millisecond early is ignored (§7.4.2). */
const PAUSE_MARGIN_MS = 10;

/** What the attachments need of the bridge. */
export interface AttachmentHost {
  readonly opts: BridgeOptions;
  readonly link: BrokerLink;
  readonly counts: BridgeCounts;
  readonly errors: DeviceErrors;
  readonly closing: boolean;
  refuse(code: string): void;
}

export class Attachments {
  constructor(private readonly host: AttachmentHost) {}

  /** Hands batches to the device's ingest session, oldest first. */
  feed(d: BridgedDevice, batches: Batch[], now: number): void {
    const a = d.attached!;
    const readings = batches.length === 1 ? batches[0]!.readings : batches.flatMap((b) => b.readings);
    // Pending first: a refusal reported inside ingest() must find these batches there.
    for (const b of batches) d.pending.push(b);
    const prev = d.lastFed;
    d.lastFed = readings[readings.length - 1]!.seq;
    this.host.counts.readingsFed += readings.length;
    a.ingest.ingest(readings, prev, now);
  }

  // ---- attaching ----

  ensureAttached(d: BridgedDevice): void {
    if (d.attached || d.attaching || this.host.closing || this.host.link.state !== 'up') return;
    d.attaching = true;
    const generation = ++d.generation;
    const handle = this.handleFor(d, generation);
    const reporter = this.reporterFor(d, generation);
    this.host.opts.attacher.attach(d.id, d.info!, handle, reporter).then(
      (attached) => this.attachedNow(d, generation, attached),
      (err: unknown) => this.attachFailed(d, generation, err),
    );
  }

  attachedNow(d: BridgedDevice, generation: number, attached: AttachedDevice): void {
    d.attaching = false;
    if (generation !== d.generation || this.host.closing || this.host.link.state !== 'up') {
      attached.detach(this.host.closing ? 'SHUTTING_DOWN' : 'BRIDGE_DISCONNECTED');
      return;
    }
    d.attached = attached;
    d.refusedCode = null;
    d.lastFed = attached.ingest.ackedSeq;
    if (d.numbering === 'bridge') d.lastAssigned = Math.max(d.lastAssigned, attached.ingest.ackedSeq);
    attached.online();
    const now = this.host.opts.clock.now();
    attached.seen(now);
    if (d.waiting.length > 0) this.feed(d, d.waiting.splice(0), now);
  }

  attachFailed(d: BridgedDevice, generation: number, err: unknown): void {
    d.attaching = false;
    if (generation !== d.generation) return;
    const code = (err as { code?: string }).code;
    if (code === 'SHUTTING_DOWN' || this.host.closing) return; // unacked: the broker resends to the next hub
    if (code === 'REPLACED') return this.ensureAttached(d);
    const refused = code === 'DEVICE_DISABLED' ? 'DEVICE_DISABLED' : 'UNKNOWN_DEVICE';
    if (code !== 'DEVICE_DISABLED' && code !== 'AUTH_FAILED')
      this.host.opts.log.error({ err, deviceId: d.id }, 'attaching an MQTT device failed');
    d.refusedCode = refused;
    d.refusedUntil = this.host.opts.clock.now() + (this.host.opts.refusalCooldownMs ?? DEFAULT_COOLDOWN_MS);
    const message =
      refused === 'DEVICE_DISABLED' ? `an operator disabled device ${d.id}` : `no device ${d.id} is registered`;
    for (const b of d.waiting.splice(0)) {
      this.host.refuse(refused);
      b.complete();
    }
    this.host.errors.report(d.id, d.source, refused, message, {});
  }

  handleFor(d: BridgedDevice, generation: number): TransportHandle {
    return {
      transport: 'mqtt',
      remote: this.host.opts.link.clientId,
      sendCommand: (command: OutgoingCommand) => this.sendCommand(d, command),
      close: (reason: DetachRequest, message: string) => {
        if (generation !== d.generation) return;
        this.host.opts.log.info({ deviceId: d.id, reason, message }, 'the hub ended an MQTT device session');
        this.detachAfterSettle(d, reason);
      },
    };
  }

  reporterFor(d: BridgedDevice, generation: number): IngestReporter {
    return {
      onDurable: (seq) => {
        if (generation === d.generation) d.durable(seq);
      },
      onRefused: (code, pauseMs) => {
        if (generation === d.generation) this.pause(d, code, pauseMs);
      },
      onRejected: (code: ValidationCode, seq, alias, message) => {
        if (generation !== d.generation) return;
        const metric = d.metricName(alias);
        const text = metric
          ? message.replace(`alias ${alias}`, `metric ${metric}`).replace(' in HELLO', ' in the birth message')
          : message;
        this.host.errors.report(d.id, d.source, code, text, { seq, ...(metric ? { metric } : {}) });
      },
    };
  }

  /** §7.4.3 as a device would: hold everything unacked, then resend it from the oldest after the pause. */
  pause(d: BridgedDevice, code: IngestRefusal, pauseMs: number): void {
    if (code === 'STORE_BUSY') this.host.counts.storeBusyPauses++;
    this.clearPause(d);
    d.pausedUntil = this.host.opts.clock.now() + pauseMs;
    d.pauseTimer = this.host.opts.timers.setTimeout(() => {
      d.pauseTimer = null;
      if (!d.attached || this.host.closing) return;
      const batches = [...d.pending.splice(0), ...d.waiting.splice(0)];
      if (batches.length > 0) this.feed(d, batches, this.host.opts.clock.now());
    }, pauseMs + PAUSE_MARGIN_MS);
  }

  clearPause(d: BridgedDevice): void {
    if (d.pauseTimer !== null) this.host.opts.timers.clearTimeout(d.pauseTimer as TimerHandle);
    d.pauseTimer = null;
  }

  /** A new declaration: what the old session took becomes durable (and acked) first, then attach anew. */
  reattach(d: BridgedDevice): void {
    this.detachAfterSettle(d, 'REPLACED', () => this.ensureAttached(d));
  }

  /**
   * Lets what the session took become durable and acknowledged, then detaches. Batches still pending after
   * that (their writes failed) go back to waiting, for the next attachment to take.
   */
  detachAfterSettle(d: BridgedDevice, reason: string, then?: () => void): void {
    const a = d.attached;
    if (a === null) return then?.();
    const generation = d.generation;
    void a.ingest.settled().then(() => {
      if (d.attached !== a || d.generation !== generation) return;
      a.ingest.flush();
      d.generation++;
      this.clearPause(d);
      d.waiting.unshift(...d.pending.splice(0));
      d.attached = null;
      a.detach(reason);
      then?.();
    });
  }

  detach(d: BridgedDevice, reason: string): void {
    const a = d.attached;
    d.attached = null;
    d.generation++;
    a?.detach(reason);
  }

  // ---- down: commands ----

  sendCommand(d: BridgedDevice, command: OutgoingCommand): boolean {
    if (d.source !== 'tendril') return false; // a template's fleet has no command topic of ours
    const payload = encodeCommand(command.commandId, command.name, command.args, command.timeoutMs);
    // MQTT 5 message expiry: a command nobody takes within its timeout is of no use to deliver later.
    const expirySec = Math.max(1, Math.ceil(command.timeoutMs / 1000));
    const sent = this.host.link.publish(cmdTopic(d.id), payload, { qos: 1, expirySec });
    if (sent === null) return false;
    this.host.counts.commandsPublished++;
    sent.then(
      (ok) => {
        if (!ok)
          this.host.opts.log.warn(
            { deviceId: d.id, commandId: command.commandId },
            'the broker did not take a command',
          );
      },
      () => {},
    );
    return true;
  }
}
