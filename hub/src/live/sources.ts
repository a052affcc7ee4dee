/**
 * Where the live channel's events come from (docs/live.md §5): the devices layer's events, the command queue
 * and the hub's health become stream events, each serialised once, with the fleet's rows kept up to date. Nothing here knows a transport or a client.
 */
import type { Command } from '../commands/model.js';
import type { TimerHandle, Timers } from '../core/clock.js';
import type { DeviceEvents } from '../devices/types.js';
import type { LiveLogger } from './client.js';
import type { FleetState, RegistryView } from './fleet-state.js';
import type { StreamName } from './protocol.js';
import { type LatestValue, type LiveEvent, type LiveReading, liveEvent } from './stream-log.js';

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

export interface StreamSourcesOptions {
  fleet: FleetState;
  registry: RegistryView;
  deviceEvents: EventsOf<DeviceEvents>;
  /** Latest stored values of a device (PresenceTracker.latest): loaded once at start for every device. */
  latest?: ((deviceId: string) => Promise<Record<string, LatestValue>>) | undefined;
  commands?: LiveCommandSource | undefined;
  health: () => LiveHealthBase;
  timers: Timers;
  log: LiveLogger;
  /** How often health is looked at (§5.3.2). */
  healthIntervalMs: number;
  /** Appends the event to its stream and fans it out. */
  publish(stream: StreamName, ev: LiveEvent): void;
  /** No client can see the stream's events now or resume past them (StreamLog.idle): skip, do not build them. */
  idle(stream: StreamName): boolean;
  /** Gives an event that was not built its offset (StreamLog.skip). */
  skip(stream: StreamName): void;
}

/**
 * A device's `counters` events are sent at most once per this many ms (docs/live.md §5.1): a STATUS frame per
 * dropped reading, or a rejected event per bad value, would otherwise each be an event to every dashboard.
 */
export const COUNTERS_EVERY_MS = 500;

export class StreamSources {
  private readonly fleet: FleetState;
  private readonly unlisten: Array<() => void> = [];
  private readonly rejected = new Map<string, number>();
  private readonly valuesKeys = new Map<string, string>();
  private healthJsonValue = '';
  private readonly healthTimer: TimerHandle;
  /** Devices whose counters went out in this COUNTERS_EVERY_MS window, and those that changed again since. */
  private countersCooling = new Set<string>();
  private countersDue = new Set<string>();
  private countersTimer: TimerHandle | null = null;
  private closed = false;

  constructor(private readonly deps: StreamSourcesOptions) {
    this.fleet = deps.fleet;
    const ev = deps.deviceEvents;
    this.unlisten.push(
      ev.on('online', (e) => this.guard(() => this.onOnline(e))),
      ev.on('offline', (e) => this.guard(() => this.onOffline(e))),
      ev.on('readings', (e) => this.guard(() => this.onReadings(e))),
      ev.on('status', (e) => this.guard(() => this.onCounters(e.deviceId, { dropped: e.dropped }))),
      ev.on('changed', (e) => this.guard(() => this.onChanged(e.deviceId))),
    );
    // Rejections counted since the hub started (the device's rejected counter on the fleet stream).
    this.unlisten.push(
      ev.on('rejected', (e) =>
        this.guard(() => {
          const n = (this.rejected.get(e.deviceId) ?? 0) + 1;
          this.rejected.set(e.deviceId, n);
          this.onCounters(e.deviceId, { rejected: n });
        }),
      ),
    );
    const commands = deps.commands;
    if (commands) {
      this.unlisten.push(commands.events.on('commandChanged', (c) => this.guard(() => this.onCommand(c))));
    }
    this.healthJsonValue = this.computeHealth();
    this.healthTimer = deps.timers.setInterval(() => this.guard(() => this.pollHealth()), deps.healthIntervalMs);
    this.healthTimer.unref?.();
    if (deps.latest) void this.loadLatest(deps.latest);
  }

  /** The current health object's JSON (§5.3.2), for snapshots. */
  get healthJson(): string {
    return this.healthJsonValue;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.unlisten) off();
    this.deps.timers.clearInterval(this.healthTimer);
    if (this.countersTimer) this.deps.timers.clearInterval(this.countersTimer);
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.deps.log.error({ err }, 'the live channel failed on a hub event');
    }
  }

  private event(
    kind: LiveEvent['kind'],
    control: boolean,
    deviceId: string | null,
    key: string,
    body: object,
  ): LiveEvent {
    return liveEvent(kind, control, deviceId, key, JSON.stringify(body));
  }

  /** The coalescing key of a device's `values` events, one string per device (it is kept in the window). */
  private valuesKey(deviceId: string): string {
    let key = this.valuesKeys.get(deviceId);
    if (key === undefined) this.valuesKeys.set(deviceId, (key = `v:${deviceId}`));
    return key;
  }

  private publishPresence(deviceId: string): void {
    const row = this.fleet.get(deviceId);
    if (!row) return;
    const ev = this.event('presence', true, deviceId, `p:${deviceId}`, {
      kind: 'presence',
      deviceId,
      transport: row.transport,
      // A copy: the row's lastSeen moves on, the event says what happened then.
      presence: { ...row.presence },
    });
    this.deps.publish('fleet', ev);
    this.deps.publish('device', { ...ev });
  }

  private publishDevice(deviceId: string, change: 'created' | 'updated' | 'deleted'): void {
    const json = change === 'deleted' ? 'null' : this.fleet.json(deviceId);
    if (json === null) return;
    const body = `{"kind":"device","change":"${change}","deviceId":${JSON.stringify(deviceId)},"device":${json}}`;
    const ev = liveEvent('device', true, deviceId, `d:${deviceId}`, body);
    this.deps.publish('fleet', ev);
    this.deps.publish('device', { ...ev });
  }

  private onOnline(e: DeviceEvents['online']): void {
    // A new attach may bring new declarations (units, ranges).
    const { row, changed } = this.fleet.refresh(e.deviceId);
    if (!row) return;
    if (changed) this.publishDevice(e.deviceId, 'updated');
    this.fleet.setPresence(e.deviceId, e.transport, {
      state: 'online',
      reason: e.replaced ? 'REPLACED' : null,
      since: e.since,
      lastSeen: e.since,
    });
    this.publishPresence(e.deviceId);
  }

  private onOffline(e: DeviceEvents['offline']): void {
    if (!this.fleet.has(e.deviceId)) return;
    this.fleet.setPresence(e.deviceId, e.transport, {
      state: 'offline',
      reason: e.reason,
      since: e.since,
      lastSeen: e.lastSeen,
    });
    this.publishPresence(e.deviceId);
  }

  private onReadings(e: DeviceEvents['readings']): void {
    const { deviceId } = e;
    if (!this.fleet.has(deviceId)) return;
    if (this.deps.idle('device')) return this.mergeLatestOnly(e);
    const readings: LiveReading[] = [];
    const latest: Record<string, LatestValue> = {};
    for (const r of e.readings) {
      const values: LiveReading['values'] = {};
      for (const v of r.values) {
        values[v.metric] = v.value;
        const cur = latest[v.metric];
        // Not `cur.ts <= r.ts`: for a metric named like an Object member (constructor, toString) `cur` is the
        // inherited function, whose ts is undefined, and the value was dropped.
        if (cur === undefined || !(cur.ts > r.ts)) latest[v.metric] = { ts: r.ts, value: v.value };
      }
      readings.push({ seq: r.seq, ts: r.ts, values });
    }
    if (readings.length === 0) return;
    const body = JSON.stringify({ kind: 'readings', deviceId, readings });
    this.deps.publish('device', liveEvent('readings', false, deviceId, deviceId, body, readings));
    const lastSeen = this.deps.registry.get(deviceId)?.presence.lastSeen ?? null;
    const changed = this.fleet.mergeLatest(deviceId, latest, lastSeen);
    if (changed) this.publishValues(deviceId, changed);
  }

  /** onReadings with no client to see them: the fleet rows' latest values (for the next snapshot) only. */
  private mergeLatestOnly(e: DeviceEvents['readings']): void {
    if (e.readings.length === 0) return;
    this.deps.skip('device');
    const lastSeen = this.deps.registry.get(e.deviceId)?.presence.lastSeen ?? null;
    if (this.deps.idle('fleet')) {
      // Nobody to tell what changed: merge in place (the common case of a hub with no dashboard open).
      if (this.fleet.mergeReadings(e.deviceId, e.readings, lastSeen)) this.deps.skip('fleet');
      return;
    }
    const latest: Record<string, LatestValue> = {};
    for (const r of e.readings)
      for (const v of r.values) {
        const cur = latest[v.metric];
        // Not `cur.ts <= r.ts`: for a metric named like an Object member (constructor, toString) `cur` is the
        // inherited function, whose ts is undefined, and the value was dropped.
        if (cur === undefined || !(cur.ts > r.ts)) latest[v.metric] = { ts: r.ts, value: v.value };
      }
    const changed = this.fleet.mergeLatest(e.deviceId, latest, lastSeen);
    if (changed) this.publishValues(e.deviceId, changed);
  }

  private publishValues(deviceId: string, changed: Record<string, LatestValue>): void {
    const body = JSON.stringify({ kind: 'values', deviceId, latest: changed });
    this.deps.publish(
      'fleet',
      liveEvent('values', false, deviceId, this.valuesKey(deviceId), body, undefined, changed),
    );
  }

  /** The first change in a window goes out at once; later ones wait for the window's end, with the latest counts. */
  private onCounters(deviceId: string, counters: { rejected?: number; dropped?: number }): void {
    if (!this.fleet.setCounters(deviceId, counters)) return;
    if (this.countersCooling.has(deviceId)) {
      this.countersDue.add(deviceId);
      return;
    }
    this.publishCounters(deviceId);
    this.countersCooling.add(deviceId);
    if (this.countersTimer === null) {
      this.countersTimer = this.deps.timers.setInterval(
        () => this.guard(() => this.endCountersWindow()),
        COUNTERS_EVERY_MS,
      );
      this.countersTimer.unref?.();
    }
  }

  private endCountersWindow(): void {
    const due = this.countersDue;
    for (const id of due) this.publishCounters(id);
    // Those just sent start a window of their own; the others may send at once again.
    this.countersCooling = due;
    this.countersDue = new Set();
    if (due.size === 0 && this.countersTimer) {
      this.deps.timers.clearInterval(this.countersTimer);
      this.countersTimer = null;
    }
  }

  private publishCounters(deviceId: string): void {
    const row = this.fleet.get(deviceId);
    if (!row) return;
    this.deps.publish(
      'fleet',
      this.event('counters', false, deviceId, `c:${deviceId}`, {
        kind: 'counters',
        deviceId,
        rejected: row.rejected,
        dropped: row.dropped,
      }),
    );
  }

  /** A device was created, changed or deleted in the registry (also the hub's reconcile). */
  onChanged(deviceId: string): void {
    const existed = this.fleet.has(deviceId);
    const { row, changed } = this.fleet.refresh(deviceId);
    if (!row) {
      if (existed) this.publishDevice(deviceId, 'deleted');
      this.rejected.delete(deviceId);
      this.valuesKeys.delete(deviceId);
      return;
    }
    if (changed) this.publishDevice(deviceId, existed ? 'updated' : 'created');
  }

  private onCommand(c: Command): void {
    this.deps.publish(
      'commands',
      this.event('command', false, c.deviceId, `k:${c.id}`, { kind: 'command', command: c }),
    );
  }

  private computeHealth(): string {
    const base = this.deps.health();
    return JSON.stringify({ ...base, devices: { connected: this.fleet.connected, registered: this.fleet.size } });
  }

  /** Publishes a health event when the health object changed (§5.3.2). */
  pollHealth(): void {
    const json = this.computeHealth();
    if (json === this.healthJsonValue) return;
    this.healthJsonValue = json;
    this.deps.publish('health', liveEvent('health', false, null, 'health', `{"kind":"health","health":${json}}`));
  }

  /** Latest stored values, once, for rows that have none yet (after a restart, §5.1). */
  private async loadLatest(load: (deviceId: string) => Promise<Record<string, LatestValue>>): Promise<void> {
    for (const id of [...this.fleet.ids()]) {
      if (this.closed) return;
      try {
        const values = await load(id);
        if (this.closed) return;
        const changed = this.fleet.mergeLatest(id, values, null);
        if (changed) this.publishValues(id, changed);
      } catch (err) {
        this.deps.log.warn({ err, deviceId: id }, 'loading latest values for the live channel failed');
      }
    }
  }
}
