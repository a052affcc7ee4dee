/**
 * The on-disk spool over the real SQLite store: durability (accept resolves after the fdatasync that
 * covers it, group commit), order, draining and segment clean-up, a store outage that fills the spool to
 * its cap and drains in order afterwards, torn tails, a SIGKILLed writer process, and durable seqs that
 * outlive drained segments. Outages are injected by a wrapper around the real store (OutageSwitch).
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor, once } from '../../test/support/index.js';
import {
  createSpool,
  SpoolFormatError,
  SpoolFullError,
  SpoolLockedError,
  type Spool,
  type SpoolOptions,
} from '../src/spool/spool.js';
import {
  decodeRecords,
  encodeRecord,
  encodeGroup,
  encodeRecordV1,
  measureReadings,
  RECORD_HEADER_BYTES,
  RecordBatch,
  recordView,
  scanRecord,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  SEGMENT_MAGIC_V1,
  segmentFileName,
  type RecordView,
} from '../src/spool/record.js';
import { spoolConfigFromEnv as spoolSection } from '../src/spool/config.js';
import { EnvReader } from '../src/core/env.js';

const spoolConfigFromEnv = (env: Record<string, string>, dataDir: string) => spoolSection(new EnvReader(env), dataDir);
import { registerStorageMetrics } from '../src/spool/metrics.js';
import { Registry } from 'prom-client';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import type {
  LatestValue,
  SeriesPoint,
  SeriesQuery,
  ReadingVisitor,
  StoredReading,
  TimeSeriesStore,
} from '../src/storage/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function tempDir(): string {
  const path = mkdtempSync(join(tmpdir(), 'tendril-spool-test-'));
  cleanups.push(() => rmSync(path, { recursive: true, force: true }));
  return path;
}

/**
 * The real SQLite store behind a switch that injects an outage (write() throws while `down`), recording
 * every batch the store took, in order, so tests can check order and count duplicates.
 */
class OutageSwitch implements TimeSeriesStore {
  readonly kind = 'sqlite' as const;
  down = false;
  failures = 0;
  readonly batches: StoredReading[][] = [];
  constructor(readonly inner: TimeSeriesStore) {}
  async write(readings: readonly StoredReading[]): Promise<void> {
    if (this.down) {
      this.failures++;
      throw Object.assign(new Error('injected store outage'), { kind: 'unreachable' });
    }
    await this.inner.write(readings);
    this.batches.push([...readings]);
  }
  latest(deviceId: string): Promise<Record<string, LatestValue>> {
    return this.inner.latest(deviceId);
  }
  series(q: SeriesQuery): Promise<SeriesPoint[]> {
    return this.inner.series(q);
  }
  ping(): Promise<void> {
    return this.inner.ping();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  /** "device/epoch/seq" of every reading written, in write order. */
  written(): string[] {
    return this.batches.flat().map((r) => `${r.deviceId}/${r.epoch}/${r.seq}`);
  }
}

function newStore(dataDir: string): OutageSwitch {
  const store = new OutageSwitch(new SqliteStore(dataDir));
  cleanups.push(() => store.close());
  return store;
}

async function openSpool(dir: string, store: TimeSeriesStore, opts: Partial<SpoolOptions> = {}): Promise<Spool> {
  const spool = await createSpool({ dir, store, drainLingerMs: 0, backoff: { baseMs: 2, maxMs: 10 }, ...opts });
  cleanups.push(() => spool.close());
  return spool;
}

const T0 = Date.UTC(2026, 5, 1);

function readings(deviceId: string, from: number, count: number, epoch = 1): StoredReading[] {
  return Array.from({ length: count }, (_, i) => ({
    deviceId,
    epoch,
    seq: from + i,
    ts: T0 + (from + i) * 10,
    values: [
      { metric: 'temp', kind: 'f64' as const, value: 20 + ((from + i) % 50) / 10 },
      { metric: 'label', kind: 'string' as const, value: `r${from + i}` },
    ],
  }));
}

function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.startsWith('seg-'))
    .sort();
}

describe('spool', () => {
  it('resolves accept() only after an fdatasync that covers its record, one fdatasync for many concurrent accepts', async () => {
    const dir = tempDir();
    const store = newStore(tempDir());
    store.down = true; // keep records on disk while we look
    const spool = await openSpool(join(dir, 'spool'), store);
    // Watch every fdatasync of the spool's files: record the segment size at the moment each one finishes.
    const probe = await openFile(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const original = proto.datasync;
    const synced: number[] = [];
    proto.datasync = async function (this: { fd: number }) {
      await original.call(this);
      const seg = segmentFiles(join(dir, 'spool'))[0];
      synced.push(seg ? statSync(join(dir, 'spool', seg)).size : 0);
    };
    cleanups.push(() => {
      proto.datasync = original;
    });
    const batches = Array.from({ length: 50 }, (_, i) => readings('d1', i * 2 + 1, 2));
    const syncedAtResolve: number[] = [];
    await Promise.all(
      batches.map((b, i) =>
        spool.accept(b).then(() => {
          // The largest file size an fdatasync had finished covering when this accept() resolved.
          syncedAtResolve[i] = Math.max(0, ...synced);
        }),
      ),
    );
    expect(syncedAtResolve).toHaveLength(50);
    // Where the record holding each reading ends in the file (a group commit writes its accepts as one record).
    const file = readFileSync(join(dir, 'spool', segmentFiles(join(dir, 'spool'))[0]!));
    const endOfSeq = new Map<number, number>();
    for (let off = SEGMENT_HEADER_BYTES; off < file.length; ) {
      const scanned = scanRecord(file, off);
      if (scanned.kind !== 'record') throw new Error(`no record at ${off}: ${scanned.kind}`);
      off += scanned.record.totalBytes;
      for (const r of decodeRecords([scanned.record], 2)) endOfSeq.set(r.seq, off);
    }
    for (const [i, b] of batches.entries())
      expect(syncedAtResolve[i]).toBeGreaterThanOrEqual(endOfSeq.get(b.at(-1)!.seq)!);
    // Group commit: 50 concurrent accepts share a handful of fdatasyncs (one for the new segment's header).
    expect(spool.state.commits).toBeLessThanOrEqual(3);
    expect(spool.depthReadings).toBe(100);
  });

  it('commits at most groupMaxBytes of records per fdatasync (or a quarter of a larger backlog), in accept order', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    const cap = 3 * measureReadings(readings('d1', 1, 2));
    const spool = await openSpool(dir, store, { groupMaxBytes: cap });
    const batches = Array.from({ length: 30 }, (_, i) => readings('d1', i * 2 + 1, 2));
    const big = readings('d1', 61, 40); // one accept of 40 readings: larger than a group
    const order: number[] = [];
    await Promise.all([...batches, big].map((b, i) => spool.accept(b).then(() => order.push(i))));
    expect(order).toEqual(Array.from({ length: 31 }, (_, i) => i)); // resolved in accept order
    // Groups filled greedily in accept order, each up to max(cap, a quarter of what is pending): larger
    // groups while the backlog is large, then three accepts at a time, and the large one on its own.
    const sizes = [...batches, big].map((b) => measureReadings(b));
    let groups = 0;
    for (let i = 0; i < sizes.length; groups++) {
      const limit = Math.max(cap, sizes.slice(i).reduce((a, b) => a + b, 0) / 4);
      let bytes = sizes[i++]!;
      while (i < sizes.length && bytes + sizes[i]! <= limit) bytes += sizes[i++]!;
    }
    expect(groups).toBeGreaterThanOrEqual(5);
    expect(groups).toBeLessThan(31);
    expect(spool.state.commits).toBe(groups);
    await spool.whenDrained();
    expect(store.written()).toEqual(Array.from({ length: 100 }, (_, i) => `d1/1/${i + 1}`));
  });

  it('lingers for more readings only until a batch is full', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    const spool = await openSpool(dir, store, { drainLingerMs: 1000, batchReadings: 10 });
    await spool.accept(readings('d1', 1, 3)); // wakes the drainer: it lingers for a fuller batch
    const started = performance.now();
    await spool.accept(readings('d1', 4, 7)); // the batch is full now
    await waitFor(() => store.batches.length === 1, { what: 'the first batch to reach the store' });
    expect(performance.now() - started).toBeLessThan(900); // not after the whole 1000 ms
    expect(store.written()).toEqual(Array.from({ length: 10 }, (_, i) => `d1/1/${i + 1}`));
    await spool.close();
  });

  it('drains to the store in accept order, each reading once, and deletes drained segments', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    const spool = await openSpool(dir, store, { segmentBytes: 4096, batchReadings: 50 });
    for (let i = 0; i < 40; i++) await spool.accept(readings('d1', i * 5 + 1, 5));
    await Promise.all(Array.from({ length: 20 }, (_, i) => spool.accept(readings('d2', i * 3 + 1, 3))));
    await spool.whenDrained(10_000);
    const written = store.written();
    expect(written.filter((k) => k.startsWith('d1/'))).toEqual(Array.from({ length: 200 }, (_, i) => `d1/1/${i + 1}`));
    expect(written.filter((k) => k.startsWith('d2/'))).toEqual(Array.from({ length: 60 }, (_, i) => `d2/1/${i + 1}`));
    expect(new Set(written).size).toBe(written.length);
    // Batches of about batchReadings; a batch ends where a record does, and the d2 accepts, made together, share
    // one group commit's record of 60 readings.
    expect(Math.max(...store.batches.map((b) => b.length))).toBeLessThanOrEqual(50 + 60);
    expect(spool.depthReadings).toBe(0);
    expect(spool.depthBytes).toBe(0);
    expect(spool.state.oldestUndrainedAgeMs).toBe(0);
    expect(spool.state.drainedFromDisk).toBe(0); // the drainer kept up: everything came from memory
    // Many 4 KiB segments were written; only the one being appended to is left.
    expect(segmentFiles(dir)).toHaveLength(1);
    expect(existsSync(join(dir, 'checkpoint.json'))).toBe(true);
    const points = await store.series({
      deviceId: 'd1',
      metric: 'temp',
      from: T0,
      to: T0 + 1_000_000,
      stepMs: 1_000_000,
      agg: 'count',
    });
    expect(points.map((p) => p.value)).toEqual([200]);
  });

  it('store down: grows to the cap, refuses with STORE_BUSY, then drains in order once the store is back', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    store.down = true;
    let now = T0;
    const spool = await openSpool(dir, store, { maxBytes: 32 * 1024, clock: { now: () => now } });
    const acceptingEvents: boolean[] = [];
    spool.on('accepting', (a) => acceptingEvents.push(a));
    let seq = 1;
    let refused: unknown;
    while (spool.accepting) {
      try {
        await spool.accept(readings('d1', seq, 10));
        seq += 10;
        now += 100;
      } catch (err) {
        refused = err;
        break;
      }
    }
    const acked = seq - 1;
    expect(acked).toBeGreaterThan(100);
    expect(spool.accepting).toBe(false);
    // The cap is checked before each append: the spool stops within one record past it.
    expect(spool.depthBytes).toBeGreaterThanOrEqual(32 * 1024);
    expect(spool.depthBytes).toBeLessThan(32 * 1024 + encodeRecord(readings('d1', seq, 10), 0).length);
    expect(spool.depthReadings).toBe(acked);
    await expect(spool.accept(readings('d1', seq, 10))).rejects.toBeInstanceOf(SpoolFullError);
    if (refused !== undefined) expect((refused as SpoolFullError).code).toBe('STORE_BUSY');
    await waitFor(() => spool.storeState === 'down', { what: 'the spool to see the store down' });
    const state = spool.state;
    expect(state.writeErrors.unreachable).toBeGreaterThan(0);
    expect(state.lastWriteError?.message).toMatch(/injected store outage/);
    expect(state.oldestUndrainedAgeMs).toBeGreaterThanOrEqual(now - T0 - 100);
    expect(acceptingEvents).toContain(false);

    store.down = false;
    spool.retryNow();
    await spool.whenDrained(10_000);
    expect(spool.storeState).toBe('up');
    expect(spool.accepting).toBe(true);
    expect(acceptingEvents[acceptingEvents.length - 1]).toBe(true);
    expect(store.written()).toEqual(Array.from({ length: acked }, (_, i) => `d1/1/${i + 1}`));
  });

  it('keeps drainWindow batches in the store at once and moves the checkpoint only past a prefix of finished writes', async () => {
    const dir = join(tempDir(), 'spool');
    const inner = newStore(tempDir());
    // Each write waits for the test to finish it (or fail it), so the order of completion is the test's.
    const calls: Array<{ readings: readonly StoredReading[]; finish: (ok: boolean) => void }> = [];
    const gated: TimeSeriesStore = Object.assign(Object.create(inner) as TimeSeriesStore, {
      write: (rs: readonly StoredReading[]) =>
        new Promise<void>((resolve, reject) => {
          calls.push({
            readings: rs,
            finish: (ok) =>
              ok
                ? inner.write(rs).then(resolve, reject)
                : reject(Object.assign(new Error('injected'), { kind: 'server' })),
          });
        }),
    });
    const spool = await openSpool(dir, gated, { batchReadings: 10, drainWindow: 2 });
    for (let i = 0; i < 3; i++) await spool.accept(readings('d1', i * 10 + 1, 10));
    await waitFor(() => calls.length === 2, { what: 'two batch writes in flight' });
    expect(calls.map((c) => c.readings[0]!.seq)).toEqual([1, 11]); // started in spool order, no third yet
    calls[1]!.finish(true); // the later batch lands first: the checkpoint must not pass the earlier one
    await waitFor(() => inner.batches.length === 1, { what: 'the second batch in the store' });
    expect(spool.state.drainedReadings).toBe(0);
    expect(calls).toHaveLength(2); // the window is still full
    calls[0]!.finish(false); // the earlier one fails; it is retried, the later one is not written again
    await waitFor(() => calls.length === 3, { what: 'the retry of the first batch' });
    expect(calls[2]!.readings[0]!.seq).toBe(1);
    expect(spool.state.drainedReadings).toBe(0);
    calls[2]!.finish(true);
    await waitFor(() => spool.state.drainedReadings === 20, { what: 'both batches drained' });
    await waitFor(() => calls.length === 4, { what: 'the third batch' });
    calls[3]!.finish(true);
    await spool.whenDrained();
    expect(inner.written()).toEqual(
      Array.from({ length: 30 }, (_, i) => `d1/1/${[11, 1, 21][Math.floor(i / 10)]! + (i % 10)}`),
    );
    expect(spool.state.drainedReadings).toBe(30);
  });

  it('reads from disk once the store falls more than memoryTailReadings behind, and from memory again once caught up', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    const spool = await openSpool(dir, store, {
      memoryTailReadings: 25,
      batchReadings: 40,
      segmentBytes: 2048,
      drainWindow: 2,
    });
    await spool.accept(readings('d1', 1, 10));
    await spool.whenDrained();
    expect(spool.state.drainedFromDisk).toBe(0);
    store.down = true;
    for (let i = 1; i < 10; i++) await spool.accept(readings('d1', i * 10 + 1, 10)); // 90 behind: past the cap
    store.down = false;
    spool.retryNow();
    await spool.whenDrained();
    // The batch in flight when the store went down (11-20, from memory) is retried as it was; 21-40 stayed in
    // memory when the tail filled up (taken first); 41-100 come back from the files, over several segments.
    expect(spool.state.drainedFromDisk).toBe(60);
    await Promise.all(Array.from({ length: 2 }, (_, i) => spool.accept(readings('d1', 101 + i * 10, 10))));
    await spool.whenDrained();
    expect(spool.state.drainedFromDisk).toBe(60);
    const written = store.written();
    // Each reading once, in order: the later of two batches failing together retries only after the earlier.
    expect(written).toEqual(Array.from({ length: 120 }, (_, i) => `d1/1/${i + 1}`));
  });

  // Group commits of several records, batches that end inside a group, several batches in the store at once,
  // and a tail that overflows while the store is down (so batches from disk end inside groups too).
  it.each([
    { memoryTailReadings: 1000, batchReadings: 7 },
    { memoryTailReadings: 30, batchReadings: 7 },
    { memoryTailReadings: 30, batchReadings: 20 },
    { memoryTailReadings: 0, batchReadings: 5 },
  ])('stores each reading once and in order with groups split across batches: %o', async (opts) => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    const spool = await openSpool(dir, store, { ...opts, drainWindow: 3, segmentBytes: 4096 });
    const devices = ['d1', 'd2', 'd3', 'd4'];
    const round = (k: number) => Promise.all(devices.map((d) => spool.accept(readings(d, k * 3 + 1, 3)))); // one group of 4 records
    for (let k = 0; k < 5; k++) await round(k);
    store.down = true;
    for (let k = 5; k < 15; k++) await round(k);
    store.down = false;
    spool.retryNow();
    for (let k = 15; k < 20; k++) await round(k);
    await spool.whenDrained(5000);
    const written = store.written();
    expect(new Set(written).size).toBe(written.length); // none twice
    if (opts.memoryTailReadings < 100) expect(spool.state.drainedFromDisk).toBeGreaterThan(0);
    for (const d of devices)
      expect(written.filter((w) => w.startsWith(`${d}/`))).toEqual(
        Array.from({ length: 60 }, (_, i) => `${d}/1/${i + 1}`),
      );
  });

  it('with memoryTailReadings 0 reads every reading back from disk, each once and in order', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    const spool = await openSpool(dir, store, { memoryTailReadings: 0, batchReadings: 15, segmentBytes: 2048 });
    for (let i = 0; i < 6; i++) await spool.accept(readings('d1', i * 10 + 1, 10));
    await spool.whenDrained();
    expect(spool.state.drainedFromDisk).toBe(60);
    expect(store.written()).toEqual(Array.from({ length: 60 }, (_, i) => `d1/1/${i + 1}`));
  });

  it('skipping damaged records while a batch is in flight does not spin: the drainer waits for the write', async () => {
    const dir = join(tempDir(), 'spool');
    const inner = newStore(tempDir());
    const finish: Array<() => void> = [];
    const gated: TimeSeriesStore = Object.assign(Object.create(inner) as TimeSeriesStore, {
      write: (rs: readonly StoredReading[]) =>
        new Promise<void>((resolve, reject) => finish.push(() => void inner.write(rs).then(resolve, reject))),
    });
    const spool = await openSpool(dir, gated, {
      memoryTailReadings: 0,
      batchReadings: 5,
      drainWindow: 2,
      segmentBytes: 200,
    });
    let reads = 0;
    const internals = spool as unknown as { readBatch: (p: unknown) => Promise<unknown> };
    const readBatch = internals.readBatch.bind(spool);
    internals.readBatch = (p) => {
      reads++;
      return readBatch(p);
    };
    await spool.accept(readings('d1', 1, 10));
    await waitFor(() => finish.length === 1, { what: 'the first batch write' });
    await spool.accept(readings('d1', 11, 10));
    await waitFor(() => finish.length === 2, { what: 'the second batch write' });
    await spool.accept(readings('d1', 21, 10)); // its own segment (200-byte segments): damaged below
    await spool.accept(readings('d1', 31, 10));
    const third = join(dir, segmentFiles(dir)[2]!);
    const bytes = readFileSync(third);
    bytes[bytes.length - 3]! ^= 0xff;
    writeFileSync(third, bytes);
    finish[0]!();
    await waitFor(() => finish.length === 3, { what: 'the batch after the damaged segment' });
    finish[1]!(); // the drainer now has one write in flight and has skipped the damaged records
    const before = reads;
    for (let i = 0; i < 50; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    expect(reads - before).toBeLessThan(5); // a spinning drainer reads once per turn
    finish[2]!();
    await spool.whenDrained(5000);
    expect(spool.state.writeErrors.spool_damage).toBe(1);
    expect(inner.written()).toEqual([
      ...Array.from({ length: 20 }, (_, i) => `d1/1/${i + 1}`),
      ...Array.from({ length: 10 }, (_, i) => `d1/1/${i + 31}`),
    ]);
  });

  it('skips the rest of a segment whose committed record has a damaged length, instead of reading forever', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    store.down = true;
    const spool = await openSpool(dir, store, { memoryTailReadings: 0 });
    await spool.accept(readings('d1', 1, 5));
    await spool.accept(readings('d1', 6, 5));
    await spool.accept(readings('d1', 11, 5));
    const seg = join(dir, segmentFiles(dir)[0]!);
    const bytes = readFileSync(seg);
    const second = SEGMENT_HEADER_BYTES + bytes.readUInt32LE(SEGMENT_HEADER_BYTES) + 8;
    bytes.writeUInt32LE(1_000_000, second); // length field of the second record: far past the end
    writeFileSync(seg, bytes);
    store.down = false;
    spool.retryNow();
    await spool.whenDrained(5000);
    expect(store.written()).toEqual(Array.from({ length: 5 }, (_, i) => `d1/1/${i + 1}`));
    expect(spool.state.writeErrors.spool_damage).toBe(1);
  });

  // A record whose CRC matches but whose body does not decode, or holds a value the spool never writes (a hub
  // bug, or damage the CRC missed), is skipped, whether the store reads the batch as objects (write) or visits
  // its records (writeBatch, refusing non-finite numbers as the InfluxDB store's line encoder does); the store
  // is not reported down for it, and the readings around it are stored.
  const damages = {
    // One byte more than its readings take.
    'one byte too many': (payload: Buffer) => Buffer.concat([payload, Buffer.from([0])]),
    // The body ends two bytes into the length of its last string value (r10).
    'a string length cut short': (payload: Buffer) => payload.subarray(0, payload.length - 5),
    // The first reading's temp (20.6) becomes NaN.
    'a NaN value': (payload: Buffer) => {
      const value = Buffer.alloc(8);
      value.writeDoubleLE(20.6);
      const copy = Buffer.from(payload);
      copy.writeDoubleLE(Number.NaN, copy.indexOf(value));
      return copy;
    },
  };
  it.each([
    ['one byte too many', 'write'],
    ['one byte too many', 'writeBatch'],
    ['a string length cut short', 'write'],
    ['a string length cut short', 'writeBatch'],
    ['a NaN value', 'writeBatch'],
  ] as const)('skips a committed record with %s, without calling the store down (%s)', async (damage, via) => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    const strict: ReadingVisitor = {
      begin() {},
      value(metric, _kind, value) {
        if (typeof value === 'number' && !Number.isFinite(value))
          throw new Error(`invalid float value for field '${metric}'`);
      },
      end() {},
    };
    const target: TimeSeriesStore =
      via === 'write'
        ? store
        : Object.assign(Object.create(store) as TimeSeriesStore, {
            writeBatch: (b: RecordBatch) => {
              b.cursor().read(strict, b.length);
              return store.write(b.toArray());
            },
          });
    store.down = true;
    const first = await openSpool(dir, target, { memoryTailReadings: 0 });
    for (const from of [1, 6, 11]) await first.accept(readings('d1', from, 5));
    await first.close();
    // The second record is damaged, with its length and CRC made to match.
    const seg = join(dir, segmentFiles(dir)[0]!);
    const bytes = readFileSync(seg);
    const at = SEGMENT_HEADER_BYTES + 8 + bytes.readUInt32LE(SEGMENT_HEADER_BYTES);
    const oldLength = bytes.readUInt32LE(at);
    const payload = damages[damage](bytes.subarray(at + 8, at + 8 + oldLength));
    const record = Buffer.alloc(8);
    record.writeUInt32LE(payload.length, 0);
    record.writeUInt32LE(crc32(payload), 4);
    writeFileSync(seg, Buffer.concat([bytes.subarray(0, at), record, payload, bytes.subarray(at + 8 + oldLength)]));
    store.down = false;
    const spool = await openSpool(dir, target, { memoryTailReadings: 0 });
    const states: string[] = [];
    spool.on('store', (state: string) => states.push(state));
    await spool.whenDrained(5000);
    expect(store.written()).toEqual([
      ...Array.from({ length: 5 }, (_, i) => `d1/1/${i + 1}`),
      ...Array.from({ length: 5 }, (_, i) => `d1/1/${i + 11}`),
    ]);
    expect(spool.state.writeErrors).toEqual({ spool_damage: 1 });
    expect(states).not.toContain('down');
    expect(spool.state.depthReadings).toBe(0);
  });

  it('refuses to start on a segment of a newer format, and leaves it as it is', async () => {
    const dir = join(tempDir(), 'spool');
    const first = await openSpool(dir, newStore(tempDir()));
    await first.close();
    const newer = Buffer.concat([Buffer.from('TDLSPL03', 'latin1'), Buffer.from('records a newer hub wrote')]);
    expect(SEGMENT_MAGIC.toString('latin1')).toBe('TDLSPL02');
    writeFileSync(join(dir, segmentFileName(7)), newer);
    await expect(openSpool(dir, newStore(tempDir()))).rejects.toBeInstanceOf(SpoolFormatError);
    await expect(openSpool(dir, newStore(tempDir()))).rejects.toThrow(/format TDLSPL03.*drained/);
    expect(readFileSync(join(dir, segmentFileName(7)))).toEqual(newer);
    expect(existsSync(join(dir, 'lock'))).toBe(false);
  });

  it('replays what was not drained after a restart, from the checkpoint (nothing drained is written again)', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    const first = await openSpool(dir, store);
    await first.accept(readings('d1', 1, 30));
    await first.whenDrained();
    store.down = true;
    await first.accept(readings('d1', 31, 20));
    await waitFor(() => store.failures > 0, { what: 'a failed drain attempt while the store is down' });
    await first.close();
    store.down = false;
    const second = await openSpool(dir, store);
    expect(second.state.replayedReadings).toBe(20);
    await second.whenDrained();
    expect(second.state.drainedFromDisk).toBe(20);
    const written = store.written();
    expect(written).toEqual(Array.from({ length: 50 }, (_, i) => `d1/1/${i + 1}`));
  });

  it('cuts a torn tail at start-up (record cut mid-way, garbage after the last record) and keeps every whole record', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    store.down = true;
    const first = await openSpool(dir, store);
    for (let i = 0; i < 10; i++) await first.accept(readings('d1', i * 10 + 1, 10));
    await first.close();
    const seg = join(dir, segmentFiles(dir)[0]!);
    const full = statSync(seg).size;
    // A torn append: a header promising more bytes than follow.
    appendFileSync(seg, Buffer.from([0xff, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5, 6]));
    store.down = false;
    const second = await openSpool(dir, store);
    expect(second.state.recoveredTornBytes).toBe(10);
    expect(statSync(seg).size).toBe(full);
    await second.whenDrained();
    expect(store.written()).toEqual(Array.from({ length: 100 }, (_, i) => `d1/1/${i + 1}`));
    await second.close();

    // Now cut the last record of a fresh segment in the middle: the record is gone, the others stay.
    store.batches.length = 0;
    store.down = true;
    const third = await openSpool(dir, store);
    for (let i = 0; i < 5; i++) await third.accept(readings('d2', i * 10 + 1, 10));
    await third.close();
    const newest = join(dir, segmentFiles(dir).at(-1)!);
    truncateSync(newest, statSync(newest).size - 7);
    store.down = false;
    const fourth = await openSpool(dir, store);
    expect(fourth.state.recoveredTornBytes).toBeGreaterThan(SEGMENT_HEADER_BYTES);
    await fourth.whenDrained();
    expect(store.written()).toEqual(Array.from({ length: 40 }, (_, i) => `d2/1/${i + 1}`));
  });

  it('recovers everything a SIGKILLed process acknowledged, each reading once', async () => {
    const dir = join(tempDir(), 'spool');
    const outfile = join(tempDir(), 'spool-writer.mjs');
    // The writer: a spool whose store is an InfluxDB store pointed at a closed port, so nothing drains, and
    // 8 devices accepting batches of 5 as fast as they can, printing each acknowledged batch.
    await build({
      stdin: {
        contents: `
          import { createSpool } from '../src/spool/spool.ts';
          import { createInfluxStore } from '../src/storage/influx-store.ts';
          const dir = process.argv[2];
          const store = createInfluxStore({ url: 'http://127.0.0.1:9', db: 'unreachable', maxAttempts: 1 });
          const spool = await createSpool({ dir, store, backoff: { baseMs: 1000, maxMs: 1000 } });
          setTimeout(() => process.exit(3), 20000).unref(); // bounded even if nobody kills us
          const device = async (id) => {
            for (let seq = 1; ; seq += 5) {
              const batch = Array.from({ length: 5 }, (_, i) => ({ deviceId: id, epoch: 9, seq: seq + i, ts: ${T0} + seq + i, values: [{ metric: 'v', kind: 'int', value: seq + i }] }));
              await spool.accept(batch);
              process.stdout.write('acked ' + id + ' ' + (seq + 4) + '\\n');
            }
          };
          for (let d = 0; d < 8; d++) void device('dev' + d);
        `,
        resolveDir: here,
        sourcefile: 'spool-writer.ts',
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile,
      logLevel: 'silent',
    });
    const child = spawn(process.execPath, [outfile, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const ackedUpTo = new Map<string, number>();
    let ackedTotal = 0;
    let buffered = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      buffered += c.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const [, id, upTo] = line.split(' ');
        ackedUpTo.set(id!, Number(upTo));
        ackedTotal += 5;
      }
    });
    await waitFor(() => ackedTotal >= 4000, {
      what: `the writer process to have 4000 readings acknowledged (stderr: ${stderr})`,
      timeoutMs: 15_000,
    });
    const exited = once(child, 'exit', { what: 'the writer process to die of SIGKILL' });
    child.kill('SIGKILL');
    await exited;
    // Acks the parent read before the kill are a lower bound: the child may have acknowledged a few more.
    const store = newStore(tempDir());
    const spool = await openSpool(dir, store);
    await spool.whenDrained(15_000);
    const written = store.written();
    expect(new Set(written).size).toBe(written.length); // no reading twice
    for (const [id, upTo] of ackedUpTo) {
      const seqs = written.filter((k) => k.startsWith(`${id}/`)).map((k) => Number(k.split('/')[2]));
      expect(seqs.length).toBeGreaterThanOrEqual(upTo); // every acknowledged reading is there ...
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1)); // ... in order, no gaps
      expect(spool.durableSeq(id, 9)).toBe(seqs.length);
    }
  });

  it('writes the accepts of one group commit as one record of several devices, whose seqs a restart finds; a reading it cannot store fails only its own accept', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    store.down = true; // keep the record on disk
    const first = await openSpool(dir, store);
    const nan = readings('d4', 1, 1).map((r) => ({
      ...r,
      values: [{ metric: 'temp', kind: 'f64' as const, value: Number.NaN }],
    }));
    // Made in one tick: one group commit.
    const outcomes = await Promise.allSettled([
      first.accept(readings('d1', 1, 2)),
      first.accept(readings('d2', 5, 3, 9)),
      first.accept(nan),
      first.accept(readings('d3', 1, 1)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(String((outcomes[2] as PromiseRejectedResult).reason)).toMatch(/finite/);
    const file = readFileSync(join(dir, segmentFiles(dir)[0]!));
    const scanned = scanRecord(file, SEGMENT_HEADER_BYTES);
    if (scanned.kind !== 'record') throw new Error(`no record: ${scanned.kind}`);
    expect(scanned.record).toMatchObject({ count: 6, summary: null });
    expect(SEGMENT_HEADER_BYTES + scanned.record.totalBytes).toBe(file.length); // the only record
    await first.close();
    const second = await openSpool(dir, store);
    expect(second.durableSeq('d1', 1)).toBe(2);
    expect(second.durableSeq('d2', 9)).toBe(7);
    expect(second.durableSeq('d3', 1)).toBe(1);
    expect(second.durableSeq('d4', 1)).toBe(0);
    store.down = false;
    await second.whenDrained();
    expect(store.written()).toEqual(['d1/1/1', 'd1/1/2', 'd2/9/5', 'd2/9/6', 'd2/9/7', 'd3/1/1']);
  });

  it('remembers the durable seq per (device, epoch) across restarts after its segments were drained and deleted', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    const first = await openSpool(dir, store, { segmentBytes: 2048 });
    for (let i = 0; i < 20; i++) await first.accept(readings('d1', i * 5 + 1, 5, 42));
    await first.accept(readings('d2', 1, 3, 7));
    // A record with several devices has no summary: its seqs come from the JSON at start-up.
    await first.accept([...readings('d3', 1, 2, 5), ...readings('d4', 9, 1, 6)]);
    await first.whenDrained();
    expect(first.durableSeq('d1', 42)).toBe(100);
    await first.close();
    const second = await openSpool(dir, store, { segmentBytes: 2048 });
    expect(second.durableSeq('d1', 42)).toBe(100);
    expect(second.durableSeq('d2', 7)).toBe(3);
    expect(second.durableSeq('d2', 8)).toBe(0);
    expect(second.durableSeq('d3', 5)).toBe(2);
    expect(second.durableSeq('d4', 6)).toBe(9);
    expect(second.durableSeqs().get('d1')?.get(42)).toBe(100);
  });

  it('refuses a second spool on a directory in use, and takes over the lock of a dead process', async () => {
    const dir = join(tempDir(), 'spool');
    const store = newStore(tempDir());
    const first = await openSpool(dir, store);
    await expect(createSpool({ dir, store })).rejects.toBeInstanceOf(SpoolLockedError);
    await first.close();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(join(dir, 'lock'), String(dead));
    const second = await openSpool(dir, store);
    await second.accept(readings('d1', 1, 1));
    await second.whenDrained();
    expect(store.written()).toEqual(['d1/1/1']);
  });
});

const ReadingVisitorNoop: ReadingVisitor = { begin() {}, value() {}, end() {} };

describe('spool record format', () => {
  function view(buf: Buffer): RecordView {
    const scanned = scanRecord(buf, 0);
    if (scanned.kind !== 'record') throw new Error(`expected a record, got ${scanned.kind}`);
    return scanned.record;
  }

  it('round-trips readings, carries a seq summary for single-device records, and refuses flipped bits', () => {
    const one = readings('dev-a', 5, 3, 11);
    const rec = encodeRecord(one, 1234.5);
    const scanned = view(rec);
    expect(scanned.summary).toEqual({ deviceId: 'dev-a', epoch: 11, maxSeq: 7 });
    expect(scanned.acceptedAt).toBe(1234.5);
    expect(scanned.totalBytes).toBe(rec.length);
    expect(decodeRecords([scanned], 2)).toEqual(one);
    const two = readings('dev-b', 1, 2);
    expect(decodeRecords([scanned, view(encodeRecord(two, 0))], 2)).toEqual([...one, ...two]);
    const mixedReadings = [...readings('a', 1, 1), ...readings('b', 1, 1, 2 ** 32 - 1), ...readings('a', 2, 1)];
    const mixed = view(encodeRecord(mixedReadings, 0));
    expect(mixed.summary).toBe(null);
    expect(decodeRecords([mixed], 2)).toEqual(mixedReadings);
    expect(scanRecord(rec.subarray(0, rec.length - 1), 0).kind).toBe('incomplete');
    const flipped = Buffer.from(rec);
    flipped[rec.length - 3]! ^= 0x01;
    expect(scanRecord(flipped, 0)).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/CRC/) });
    expect(() => encodeRecord([{ ...one[0]!, values: [{ metric: 'x', kind: 'f64', value: Number.NaN }] }], 0)).toThrow(
      /finite/,
    );
    expect(() => encodeRecord([{ ...one[0]!, values: [{ metric: 'x', kind: 'int', value: Infinity }] }], 0)).toThrow(
      /finite/,
    );
  });

  it('encodes a group commit as one record (of one device when it is), starting another before the names could pass the limit', () => {
    const part = (rs: StoredReading[]) => ({ readings: rs, bytes: measureReadings(rs), acceptedAt: rs[0]!.ts });
    const oneDevice = [readings('d1', 1, 2), readings('d1', 3, 4)].map(part);
    const [uniform, ...noMore] = encodeGroup(oneDevice);
    expect(noMore).toHaveLength(0);
    expect(view(uniform!)).toMatchObject({
      count: 6,
      acceptedAt: oneDevice[0]!.acceptedAt,
      summary: { deviceId: 'd1', maxSeq: 6 },
    });
    const several = [readings('d1', 1, 2), readings('d2', 1, 1, 3), readings('d1', 3, 1)].map(part);
    const [mixed, ...none] = encodeGroup(several);
    expect(none).toHaveLength(0);
    expect(decodeRecords([view(mixed!)], 2)).toEqual(several.flatMap((p) => p.readings));
    // Two accepts of 40 800 distinct names each: 81 600 in one record would pass MAX_RECORD_NAMES (65 535), so
    // they take a record each, and every reading is kept.
    const wide = (deviceId: string) =>
      Array.from({ length: 160 }, (_, i) => ({
        deviceId,
        epoch: 1,
        seq: i + 1,
        ts: T0 + i,
        values: Array.from({ length: 255 }, (_, j) => ({
          metric: `${deviceId}.m${i}.${j}`,
          kind: 'f64' as const,
          value: j,
        })),
      }));
    const wideParts = [part(wide('w1')), part(wide('w2'))];
    expect(() => encodeRecord([...wideParts[0]!.readings, ...wideParts[1]!.readings], 0)).toThrow(/65535 names/);
    const split = encodeGroup(wideParts);
    expect(split.map((b) => view(b).summary?.deviceId)).toEqual(['w1', 'w2']);
    expect(decodeRecords(split.map(view), 2)).toEqual(wideParts.flatMap((p) => p.readings));
    // The same with a device per reading (one name per device, one per value): 40 accepts of 1 000 readings, each
    // reading its own device and metric, 80 000 names in all.
    const spread = Array.from({ length: 40 }, (_, k) =>
      part(
        Array.from({ length: 1000 }, (_, i) => ({
          deviceId: `d${k}.${i}`,
          epoch: 1,
          seq: 1,
          ts: T0,
          values: [{ metric: `m${k}.${i}`, kind: 'int' as const, value: i }],
        })),
      ),
    );
    const spreadRecords = encodeGroup(spread);
    expect(spreadRecords.length).toBeGreaterThan(1);
    expect(decodeRecords(spreadRecords.map(view), 2)).toEqual(spread.flatMap((p) => p.readings));
    // accept() measures, so a reading the spool cannot store fails before the group commit.
    const nan = [{ ...readings('d1', 1, 1)[0]!, values: [{ metric: 'x', kind: 'f64' as const, value: Number.NaN }] }];
    expect(() => measureReadings(nan)).toThrow(/finite/);
    const many = [
      {
        ...readings('d1', 1, 1)[0]!,
        values: Array.from({ length: 256 }, (_, j) => ({ metric: `m${j}`, kind: 'int' as const, value: j })),
      },
    ];
    expect(() => measureReadings(many)).toThrow(/at most 255/);
    expect(() => measureReadings(readings('d'.repeat(256), 1, 1))).toThrow(/at most 255/);
    const longName = [
      { ...readings('d1', 1, 1)[0]!, values: [{ metric: 'n'.repeat(70_000), kind: 'int' as const, value: 1 }] },
    ];
    expect(() => measureReadings(longName)).toThrow(/65535/);
    expect(() => encodeRecord(longName, 0)).toThrow(/65535/);
    // One accept of more names than a record holds is refused on its own (wideParts above: 81 600 names).
    expect(() => measureReadings([...wideParts[0]!.readings, ...wideParts[1]!.readings])).toThrow(/65535 names/);
    // The measure is what the reading adds to a record of several devices, give or take its names.
    const three = readings('d1', 1, 3);
    expect(Math.abs(measureReadings(three) - (encodeRecord(three, 0).length - RECORD_HEADER_BYTES - 25))).toBeLessThan(
      40,
    );
  });

  it('encodes one record after another with the right name tables: few names, many (past the linear scan), few again', () => {
    const wide = (seq: number, n: number): StoredReading => ({
      deviceId: `dev-${n}`,
      epoch: 1,
      seq,
      ts: 1000 + seq,
      values: Array.from({ length: n }, (_, i) => ({
        metric: `m${(i * 7 + n) % n}-${n}`,
        kind: 'f64' as const,
        value: i,
      })),
    });
    // Many names in one record: metrics of 40 readings of several devices (a mixed record), then small ones again.
    const many = Array.from({ length: 40 }, (_, i) => wide(i + 1, 3 + (i % 5)));
    const records = [[wide(1, 3)], many, [wide(2, 2)], [wide(3, 3)]];
    for (const rs of records) expect(decodeRecords([view(encodeRecord(rs, 0))], 2)).toEqual(rs);
  });

  it('a RecordBatch visits its records and decoded parts in order, from any reading, in steps of any size', () => {
    const uniform = readings('dev-a', 1, 5, 3);
    const mixed = [...readings('a', 1, 2), ...readings('b', 7, 1, 2 ** 32 - 1), ...readings('a', 3, 1)];
    const olderFormat = readings('dev-c', 10, 3);
    const single = readings('dev-d', 1, 1);
    const batch = new RecordBatch();
    batch.addRecord(recordView(encodeRecord(uniform, 0)));
    batch.addReadings(olderFormat); // a format-1 segment's readings, already decoded
    batch.addRecord(view(encodeRecord(mixed, 0)));
    batch.addReadings([]);
    batch.addRecord(recordView(encodeRecord(single, 0)));
    const all = [...uniform, ...olderFormat, ...mixed, ...single];
    expect(batch.length).toBe(all.length);
    expect(batch.toArray()).toEqual(all);
    // What a visitor sees, as flat events, for readings [from, to).
    const visits = (from: number, step: number, to = all.length): unknown[] => {
      const events: unknown[] = [];
      const visitor: ReadingVisitor = {
        begin: (...a) => events.push(['begin', ...a]),
        value: (...a) => events.push(['value', ...a]),
        end: () => events.push(['end']),
      };
      const cursor = batch.cursor(from);
      let left = to - from;
      while (left > 0) {
        const n = cursor.read(visitor, Math.min(step, left));
        if (n === 0) break;
        left -= n;
      }
      expect(left).toBe(0);
      return events;
    };
    const expected = (rs: StoredReading[]): unknown[] =>
      rs.flatMap((r) => [
        ['begin', r.deviceId, r.epoch, r.seq, r.ts],
        ...r.values.map((v) => ['value', v.metric, v.kind, v.value]),
        ['end'],
      ]);
    for (let from = 0; from <= all.length; from++) {
      for (const step of [1, 2, 3, 5, 100]) expect(visits(from, step)).toEqual(expected(all.slice(from)));
      expect(batch.toArray(from, Math.min(all.length, from + 4))).toEqual(all.slice(from, from + 4));
    }
    expect(batch.cursor(all.length).read(ReadingVisitorNoop, 10)).toBe(0);
    expect(batch.cursor(2).read(ReadingVisitorNoop, 100)).toBe(all.length - 2);
  });

  it('keeps every value kind exactly: f32, f64 extremes, integers to 2^53, booleans, strings in any script', () => {
    const values = [
      { metric: 'f32', kind: 'f32' as const, value: Math.fround(0.1) },
      { metric: 'tiny', kind: 'f64' as const, value: 5e-324 },
      { metric: 'huge', kind: 'f64' as const, value: -Number.MAX_VALUE },
      { metric: 'negzero', kind: 'f64' as const, value: -0 },
      { metric: 'int', kind: 'int' as const, value: 2 ** 53 - 1 },
      { metric: 'on', kind: 'bool' as const, value: true },
      { metric: 'off', kind: 'bool' as const, value: false },
      { metric: 'empty', kind: 'string' as const, value: '' },
      { metric: 'text', kind: 'string' as const, value: 'température 温度 😀 "q" \\ \n' },
      { metric: 'é温', kind: 'f64' as const, value: 1 },
    ];
    const r: StoredReading[] = [{ deviceId: 'dév-温', epoch: 0, seq: 2 ** 53 - 1, ts: 1_700_000_000_123.5, values }];
    const back = decodeRecords([view(encodeRecord(r, 0))], 2);
    expect(back).toEqual(r);
    expect(Object.is(back[0]!.values[3]!.value, -0)).toBe(true);
  });

  it('keeps readings of an empty device id (stored in the several-devices layout, as 0 length means that)', () => {
    const r: StoredReading[] = [
      { deviceId: '', epoch: 3, seq: 1, ts: 5, values: [{ metric: 'm', kind: 'f64', value: 1.5 }] },
    ];
    const v = view(encodeRecord(r, 0));
    expect(v.summary).toBe(null);
    expect(decodeRecords([v], 2)).toEqual(r);
  });

  it('takes about 50 bytes per reading of three numbers (names written once per record)', () => {
    const three = (seq: number): StoredReading => ({
      deviceId: 'bench-0001',
      epoch: 1,
      seq,
      ts: T0 + seq,
      values: ['temperature', 'humidity', 'pressure'].map((metric) => ({
        metric,
        kind: 'f32' as const,
        value: Math.fround(21.5),
      })),
    });
    const hundred = encodeRecord(
      Array.from({ length: 100 }, (_, i) => three(i + 1)),
      0,
    );
    expect(hundred.length / 100).toBeLessThan(52);
    expect(hundred.length / 100).toBeGreaterThanOrEqual(50);
  });

  it('reads format-1 (JSON) records, as earlier hubs wrote them', () => {
    const one = readings('dev-a', 5, 3, 11);
    const mixed = [...readings('a', 1, 1), ...readings('b', 1, 1)];
    const a = view(encodeRecordV1(one, 7));
    expect(a.summary).toEqual({ deviceId: 'dev-a', epoch: 11, maxSeq: 7 });
    expect(decodeRecords([a, view(encodeRecordV1(mixed, 0))], 1)).toEqual([...one, ...mixed]);
  });

  it('drains the format-1 segments an earlier hub left, then appends in format 2 to a new segment', async () => {
    const dir = join(tempDir(), 'spool');
    mkdirSync(dir, { recursive: true });
    const old = Buffer.concat([
      SEGMENT_MAGIC_V1,
      encodeRecordV1(readings('d1', 1, 3), T0),
      encodeRecordV1([...readings('d2', 1, 2), ...readings('d1', 4, 1)], T0),
    ]);
    writeFileSync(join(dir, segmentFileName(1)), old);
    const store = newStore(tempDir());
    store.down = true;
    const spool = await openSpool(dir, store);
    expect(spool.depthReadings).toBe(6);
    expect(spool.durableSeq('d1', 1)).toBe(4);
    expect(spool.durableSeq('d2', 1)).toBe(2);
    await spool.accept(readings('d1', 5, 2));
    expect(segmentFiles(dir)).toEqual([segmentFileName(1), segmentFileName(2)]);
    store.down = false;
    spool.retryNow();
    await spool.whenDrained();
    expect(store.written()).toEqual(['d1/1/1', 'd1/1/2', 'd1/1/3', 'd2/1/1', 'd2/1/2', 'd1/1/4', 'd1/1/5', 'd1/1/6']);
  });

  it('skips a format-1 record whose JSON does not parse (CRC intact) and drains the records around it', async () => {
    const dir = join(tempDir(), 'spool');
    mkdirSync(dir, { recursive: true });
    const broken = encodeRecordV1(readings('d1', 4, 3), T0);
    broken[broken.length - 1] = 0x7d; // the closing ']' of its JSON becomes '}'
    broken.writeUInt32LE(crc32(broken.subarray(8)), 4);
    const old = Buffer.concat([
      SEGMENT_MAGIC_V1,
      encodeRecordV1(readings('d1', 1, 3), T0),
      broken,
      encodeRecordV1(readings('d1', 7, 3), T0),
    ]);
    writeFileSync(join(dir, segmentFileName(1)), old);
    const store = newStore(tempDir());
    const spool = await openSpool(dir, store);
    await spool.whenDrained(5000);
    expect(store.written()).toEqual(['d1/1/1', 'd1/1/2', 'd1/1/3', 'd1/1/7', 'd1/1/8', 'd1/1/9']);
    expect(spool.state.writeErrors).toEqual({ spool_damage: 1 });
  });
});

describe('spool configuration', () => {
  it('HUB_SPOOL_MAX_BYTES takes bytes or a unit, defaults to 1 GiB, and names itself when wrong', () => {
    expect(spoolConfigFromEnv({}, '/data')).toEqual({
      dir: '/data/spool',
      maxBytes: 1024 ** 3,
      memoryTailReadings: 100_000,
    });
    expect(spoolConfigFromEnv({ HUB_SPOOL_MAX_BYTES: '512MiB' }, '/d').maxBytes).toBe(512 * 1024 ** 2);
    expect(spoolConfigFromEnv({ HUB_SPOOL_MAX_BYTES: '2000000' }, '/d').maxBytes).toBe(2_000_000);
    expect(spoolConfigFromEnv({ HUB_SPOOL_MAX_BYTES: '1.5GB' }, '/d').maxBytes).toBe(1_500_000_000);
    expect(() => spoolConfigFromEnv({ HUB_SPOOL_MAX_BYTES: 'lots' }, '/d')).toThrow(
      /^HUB_SPOOL_MAX_BYTES: "lots" is not a size/,
    );
    expect(() => spoolConfigFromEnv({ HUB_SPOOL_MAX_BYTES: '10KiB' }, '/d')).toThrow(
      /^HUB_SPOOL_MAX_BYTES: 10240 is outside 1048576\.\./,
    );
  });

  it('HUB_SPOOL_MEMORY_READINGS takes a whole number of readings (0 = off) and names itself when wrong', () => {
    expect(spoolConfigFromEnv({ HUB_SPOOL_MEMORY_READINGS: '300000' }, '/d').memoryTailReadings).toBe(300_000);
    expect(spoolConfigFromEnv({ HUB_SPOOL_MEMORY_READINGS: '0' }, '/d').memoryTailReadings).toBe(0);
    expect(() => spoolConfigFromEnv({ HUB_SPOOL_MEMORY_READINGS: '1e5' }, '/d')).toThrow(
      /^HUB_SPOOL_MEMORY_READINGS: "1e5" is not a whole number/,
    );
    expect(() => spoolConfigFromEnv({ HUB_SPOOL_MEMORY_READINGS: '-1' }, '/d')).toThrow(/HUB_SPOOL_MEMORY_READINGS/);
  });
});

describe('spool metrics', () => {
  it('exports store state, depth, age, drained readings and write errors by kind on every scrape', async () => {
    const store = newStore(tempDir());
    const spool = await openSpool(join(tempDir(), 'spool'), store);
    const registry = new Registry();
    registerStorageMetrics(registry, spool);
    await spool.accept(readings('d1', 1, 10));
    await spool.whenDrained();
    store.down = true;
    await spool.accept(readings('d1', 11, 5));
    await waitFor(() => spool.storeState === 'down', { what: 'the drainer to see the store down' });
    const text = await registry.metrics();
    expect(text).toMatch(/^tendril_store_up 0$/m);
    expect(text).toMatch(/^tendril_spool_accepting 1$/m);
    expect(text).toMatch(/^tendril_spool_readings 5$/m);
    expect(text).toMatch(/^tendril_spool_drained_readings_total 10$/m);
    expect(text).toMatch(/^tendril_store_write_errors_total\{kind="unreachable"\} [1-9]\d*$/m);
    expect(text).toMatch(/^tendril_spool_bytes [1-9]\d*$/m);
    store.down = false;
    spool.retryNow();
    await spool.whenDrained();
    const after = await registry.metrics();
    expect(after).toMatch(/^tendril_store_up 1$/m);
    expect(after).toMatch(/^tendril_spool_readings 0$/m);
    expect(after).toMatch(/^tendril_spool_drained_readings_total 15$/m);
  });
});
