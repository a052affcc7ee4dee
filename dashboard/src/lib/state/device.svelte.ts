/**
 * One device's view: its declarations, presence and connection history (live `device` stream, docs/live.md
 * §5.2), and a chart per numeric metric whose history comes from the history API at about one bucket per
 * pixel (min, mean, max per bucket) and whose present comes from live readings folded into the same buckets.
 *
 * Readings are buffered in plain arrays and applied once per animation frame; each chart's data is a
 * `$state.raw` array set once per frame when its series changed. A resume that was not recovered (a
 * snapshot with `gap: true`) marks a gap on every chart at the last reading, then refetches the history so
 * the gap closes with stored data where the hub has it; coalesced readings (`coalesced`) are refetched too.
 */
import type { LiveEvent, Reading, SubscribeSpec } from '../live/protocol.js';
import { BucketSeries, stepFor, type ChartData } from '../series.js';
import type { Device, HistoryAnswer, LatestValue, MetricDeclaration, Presence } from '../types.js';

export type RangeKey = 'live' | '15m' | '1h' | '24h' | '7d' | 'custom';

export const RANGE_MS: Record<Exclude<RangeKey, 'custom'>, number> = {
  live: 5 * 60_000,
  '15m': 15 * 60_000,
  '1h': 3_600_000,
  '24h': 86_400_000,
  '7d': 7 * 86_400_000,
};

export interface RangeSpec {
  key: RangeKey;
  /** custom only */
  from?: number;
  to?: number;
}

export interface ConnectionEntry {
  at: number;
  state: Presence['state'];
  reason: string | null;
  transport?: string | null;
}

/** One entry of GET /api/v1/devices/:id/connections (docs/api.md). */
export interface ConnectionRecord {
  id: number;
  at: number;
  event: 'online' | 'offline';
  transport: string | null;
  reason: string | null;
  remote: string | null;
}

/** What the hub keeps per device, and so what the view shows. */
export const CONNECTION_LOG_MAX = 200;

const entryKey = (e: ConnectionEntry): string => `${e.at}-${e.state}`;

/** Live entries and the hub's history as one list, newest first, each transition once. */
export function mergeConnectionLog(a: readonly ConnectionEntry[], b: readonly ConnectionEntry[]): ConnectionEntry[] {
  const seen = new Set<string>();
  const out: ConnectionEntry[] = [];
  for (const e of [...a, ...b]) {
    const k = entryKey(e);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(e);
  }
  // Stable: the order within one millisecond stays as given (live entries first).
  return out.sort((x, y) => (y.at ?? -Infinity) - (x.at ?? -Infinity)).slice(0, CONNECTION_LOG_MAX);
}

const EMPTY: ChartData = [[], [], [], []];

export class MetricChart {
  data: ChartData = $state.raw(EMPTY);
  loading = $state(false);
  error: string | null = $state(null);
  /** Gap marks currently drawn. */
  gapMarks = $state(0);
  series: BucketSeries;
  drawnVersion = -1;

  constructor(
    public decl: MetricDeclaration,
    stepMs: number,
  ) {
    this.series = new BucketSeries(stepMs);
  }

  #drawnAt = -Infinity;

  /**
   * Publishes the series to the chart if it changed. A new reading only moves the last bucket, which is
   * about a pixel wide: over long ranges redrawing it 20 times a second shows nothing new, so a chart is
   * redrawn at most every stepMs / 8 (capped at 1 s; the live range at every frame). `force` draws now.
   */
  publish(now = 0, force = true): void {
    if (this.series.version === this.drawnVersion) return;
    const every = Math.min(1000, this.series.stepMs / 8);
    if (!force && now - this.#drawnAt < every) return;
    this.#drawnAt = now;
    this.drawnVersion = this.series.version;
    this.data = this.series.toData();
    this.gapMarks = this.series.gaps.length;
  }
}

export interface DeviceDeps {
  live: {
    subscribe(
      spec: SubscribeSpec,
      handler: {
        onEvent(e: LiveEvent, offset: number): void;
        onResult?(r: { recovered: boolean }, resumed: boolean): void;
        onError?(e: { code: string; message: string }): void;
      },
    ): { close(): void };
  };
  api: {
    device(id: string): Promise<Device>;
    /** The hub's connection history; optional so a view works against a hub without it. */
    connections?(id: string, limit: number): Promise<{ connections: ConnectionRecord[] }>;
    series(
      id: string,
      metric: string,
      q: { from: number; to: number; stepMs: number; agg: string },
    ): Promise<HistoryAnswer>;
  };
  frames: { schedule(fn: () => void): void };
  now?: () => number;
  timers?: { setInterval(fn: () => void, ms: number): unknown; clearInterval(h: unknown): void };
}

const charted = (m: MetricDeclaration): boolean => m.kind !== 'string';

export class DeviceState {
  device: Device | null = $state.raw(null);
  notFound = $state(false);
  error: string | null = $state(null);
  range: RangeSpec = $state.raw({ key: 'live' });
  charts: MetricChart[] = $state.raw([]);
  connectionLog: ConnectionEntry[] = $state.raw([]);
  /** True once the hub's stored connection history is merged in (else the log holds what this page saw). */
  historyLoaded = $state(false);
  historyError: string | null = $state(null);
  /** Readings the hub skipped for this view (coalesced while behind), refetched from history. */
  skipped = $state(0);
  /** Times the live channel could not recover what it missed. */
  gapsMarked = $state(0);
  lastReadingAt = $state(0);
  /** Latest value of every metric: the snapshot's, then each live reading's. */
  latest: Record<string, LatestValue> = $state.raw({});
  /** The time the charts end at (now for live ranges, moved every second). */
  windowEnd = $state(0);
  /** Chart width in pixels: the history is asked for about one bucket per pixel. */
  width = 800;

  window = $derived.by(() => {
    const r = this.range;
    if (r.key === 'custom') return { from: r.from ?? this.windowEnd - 3_600_000, to: r.to ?? this.windowEnd };
    return { from: this.windowEnd - RANGE_MS[r.key], to: this.windowEnd };
  });
  follows = $derived(this.range.key !== 'custom' || this.range.to === undefined);

  #readings: Reading[] = [];
  #control: LiveEvent[] = [];
  #snapshotGap = false;
  #backfillTimer: ReturnType<typeof setTimeout> | null = null;
  #loadToken = 0;
  #now: () => number;

  constructor(
    readonly deviceId: string,
    private readonly deps: DeviceDeps,
  ) {
    this.#now = deps.now ?? (() => Date.now());
    this.windowEnd = this.#now();
  }

  start(): () => void {
    const sub = this.deps.live.subscribe(
      { stream: 'device', devices: [this.deviceId] },
      {
        onEvent: (e) => this.receive(e),
        onError: (e) => {
          if (e.code === 'DEVICE_NOT_FOUND') this.notFound = true;
          else if (e.code !== 'NOT_CONNECTED') this.error = `${e.code}: ${e.message}`;
        },
      },
    );
    this.deps.api.device(this.deviceId).then(
      (d) => {
        if (!this.device) this.#setDevice(d, true);
      },
      (err: { status?: number; message: string }) => {
        if (err.status === 404) this.notFound = true;
        else if (!this.device) this.error = err.message;
      },
    );
    this.#loadConnections();
    const timers = this.deps.timers ?? {
      setInterval: (fn, ms) => setInterval(fn, ms),
      clearInterval: (h) => clearInterval(h as number),
    };
    const tick = timers.setInterval(() => this.tick(), 1000);
    return () => {
      timers.clearInterval(tick);
      if (this.#backfillTimer) clearTimeout(this.#backfillTimer);
      sub.close();
    };
  }

  /** Moves a following window to now and drops buckets that left it. */
  tick(): void {
    if (!this.follows) return;
    this.windowEnd = this.#now();
    const from = this.window.from;
    for (const c of this.charts) {
      c.series.trimBefore(from - c.series.stepMs);
      c.publish();
    }
  }

  /** The charts' width in pixels: when it differs much from what the history was asked for, ask again. */
  setWidth(px: number): void {
    if (!(px > 0) || Math.abs(px - this.width) / this.width < 0.3) return;
    this.width = px;
    if (this.charts.length > 0 && this.#stepMs() !== this.charts[0]!.series.stepMs) this.#rebuildCharts();
  }

  setRange(range: RangeSpec): void {
    this.range = range;
    this.windowEnd = range.key === 'custom' && range.to !== undefined ? range.to : this.#now();
    this.#rebuildCharts();
  }

  receive(e: LiveEvent): void {
    switch (e.kind) {
      case 'readings':
        if (e.deviceId !== this.deviceId) return;
        for (const r of e.readings) this.#readings.push(r);
        if (e.coalesced) {
          let n = 0;
          for (const k in e.coalesced) n += e.coalesced[k]!;
          if (n > 0) {
            this.skipped += n;
            this.#scheduleBackfill();
          }
        }
        break;
      case 'snapshot':
        if (e.gap) this.#snapshotGap = true;
        this.#control.push(e);
        break;
      case 'presence':
      case 'device':
      case 'added':
        this.#control.push(e);
        break;
      default:
        return;
    }
    this.deps.frames.schedule(this.flush);
  }

  flush = (): void => {
    for (const e of this.#control) {
      if (e.kind === 'snapshot' || e.kind === 'added') {
        const d = e.devices?.find((x) => x.id === this.deviceId);
        if (d) this.#setDevice(d, this.device === null);
      } else if (e.kind === 'presence' && e.deviceId === this.deviceId && this.device) {
        this.device = {
          ...this.device,
          presence: e.presence,
          ...(e.transport !== undefined ? { transport: e.transport } : {}),
        };
        this.#log(e.presence, e.transport);
      } else if (e.kind === 'device' && e.deviceId === this.deviceId) {
        if (e.device === null) this.notFound = true;
        else this.#setDevice(e.device, false);
      }
    }
    this.#control = [];
    let force = false;
    if (this.#snapshotGap) {
      force = true;
      // §6.2.3: what happened between the last reading and the snapshot is unknown here. Mark it, then ask
      // the history for it.
      this.#snapshotGap = false;
      const at = (this.lastReadingAt || this.#now()) + 1;
      for (const c of this.charts) c.series.markGap(at);
      this.gapsMarked++;
      this.#scheduleBackfill(0);
    }
    if (this.#readings.length > 0) {
      const to = this.range.key === 'custom' && this.range.to !== undefined ? this.range.to : Infinity;
      const byName = new Map(this.charts.map((c) => [c.decl.name, c]));
      let last = this.lastReadingAt;
      const latest = { ...this.latest };
      for (const r of this.#readings) {
        if (r.ts > last) last = r.ts;
        for (const name in r.values)
          if (!latest[name] || latest[name]!.ts <= r.ts) latest[name] = { ts: r.ts, value: r.values[name]! };
        if (r.ts > to) continue;
        for (const name in r.values) byName.get(name)?.series.add(r.ts, r.values[name]!);
      }
      this.#readings = [];
      this.lastReadingAt = last;
      this.latest = latest;
    }
    const now = this.#now();
    for (const c of this.charts) c.publish(now, force);
  };

  #log(p: Presence, transport?: string | null): void {
    const last = this.connectionLog[0];
    if (last && last.state === p.state && last.at === p.since) return;
    const entry = { at: p.since, state: p.state, reason: p.reason, transport: transport ?? null };
    this.connectionLog = mergeConnectionLog([entry], this.connectionLog);
  }

  /** Loads what the hub kept; live presence events that arrive meanwhile are merged, not lost. */
  #loadConnections(): void {
    const api = this.deps.api;
    if (!api.connections) return;
    api.connections(this.deviceId, CONNECTION_LOG_MAX).then(
      ({ connections }) => {
        const stored = connections.map((c) => ({
          at: c.at,
          state: c.event,
          reason: c.reason,
          transport: c.transport,
        }));
        // "never connected" (from the device's presence) is true only while the hub has no entry.
        const live = stored.length > 0 ? this.connectionLog.filter((e) => e.state !== 'never') : this.connectionLog;
        this.connectionLog = mergeConnectionLog(live, stored);
        this.historyLoaded = true;
        this.historyError = null;
      },
      (err: { status?: number; message: string }) => {
        if (err.status !== 404) this.historyError = err.message;
      },
    );
  }

  #setDevice(d: Device, first: boolean): void {
    const before = this.device;
    this.device = d;
    this.latest = { ...this.latest, ...d.latest };
    if (first || this.connectionLog.length === 0) this.#log(d.presence, d.transport);
    else if (before && (before.presence.state !== d.presence.state || before.presence.since !== d.presence.since))
      this.#log(d.presence, d.transport);
    const names = this.charts.map((c) => c.decl.name).join('\n');
    const next = d.metrics.filter(charted);
    if (next.map((m) => m.name).join('\n') !== names) this.#rebuildCharts();
    else for (const c of this.charts) c.decl = next.find((m) => m.name === c.decl.name) ?? c.decl;
  }

  #stepMs(): number {
    const w = this.window;
    return stepFor(w.to - w.from, Math.max(100, Math.min(4000, Math.round(this.width))));
  }

  #rebuildCharts(): void {
    const d = this.device;
    if (!d) return;
    const step = this.#stepMs();
    this.charts = d.metrics.filter(charted).map((m) => new MetricChart(m, step));
    void this.#loadHistory();
  }

  #scheduleBackfill(delayMs = 2000): void {
    if (this.#backfillTimer) return;
    this.#backfillTimer = setTimeout(() => {
      this.#backfillTimer = null;
      void this.#loadHistory();
    }, delayMs);
  }

  /** Fetches min, mean and max for every chart over the window and joins them at now (the seam). */
  async #loadHistory(): Promise<void> {
    const token = ++this.#loadToken;
    const charts = this.charts;
    const w = this.window;
    const seam = Math.min(this.#now(), w.to);
    await Promise.all(
      charts.map(async (c) => {
        const step = c.series.stepMs;
        const from = Math.floor(w.from / step) * step;
        const to = Math.max(from + step, seam);
        c.loading = true;
        const ask = (agg: string): Promise<HistoryAnswer | null> =>
          this.deps.api.series(this.deviceId, c.decl.name, { from, to, stepMs: step, agg }).catch((err: Error) => {
            c.error = err.message;
            return null;
          });
        const [min, mean, max] = await Promise.all([ask('min'), ask('mean'), ask('max')]);
        let fallback: HistoryAnswer | null = null;
        if (!min && !mean && !max) fallback = await ask('last');
        if (token !== this.#loadToken) return;
        c.loading = false;
        if (min || mean || max || fallback) c.error = null;
        c.series.setHistory({ min: min?.points, mean: (mean ?? fallback)?.points, max: max?.points }, to);
        c.series.resolveGaps(from, to);
        c.publish();
      }),
    );
  }
}
