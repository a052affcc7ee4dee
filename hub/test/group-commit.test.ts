/** The group-commit writer (ReadingSink): one store write per flush, accepts resolve after commit. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GroupCommitWriter } from '../src/storage/group-commit.js';
import type { StoredReading } from '../src/storage/types.js';
import { tempDir } from './helpers.js';
import { FailingSqliteStore, HeldSqliteStore } from './stores.js';

const reading = (seq: number, deviceId = 'd'): StoredReading => ({
  deviceId,
  epoch: 1,
  seq,
  ts: 1_700_000_000_000 + seq,
  values: [{ metric: 'v', kind: 'int', value: seq }],
});

describe('GroupCommitWriter', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  it('gathers accepts from many callers into one write and resolves them after it committed', async () => {
    const store = new HeldSqliteStore(dir.path);
    const writer = new GroupCommitWriter(store, { maxDelayMs: 1 });
    const arrived = store.writeArrived();
    let resolved = 0;
    const accepts = Array.from({ length: 50 }, (_, i) =>
      writer.accept([reading(i + 1, `dev-${i % 5}`)]).then(() => resolved++),
    );
    await arrived;
    expect(store.writes).toBe(1);
    expect(resolved).toBe(0);
    store.release();
    await Promise.all(accepts);
    expect(resolved).toBe(50);
    expect(store.writes).toBe(1);
    const count = store.db.prepare('SELECT count(*) FROM readings').pluck().get();
    expect(count).toBe(50);
    await writer.close();
    await store.close();
  });

  it('keeps one write in flight and sends what arrived meanwhile as the next write', async () => {
    const store = new HeldSqliteStore(dir.path);
    const writer = new GroupCommitWriter(store, { maxBatch: 2, maxDelayMs: 1000 });
    const first = store.writeArrived();
    const a = writer.accept([reading(1), reading(2)]); // maxBatch reached: flushes at once
    await first;
    const b = writer.accept([reading(3)]);
    const c = writer.accept([reading(4)]);
    expect(store.writes).toBe(1);
    store.release();
    await Promise.all([a, b, c]);
    expect(store.writes).toBe(2);
    await writer.close();
    await store.close();
  });

  it('rejects the accepts of a failed write, stops accepting, and accepts again when the store answers', async () => {
    const store = new FailingSqliteStore(dir.path);
    store.failures = 1;
    store.failPing = true;
    let pingProbe: (() => void) | null = null;
    const timers = {
      setTimeout: (fn: () => void, ms: number) => {
        if (ms >= 50)
          pingProbe = fn; // the probe; flush timers run for real
        else return setTimeout(fn, ms);
        return {};
      },
      clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
      setInterval: (fn: () => void, ms: number) => setInterval(fn, ms),
      clearInterval: (h: unknown) => clearInterval(h as NodeJS.Timeout),
    };
    const writer = new GroupCommitWriter(store, { maxDelayMs: 1, retryMs: 50, timers });
    await expect(writer.accept([reading(1)])).rejects.toThrow(/simulated/);
    expect(writer.accepting).toBe(false);
    expect(pingProbe).not.toBeNull();
    pingProbe!(); // store still down
    await new Promise((r) => setImmediate(r));
    expect(writer.accepting).toBe(false);
    store.failPing = false;
    pingProbe!();
    await new Promise((r) => setImmediate(r));
    expect(writer.accepting).toBe(true);
    await writer.accept([reading(1)]);
    expect(store.db.prepare('SELECT count(*) FROM readings').pluck().get()).toBe(1);
    await writer.close();
    await store.close();
  });

  it('turns accepting off above maxPending', async () => {
    const store = new HeldSqliteStore(dir.path);
    const writer = new GroupCommitWriter(store, { maxDelayMs: 0, maxPending: 3 });
    const first = store.writeArrived();
    const a = writer.accept([reading(1)]);
    await first; // in flight, the rest queue up
    const b = writer.accept([reading(2), reading(3), reading(4)]);
    expect(writer.accepting).toBe(false);
    store.release();
    await Promise.all([a, b]);
    expect(writer.accepting).toBe(true);
    await writer.close();
    await store.close();
  });

  it('close() writes what is pending before it resolves and refuses later accepts', async () => {
    const store = new HeldSqliteStore(dir.path);
    store.release();
    const writer = new GroupCommitWriter(store, { maxDelayMs: 10_000 });
    const pending = writer.accept([reading(1)]);
    await writer.close();
    await pending;
    expect(store.db.prepare('SELECT count(*) FROM readings').pluck().get()).toBe(1);
    await expect(writer.accept([reading(2)])).rejects.toThrow(/closed/);
    await store.close();
  });
});
