/**
 * One subscription of one client (docs/live.md §4): its filter, its maximum rate, and its share of the client's
 * outbox: data coalesced latest-wins per series (§6.1), control events held while a snapshot is being sent,
 * and the snapshot cursor (§5.4).
 */
import type { TimerHandle } from '../core/clock.js';
import type { ScalarValue } from '../storage/types.js';
import type { StreamName } from './protocol.js';
import type { LatestValue, LiveEvent, LiveReading } from './stream-log.js';

interface SeriesPoint {
  seq: number;
  ts: number;
  value: ScalarValue;
  /** Values of this series replaced before they were sent (§5.2.1 `coalesced`). */
  skipped: number;
}

type PendingEntry =
  | { type: 'replace'; offset: number; bytes: number; body: string }
  | { type: 'values'; offset: number; bytes: number; deviceId: string; latest: Record<string, LatestValue> }
  | { type: 'readings'; offset: number; bytes: number; deviceId: string; series: Map<string, SeriesPoint> };

export interface SnapshotCursor {
  kind: 'snapshot' | 'added';
  /** The stream's offset when it was taken: every message of it carries this offset (§5.4.1). */
  offset: number;
  gap: boolean;
  field: 'devices' | 'commands' | 'health';
  /** What to send, rendered from the current state part by part (§5.4.2). */
  ids: ReadonlyArray<string | number>;
  /** Index in `ids` after each part: the part count is announced in every part (`parts`). */
  ends: readonly number[];
  next: number;
  part: number;
}

/** A control message waiting while this subscription's snapshot is sent. */
export interface HeldControl {
  text: string;
  bytes: number;
}

/** Fixed accounting per entry (Map slot, object header). */
const ENTRY_BYTES = 64;
/** Distinct metric subsets an event keeps a body for; more are made per client. */
const MAX_SUBSET_BODIES = 8;

export class Subscription {
  devices: Set<string> | null;
  metrics: Set<string> | null;
  private metricsKey: string | null = null;
  minIntervalMs: number | null;
  private readonly pending = new Map<string, PendingEntry>();
  pendingBytes = 0;
  held: HeldControl[] = [];
  heldBytes = 0;
  snapshot: SnapshotCursor | null = null;
  /** §7.4.2: queued state was dropped; a resync and a snapshot go out once the socket drains. */
  resync = false;
  /** Highest offset sent (§3.5.2: offsets of a subscription never decrease). */
  watermark = 0;
  /** §6.3: data may go out from this time on. */
  nextDataAt = 0;
  timer: TimerHandle | null = null;
  closed = false;

  constructor(
    readonly id: number,
    readonly stream: StreamName,
    devices: readonly string[] | null,
    metrics: readonly string[] | null,
    minIntervalMs: number | null,
  ) {
    this.devices = devices ? new Set(devices) : null;
    this.metrics = null;
    this.setMetrics(metrics);
    this.minIntervalMs = minIntervalMs;
  }

  setMetrics(metrics: Iterable<string> | null): void {
    this.metrics = metrics ? new Set(metrics) : null;
    this.metricsKey = this.metrics ? [...this.metrics].sort().join('\0') : null;
  }

  get hasPending(): boolean {
    return this.pending.size > 0;
  }

  /** The event's body for this subscription; null when none of its metrics is subscribed. */
  bodyFor(ev: LiveEvent): string | null {
    if (this.metrics === null || ev.kind !== 'readings' || !ev.readings) return ev.body;
    const cache = (ev.subsets ??= new Map());
    const cached = cache.get(this.metricsKey!);
    if (cached !== undefined) return cached;
    const readings: LiveReading[] = [];
    for (const r of ev.readings) {
      let values: Record<string, ScalarValue> | null = null;
      for (const m of this.metrics) if (m in r.values) (values ??= {})[m] = r.values[m]!;
      if (values) readings.push({ seq: r.seq, ts: r.ts, values });
    }
    const body = readings.length > 0 ? JSON.stringify({ kind: 'readings', deviceId: ev.deviceId, readings }) : null;
    if (cache.size < MAX_SUBSET_BODIES) cache.set(this.metricsKey!, body);
    return body;
  }

  /** Keeps the event's data latest-wins per series (§6.1); returns the change in accounted bytes. */
  addPending(ev: LiveEvent): number {
    const before = this.pendingBytes;
    const existing = this.pending.get(ev.key);
    // Delete and set again: the map stays in order of each entry's latest offset (oldest change first, §6.1.1).
    if (existing) this.pending.delete(ev.key);
    if (ev.kind === 'readings' && ev.readings) {
      const entry =
        existing?.type === 'readings'
          ? existing
          : {
              type: 'readings' as const,
              offset: 0,
              bytes: ENTRY_BYTES + (ev.deviceId?.length ?? 0),
              deviceId: ev.deviceId ?? '',
              series: new Map<string, SeriesPoint>(),
            };
      for (const r of ev.readings) {
        for (const metric in r.values) {
          if (this.metrics !== null && !this.metrics.has(metric)) continue;
          const p = entry.series.get(metric);
          if (p) {
            p.skipped++;
            p.seq = r.seq;
            p.ts = r.ts;
            p.value = r.values[metric]!;
          } else {
            entry.series.set(metric, { seq: r.seq, ts: r.ts, value: r.values[metric]!, skipped: 0 });
            entry.bytes += metric.length * 2 + 48 + valueBytes(r.values[metric]!);
          }
        }
      }
      if (entry.series.size === 0) return 0;
      entry.offset = ev.offset;
      this.put(ev.key, entry, existing);
    } else if (ev.kind === 'values' && ev.latest) {
      const entry =
        existing?.type === 'values'
          ? existing
          : {
              type: 'values' as const,
              offset: 0,
              bytes: ENTRY_BYTES + (ev.deviceId?.length ?? 0),
              deviceId: ev.deviceId ?? '',
              latest: {} as Record<string, LatestValue>,
            };
      for (const metric in ev.latest) {
        if (entry.latest[metric] === undefined)
          entry.bytes += metric.length * 2 + 40 + valueBytes(ev.latest[metric]!.value);
        entry.latest[metric] = ev.latest[metric]!;
      }
      entry.offset = ev.offset;
      this.put(ev.key, entry, existing);
    } else {
      this.put(
        ev.key,
        { type: 'replace', offset: ev.offset, bytes: ENTRY_BYTES + ev.body.length, body: ev.body },
        existing,
      );
    }
    return this.pendingBytes - before;
  }

  private put(key: string, entry: PendingEntry, existing: PendingEntry | undefined): void {
    if (existing) this.pendingBytes -= existing.bytes;
    this.pending.set(key, entry);
    this.pendingBytes += entry.bytes;
  }

  /** The oldest pending change as one event body, with the resume offset it may carry; null when none. */
  takeOldest(): { body: string; offset: number; bytes: number } | null {
    const first = this.pending.entries().next();
    if (first.done) return null;
    const [key, entry] = first.value;
    this.pending.delete(key);
    this.pendingBytes -= entry.bytes;
    return { body: pendingBody(entry), offset: this.offsetFor(entry.offset), bytes: entry.bytes };
  }

  /**
   * §3.5.2: the offset a message may carry: everything of the subscription up to it is sent or replaced by a
   * pending newer value, so at most the oldest pending change's offset minus one.
   */
  offsetFor(eventOffset: number): number {
    if (this.pending.size === 0) {
      // Nothing pending (the fan-out's usual case): no iterator to make.
      if (eventOffset > this.watermark) this.watermark = eventOffset;
      return this.watermark;
    }
    const first = this.pending.values().next();
    const limit = first.done ? eventOffset : Math.min(eventOffset, first.value.offset - 1);
    if (limit > this.watermark) this.watermark = limit;
    return this.watermark;
  }

  /** Drops queued data and held control events (resync, unsubscribe); returns the bytes freed. */
  dropQueued(): number {
    const freed = this.pendingBytes + this.heldBytes;
    this.pending.clear();
    this.pendingBytes = 0;
    this.held = [];
    this.heldBytes = 0;
    return freed;
  }

  /** Forgets pending readings of metrics no longer subscribed (update, §4.3.2). */
  dropMetrics(metrics: readonly string[]): void {
    for (const [key, entry] of this.pending) {
      if (entry.type !== 'readings') continue;
      for (const m of metrics) {
        const p = entry.series.get(m);
        if (!p) continue;
        entry.series.delete(m);
        const freed = m.length * 2 + 48 + valueBytes(p.value);
        entry.bytes -= freed;
        this.pendingBytes -= freed;
      }
      if (entry.series.size === 0) {
        this.pending.delete(key);
        this.pendingBytes -= entry.bytes;
      }
    }
  }

  /** Forgets pending data of devices no longer subscribed (update, §4.3.2). */
  dropDevices(ids: readonly string[]): number {
    let freed = 0;
    const gone = new Set(ids);
    for (const [key, entry] of this.pending) {
      const deviceId = entry.type === 'replace' ? null : entry.deviceId;
      if (deviceId !== null && gone.has(deviceId)) {
        this.pending.delete(key);
        freed += entry.bytes;
      }
    }
    this.pendingBytes -= freed;
    return freed;
  }
}

function valueBytes(v: ScalarValue): number {
  return typeof v === 'string' ? v.length * 2 + 16 : 16;
}

function pendingBody(entry: PendingEntry): string {
  switch (entry.type) {
    case 'replace':
      return entry.body;
    case 'values':
      return JSON.stringify({ kind: 'values', deviceId: entry.deviceId, latest: entry.latest });
    case 'readings': {
      const bySeq = new Map<number, LiveReading>();
      let coalesced: Record<string, number> | null = null;
      for (const [metric, p] of entry.series) {
        let r = bySeq.get(p.seq);
        if (!r) bySeq.set(p.seq, (r = { seq: p.seq, ts: p.ts, values: {} }));
        r.values[metric] = p.value;
        if (p.skipped > 0) (coalesced ??= {})[metric] = p.skipped;
      }
      const readings = [...bySeq.values()].sort((a, b) => a.ts - b.ts || a.seq - b.seq);
      return JSON.stringify(
        coalesced
          ? { kind: 'readings', deviceId: entry.deviceId, readings, coalesced }
          : { kind: 'readings', deviceId: entry.deviceId, readings },
      );
    }
  }
}
