/**
 * Presence (online/offline with a reason) and the latest value of every metric, per device.
 *
 * Presence lives on the registry's DeviceRecord and is persisted with the registry's flushes, so after a
 * restart every device shows offline with its last-seen time. Latest values are kept in memory as
 * readings become durable; after a restart they are loaded lazily from the time-series store.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../core/clock.js';
import { TypedEvents } from '../core/events.js';
import type { DeviceRecord, DeviceRegistry, Presence, Transport } from './registry.js';
import type { OfflineReason } from './types.js';
import type { LatestValue, StoredReading, TimeSeriesStore } from '../storage/types.js';

export interface PresenceChange {
  deviceId: string;
  transport: Transport | null;
  presence: Presence;
}

export interface PresenceEvents extends Record<string, unknown> {
  change: PresenceChange;
}

export class PresenceTracker {
  readonly events = new TypedEvents<PresenceEvents>();
  private readonly latestByDevice = new Map<string, Record<string, LatestValue>>();

  constructor(
    private readonly registry: DeviceRegistry,
    private readonly store: TimeSeriesStore,
    private readonly clock: Clock,
    log?: FastifyBaseLogger,
  ) {
    if (log)
      this.events.onListenerError = (err, event) => log.error({ err, event }, 'a presence event listener failed');
    // Devices persisted as online were connected when the hub last stopped without closing them.
    for (const device of registry.list()) {
      if (device.presence.state === 'online') {
        device.presence = {
          ...device.presence,
          state: 'offline',
          reason: 'SHUTTING_DOWN',
          since: device.presence.lastSeen ?? clock.now(),
        };
        registry.connections.record(device.id, {
          at: device.presence.since ?? clock.now(),
          event: 'offline',
          transport: device.transport,
          reason: 'SHUTTING_DOWN',
          remote: device.presence.remote,
        });
        registry.markDirty(device);
      }
    }
  }

  /** `reason` is null, or REPLACED when this connection took over from an older one of the same device. */
  online(device: DeviceRecord, transport: Transport, remote: string | null, reason: string | null = null): void {
    const now = this.clock.now();
    device.transport = transport;
    device.presence = { state: 'online', reason, since: now, lastSeen: now, remote };
    this.registry.connections.record(device.id, { at: now, event: 'online', transport, reason, remote });
    this.registry.markDirty(device);
    this.events.emit('change', { deviceId: device.id, transport, presence: device.presence });
  }

  offline(device: DeviceRecord, reason: OfflineReason): void {
    const now = this.clock.now();
    const p = device.presence;
    device.presence = { state: 'offline', reason, since: now, lastSeen: p.lastSeen, remote: p.remote };
    this.registry.connections.record(device.id, {
      at: now,
      event: 'offline',
      transport: device.transport,
      reason,
      remote: p.remote,
    });
    this.registry.markDirty(device);
    this.events.emit('change', { deviceId: device.id, transport: device.transport, presence: device.presence });
  }

  /** Records that readings of `deviceId` became durable. */
  stored(deviceId: string, readings: readonly StoredReading[]): void {
    const latest = this.latestByDevice.get(deviceId);
    // Not loaded yet: the store has these readings, the lazy load will see them.
    if (!latest) return;
    for (const r of readings) {
      for (const v of r.values) {
        const cur = latest[v.metric];
        // Not `cur.ts <= r.ts`: for a metric named like an Object member (constructor, toString) `cur` is the
        // inherited function, whose ts is undefined, and the value was dropped.
        if (cur === undefined || !(cur.ts > r.ts)) latest[v.metric] = { ts: r.ts, value: v.value };
      }
    }
  }

  async latest(deviceId: string): Promise<Record<string, LatestValue>> {
    let latest = this.latestByDevice.get(deviceId);
    if (latest) return latest;
    const loaded = await this.store.latest(deviceId);
    // Readings stored while the query ran were merged into an entry created meanwhile, if any.
    latest = this.latestByDevice.get(deviceId);
    if (latest) {
      for (const [metric, v] of Object.entries(loaded)) {
        const cur = latest[metric];
        if (cur === undefined || cur.ts < v.ts) latest[metric] = v;
      }
      return latest;
    }
    this.latestByDevice.set(deviceId, loaded);
    return loaded;
  }

  forget(deviceId: string): void {
    this.latestByDevice.delete(deviceId);
  }
}
