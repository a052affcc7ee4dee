/** Opening SQLite databases in the data directory with the pragmas every hub database uses. */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

export type SqliteDatabase = Database.Database;

/**
 * WAL lets readers (API, /readyz) run while the writer commits. synchronous=FULL makes every commit
 * fsync the WAL: a commit that returned survives a power cut, which is what an ACK to a device promises.
 * (NORMAL would only survive a process crash.) Group commit keeps the fsync count low.
 */
export function openDatabase(path: string): SqliteDatabase {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Readable by the hub's user only (SQLite gives its -wal and -shm files the database file's mode).
  closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}
