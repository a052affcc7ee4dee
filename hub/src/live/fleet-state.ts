/**
 * The live channel's view of every device (docs/live.md §5.1): one row per device, its JSON made once per change
 * and shared by every snapshot part that sends it. Rows change in place; events copy what they carry.
 */
import type { MetricDeclaration } from '@tendril/device-sdk/codec';
import type { Transport } from '../devices/types.js';
import type { LatestValue } from './stream-log.js';

/** The part of a registry record the live channel reads (hub/src/devices/registry.ts DeviceRecord). */
export interface DeviceRecordView {
  id: string;
  name: string;
  model: string;
  labels: Record<string, string>;
  disabled: boolean;
  transport: Transport | null;
  metrics: readonly MetricDeclaration[];
  dropped: number;
  presence: { state: string; reason: string | null; since: number | null; lastSeen: number | null };
}

/** The part of the device registry the live channel reads. */
export interface RegistryView {
  get(id: string): DeviceRecordView | undefined;
  list(): readonly DeviceRecordView[];
}

export interface LivePresence {
  state: string;
  reason: string | null;
  since: number | null;
  lastSeen: number | null;
}

export interface LiveMetric {
  name: string;
  kind: string;
  unit: string;
  min?: number;
  max?: number;
}

/** A device's row (§5.1). */
export interface FleetRow {
  id: string;
  name: string;
  model: string;
  labels: Record<string, string>;
  disabled: boolean;
  transport: Transport | null;
  presence: LivePresence;
  metrics: LiveMetric[];
  latest: Record<string, LatestValue>;
  rejected: number;
  dropped: number;
}

interface Cell {
  readonly row: FleetRow;
  json: string | null;
}

/** What mergeReadings reads of a reading (a StoredReading is one). */
export interface TimedValues {
  ts: number;
  values: ReadonlyArray<{ metric: string; value: LatestValue['value'] }>;
}

function metricsOf(decls: readonly MetricDeclaration[]): LiveMetric[] {
  return decls.map((d) => {
    const m: LiveMetric = { name: d.name, kind: d.kind, unit: d.unit };
    if (d.min !== undefined) m.min = d.min;
    if (d.max !== undefined) m.max = d.max;
    return m;
  });
}

export class FleetState {
  private readonly cells = new Map<string, Cell>();
  private sortedIds: string[] | null = null;
  /** Devices whose presence is online. */
  connected = 0;

  constructor(private readonly registry: RegistryView) {
    for (const d of registry.list()) this.put(this.rowFrom(d, null));
  }

  get size(): number {
    return this.cells.size;
  }

  get(id: string): FleetRow | undefined {
    return this.cells.get(id)?.row;
  }

  has(id: string): boolean {
    return this.cells.has(id);
  }

  /** The row's JSON, made once per row. */
  json(id: string): string | null {
    const cell = this.cells.get(id);
    if (!cell) return null;
    cell.json ??= JSON.stringify(cell.row);
    return cell.json;
  }

  /** The row's JSON with `latest` limited to `metrics` (a device subscription's subset). */
  jsonWithMetrics(id: string, metrics: ReadonlySet<string> | null): string | null {
    if (metrics === null) return this.json(id);
    const row = this.get(id);
    if (!row) return null;
    const latest: Record<string, LatestValue> = {};
    for (const m of metrics) if (row.latest[m] !== undefined) latest[m] = row.latest[m];
    return JSON.stringify({ ...row, latest });
  }

  /** Ids in order, for a fleet snapshot. */
  ids(): string[] {
    this.sortedIds ??= [...this.cells.keys()].sort();
    return this.sortedIds;
  }

  /**
   * Re-reads a device from the registry (created, updated, or declarations after a new attach). Returns the
   * new row, null when the device is gone (removed here too), and whether name/model/labels/metrics changed.
   */
  refresh(id: string): { row: FleetRow | null; changed: boolean } {
    const record = this.registry.get(id);
    const before = this.get(id);
    if (!record) {
      if (before) this.remove(id);
      return { row: null, changed: before !== undefined };
    }
    const row = this.rowFrom(record, before ?? null);
    const changed =
      !before ||
      before.name !== row.name ||
      before.model !== row.model ||
      before.disabled !== row.disabled ||
      JSON.stringify(before.labels) !== JSON.stringify(row.labels) ||
      JSON.stringify(before.metrics) !== JSON.stringify(row.metrics);
    this.put(row);
    return { row, changed };
  }

  setPresence(id: string, transport: Transport | null, presence: LivePresence): FleetRow | undefined {
    const row = this.get(id) ?? this.refresh(id).row;
    if (!row) return undefined;
    const next = { ...row, transport: transport ?? row.transport, presence };
    this.put(next);
    return next;
  }

  /** Merges values newer than what the row holds; returns those that changed (null: none). */
  mergeLatest(
    id: string,
    values: Record<string, LatestValue>,
    lastSeen: number | null,
  ): Record<string, LatestValue> | null {
    const cell = this.cells.get(id);
    if (!cell) return null;
    const row = cell.row;
    // The hot path (every durable batch): the row changes in place and its JSON is made again when asked for.
    let changed: Record<string, LatestValue> | null = null;
    for (const metric in values) {
      const v = values[metric]!;
      const cur = row.latest[metric];
      if (cur !== undefined && cur.ts > v.ts) continue;
      (changed ??= {})[metric] = v;
      row.latest[metric] = v;
    }
    const seen = lastSeen !== null && lastSeen !== row.presence.lastSeen;
    if (seen) row.presence.lastSeen = lastSeen;
    if (changed !== null || seen) cell.json = null;
    return changed;
  }

  /**
   * mergeLatest straight from a durable batch of readings, for when nobody watches the fleet (sources.ts
   * mergeLatestOnly): no object of latest values per batch and none of changes, which at 10 000 readings/s
   * were 5 % of the hub's main thread with no dashboard open. True when a value changed.
   */
  mergeReadings(id: string, readings: readonly TimedValues[], lastSeen: number | null): boolean {
    const cell = this.cells.get(id);
    if (!cell) return false;
    const latest = cell.row.latest;
    let changed = false;
    for (const r of readings) {
      const ts = r.ts;
      for (const v of r.values) {
        const cur = latest[v.metric];
        if (cur !== undefined && cur.ts > ts) continue;
        // A new object: an event published earlier may still hold the old one.
        latest[v.metric] = { ts, value: v.value };
        changed = true;
      }
    }
    const row = cell.row;
    const seen = lastSeen !== null && lastSeen !== row.presence.lastSeen;
    if (seen) row.presence.lastSeen = lastSeen;
    if (changed || seen) cell.json = null;
    return changed;
  }

  /** Sets counters; true when one changed. */
  setCounters(id: string, counters: { rejected?: number; dropped?: number }): FleetRow | null {
    const row = this.get(id);
    if (!row) return null;
    const rejected = counters.rejected ?? row.rejected;
    const dropped = counters.dropped ?? row.dropped;
    if (rejected === row.rejected && dropped === row.dropped) return null;
    const next = { ...row, rejected, dropped };
    this.put(next);
    return next;
  }

  remove(id: string): void {
    const cell = this.cells.get(id);
    if (!cell) return;
    if (cell.row.presence.state === 'online') this.connected--;
    this.cells.delete(id);
    this.sortedIds = null;
  }

  private put(row: FleetRow): void {
    const before = this.cells.get(row.id);
    if (!before) this.sortedIds = null;
    if (before?.row.presence.state === 'online') this.connected--;
    if (row.presence.state === 'online') this.connected++;
    this.cells.set(row.id, { row, json: null });
  }

  private rowFrom(d: DeviceRecordView, before: FleetRow | null): FleetRow {
    const p = d.presence;
    return {
      id: d.id,
      name: d.name,
      model: d.model,
      labels: { ...d.labels },
      disabled: d.disabled,
      transport: d.transport,
      presence: before?.presence ?? { state: p.state, reason: p.reason, since: p.since, lastSeen: p.lastSeen },
      metrics: metricsOf(d.metrics),
      latest: before?.latest ?? {},
      rejected: before?.rejected ?? 0,
      dropped: before?.dropped ?? d.dropped,
    };
  }
}
