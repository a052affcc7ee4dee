/**
 * One stream's events (docs/live.md §4.1, §6.2): an epoch, offsets that grow by one per event, and a bounded
 * window of recent events for resume. Each event is serialised once, when it is made; every client sends
 * those same bytes.
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
  /** Estimated bytes for the window's accounting (default: the body's length). */
  size?: number;
  /**
   * The event's element of an `events` message as UTF-8 (`{"offset":N,"event":BODY}`, docs/live.md §3.6), made
   * for the first client and reused by every client that sends it with the same offset; dropped once the
   * fan-out is done (clients keep their own reference until their batch is sent).
   */
  item?: { offset: number; data: Buffer } | undefined;
}

/** An event whose body is serialised on first use: events no client receives now are serialised only if replayed. */
export function lazyEvent(fields: Omit<LiveEvent, 'body' | 'offset' | 'at'>, payload: object): LiveEvent {
  let body: string | null = null;
  return {
    offset: 0,
    at: 0,
    ...fields,
    get body(): string {
      body ??= JSON.stringify(payload);
      return body;
    },
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

export class StreamLog {
  /** New at every start of the hub (§4.1.1): offsets of another run cannot be resumed. */
  readonly epoch: string;
  /** Offset of the newest event; 0 before the first. */
  head = 0;
  private events: Array<LiveEvent | undefined> = [];
  private start = 0;
  private bytes = 0;

  constructor(
    readonly name: StreamName,
    private readonly window: StreamWindow,
    private readonly now: () => number,
  ) {
    this.epoch = randomBytes(6).toString('base64url');
  }

  append(ev: LiveEvent): LiveEvent {
    ev.offset = ++this.head;
    ev.at = this.now();
    this.events.push(ev);
    this.bytes += (ev.size ?? ev.body.length) + 64;
    this.trim(ev.at);
    return ev;
  }

  get size(): number {
    return this.events.length - this.start;
  }

  get retainedBytes(): number {
    return this.bytes;
  }

  /** §6.2.2: true when every event after `offset` of this epoch is still in the window. */
  canResume(epoch: string, offset: number): boolean {
    if (epoch !== this.epoch || offset > this.head) return false;
    this.trim(this.now());
    const oldest = this.size > 0 ? this.events[this.start]!.offset : this.head + 1;
    return offset >= oldest - 1;
  }

  /** Events after `offset`, oldest first (call canResume first). */
  *since(offset: number): Generator<LiveEvent> {
    if (this.size === 0) return;
    const first = this.events[this.start]!.offset;
    for (let i = this.start + Math.max(0, offset + 1 - first); i < this.events.length; i++) yield this.events[i]!;
  }

  private trim(now: number): void {
    const w = this.window;
    while (this.size > 0) {
      const oldest = this.events[this.start]!;
      if (this.size <= w.maxEvents && this.bytes <= w.maxBytes && now - oldest.at <= w.maxAgeMs) break;
      this.bytes -= (oldest.size ?? oldest.body.length) + 64;
      this.events[this.start++] = undefined;
    }
    if (this.start > 1024 && this.start * 2 > this.events.length) {
      this.events = this.events.slice(this.start);
      this.start = 0;
    }
  }
}
