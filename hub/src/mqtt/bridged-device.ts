/**
 * One device that speaks MQTT, as the bridge sees it: its declarations (birth or template), how its
 * readings are numbered, its attachment to the devices layer, and the messages whose PUBACK waits for its
 * readings to become durable. Plays the part the SDK plays on a WebSocket: it keeps what is not durable
 * yet, and after a refusal (STORE_BUSY, RATE_LIMITED) it pauses, then resends from the oldest unacked
 * reading (protocol §7.4.3), so acknowledged always means durable.
 */
import type { MetricDeclaration, MetricKind, Reading, Value } from '@tendril/device-sdk/codec';
import type { AttachedDevice, AttachInfo } from '../devices/types.js';
import { isRefusal, toValue, type BridgeRefusal, type JsonReading } from './payload.js';

/** Readings of one MQTT message, converted, with the PUBACK that waits for them. */
export interface Batch {
  readings: Reading[];
  /** Highest seq in the batch: the batch is durable once onDurable reports a seq at or above it. */
  maxSeq: number;
  qos: 0 | 1;
  /** Lets the message's PUBACK go (in order with the others). */
  complete(): void;
}

/** Aliases above every declarable alias (max 1023) stand for names the device did not declare. */
const FIRST_UNDECLARED_ALIAS = 1 << 16;
const MAX_UNDECLARED_NAMES = 256;

export type Numbering = 'device' | 'bridge';

export class BridgedDevice {
  metrics: readonly MetricDeclaration[] = [];
  private byName = new Map<string, { alias: number; kind: MetricKind }>();
  private readonly undeclared = new Map<string, number>();
  private readonly nameOf = new Map<number, string>();
  info: AttachInfo | null = null;
  numbering: Numbering = 'bridge';
  /** The epoch the bridge numbers this device's readings in, for the life of the hub process. */
  readonly bridgeEpoch: number;
  /** Last seq the bridge assigned (bridge numbering). */
  lastAssigned = 0;

  attached: AttachedDevice | null = null;
  attaching = false;
  /** Bumped at every attach and detach: reports from an older attachment are ignored. */
  generation = 0;
  /** Handed to the ingest session, waiting for onDurable. */
  readonly pending: Batch[] = [];
  /** Not handed over yet: attach in progress, or paused after a refusal. */
  readonly waiting: Batch[] = [];
  /** seq of the reading last handed to the ingest session (IngestSession.ingest's prevSeq). */
  lastFed = 0;
  pausedUntil = 0;
  pauseTimer: unknown = null;
  /** An attach was refused: messages until then are refused at once. */
  refusedUntil = 0;
  refusedCode: 'UNKNOWN_DEVICE' | 'DEVICE_DISABLED' | null = null;
  /** The device said it is online (state topic) or sent data; false after its will. */
  wantsOnline = false;

  constructor(
    readonly id: string,
    /** 'tendril' for tendril/v1/..., else the template's name. */
    readonly source: string,
    random: () => number,
  ) {
    // A fresh epoch per hub process: seqs the bridge assigns never collide with an earlier run's.
    this.bridgeEpoch = Math.floor(random() * 0xffff_ffff) + 1;
  }

  /** Takes a declaration (birth or template); true when it differs from the one attached. */
  declare(info: AttachInfo, numbering: Numbering): boolean {
    const changed =
      this.info === null ||
      numbering !== this.numbering ||
      (numbering === 'device' && info.epoch !== this.info.epoch) ||
      JSON.stringify(info.metrics) !== JSON.stringify(this.metrics) ||
      info.firmware !== this.info.firmware ||
      info.sdk !== this.info.sdk;
    this.info = info;
    this.numbering = numbering;
    this.metrics = info.metrics;
    this.byName = new Map(info.metrics.map((m) => [m.name, { alias: m.alias, kind: m.kind }]));
    this.nameOf.clear();
    for (const m of info.metrics) this.nameOf.set(m.alias, m.name);
    for (const [name, alias] of this.undeclared) this.nameOf.set(alias, name);
    return changed;
  }

  get epoch(): number {
    return this.numbering === 'device' ? this.info!.epoch : this.bridgeEpoch;
  }

  /** The metric name an alias stands for (to name it in an error message). */
  metricName(alias: number | null): string | undefined {
    return alias === null ? undefined : this.nameOf.get(alias);
  }

  private aliasFor(name: string): { alias: number; kind: MetricKind | undefined } {
    const declared = this.byName.get(name);
    if (declared) return declared;
    let alias = this.undeclared.get(name);
    if (alias === undefined) {
      // Bounded: past the cap every further undeclared name shares one alias.
      alias =
        this.undeclared.size < MAX_UNDECLARED_NAMES
          ? FIRST_UNDECLARED_ALIAS + this.undeclared.size
          : FIRST_UNDECLARED_ALIAS + MAX_UNDECLARED_NAMES;
      if (this.undeclared.size < MAX_UNDECLARED_NAMES) this.undeclared.set(name, alias);
      if (!this.nameOf.has(alias))
        this.nameOf.set(alias, this.undeclared.size <= MAX_UNDECLARED_NAMES ? name : '(undeclared)');
    }
    return { alias, kind: undefined };
  }

  /**
   * Converts JSON readings to codec readings, numbering them. `seqs` (bridge numbering only) reuses the
   * seqs a resent message got the first time. Value refusals are reported through `reject` and the value
   * left out; a reading whose values all go stays, empty, so its seq is acknowledged like any other.
   */
  convert(
    json: readonly JsonReading[],
    seqs: readonly number[] | null,
    reject: (r: BridgeRefusal, seq: number, metric: string) => void,
  ): Reading[] | BridgeRefusal {
    const out: Reading[] = [];
    for (let i = 0; i < json.length; i++) {
      const j = json[i]!;
      let seq: number;
      if (this.numbering === 'device') {
        if (j.seq === null) {
          return {
            code: 'INVALID_FIELD',
            message: 'this device numbers its readings (its birth has an epoch): every reading needs a seq',
          };
        }
        seq = j.seq;
      } else {
        seq = seqs?.[i] ?? ++this.lastAssigned;
      }
      const values: Value[] = [];
      for (const [name, raw] of j.values) {
        const { alias, kind } = this.aliasFor(name);
        const v = toValue(alias, kind, raw);
        if (isRefusal(v)) reject(v, seq, name);
        else values.push(v);
      }
      out.push({ seq, ts: j.ts, values });
    }
    return out;
  }

  /** Completes every pending batch that `seq` covers, oldest first. */
  durable(seq: number): number {
    let n = 0;
    while (this.pending.length > 0 && this.pending[0]!.maxSeq <= seq) {
      this.pending.shift()!.complete();
      n++;
    }
    return n;
  }
}
