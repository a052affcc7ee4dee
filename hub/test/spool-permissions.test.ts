/**
 * Issue 11, item 7: the spool holds every reading, so its directory is the hub user's only (0700) and every
 * file it creates is 0600; files an earlier hub left readable are restricted at start; a directory open to
 * others that the hub cannot restrict (it does not own it) stops the start with SpoolPermissionError.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import { createSpool } from '../src/spool/index.js';
import { segmentFileName, SEGMENT_MAGIC } from '../src/spool/record.js';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import type { StoredReading } from '../src/storage/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function tempDir(): string {
  const path = mkdtempSync(join(tmpdir(), 'tendril-spool-perm-'));
  cleanups.push(() => rmSync(path, { recursive: true, force: true }));
  return path;
}

function modeOf(path: string): string {
  return (statSync(path).mode & 0o777).toString(8);
}

function readings(seq: number, n: number): StoredReading[] {
  return Array.from({ length: n }, (_, i) => ({
    deviceId: 'd1',
    epoch: 1,
    seq: seq + i,
    ts: 1_795_000_000_000 + seq + i,
    values: [{ metric: 'v', kind: 'f64', value: i }],
  }));
}

function store(): SqliteStore {
  const s = new SqliteStore(tempDir());
  cleanups.push(() => s.close());
  return s;
}

describe('spool file permissions', () => {
  it('creates its directory 0700 and every file 0600 (lock, segments, checkpoint, durable seqs)', async () => {
    const dir = join(tempDir(), 'spool');
    // segmentBytes small: several segments, so drained ones are deleted and durable-seqs.json is written
    const spool = await createSpool({ dir, store: store(), segmentBytes: 256, drainLingerMs: 0 });
    for (let seq = 1; seq <= 40; seq += 10) await spool.accept(readings(seq, 10));
    await spool.whenDrained(5000);
    expect(modeOf(dir)).toBe('700');
    const files = readdirSync(dir);
    expect(files).toEqual(expect.arrayContaining(['lock', 'checkpoint.json', 'durable-seqs.json', segmentFileName(4)]));
    for (const f of files) expect([f, modeOf(join(dir, f))]).toEqual([f, '600']);
    await spool.close();
    for (const f of readdirSync(dir)) expect([f, modeOf(join(dir, f))]).toEqual([f, '600']);
  });

  it('restricts a directory and files an earlier hub left readable by others', async () => {
    const dir = join(tempDir(), 'spool');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, segmentFileName(1)), SEGMENT_MAGIC, { mode: 0o644 });
    writeFileSync(join(dir, 'checkpoint.json'), JSON.stringify({ seg: 1, off: 8 }), { mode: 0o644 });
    writeFileSync(join(dir, 'durable-seqs.json.tmp'), '[]', { mode: 0o666 });
    chmodSync(join(dir, 'durable-seqs.json.tmp'), 0o666);
    const spool = await createSpool({ dir, store: store() });
    cleanups.push(() => spool.close());
    expect(modeOf(dir)).toBe('700');
    for (const f of readdirSync(dir)) expect([f, modeOf(join(dir, f))]).toEqual([f, '600']);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'refuses to start, naming the directory and the fix, when it cannot restrict the directory',
    async () => {
      // As root the hub could chmod any directory, so the spool runs as `nobody` in a world-writable directory
      // that root owns (a shared, misconfigured data directory): it may write there but not chmod it.
      const base = tempDir();
      chmodSync(base, 0o755);
      const dir = join(base, 'spool');
      mkdirSync(dir);
      chmodSync(dir, 0o777);
      const script = join(base, 'open-spool.mjs');
      await build({
        stdin: {
          contents: `
          import { createSpool } from '../src/spool/spool.ts';
          const store = { kind: 'sqlite', write: async () => {}, latest: async () => ({}), series: async () => [], ping: async () => {}, close: async () => {} };
          try {
            const spool = await createSpool({ dir: process.argv[2], store });
            await spool.close();
            console.log('opened');
          } catch (err) {
            console.log(err.name + ': ' + err.message);
          }
        `,
          resolveDir: here,
          sourcefile: 'open-spool.ts',
          loader: 'ts',
        },
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        outfile: script,
        logLevel: 'silent',
      });
      chmodSync(script, 0o644);
      const run = spawnSync(process.execPath, [script, dir], {
        uid: 65534,
        gid: 65534,
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(run.stderr).toBe('');
      expect(run.stdout.trim()).toBe(
        `SpoolPermissionError: spool directory ${dir} has mode 0777, so other local users can read every reading in it, and the hub could not restrict it to 0700 (EPERM); run the hub as the directory's owner, or chmod 700 ${dir}`,
      );
      expect(modeOf(dir)).toBe('777');
      expect(readdirSync(dir)).toEqual([]); // refused before the lock or any file was written
    },
  );
});
