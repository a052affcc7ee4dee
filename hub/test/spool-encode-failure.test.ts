/**
 * A group commit whose records cannot be encoded (accept() measures every reading, so only a hub bug could
 * cause it) stops the spool as a failed disk does (docs/storage.md, "When the disk fails"): carrying on would
 * let a later group of the same device become durable past readings never written. encodeGroup is wrapped
 * (vi.mock) so that one call can be made to throw; everything else is the real spool over the real SQLite store.
 */
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { encodeGroup } from '../src/spool/record.js';
import { createSpool, SpoolFailedError } from '../src/spool/spool.js';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import type { StoredReading } from '../src/storage/types.js';
import { tempDir as makeTempDir } from './helpers.js';

vi.mock('../src/spool/record.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/spool/record.js')>();
  return { ...actual, encodeGroup: vi.fn(actual.encodeGroup) };
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function tempDir(): string {
  const dir = makeTempDir('tendril-spool-encode-');
  cleanups.push(dir.remove);
  return dir.path;
}

const readings = (from: number, count: number): StoredReading[] =>
  Array.from({ length: count }, (_, i) => ({
    deviceId: 'd1',
    epoch: 1,
    seq: from + i,
    ts: 1_795_000_000_000 + from + i,
    values: [{ metric: 'v', kind: 'f64' as const, value: from + i }],
  }));

it('a group that cannot be encoded stops the spool: its accepts and every later one fail, nothing after it becomes durable', async () => {
  const store = new SqliteStore(tempDir());
  cleanups.push(() => store.close());
  const spool = await createSpool({ dir: join(tempDir(), 'spool'), store, drainLingerMs: 0 });
  cleanups.push(() => spool.close());
  await spool.accept(readings(1, 2));
  expect(spool.durableSeq('d1', 1)).toBe(2);
  vi.mocked(encodeGroup).mockImplementationOnce(() => {
    throw new TypeError('cannot encode');
  });
  await expect(spool.accept(readings(3, 2))).rejects.toThrow('cannot encode');
  await expect(spool.accept(readings(5, 2))).rejects.toBeInstanceOf(SpoolFailedError);
  expect(spool.state.failure?.message).toBe('cannot encode');
  expect(spool.accepting).toBe(false);
  expect(spool.durableSeq('d1', 1)).toBe(2);
  await spool.whenDrained();
  expect((await store.latest('d1')).v?.value).toBe(2);
});
