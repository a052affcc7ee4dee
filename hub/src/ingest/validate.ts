/**
 * Validation of readings against a device's HELLO declarations (protocol §7.1). Transport-independent:
 * the WebSocket channel uses it, and so can any bridge that feeds readings into the hub.
 */
import type { MetricDeclaration, MetricKind, Reading } from '@tendril/device-sdk/codec';
import type { StoredValue } from '../storage/types.js';

import type { ValidationCode } from './types.js';

export type { ValidationCode };

/** §7.1: timestamps before 2000-01-01T00:00:00Z are rejected. */
export const EARLIEST_TIMESTAMP = 946_684_800_000;
/** §7.1: timestamps more than 1 h ahead of the hub's clock are rejected. */
export const MAX_CLOCK_AHEAD_MS = 3_600_000;

interface CompiledMetric {
  name: string;
  kind: MetricKind;
  numeric: boolean;
  float: boolean;
  min: number;
  max: number;
  /** Index into the duplicate-detection stamps. */
  slot: number;
}

/** Receives each rejection: `alias` null means the whole reading (timestamp). */
export interface RejectionSink {
  rejectValue(code: ValidationCode, seq: number, alias: number | null, message: string): void;
}

/** The declarations of one HELLO, compiled for fast per-value checks. */
export class Declarations {
  /** Indexed by alias (small integers, §5.2): an array lookup per value instead of a Map's hash lookup. */
  private readonly byAlias: Array<CompiledMetric | undefined> = [];
  /** stamps[slot] === stamp when the metric already appeared in the reading being checked. */
  private readonly stamps: number[];
  private stamp = 0;

  constructor(metrics: readonly MetricDeclaration[]) {
    metrics.forEach((m, slot) => {
      this.byAlias[m.alias] = {
        name: m.name,
        kind: m.kind,
        numeric: m.kind === 'f32' || m.kind === 'f64' || m.kind === 'int',
        float: m.kind === 'f32' || m.kind === 'f64',
        min: m.min ?? -Infinity,
        max: m.max ?? Infinity,
        slot,
      };
    });
    this.stamps = new Array<number>(metrics.length).fill(0);
  }

  /**
   * Checks one reading and returns its valid values as stored values (possibly none). Each rejected
   * value, or the whole reading for a bad timestamp, is reported to `sink`.
   * `ts` is the reading's timestamp after hub stamping (untimed readings: arrival time, not checked).
   */
  validate(reading: Reading, timed: boolean, ts: number, hubNow: number, sink: RejectionSink): StoredValue[] {
    const seq = reading.seq;
    if (timed && (ts < EARLIEST_TIMESTAMP || ts > hubNow + MAX_CLOCK_AHEAD_MS)) {
      // §7.1: a bad timestamp rejects the reading as a whole.
      const why =
        ts < EARLIEST_TIMESTAMP
          ? 'is before 2000-01-01T00:00:00Z'
          : `is more than 1 h ahead of hub time ${new Date(hubNow).toISOString()}`;
      sink.rejectValue(
        'TIMESTAMP_OUT_OF_RANGE',
        seq,
        null,
        `reading ${seq}: timestamp ${ts} ${why}; set the device clock (WELCOME.serverTime) or send READING_UNTIMED`,
      );
      return [];
    }
    if (++this.stamp === Number.MAX_SAFE_INTEGER) {
      this.stamps.fill(0);
      this.stamp = 1;
    }
    const stamp = this.stamp;
    const out: StoredValue[] = [];
    for (const v of reading.values) {
      const m = this.byAlias[v.alias];
      // §7.1 checks in order: declared, not repeated, wire type, finite, range.
      if (m === undefined) {
        sink.rejectValue(
          'UNKNOWN_ALIAS',
          seq,
          v.alias,
          `reading ${seq}: alias ${v.alias} was not declared in HELLO; declare it or reconnect with the new declarations`,
        );
        continue;
      }
      if (this.stamps[m.slot] === stamp) {
        sink.rejectValue(
          'DUPLICATE_ALIAS',
          seq,
          v.alias,
          `reading ${seq}: alias ${v.alias} (${m.name}) appears more than once; the first value counts`,
        );
        continue;
      }
      this.stamps[m.slot] = stamp;
      if (v.kind !== m.kind) {
        sink.rejectValue(
          'TYPE_MISMATCH',
          seq,
          v.alias,
          `reading ${seq}: ${m.name} is declared ${m.kind} but the value travels as ${v.kind}; encode it as ${m.kind}`,
        );
        continue;
      }
      if (m.numeric) {
        const n = v.value as number;
        if (m.float && !Number.isFinite(n)) {
          sink.rejectValue(
            'NOT_FINITE',
            seq,
            v.alias,
            `reading ${seq}: ${m.name} is ${n}; only finite numbers are stored`,
          );
          continue;
        }
        if (n < m.min || n > m.max) {
          sink.rejectValue(
            'OUT_OF_RANGE',
            seq,
            v.alias,
            `reading ${seq}: ${m.name} = ${n} lies outside the declared range [${m.min}, ${m.max}]`,
          );
          continue;
        }
      }
      out.push({ metric: m.name, kind: m.kind, value: v.value });
    }
    return out;
  }
}
