/**
 * One stream's events (docs/live.md §4.1, §6.2): an epoch, offsets that grow by one per event, and a bounded
 * window of recent events for resume. Each event is serialised once, when it is appended; every client sends
 * those same bytes, and the window keeps only them.
 */
import { randomBytes } from 'node:crypto';
import type { ScalarValue } from '../storage/types.js';
import type { StreamName } from './protocol.js';

export interface LatestValue {
  ts: number;
  value: ScalarValue;
}

/** One reading as the device stream carries it (§5.2.1). */
export interface LiveReading {
  seq: number;
  ts: number;
  values: Record<string, ScalarValue>;
}

export type EventKind = 'presence' | 'device' | 'values' | 'counters' | 'readings' | 'command' | 'health';

export interface LiveEvent {
  /** Set by StreamLog.append. */
  offset: number;
  /** Hub time it was appended (window age). */
  at: number;
  kind: EventKind;
  /** Control events are never coalesced (§4.1.2). */
  control: boolean;
  /** The device it is about, for device filters; null for health. */
  deviceId: string | null;
  /** Coalescing key within the subscription (§6.1): latest wins per key. */
  key: string;
  /** The `event` object of the message, serialised once. */
  body: string;
  /** device stream: the readings, for metric subsets and coalescing. */
  readings?: readonly LiveReading[];
  /** fleet `values`: the latest values it carries, for coalescing. */
  latest?: Readonly<Record<string, LatestValue>>;
  /** Bodies for metric subsets of this event, made once per distinct subset (null: nothing of the subset). */
  subsets?: Map<string, string | null>;
  /**
   * The event's element of an `events` message as UTF-8 (`{"offset":N,"event":BODY}`, docs/live.md §3.6), made
   * for the first client and reused by every client that sends it with the same offset; dropped once the
   * fan-out is done (clients keep their own reference until their batch is sent).
   */
  item?: { offset: number; data: Buffer } | undefined;
}

/** A new event (offset and time are set by StreamLog.append); one shape for every event, for the fan-out's sake. */
export function liveEvent(
  kind: EventKind,
  control: boolean,
  deviceId: string | null,
  key: string,
  body: string,
  readings?: readonly LiveReading[],
  latest?: Readonly<Record<string, LatestValue>>,
): LiveEvent {
  return {
    offset: 0,
    at: 0,
    kind,
    control,
    deviceId,
    key,
    body,
    readings,
    latest,
    subsets: undefined,
    item: undefined,
  };
}

export interface StreamWindow {
  maxEvents: number;
  maxBytes: number;
  maxAgeMs: number;
}

export const DEFAULT_WINDOWS: Readonly<Record<StreamName, StreamWindow>> = Object.freeze({
  device: { maxEvents: 100_000, maxBytes: 16 * 1024 * 1024, maxAgeMs: 120_000 },
  fleet: { maxEvents: 20_000, maxBytes: 8 * 1024 * 1024, maxAgeMs: 120_000 },
  commands: { maxEvents: 5_000, maxBytes: 6 * 1024 * 1024, maxAgeMs: 120_000 },
  health: { maxEvents: 100, maxBytes: 256 * 1024, maxAgeMs: 120_000 },
});

/**
 * An event read back from the window for a replay (§6.2.2). The window keeps each event's body and a few
 * shared strings, not its objects; a replayed `readings` or `values` event parses its body again when a
 * subscription needs the readings (a metric subset, coalescing) or the latest values.
 */
class WindowEvent implements LiveEvent {
  subsets?: Map<string, string | null>;
  item?: { offset: number; data: Buffer } | undefined;
  private parsed: { readings?: LiveReading[]; latest?: Record<string, LatestValue> } | null = null;

  constructor(
    public offset: number,
    public at: number,
    readonly kind: EventKind,
    readonly control: boolean,
    readonly deviceId: string | null,
    readonly key: string,
    readonly body: string,
  ) {}

  get readings(): readonly LiveReading[] | undefined {
    return this.kind === 'readings' ? this.parse().readings : undefined;
  }

  get latest(): Readonly<Record<string, LatestValue>> | undefined {
    return this.kind === 'values' ? this.parse().latest : undefined;
  }

  private parse(): { readings?: LiveReading[]; latest?: Record<string, LatestValue> } {
    this.parsed ??= JSON.parse(this.body) as { readings?: LiveReading[]; latest?: Record<string, LatestValue> };
    return this.parsed;
  }
}

/** Accounted bytes per event beside its body (the columns' slots). */
const SLOT_BYTES = 64;

export class StreamLog {
  /** New at every start of the hub (§4.1.1): offsets of another run cannot be resumed. */
  readonly epoch: string;
  /** Offset of the newest event; 0 before the first. */
  head = 0;
  /*
   * The window as columns, oldest at `start`: an event costs its body string and a slot in each array (kind,
   * device id and key are shared strings), not the objects it was made from. Events stay in the window for
   * up to minutes: kept as objects they outlive the young generation and cost the GC most of the fan-out.
   */
  private bodies: Array<string | undefined> = [];
  private ats: number[] = [];
  private kinds: EventKind[] = [];
  private controls: boolean[] = [];
  private deviceIds: Array<string | null> = [];
  private keys: string[] = [];
  private start = 0;
  private bytes = 0;
  /** Whether a subscription to this stream exists (its client may resume it later). */
  private watched = false;
  /** When the last subscription ended; -Infinity: none has come since the hub started. */
  private unwatchedAt = Number.NEGATIVE_INFINITY;

  constructor(
    readonly name: StreamName,
    private readonly window: StreamWindow,
    private readonly now: () => number,
  ) {
    this.epoch = randomBytes(6).toString('base64url');
  }

  /** Gives the event its offset and time and keeps its body (serialised now, if not yet) in the window. */
  append(ev: LiveEvent): LiveEvent {
    ev.offset = ++this.head;
    const at = this.now();
    ev.at = at;
    const body = ev.body;
    this.bodies.push(body);
    this.ats.push(at);
    this.kinds.push(ev.kind);
    this.controls.push(ev.control);
    this.deviceIds.push(ev.deviceId);
    this.keys.push(ev.key);
    this.bytes += body.length + SLOT_BYTES;
    this.trim(at);
    return ev;
  }

  /** A subscription to this stream began (true), or the last one ended (false). */
  setWatched(watched: boolean): void {
    if (this.watched && !watched) this.unwatchedAt = this.now();
    this.watched = watched;
  }

  /**
   * True while no client subscribes to this stream and none did for the window's age: nobody could receive
   * this stream's events or resume past them (a resume needs an offset a subscription of this run saw, and the
   * window would have aged out everything since). Events then only take an offset (skip()), so a hub with no
   * dashboard open, or dashboards showing only the fleet, neither serialises nor keeps every reading.
   */
  get idle(): boolean {
    return !this.watched && this.now() - this.unwatchedAt > this.window.maxAgeMs;
  }

  /** An event nobody can see (idle): it takes the next offset and the window empties, so no resume crosses it. */
  skip(): void {
    this.head++;
    if (this.size === 0) return;
    this.bodies = [];
    this.ats = [];
    this.kinds = [];
    this.controls = [];
    this.deviceIds = [];
    this.keys = [];
    this.start = 0;
    this.bytes = 0;
  }

  get size(): number {
    return this.bodies.length - this.start;
  }

  get retainedBytes(): number {
    return this.bytes;
  }

  /** §6.2.2: true when every event after `offset` of this epoch is still in the window. */
  canResume(epoch: string, offset: number): boolean {
    if (epoch !== this.epoch || offset > this.head) return false;
    this.trim(this.now());
    const oldest = this.head - this.size + 1;
    return offset >= oldest - 1;
  }

  /** Events after `offset`, oldest first (call canResume first). */
  *since(offset: number): Generator<LiveEvent> {
    const first = this.head - this.size + 1;
    for (let i = this.start + Math.max(0, offset + 1 - first); i < this.bodies.length; i++) {
      yield new WindowEvent(
        first + (i - this.start),
        this.ats[i]!,
        this.kinds[i]!,
        this.controls[i]!,
        this.deviceIds[i]!,
        this.keys[i]!,
        this.bodies[i]!,
      );
    }
  }

  private trim(now: number): void {
    const w = this.window;
    while (this.size > 0) {
      const i = this.start;
      if (this.size <= w.maxEvents && this.bytes <= w.maxBytes && now - this.ats[i]! <= w.maxAgeMs) break;
      this.bytes -= this.bodies[i]!.length + SLOT_BYTES;
      this.bodies[i] = undefined;
      this.start++;
    }
    if (this.start > 1024 && this.start * 2 > this.bodies.length) {
      const from = this.start;
      this.bodies = this.bodies.slice(from);
      this.ats = this.ats.slice(from);
      this.kinds = this.kinds.slice(from);
      this.controls = this.controls.slice(from);
      this.deviceIds = this.deviceIds.slice(from);
      this.keys = this.keys.slice(from);
      this.start = 0;
    }
  }
}
