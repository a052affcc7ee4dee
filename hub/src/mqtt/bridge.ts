/**
 * The MQTT bridge (docs/mqtt.md): a second transport beside the tendril.v1 device channel. It only maps
 * MQTT messages to devices and readings; the devices layer (DeviceAttacher) and each device's
 * IngestSession do dedupe, validation, durability and the durable seq, exactly as for a WebSocket device.
 *
 * Acks mean durable: a QoS 1 message's PUBACK goes once every reading in it is durable, rejected or a
 * duplicate (IngestReporter.onDurable), or once the bridge refused the message as a whole and said why on
 * `.../error`; BrokerLink sends PUBACKs in PUBLISH order. While the spool is full (STORE_BUSY) nothing is
 * acknowledged, so the broker holds the messages; the bridge resends what it holds after the pause.
 */
import type { CommandStatus } from '@tendril/device-sdk/codec';
import type { AttachInfo } from '../devices/types.js';
import { Attachments, type AttachmentHost } from './attachments.js';
import { BrokerLink, type InboundMessage } from './broker-link.js';
import {
  redactUrl,
  type BridgeCounts,
  type BridgeOptions,
  type BridgeStatus,
  type RegisteredDevice,
} from './bridge-types.js';
import { BridgedDevice, type Batch } from './bridged-device.js';
import {
  isRefusal,
  parseBirth,
  parseCommandResult,
  parseData,
  parseState,
  type BridgeRefusal,
  type JsonReading,
} from './payload.js';
import { DeviceErrors } from './device-errors.js';
import {
  HOMIE_PREFIX,
  HOMIE_SUBSCRIPTIONS,
  parseHomieDescription,
  parseHomieState,
  parseHomieTopic,
  parseHomieValue,
} from './homie.js';
import { ResendMemory } from './resend-memory.js';
import type { CompiledTemplate } from './templates.js';
import { isDeviceId, parseTendrilTopic, SYS_DROPPED_TOPIC, TENDRIL_SUBSCRIPTIONS } from './topics.js';

export type {
  BridgeCounts,
  BridgeLog,
  BridgeOptions,
  BridgeRegistry,
  BridgeStatus,
  RegisteredDevice,
} from './bridge-types.js';

const MAX_DEVICES = 200_000;

export class MqttBridge implements AttachmentHost {
  readonly link: BrokerLink;
  private readonly devices = new Map<string, BridgedDevice>();
  private readonly random: () => number;
  /** Messages that came before every SUBACK (and so perhaps before their device's retained birth). */
  private parked: InboundMessage[] | null = [];
  private readonly resends = new ResendMemory();
  /** Homie devices: metric -> datatype, from their $description. */
  private readonly homieTypes = new Map<string, Map<string, string>>();
  readonly errors: DeviceErrors;
  private readonly attachments = new Attachments(this);
  /** True once close() began: no message is taken or acknowledged any more. */
  closing = false;
  private connected = false;
  private dropped: number | null = null;
  private droppedAtStart: number | null = null;
  readonly counts: BridgeCounts = {
    messages: { data: 0, birth: 0, state: 0, cmdResult: 0, template: 0, sys: 0, unrouted: 0 },
    refused: new Map(),
    unknownDevices: 0,
    quarantined: 0,
    readingsFed: 0,
    qos0Dropped: 0,
    commandsPublished: 0,
    errorsPublished: 0,
    errorsSuppressed: 0,
    storeBusyPauses: 0,
  };

  constructor(readonly opts: BridgeOptions) {
    this.random = opts.random ?? Math.random;
    const templateFilters = [...new Set(opts.templates.map((t) => t.pattern.filter))];
    const availability = opts.templates.flatMap((t) =>
      t.availabilityFilter ? [{ topic: t.availabilityFilter, qos: 1 as const }] : [],
    );
    const subscriptions = [
      // Births and states first: their retained messages arrive before the next SUBACK.
      [
        ...[...TENDRIL_SUBSCRIPTIONS.births, ...(opts.homie ? HOMIE_SUBSCRIPTIONS.meta : [])].map((topic) => ({
          topic,
          qos: 1 as const,
        })),
        ...availability,
      ],
      [...TENDRIL_SUBSCRIPTIONS.rest, ...templateFilters, ...(opts.homie ? HOMIE_SUBSCRIPTIONS.values : [])].map(
        (topic) => ({
          topic,
          qos: 1 as const,
        }),
      ),
      [{ topic: SYS_DROPPED_TOPIC, qos: 0 as const }],
    ];
    this.errors = new DeviceErrors(
      (topic, payload) => this.link.publish(topic, payload, { qos: 0 }) !== null,
      opts.clock,
      opts.log,
      this.counts,
    );
    this.link = new BrokerLink(
      { ...opts.link, subscriptions, clock: opts.clock, timers: opts.timers, random: this.random },
      {
        up: (sessionPresent) => {
          this.connected = true;
          opts.log.info({ url: redactUrl(opts.link.url), sessionPresent }, 'connected to the MQTT broker');
        },
        subscribed: (failures) => this.onSubscribed(failures),
        down: (reason) => this.onDown(reason),
        message: (m) => this.handle(m),
      },
    );
  }

  start(): void {
    this.link.start();
  }

  status(): BridgeStatus {
    const attached = [...this.devices.values()].filter((d) => d.attached !== null).length;
    return {
      broker: this.link.state,
      lastError: this.link.lastError,
      since: this.link.since,
      reconnectAttempts: this.link.attempts,
      url: redactUrl(this.opts.link.url),
      devicesAttached: attached,
      unackedMessages: this.link.unacked,
      refused: [...this.counts.refused.values()].reduce((a, b) => a + b, 0),
      brokerDropped: this.dropped,
      brokerDroppedSinceStart:
        this.dropped !== null && this.droppedAtStart !== null ? Math.max(0, this.dropped - this.droppedAtStart) : 0,
    };
  }

  refuse(code: string): void {
    this.counts.refused.set(code, (this.counts.refused.get(code) ?? 0) + 1);
  }

  // ---- inbound ----

  private onSubscribed(failures: string[]): void {
    if (failures.length > 0)
      this.opts.log.error(
        { failures },
        'the broker refused some of the bridge subscriptions (check its ACL for the hub user)',
      );
    const parked = this.parked;
    this.parked = null;
    if (parked) for (const m of parked) this.handle(m);
  }

  private onDown(reason: string): void {
    this.parked = [];
    if (this.connected && !this.closing)
      this.opts.log.warn({ reason }, 'MQTT broker connection lost; bridged devices show BRIDGE_DISCONNECTED');
    else this.opts.log.debug({ reason }, 'MQTT broker not reachable');
    this.connected = false;
    // Every bridged device's state is unknown now. What was not acknowledged, the broker sends again.
    for (const d of this.devices.values()) {
      d.waiting.length = 0;
      d.pending.length = 0;
      this.attachments.clearPause(d);
      if (d.attached) this.attachments.detach(d, this.closing ? 'SHUTTING_DOWN' : 'BRIDGE_DISCONNECTED');
    }
  }

  /**
   * A message the bridge fails on is a hub bug, not the device's: it is logged, counted (INTERNAL_ERROR) and
   * acknowledged, so that it can neither crash the hub (the broker link's socket handler has no catch) nor,
   * retained or unacknowledged, do so again at every start.
   */
  private handle(m: InboundMessage): void {
    try {
      this.onMessage(m);
    } catch (err) {
      this.opts.log.error(
        { err, topic: m.topic },
        'the MQTT bridge failed on a message; it is acknowledged and dropped',
      );
      this.refuse('INTERNAL_ERROR');
      m.complete();
    }
  }

  private onMessage(m: InboundMessage): void {
    if (this.closing) return; // no PUBACK: the broker sends it again to the next hub
    if (this.parked !== null && m.topic !== SYS_DROPPED_TOPIC) {
      this.parked.push(m);
      return;
    }
    const t = parseTendrilTopic(m.topic);
    if (t !== null) {
      switch (t.kind) {
        case 'data':
          this.counts.messages.data++;
          return this.onData(t.deviceId, m, null);
        case 'birth':
          this.counts.messages.birth++;
          return this.onBirth(t.deviceId, m);
        case 'state':
          this.counts.messages.state++;
          return this.onState(t.deviceId, m);
        case 'cmdResult':
          this.counts.messages.cmdResult++;
          return this.onCommandResult(t.deviceId, m);
      }
    }
    if (m.topic === SYS_DROPPED_TOPIC) {
      this.counts.messages.sys++;
      const n = Number(m.payload.toString('utf8'));
      if (Number.isFinite(n)) {
        this.dropped = n;
        this.droppedAtStart ??= n;
      }
      return m.complete();
    }
    if (this.opts.homie && m.topic.startsWith(HOMIE_PREFIX)) return this.onHomie(m);
    for (const template of this.opts.templates) {
      const a = template.availabilityFilter === null ? null : template.availabilityOf(m.topic, m.payload);
      if (a !== null) {
        this.counts.messages.state++;
        m.complete();
        return this.onTemplateAvailability(a.deviceId, template, a.online);
      }
      const id = template.deviceFor(m.topic);
      if (id !== null) {
        this.counts.messages.template++;
        return this.onData(id, m, template);
      }
    }
    this.counts.messages.unrouted++;
    m.complete();
  }

  /** A device's state; past MAX_DEVICES an unregistered device's is not kept (retained births come back later). */
  private device(id: string, source: string): BridgedDevice {
    const known = this.devices.get(id);
    if (known) return known;
    const d = new BridgedDevice(id, source, this.random);
    if (this.devices.size < MAX_DEVICES || this.opts.registry.get(id) !== undefined) this.devices.set(id, d);
    return d;
  }

  /** Says why a message was refused on the device's error topic (Tendril devices only) and acks it. */
  private refuseMessage(d: BridgedDevice | string, m: InboundMessage, r: BridgeRefusal, source?: string): void {
    this.refuse(r.code);
    const id = typeof d === 'string' ? d : d.id;
    this.errors.report(id, source ?? (typeof d === 'string' ? 'tendril' : d.source), r.code, r.message, {
      topic: m.topic,
    });
    m.complete();
  }

  private onBirth(id: string, m: InboundMessage): void {
    if (m.payload.length === 0) return m.complete(); // a retained birth being cleared
    const birth = parseBirth(m.payload, this.opts.limits.maxPayloadBytes);
    if (isRefusal(birth)) return this.refuseMessage(id, m, birth);
    const d = this.device(id, 'tendril');
    const info: AttachInfo = {
      epoch: birth.epoch ?? d.bridgeEpoch,
      metrics: birth.metrics,
      firmware: birth.firmware,
      sdk: birth.sdk,
      dropped: birth.dropped,
    };
    const changed = d.declare(info, birth.epoch === null ? 'bridge' : 'device');
    // A live birth (not the retained copy the broker replays on subscribe) means the device just started.
    if (!m.retain) d.wantsOnline = true;
    m.complete();
    if (changed && d.attached) this.attachments.reattach(d);
    else if (d.wantsOnline && !d.attached) this.attachments.ensureAttached(d);
    else if (d.attached) d.attached.status(birth.dropped);
  }

  private onState(id: string, m: InboundMessage): void {
    if (m.payload.length === 0) return m.complete();
    const state = parseState(m.payload);
    if (isRefusal(state)) return this.refuseMessage(id, m, state);
    m.complete();
    const d = this.device(id, 'tendril');
    if (state.state === 'online') {
      d.wantsOnline = true;
      if (d.info !== null) this.attachments.ensureAttached(d);
    } else {
      d.wantsOnline = false;
      if (d.attached) this.attachments.detachAfterSettle(d, state.reason);
    }
  }

  /** A template fleet's presence (Tasmota's LWT, Zigbee2MQTT's availability): offline is its last will. */
  private onTemplateAvailability(id: string, template: CompiledTemplate, online: boolean): void {
    const reg = this.opts.registry.get(id);
    if (reg === undefined) return;
    const d = this.device(id, template.name);
    d.wantsOnline = online;
    if (!online) return this.attachments.detachAfterSettle(d, 'MQTT_WILL');
    if (d.info === null) this.declareWithoutBirth(d, template, reg, []);
    this.attachments.ensureAttached(d);
  }

  /** Homie 5, read only: $description declares, $state is presence, live property values are readings. */
  private onHomie(m: InboundMessage): void {
    const t = parseHomieTopic(m.topic);
    const id = t === null ? null : this.opts.homie!.deviceId.replace('{device}', t.device);
    if (t === null || id === null || !isDeviceId(id) || m.payload.length === 0) {
      this.counts.messages.unrouted++;
      return m.complete();
    }
    if (t.kind === 'value') {
      this.counts.messages.template++;
      // Retained values come again at every subscribe: only live ones are readings.
      if (m.retain) return m.complete();
      const name = `${t.node}.${t.property}`;
      const value = parseHomieValue(this.homieTypes.get(id)?.get(name), m.payload.toString('utf8'));
      return this.onData(id, m, null, [{ seq: null, ts: null, values: [[name, value]] }]);
    }
    this.counts.messages.state++;
    m.complete();
    if (this.opts.registry.get(id) === undefined) return;
    const d = this.device(id, 'homie');
    if (t.kind === 'description') {
      const decl = parseHomieDescription(m.payload, this.opts.limits.maxPayloadBytes);
      if (isRefusal(decl)) {
        this.refuse(decl.code);
        return this.errors.report(id, 'homie', decl.code, decl.message, { topic: m.topic });
      }
      this.homieTypes.set(id, decl.datatypes);
      const info = { epoch: d.bridgeEpoch, metrics: decl.metrics, firmware: null, sdk: 'homie/5', dropped: 0 };
      if (d.declare(info, 'bridge') && d.attached) this.attachments.reattach(d);
      else if (d.wantsOnline) this.attachments.ensureAttached(d);
      return;
    }
    const state = parseHomieState(m.payload.toString('utf8'));
    if (state === null) return;
    d.wantsOnline = state.online;
    if (!state.online) return this.attachments.detachAfterSettle(d, state.reason);
    if (d.info !== null) this.attachments.ensureAttached(d);
  }

  private onCommandResult(id: string, m: InboundMessage): void {
    const result = parseCommandResult(m.payload, this.opts.limits.maxPayloadBytes);
    if (isRefusal(result)) return this.refuseMessage(id, m, result);
    const d = this.devices.get(id);
    const now = this.opts.clock.now();
    if (!d?.attached?.commandResult(result.commandId, result.status as CommandStatus, result.detail, now)) {
      return this.refuseMessage(id, m, {
        code: 'UNKNOWN_COMMAND_ID',
        message: `command ${result.commandId} was not sent to this device`,
      });
    }
    d.attached.seen(now);
    m.complete();
  }

  /** `parsed`: readings a Homie value message became (docs/mqtt.md §4.1). */
  private onData(id: string, m: InboundMessage, template: CompiledTemplate | null, parsed?: JsonReading[]): void {
    const registered = this.opts.registry.get(id);
    if (registered === undefined) {
      this.counts.unknownDevices++;
      if (this.opts.autoRegister && this.opts.registry.quarantine) {
        this.opts.registry.quarantine(id);
        this.counts.quarantined++;
        this.opts.log.info(
          { deviceId: id, topic: m.topic },
          'unknown MQTT device registered disabled (quarantine=mqtt) for an admin to approve',
        );
      }
      const message = `no device ${id} is registered; register it (POST /api/v1/devices) before it publishes`;
      return this.refuseMessage(id, m, { code: 'UNKNOWN_DEVICE', message }, template?.name);
    }
    const source = template ? template.name : parsed ? 'homie' : 'tendril';
    const d = this.device(id, source);
    const now = this.opts.clock.now();
    if (d.refusedUntil > now && d.refusedCode !== null) {
      return this.refuseMessage(d, m, {
        code: d.refusedCode,
        message: `device ${id} is ${d.refusedCode === 'DEVICE_DISABLED' ? 'disabled' : 'not registered'}`,
      });
    }
    const json: JsonReading[] | BridgeRefusal =
      parsed ?? (template ? template.readingsOf(m.payload, this.opts.limits) : parseData(m.payload, this.opts.limits));
    if (isRefusal(json)) return this.refuseMessage(d, m, json);
    if (d.info === null && !this.declareWithoutBirth(d, template, registered, json)) {
      return this.refuseMessage(d, m, {
        code: 'BIRTH_REQUIRED',
        message: `publish a birth message on tendril/v1/${id}/birth (retained) before data`,
      });
    }
    const seqs = d.numbering === 'bridge' ? this.resends.seqsOf(m, json.length) : null;
    const readings = d.convert(json, seqs, (r, seq, metric) => {
      this.refuse(r.code);
      this.errors.report(d.id, d.source, r.code, r.message, { seq, metric });
    });
    if (isRefusal(readings)) return this.refuseMessage(d, m, readings);
    // Bridge numbering: a resend of this message (DUP, same id and bytes) gets the same seqs until its PUBACK is out.
    const complete =
      d.numbering === 'bridge' && m.qos === 1
        ? this.resends.remember(
            m,
            readings.map((r) => r.seq),
          )
        : m.complete;
    const batch: Batch = { readings, maxSeq: readings.reduce((a, r) => Math.max(a, r.seq), 0), qos: m.qos, complete };
    d.wantsOnline = true;
    if (d.attached && d.pauseTimer === null && !d.attaching) {
      d.attached.seen(now);
      this.attachments.feed(d, [batch], now);
    } else if (m.qos === 0 && d.pauseTimer !== null) {
      // QoS 0 has no PUBACK to hold the broker back with: refused while the device is paused.
      this.counts.qos0Dropped += readings.length;
    } else {
      d.waiting.push(batch);
      this.attachments.ensureAttached(d);
    }
  }

  /**
   * A declaration for data that came before any birth in this process: the template's, or what the device
   * declared last time (the registry keeps it) when it was bridged before. After a hub restart the broker
   * sends the messages queued for the hub's session before the retained births it replays on subscribe.
   * Readings with seq keep the device's last epoch; without, the bridge numbers them.
   */
  private declareWithoutBirth(
    d: BridgedDevice,
    template: CompiledTemplate | null,
    reg: RegisteredDevice,
    json: readonly JsonReading[],
  ): boolean {
    if (template) {
      d.declare(
        { epoch: d.bridgeEpoch, metrics: template.metrics, firmware: null, sdk: `mqtt/${template.name}`, dropped: 0 },
        'bridge',
      );
      return true;
    }
    if (reg.transport !== 'mqtt' || reg.epoch === null) return false;
    const numbered = json[0]!.seq !== null;
    const info: AttachInfo = {
      epoch: numbered ? reg.epoch : d.bridgeEpoch,
      metrics: reg.metrics,
      firmware: reg.firmware,
      sdk: reg.sdk,
      dropped: reg.dropped,
    };
    d.declare(info, numbered ? 'device' : 'bridge');
    return true;
  }

  // ---- shutdown ----

  /**
   * Stops taking messages, lets every reading taken become durable and acknowledged, disconnects (the
   * broker keeps the session: what was not acknowledged waits for the next start) and detaches every device.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const attached = [...this.devices.values()].filter((d) => d.attached !== null);
    await Promise.all(attached.map((d) => d.attached!.ingest.settled()));
    for (const d of attached) d.attached?.ingest.flush();
    // PUBACKs go in a microtask after the completions.
    await new Promise((resolve) => setImmediate(resolve));
    for (const d of this.devices.values()) {
      this.attachments.clearPause(d);
      if (d.attached) this.attachments.detach(d, 'SHUTTING_DOWN');
    }
    await this.link.close();
  }
}
