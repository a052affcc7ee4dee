/**
 * Prometheus metrics of one hub instance, in a registry of its own (never prom-client's global one), so
 * several hubs in one process (tests) do not share counters. Label children are bound once here: the
 * device channel increments plain objects on its hot path.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FrameType } from '@tendril/device-sdk';

/** Reading validation codes (protocol §7), one `tendril_readings_rejected_total` series each. */
export const VALIDATION_CODES = ['UNKNOWN_ALIAS', 'TYPE_MISMATCH', 'OUT_OF_RANGE', 'NOT_FINITE', 'TIMESTAMP_OUT_OF_RANGE', 'DUPLICATE_ALIAS'] as const;

type CounterChild = { inc(value?: number): void };

const FRAME_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(FrameType).map(([name, byte]) => [byte, name.toLowerCase()]),
);

export class HubMetrics {
  readonly registry = new Registry();
  readonly devicesConnected: Gauge;
  readonly bytesIn: Counter;
  readonly bytesOut: Counter;
  readonly readingsAccepted: Counter;
  readonly readingsDuplicate: Counter;
  readonly acksSent: Counter;
  readonly storeCommitSeconds: Histogram;
  /** Indexed by frame type byte; `unknown` for bytes that are no frame type. */
  readonly framesIn: CounterChild[] = [];
  readonly framesOut: CounterChild[] = [];
  private readonly rejected = new Map<string, CounterChild>();
  private readonly closed = new Map<string, CounterChild>();
  private readonly rejectedCounter: Counter;
  private readonly closedCounter: Counter;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.devicesConnected = new Gauge({ name: 'tendril_devices_connected', help: 'Device connections that completed HELLO/WELCOME.', registers });
    const framesIn = new Counter({ name: 'tendril_frames_in_total', help: 'Device frames decoded, by frame type.', labelNames: ['type'], registers });
    const framesOut = new Counter({ name: 'tendril_frames_out_total', help: 'Frames sent to devices, by frame type.', labelNames: ['type'], registers });
    this.bytesIn = new Counter({ name: 'tendril_bytes_in_total', help: 'Bytes of device WebSocket messages received (payload).', registers });
    this.bytesOut = new Counter({ name: 'tendril_bytes_out_total', help: 'Bytes of frames sent to devices (payload).', registers });
    this.readingsAccepted = new Counter({ name: 'tendril_readings_accepted_total', help: 'Readings made durable (at least one valid value).', registers });
    this.rejectedCounter = new Counter({ name: 'tendril_readings_rejected_total', help: 'Values or readings rejected by validation, by error code.', labelNames: ['code'], registers });
    this.readingsDuplicate = new Counter({ name: 'tendril_readings_duplicate_total', help: 'Readings received again (seq already durable or in flight): acked, not stored twice.', registers });
    this.acksSent = new Counter({ name: 'tendril_acks_sent_total', help: 'ACK frames sent to devices.', registers });
    this.storeCommitSeconds = new Histogram({
      name: 'tendril_store_commit_seconds',
      help: 'Duration of one group-commit write to the time-series store.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.closedCounter = new Counter({ name: 'tendril_connections_closed_total', help: 'Device connections ended, by reason code.', labelNames: ['code'], registers });
    for (const [byte, name] of Object.entries(FRAME_NAMES)) {
      this.framesIn[Number(byte)] = framesIn.labels(name);
      this.framesOut[Number(byte)] = framesOut.labels(name);
    }
    // Pre-create every series so a scrape shows zeros rather than nothing.
    for (const code of VALIDATION_CODES) this.rejected.set(code, this.rejectedCounter.labels(code));
  }

  /** Counter child for a rejection code. */
  rejectedBy(code: string): CounterChild {
    let c = this.rejected.get(code);
    if (!c) {
      c = this.rejectedCounter.labels(code);
      this.rejected.set(code, c);
    }
    return c;
  }

  /** Counter child for a connection end reason (CLOSED, HEARTBEAT_LOST, REPLACED, protocol codes, ...). */
  closedBy(code: string): CounterChild {
    let c = this.closed.get(code);
    if (!c) {
      c = this.closedCounter.labels(code);
      this.closed.set(code, c);
    }
    return c;
  }
}
