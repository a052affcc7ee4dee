/**
 * The spool after a failed append or fdatasync (docs/storage.md, "Spool" > "When the disk fails"): it stops
 * (fail-stop). The failed group and everything queued or arriving afterwards is refused, `accepting` turns
 * false for good, no durable seq moves past readings that were not fsynced, and a restart on the same
 * directory finds exactly what was fsynced before the failure.
 *
 * Disk errors cannot be produced on demand here, so they are injected into the real spool's real files by
 * wrapping methods of node's FileHandle (FileFaults); everything else (files, SQLite store) is real.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { withTimeout } from '../../test/support/index.js';
import { eio, FileFaults } from './file-faults.js';
import { registerStorageMetrics } from '../src/spool/metrics.js';
import { FAST_COMMITS_BEFORE_INLINE, SMALL_GROUP_RECORDS } from '../src/spool/commit.js';
import type { SpoolOptions } from '../src/spool/options.js';
import { measureReadings } from '../src/spool/record.js';
import { createSpool, SpoolFailedError, type Spool } from '../src/spool/spool.js';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import type { StoredReading } from '../src/storage/types.js';
import { captureLogger } from './stores.js';

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function tempDir(): string {
  const path = mkdtempSync(join(tmpdir(), 'tendril-spool-failure-'));
  cleanups.push(() => rmSync(path, { recursive: true, force: true }));
  return path;
}

const T0 = Date.UTC(2026, 5, 1);

function readings(deviceId: string, epoch: number, from: number, to: number): StoredReading[] {
  const out: StoredReading[] = [];
  for (let seq = from; seq <= to; seq++)
    out.push({ deviceId, epoch, seq, ts: T0 + seq * 10, values: [{ metric: 'count', kind: 'int', value: seq }] });
  return out;
}

/** "device/epoch/seq" of every reading in the SQLite store. */
function storedKeys(store: SqliteStore): string[] {
  return store.db
    .prepare(
      `SELECT d.name || '/' || r.epoch || '/' || r.seq FROM readings r JOIN devices d ON d.id = r.device ORDER BY d.name, r.epoch, r.seq`,
    )
    .pluck()
    .all() as string[];
}

interface LogLine {
  level: 'warn' | 'error';
  obj: object;
  msg: string;
}

/**
 * A spool whose commits go through the thread pool (FileHandle, where FileFaults.wrap injects) unless `extra`
 * turns inline commits on (FileFaults.wrapInline).
 */
async function openSpool(
  dir: string,
  store: SqliteStore,
  log: LogLine[] = [],
  extra: Partial<SpoolOptions> = {},
): Promise<Spool> {
  const spool = await createSpool({
    dir,
    store,
    drainLingerMs: 0,
    inlineCommitMaxMs: 0,
    backoff: { baseMs: 2, maxMs: 10 },
    logger: captureLogger((level, obj, msg) => log.push({ level, obj, msg })),
    ...extra,
  });
  cleanups.push(() => spool.close());
  return spool;
}

function outcome(p: Promise<void>): Promise<{ ok: true } | { ok: false; err: unknown }> {
  return p.then(
    () => ({ ok: true as const }),
    (err: unknown) => ({ ok: false as const, err }),
  );
}

describe('spool after a failed append (fail-stop)', () => {
  it('refuses the failed group and the group queued behind it; no durable seq covers them, before or after a restart', async () => {
    const root = tempDir();
    const dir = join(root, 'spool');
    const store = new SqliteStore(root);
    cleanups.push(() => store.close());
    const faults = await FileFaults.create(root);
    cleanups.push(() => faults.restore());
    const log: LogLine[] = [];
    let spool = await openSpool(dir, store, log);
    const acceptingEvents: boolean[] = [];
    spool.on('accepting', (a) => acceptingEvents.push(a));

    // Fsynced before the failure: must survive it and the restart.
    await spool.accept(readings('d0', 9, 1, 2));

    // E1's writev fails with EIO, but only once the test has queued E2 behind it.
    let writevReached!: () => void;
    const reached = new Promise<void>((resolve) => (writevReached = resolve));
    let failWritev!: () => void;
    const failed = new Promise<void>((resolve) => (failWritev = resolve));
    let failNext = true;
    faults.wrap('writev', async (real, args) => {
      if (!failNext) return real(...args);
      failNext = false;
      writevReached();
      await failed;
      throw eio('writev');
    });
    const e1 = outcome(spool.accept(readings('d1', 5, 1, 3)));
    await withTimeout(reached, 5000, "E1's group reaching writev");
    const e2 = outcome(spool.accept(readings('d1', 5, 4, 6))); // waits for the next group
    failWritev();

    const r1 = await withTimeout(e1, 5000, "E1's accept() settling");
    const r2 = await withTimeout(e2, 5000, "E2's accept() settling");
    expect(r1.ok).toBe(false);
    expect(String(r1.ok ? '' : r1.err)).toMatch(/EIO/);
    expect(r2.ok, 'E2 was queued after the failure and must not commit').toBe(false);
    expect(r2.ok ? null : r2.err).toBeInstanceOf(SpoolFailedError);
    expect(spool.durableSeq('d1', 5)).toBe(0);
    expect(spool.durableSeq('d0', 9)).toBe(2);

    // Stopped for good: later accepts are refused even though the disk "works" again.
    faults.restore();
    expect(spool.accepting).toBe(false);
    expect(acceptingEvents).toEqual([false]);
    const later = await outcome(spool.accept(readings('d1', 5, 7, 7)));
    expect(later.ok ? null : later.err).toBeInstanceOf(SpoolFailedError);
    expect(spool.durableSeq('d1', 5)).toBe(0);
    expect(spool.state.accepting).toBe(false);
    expect(spool.state.failure?.message).toMatch(/EIO/);
    expect(spool.state.writeErrors.spool_append).toBe(1);
    expect(log.some((l) => l.level === 'error' && /spool failed/.test(l.msg) && /restart/.test(l.msg))).toBe(true);
    const registry = new Registry();
    registerStorageMetrics(registry, spool);
    const scrape = await registry.metrics();
    expect(scrape).toMatch(/^tendril_spool_failed 1$/m);
    expect(scrape).toMatch(/^tendril_spool_accepting 0$/m);
    expect(scrape).toMatch(/^tendril_store_write_errors_total\{kind="spool_append"\} 1$/m);

    // What was fsynced before the failure still reaches the store.
    await spool.whenDrained(5000);
    expect(storedKeys(store)).toEqual(['d0/9/1', 'd0/9/2']);
    await spool.close();

    spool = await openSpool(dir, store);
    expect(spool.durableSeq('d1', 5)).toBe(0);
    expect(spool.durableSeq('d0', 9)).toBe(2);
    expect(spool.accepting).toBe(true);
    await spool.whenDrained(5000);
    expect(storedKeys(store)).toEqual(['d0/9/1', 'd0/9/2']);
    // The restarted spool takes the device's resend.
    await spool.accept(readings('d1', 5, 1, 6));
    expect(spool.durableSeq('d1', 5)).toBe(6);
  });

  it('a failed append while the drainer is idle counts no drainer error (it wakes with nothing to drain)', async () => {
    const root = tempDir();
    const store = new SqliteStore(root);
    cleanups.push(() => store.close());
    const log: LogLine[] = [];
    const spool = await openSpool(join(root, 'spool'), store, log);
    await spool.accept(readings('d1', 1, 1, 1));
    await spool.whenDrained(5000);
    const faults = await FileFaults.create(root);
    cleanups.push(() => faults.restore());
    faults.wrap('writev', async () => {
      throw eio('writev');
    });
    await expect(spool.accept(readings('d1', 1, 2, 2))).rejects.toThrow(/EIO/);
    faults.restore();
    // Give the woken drainer turns of the event loop to go wrong in, if it would.
    for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    expect(spool.state.writeErrors.spool_io).toBeUndefined();
    expect(log.filter((l) => l.msg.includes('drainer'))).toEqual([]);
    expect(spool.state.failure?.code).toBe('EIO');
  });

  it('leaves no CRC-valid record behind when fdatasync fails after a whole write and the file cannot be cut back', async () => {
    const root = tempDir();
    const dir = join(root, 'spool');
    const store = new SqliteStore(root);
    cleanups.push(() => store.close());
    const faults = await FileFaults.create(root);
    cleanups.push(() => faults.restore());
    let spool = await openSpool(dir, store);
    await spool.accept(readings('d0', 9, 1, 2));
    await spool.whenDrained(5000); // no checkpoint write is in flight while the faults are in place

    // The record reaches the page cache whole, fdatasync reports EIO, and truncating fails too: the bytes
    // would read back CRC-valid from the cache after a restart without being on disk.
    let failDatasync = true;
    faults.wrap('datasync', async (real, args) => {
      if (!failDatasync) return real(...args);
      failDatasync = false;
      throw eio('fdatasync');
    });
    faults.wrap('truncate', async () => {
      throw eio('ftruncate');
    });
    const e1 = await withTimeout(outcome(spool.accept(readings('d1', 5, 1, 3))), 5000, "E1's accept() settling");
    expect(e1.ok).toBe(false);
    expect(spool.durableSeq('d1', 5)).toBe(0);
    expect(spool.accepting).toBe(false);
    await spool.close();
    faults.restore();

    spool = await openSpool(dir, store);
    expect(spool.durableSeq('d1', 5)).toBe(0);
    expect(spool.durableSeq('d0', 9)).toBe(2);
    expect(spool.state.recoveredTornBytes).toBeGreaterThan(0);
    await spool.whenDrained(5000);
    expect(storedKeys(store)).toEqual(['d0/9/1', 'd0/9/2']);
  });
});

describe('the spool cap while a group commits', () => {
  it('stays closed for the length of the commit: the group counts until its bytes are committed', async () => {
    const root = tempDir();
    const store = new SqliteStore(root);
    cleanups.push(() => store.close());
    const one = (i: number) => readings(`d${i}`, 1, 1, 2);
    // Three accepts fill the cap; the drainer waits a second before it takes anything (depth stays).
    const spool = await openSpool(join(root, 'spool'), store, [], {
      maxBytes: 3 * measureReadings(one(0)),
      drainLingerMs: 1000,
      commitWaitMs: 0,
    });
    const faults = await FileFaults.create(root);
    cleanups.push(() => faults.restore());
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reached!: () => void;
    const inSync = new Promise<void>((resolve) => {
      reached = resolve;
    });
    faults.wrap('datasync', async (real) => {
      reached();
      await released;
      return real();
    });
    const accepted = Promise.all([0, 1, 2].map((i) => spool.accept(one(i))));
    await withTimeout(inSync, 5_000, 'the group commit to reach its fdatasync');
    // Before: the group left the pending bytes when the commit took it, and the cap was open until it finished.
    expect(spool.accepting).toBe(false);
    await expect(spool.accept(one(3))).rejects.toThrow(/undrained bytes/);
    release();
    await withTimeout(accepted, 5_000, 'the three accepts to become durable');
    expect(spool.accepting).toBe(false);
  });
});

describe('inline group commits (on the event loop thread while the disk is fast)', () => {
  /** Commits one reading at a time (seqs from..to of d0/9), each its own group. */
  async function commitEach(spool: Spool, from: number, to: number): Promise<void> {
    for (let seq = from; seq <= to; seq++) await spool.accept(readings('d0', 9, seq, seq));
  }

  /**
   * Inline commits on, no group-commit wait; every commit takes no time and the loop is idle unless `extra`
   * says otherwise. `reopen` opens the same directory again with the same settings.
   */
  async function inlineSpool(extra: Partial<SpoolOptions> = {}) {
    const root = tempDir();
    const dir = join(root, 'spool');
    const store = new SqliteStore(root);
    cleanups.push(() => store.close());
    const settings = { inlineCommitMaxMs: 5, commitWaitMs: 0, monotonicNow: () => 0, loopUtilization: () => 0 };
    const reopen = () => openSpool(dir, store, [], { ...settings, ...extra });
    return { root, store, spool: await reopen(), reopen };
  }

  it('go inline after enough fast commits, and back to the thread pool after a slow one', async () => {
    let now = 0; // monotonic ms as the spool sees them: commits take no time unless a test moves it
    const { root, store, spool } = await inlineSpool({ monotonicNow: () => now });
    const faults = await FileFaults.create(root);
    cleanups.push(() => faults.restore());
    let inlineSyncs = 0;
    let slowNext = false;
    faults.wrapInline('fdatasync', (real, args) => {
      inlineSyncs++;
      if (slowNext) now += 50; // this fdatasync "takes" 50 ms, more than inlineCommitMaxMs
      slowNext = false;
      return real(...args);
    });

    await commitEach(spool, 1, FAST_COMMITS_BEFORE_INLINE);
    expect(spool.state.commits).toBe(FAST_COMMITS_BEFORE_INLINE);
    expect(spool.state.inlineCommits, 'the first commits go through the pool').toBe(0);
    await commitEach(spool, FAST_COMMITS_BEFORE_INLINE + 1, FAST_COMMITS_BEFORE_INLINE + 2);
    expect(spool.state.inlineCommits).toBe(2);
    expect(inlineSyncs).toBe(2);

    slowNext = true;
    await commitEach(spool, FAST_COMMITS_BEFORE_INLINE + 3, FAST_COMMITS_BEFORE_INLINE + 3); // inline, slow
    expect(spool.state.inlineCommits).toBe(3);
    await commitEach(spool, FAST_COMMITS_BEFORE_INLINE + 4, 2 * FAST_COMMITS_BEFORE_INLINE + 3);
    expect(spool.state.inlineCommits, 'after a slow commit, the pool until the disk was fast again').toBe(3);
    await commitEach(spool, 2 * FAST_COMMITS_BEFORE_INLINE + 4, 2 * FAST_COMMITS_BEFORE_INLINE + 4);
    expect(spool.state.inlineCommits).toBe(4);

    const last = 2 * FAST_COMMITS_BEFORE_INLINE + 4;
    expect(spool.durableSeq('d0', 9)).toBe(last);
    await spool.whenDrained(5000);
    expect(storedKeys(store)).toHaveLength(last);
    const registry = new Registry();
    registerStorageMetrics(registry, spool);
    expect(await registry.metrics()).toMatch(/^tendril_spool_inline_commits_total 4$/m);
  });

  it('stay in the thread pool while the event loop is busy, however fast the disk', async () => {
    let utilization = 0.9;
    const { spool } = await inlineSpool({ loopUtilization: () => utilization });
    await commitEach(spool, 1, 2 * FAST_COMMITS_BEFORE_INLINE);
    expect(spool.state.inlineCommits).toBe(0);
    utilization = 0.1;
    await commitEach(spool, 2 * FAST_COMMITS_BEFORE_INLINE + 1, 2 * FAST_COMMITS_BEFORE_INLINE + 1);
    expect(spool.state.inlineCommits, 'the disk was fast all along: inline as soon as the loop is idle').toBe(1);
  });

  it('stay in the thread pool for a group of SMALL_GROUP_RECORDS records or more (a high rate)', async () => {
    const { spool } = await inlineSpool();
    await commitEach(spool, 1, FAST_COMMITS_BEFORE_INLINE + 1);
    expect(spool.state.inlineCommits).toBe(1);
    const commitsBefore = spool.state.commits;
    // Accepted in one turn: one group of SMALL_GROUP_RECORDS records.
    const first = FAST_COMMITS_BEFORE_INLINE + 2;
    const accepts: Promise<void>[] = [];
    for (let seq = first; seq < first + SMALL_GROUP_RECORDS; seq++)
      accepts.push(spool.accept(readings('d0', 9, seq, seq)));
    await Promise.all(accepts);
    expect(spool.state.commits - commitsBefore, 'one group').toBe(1);
    expect(spool.state.inlineCommits, 'the large group went through the pool').toBe(1);
    expect(spool.durableSeq('d0', 9)).toBe(first + SMALL_GROUP_RECORDS - 1);
  });

  it('an inline writev that fails stops the spool: refused, not durable, and not there after a restart', async () => {
    const opened = await inlineSpool();
    const { root, store, reopen } = opened;
    let spool = opened.spool;
    const faults = await FileFaults.create(root);
    cleanups.push(() => faults.restore());
    let inlineWrites = 0;
    faults.wrapInline('writev', (real, args) => {
      inlineWrites++;
      return real(...args);
    });
    await commitEach(spool, 1, FAST_COMMITS_BEFORE_INLINE + 1);
    expect(inlineWrites).toBe(1);

    faults.wrapInline('writev', () => {
      throw eio('writev');
    });
    const failed = await outcome(spool.accept(readings('d1', 5, 1, 3)));
    expect(failed.ok).toBe(false);
    expect(String(failed.ok ? '' : failed.err)).toMatch(/EIO/);
    expect(spool.accepting).toBe(false);
    expect(spool.durableSeq('d1', 5)).toBe(0);
    expect(spool.state.failure?.code).toBe('EIO');
    const later = await outcome(spool.accept(readings('d1', 5, 4, 4)));
    expect(later.ok ? null : later.err).toBeInstanceOf(SpoolFailedError);
    await spool.close();
    faults.restore();

    spool = await reopen();
    expect(spool.durableSeq('d1', 5)).toBe(0);
    expect(spool.durableSeq('d0', 9)).toBe(FAST_COMMITS_BEFORE_INLINE + 1);
    await spool.whenDrained(5000);
    expect(storedKeys(store)).toHaveLength(FAST_COMMITS_BEFORE_INLINE + 1);
  });

  it('leaves no CRC-valid record behind when an inline fdatasync fails and the file cannot be cut back', async () => {
    const opened = await inlineSpool();
    const { root, store, reopen } = opened;
    let spool = opened.spool;
    await commitEach(spool, 1, FAST_COMMITS_BEFORE_INLINE);
    await spool.whenDrained(5000); // no checkpoint write is in flight while the faults are in place

    const faults = await FileFaults.create(root);
    cleanups.push(() => faults.restore());
    let inlineSyncs = 0;
    faults.wrapInline('fdatasync', () => {
      inlineSyncs++;
      throw eio('fdatasync');
    });
    faults.wrap('truncate', async () => {
      throw eio('ftruncate');
    });
    const e1 = await withTimeout(outcome(spool.accept(readings('d1', 5, 1, 3))), 5000, "E1's accept() settling");
    expect(e1.ok).toBe(false);
    expect(inlineSyncs, 'the failed commit was an inline one').toBe(1);
    expect(spool.durableSeq('d1', 5)).toBe(0);
    expect(spool.accepting).toBe(false);
    await spool.close();
    faults.restore();

    spool = await reopen();
    expect(spool.durableSeq('d1', 5)).toBe(0);
    expect(spool.durableSeq('d0', 9)).toBe(FAST_COMMITS_BEFORE_INLINE);
    expect(spool.state.recoveredTornBytes).toBeGreaterThan(0);
    await spool.whenDrained(5000);
    expect(storedKeys(store)).toHaveLength(FAST_COMMITS_BEFORE_INLINE);
  });
});
