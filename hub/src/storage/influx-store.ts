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
import type { FastifyBaseLogger } from 'fastify';
import { appendDeadLetters, skippedValuesOf } from './influx-dead-letter.js';
import { CONFLICT_PATTERN, DROPPED_PATTERN, isFieldType, WRITE_ERROR_KINDS as KINDS } from './influx-refusals.js';
import { abortableSleep, createBackoff, type Backoff } from '../core/backoff.js';
import { FairSlicer } from '../core/fair-slice.js';
import { applyInfluxRetention } from './retention.js';
import {
  BodyBuilder,
  CHECK_LINES,
  NO_VALUES,
  toEntries,
  type Chunk,
  type DeadLetter,
  type Entry,
} from './influx-body.js';
import { errorText, InfluxWriteError, transientKindOf, type InfluxWriteErrorKind } from './influx-errors.js';
import {
  createV1Sender,
  createV2Sender,
  InfluxHttp,
  InfluxTransportError,
  type LineSender,
  type WriteOutcome,
} from './influx-http.js';
import { DEFAULT_PROBE_TIMEOUT_MS, DEFAULT_STALL_MS, HangWatch, InfluxHungError } from './influx-hang.js';
import { InfluxQueries } from './influx-query.js';
import {
  DEFAULT_MEASUREMENT,
  fieldKeyOf,
  fieldTypeOf,
  quoteIdent,
  LineEncoder,
  type InfluxFieldType,
  type InfluxQLResult,
} from './influx-schema.js';
import type { InfluxStore, InfluxStoreConfig, InfluxStoreStats } from './influx-types.js';
import {
  UnreadableBatchError,
  type LatestValue,
  type ReadingBatch,
  type SeriesPoint,
  type SeriesQuery,
  type StoredReading,
  type StoredValue,
} from './types.js';

export {
  InfluxQueryError,
  InfluxWriteError,
  UnsupportedAggregateError,
  type InfluxWriteErrorKind,
} from './influx-errors.js';
export type { InfluxStore, InfluxStoreConfig, InfluxStoreStats } from './influx-types.js';
export type { InfluxQLResult, InfluxQLSeries } from './influx-schema.js';

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
  private readonly hang: HangWatch;
  private readonly probeTimeoutMs: number;
  private readonly sender: LineSender;
  private readonly queries: InfluxQueries;
  private readonly logger: FastifyBaseLogger | undefined;
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
    if (v2 && !cfg.token)
      throw new Error('InfluxDB 2.x write API needs INFLUX_TOKEN together with INFLUX_ORG and INFLUX_BUCKET');
    if (!v2 && !cfg.db)
      throw new Error(
        'InfluxDB store needs INFLUX_DB (1.x / v1-compat) or INFLUX_ORG + INFLUX_BUCKET + INFLUX_TOKEN (2.x)',
      );
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
    this.http = new InfluxHttp({
      url: cfg.url,
      token: cfg.token,
      username: cfg.username,
      password: cfg.password,
      timeoutMs,
    });
    this.probeTimeoutMs = cfg.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    this.hang = new HangWatch({
      stallMs: cfg.stallMs ?? DEFAULT_STALL_MS,
      probeTimeoutMs: this.probeTimeoutMs,
      ping: async (deadline) => void (await this.pingVersion(deadline)),
    });
    this.queries = new InfluxQueries(this.http, this.db, cfg.rp, this.measurement, () => this.init());
    const now = (): number => this.clock.now();
    this.sender = v2
      ? createV2Sender({
          url: cfg.url,
          org: cfg.org!,
          bucket: cfg.bucket!,
          token: cfg.token!,
          timeoutMs,
          gzip: cfg.gzip ?? false,
          agent: this.http.keepAliveAgent,
          now,
        })
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
        if (done !== 'unchanged')
          this.logger?.info?.(
            { db: this.db, retentionDays: this.cfg.retentionDays, done },
            'InfluxDB retention policy applied',
          );
      } catch (err) {
        this.logger?.warn(
          { err, db: this.db, retentionDays: this.cfg.retentionDays },
          'InfluxDB: could not apply the retention policy (admin rights needed); data is kept per the existing policy',
        );
      }
    }
  }

  private async pingVersion(timeoutMs?: number): Promise<string | null> {
    const res = await this.http.request('GET', '/ping', {}, undefined, { timeoutMs });
    if (res.status < 200 || res.status >= 300) {
      throw new InfluxWriteError(
        `InfluxDB GET /ping answered ${res.status}: ${res.body.slice(0, 200)}`,
        res.status >= 500 ? 'server' : 'auth',
        null,
      );
    }
    const header = res.headers['x-influxdb-version'];
    const version = (Array.isArray(header) ? header[0] : header) ?? null;
    this.counters.serverVersion = version;
    return version;
  }

  /** Whether the server answers, within probeTimeoutMs (the health probe's deadline). */
  async ping(): Promise<void> {
    await this.pingVersion(this.probeTimeoutMs);
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
        outcome = await this.hang.run((signal) => this.sender.send(chunk.body, signal));
      } catch (err) {
        if (!(err instanceof InfluxTransportError)) throw err;
        this.noteError(err.kind, err.message);
        // A hung server would hang the next attempts too: fail the write now, the spool retries it with back-off.
        if (err instanceof InfluxHungError || attempt + 1 >= this.maxAttempts)
          throw new InfluxWriteError(err.message, err.kind, null);
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
          throw new InfluxWriteError(
            `InfluxDB write answered ${status} (${transientKind}): ${reason}`,
            transientKind,
            outcome.retryAfterMs,
          );
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
        const changed = entries.some((e) =>
          e.reading.values.some((v) => fieldKeyOf(v.metric) === field && fieldTypeOf(v.kind) !== held),
        );
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
      this.logger?.warn(
        { status, reason, lines: entries.length },
        'InfluxDB refused lines for good; recorded in the dead-letter file',
      );
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
    const values = skippedValuesOf(entries);
    if (values.length === 0) return null;
    this.counters.deadLetteredValues += values.length;
    const fields = [...new Set(values.map((v) => v.metric))];
    const reason = fields
      .map(
        (f) =>
          `field "${fieldKeyOf(f)}" is held as ${this.fieldTypes.get(fieldKeyOf(f))?.type ?? 'another type'} by InfluxDB`,
      )
      .join('; ');
    this.logger?.warn(
      { values: values.length, fields },
      'values left out of their readings: field type conflict; recorded in the dead-letter file',
    );
    return { kind: 'type_conflict', reason, status: 400, values };
  }

  private recordDeadLetters(letters: DeadLetter[]): Promise<void> {
    const path = this.cfg.deadLetterPath;
    if (!path) return Promise.resolve();
    const at = new Date(this.clock.now()).toISOString();
    const text = letters.map((l) => JSON.stringify({ at, ...l })).join('\n') + '\n';
    const run = (): Promise<void> => appendDeadLetters(path, text);
    this.deadLetterChain = this.deadLetterChain.then(run, run);
    return this.deadLetterChain;
  }

  // ---- queries (influx-query.ts) ----

  query(q: string): Promise<InfluxQLResult[]> {
    return this.queries.query(q);
  }

  series(q: SeriesQuery): Promise<SeriesPoint[]> {
    return this.queries.series(q);
  }

  latest(deviceId: string): Promise<Record<string, LatestValue>> {
    return this.queries.latest(deviceId);
  }
}
