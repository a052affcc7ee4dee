/**
 * The transport-neutral ingest contract. A transport (the tendril.v1 device channel, the MQTT bridge) only
 * frames and unframes; an IngestSession does the rest for one connected device: (epoch, seq) dedupe, the
 * resync rule after BACKOFF (§7.4.5), the per-device rate limit, validation against the declarations
 * (§7.1), acceptance into the durability chain, and the durable prefix that a cumulative ACK reports.
 * Section numbers (§) are docs/protocol.md.
 */
import type { MetricDeclaration, Reading } from '@tendril/device-sdk/codec';

/** Why the hub refused readings (§7.4.1); the transport tells the device to pause and resend. */
export type RefusalCode = 'RATE_LIMITED' | 'STORE_BUSY';

/** Why one value, or a whole reading (alias null), was rejected (§7.1.1). */
export type ValidationCode =
  | 'UNKNOWN_ALIAS'
  | 'TYPE_MISMATCH'
  | 'OUT_OF_RANGE'
  | 'NOT_FINITE'
  | 'TIMESTAMP_OUT_OF_RANGE'
  | 'DUPLICATE_ALIAS';

/** What a session reports back to its transport. Calls never throw into the session's caller. */
export interface IngestReporter {
  /**
   * True when onDurable may wait up to ACK_LINGER_MS (turn.ts) for more readings to become durable: one
   * ACK frame for several readings (§7.3.4). A transport whose acks gate the sender tightly (MQTT PUBACKs
   * within the broker's in-flight window) leaves it unset and is told at the end of each turn.
   */
  readonly coalesceAcks?: boolean;
  /**
   * Every reading up to and including `seq` is durable, or was rejected or deduplicated: the transport may
   * acknowledge up to it (ACK frame, MQTT PUBACKs). Called at most once per turn of the event loop per
   * session (with coalesceAcks, at most ACK_LINGER_MS after the readings became durable), with a seq that never decreases; called again with the same seq when a duplicate asks for an
   * ACK (§7.2).
   */
  onDurable(seq: number): void;
  /**
   * The hub took no reading from some seq on (§7.4.1): the transport tells the device to pause `pauseMs`
   * and resend from its oldest unacknowledged reading. Readings that arrive before the resend begins are
   * ignored (§7.4.5).
   */
  onRefused(code: RefusalCode, pauseMs: number): void;
  /** A value (alias) or a whole reading (alias null) failed validation; its other values went on. */
  onRejected(code: ValidationCode, seq: number, alias: number | null, message: string): void;
}

/** What a device declared when it attached (HELLO, or an MQTT birth message). */
export interface IngestDeclaration {
  epoch: number;
  metrics: readonly MetricDeclaration[];
}

/** One connected device's ingest. Opened by the devices layer when a transport attaches a device. */
export interface IngestSession {
  readonly deviceId: string;
  readonly epoch: number;
  /** Durable seq of this epoch when the session opened: WELCOME.ackedSeq (§6.3.4). */
  readonly ackedSeq: number;
  /**
   * Takes readings in the order the device sent them. `prevSeq` is the seq of the reading decoded just
   * before the first of them on this connection (§5.1.3: tells a resend, which steps back, from a reading
   * sent before the device saw BACKOFF). `now` is the arrival time (untimed readings get it, §7.1.4).
   */
  ingest(readings: readonly Reading[], prevSeq: number, now: number): void;
  /** Resolves once every reading handed to the durability chain is durable or failed. */
  settled(): Promise<void>;
  /** Sends any pending onDurable now (shutdown: the last ACK before the close). */
  flush(): void;
  /** No more readings and no more reports. */
  close(): void;
}
