/**
 * Request bodies of the InfluxDB store: lines of readings built into one buffer per request (docs/storage.md,
 * "Writes, retries and refusals"), and what a refusal leaves for the dead-letter file.
 */
import type { FairSlicer } from '../core/fair-slice.js';
import type { LineEncoder } from './influx-schema.js';
import type { ReadingVisitor, ScalarValue, StoredReading, StoredValue } from './types.js';

/** Mutable: a field type conflict rewrites `skipped` in place. */
export interface Entry {
  readonly reading: StoredReading;
  /** Values left out of the reading's line because the server holds their field with another type. */
  skipped: readonly StoredValue[];
}

/**
 * Lines of some readings, separated by \n, as one request body. A chunk is split (to find the lines a server
 * refused) by encoding the halves of its entries again: that path is rare, and keeping no per-line offsets
 * lets the common path build the body as a few long strings, one buffer write per thousand lines.
 */
export interface Chunk {
  /** Lines in the body. */
  count: number;
  body: Buffer;
  /**
   * The readings behind the lines. Null for a body encoded straight from a ReadingBatch: they are decoded
   * only when needed (entriesOf: a refusal to learn from or to split), which the common path never is.
   */
  entries: Entry[] | null;
  decode: (() => StoredReading[]) | null;
}

export interface DeadLetter {
  kind: 'rejected' | 'type_conflict';
  reason: string;
  status: number;
  lines?: string[];
  values?: Array<{
    deviceId: string;
    epoch: number;
    seq: number;
    ts: number;
    metric: string;
    kind: string;
    value: ScalarValue;
  }>;
}

export const NO_VALUES: readonly StoredValue[] = Object.freeze([]);

/** Lines appended to one string before it is written to the body's buffer. */
const TEXT_LINES = 1024;
/** Lines built between two looks at the clock (FairSlicer.due). */
export const CHECK_LINES = 128;

/**
 * A request body, line by line: the lines go into one string, written to a buffer a thousand lines at a time
 * (one buffer write per line cost more, and so did keeping the line strings). As a ReadingVisitor it encodes
 * visited readings with the LineEncoder.
 */
export class BodyBuilder implements ReadingVisitor {
  private readonly slices: Buffer[] = [];
  private text = '';
  private lines = 0;

  constructor(
    private readonly encoder: LineEncoder,
    private readonly slicer: FairSlicer,
  ) {}

  add(line: string): void {
    this.text += this.lines++ > 0 ? '\n' + line : line;
    if (this.lines % TEXT_LINES === 0) this.flush();
  }

  begin(deviceId: string, epoch: number, seq: number, ts: number): void {
    this.encoder.begin(deviceId, epoch, seq, ts);
  }

  value(metric: string, kind: StoredValue['kind'], value: ScalarValue): void {
    this.encoder.value(metric, kind, value);
  }

  end(): void {
    this.add(this.encoder.finish());
  }

  /**
   * Yields to the event loop when the time slice is used up: the body of the request already in flight is
   * still being written to its socket (InfluxDB starts on a request only once the whole body has arrived), and
   * devices are being served. Call between lines only (the encoder holds one line at a time).
   */
  async pause(): Promise<void> {
    if (!this.slicer.due()) return;
    this.flush();
    await this.slicer.yield();
  }

  body(): Buffer {
    this.flush();
    return this.slices.length === 1 ? this.slices[0]! : Buffer.concat(this.slices);
  }

  private flush(): void {
    if (this.text.length === 0) return;
    this.slices.push(Buffer.from(this.text, 'utf8'));
    this.text = '';
  }
}

export function toEntries(readings: readonly StoredReading[]): Entry[] {
  return readings.map((reading): Entry => ({ reading, skipped: NO_VALUES }));
}
