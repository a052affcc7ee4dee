/**
 * The live channel's hub (docs/live.md): turns device, command and health events into stream events
 * (serialised once), keeps each stream's resume window, and fans events out to the subscriptions that asked
 * for them. It listens to the devices layer's events and the command queue, never to a transport.
 */
import type { Command } from '../commands/model.js';
import type { Clock, TimerHandle, Timers } from '../core/clock.js';
import type { DeviceEvents } from '../devices/types.js';
import type { Principal } from '../auth/types.js';
import { LiveClient, type LiveHost, type LiveLogger, type TokenCheck } from './client.js';
import { FleetState, type RegistryView } from './fleet-state.js';
import {
  type ClientRequest,
  LiveRequestError,
  type LiveLimits,
  resultMessage,
  type StreamName,
  type SubscribeRequest,
  type UpdateRequest,
  CLOSE,
} from './protocol.js';
import { DEFAULT_WINDOWS, type LatestValue, lazyEvent, type LiveEvent, type LiveReading, StreamLog, type StreamWindow } from './stream-log.js';
import { type SnapshotCursor, Subscription } from './subscription.js';

/** The `on` of TypedEvents (hub/src/core/events.ts), so any typed emitter fits. */
export interface EventsOf<E> {
  on<K extends keyof E & string>(event: K, listener: (payload: E[K]) => void): () => void;
}

/** What the commands stream reads (the CommandQueue). */
export interface LiveCommandSource {
  events: EventsOf<{ commandChanged: Command }>;
  get(id: number): Command | undefined;
  list(query: { deviceId: string; states?: readonly Command['state'][]; limit?: number }): Command[];
  /** Ids of every unfinished command, oldest first. */
  unfinishedIds(): number[];
}

/** The health object of §5.3.2 without the device counts (the hub adds them). */
export interface LiveHealthBase {
  store: { kind: string; state: 'up' | 'down' | 'unknown' };
  spool: { accepting: boolean; depthBytes: number; depthReadings: number; oldestUndrainedAgeMs: number } | null;
  shuttingDown: boolean;
}

export interface LiveHubOptions {
  limits: LiveLimits;
  clock: Clock;
  timers: Timers;
  log: LiveLogger;
  registry: RegistryView;
  deviceEvents: EventsOf<DeviceEvents>;
  /** Latest stored values of a device (PresenceTracker.latest): loaded once at start for every device. */
  latest?: (deviceId: string) => Promise<Record<string, LatestValue>>;
  commands?: LiveCommandSource;
  health: () => LiveHealthBase;
  verifyToken: (token: string, remote: string | null) => Promise<TokenCheck> | TokenCheck;
  windows?: Partial<Record<StreamName, Partial<StreamWindow>>>;
  /** How often health is looked at (§5.3.2). */
  healthIntervalMs?: number;
}

const FINISHED: readonly Command['state'][] = ['succeeded', 'failed', 'rejected', 'expired'];
const UNFINISHED: readonly Command['state'][] = ['queued', 'sent', 'delivered'];
const FINISHED_PER_DEVICE = 20;

export class LiveHub implements LiveHost {
  readonly limits: LiveLimits;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly log: LiveLogger;
  readonly fleet: FleetState;
  readonly logs: Record<StreamName, StreamLog>;
  readonly clients = new Set<LiveClient>();
  private readonly owners = new Map<Subscription, LiveClient>();
  private readonly fleetSubs = new Set<Subscription>();
  private readonly healthSubs = new Set<Subscription>();
  private readonly commandSubsAll = new Set<Subscription>();
  private readonly byDevice: Record<'device' | 'commands', Map<string, Set<Subscription>>> = { device: new Map(), commands: new Map() };
  private readonly unlisten: Array<() => void> = [];
  private readonly rejected = new Map<string, number>();
  private healthJsonValue = '';
  private readonly healthTimer: TimerHandle;
  private readonly pingTimer: TimerHandle;
  private closed = false;

  constructor(private readonly opts: LiveHubOptions) {
    this.limits = opts.limits;
    this.clock = opts.clock;
    this.timers = opts.timers;
    this.log = opts.log;
    this.fleet = new FleetState(opts.registry);
    const now = () => opts.clock.now();
    const window = (s: StreamName): StreamWindow => ({ ...DEFAULT_WINDOWS[s], ...opts.windows?.[s] });
    this.logs = {
      fleet: new StreamLog('fleet', window('fleet'), now),
      device: new StreamLog('device', window('device'), now),
      commands: new StreamLog('commands', window('commands'), now),
      health: new StreamLog('health', window('health'), now),
    };
    const ev = opts.deviceEvents;
    this.unlisten.push(
      ev.on('online', (e) => this.guard(() => this.onOnline(e))),
      ev.on('offline', (e) => this.guard(() => this.onOffline(e))),
      ev.on('readings', (e) => this.guard(() => this.onReadings(e))),
      ev.on('status', (e) => this.guard(() => this.onCounters(e.deviceId, { dropped: e.dropped }))),
      ev.on('changed', (e) => this.guard(() => this.onChanged(e.deviceId))),
    );
    // Rejections are not a DeviceEvent yet; a `rejected` event with { deviceId } is counted when one exists.
    const loose = ev as unknown as { on(event: string, listener: (p: { deviceId?: string }) => void): () => void };
    this.unlisten.push(
      loose.on('rejected', (e) =>
        this.guard(() => {
          if (typeof e?.deviceId !== 'string') return;
          const n = (this.rejected.get(e.deviceId) ?? 0) + 1;
          this.rejected.set(e.deviceId, n);
          this.onCounters(e.deviceId, { rejected: n });
        }),
      ),
    );
    if (opts.commands) this.unlisten.push(opts.commands.events.on('commandChanged', (c) => this.guard(() => this.onCommand(c))));
    this.healthJsonValue = this.computeHealth();
    this.healthTimer = opts.timers.setInterval(() => this.guard(() => this.pollHealth()), opts.healthIntervalMs ?? 1000);
    this.healthTimer.unref?.();
    this.pingTimer = opts.timers.setInterval(() => {
      const t = this.clock.now();
      for (const c of this.clients) c.heartbeat(t);
    }, opts.limits.pingIntervalMs);
    this.pingTimer.unref?.();
    if (opts.latest) void this.loadLatest(opts.latest);
  }

  /** A new connection on /v1/live (the plugin checked subprotocol and Origin). */
  accept(socket: LiveClient['socket'], principal: Principal | null, remote: string | null): LiveClient {
    const client = new LiveClient(socket, this, remote);
    this.clients.add(client);
    if (this.closed) {
      client.closeWith(CLOSE.shuttingDown, null);
      return client;
    }
    client.start(principal);
    return client;
  }

  verifyToken(token: string, remote: string | null): Promise<TokenCheck> | TokenCheck {
    return this.opts.verifyToken(token, remote);
  }

  /** A session, a user's access or a token ended: its live connections close with 1008 (§9). */
  revoke(event: { kind: 'session'; sessionId: string } | { kind: 'user'; userName: string } | { kind: 'token'; tokenId: string }): void {
    for (const c of [...this.clients]) {
      const p = c.principal;
      if (!p) continue;
      const hit =
        event.kind === 'session' ? p.sessionId === event.sessionId : event.kind === 'token' ? p.tokenId === event.tokenId : p.name === event.userName && p.kind !== 'bootstrap';
      if (hit) c.closeWith(CLOSE.unauthorized, 'Your session, account or token ended; log in again (docs/live.md §9).');
    }
  }

  clientClosed(client: LiveClient): void {
    for (const sub of client.subs.values()) this.unindex(sub);
    this.clients.delete(client);
  }

  /** Says goodbye to every client (1001) and stops listening. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.unlisten) off();
    this.timers.clearInterval(this.healthTimer);
    this.timers.clearInterval(this.pingTimer);
    for (const c of [...this.clients]) c.closeWith(CLOSE.shuttingDown, null);
  }

  // ---- requests (§3, §4)

  handleRequest(client: LiveClient, req: ClientRequest): void {
    switch (req.type) {
      case 'ping':
        client.answer(resultMessage(req.id, { serverTime: this.clock.now() }));
        return;
      case 'subscribe':
        return this.subscribe(client, req);
      case 'update':
        return this.update(client, req);
      case 'unsubscribe': {
        const sub = client.subs.get(req.subscription);
        if (!sub) throw notFound(req.id, req.subscription);
        this.unindex(sub);
        client.dropSubscription(sub);
        client.answer(resultMessage(req.id, {}));
        return;
      }
    }
  }

  private subscribe(client: LiveClient, req: SubscribeRequest): void {
    if (client.subs.has(req.id)) {
      throw new LiveRequestError('SUBSCRIPTION_EXISTS', `Subscription ${req.id} is still active; unsubscribe it first or use a new id (docs/live.md §4.2).`, req.id);
    }
    if (client.subs.size >= this.limits.maxSubscriptions) {
      throw new LiveRequestError(
        'TOO_MANY_SUBSCRIPTIONS',
        `This connection has ${client.subs.size} subscriptions, the most allowed; unsubscribe one first (docs/live.md §8).`,
        req.id,
      );
    }
    if (req.devices) this.checkDevices(req.id, req.devices);
    if (req.stream === 'fleet') this.reconcile();
    const sub = new Subscription(req.id, req.stream, req.devices, req.metrics, req.minIntervalMs);
    client.subs.set(sub.id, sub);
    this.owners.set(sub, client);
    this.index(sub);
    const log = this.logs[req.stream];
    const recovered = req.resume !== null && log.canResume(req.resume.epoch, req.resume.offset);
    sub.watermark = recovered ? req.resume!.offset : log.head;
    client.answer(resultMessage(req.id, { epoch: log.epoch, offset: log.head, recovered }));
    if (recovered) {
      // §6.2.2: what it missed, in order, through the same path as live events (coalesced if it cannot keep up).
      for (const ev of log.since(req.resume!.offset)) if (this.matches(sub, ev)) client.deliver(sub, ev);
    } else {
      sub.snapshot = this.cursor(sub, 'snapshot', req.resume !== null, null);
    }
    client.flush();
  }

  private update(client: LiveClient, req: UpdateRequest): void {
    const sub = client.subs.get(req.subscription);
    if (!sub) throw notFound(req.id, req.subscription);
    const devicesApply = sub.stream === 'device' || (sub.stream === 'commands' && sub.devices !== null);
    if ((req.addDevices.length > 0 || req.removeDevices.length > 0) && !devicesApply) {
      throw new LiveRequestError('INVALID_REQUEST', `addDevices/removeDevices apply to device subscriptions and commands subscriptions that name devices, not to this ${sub.stream} subscription.`, req.id);
    }
    if ((req.addMetrics.length > 0 || req.removeMetrics.length > 0) && (sub.stream !== 'device' || sub.metrics === null)) {
      throw new LiveRequestError('INVALID_REQUEST', 'addMetrics/removeMetrics apply to device subscriptions that name metrics (one of every metric already has them all).', req.id);
    }
    this.checkDevices(req.id, req.addDevices);
    const devices = new Set(sub.devices ?? []);
    for (const d of req.removeDevices) devices.delete(d);
    const added = req.addDevices.filter((d) => !devices.has(d));
    for (const d of added) devices.add(d);
    if (devicesApply && devices.size === 0) throw new LiveRequestError('INVALID_REQUEST', 'The update would leave the subscription without devices; unsubscribe instead.', req.id);
    if (devices.size > this.limits.maxDevicesPerSubscription) {
      throw new LiveRequestError('TOO_MANY_DEVICES', `The subscription would name ${devices.size} devices; at most ${this.limits.maxDevicesPerSubscription} are allowed.`, req.id);
    }
    let metrics: Set<string> | null = sub.metrics;
    let addedMetrics = false;
    if (metrics !== null && (req.addMetrics.length > 0 || req.removeMetrics.length > 0)) {
      metrics = new Set(metrics);
      for (const m of req.removeMetrics) metrics.delete(m);
      for (const m of req.addMetrics) if (!metrics.has(m)) (metrics.add(m), (addedMetrics = true));
      if (metrics.size === 0) throw new LiveRequestError('INVALID_REQUEST', 'The update would remove the last metric; unsubscribe instead.', req.id);
      if (metrics.size > this.limits.maxMetricsPerSubscription) {
        throw new LiveRequestError('INVALID_REQUEST', `The subscription would name ${metrics.size} metrics; at most ${this.limits.maxMetricsPerSubscription} are allowed.`, req.id);
      }
    }
    // Valid: apply.
    if (devicesApply) {
      this.unindex(sub);
      if (req.removeDevices.length > 0) sub.dropDevices(req.removeDevices);
      sub.devices = devices;
      this.index(sub);
    }
    if (metrics !== sub.metrics) sub.setMetrics(metrics);
    if (req.minIntervalMs !== undefined) {
      sub.minIntervalMs = req.minIntervalMs;
      sub.nextDataAt = 0;
    }
    client.answer(resultMessage(req.id, { offset: this.logs[sub.stream].head }));
    // §4.3.2: the current state of what was added.
    const addedIds = addedMetrics ? [...devices] : added;
    if (addedIds.length > 0) {
      if (sub.snapshot) {
        const ids = [...sub.snapshot.ids, ...this.idsFor(sub, addedIds)];
        sub.snapshot = { ...sub.snapshot, ids };
      } else {
        sub.snapshot = this.cursor(sub, 'added', false, addedIds);
      }
    }
    client.flush();
  }

  /**
   * Brings the fleet in line with the registry: devices created or deleted without a `changed` event (a
   * registry write that did not announce itself) appear or disappear here, with their `device` events.
   */
  reconcile(): void {
    const seen = new Set<string>();
    for (const d of this.opts.registry.list()) {
      seen.add(d.id);
      if (!this.fleet.has(d.id)) this.onChanged(d.id);
    }
    if (seen.size === this.fleet.size) return;
    for (const id of [...this.fleet.ids()]) if (!seen.has(id)) this.onChanged(id);
  }

  private checkDevices(id: number, devices: readonly string[]): void {
    if (devices.some((d) => !this.fleet.has(d))) this.reconcile();
    const unknown = devices.filter((d) => !this.fleet.has(d));
    if (unknown.length > 0) {
      const shown = unknown.slice(0, 5).map((d) => `"${d}"`).join(', ');
      throw new LiveRequestError(
        'DEVICE_NOT_FOUND',
        `No device ${shown}${unknown.length > 5 ? ` and ${unknown.length - 5} more` : ''} is registered; the fleet subscription lists the devices.`,
        id,
      );
    }
  }

  // ---- snapshots (§5.4)

  private cursor(sub: Subscription, kind: SnapshotCursor['kind'], gap: boolean, devices: readonly string[] | null): SnapshotCursor {
    const field = sub.stream === 'commands' ? 'commands' : sub.stream === 'health' ? 'health' : 'devices';
    const ids = this.idsFor(sub, devices ?? (sub.stream === 'fleet' ? this.fleet.ids() : sub.devices ? [...sub.devices] : null));
    return { kind, offset: this.logs[sub.stream].head, gap, field, ids, next: 0, part: 0 };
  }

  private idsFor(sub: Subscription, devices: readonly string[] | null): ReadonlyArray<string | number> {
    switch (sub.stream) {
      case 'fleet':
      case 'device':
        return devices ?? [];
      case 'health':
        return ['health'];
      case 'commands': {
        const source = this.opts.commands;
        if (!source) return [];
        if (devices === null) return source.unfinishedIds();
        const ids: number[] = [];
        for (const d of devices) {
          for (const c of source.list({ deviceId: d, states: UNFINISHED, limit: 1000 })) ids.push(c.id);
          for (const c of source.list({ deviceId: d, states: FINISHED, limit: FINISHED_PER_DEVICE })) ids.push(c.id);
        }
        return ids.sort((a, b) => a - b);
      }
    }
  }

  restartSnapshot(sub: Subscription): number {
    sub.snapshot = this.cursor(sub, 'snapshot', true, null);
    return sub.snapshot.offset;
  }

  renderSnapshotPart(sub: Subscription, maxBytes: number): string {
    const c = sub.snapshot!;
    const items: string[] = [];
    let size = 0;
    while (c.next < c.ids.length && (items.length === 0 || size < maxBytes)) {
      const json = this.renderItem(sub, c.ids[c.next++]!);
      if (json === null) continue;
      items.push(json);
      size += json.length + 1;
    }
    const last = c.next >= c.ids.length;
    const head = `{"kind":"${c.kind}","part":${c.part++},"last":${last},"gap":${c.gap},"${c.field}":`;
    const body = c.field === 'health' ? `${head}${items[0] ?? this.healthJsonValue}}` : `${head}[${items.join(',')}]}`;
    if (last) sub.snapshot = null;
    return body;
  }

  private renderItem(sub: Subscription, id: string | number): string | null {
    switch (sub.stream) {
      case 'fleet':
        return this.fleet.json(id as string);
      case 'device':
        return this.fleet.jsonWithMetrics(id as string, sub.metrics);
      case 'health':
        return this.healthJsonValue;
      case 'commands': {
        const cmd = this.opts.commands?.get(id as number);
        return cmd ? JSON.stringify(cmd) : null;
      }
    }
  }

  // ---- fan-out

  private index(sub: Subscription): void {
    switch (sub.stream) {
      case 'fleet':
        this.fleetSubs.add(sub);
        return;
      case 'health':
        this.healthSubs.add(sub);
        return;
      case 'commands':
      case 'device': {
        if (sub.devices === null) {
          this.commandSubsAll.add(sub);
          return;
        }
        // A subscription naming devices is indexed by device.
        const map = this.byDevice[sub.stream];
        for (const d of sub.devices) {
          let set = map.get(d);
          if (!set) map.set(d, (set = new Set()));
          set.add(sub);
        }
      }
    }
  }

  private unindex(sub: Subscription): void {
    this.fleetSubs.delete(sub);
    this.healthSubs.delete(sub);
    this.commandSubsAll.delete(sub);
    if ((sub.stream === 'device' || sub.stream === 'commands') && sub.devices) {
      const map = this.byDevice[sub.stream];
      for (const d of sub.devices) {
        const set = map.get(d);
        if (!set) continue;
        set.delete(sub);
        if (set.size === 0) map.delete(d);
      }
    }
  }

  private matches(sub: Subscription, ev: LiveEvent): boolean {
    if (sub.devices === null || ev.deviceId === null) return true;
    return sub.devices.has(ev.deviceId);
  }

  /** Appends to the stream's window and hands the event to every subscription that asked for it. */
  private publish(stream: StreamName, ev: LiveEvent): void {
    this.logs[stream].append(ev);
    if (this.clients.size === 0) return;
    switch (stream) {
      case 'fleet':
        return this.deliverAll(this.fleetSubs, ev);
      case 'health':
        return this.deliverAll(this.healthSubs, ev);
      case 'commands':
      case 'device': {
        if (stream === 'commands') this.deliverAll(this.commandSubsAll, ev);
        const set = ev.deviceId === null ? undefined : this.byDevice[stream].get(ev.deviceId);
        if (set) this.deliverAll(set, ev);
      }
    }
  }

  private deliverAll(subs: ReadonlySet<Subscription>, ev: LiveEvent): void {
    for (const sub of subs) {
      const client = this.owners.get(sub);
      if (!client) continue;
      try {
        client.deliver(sub, ev);
      } catch (err) {
        this.log.error({ err, remote: client.remote }, 'delivering a live event failed; the client is closed');
        client.closeWith(CLOSE.internal, null);
      }
    }
    // The shared frame served this fan-out; the window keeps only the body.
    ev.frame = undefined;
  }

  // ---- sources

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err }, 'the live channel failed on a hub event');
    }
  }

  private event(kind: LiveEvent['kind'], control: boolean, deviceId: string | null, key: string, body: object, extra?: Partial<LiveEvent>): LiveEvent {
    return lazyEvent({ kind, control, deviceId, key, ...extra }, body);
  }

  private publishPresence(deviceId: string): void {
    const row = this.fleet.get(deviceId);
    if (!row) return;
    const ev = this.event('presence', true, deviceId, `p:${deviceId}`, { kind: 'presence', deviceId, transport: row.transport, presence: row.presence });
    this.publish('fleet', ev);
    this.publish('device', { ...ev });
  }

  private publishDevice(deviceId: string, change: 'created' | 'updated' | 'deleted'): void {
    const json = change === 'deleted' ? 'null' : this.fleet.json(deviceId);
    if (json === null) return;
    const body = `{"kind":"device","change":"${change}","deviceId":${JSON.stringify(deviceId)},"device":${json}}`;
    const ev: LiveEvent = { offset: 0, at: 0, kind: 'device', control: true, deviceId, key: `d:${deviceId}`, body };
    this.publish('fleet', ev);
    this.publish('device', { ...ev });
  }

  private onOnline(e: DeviceEvents['online']): void {
    // A new attach may bring new declarations (units, ranges).
    const { row, changed } = this.fleet.refresh(e.deviceId);
    if (!row) return;
    if (changed) this.publishDevice(e.deviceId, 'updated');
    this.fleet.setPresence(e.deviceId, e.transport, { state: 'online', reason: e.replaced ? 'REPLACED' : null, since: e.since, lastSeen: e.since });
    this.publishPresence(e.deviceId);
  }

  private onOffline(e: DeviceEvents['offline']): void {
    if (!this.fleet.has(e.deviceId)) return;
    this.fleet.setPresence(e.deviceId, e.transport, { state: 'offline', reason: e.reason, since: e.since, lastSeen: e.lastSeen });
    this.publishPresence(e.deviceId);
  }

  private onReadings(e: DeviceEvents['readings']): void {
    const { deviceId } = e;
    if (!this.fleet.has(deviceId)) return;
    const readings: LiveReading[] = [];
    const latest: Record<string, LatestValue> = {};
    for (const r of e.readings) {
      const values: LiveReading['values'] = {};
      for (const v of r.values) {
        values[v.metric] = v.value;
        const cur = latest[v.metric];
        if (cur === undefined || cur.ts <= r.ts) latest[v.metric] = { ts: r.ts, value: v.value };
      }
      readings.push({ seq: r.seq, ts: r.ts, values });
    }
    if (readings.length === 0) return;
    const size = 64 + readings.length * 48 * (1 + Object.keys(readings[0]!.values).length);
    this.publish('device', this.event('readings', false, deviceId, deviceId, { kind: 'readings', deviceId, readings }, { readings, size }));
    const lastSeen = this.opts.registry.get(deviceId)?.presence.lastSeen ?? null;
    const changed = this.fleet.mergeLatest(deviceId, latest, lastSeen);
    if (changed) {
      const size = 64 + Object.keys(changed).length * 64;
      this.publish('fleet', this.event('values', false, deviceId, `v:${deviceId}`, { kind: 'values', deviceId, latest: changed }, { latest: changed, size }));
    }
  }

  private onCounters(deviceId: string, counters: { rejected?: number; dropped?: number }): void {
    const row = this.fleet.setCounters(deviceId, counters);
    if (!row) return;
    this.publish('fleet', this.event('counters', false, deviceId, `c:${deviceId}`, { kind: 'counters', deviceId, rejected: row.rejected, dropped: row.dropped }));
  }

  private onChanged(deviceId: string): void {
    const existed = this.fleet.has(deviceId);
    const { row, changed } = this.fleet.refresh(deviceId);
    if (!row) {
      if (existed) this.publishDevice(deviceId, 'deleted');
      this.rejected.delete(deviceId);
      return;
    }
    if (changed) this.publishDevice(deviceId, existed ? 'updated' : 'created');
  }

  private onCommand(c: Command): void {
    this.publish('commands', this.event('command', false, c.deviceId, `k:${c.id}`, { kind: 'command', command: c }));
  }

  private computeHealth(): string {
    const base = this.opts.health();
    return JSON.stringify({ ...base, devices: { connected: this.fleet.connected, registered: this.fleet.size } });
  }

  private pollHealth(): void {
    const json = this.computeHealth();
    if (json === this.healthJsonValue) return;
    this.healthJsonValue = json;
    this.publish('health', { offset: 0, at: 0, kind: 'health', control: false, deviceId: null, key: 'health', body: `{"kind":"health","health":${json}}` });
  }

  /** Latest stored values, once, for rows that have none yet (after a restart, §5.1). */
  private async loadLatest(load: (deviceId: string) => Promise<Record<string, LatestValue>>): Promise<void> {
    for (const id of [...this.fleet.ids()]) {
      if (this.closed) return;
      try {
        const values = await load(id);
        if (this.closed) return;
        const changed = this.fleet.mergeLatest(id, values, null);
        if (changed) this.publish('fleet', this.event('values', false, id, `v:${id}`, { kind: 'values', deviceId: id, latest: changed }, { latest: changed }));
      } catch (err) {
        this.log.warn({ err, deviceId: id }, 'loading latest values for the live channel failed');
      }
    }
  }
}

function notFound(id: number, subscription: number): LiveRequestError {
  return new LiveRequestError('SUBSCRIPTION_NOT_FOUND', `This connection has no active subscription ${subscription} (docs/live.md §4.3).`, id);
}
