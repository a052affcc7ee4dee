/**
 * Prometheus metrics of one hub instance, in a registry of its own (never prom-client's global one), so
 * several hubs in one process (tests) do not share counters.
 *
 * The per-frame counters are plain numbers in `count`: the device channel adds to them on its hot path
 * (a prom-client labelled inc() hashes its labels every call), and each counter's collect() hands the
 * increase since the previous scrape to prom-client.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FrameType } from '@tendril/device-sdk/codec';

/** Reading validation codes (protocol §7), one `tendril_readings_rejected_total` series each. */
export const VALIDATION_CODES = [
  'UNKNOWN_ALIAS',
  'DUPLICATE_ALIAS',
  'TYPE_MISMATCH',
  'NOT_FINITE',
  'OUT_OF_RANGE',
  'TIMESTAMP_OUT_OF_RANGE',
] as const;

type CounterChild = { inc(value?: number): void };

const FRAME_NAMES: Array<[byte: number, name: string]> = Object.entries(FrameType).map(([name, byte]) => [
  byte,
  name.toLowerCase(),
]);

/** Hot-path counts; add to them directly. */
export interface HotCounts {
  bytesIn: number;
  bytesOut: number;
  readingsAccepted: number;
  readingsDuplicate: number;
  acksSent: number;
  devicesConnected: number;
  /** ERROR frames for rejected values not sent: the connection's budget was spent (§7.1.5). */
  errorFramesSuppressed: number;
  /** Indexed by frame type byte. */
  framesIn: Float64Array;
  framesOut: Float64Array;
}

/** A counter whose value is read from a plain number at scrape time. */
function mirroredCounter(name: string, help: string, registers: Registry[], read: () => number): Counter {
  let reported = 0;
  return new Counter({
    name,
    help,
    registers,
    collect() {
      const now = read();
      if (now > reported) this.inc(now - reported);
      reported = now;
    },
  });
}

/** The series read from the hot-path counts at scrape time: connections, frames, bytes, readings, acks. */
function registerHotCounters(registers: Registry[], count: HotCounts): void {
  new Gauge({
    name: 'tendril_devices_connected',
    help: 'Device connections that completed HELLO/WELCOME.',
    registers,
    collect() {
      this.set(count.devicesConnected);
    },
  });
  for (const [name, help, counts] of [
    ['tendril_frames_in_total', 'Device frames decoded, by frame type.', count.framesIn],
    ['tendril_frames_out_total', 'Frames sent to devices, by frame type.', count.framesOut],
  ] as const) {
    const reported = new Float64Array(256);
    new Counter({
      name,
      help,
      labelNames: ['type'],
      registers,
      collect() {
        for (const [byte, type] of FRAME_NAMES) {
          const delta = counts[byte]! - reported[byte]!;
          // inc(0) creates the series, so a scrape shows every frame type from the start.
          this.labels(type).inc(delta);
          reported[byte] = counts[byte]!;
        }
      },
    });
  }
  mirroredCounter(
    'tendril_bytes_in_total',
    'Bytes of device WebSocket messages received (payload).',
    registers,
    () => count.bytesIn,
  );
  mirroredCounter(
    'tendril_bytes_out_total',
    'Bytes of frames sent to devices (payload).',
    registers,
    () => count.bytesOut,
  );
  mirroredCounter(
    'tendril_readings_accepted_total',
    'Readings made durable (at least one valid value).',
    registers,
    () => count.readingsAccepted,
  );
  mirroredCounter(
    'tendril_readings_duplicate_total',
    'Readings received again (seq already durable or in flight): acked, not stored twice.',
    registers,
    () => count.readingsDuplicate,
  );
  mirroredCounter('tendril_acks_sent_total', 'ACK frames sent to devices.', registers, () => count.acksSent);
}

export class HubMetrics {
  readonly registry = new Registry();
  readonly count: HotCounts = {
    bytesIn: 0,
    bytesOut: 0,
    readingsAccepted: 0,
    readingsDuplicate: 0,
    acksSent: 0,
    devicesConnected: 0,
    errorFramesSuppressed: 0,
    framesIn: new Float64Array(256),
    framesOut: new Float64Array(256),
  };
  readonly storeCommitSeconds: Histogram;
  /** Rejections per validation code, counted as plain numbers on the hot path; reported at scrape time. */
  private readonly rejected = new Map<string, { n: number; inc(): void }>();
  private readonly closed = new Map<string, CounterChild>();
  private readonly closedCounter: Counter;
  /** Device sockets refused before HELLO because too many were waiting for HELLO (§6.1.5). */
  readonly handshakesRefused: CounterChild;
  /** HELLOs with an unknown device id or a wrong token. */
  readonly deviceAuthFailures: CounterChild;
  /** HELLOs answered AUTH_THROTTLED (§6.1.6). */
  readonly deviceAuthThrottled: CounterChild;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const count = this.count;
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    registerHotCounters(registers, count);
    const rejected = this.rejected;
    const reportedRejections = new Map<string, number>();
    // Registered with the registry; read only at scrape time (collect).
    new Counter({
      name: 'tendril_readings_rejected_total',
      help: 'Values or readings rejected by validation, by error code.',
      labelNames: ['code'],
      registers,
      collect() {
        for (const [code, c] of rejected) {
          this.labels(code).inc(c.n - (reportedRejections.get(code) ?? 0));
          reportedRejections.set(code, c.n);
        }
      },
    });
    this.storeCommitSeconds = new Histogram({
      name: 'tendril_store_commit_seconds',
      help: 'Duration of one group-commit write to the time-series store.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.closedCounter = new Counter({
      name: 'tendril_connections_closed_total',
      help: 'Device connections ended, by reason code.',
      labelNames: ['code'],
      registers,
    });
    this.handshakesRefused = new Counter({
      name: 'tendril_device_handshakes_refused_total',
      help: 'Device sockets refused before HELLO: too many waiting for HELLO, in all or from one address.',
      registers,
    });
    this.deviceAuthFailures = new Counter({
      name: 'tendril_device_auth_failures_total',
      help: 'HELLOs with an unknown device id or a wrong token.',
      registers,
    });
    this.deviceAuthThrottled = new Counter({
      name: 'tendril_device_auth_throttled_total',
      help: 'HELLOs answered AUTH_THROTTLED without a check: their address failed too often (protocol §6.1.6).',
      registers,
    });
    mirroredCounter(
      'tendril_error_frames_suppressed_total',
      'ERROR frames for rejected values not sent: the connection spent its ERROR budget (the rejection is still counted).',
      registers,
      () => count.errorFramesSuppressed,
    );
    // Pre-create every validation series so a scrape shows zeros rather than nothing.
    for (const code of VALIDATION_CODES) this.rejectedBy(code);
  }

  /** Counter child for a rejection code. */
  rejectedBy(code: string): CounterChild {
    let c = this.rejected.get(code);
    if (!c) {
      const counter = {
        n: 0,
        inc() {
          counter.n++;
        },
      };
      c = counter;
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
