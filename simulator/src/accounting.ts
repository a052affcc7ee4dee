/**
 * Where every reading the fleet sends ends up. Each device keeps a ledger of its unacked readings (seq and
 * send time); the SDK's events move them out of it:
 *
 *   sent = acked + rejected + dropped + buffered
 *
 * - acked: covered by a cumulative ACK with no ERROR about it (stored in full);
 * - rejected: covered by an ACK but the hub sent ERROR {seq, alias} for at least one of its values, or for
 *   its timestamp (§7.1: the valid values of the reading are still stored, the reading is acked);
 * - dropped: the SDK's full buffer dropped it (oldest first), or a reboot discarded it unacked;
 * - buffered: still waiting for an ACK.
 *
 * The hub sends a reading's ERRORs before the ACK that covers it (it validates before making the reading
 * durable, §7.3.1), so the ledger knows at ACK time whether a reading was rejected.
 */
import { LatencyHistogram } from './latency.js';

export type CountByCode = Record<string, number>;

function bump(counts: CountByCode, code: string, n = 1): void {
  counts[code] = (counts[code] ?? 0) + n;
}

/** Fleet-wide counters, updated in O(1) per event. */
export class FleetCounters {
  sent = 0;
  acked = 0;
  rejected = 0;
  /** Dropped by a full SDK buffer. */
  overflowDropped = 0;
  /** Unacked when a reboot command restarted the device (a new SDK instance and epoch). */
  abandonedAtReboot = 0;
  buffered = 0;
  /** ERROR frames about a reading (seq > 0), by code. */
  readonly rejectedByCode: CountByCode = {};
  /** ERROR frames about the connection (seq = 0) and other client errors, by code. */
  readonly errorsByCode: CountByCode = {};
  readonly backoffsByCode: CountByCode = {};
  readonly closeCodes: CountByCode = {};
  commandsHandled = 0;
  commandsRejected = 0;
  readonly commandsByName: CountByCode = {};
  connects = 0;
  disconnects = 0;
  connected = 0;
  readonly latency = new LatencyHistogram();

  get dropped(): number {
    return this.overflowDropped + this.abandonedAtReboot;
  }

  /** True when every reading sent is accounted for. */
  get reconciled(): boolean {
    return this.sent === this.acked + this.rejected + this.dropped + this.buffered;
  }

  countRejection(code: string): void {
    bump(this.rejectedByCode, code);
  }

  countError(code: string): void {
    bump(this.errorsByCode, code);
  }

  countBackoff(code: string): void {
    bump(this.backoffsByCode, code);
  }

  countClose(code: number | string): void {
    bump(this.closeCodes, String(code));
  }

  countCommand(name: string, rejected: boolean): void {
    this.commandsHandled++;
    if (rejected) this.commandsRejected++;
    bump(this.commandsByName, name);
  }
}

/** One device's unacked readings, oldest first: a queue of (seq, sent-at) in two growable arrays. */
export class ReadingLedger {
  private seqs: number[] = [];
  private sentAt: number[] = [];
  private head = 0;
  /** Seqs of buffered readings the hub sent an ERROR about; allocated on the first one. */
  private rejectedSeqs: Set<number> | null = null;

  constructor(private readonly counters: FleetCounters) {}

  get buffered(): number {
    return this.seqs.length - this.head;
  }

  /** Highest seq still waiting, or 0. */
  get newestSeq(): number {
    return this.buffered > 0 ? this.seqs[this.seqs.length - 1]! : 0;
  }

  sent(seq: number, at: number): void {
    this.seqs.push(seq);
    this.sentAt.push(at);
    this.counters.sent++;
    this.counters.buffered++;
  }

  /** A cumulative ACK (§7.3): every buffered reading with seq <= ackSeq is done. */
  ack(ackSeq: number, at: number): void {
    const c = this.counters;
    while (this.head < this.seqs.length && this.seqs[this.head]! <= ackSeq) {
      const seq = this.seqs[this.head]!;
      c.latency.record(at - this.sentAt[this.head]!);
      if (this.rejectedSeqs?.delete(seq)) c.rejected++;
      else c.acked++;
      c.buffered--;
      this.head++;
    }
    this.compact();
  }

  /** ERROR {code, seq, alias}: one value of reading `seq` was refused. */
  reject(seq: number, code: string): void {
    this.counters.countRejection(code);
    if (seq <= 0) return;
    (this.rejectedSeqs ??= new Set()).add(seq);
  }

  /** The SDK dropped its `count` oldest readings (buffer full, §7.5). */
  drop(count: number): void {
    this.counters.overflowDropped += this.discard(count);
  }

  /** Everything still buffered is lost (the device rebooted into a new epoch). */
  abandonAll(): void {
    this.counters.abandonedAtReboot += this.discard(this.buffered);
  }

  private discard(count: number): number {
    const n = Math.min(count, this.buffered);
    for (let i = 0; i < n; i++) this.rejectedSeqs?.delete(this.seqs[this.head + i]!);
    this.head += n;
    this.counters.buffered -= n;
    this.compact();
    return n;
  }

  private compact(): void {
    if (this.head === this.seqs.length) {
      this.seqs.length = 0;
      this.sentAt.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.seqs.length) {
      this.seqs = this.seqs.slice(this.head);
      this.sentAt = this.sentAt.slice(this.head);
      this.head = 0;
    }
  }
}

/** The process's own CPU use, so a benchmark can tell whether the generator or the hub is the bottleneck. */
export class CpuMeter {
  private readonly startUsage = process.cpuUsage();
  private readonly startWall: number;
  private lastUsage = this.startUsage;
  private lastWall: number;

  constructor(private readonly clock: () => number = Date.now) {
    this.startWall = this.lastWall = clock();
  }

  /** Percent of one core used since the previous call (100 = one core busy). */
  sinceLast(): number {
    const usage = process.cpuUsage();
    const wall = this.clock();
    const pct = percent(usage.user - this.lastUsage.user + usage.system - this.lastUsage.system, wall - this.lastWall);
    this.lastUsage = usage;
    this.lastWall = wall;
    return pct;
  }

  total(): { userMs: number; systemMs: number; wallMs: number; percentOfOneCore: number } {
    const usage = process.cpuUsage(this.startUsage);
    const wallMs = this.clock() - this.startWall;
    return {
      userMs: Math.round(usage.user / 1000),
      systemMs: Math.round(usage.system / 1000),
      wallMs,
      percentOfOneCore: percent(usage.user + usage.system, wallMs),
    };
  }
}

function percent(cpuMicros: number, wallMs: number): number {
  return wallMs > 0 ? Math.round((cpuMicros / 10 / wallMs) * 10) / 10 : 0;
}
