/**
 * The spool directory's small files (docs/storage.md, "Spool"): the lock that keeps one hub per directory, the
 * checkpoint (the first record not yet in the store) and the durable seqs of records in deleted segments.
 */
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { SeqRow } from './durable-seqs.js';
import { SpoolLockedError, SpoolPermissionError } from './errors.js';
import { parseSegmentFileName } from './record.js';
import type { Position } from './shared.js';

export const CHECKPOINT_FILE = 'checkpoint.json';
export const SEQS_FILE = 'durable-seqs.json';
const LOCK_FILE = 'lock';
/** Mode of every file the spool creates: readings are for the hub's user only (issue 11, item 7). */
export const FILE_MODE = 0o600;
/** Mode the spool directory is given (or the hub refuses to start). */
export const DIR_MODE = 0o700;

/**
 * Restricts the directory to its owner (0700), or throws SpoolPermissionError when it is open to others and
 * cannot be restricted (the hub's user does not own it). Files in it that others could read (left by an earlier
 * hub, which created them 0644) are made 0600; one that cannot be is logged, the directory already shuts it off.
 */
export function restrictDirectory(dir: string, logger: FastifyBaseLogger | undefined): void {
  const mode = statSync(dir).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    try {
      chmodSync(dir, DIR_MODE);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new SpoolPermissionError(
        `spool directory ${dir} has mode ${octal(mode)}, so other local users can read every reading in it, and the hub could not restrict it to 0700 (${code}); run the hub as the directory's owner, or chmod 700 ${dir}`,
      );
    }
  }
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (!stat.isFile() || (stat.mode & 0o077) === 0) continue;
    try {
      chmodSync(path, FILE_MODE);
    } catch (err) {
      logger?.warn(
        { err, path, mode: octal(stat.mode & 0o777) },
        'spool: could not make a file readable by the hub only (the spool directory is 0700)',
      );
    }
  }
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/** Spool directories open in this process (the lock file's PID cannot tell two of ours apart). */
const openDirs = new Set<string>();

/** Takes the directory for this process, or throws SpoolLockedError; a lock left by a dead process is taken over. */
export function takeLock(dir: string): void {
  if (openDirs.has(dir)) throw new SpoolLockedError(`spool ${dir} is already open in this process`);
  const path = join(dir, LOCK_FILE);
  try {
    writeFileSync(path, String(process.pid), { flag: 'wx', mode: FILE_MODE });
    openDirs.add(dir);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const holder = Number(readFileSync(path, 'utf8').trim());
  if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && pidAlive(holder)) {
    throw new SpoolLockedError(`spool ${dir} is in use by process ${holder}; one hub per data directory`);
  }
  // Left by a process that died (kill -9): take it over.
  writeFileSync(path, String(process.pid), { mode: FILE_MODE });
  openDirs.add(dir);
}

/** Gives the directory up: after a failed start (only if this process took it), or at close (always). */
export function releaseLock(dir: string, atClose = false): void {
  if (!atClose && !openDirs.has(dir)) return;
  rmSync(join(dir, LOCK_FILE), { force: true });
  openDirs.delete(dir);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readCheckpoint(dir: string, logger: FastifyBaseLogger | undefined): Position | null {
  const path = join(dir, CHECKPOINT_FILE);
  if (!existsSync(path)) return null;
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as { seg?: unknown; off?: unknown };
    if (typeof parsed.seg === 'number' && typeof parsed.off === 'number') return { seg: parsed.seg, off: parsed.off };
  } catch {
    // fall through: an unreadable checkpoint means "replay everything" (safe: store writes are idempotent)
  }
  logger?.warn({ path }, 'spool checkpoint unreadable: replaying every segment');
  return null;
}

export function readSeqs(dir: string, logger: FastifyBaseLogger | undefined): SeqRow[] {
  const path = join(dir, SEQS_FILE);
  if (!existsSync(path)) return [];
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as SeqRow[];
  } catch {
    logger?.warn({ path }, 'spool durable-seqs file unreadable: ignoring it');
    return [];
  }
}

/** durable-seqs.json replaced durably (temp file, fsync, rename). */
export function writeSeqsSync(dir: string, json: string): void {
  const path = join(dir, SEQS_FILE);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', FILE_MODE);
  try {
    writeSync(fd, json);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes the directory's entries (a file created, renamed or deleted) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const dirFd = await open(dir, 'r');
  try {
    await dirFd.sync();
  } finally {
    await dirFd.close();
  }
}

/** Size of the spool's segment files on disk (for operators and tests). */
export function spoolDiskBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) if (parseSegmentFileName(name) !== null) total += statSync(join(dir, name)).size;
  return total;
}
