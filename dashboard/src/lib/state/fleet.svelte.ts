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
import { createSubscriber } from 'svelte/reactivity';
import { DEFAULT_QUERY, facets, selectRows, type FleetQuery } from '../fleet-view.js';
import type { LiveEvent, SubscribeSpec } from '../live/protocol.js';
import type { Device, LatestValue, MetricDeclaration, Presence } from '../types.js';

export class DeviceRow {
  readonly id: string;
  name = $state('');
  model = $state('');
  labels: Record<string, string> = $state.raw({});
  transport: string | null = $state(null);
  disabled = $state(false);
  presence: Presence = $state.raw({ state: 'never', reason: null, since: 0 });
  metrics: MetricDeclaration[] = $state.raw([]);
  latest: Record<string, LatestValue> = $state.raw({});
  rejected = $state(0);
  dropped = $state(0);

  constructor(d: Device) {
    this.id = d.id;
    this.apply(d);
  }

  apply(d: Device): void {
    this.name = d.name ?? d.id;
    this.model = d.model ?? '';
    this.labels = d.labels ?? {};
    this.transport = d.transport ?? null;
    this.disabled = d.disabled ?? false;
    this.presence = d.presence ?? { state: 'never', reason: null, since: 0 };
    this.metrics = d.metrics ?? [];
    this.latest = d.latest ?? {};
    this.rejected = d.rejected ?? 0;
    this.dropped = d.dropped ?? 0;
  }

  unitOf(metric: string): MetricDeclaration | undefined {
    return this.metrics.find((m) => m.name === metric);
  }
}

export interface FleetDeps {
  live: {
    subscribe(spec: SubscribeSpec, handler: { onEvent(e: LiveEvent, offset: number): void; onError?(e: { code: string; message: string }): void }): { close(): void };
    readonly status: { state: string };
  };
  loadDevices(): Promise<Device[]>;
  frames: { schedule(fn: () => void): void };
  timers?: { setInterval(fn: () => void, ms: number): unknown; clearInterval(h: unknown): void };
  /** HTTP refresh period while the live channel is not live. */
  pollMs?: number;
}

type PendingCounters = { rejected?: number; dropped?: number };

export class FleetState {
  #rows: DeviceRow[] = $state.raw([]);
  /** Set once the first snapshot or HTTP list arrived. */
  loaded = $state(false);
  error: string | null = $state(null);
  /** Where the rows came from last: the live channel or an HTTP fallback. */
  source: 'live' | 'http' | null = $state(null);
  query: FleetQuery = $state({ ...DEFAULT_QUERY });

  visible = $derived.by(() => selectRows(this.rows, this.query));
  facets = $derived.by(() => facets(this.rows));
  counts = $derived.by(() => {
    let online = 0;
    let offline = 0;
    let never = 0;
    for (const r of this.rows) {
      if (r.presence.state === 'online') online++;
      else if (r.presence.state === 'offline') offline++;
      else never++;
    }
    return { total: this.rows.length, online, offline, never };
  });

  #byId = new Map<string, DeviceRow>();
  #values = new Map<string, Record<string, LatestValue>>();
  #counters = new Map<string, PendingCounters>();
  /** Presence and registry events, in order (control: never coalesced). */
  #control: LiveEvent[] = [];
  #snapshot: Device[] | null = null;
  #deps: FleetDeps;
  #subscribe: () => void;

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
    const sub = this.#deps.live.subscribe(
      { stream: 'fleet' },
      {
        onEvent: (e) => this.receive(e),
        onError: (e) => {
          if (e.code !== 'NOT_CONNECTED') this.error = `${e.code}: ${e.message}`;
        },
      },
    );
    const timers = this.#deps.timers ?? { setInterval: (fn, ms) => setInterval(fn, ms), clearInterval: (h) => clearInterval(h as number) };
    const poll = (): void => {
      if (this.#deps.live.status.state === 'live' && this.source === 'live') return;
      this.#deps.loadDevices().then(
        (devices) => {
          // A live snapshot that arrived meanwhile wins.
          if (this.source === 'live' && this.#deps.live.status.state === 'live') return;
          this.#replace(devices);
          this.source = 'http';
          this.loaded = true;
          this.error = null;
        },
        (err: Error) => {
          if (!this.loaded) this.error = err.message;
        },
      );
    };
    const first = setTimeout(poll, 1500);
    const timer = timers.setInterval(poll, this.#deps.pollMs ?? 5000);
    return () => {
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
        this.#snapshot = e.devices ?? [];
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
      this.#replace(this.#snapshot);
      this.#snapshot = null;
      this.source = 'live';
      this.loaded = true;
      this.error = null;
    }
    let structural = false;
    for (const e of this.#control) {
      if (e.kind === 'presence') {
        const row = this.#byId.get(e.deviceId);
        if (!row) continue;
        row.presence = e.presence;
        if (e.transport !== undefined) row.transport = e.transport;
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
    this.#control = [];
    for (const [id, latest] of this.#values) {
      const row = this.#byId.get(id);
      if (row) row.latest = { ...row.latest, ...latest };
    }
    this.#values.clear();
    for (const [id, c] of this.#counters) {
      const row = this.#byId.get(id);
      if (!row) continue;
      if (c.rejected !== undefined) row.rejected = c.rejected;
      if (c.dropped !== undefined) row.dropped = c.dropped;
    }
    this.#counters.clear();
    if (structural) this.#rows = [...this.#byId.values()];
  };

  #replace(devices: Device[]): void {
    const next = new Map<string, DeviceRow>();
    for (const d of devices) {
      const row = this.#byId.get(d.id);
      if (row) row.apply(d);
      next.set(d.id, row ?? new DeviceRow(d));
    }
    this.#byId = next;
    this.#rows = [...next.values()];
  }

  setQuery(patch: Partial<FleetQuery>): void {
    this.query = { ...this.query, ...patch };
  }
}
