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
import { DEFAULT_WINDOWS, type LatestValue, type LiveEvent, StreamLog, type StreamWindow } from './stream-log.js';
import { renderSnapshotPart, type SnapshotContext, snapshotCursor } from './snapshots.js';
import { StreamSources, type EventsOf, type LiveCommandSource, type LiveHealthBase } from './sources.js';
import { type SnapshotCursor, Subscription } from './subscription.js';

export type { EventsOf, LiveCommandSource, LiveHealthBase } from './sources.js';

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

export class LiveHub implements LiveHost {
  readonly limits: LiveLimits;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly log: LiveLogger;
  readonly fleet: FleetState;
  readonly logs: Record<StreamName, StreamLog>;
  readonly clients = new Set<LiveClient>();
  private readonly closedTotals = { messagesSent: 0, batchedEvents: 0, coalesced: 0, resyncs: 0 };
  private readonly owners = new Map<Subscription, LiveClient>();
  private readonly fleetSubs = new Set<Subscription>();
  private readonly healthSubs = new Set<Subscription>();
  private readonly commandSubsAll = new Set<Subscription>();
  /** Every indexed subscription of each stream: a stream nobody subscribes to keeps nothing (§6.2.5). */
  private readonly watchers: Record<StreamName, Set<Subscription>> = {
    fleet: new Set(),
    device: new Set(),
    commands: new Set(),
    health: new Set(),
  };
  private readonly byDevice: Record<'device' | 'commands', Map<string, Set<Subscription>>> = {
    device: new Map(),
    commands: new Map(),
  };
  private readonly sources: StreamSources;
  private readonly snapshotContext: SnapshotContext;
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
    this.sources = new StreamSources({
      fleet: this.fleet,
      registry: opts.registry,
      deviceEvents: opts.deviceEvents,
      latest: opts.latest,
      commands: opts.commands,
      health: opts.health,
      timers: opts.timers,
      log: opts.log,
      healthIntervalMs: opts.healthIntervalMs ?? 1000,
      publish: (stream, ev) => this.publish(stream, ev),
      idle: (stream) => this.logs[stream].idle,
      skip: (stream) => this.logs[stream].skip(),
    });
    const sources = this.sources;
    this.snapshotContext = {
      fleet: this.fleet,
      logs: this.logs,
      commands: opts.commands,
      healthJson: () => sources.healthJson,
    };
    this.pingTimer = opts.timers.setInterval(() => {
      const t = this.clock.now();
      for (const c of this.clients) c.heartbeat(t);
    }, opts.limits.pingIntervalMs);
    this.pingTimer.unref?.();
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
  revoke(
    event:
      | { kind: 'session'; sessionId: string }
      | { kind: 'user'; userName: string }
      | { kind: 'token'; tokenId: string },
  ): void {
    for (const c of [...this.clients]) {
      const p = c.principal;
      if (!p) continue;
      const hit =
        event.kind === 'session'
          ? p.sessionId === event.sessionId
          : event.kind === 'token'
            ? p.tokenId === event.tokenId
            : p.name === event.userName && p.kind !== 'bootstrap';
      if (hit) c.closeWith(CLOSE.unauthorized, 'Your session, account or token ended; log in again (docs/live.md §9).');
    }
  }

  clientClosed(client: LiveClient): void {
    for (const sub of client.subs.values()) {
      this.unindex(sub);
      this.owners.delete(sub);
    }
    this.clients.delete(client);
    const t = this.closedTotals;
    t.messagesSent += client.stats.messagesSent;
    t.batchedEvents += client.stats.batchedEvents;
    t.coalesced += client.stats.coalesced;
    t.resyncs += client.stats.resyncs;
  }

  /** Open connections from one client address (§8). */
  clientsFrom(remote: string): number {
    let n = 0;
    for (const c of this.clients) if (c.remote === remote) n++;
    return n;
  }

  /** Totals over every client since the hub started (/metrics). */
  totals(): { messagesSent: number; batchedEvents: number; coalesced: number; resyncs: number } {
    const t = { ...this.closedTotals };
    for (const c of this.clients) {
      t.messagesSent += c.stats.messagesSent;
      t.batchedEvents += c.stats.batchedEvents;
      t.coalesced += c.stats.coalesced;
      t.resyncs += c.stats.resyncs;
    }
    return t;
  }

  /** Active subscriptions per stream (/metrics). */
  subscriptionCounts(): Record<StreamName, number> {
    const n: Record<StreamName, number> = { fleet: 0, device: 0, commands: 0, health: 0 };
    for (const c of this.clients) for (const sub of c.subs.values()) n[sub.stream]++;
    return n;
  }

  /** Says goodbye to every client (1001) and stops listening. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sources.close();
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
        this.owners.delete(sub);
        client.dropSubscription(sub);
        client.answer(resultMessage(req.id, {}));
        return;
      }
    }
  }

  private subscribe(client: LiveClient, req: SubscribeRequest): void {
    if (client.subs.has(req.id)) {
      throw new LiveRequestError(
        'SUBSCRIPTION_EXISTS',
        `Subscription ${req.id} is still active; unsubscribe it first or use a new id (docs/live.md §4.2).`,
        req.id,
      );
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
      // §6.2.2: what it missed, in order, through the same path as live events (coalesced if it cannot keep up),
      // up to maxReplayEvents of them (§6.2.4); past that a snapshot costs less than replaying on.
      let replayed = 0;
      for (const ev of log.since(req.resume!.offset)) {
        if (!this.matches(sub, ev)) continue;
        if (++replayed > this.limits.maxReplayEvents) {
          client.resync(sub);
          break;
        }
        client.deliver(sub, ev);
        // The shared element is for one fan-out; the window keeps bodies only.
        ev.item = undefined;
      }
    } else {
      sub.snapshot = this.cursor(sub, 'snapshot', req.resume !== null, null);
    }
    client.flush();
  }

  /**
   * §5: changes a subscription in place. Kept as one function (a little over 80 lines): each branch checks one
   * kind of change against the same subscription and the checks must all pass before any change applies.
   */
  private update(client: LiveClient, req: UpdateRequest): void {
    const sub = client.subs.get(req.subscription);
    if (!sub) throw notFound(req.id, req.subscription);
    const devicesApply = sub.stream === 'device' || (sub.stream === 'commands' && sub.devices !== null);
    if ((req.addDevices.length > 0 || req.removeDevices.length > 0) && !devicesApply) {
      throw new LiveRequestError(
        'INVALID_REQUEST',
        `addDevices/removeDevices apply to device subscriptions and commands subscriptions that name devices, not to this ${sub.stream} subscription.`,
        req.id,
      );
    }
    if (
      (req.addMetrics.length > 0 || req.removeMetrics.length > 0) &&
      (sub.stream !== 'device' || sub.metrics === null)
    ) {
      throw new LiveRequestError(
        'INVALID_REQUEST',
        'addMetrics/removeMetrics apply to device subscriptions that name metrics (one of every metric already has them all).',
        req.id,
      );
    }
    this.checkDevices(req.id, req.addDevices);
    const devices = new Set(sub.devices ?? []);
    for (const d of req.removeDevices) devices.delete(d);
    const added = req.addDevices.filter((d) => !devices.has(d));
    for (const d of added) devices.add(d);
    if (devicesApply && devices.size === 0)
      throw new LiveRequestError(
        'INVALID_REQUEST',
        'The update would leave the subscription without devices; unsubscribe instead.',
        req.id,
      );
    if (devices.size > this.limits.maxDevicesPerSubscription) {
      throw new LiveRequestError(
        'TOO_MANY_DEVICES',
        `The subscription would name ${devices.size} devices; at most ${this.limits.maxDevicesPerSubscription} are allowed.`,
        req.id,
      );
    }
    let metrics: Set<string> | null = sub.metrics;
    let addedMetrics = false;
    if (metrics !== null && (req.addMetrics.length > 0 || req.removeMetrics.length > 0)) {
      metrics = new Set(metrics);
      for (const m of req.removeMetrics) metrics.delete(m);
      for (const m of req.addMetrics) if (!metrics.has(m)) metrics.add(m), (addedMetrics = true);
      if (metrics.size === 0)
        throw new LiveRequestError(
          'INVALID_REQUEST',
          'The update would remove the last metric; unsubscribe instead.',
          req.id,
        );
      if (metrics.size > this.limits.maxMetricsPerSubscription) {
        throw new LiveRequestError(
          'INVALID_REQUEST',
          `The subscription would name ${metrics.size} metrics; at most ${this.limits.maxMetricsPerSubscription} are allowed.`,
          req.id,
        );
      }
    }
    // Valid: apply.
    if (devicesApply) {
      this.unindex(sub);
      if (req.removeDevices.length > 0) sub.dropDevices(req.removeDevices);
      sub.devices = devices;
      this.index(sub);
    }
    if (metrics !== sub.metrics) {
      sub.setMetrics(metrics);
      if (req.removeMetrics.length > 0) sub.dropMetrics(req.removeMetrics);
    }
    if (req.minIntervalMs !== undefined) {
      sub.minIntervalMs = req.minIntervalMs;
      sub.nextDataAt = 0;
    }
    client.answer(resultMessage(req.id, { offset: this.logs[sub.stream].head }));
    // §4.3.2: the current state of what was added.
    const addedIds = addedMetrics ? [...devices] : added;
    if (addedIds.length > 0) {
      if (sub.snapshot) {
        // A snapshot still being sent starts over with everything now subscribed (a new part 0, §5.4.2).
        sub.snapshot = this.cursor(sub, sub.snapshot.kind, sub.snapshot.gap, null);
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
      if (!this.fleet.has(d.id)) this.sources.onChanged(d.id);
    }
    if (seen.size === this.fleet.size) return;
    for (const id of [...this.fleet.ids()]) if (!seen.has(id)) this.sources.onChanged(id);
  }

  private checkDevices(id: number, devices: readonly string[]): void {
    // A device registered since the fleet rows were last reconciled is added on its own: a full reconcile
    // lists and sorts the whole registry, too much to do for each request that names an unknown id.
    for (const d of devices)
      if (!this.fleet.has(d) && this.opts.registry.get(d) !== undefined) this.sources.onChanged(d);
    const unknown = devices.filter((d) => !this.fleet.has(d));
    if (unknown.length > 0) {
      const shown = unknown
        .slice(0, 5)
        .map((d) => `"${d}"`)
        .join(', ');
      throw new LiveRequestError(
        'DEVICE_NOT_FOUND',
        `No device ${shown}${unknown.length > 5 ? ` and ${unknown.length - 5} more` : ''} is registered; the fleet subscription lists the devices.`,
        id,
      );
    }
  }

  // ---- snapshots (§5.4)

  private cursor(
    sub: Subscription,
    kind: SnapshotCursor['kind'],
    gap: boolean,
    devices: readonly string[] | null,
  ): SnapshotCursor {
    return snapshotCursor(this.snapshotContext, sub, kind, gap, devices, this.limits.snapshotPartBytes);
  }

  restartSnapshot(sub: Subscription): number {
    sub.snapshot = this.cursor(sub, 'snapshot', true, null);
    return sub.snapshot.offset;
  }

  renderSnapshotPart(sub: Subscription): string {
    return renderSnapshotPart(this.snapshotContext, sub);
  }

  // ---- fan-out

  private index(sub: Subscription): void {
    this.watchers[sub.stream].add(sub);
    this.logs[sub.stream].setWatched(true);
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
    const watchers = this.watchers[sub.stream];
    if (watchers.delete(sub) && watchers.size === 0) this.logs[sub.stream].setWatched(false);
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
    const log = this.logs[stream];
    if (log.idle) return log.skip();
    log.append(ev);
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
    // The shared element served this fan-out; the window keeps only the body.
    ev.item = undefined;
  }
}

function notFound(id: number, subscription: number): LiveRequestError {
  return new LiveRequestError(
    'SUBSCRIPTION_NOT_FOUND',
    `This connection has no active subscription ${subscription} (docs/live.md §4.3).`,
    id,
  );
}
