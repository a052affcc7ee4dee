/**
 * The on-disk spool: the durability point between the device channel and the time-series store
 * (docs/storage.md, "Spool" and "Durability chain").
 *
 *   accept() --append + fdatasync (group commit)--> segment files --drainer, batches--> TimeSeriesStore
 *
 * - accept() resolves once its record is on disk (after the fdatasync that covers it): the channel may
 *   ack then. All accept() calls waiting while one fdatasync runs share the next one (group commit).
 * - The drainer reads records in order, writes them to the store in batches of thousands, then moves a
 *   durable checkpoint past them and deletes segments that are wholly drained. Store writes are idempotent
 *   by (device, epoch, seq), so replaying records a crash left behind the checkpoint is harmless.
 * - Store outage: the drainer retries with exponential back-off and full jitter while the spool grows. At
 *   maxBytes undrained, `accepting` turns false (the channel answers BACKOFF STORE_BUSY, protocol §7.4) and
 *   accept() refuses; once the store is back the spool drains in order and accepting turns true again.
 * - Start-up: every segment is checked record by record (length + CRC-32). A torn tail (the process was
 *   killed mid-append; such a record was never acknowledged) is cut off; the drainer resumes at the checkpoint.
 * - Disk failure (fail-stop, as databases do after a failed fsync): after a failed append or fdatasync the
 *   kernel may have dropped the dirty pages, so the file's tail cannot be trusted and no later group may commit
 *   behind it (a later seq made durable would count as durable over the failed readings). The failed group and
 *   every accept() queued or arriving afterwards is refused, `accepting` stays false and `state.failure` says
 *   why; what was committed before keeps draining. Only a restart (recovery by CRC) makes the spool take
 *   readings again.
 */
import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync, ftruncateSync, fstatSync } from 'node:fs';
import { open, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UnreadableBatchError, type ReadingSink, type StoredReading, type TimeSeriesStore } from '../storage/types.js';
import { FairSlicer } from '../core/fair-slice.js';
import { abortableSleep, createBackoff, type Backoff, type BackoffOptions } from '../core/backoff.js';
import {
  decodeRecords,
  encodeRecord,
  parseSegmentFileName,
  RECORD_HEADER_BYTES,
  RecordBatch,
  recordView,
  scanRecord,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  segmentFileName,
  segmentFormat,
  type RecordView,
  type SegmentFormat,
} from './record.js';

export const DEFAULT_SPOOL_MAX_BYTES = 1024 ** 3;
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_GROUP_MAX_BYTES = 512 * 1024;
/** Committed readings kept in memory for the drainer (HUB_SPOOL_MEMORY_READINGS); some 35 MB. */
export const DEFAULT_MEMORY_TAIL_READINGS = 100_000;

export interface SpoolOptions {
  /** Directory of the spool (HUB_DATA_DIR/spool); created if missing. One hub process per directory. */
  dir: string;
  store: TimeSeriesStore;
  /** HUB_SPOOL_MAX_BYTES: undrained bytes at which `accepting` turns false. Default 1 GiB. */
  maxBytes?: number;
  /** A new segment file is started past this size. Default 64 MiB. */
  segmentBytes?: number;
  /**
   * Record bytes one group commit (append + fdatasync) takes at most; the rest waits for the next (a record
   * larger than this commits on its own). Default 512 KiB: under a flood one group used to take everything
   * that arrived during the fdatasync before it, 50 000-90 000 readings (2-4 MB), whose fdatasync then took
   * 100-300 ms beside a busy InfluxDB on the same disk; acks and the drain (which takes records once they are
   * committed) waited that long (bench/ingest-influx.mjs: 0.61-0.79x raw -> 0.76-0.85x).
   */
  groupMaxBytes?: number;
  /** Readings per store write (the InfluxDB store splits them into requests of its batchLines). Default 20 000. */
  batchReadings?: number;
  /**
   * Committed readings kept in memory for the drainer, so that while it keeps up it takes them from there
   * instead of reading and decoding the records it just wrote. Past this many (the store is slow or down),
   * the drainer reads from disk until it has caught up again. Default 100 000 (the records as written: some
   * 5 MB for readings of three numbers that arrive in batches, some 13 MB with one reading per frame).
   */
  memoryTailReadings?: number;
  /**
   * Batches written to the store at once (each its own write() call; the InfluxDB store sends each as up to
   * 2 requests at a time). Default 4: with 2, InfluxDB sat idle part of the time while devices flooded the hub
   * and each next request was still being built (bench/ingest-influx.mjs).
   */
  drainWindow?: number;
  /** After new data arrives at an idle drainer, wait this long to fill the batch (<= 1 s). Default 100. */
  drainLingerMs?: number;
  /** Drainer retry delays while the store is down. Defaults: base 200 ms, max 5 s. */
  backoff?: BackoffOptions;
  /** ms since the Unix epoch; injectable for tests. */
  clock?: { now(): number };
  logger?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

export type StoreState = 'unknown' | 'up' | 'down';

export interface SpoolState {
  store: StoreState;
  accepting: boolean;
  depthBytes: number;
  depthReadings: number;
  /** Age of the oldest reading not yet in the store, ms (0 when drained). */
  oldestUndrainedAgeMs: number;
  /** Failed store writes by error kind (InfluxWriteError.kind, or "error" for stores without kinds). */
  writeErrors: Record<string, number>;
  lastWriteError: { kind: string; message: string; at: number } | null;
  acceptedReadings: number;
  drainedReadings: number;
  /** fdatasync calls made for accept() (group commits). */
  commits: number;
  segments: number;
  /** Bytes cut off at start-up: torn tails and damaged records. */
  recoveredTornBytes: number;
  /** Undrained readings found at start-up (replayed to the store). */
  replayedReadings: number;
  /**
   * Readings the drainer read back from the segment files rather than from memory: those replayed after a
   * start, and those accepted while the store was more than memoryTailReadings behind.
   */
  drainedFromDisk: number;
  /**
   * Set when an append or fdatasync failed: the spool refuses every reading from then on and the hub must be
   * restarted (after the disk is fixed). null while healthy.
   */
  failure: { message: string; code: string | null; at: number } | null;
}

/** The spool directory holds a segment in a format this hub does not know (written by a newer hub). */
export class SpoolFormatError extends Error {
  override readonly name = 'SpoolFormatError';
}

/** accept() refused: the spool is full (store down). Not acked; the device keeps the readings. */
export class SpoolFullError extends Error {
  override readonly name = 'SpoolFullError';
  readonly code = 'STORE_BUSY';
}

/**
 * accept() refused because an earlier append or fdatasync failed (fail-stop). Not acked; the device keeps the
 * readings and resends them to the restarted hub.
 */
export class SpoolFailedError extends Error {
  override readonly name = 'SpoolFailedError';
}

export class SpoolClosedError extends Error {
  override readonly name = 'SpoolClosedError';
}

/** Another live process holds the spool directory. */
export class SpoolLockedError extends Error {
  override readonly name = 'SpoolLockedError';
}

interface Position {
  seg: number;
  off: number;
}

interface Segment {
  n: number;
  path: string;
  /** Bytes known durable (header + whole committed records). */
  end: number;
  /** Body format of its records (from the header): 2 for segments this hub writes, 1 left by an earlier hub. */
  format: SegmentFormat;
}

interface Pending {
  record: Buffer;
  readings: readonly StoredReading[];
  acceptedAt: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * The records of one committed group, kept in memory until the drainer takes them (see `tail`): the bytes as
 * written, copied into one buffer (about 50 bytes per reading of three numbers when frames carry many
 * readings, 130 with one reading per frame; off the JS heap, one object per group).
 */
interface TailRecord {
  seg: number;
  off: number;
  bytes: Buffer;
  count: number;
  acceptedAt: number;
}

interface Batch {
  readings: RecordBatch;
  start: Position;
  end: Position;
  bytes: number;
  firstAcceptedAt: number | null;
}

interface InFlightBatch {
  batch: Batch;
  /** True once in the store; false if the spool closed while the store was failing. */
  writing: Promise<boolean>;
}

const CHECKPOINT_FILE = 'checkpoint.json';
const SEQS_FILE = 'durable-seqs.json';
const LOCK_FILE = 'lock';
/** Epochs remembered per device (a device changes epoch only when its counter restarts). */
const EPOCHS_PER_DEVICE = 4;
const READ_CHUNK_BYTES = 4 * 1024 * 1024;
/** Readings decoded between two looks at the clock (FairSlicer.due) while reading a batch. */
const READ_SLICE_READINGS = 500;

export interface Spool extends ReadingSink {
  readonly depthBytes: number;
  readonly depthReadings: number;
  readonly storeState: StoreState;
  /** Snapshot for /readyz and /metrics. */
  readonly state: SpoolState;
  /**
   * Highest seq per (device, epoch) that is durable: accepted into the spool (now or before a restart),
   * including what was drained since. For the channel's dedup and WELCOME.ackedSeq after a restart.
   */
  durableSeq(deviceId: string, epoch: number): number;
  /** deviceId -> (epoch -> highest durable seq), at most a few recent epochs per device. */
  durableSeqs(): ReadonlyMap<string, ReadonlyMap<number, number>>;
  /** Resolves when everything accepted so far is in the store; rejects after timeoutMs. */
  whenDrained(timeoutMs?: number): Promise<void>;
  /** Ends a back-off wait now (e.g. a health probe saw the store answer). */
  retryNow(): void;
  /** 'drained' (batch size), 'store' (StoreState), 'accepting' (boolean). */
  on(event: 'drained', listener: (readings: number) => void): this;
  on(event: 'store', listener: (state: StoreState) => void): this;
  on(event: 'accepting', listener: (accepting: boolean) => void): this;
}

/** Opens (recovering if needed) the spool in opts.dir and starts its drainer. */
export async function createSpool(opts: SpoolOptions): Promise<Spool> {
  const spool = new DiskSpool(opts);
  try {
    spool.recover();
  } catch (err) {
    spool.releaseLock();
    throw err;
  }
  spool.startDrainer();
  return spool;
}

class DiskSpool extends EventEmitter implements Spool {
  private readonly dir: string;
  private readonly store: TimeSeriesStore;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly batchReadings: number;
  private readonly lingerMs: number;
  private readonly groupMaxBytes: number;
  private readonly drainWindow: number;
  private readonly memoryTailMax: number;
  /** Reading batches back takes turns with device ingest (see FairSlicer). */
  private readonly slicer = new FairSlicer();
  /**
   * Committed records not yet taken by the drainer, in file order (with gaps), from tailHead on. Filled only
   * while `tailOn`: it turns off when the tail would pass memoryTailMax (what it holds stays, for the drainer
   * to take first), and on again once the drainer has read from disk up to the end of what is committed.
   */
  private tail: TailRecord[] = [];
  private persistChain: Promise<void> = Promise.resolve();
  private persistQueued = false;
  private tailHead = 0;
  private tailReadings = 0;
  private tailOn = false;
  private readonly backoff: Backoff;
  private readonly clock: { now(): number };
  private readonly logger: SpoolOptions['logger'];

  private segments: Segment[] = [];
  private writeFd: FileHandle | null = null;
  private writeSeg: Segment | null = null;
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private committing: Promise<void> | null = null;

  private drainPos: Position = { seg: 0, off: 0 };
  private readFd: { n: number; fd: number } | null = null;
  private headAcceptedAt: number | null = null;

  private committedBytes = 0;
  private committedReadings = 0;
  private drainedBytes = 0;
  private drainedReadingsCount = 0;
  private acceptedReadingsCount = 0;
  private commits = 0;
  private recoveredTornBytes = 0;
  private replayedReadings = 0;
  private drainedFromDiskCount = 0;
  private storeStateValue: StoreState = 'unknown';
  private writeErrors: Record<string, number> = {};
  private lastWriteError: SpoolState['lastWriteError'] = null;
  private wasAccepting = true;
  private failure: SpoolState['failure'] = null;

  private readonly seqs = new Map<string, Map<number, number>>();
  private closing = false;
  private closed = false;
  private drainer: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private readonly stop = new AbortController();
  private backoffAbort: AbortController | null = null;
  private readonly drainWaiters = new Set<{ resolve: () => void; reject: (err: Error) => void }>();

  constructor(opts: SpoolOptions) {
    super();
    this.dir = resolve(opts.dir);
    this.store = opts.store;
    this.maxBytes = opts.maxBytes ?? DEFAULT_SPOOL_MAX_BYTES;
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.groupMaxBytes = Math.max(1, opts.groupMaxBytes ?? DEFAULT_GROUP_MAX_BYTES);
    this.batchReadings = Math.max(1, opts.batchReadings ?? 20_000);
    this.lingerMs = Math.min(1000, Math.max(0, opts.drainLingerMs ?? 100));
    this.drainWindow = Math.max(1, opts.drainWindow ?? 4);
    this.memoryTailMax = Math.max(0, opts.memoryTailReadings ?? DEFAULT_MEMORY_TAIL_READINGS);
    this.backoff = createBackoff({ baseMs: 200, maxMs: 5000, ...opts.backoff });
    this.clock = opts.clock ?? { now: () => Date.now() };
    this.logger = opts.logger;
  }

  // ---- state ----

  get depthBytes(): number {
    return this.committedBytes - this.drainedBytes;
  }

  get depthReadings(): number {
    return this.committedReadings - this.drainedReadingsCount;
  }

  get accepting(): boolean {
    return !this.closing && this.failure === null && this.depthBytes + this.pendingBytes < this.maxBytes;
  }

  get storeState(): StoreState {
    return this.storeStateValue;
  }

  get state(): SpoolState {
    return {
      store: this.storeStateValue,
      accepting: this.accepting,
      depthBytes: this.depthBytes,
      depthReadings: this.depthReadings,
      oldestUndrainedAgeMs: this.depthReadings > 0 && this.headAcceptedAt !== null ? Math.max(0, this.clock.now() - this.headAcceptedAt) : 0,
      writeErrors: { ...this.writeErrors },
      lastWriteError: this.lastWriteError,
      acceptedReadings: this.acceptedReadingsCount,
      drainedReadings: this.drainedReadingsCount,
      commits: this.commits,
      segments: this.segments.length,
      recoveredTornBytes: this.recoveredTornBytes,
      replayedReadings: this.replayedReadings,
      drainedFromDisk: this.drainedFromDiskCount,
      failure: this.failure,
    };
  }

  durableSeq(deviceId: string, epoch: number): number {
    return this.seqs.get(deviceId)?.get(epoch) ?? 0;
  }

  durableSeqs(): ReadonlyMap<string, ReadonlyMap<number, number>> {
    return this.seqs;
  }

  private noteSeq(deviceId: string, epoch: number, seq: number): void {
    let epochs = this.seqs.get(deviceId);
    if (!epochs) {
      epochs = new Map();
      this.seqs.set(deviceId, epochs);
    }
    const prev = epochs.get(epoch);
    if (prev !== undefined) {
      if (seq > prev) epochs.set(epoch, seq);
      return;
    }
    epochs.set(epoch, seq);
    if (epochs.size > EPOCHS_PER_DEVICE) {
      // Forget the epoch first seen longest ago: a device's counter only ever moves to a new epoch.
      const oldest = epochs.keys().next().value;
      if (oldest !== undefined) epochs.delete(oldest);
    }
  }

  private noteAccepting(): void {
    const now = this.accepting;
    if (now !== this.wasAccepting) {
      this.wasAccepting = now;
      this.emit('accepting', now);
    }
  }

  private setStoreState(s: StoreState): void {
    if (s === this.storeStateValue) return;
    this.storeStateValue = s;
    this.emit('store', s);
  }

  // ---- start-up recovery (synchronous: nothing is served before it finishes) ----

  recover(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.takeLock();
    const checkpoint = this.readCheckpoint();
    for (const [deviceId, epoch, seq] of this.readSeqs()) this.noteSeq(deviceId, epoch, seq);
    const numbers = readdirSync(this.dir)
      .map(parseSegmentFileName)
      .filter((n): n is number => n !== null)
      .sort((a, b) => a - b);
    for (const n of numbers) this.segments.push({ n, path: join(this.dir, segmentFileName(n)), end: 0, format: 2 });
    for (const seg of this.segments) {
      const undrainedFrom = checkpoint && seg.n === checkpoint.seg ? checkpoint.off : checkpoint && seg.n < checkpoint.seg ? Infinity : SEGMENT_HEADER_BYTES;
      this.scanSegment(seg, undrainedFrom);
    }
    // Segments wholly before the checkpoint were drained; their seqs are now in memory, so persist and drop them.
    const drained = checkpoint ? this.segments.filter((s) => s.n < checkpoint.seg) : [];
    if (drained.length > 0) {
      this.writeSeqsSync();
      for (const s of drained) unlinkSync(s.path);
      this.segments = this.segments.filter((s) => !drained.includes(s));
      this.fsyncDirSync();
    }
    const first = this.segments[0];
    if (checkpoint && first && first.n === checkpoint.seg) {
      this.drainPos = { seg: checkpoint.seg, off: Math.min(checkpoint.off, first.end) };
    } else if (first) {
      this.drainPos = { seg: first.n, off: SEGMENT_HEADER_BYTES };
    } else {
      this.drainPos = { seg: (checkpoint?.seg ?? 0) + 1, off: SEGMENT_HEADER_BYTES };
    }
    this.replayedReadings = this.depthReadings;
    if (this.replayedReadings > 0 || this.recoveredTornBytes > 0) {
      this.logger?.warn(
        { undrainedReadings: this.replayedReadings, undrainedBytes: this.depthBytes, tornBytesCut: this.recoveredTornBytes },
        'spool recovered: undrained readings are replayed to the store',
      );
    }
  }

  /** Validates a segment, cuts a torn or damaged tail, counts what lies at/after `undrainedFrom`. */
  private scanSegment(seg: Segment, undrainedFrom: number): void {
    const fd = openSync(seg.path, 'r+');
    try {
      const size = fstatSync(fd).size;
      const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
      const got = size >= SEGMENT_HEADER_BYTES ? readSync(fd, header, 0, SEGMENT_HEADER_BYTES, 0) : 0;
      const format = got < SEGMENT_HEADER_BYTES ? null : segmentFormat(header);
      if (format === 'unknown') {
        // Written by a newer hub: its records may be acknowledged readings not yet in the store.
        throw new SpoolFormatError(
          `${seg.path} is in spool format ${header.toString('latin1')}, which this hub cannot read; run the newer hub until /readyz shows the spool drained (depth 0), or keep the spool directory, before starting this version`,
        );
      }
      if (format === null) {
        // A segment created but killed before its header was durable holds no acknowledged record.
        this.logger?.warn({ segment: seg.path, size }, 'spool segment without a valid header: rewritten empty');
        ftruncateSync(fd, 0);
        writeSync(fd, SEGMENT_MAGIC, 0, SEGMENT_HEADER_BYTES, 0);
        fsyncSync(fd);
        this.recoveredTornBytes += size;
        seg.end = SEGMENT_HEADER_BYTES;
        return;
      }
      seg.format = format;
      let off = SEGMENT_HEADER_BYTES;
      let buf = Buffer.alloc(0);
      let bufStart = off;
      while (off < size) {
        let result = scanRecord(buf, off - bufStart);
        if (result.kind === 'incomplete') {
          const want = Math.max(READ_CHUNK_BYTES, result.needBytes);
          const len = Math.min(want, size - off);
          buf = Buffer.allocUnsafe(len);
          const n = readSync(fd, buf, 0, len, off);
          buf = buf.subarray(0, n);
          bufStart = off;
          result = scanRecord(buf, 0);
          if (result.kind === 'incomplete') {
            this.cut(fd, seg, off, size, 'record runs past the end of the file (torn write)');
            return;
          }
        }
        if (result.kind === 'invalid') {
          this.cut(fd, seg, off, size, result.reason);
          return;
        }
        const rec = result.record;
        if (rec.summary) this.noteSeq(rec.summary.deviceId, rec.summary.epoch, rec.summary.maxSeq);
        else for (const r of decodeRecords([rec], format)) this.noteSeq(r.deviceId, r.epoch, r.seq);
        if (off >= undrainedFrom) {
          this.headAcceptedAt ??= rec.acceptedAt;
          this.committedBytes += rec.totalBytes;
          this.committedReadings += rec.count;
        }
        off += rec.totalBytes;
      }
      seg.end = off;
    } finally {
      closeSync(fd);
    }
  }

  private cut(fd: number, seg: Segment, at: number, size: number, reason: string): void {
    this.logger?.warn({ segment: seg.path, at, cutBytes: size - at, reason }, 'spool: cutting a torn or damaged tail');
    ftruncateSync(fd, at);
    fsyncSync(fd);
    this.recoveredTornBytes += size - at;
    seg.end = at;
  }

  private takeLock(): void {
    if (openDirs.has(this.dir)) throw new SpoolLockedError(`spool ${this.dir} is already open in this process`);
    const path = join(this.dir, LOCK_FILE);
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      openDirs.add(this.dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readFileSync(path, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && pidAlive(holder)) {
      throw new SpoolLockedError(`spool ${this.dir} is in use by process ${holder}; one hub per data directory`);
    }
    // Left by a process that died (kill -9): take it over.
    writeFileSync(path, String(process.pid));
    openDirs.add(this.dir);
  }

  /** Gives the directory up after a failed start. */
  releaseLock(): void {
    if (!openDirs.has(this.dir)) return;
    rmSync(join(this.dir, LOCK_FILE), { force: true });
    openDirs.delete(this.dir);
  }

  private readCheckpoint(): Position | null {
    const path = join(this.dir, CHECKPOINT_FILE);
    if (!existsSync(path)) return null;
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as { seg?: unknown; off?: unknown };
      if (typeof parsed.seg === 'number' && typeof parsed.off === 'number') return { seg: parsed.seg, off: parsed.off };
    } catch {
      // fall through: an unreadable checkpoint means "replay everything" (safe: store writes are idempotent)
    }
    this.logger?.warn({ path }, 'spool checkpoint unreadable: replaying every segment');
    return null;
  }

  private readSeqs(): Array<[string, number, number]> {
    const path = join(this.dir, SEQS_FILE);
    if (!existsSync(path)) return [];
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as Array<[string, number, number]>;
    } catch {
      this.logger?.warn({ path }, 'spool durable-seqs file unreadable: ignoring it');
      return [];
    }
  }

  private seqsJson(): string {
    const rows: Array<[string, number, number]> = [];
    for (const [deviceId, epochs] of this.seqs) for (const [epoch, seq] of epochs) rows.push([deviceId, epoch, seq]);
    return JSON.stringify(rows);
  }

  private writeSeqsSync(): void {
    const path = join(this.dir, SEQS_FILE);
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, this.seqsJson());
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  }

  private fsyncDirSync(): void {
    const fd = openSync(this.dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  // ---- accept: append + group commit ----

  accept(readings: readonly StoredReading[]): Promise<void> {
    if (this.closing) return Promise.reject(new SpoolClosedError('the spool is closed'));
    if (this.failure) return Promise.reject(this.failedError());
    if (readings.length === 0) return Promise.resolve();
    let record: Buffer;
    try {
      record = encodeRecord(readings, this.clock.now());
    } catch (err) {
      return Promise.reject(err);
    }
    // The cap is checked before the append, so the spool may pass it by one record (a frame's worth).
    if (!this.accepting) {
      this.noteAccepting();
      return Promise.reject(new SpoolFullError(`the spool holds ${this.depthBytes} undrained bytes (limit ${this.maxBytes}); the store is not keeping up or is down`));
    }
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ record, readings, acceptedAt: this.clock.now(), resolve, reject });
      this.pendingBytes += record.length;
      this.committing ??= this.commitLoop();
    });
  }

  private async commitLoop(): Promise<void> {
    try {
      // Let the accept() calls of this tick join the first group.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.pending.length > 0) {
        const group = this.takeGroup();
        let groupBytes = 0;
        for (const p of group) groupBytes += p.record.length;
        this.pendingBytes -= groupBytes;
        let at: Position;
        try {
          at = await this.append(group, groupBytes);
        } catch (err) {
          this.failStop(err, group);
          return;
        }
        this.keepInTail(group, at);
        for (const p of group) {
          this.noteSeqs(p.readings);
          this.committedReadings += p.readings.length;
          this.acceptedReadingsCount += p.readings.length;
          this.headAcceptedAt ??= p.acceptedAt;
        }
        this.committedBytes += groupBytes;
        this.commits++;
        for (const p of group) p.resolve();
        this.noteAccepting();
        this.wake?.();
      }
    } finally {
      this.committing = null;
    }
  }

  /**
   * The next group to commit: the pending records, in order, up to groupMaxBytes (at least one record), or up
   * to a quarter of what is pending when more is: a backlog (a disk slower than the devices) is cleared in a
   * few commits, not in as many as groupMaxBytes would make.
   */
  private takeGroup(): Pending[] {
    const pending = this.pending;
    const limit = Math.max(this.groupMaxBytes, this.pendingBytes / 4);
    let bytes = pending[0]!.record.length;
    let n = 1;
    while (n < pending.length && bytes + pending[n]!.record.length <= limit) bytes += pending[n++]!.record.length;
    if (n === pending.length) {
      this.pending = [];
      return pending;
    }
    return pending.splice(0, n);
  }

  /**
   * The disk failed under an append: refuse `group` with the error, refuse everything queued behind it, and
   * stop taking readings until a restart. Durable seqs stay where the last fdatasync left them.
   */
  private failStop(err: unknown, group: Pending[]): void {
    const e = err as { message?: unknown; code?: unknown };
    this.failure = {
      message: String(e?.message ?? err),
      code: typeof e?.code === 'string' ? e.code : null,
      at: this.clock.now(),
    };
    this.writeErrors.spool_append = (this.writeErrors.spool_append ?? 0) + 1;
    const queued = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const refused = [...group, ...queued].reduce((n, p) => n + p.readings.length, 0);
    this.logger?.error(
      { err, segment: this.writeSeg?.path, refusedReadings: refused },
      'spool failed: an append or fdatasync to the spool failed, so the spool takes no more readings (devices keep them unacked); fix the disk and restart the hub',
    );
    for (const p of group) p.reject(err);
    const stopped = this.failedError();
    for (const p of queued) p.reject(stopped);
    this.noteAccepting();
    // Records committed before the failure are durable: let the drainer carry on with them.
    this.wake?.();
  }

  private failedError(): SpoolFailedError {
    return new SpoolFailedError(`the spool failed at ${new Date(this.failure!.at).toISOString()} (${this.failure!.message}) and takes no readings until the hub is restarted`);
  }

  /** Appends the group's records and makes them durable; returns where the first one starts. */
  private async append(group: Pending[], groupBytes: number): Promise<Position> {
    if (!this.writeSeg || !this.writeFd || (this.writeSeg.end > SEGMENT_HEADER_BYTES && this.writeSeg.end + groupBytes > this.segmentBytes)) {
      await this.rotate();
    }
    const seg = this.writeSeg!;
    const fd = this.writeFd!;
    try {
      const { bytesWritten } = await fd.writev(group.map((p) => p.record), seg.end);
      if (bytesWritten !== groupBytes) throw new Error(`short write to ${seg.path}: ${bytesWritten} of ${groupBytes} bytes`);
      await fd.datasync();
    } catch (err) {
      await this.discardTail(fd, seg);
      await fd.close().catch(() => undefined);
      this.writeFd = null;
      this.writeSeg = null;
      throw err;
    }
    const at = { seg: seg.n, off: seg.end };
    seg.end += groupBytes;
    return at;
  }

  /** Keeps a committed group's records for the drainer (or turns the tail off when it would grow too big). */
  private keepInTail(group: Pending[], at: Position): void {
    if (!this.tailOn) return;
    let readings = 0;
    for (const p of group) readings += p.readings.length;
    if (this.tailReadings + readings > this.memoryTailMax) {
      // Full: keep what is there (the drainer takes it first) and add nothing until it has caught up.
      this.tailOn = false;
      return;
    }
    const bytes = group.length === 1 ? group[0]!.record : Buffer.concat(group.map((p) => p.record));
    this.tail.push({ seg: at.seg, off: at.off, bytes, count: readings, acceptedAt: group[0]!.acceptedAt });
    this.tailReadings += readings;
  }

  /** noteSeq for each run of readings of one (device, epoch) with its highest seq, not for every reading. */
  private noteSeqs(readings: readonly StoredReading[]): void {
    let run = readings[0];
    if (!run) return;
    let max = run.seq;
    for (let i = 1; i < readings.length; i++) {
      const r = readings[i]!;
      if (r.deviceId === run.deviceId && r.epoch === run.epoch) {
        if (r.seq > max) max = r.seq;
        continue;
      }
      this.noteSeq(run.deviceId, run.epoch, max);
      run = r;
      max = r.seq;
    }
    this.noteSeq(run.deviceId, run.epoch, max);
  }

  /**
   * The batch starting at `start` from the in-memory tail, or null when the tail does not start there (the
   * drainer then reads the disk). Records before `start` are dropped: the drainer has them already.
   */
  private batchFromTail(start: Position): Batch | null {
    const tail = this.tail;
    while (this.tailHead < tail.length && before(tail[this.tailHead]!, start)) this.tailReadings -= tail[this.tailHead++]!.count;
    if (this.tailHead >= tail.length) {
      this.tail = [];
      this.tailHead = 0;
      return null;
    }
    const first = tail[this.tailHead]!;
    if (!this.follows(first, start)) return null;
    const readings = new RecordBatch();
    let bytes = 0;
    let last = first;
    while (this.tailHead < tail.length && readings.length < this.batchReadings) {
      const next = tail[this.tailHead]!;
      // Records that were not kept (the tail was full) lie between: the drainer reads those from disk.
      if (next !== first && !this.follows(next, { seg: last.seg, off: last.off + last.bytes.length })) break;
      // The group's records, as many as the batch takes; the rest of the group stays for the next batch.
      let o = 0;
      let taken = 0;
      while (o < next.bytes.length && readings.length < this.batchReadings) {
        const view = recordView(next.bytes.subarray(o));
        readings.addRecord(view);
        taken += view.count;
        o += view.totalBytes;
      }
      bytes += o;
      if (o < next.bytes.length) {
        const rest = next.bytes.subarray(o);
        last = { seg: next.seg, off: next.off, bytes: next.bytes.subarray(0, o), count: taken, acceptedAt: next.acceptedAt };
        tail[this.tailHead] = { seg: next.seg, off: next.off + o, bytes: rest, count: next.count - taken, acceptedAt: recordView(rest).acceptedAt };
        break;
      }
      last = next;
      this.tailHead++;
    }
    this.tailReadings -= readings.length;
    if (this.tailHead > 1024 && this.tailHead * 2 > tail.length) {
      this.tail = tail.slice(this.tailHead);
      this.tailHead = 0;
    }
    return { readings, start: { ...start }, end: { seg: last.seg, off: last.off + last.bytes.length }, bytes, firstAcceptedAt: first.acceptedAt };
  }

  /** True if the record at `rec` is the next one after position `pos` (same place, or the next segment's first). */
  private follows(rec: Position, pos: Position): boolean {
    if (rec.seg === pos.seg) return rec.off === pos.off;
    if (rec.off !== SEGMENT_HEADER_BYTES) return false;
    const i = this.segments.findIndex((s) => s.n === pos.seg);
    // pos at the end of a complete segment, rec in the segment after it; or pos in a segment already deleted.
    if (i === -1) return pos.seg < rec.seg && !this.segments.some((s) => s.n > pos.seg && s.n < rec.seg);
    return pos.off >= this.segments[i]!.end && this.segments[i + 1]?.n === rec.seg;
  }

  /**
   * Makes the bytes of a failed group unreadable as records. After a failed fdatasync the page cache may still
   * hold them whole and CRC-valid while the disk does not: a hub restarted without a reboot would read them
   * back, count their seqs as durable and tell the device so (WELCOME.ackedSeq). So the record header at the
   * last good length is zeroed first (length 0: start-up recovery cuts the file there) and then the file is cut
   * back; each step is tried even if the one before failed, and neither counts on the disk working.
   */
  private async discardTail(fd: FileHandle, seg: Segment): Promise<void> {
    const failures: Record<string, string> = {};
    await fd.write(Buffer.alloc(RECORD_HEADER_BYTES), 0, RECORD_HEADER_BYTES, seg.end).catch((err: unknown) => {
      failures.zeroHeader = String(err);
    });
    await fd.truncate(seg.end).catch((err: unknown) => {
      failures.truncate = String(err);
    });
    await fd.datasync().catch((err: unknown) => {
      failures.datasync = String(err);
    });
    if (Object.keys(failures).length > 0) {
      this.logger?.error({ segment: seg.path, at: seg.end, failures }, 'spool: could not cut the failed append back; start-up recovery will cut the file at the first invalid record');
    }
  }

  private async rotate(): Promise<void> {
    if (this.writeFd) {
      await this.writeFd.close();
      this.writeFd = null;
    }
    const last = this.segments[this.segments.length - 1];
    const n = Math.max(last ? last.n + 1 : 1, this.drainPos.seg);
    const seg: Segment = { n, path: join(this.dir, segmentFileName(n)), end: 0, format: 2 };
    const fd = await open(seg.path, 'wx');
    try {
      await fd.write(SEGMENT_MAGIC, 0, SEGMENT_HEADER_BYTES, 0);
      await fd.datasync();
      const dirFd = await open(this.dir, 'r');
      try {
        await dirFd.sync();
      } finally {
        await dirFd.close();
      }
    } catch (err) {
      await fd.close().catch(() => undefined);
      await unlink(seg.path).catch(() => undefined);
      throw err;
    }
    seg.end = SEGMENT_HEADER_BYTES;
    this.segments.push(seg);
    this.writeSeg = seg;
    this.writeFd = fd;
  }

  // ---- drainer ----

  startDrainer(): void {
    this.tailOn = this.depthReadings === 0 && this.memoryTailMax > 0;
    this.drainer = this.drainLoop().catch((err: unknown) => {
      this.logger?.error({ err }, 'spool drainer stopped by an unexpected error');
    });
  }

  /**
   * Keeps up to drainWindow batches in the store at once, started in spool order and completed (checkpoint
   * moved past them) in spool order. With one batch at a time the store idled at every batch boundary: while
   * the first request of a batch was being built, while its last request ran alone, and during the checkpoint's
   * fdatasync. A later batch that lands before an earlier one is harmless: writes are idempotent, and the
   * checkpoint only ever passes batches whose write, and every write before it, succeeded.
   */
  private async drainLoop(): Promise<void> {
    const sleep = abortableSleep(this.stop.signal);
    const inFlight: InFlightBatch[] = [];
    let inFlightReadings = 0;
    /** Where the next batch is read from: after the last batch in flight, or the drain position. */
    const readFrom = (): Position => inFlight[inFlight.length - 1]?.batch.end ?? this.drainPos;
    let ioFailures = 0;
    /** The last read found nothing past the batches in flight although the counters say there is more. */
    let filesBehindCounters = false;
    while (!this.closing) {
      try {
        if (inFlight.length === 0 && this.depthReadings === 0) {
          this.settleDrainWaiters();
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
          this.wake = null;
          if (this.closing) break;
          if (this.lingerMs > 0 && this.depthReadings < this.batchReadings) await this.linger(sleep);
          // Look again: a wake-up can come with nothing to drain (the spool failing, for one).
          continue;
        }
        if (inFlight.length < this.drainWindow && this.depthReadings > inFlightReadings && !filesBehindCounters) {
          // Let the requests of the batches in flight reach their sockets before reading (in slices) the next.
          if (inFlight.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
          const batch = await this.readBatch(readFrom());
          if (batch.bytes > 0) {
            if (inFlight.length === 0) this.headAcceptedAt = batch.firstAcceptedAt ?? this.headAcceptedAt;
            inFlight.push({ batch, writing: batch.readings.length > 0 ? this.writeWithRetry(batch.readings, inFlight[inFlight.length - 1]?.writing ?? null) : Promise.resolve(true) });
            inFlightReadings += batch.readings.length;
            continue;
          }
          if (inFlight.length === 0) {
            // The counters say there is more, the files do not (only after damage was skipped): trust the files.
            this.logger?.error({ depthReadings: this.depthReadings, depthBytes: this.depthBytes }, 'spool: undrained count disagrees with the segment files; resetting it');
            this.committedReadings = this.drainedReadingsCount;
            this.committedBytes = this.drainedBytes;
            continue;
          }
          // Readings of damaged records skipped in a batch still in flight: settle the counters once it is done.
          filesBehindCounters = true;
        }
        const head = inFlight[0];
        if (!head) continue;
        // With room in the window, a full batch more starts without waiting for the oldest write; less than
        // a batch waits for it (many small requests would cost the store more than they save).
        if (inFlight.length < this.drainWindow && !filesBehindCounters && !(await this.settledOrFullBatch(head.writing, inFlightReadings))) continue;
        if (!(await head.writing)) break; // closing while the store was failing
        filesBehindCounters = false;
        inFlight.shift();
        inFlightReadings -= head.batch.readings.length;
        this.completeBatch(head.batch, inFlight[0]?.batch.firstAcceptedAt ?? null);
        ioFailures = 0;
      } catch (err) {
        // Reading a segment failed (I/O error): keep the position, retry.
        // Writes in flight finish first; those that succeeded in order count as drained.
        await this.settleInFlight(inFlight).catch(() => undefined);
        inFlight.length = 0;
        inFlightReadings = 0;
        filesBehindCounters = false;
        this.writeErrors.spool_io = (this.writeErrors.spool_io ?? 0) + 1;
        this.logger?.error({ err }, 'spool drainer: file operation failed; retrying');
        await sleep(this.backoff.delay(ioFailures++)).catch(() => undefined);
      }
    }
    // Closing: batches whose write still succeeds are recorded as drained, so a restart does not replay them.
    await this.settleInFlight(inFlight).catch((err: unknown) => this.logger?.error({ err }, 'spool drainer: could not record the last drained batches'));
  }

  /**
   * Waits up to lingerMs for a batch to fill, and no longer than it takes to fill (under a flood the first
   * batch used to wait the whole 100 ms while the store sat idle).
   */
  private async linger(sleep: (ms: number) => Promise<void>): Promise<void> {
    let over = false;
    void sleep(this.lingerMs)
      .catch(() => undefined)
      .then(() => {
        over = true;
        this.wake?.(); // every wait of the drainer checks its condition again when woken
      });
    while (!over && !this.closing && this.depthReadings < this.batchReadings) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
  }

  /** True once `writing` settles; false before that if a full batch more is waiting, or the spool closes. */
  private async settledOrFullBatch(writing: Promise<boolean>, inFlightReadings: number): Promise<boolean> {
    let settled = false;
    const done = (): void => {
      settled = true;
      this.wake?.();
    };
    void writing.then(done, done); // a rejection is the drain loop's to handle (it awaits `writing` next)
    while (!settled && !this.closing && this.depthReadings - inFlightReadings < this.batchReadings) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
    return settled;
  }

  /** Waits for the writes in flight; completes, in order, those that succeeded before the first that failed. */
  private async settleInFlight(inFlight: InFlightBatch[]): Promise<void> {
    const results = await Promise.all(inFlight.map((f) => f.writing));
    for (let i = 0; i < inFlight.length && results[i]; i++) this.completeBatch(inFlight[i]!.batch, inFlight[i + 1]?.batch.firstAcceptedAt ?? null);
  }

  /**
   * Writes the checkpoint at the drain position in the background, one write at a time; a write queued
   * behind one in progress takes whatever the position is by then. The drainer does not wait for it: its
   * fdatasync used to leave the store idle between batches. A checkpoint that lags only means a longer
   * (idempotent) replay after a crash.
   */
  private schedulePersist(): void {
    if (this.persistQueued) return;
    this.persistQueued = true;
    this.persistChain = this.persistChain.then(async () => {
      this.persistQueued = false;
      try {
        await this.persistProgress();
      } catch (err) {
        // The next batch writes it again; until then a restart replays from the last checkpoint written.
        this.writeErrors.spool_io = (this.writeErrors.spool_io ?? 0) + 1;
        this.logger?.error({ err }, 'spool: writing the checkpoint failed; a restart would replay more than needed');
      }
    });
  }

  /** The batch is in the store: move the drain position past it (the checkpoint follows, see schedulePersist). */
  private completeBatch(batch: Batch, nextAcceptedAt: number | null): void {
    this.drainPos = batch.end;
    this.drainedBytes += batch.bytes;
    this.drainedReadingsCount += batch.readings.length;
    this.headAcceptedAt = this.depthReadings === 0 ? null : (nextAcceptedAt ?? this.headAcceptedAt);
    this.schedulePersist();
    this.noteAccepting();
    this.emit('drained', batch.readings.length);
  }

  /**
   * True once written; false if the spool closed while the store was failing. `previous` is the write of the
   * batch before this one, if still in flight: after a failure this batch waits for it instead of retrying
   * on its own, so once an outage ends the store gets the batches in spool order again.
   */
  private async writeWithRetry(readings: RecordBatch, previous: Promise<boolean> | null): Promise<boolean> {
    let checked = false;
    for (let attempt = 0; ; attempt++) {
      try {
        if (this.store.writeBatch) await this.store.writeBatch(readings);
        else await this.store.write(readings.toArray());
        this.setStoreState('up');
        return true;
      } catch (err) {
        if (err instanceof UnreadableBatchError && !checked) {
          // Not the store's fault, and no retry would read the record: write the batch without it (the batch
          // still counts it as drained, so the drain moves past it). Part of the batch may be stored already;
          // writing it again is harmless.
          checked = true;
          readings = readings.readable((record, why) => {
            this.noteDamage({ offset: record.offset, readings: record.count, device: record.summary?.deviceId, reason: why.message }, 'spool: a record does not decode; its readings are skipped');
          });
          attempt--;
          continue;
        }
        // Past this point an UnreadableBatchError (readings that passed the check, refused again: a hub bug) is
        // retried with back-off like a store failure, under its own kind: the spool keeps the readings.
        const hints = err as { kind?: unknown; retryAfterMs?: unknown; message?: unknown };
        const kind = typeof hints.kind === 'string' ? hints.kind : 'error';
        this.writeErrors[kind] = (this.writeErrors[kind] ?? 0) + 1;
        this.lastWriteError = { kind, message: String(hints.message ?? err), at: this.clock.now() };
        if (this.storeStateValue !== 'down') this.logger?.warn({ err, kind }, 'store write failed: the spool keeps the readings and retries');
        this.setStoreState('down');
        if (this.closing) return false;
        if (previous) {
          const ok = await previous;
          previous = null;
          if (!ok || this.closing) return false;
          continue; // the store just took the batch before: try again at once
        }
        const retryAfter = typeof hints.retryAfterMs === 'number' ? hints.retryAfterMs : null;
        this.backoffAbort = new AbortController();
        const stopOrWake = AbortSignal.any([this.stop.signal, this.backoffAbort.signal]);
        await abortableSleep(stopOrWake)(this.backoff.delay(attempt, retryAfter)).catch(() => undefined);
        this.backoffAbort = null;
        if (this.closing) return false;
      }
    }
  }

  /** Damage found while draining, skipped: counted as spool_damage and logged. */
  private noteDamage(details: object, message: string): void {
    this.writeErrors.spool_damage = (this.writeErrors.spool_damage ?? 0) + 1;
    this.logger?.error(details, message);
  }

  /** Format-1 (JSON) records decoded; one that does not decode is skipped, as a binary one is (see writeWithRetry). */
  private decodeJsonRecords(records: RecordView[]): StoredReading[] {
    try {
      return decodeRecords(records, 1);
    } catch {
      const out: StoredReading[] = [];
      for (const record of records) {
        try {
          for (const r of decodeRecords([record], 1)) out.push(r);
        } catch (err) {
          this.noteDamage({ offset: record.offset, readings: record.count, reason: String(err) }, 'spool: a record does not decode; its readings are skipped');
        }
      }
      return out;
    }
  }

  retryNow(): void {
    this.backoffAbort?.abort();
  }

  /**
   * Reads whole committed records from `start`, up to about batchReadings readings. Yields to the event loop
   * when its time slice is used up: it runs while a store write is in flight, whose request bodies still have
   * to reach their sockets, and while devices are served.
   */
  private async readBatch(start: Position): Promise<Batch> {
    const fromMemory = this.batchFromTail(start);
    if (fromMemory) return fromMemory;
    let nextYield = READ_SLICE_READINGS;
    let reachedEnd = false;
    const readings = new RecordBatch();
    // Format-2 records go into the batch as they are (the store decodes them as it encodes its writes). Format-1
    // records are decoded a slice at a time (one JSON.parse for many small records is much cheaper than one
    // each), and always before moving to another segment, whose format may differ.
    let pending: RecordView[] = [];
    let pendingCount = 0;
    let pendingFormat: SegmentFormat = 2;
    const flush = (): void => {
      if (pending.length === 0) return;
      if (pendingFormat === 2) for (const rec of pending) readings.addRecord(rec);
      else readings.addReadings(this.decodeJsonRecords(pending));
      pending = [];
      pendingCount = 0;
    };
    const pos = { ...start };
    let bytes = 0;
    let firstAcceptedAt: number | null = null;
    while (readings.length + pendingCount < this.batchReadings) {
      const segIndex = this.segments.findIndex((s) => s.n === pos.seg);
      const seg = this.segments[segIndex];
      if (!seg) {
        const next = this.segments.find((s) => s.n > pos.seg);
        if (!next) {
          reachedEnd = true;
          break;
        }
        pos.seg = next.n;
        pos.off = SEGMENT_HEADER_BYTES;
        continue;
      }
      if (pos.off >= seg.end) {
        const next = this.segments[segIndex + 1];
        // A later segment exists only once this one is complete.
        if (!next) {
          reachedEnd = true;
          break;
        }
        pos.seg = next.n;
        pos.off = SEGMENT_HEADER_BYTES;
        continue;
      }
      const fd = this.readFdFor(seg);
      let len = Math.min(READ_CHUNK_BYTES, seg.end - pos.off);
      let buf = Buffer.allocUnsafe(len);
      len = readSync(fd, buf, 0, len, pos.off);
      buf = buf.subarray(0, len);
      let o = 0;
      let skipped = false;
      while (o < buf.length && readings.length + pendingCount < this.batchReadings) {
        let result = scanRecord(buf, o);
        if (result.kind === 'incomplete' && o === 0) {
          // One record larger than the read chunk.
          const big = Buffer.allocUnsafe(Math.min(result.needBytes, seg.end - pos.off));
          readSync(fd, big, 0, big.length, pos.off);
          buf = big;
          result = scanRecord(buf, 0);
          // Committed data ends on a record boundary: a record running past it has a damaged length.
          if (result.kind === 'incomplete') result = { kind: 'invalid', reason: `record length runs past the committed end of the segment (${seg.end})` };
        }
        if (result.kind === 'incomplete') break;
        if (result.kind === 'invalid') {
          // Damage inside data that was durable: nothing can be read past it in this segment.
          this.noteDamage({ segment: seg.path, at: pos.off + o, reason: result.reason }, 'spool: damaged record in committed data; skipping the rest of the segment');
          bytes += seg.end - (pos.off + o);
          pos.off = seg.end;
          skipped = true;
          break;
        }
        const rec = result.record;
        firstAcceptedAt ??= rec.acceptedAt;
        if (pendingFormat !== seg.format) flush();
        pendingFormat = seg.format;
        pending.push(rec);
        pendingCount += rec.count;
        bytes += rec.totalBytes;
        o += rec.totalBytes;
        if (readings.length + pendingCount >= nextYield) {
          flush();
          nextYield = readings.length + READ_SLICE_READINGS;
          if (this.slicer.due()) await this.slicer.yield();
        }
      }
      if (!skipped) pos.off += o;
    }
    flush();
    this.drainedFromDiskCount += readings.length;
    // Caught up with what is committed: from here on the drainer can take new records from memory.
    const last = this.segments[this.segments.length - 1];
    if (reachedEnd || (last !== undefined && pos.seg === last.n && pos.off >= last.end)) this.tailOn = this.memoryTailMax > 0;
    return { readings, start: { ...start }, end: pos, bytes, firstAcceptedAt };
  }

  private readFdFor(seg: Segment): number {
    if (this.readFd?.n === seg.n) return this.readFd.fd;
    if (this.readFd) closeSync(this.readFd.fd);
    this.readFd = { n: seg.n, fd: openSync(seg.path, 'r') };
    return this.readFd.fd;
  }

  /** Durable checkpoint at the drain position; then drop segments wholly before it. */
  private async persistProgress(): Promise<void> {
    const path = join(this.dir, CHECKPOINT_FILE);
    const tmp = `${path}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify({ seg: this.drainPos.seg, off: this.drainPos.off }));
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const done = this.segments.filter((s) => s.n < this.drainPos.seg && s !== this.writeSeg);
    if (done.length === 0) return;
    // The seqs of the deleted records must outlive them: persist the high-water marks first.
    const seqsPath = join(this.dir, SEQS_FILE);
    await writeFile(`${seqsPath}.tmp`, this.seqsJson());
    const sh = await open(`${seqsPath}.tmp`, 'r+');
    try {
      await sh.datasync();
    } finally {
      await sh.close();
    }
    await rename(`${seqsPath}.tmp`, seqsPath);
    for (const s of done) {
      if (this.readFd?.n === s.n) {
        closeSync(this.readFd.fd);
        this.readFd = null;
      }
      await unlink(s.path);
    }
    this.segments = this.segments.filter((s) => !done.includes(s));
    const dirFd = await open(this.dir, 'r');
    try {
      await dirFd.sync();
    } finally {
      await dirFd.close();
    }
  }

  private settleDrainWaiters(): void {
    if (this.depthReadings !== 0 || this.pending.length > 0) return;
    // Drained includes the checkpoint saying so (tests inject disk faults once nothing is in flight).
    const waiters = [...this.drainWaiters];
    this.drainWaiters.clear();
    void this.persistChain.then(() => {
      for (const w of waiters) w.resolve();
    });
  }

  /** Resolves when every reading whose accept() resolved is in the store. */
  whenDrained(timeoutMs = 30_000): Promise<void> {
    if (this.closed) return Promise.reject(new SpoolClosedError('the spool is closed'));
    if (this.depthReadings === 0 && this.pending.length === 0 && !this.committing) return this.persistChain;
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: (): void => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err: Error): void => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        this.drainWaiters.delete(waiter);
        reject(new Error(`spool not drained within ${timeoutMs} ms: ${this.depthReadings} readings undrained, store ${this.storeStateValue}`));
      }, timeoutMs);
      this.drainWaiters.add(waiter);
    });
  }

  // ---- shutdown ----

  /**
   * Commits what accept() has pending (those calls resolve), stops the drainer (a store write in flight
   * finishes first, a back-off wait is cut short) and releases the directory. Undrained records stay on disk
   * and are replayed by the next start.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    while (this.committing) await this.committing;
    this.stop.abort(new SpoolClosedError('the spool is closed'));
    this.wake?.();
    await this.drainer;
    await this.persistChain;
    this.closed = true;
    for (const w of this.drainWaiters) w.reject(new SpoolClosedError(`the spool closed with ${this.depthReadings} readings undrained (kept on disk)`));
    this.drainWaiters.clear();
    if (this.readFd) closeSync(this.readFd.fd);
    this.readFd = null;
    await this.writeFd?.close();
    this.writeFd = null;
    try {
      this.writeSeqsSync();
    } catch (err) {
      // Only a head start for the next scan: every seq in it is also in a segment file or in the file as it was.
      this.logger?.error({ err }, 'spool: could not save the durable seqs at close; the next start finds them in the segments');
    }
    rmSync(join(this.dir, LOCK_FILE), { force: true });
    openDirs.delete(this.dir);
  }
}

/** Spool directories open in this process (the lock file's PID cannot tell two of ours apart). */
const openDirs = new Set<string>();

/** True if position `a` comes before `b` in the spool. */
function before(a: Position, b: Position): boolean {
  return a.seg < b.seg || (a.seg === b.seg && a.off < b.off);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Size of the spool's segment files on disk (for operators and tests). */
export function spoolDiskBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) if (parseSegmentFileName(name) !== null) total += statSync(join(dir, name)).size;
  return total;
}
