/**
 * TimeSeriesStore on InfluxDB (docs/storage.md). Line protocol comes from the client library's Point
 * (influx-schema.ts); writes go in chunks of thousands of lines; queries are InfluxQL over /query, which
 * 1.x serves natively and 2.x/3.x through their v1-compatibility API.
 *
 * Failure handling of a write, per chunk:
 * - no answer, 5xx, 429, 401/403, 404: transient. Retried with exponential back-off and full jitter, a
 *   Retry-After is honoured; after `maxAttempts` the write rejects (nothing is dropped; the caller, usually
 *   the spool's drainer, retries the batch later). Auth and "database not found" count as transient because
 *   dead-lettering every reading over a configuration mistake would lose data an operator can still save.
 * - field type conflict (a metric re-declared with another kind): the server's message names the field and
 *   the type it holds. That is remembered, the offending values are left out of the lines (and recorded in
 *   the dead-letter file), and the chunk is sent again: the other values of those readings still land.
 * - any other 4xx (and a 1.x "partial write" that dropped points for another reason): if the server says it
 *   dropped every point of the chunk, the chunk is dead-lettered whole; otherwise the chunk is split in two
 *   and each half sent on its own, down to single lines, so exactly the refused lines are dead-lettered and
 *   the rest is written. Re-sending lines the server already took is harmless: same point, same timestamp.
 */
import { appendFile, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { abortableSleep, createBackoff, type Backoff, type BackoffOptions } from '../core/backoff.js';
import { applyInfluxRetention } from './retention.js';
import { FairSlicer } from '../core/fair-slice.js';
import {
  createV1Sender,
  createV2Sender,
  InfluxHttp,
  InfluxTransportError,
  type LineSender,
  type WriteOutcome,
} from './influx-http.js';
import {
  DEFAULT_MEASUREMENT,
  DEVICE_TAG,
  fieldKeyOf,
  metricOfField,
  fieldTypeOf,
  quoteIdent,
  quoteString,
  LineEncoder,
  type InfluxFieldType,
  type InfluxQLResult,
} from './influx-schema.js';
import {
  UnreadableBatchError,
  type LatestValue,
  type ReadingBatch,
  type ReadingVisitor,
  type ScalarValue,
  type SeriesPoint,
  type SeriesQuery,
  type StoredReading,
  type StoredValue,
  type TimeSeriesStore,
} from './types.js';

export interface InfluxStoreConfig {
  /** Base URL, e.g. http://127.0.0.1:8086. */
  url: string;
  /** v1 mode: database (1.x), or the bucket name mapped as a database (2.x/3.x v1-compat). */
  db?: string | undefined;
  /** v1 mode: retention policy to write to and read from; default: the database's default policy. */
  rp?: string | undefined;
  /** v2 mode (with bucket and token): writes through the client library's WriteApi. */
  org?: string | undefined;
  bucket?: string | undefined;
  /** Sent as `Authorization: Token <token>`. */
  token?: string | undefined;
  /** 1.x authentication (Basic). */
  username?: string | undefined;
  password?: string | undefined;
  measurement?: string;
  /** Lines per write request. Default 5000. */
  batchLines?: number;
  /** Write requests in flight at once. Default 2. */
  concurrency?: number;
  gzip?: boolean;
  /** Per request. Default 10 000. */
  timeoutMs?: number;
  /** Attempts per chunk for transient failures within one write() call. Default 3. */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /**
   * Retention in days applied to the 1.x database's default retention policy at start-up (0 = keep forever).
   * null or undefined: leave it alone. Ignored for 2.x/3.x (set the bucket's retention there).
   */
  retentionDays?: number | null | undefined;
  /** JSON-lines file for lines and values InfluxDB refused for good. null: count them only. */
  deadLetterPath?: string | null | undefined;
  /** How long a learned field type is trusted before values of another type are tried again. Default 10 min. */
  conflictMemoryMs?: number;
  /** ms since the Unix epoch; injectable for tests. */
  clock?: { now(): number };
  /** Injectable wait for retries (tests); default setTimeout, cut short by close(). */
  sleep?: (ms: number) => Promise<void>;
  logger?: StorageLogger;
}

/** Pino-compatible subset (fastify's app.log fits). */
export interface StorageLogger {
  info?(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type InfluxWriteErrorKind =
  | 'unreachable'
  | 'timeout'
  | 'throttled'
  | 'server'
  | 'auth'
  | 'not_found'
  | 'rejected'
  | 'type_conflict';

export interface InfluxStoreStats {
  mode: 'v1' | 'v2';
  /** X-Influxdb-Version of the server, once seen. */
  serverVersion: string | null;
  requests: number;
  /** Lines the server answered 2xx for (a line re-sent after a split counts again). */
  linesWritten: number;
  /** Failed requests by kind (transient ones included, each attempt counted). */
  writeErrors: Record<InfluxWriteErrorKind, number>;
  /** Lines refused for good (recorded in the dead-letter file). */
  deadLetteredLines: number;
  /** Values left out of their reading because of a field type conflict. */
  deadLetteredValues: number;
  lastError: { kind: InfluxWriteErrorKind; message: string; at: number } | null;
}

/** A write that did not become durable; retry the same readings later. */
export class InfluxWriteError extends Error {
  override readonly name = 'InfluxWriteError';
  constructor(
    message: string,
    readonly kind: InfluxWriteErrorKind,
    /** The server's Retry-After, ms, if it sent one. */
    readonly retryAfterMs: number | null,
  ) {
    super(message);
  }
}

/** The aggregate does not apply to the metric's type (e.g. mean of a string). The history API answers 400. */
export class UnsupportedAggregateError extends Error {
  override readonly name = 'UnsupportedAggregateError';
  readonly code = 'UNSUPPORTED_AGGREGATE';
}

export class InfluxQueryError extends Error {
  override readonly name = 'InfluxQueryError';
}

export type { InfluxQLResult, InfluxQLSeries } from './influx-schema.js';

export interface InfluxStore extends TimeSeriesStore {
  readonly kind: 'influxdb';
  /** Pings the server and, on 1.x, creates the database and applies retention. Runs on first use if not called. */
  init(): Promise<void>;
  stats(): InfluxStoreStats;
  writeBatch(batch: ReadingBatch): Promise<void>;
  /** Runs InfluxQL (statements separated by `;`) against the configured database/bucket. */
  query(q: string): Promise<InfluxQLResult[]>;
}

/** Mutable: a field type conflict rewrites `skipped` in place. */
interface Entry {
  readonly reading: StoredReading;
  /** Values left out of the reading's line because the server holds their field with another type. */
  skipped: readonly StoredValue[];
}

/**
 * Lines of some readings, separated by \n, as one request body. A chunk is split (to find the lines a server
 * refused) by encoding the halves of its entries again: that path is rare, and keeping no per-line offsets
 * lets the common path build the body as a few long strings, one buffer write per thousand lines.
 */
interface Chunk {
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

interface DeadLetter {
  kind: 'rejected' | 'type_conflict';
  reason: string;
  status: number;
  lines?: string[];
  values?: Array<{ deviceId: string; epoch: number; seq: number; ts: number; metric: string; kind: string; value: ScalarValue }>;
}

const NO_VALUES: readonly StoredValue[] = Object.freeze([]);

const KINDS: readonly InfluxWriteErrorKind[] = ['unreachable', 'timeout', 'throttled', 'server', 'auth', 'not_found', 'rejected', 'type_conflict'];

const CONFLICT_PATTERN = /input field "([^"]*)" on measurement "[^"]*" is type (\w+), already exists as type (\w+)/;
const DROPPED_PATTERN = /dropped=(\d+)/;
/** Lines appended to one string before it is written to the body's buffer. */
const TEXT_LINES = 1024;
/** Lines built between two looks at the clock (FairSlicer.due). */
const CHECK_LINES = 128;

/**
 * A request body, line by line: the lines go into one string, written to a buffer a thousand lines at a time
 * (one buffer write per line cost more, and so did keeping the line strings). As a ReadingVisitor it encodes
 * visited readings with the LineEncoder.
 */
class BodyBuilder implements ReadingVisitor {
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

function toEntries(readings: readonly StoredReading[]): Entry[] {
  return readings.map((reading): Entry => ({ reading, skipped: NO_VALUES }));
}

/** Creates the store; no I/O happens until init() or the first call. */
export function createInfluxStore(cfg: InfluxStoreConfig): InfluxStore {
  return new InfluxStoreImpl(cfg);
}

class InfluxStoreImpl implements InfluxStore {
  readonly kind = 'influxdb' as const;
  private readonly mode: 'v1' | 'v2';
  private readonly db: string;
  private readonly measurement: string;
  private readonly batchLines: number;
  private readonly concurrency: number;
  private readonly maxAttempts: number;
  private readonly conflictMemoryMs: number;
  private readonly clock: { now(): number };
  private readonly backoff: Backoff;
  private readonly abort = new AbortController();
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly http: InfluxHttp;
  private readonly sender: LineSender;
  private readonly logger: StorageLogger | undefined;
  private readonly lineEncoder: LineEncoder;
  /** Building bodies takes turns with device ingest (see FairSlicer). */
  private readonly slicer = new FairSlicer();
  /** Field -> the type the server holds it as, learned from conflict errors. */
  private readonly fieldTypes = new Map<string, { type: InfluxFieldType; at: number }>();
  private setup: Promise<void> | null = null;
  private deadLetterChain: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly counters: InfluxStoreStats;

  constructor(private readonly cfg: InfluxStoreConfig) {
    const v2 = cfg.org !== undefined && cfg.bucket !== undefined;
    if (v2 && !cfg.token) throw new Error('InfluxDB 2.x write API needs INFLUX_TOKEN together with INFLUX_ORG and INFLUX_BUCKET');
    if (!v2 && !cfg.db) throw new Error('InfluxDB store needs INFLUX_DB (1.x / v1-compat) or INFLUX_ORG + INFLUX_BUCKET + INFLUX_TOKEN (2.x)');
    this.mode = v2 ? 'v2' : 'v1';
    this.db = v2 ? cfg.bucket! : cfg.db!;
    this.measurement = cfg.measurement ?? DEFAULT_MEASUREMENT;
    this.lineEncoder = new LineEncoder(this.measurement);
    this.batchLines = Math.max(1, cfg.batchLines ?? 5000);
    this.concurrency = Math.max(1, cfg.concurrency ?? 2);
    this.maxAttempts = Math.max(1, cfg.maxAttempts ?? 3);
    this.conflictMemoryMs = cfg.conflictMemoryMs ?? 10 * 60_000;
    this.clock = cfg.clock ?? { now: () => Date.now() };
    this.backoff = createBackoff(cfg.backoff);
    this.sleep = cfg.sleep ?? abortableSleep(this.abort.signal);
    this.logger = cfg.logger;
    const timeoutMs = cfg.timeoutMs ?? 10_000;
    this.http = new InfluxHttp({ url: cfg.url, token: cfg.token, username: cfg.username, password: cfg.password, timeoutMs });
    const now = (): number => this.clock.now();
    this.sender = v2
      ? createV2Sender({ url: cfg.url, org: cfg.org!, bucket: cfg.bucket!, token: cfg.token!, timeoutMs, gzip: cfg.gzip ?? false, agent: this.http.keepAliveAgent, now })
      : createV1Sender(this.http, { db: this.db, rp: cfg.rp, gzip: cfg.gzip ?? false, now });
    this.counters = {
      mode: this.mode,
      serverVersion: null,
      requests: 0,
      linesWritten: 0,
      writeErrors: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<InfluxWriteErrorKind, number>,
      deadLetteredLines: 0,
      deadLetteredValues: 0,
      lastError: null,
    };
  }

  stats(): InfluxStoreStats {
    return { ...this.counters, writeErrors: { ...this.counters.writeErrors } };
  }

  init(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('InfluxDB store is closed'));
    this.setup ??= this.runSetup().catch((err: unknown) => {
      this.setup = null; // try again on the next call
      throw err;
    });
    return this.setup;
  }

  private async runSetup(): Promise<void> {
    const version = await this.pingVersion();
    // CREATE DATABASE and retention policies exist on 1.x only; 2.x buckets and 3.x databases are managed
    // by their own APIs (3.x creates a database on first write).
    if (this.mode !== 'v1' || !version?.startsWith('1.')) return;
    // Both need admin rights on a 1.x with authentication; a user with write access to an existing database
    // must still be able to run the hub, so a refusal is logged, not fatal (a missing database shows up as
    // 404 on write, which runs this set-up again).
    try {
      await this.query(`CREATE DATABASE ${quoteIdent(this.db)}`);
    } catch (err) {
      this.logger?.warn({ err, db: this.db }, 'InfluxDB: CREATE DATABASE failed; assuming the database exists');
      return;
    }
    if (this.cfg.retentionDays !== undefined && this.cfg.retentionDays !== null) {
      try {
        const done = await applyInfluxRetention((q) => this.query(q), this.db, this.cfg.retentionDays, this.cfg.rp);
        if (done !== 'unchanged') this.logger?.info?.({ db: this.db, retentionDays: this.cfg.retentionDays, done }, 'InfluxDB retention policy applied');
      } catch (err) {
        this.logger?.warn({ err, db: this.db, retentionDays: this.cfg.retentionDays }, 'InfluxDB: could not apply the retention policy (admin rights needed); data is kept per the existing policy');
      }
    }
  }

  private async pingVersion(): Promise<string | null> {
    const res = await this.http.request('GET', '/ping', {});
    if (res.status < 200 || res.status >= 300) {
      throw new InfluxWriteError(`InfluxDB GET /ping answered ${res.status}: ${res.body.slice(0, 200)}`, res.status >= 500 ? 'server' : 'auth', null);
    }
    const header = res.headers['x-influxdb-version'];
    const version = (Array.isArray(header) ? header[0] : header) ?? null;
    this.counters.serverVersion = version;
    return version;
  }

  async ping(): Promise<void> {
    await this.pingVersion();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort(new Error('InfluxDB store closed'));
    await this.deadLetterChain;
    this.sender.close();
    this.http.close();
  }

  // ---- writes ----

  write(readings: readonly StoredReading[]): Promise<void> {
    return this.writeChunks(readings.length, (from, to) => this.encode(toEntries(readings.slice(from, to))));
  }

  /** As write(batch.toArray()), with lines encoded straight from the batch (the spool's records). */
  writeBatch(batch: ReadingBatch): Promise<void> {
    return this.writeChunks(batch.length, (from, to) => this.encodeBatch(batch, from, to));
  }

  /** Writes `total` readings in requests of batchLines lines; `build` encodes the lines [from, to). */
  private async writeChunks(total: number, build: (from: number, to: number) => Promise<Chunk>): Promise<void> {
    if (this.closed) throw new Error('InfluxDB store is closed');
    if (total === 0) return;
    try {
      await this.init();
    } catch (err) {
      throw this.asWriteError(err);
    }
    const letters: DeadLetter[] = [];
    const chunkCount = Math.ceil(total / this.batchLines);
    const chunks: Chunk[] = [];
    let next = 0;
    let failure: unknown;
    // Each worker builds its chunk's lines just before sending them, so building the next chunk overlaps
    // the request in flight instead of delaying the first one.
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < chunkCount) {
        const k = next++;
        try {
          const chunk = await build(k * this.batchLines, Math.min(total, (k + 1) * this.batchLines));
          chunks[k] = chunk;
          await this.sendChunk(chunk, letters);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, chunkCount) }, worker));
    if (failure !== undefined) throw failure instanceof UnreadableBatchError ? failure : this.asWriteError(failure);
    // Dead letters are recorded once, for the write that succeeded (a failed write is retried whole). Values
    // are left out only of lines encoded from entries, so chunks without entries have none.
    const stripped = this.strippedValues(chunks.flatMap((c) => c.entries ?? []));
    if (stripped) letters.push(stripped);
    if (letters.length > 0) await this.recordDeadLetters(letters);
  }

  private asWriteError(err: unknown): InfluxWriteError {
    if (err instanceof InfluxWriteError) return err;
    if (err instanceof InfluxTransportError) {
      this.noteError(err.kind, err.message);
      return new InfluxWriteError(err.message, err.kind, null);
    }
    const message = err instanceof Error ? err.message : String(err);
    return new InfluxWriteError(message, 'unreachable', null);
  }

  private isStale(field: string): InfluxFieldType | undefined {
    const known = this.fieldTypes.get(field);
    if (!known) return undefined;
    if (this.clock.now() - known.at > this.conflictMemoryMs) {
      this.fieldTypes.delete(field);
      return undefined;
    }
    return known.type;
  }

  /** Leaves out values of fields the server holds with another type (learned from conflict errors). */
  private skipFilter(): ((v: StoredValue) => boolean) | undefined {
    if (this.fieldTypes.size === 0) return undefined;
    return (v: StoredValue): boolean => {
      const held = this.isStale(fieldKeyOf(v.metric));
      return held !== undefined && held !== fieldTypeOf(v.kind);
    };
  }

  /** Builds the lines of `entries` (leaving out values of fields known to conflict) into one body. */
  private async encode(entries: Entry[]): Promise<Chunk> {
    const skip = this.skipFilter();
    const body = new BodyBuilder(this.lineEncoder, this.slicer);
    for (let i = 0; i < entries.length; i++) {
      if (i > 0 && i % CHECK_LINES === 0) await body.pause();
      const entry = entries[i]!;
      const skipped: StoredValue[] | undefined = skip ? [] : undefined;
      body.add(this.lineEncoder.line(entry.reading, skip, skipped));
      entry.skipped = skipped ?? NO_VALUES;
    }
    return { count: entries.length, body: body.body(), entries, decode: null };
  }

  /**
   * Builds the lines of readings [from, to) of `batch` into one body, visiting the batch: no object per
   * reading. With field type conflicts known, values have to be left out and recorded: then the readings are
   * decoded and encoded as entries.
   */
  private async encodeBatch(batch: ReadingBatch, from: number, to: number): Promise<Chunk> {
    if (this.skipFilter()) return this.encode(toEntries(batch.toArray(from, to)));
    const body = new BodyBuilder(this.lineEncoder, this.slicer);
    const cursor = batch.cursor(from);
    let left = to - from;
    while (left > 0) {
      const n = cursor.read(body, Math.min(CHECK_LINES, left));
      if (n === 0) throw new Error(`reading batch of ${batch.length} ended before reading ${to}`);
      left -= n;
      if (left > 0) await body.pause();
    }
    return { count: to - from, body: body.body(), entries: null, decode: () => batch.toArray(from, to) };
  }

  /** The chunk's readings as entries, decoded now if the chunk was encoded from a batch. */
  private entriesOf(chunk: Chunk): Entry[] {
    chunk.entries ??= toEntries(chunk.decode!());
    return chunk.entries;
  }

  /** Lines [from, to) of a chunk as a chunk of their own. */
  private slice(chunk: Chunk, from: number, to: number): Promise<Chunk> {
    return this.encode(this.entriesOf(chunk).slice(from, to));
  }

  /** The chunk's lines, for the dead-letter file. */
  private lines(chunk: Chunk): string[] {
    const skip = this.skipFilter();
    return this.entriesOf(chunk).map((e) => this.lineEncoder.line(e.reading, skip));
  }

  private noteError(kind: InfluxWriteErrorKind, message: string): void {
    this.counters.writeErrors[kind]++;
    this.counters.lastError = { kind, message, at: this.clock.now() };
  }

  private async sendChunk(chunk: Chunk, letters: DeadLetter[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new InfluxWriteError('InfluxDB store closed during a write', 'unreachable', null);
      let outcome: WriteOutcome;
      this.counters.requests++;
      try {
        outcome = await this.sender.send(chunk.body);
      } catch (err) {
        if (!(err instanceof InfluxTransportError)) throw err;
        this.noteError(err.kind, err.message);
        if (attempt + 1 >= this.maxAttempts) throw new InfluxWriteError(err.message, err.kind, null);
        await this.sleep(this.backoff.delay(attempt));
        continue;
      }
      const { status } = outcome;
      if (status >= 200 && status < 300) {
        this.counters.linesWritten += chunk.count;
        return;
      }
      const reason = errorText(outcome.body) || `HTTP ${status}`;
      const transientKind = transientKindOf(status);
      if (transientKind) {
        this.noteError(transientKind, `InfluxDB write answered ${status}: ${reason}`);
        if (status === 404) this.setup = null; // database dropped or not created yet: create it again
        if (attempt + 1 >= this.maxAttempts) {
          throw new InfluxWriteError(`InfluxDB write answered ${status} (${transientKind}): ${reason}`, transientKind, outcome.retryAfterMs);
        }
        await this.sleep(this.backoff.delay(attempt, outcome.retryAfterMs));
        if (status === 404) await this.init().catch(() => undefined);
        continue;
      }
      await this.handleRefusal(chunk, status, reason, letters);
      return;
    }
  }

  /** A 4xx that will not succeed by waiting: learn from it, split, or dead-letter. */
  private async handleRefusal(chunk: Chunk, status: number, reason: string, letters: DeadLetter[]): Promise<void> {
    const entries = this.entriesOf(chunk);
    const conflict = CONFLICT_PATTERN.exec(reason);
    if (conflict) {
      this.noteError('type_conflict', reason);
      const [, field, , held] = conflict;
      if (field !== undefined && isFieldType(held)) {
        this.fieldTypes.set(field, { type: held, at: this.clock.now() });
        const changed = entries.some((e) => e.reading.values.some((v) => fieldKeyOf(v.metric) === field && fieldTypeOf(v.kind) !== held));
        if (changed) {
          // Re-encoding updates each entry's `skipped` in place; write() records the final ones once.
          await this.sendChunk(await this.encode(entries), letters);
          return;
        }
      }
    } else {
      this.noteError('rejected', reason);
    }
    const droppedMatch = DROPPED_PATTERN.exec(reason);
    const dropped = droppedMatch ? Number(droppedMatch[1]) : null;
    if (status !== 413 && (entries.length === 1 || dropped === entries.length)) {
      letters.push({ kind: 'rejected', reason, status, lines: this.lines(chunk) });
      this.counters.deadLetteredLines += entries.length;
      this.logger?.warn({ status, reason, lines: entries.length }, 'InfluxDB refused lines for good; recorded in the dead-letter file');
      return;
    }
    if (status === 413 && entries.length === 1) {
      letters.push({ kind: 'rejected', reason, status, lines: this.lines(chunk) });
      this.counters.deadLetteredLines += 1;
      return;
    }
    // Split to find exactly the refused lines; the halves that pass are written (again, idempotently).
    const mid = Math.ceil(entries.length / 2);
    await this.sendChunk(await this.slice(chunk, 0, mid), letters);
    await this.sendChunk(await this.slice(chunk, mid, entries.length), letters);
  }

  private strippedValues(entries: Entry[]): DeadLetter | null {
    const values: NonNullable<DeadLetter['values']> = [];
    for (const e of entries) {
      for (const v of e.skipped) {
        values.push({ deviceId: e.reading.deviceId, epoch: e.reading.epoch, seq: e.reading.seq, ts: e.reading.ts, metric: v.metric, kind: v.kind, value: v.value });
      }
    }
    if (values.length === 0) return null;
    this.counters.deadLetteredValues += values.length;
    const fields = [...new Set(values.map((v) => v.metric))];
    const reason = fields
      .map((f) => `field "${fieldKeyOf(f)}" is held as ${this.fieldTypes.get(fieldKeyOf(f))?.type ?? 'another type'} by InfluxDB`)
      .join('; ');
    this.logger?.warn({ values: values.length, fields }, 'values left out of their readings: field type conflict; recorded in the dead-letter file');
    return { kind: 'type_conflict', reason, status: 400, values };
  }

  private recordDeadLetters(letters: DeadLetter[]): Promise<void> {
    const path = this.cfg.deadLetterPath;
    if (!path) return Promise.resolve();
    const at = new Date(this.clock.now()).toISOString();
    const text = letters.map((l) => JSON.stringify({ at, ...l })).join('\n') + '\n';
    const run = async (): Promise<void> => {
      await mkdir(dirname(path), { recursive: true });
      await appendFile(path, text);
      // The spool's checkpoint moves past these readings next, so make the record durable first.
      const fh = await open(path, 'r+');
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
    };
    this.deadLetterChain = this.deadLetterChain.then(run, run);
    return this.deadLetterChain;
  }

  // ---- queries ----

  async query(q: string): Promise<InfluxQLResult[]> {
    const params: Record<string, string> = { db: this.db, epoch: 'ms' };
    if (this.cfg.rp) params.rp = this.cfg.rp;
    const res = await this.http.request('POST', '/query', params, {
      data: new URLSearchParams({ q }).toString(),
      contentType: 'application/x-www-form-urlencoded',
    });
    let parsed: { results?: InfluxQLResult[]; error?: string };
    try {
      parsed = JSON.parse(res.body) as typeof parsed;
    } catch {
      throw new InfluxQueryError(`InfluxDB /query answered ${res.status} with a body that is not JSON: ${res.body.slice(0, 200)}`);
    }
    if (res.status < 200 || res.status >= 300 || parsed.error) {
      throw new InfluxQueryError(`InfluxDB /query answered ${res.status}: ${parsed.error ?? res.body.slice(0, 200)}`);
    }
    return parsed.results ?? [];
  }

  private async select(q: string): Promise<InfluxQLResult[]> {
    await this.init();
    const results = await this.query(q);
    for (const r of results) {
      if (!r.error) continue;
      if (/unsupported \w+ iterator type/.test(r.error)) throw new UnsupportedAggregateError(r.error);
      if (r.error.startsWith('database not found')) return [];
      throw new InfluxQueryError(`InfluxQL failed: ${r.error}`);
    }
    return results;
  }

  private from(): string {
    return quoteIdent(this.measurement);
  }

  /** A metric's field, qualified: a metric may share its name with the `device` tag. */
  private field(metric: string): string {
    return `${quoteIdent(fieldKeyOf(metric))}::field`;
  }

  private deviceIs(deviceId: string): string {
    return `${quoteIdent(DEVICE_TAG)}::tag = ${quoteString(deviceId)}`;
  }

  async series(q: SeriesQuery): Promise<SeriesPoint[]> {
    if (!(q.stepMs >= 1)) throw new RangeError(`stepMs must be >= 1, got ${q.stepMs}`);
    if (q.to <= q.from) return [];
    try {
      const rows = await this.bucketRows(q, `${q.agg}(${this.field(q.metric)})`, '');
      // min/max of a bool come back as booleans; as numbers (0/1) they chart and match mean (fraction true).
      const numeric = q.agg === 'min' || q.agg === 'max';
      return rows.map(([ts, value]) => ({ ts, value: numeric && typeof value === 'boolean' ? Number(value) : value }));
    } catch (err) {
      // InfluxQL has no mean() of booleans; the fraction of true values is count(true) / count(all).
      if (err instanceof UnsupportedAggregateError && q.agg === 'mean' && err.message.includes('boolean')) return this.booleanMean(q);
      throw err;
    }
  }

  private bucketWhere(q: SeriesQuery, extra: string): { where: string; groupBy: string } {
    const step = Math.floor(q.stepMs);
    // Buckets start at from + k * step: GROUP BY time() aligns to the epoch plus the offset.
    const offset = ((q.from % step) + step) % step;
    return {
      where: `WHERE ${this.deviceIs(q.deviceId)}${extra} AND time >= ${Math.floor(q.from)}ms AND time < ${Math.ceil(q.to)}ms`,
      groupBy: `GROUP BY time(${step}ms, ${offset}ms) fill(none)`,
    };
  }

  private async bucketRows(q: SeriesQuery, selector: string, extra: string): Promise<Array<[number, ScalarValue | null]>> {
    const { where, groupBy } = this.bucketWhere(q, extra);
    const [result] = await this.select(`SELECT ${selector} FROM ${this.from()} ${where} ${groupBy}`);
    return (result?.series?.[0]?.values ?? []).map((row) => [row[0] as number, (row[1] ?? null) as ScalarValue | null]);
  }

  private async booleanMean(q: SeriesQuery): Promise<SeriesPoint[]> {
    const field = this.field(q.metric);
    const all = this.bucketWhere(q, '');
    const yes = this.bucketWhere(q, ` AND ${field} = true`);
    const [total, trues] = await this.select(
      `SELECT count(${field}) FROM ${this.from()} ${all.where} ${all.groupBy}; ` +
        `SELECT count(${field}) FROM ${this.from()} ${yes.where} ${yes.groupBy}`,
    );
    const trueCount = new Map<number, number>();
    for (const row of trues?.series?.[0]?.values ?? []) trueCount.set(row[0] as number, row[1] as number);
    return (total?.series?.[0]?.values ?? []).map((row) => {
      const ts = row[0] as number;
      return { ts, value: (trueCount.get(ts) ?? 0) / (row[1] as number) };
    });
  }

  async latest(deviceId: string): Promise<Record<string, LatestValue>> {
    const where = `WHERE ${this.deviceIs(deviceId)}`;
    // LAST(*) says which fields this device has (its time column is meaningless with several fields) ...
    const [all] = await this.select(`SELECT last(*) FROM ${this.from()} ${where}`);
    const series = all?.series?.[0];
    if (!series?.values?.[0]) return {};
    const row = series.values[0];
    const fields: string[] = [];
    series.columns.forEach((col, i) => {
      if (i === 0 || !col.startsWith('last_') || row[i] === null || row[i] === undefined) return;
      const metric = metricOfField(col.slice('last_'.length));
      if (metric !== null) fields.push(metric);
    });
    if (fields.length === 0) return {};
    // ... and one LAST() per field gives each its own time.
    const results = await this.select(fields.map((f) => `SELECT last(${this.field(f)}) FROM ${this.from()} ${where}`).join('; '));
    const out: Record<string, LatestValue> = {};
    results.forEach((r, i) => {
      const field = fields[r.statement_id ?? i];
      const first = r.series?.[0]?.values?.[0] as [number, ScalarValue | null] | undefined;
      if (field === undefined || !first || first[1] === null) return;
      out[field] = { ts: first[0], value: first[1] };
    });
    return out;
  }
}

function transientKindOf(status: number): InfluxWriteErrorKind | null {
  if (status === 429) return 'throttled';
  if (status === 401 || status === 403) return 'auth';
  if (status === 404) return 'not_found';
  if (status === 408 || status >= 500) return status === 503 ? 'throttled' : 'server';
  return null;
}

function isFieldType(s: string | undefined): s is InfluxFieldType {
  return s === 'float' || s === 'integer' || s === 'boolean' || s === 'string';
}

/** The message of an InfluxDB error body: 1.x `{"error": ...}`, 2.x/3.x `{"message": ...}`, else the text. */
function errorText(body: string): string {
  const trimmed = body.trim();
  if (trimmed.startsWith('{')) {
    try {
      const parsed = JSON.parse(trimmed) as { error?: unknown; message?: unknown };
      if (typeof parsed.error === 'string') return parsed.error;
      if (typeof parsed.message === 'string') return parsed.message;
    } catch {
      // fall through to the raw text
    }
  }
  return trimmed.slice(0, 1000);
}
