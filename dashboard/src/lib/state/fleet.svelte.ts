/**
 * The fleet: every device with presence, latest values and counters, from the live channel's `fleet`
 * stream (docs/live.md §5.1), with search, filters and sort.
 *
 * Each device is a DeviceRow with its own `$state` fields, so a value that changes re-renders that row's
 * cells only (and only when the row is on screen: the list is virtualised). Live events are buffered in
 * plain Maps (latest wins per device) and applied once per animation frame. A snapshot REPLACES the rows
 * (§5.4.1): a device missing from it disappears.
 *
 * While the live channel is not connected the list is loaded (and refreshed) over HTTP, so the page is
 * still useful; the connection indicator says it is not live.
 */
import { untrack } from 'svelte';
import { createSubscriber } from 'svelte/reactivity';
import { DEFAULT_QUERY, facets, selectRows, type FleetQuery } from '../fleet-view.js';
import type { LiveEvent, SubscribeSpec } from '../live/protocol.js';
import type { Device, LatestValue, MetricDeclaration, Presence } from '../types.js';

/** What a row shows apart from its values: changes rarely (presence, registry changes, counters). */
interface RowMeta {
  name: string;
  model: string;
  labels: Record<string, string>;
  transport: string | null;
  disabled: boolean;
  presence: Presence;
  metrics: MetricDeclaration[];
  rejected: number;
  dropped: number;
}

function metaOf(d: Device): RowMeta {
  return {
    name: d.name ?? d.id,
    model: d.model ?? '',
    labels: d.labels ?? {},
    transport: d.transport ?? null,
    disabled: d.disabled ?? false,
    presence: d.presence ?? { state: 'never', reason: null, since: 0 },
    metrics: d.metrics ?? [],
    rejected: d.rejected ?? 0,
    dropped: d.dropped ?? 0,
  };
}

/**
 * One device of the fleet. Two signals: `meta` (what filters and sorting read) and `latest` (the values,
 * read only by the row's cells), so a stream of values never re-runs the filter and sort over the fleet,
 * and ten thousand rows cost twenty thousand signals, not a hundred thousand.
 */
export class DeviceRow {
  readonly id: string;
  // Signals made in the constructor with their first value (no write to a fresh signal per field: for a snapshot
  // of 10 000 devices those writes were a good part of building the rows).
  declare meta: RowMeta;
  declare latest: Record<string, LatestValue>;

  constructor(d: Device) {
    this.id = d.id;
    this.meta = $state.raw(metaOf(d));
    this.latest = $state.raw(d.latest ?? {});
  }

  apply(d: Device): void {
    this.meta = metaOf(d);
    this.latest = d.latest ?? {};
  }

  patch(p: Partial<RowMeta>): void {
    this.meta = { ...this.meta, ...p };
  }

  get name(): string {
    return this.meta.name;
  }
  get model(): string {
    return this.meta.model;
  }
  get labels(): Record<string, string> {
    return this.meta.labels;
  }
  get transport(): string | null {
    return this.meta.transport;
  }
  get disabled(): boolean {
    return this.meta.disabled;
  }
  get presence(): Presence {
    return this.meta.presence;
  }
  get metrics(): MetricDeclaration[] {
    return this.meta.metrics;
  }
  get rejected(): number {
    return this.meta.rejected;
  }
  get dropped(): number {
    return this.meta.dropped;
  }

  unitOf(metric: string): MetricDeclaration | undefined {
    return this.meta.metrics.find((m) => m.name === metric);
  }
}

export interface FleetDeps {
  live: {
    subscribe(
      spec: SubscribeSpec,
      handler: { onEvent(e: LiveEvent, offset: number): void; onError?(e: { code: string; message: string }): void },
    ): { close(): void };
    readonly status: { state: string };
  };
  loadDevices(): Promise<Device[]>;
  frames: { schedule(fn: () => void): void };
  timers?: { setInterval(fn: () => void, ms: number): unknown; clearInterval(h: unknown): void };
  /** HTTP refresh period while the live channel is not live. */
  pollMs?: number;
  /**
   * Values and counters are shown at most this often (default 250 ms): a person cannot read a list that changes
   * 60 times a second, and every change costs a repaint. Presence and registry changes are shown at once.
   */
  valuesEveryMs?: number;
  now?: () => number;
}

/** Rows built per frame from a snapshot (about 10 ms of work in Chromium on a slow machine). */
const SNAPSHOT_ROWS_PER_FRAME = 2500;

/** Devices whose buffered values are shown per frame (about the values of a quarter second of 10 000 devices). */
const VALUES_PER_FRAME = 2500;

type PendingCounters = { rejected?: number; dropped?: number };

interface Building {
  devices: Device[];
  index: number;
  next: Map<string, DeviceRow>;
  source: 'live' | 'http';
  /** The new rows in order, once every slice is built. */
  rows: DeviceRow[] | null;
}

type Counts = { total: number; online: number; offline: number; never: number };

interface Prepared {
  rows: DeviceRow[];
  version: number;
  facets: { models: string[]; labels: string[] };
  counts: Counts;
  query?: FleetQuery;
  visible?: DeviceRow[];
}

function countRows(rows: readonly DeviceRow[]): Counts {
  let online = 0;
  let offline = 0;
  let never = 0;
  for (const r of rows) {
    const state = r.presence.state;
    if (state === 'online') online++;
    else if (state === 'offline') offline++;
    else never++;
  }
  return { total: rows.length, online, offline, never };
}

function sameQuery(a: FleetQuery | undefined, b: FleetQuery): boolean {
  return (
    a !== undefined &&
    a.text === b.text &&
    a.presence === b.presence &&
    a.model === b.model &&
    a.label === b.label &&
    a.sort === b.sort &&
    a.descending === b.descending
  );
}

export class FleetState {
  #rows: DeviceRow[] = $state.raw([]);
  /** Set once the first snapshot or HTTP list arrived. */
  loaded = $state(false);
  error: string | null = $state(null);
  /** Where the rows came from last: the live channel or an HTTP fallback. */
  source: 'live' | 'http' | null = $state(null);
  query: FleetQuery = $state({ ...DEFAULT_QUERY });
  /** True while the fleet is followed (the fleet view is open); otherwise the rows are as they were left. */
  following = $state(false);

  /**
   * Bumped whenever a row's meta changes (presence, registry changes, counters). The list's derivations read the
   * rows' meta untracked and depend on this one signal instead of on one signal per row: ten thousand rows made
   * each of them register (and later check) ten thousand dependencies, tens of ms in the frame that first
   * shows the fleet.
   */
  #metaVersion = $state(0);

  /**
   * What the facets (the filter menus) show: the rows, except while a snapshot is swapped in, when it is the new
   * rows one frame early (their menus are built in a frame of their own, not in the one that first shows the rows).
   */
  #facetRows: DeviceRow[] = $state.raw([]);
  /**
   * The derivations of a snapshot's rows, computed a step per frame before the swap (the frame that first shows
   * 10 000 rows only mounts them); used while rows, meta version and query are still the ones they were made for.
   */
  #prepared: Prepared | null = null;

  visible = $derived.by(() => {
    const rows = this.rows;
    const q = { ...this.query };
    const version = this.#metaVersion;
    return untrack(() => {
      const p = this.#prepared;
      if (p?.visible && p.rows === rows && p.version === version && sameQuery(p.query, q)) return p.visible;
      return selectRows(rows, q);
    });
  });
  facets = $derived.by(() => {
    const rows = this.#facetRows;
    const version = this.#metaVersion;
    return untrack(() => {
      const p = this.#prepared;
      if (p && p.rows === rows && p.version === version) return p.facets;
      return facets(rows);
    });
  });
  counts = $derived.by(() => {
    const rows = this.rows;
    const version = this.#metaVersion;
    return untrack(() => {
      const p = this.#prepared;
      if (p && p.rows === rows && p.version === version) return p.counts;
      return countRows(rows);
    });
  });

  #byId = new Map<string, DeviceRow>();
  #values = new Map<string, Record<string, LatestValue>>();
  #counters = new Map<string, PendingCounters>();
  /** Presence and registry events, in order (control: never coalesced). */
  #control: LiveEvent[] = [];
  #snapshot: Device[] | null = null;
  #snapshotSource: 'live' | 'http' = 'live';
  #valuesAt = -Infinity;
  #building: Building | null = null;
  #deps: FleetDeps;
  #subscribe: () => void;
  /** The hub refused the fleet subscription: the list comes over HTTP even while the channel is up. */
  #liveRefused = false;

  constructor(deps: FleetDeps) {
    this.#deps = deps;
    this.#subscribe = createSubscriber(() => this.start());
  }

  /** The rows (reading them in a component starts the subscription, and its end stops it). */
  get rows(): DeviceRow[] {
    this.#subscribe();
    return this.#rows;
  }

  get(id: string): DeviceRow | undefined {
    return this.#byId.get(id);
  }

  /** Subscribes to the fleet stream; returns the stop function. */
  start(): () => void {
    this.following = true;
    const sub = this.#deps.live.subscribe(
      { stream: 'fleet' },
      {
        onEvent: (e) => this.receive(e),
        onError: (e) => {
          if (e.code === 'NOT_CONNECTED') return;
          this.error = `${e.code}: ${e.message}`;
          this.#liveRefused = true;
        },
      },
    );
    const timers = this.#deps.timers ?? {
      setInterval: (fn, ms) => setInterval(fn, ms),
      clearInterval: (h) => clearInterval(h as number),
    };
    const poll = (): void => {
      // While the channel is up, its snapshot is on the way (10 000 devices can take seconds to arrive on a busy
      // machine): fetching the same list over HTTP too would parse it twice, a long task for nothing.
      const state = this.#deps.live.status.state;
      if ((state === 'live' || state === 'stale') && !this.#liveRefused) return;
      this.#deps.loadDevices().then(
        (devices) => {
          // A live snapshot that arrived meanwhile wins.
          if (this.source === 'live' && this.#deps.live.status.state === 'live') return;
          // Applied like a live snapshot: a slice per frame, swapped in whole.
          this.#snapshot = devices;
          this.#snapshotSource = 'http';
          this.#deps.frames.schedule(this.flush);
        },
        (err: Error) => {
          if (!this.loaded) this.error = err.message;
        },
      );
    };
    const first = setTimeout(poll, 1500);
    const timer = timers.setInterval(poll, this.#deps.pollMs ?? 5000);
    return () => {
      this.following = false;
      clearTimeout(first);
      timers.clearInterval(timer);
      sub.close();
    };
  }

  /** A live event: buffered, applied at the next frame. */
  receive(e: LiveEvent): void {
    switch (e.kind) {
      case 'snapshot':
        // Replaces everything, including what is still buffered from before it.
        this.#liveRefused = false;
        this.#snapshot = e.devices ?? [];
        this.#snapshotSource = 'live';
        this.#building = null;
        this.#values.clear();
        this.#counters.clear();
        this.#control = [];
        break;
      case 'values': {
        const cur = this.#values.get(e.deviceId);
        this.#values.set(e.deviceId, cur ? Object.assign(cur, e.latest) : { ...e.latest });
        break;
      }
      case 'counters': {
        const cur = this.#counters.get(e.deviceId) ?? {};
        if (e.rejected !== undefined) cur.rejected = e.rejected;
        if (e.dropped !== undefined) cur.dropped = e.dropped;
        this.#counters.set(e.deviceId, cur);
        break;
      }
      case 'presence':
      case 'device':
      case 'added':
        this.#control.push(e);
        break;
      case 'resync':
        // A snapshot follows (§7.4.2).
        break;
      default:
        return;
    }
    this.#deps.frames.schedule(this.flush);
  }

  /** Applies what was buffered (once per frame). */
  flush = (): void => {
    if (this.#snapshot) {
      this.#building = { devices: this.#snapshot, index: 0, next: new Map(), source: this.#snapshotSource, rows: null };
      this.#snapshot = null;
    }
    if (this.#building) {
      // Events that came meanwhile stay buffered until the swap, then apply to the new rows.
      if (!this.#buildStep(this.#building)) {
        this.#deps.frames.schedule(this.flush);
        return;
      }
      this.#building = null;
      // After a prepared swap, what is buffered waits a frame more (applying it now would outdate what was
      // prepared, and compute it all again in this frame); after a small snapshot it applies at once.
      if (this.#prepared) {
        if (this.#control.length > 0 || this.#values.size > 0 || this.#counters.size > 0)
          this.#deps.frames.schedule(this.flush);
        return;
      }
    }
    const structural = this.#applyControl();
    if (this.#values.size > 0 || this.#counters.size > 0) {
      const now = (this.#deps.now ?? performance.now.bind(performance))();
      if (now - this.#valuesAt < (this.#deps.valuesEveryMs ?? 250)) this.#deps.frames.schedule(this.flush);
      else {
        this.#valuesAt = now;
        this.#applyValues();
      }
    }
    if (structural) this.#setRows([...this.#byId.values()]);
  };

  /**
   * One frame's step of a snapshot: a slice of rows, then the counts and facets of the new rows (shown in the
   * filter menus from then on), then the visible rows, then the swap. Returns true once swapped. A small
   * snapshot (one slice) is swapped in the same frame, with nothing prepared.
   */
  #buildStep(b: Building): boolean {
    if (b.index < b.devices.length) {
      const end = Math.min(b.devices.length, b.index + SNAPSHOT_ROWS_PER_FRAME);
      for (; b.index < end; b.index++) {
        const d = b.devices[b.index]!;
        const row = this.#byId.get(d.id);
        if (row) row.apply(d);
        b.next.set(d.id, row ?? new DeviceRow(d));
      }
      if (b.index < b.devices.length) return false;
      if (b.devices.length <= SNAPSHOT_ROWS_PER_FRAME) {
        this.#swap(b, [...b.next.values()]);
        return true;
      }
      return false;
    }
    if (!b.rows) {
      // Its meta may still change (a row shared with the old state): the version says whether this still holds.
      b.rows = [...b.next.values()];
      this.#prepared = { rows: b.rows, version: this.#metaVersion, facets: facets(b.rows), counts: countRows(b.rows) };
      this.#facetRows = b.rows;
      return false;
    }
    const p = this.#prepared;
    if (p && p.rows === b.rows && !p.visible) {
      p.query = { ...this.query };
      p.visible = selectRows(b.rows, p.query);
      return false;
    }
    this.#swap(b, b.rows);
    return true;
  }

  #swap(b: Building, rows: DeviceRow[]): void {
    this.#byId = b.next;
    this.#setRows(rows);
    this.source = b.source;
    this.loaded = true;
    this.error = null;
  }

  #setRows(rows: DeviceRow[]): void {
    if (this.#prepared && this.#prepared.rows !== rows) this.#prepared = null;
    this.#rows = rows;
    this.#facetRows = rows;
  }

  /** Presence and registry events, in order. Returns whether rows were added or removed. */
  #applyControl(): boolean {
    let structural = false;
    for (const e of this.#control) {
      if (e.kind === 'presence') {
        const row = this.#byId.get(e.deviceId);
        if (!row) continue;
        row.patch(
          e.transport !== undefined ? { presence: e.presence, transport: e.transport } : { presence: e.presence },
        );
      } else if (e.kind === 'device') {
        const row = this.#byId.get(e.deviceId);
        if (e.device === null) {
          if (row) {
            this.#byId.delete(e.deviceId);
            structural = true;
          }
        } else if (row) {
          row.apply(e.device);
        } else {
          this.#byId.set(e.deviceId, new DeviceRow(e.device));
          structural = true;
        }
      } else if (e.kind === 'added') {
        for (const d of e.devices) {
          const row = this.#byId.get(d.id);
          if (row) row.apply(d);
          else {
            this.#byId.set(d.id, new DeviceRow(d));
            structural = true;
          }
        }
      }
    }
    if (this.#control.length > 0) this.#metaVersion++;
    this.#control = [];
    return structural;
  }

  /**
   * Values and counters buffered since they were last shown. At most VALUES_PER_FRAME devices' values per frame:
   * the rest stay buffered (latest wins) for the next frame, so a burst (a second of values for ten thousand
   * devices held while a snapshot was built) is not one long task.
   */
  #applyValues(): void {
    let n = 0;
    for (const [id, latest] of this.#values) {
      if (n++ === VALUES_PER_FRAME) break;
      const row = this.#byId.get(id);
      if (row) row.latest = { ...row.latest, ...latest };
      this.#values.delete(id);
    }
    if (this.#values.size > 0) {
      // The rest at the next frame, not a period later.
      this.#valuesAt = Number.NEGATIVE_INFINITY;
      this.#deps.frames.schedule(this.flush);
    }
    for (const [id, c] of this.#counters) {
      const row = this.#byId.get(id);
      if (!row) continue;
      row.patch(c);
    }
    if (this.#counters.size > 0) this.#metaVersion++;
    this.#counters.clear();
  }

  setQuery(patch: Partial<FleetQuery>): void {
    this.query = { ...this.query, ...patch };
  }
}
