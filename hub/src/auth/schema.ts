/** Tables of users, sessions, API tokens and the audit log, in the hub's database (hub.db). */
import type { SqliteDatabase } from '../storage/sqlite.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS auth_users (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  password_hash TEXT NOT NULL,
  must_change_password INTEGER NOT NULL DEFAULT 0,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  password_changed_at INTEGER NOT NULL,
  last_login_at INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS auth_sessions (
  id TEXT PRIMARY KEY,
  secret_hash BLOB NOT NULL UNIQUE,
  user_name TEXT NOT NULL REFERENCES auth_users(name) ON DELETE CASCADE ON UPDATE CASCADE,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  client TEXT,
  user_agent TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS auth_sessions_user ON auth_sessions (user_name);
CREATE TABLE IF NOT EXISTS auth_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  secret_hash BLOB NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  owner TEXT REFERENCES auth_users(name) ON DELETE CASCADE ON UPDATE CASCADE,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  last_used_at INTEGER,
  last_used_from TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS auth_tokens_owner ON auth_tokens (owner);
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT,
  actor_kind TEXT,
  client TEXT,
  action TEXT NOT NULL,
  target TEXT,
  device TEXT,
  outcome TEXT NOT NULL,
  detail TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log (actor, seq);
CREATE INDEX IF NOT EXISTS audit_log_device ON audit_log (device, seq);
CREATE INDEX IF NOT EXISTS audit_log_action ON audit_log (action, seq);
`;

/** Creates the tables if they are missing (idempotent; the hub and the CLI both call it). */
export function createAuthSchema(db: SqliteDatabase): void {
  db.exec(SCHEMA);
}
