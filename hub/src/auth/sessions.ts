/**
 * Browser sessions (docs/security.md#sessions). The cookie carries a 32-byte random secret; the database keeps
 * only its SHA-256 and a separate public id (what GET /api/v1/sessions shows and DELETE takes). A session ends
 * after `idleMs` without use or `absoluteMs` after login, whichever comes first; the last use is written at
 * most every `touchEveryMs` (one minute, or a tenth of the idle timeout when that is shorter), so the idle
 * timeout is exact to within that step.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import type { SqliteDatabase } from '../storage/sqlite.js';

export interface SessionRecord {
  id: string;
  userName: string;
  createdAt: number;
  lastSeenAt: number;
  client: string | null;
  userAgent: string | null;
}

interface SessionRow {
  id: string;
  user_name: string;
  created_at: number;
  last_seen_at: number;
  client: string | null;
  user_agent: string | null;
}

export type SessionLookup =
  | { state: 'valid'; session: SessionRecord }
  | { state: 'expired'; session: SessionRecord; why: 'idle' | 'absolute' }
  | { state: 'unknown' };

function fromRow(row: SessionRow): SessionRecord {
  return {
    id: row.id,
    userName: row.user_name,
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    client: row.client,
    userAgent: row.user_agent,
  };
}

/** Sessions one user may have at once; a new login past it ends the oldest. */
export const MAX_SESSIONS_PER_USER = 50;

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class SessionStore {
  readonly touchEveryMs: number;
  private readonly stmt;

  constructor(
    db: SqliteDatabase,
    private readonly clock: Clock,
    readonly timeouts: { idleMs: number; absoluteMs: number },
  ) {
    this.touchEveryMs = Math.min(60_000, Math.floor(timeouts.idleMs / 10));
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO auth_sessions (id, secret_hash, user_name, created_at, last_seen_at, client, user_agent)
         VALUES (@id, @hash, @userName, @now, @now, @client, @userAgent)`,
      ),
      bySecret: db.prepare(`SELECT * FROM auth_sessions WHERE secret_hash = ?`),
      byId: db.prepare(`SELECT * FROM auth_sessions WHERE id = ?`),
      touch: db.prepare(`UPDATE auth_sessions SET last_seen_at = ? WHERE id = ?`),
      remove: db.prepare(`DELETE FROM auth_sessions WHERE id = ?`),
      removeOfUser: db.prepare(`DELETE FROM auth_sessions WHERE user_name = ? AND id != ? RETURNING id`).pluck(),
      ofUser: db.prepare(`SELECT * FROM auth_sessions WHERE user_name = ? ORDER BY created_at DESC`),
      all: db.prepare(`SELECT * FROM auth_sessions ORDER BY user_name, created_at DESC`),
      prune: db.prepare(`DELETE FROM auth_sessions WHERE created_at <= ? OR last_seen_at <= ?`),
      keepNewest: db.prepare(
        `DELETE FROM auth_sessions WHERE user_name = @userName AND id NOT IN
           (SELECT id FROM auth_sessions WHERE user_name = @userName ORDER BY created_at DESC, rowid DESC LIMIT @keep)`,
      ),
    };
  }

  /** Starts a session; returns the cookie secret (shown to nobody else, stored hashed) and the record. */
  create(
    userName: string,
    from: { client?: string | null; userAgent?: string | null } = {},
  ): { secret: string; session: SessionRecord } {
    const secret = randomBytes(32).toString('base64url');
    const id = randomBytes(12).toString('base64url');
    this.stmt.insert.run({
      id,
      hash: sha256(secret),
      userName,
      now: this.clock.now(),
      client: from.client ?? null,
      userAgent: from.userAgent?.slice(0, 256) ?? null,
    });
    // At most MAX_SESSIONS_PER_USER: the oldest end first.
    this.stmt.keepNewest.run({ userName, keep: MAX_SESSIONS_PER_USER });
    return { secret, session: this.get(id)! };
  }

  get(id: string): SessionRecord | undefined {
    const row = this.stmt.byId.get(id) as SessionRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** When the session ends if unused from now on. */
  expiresAt(session: SessionRecord): number {
    return Math.min(session.createdAt + this.timeouts.absoluteMs, session.lastSeenAt + this.timeouts.idleMs);
  }

  /** Finds the session of a cookie secret. An expired one is deleted and reported as such (once). */
  lookup(secret: string): SessionLookup {
    if (secret.length < 20 || secret.length > 128) return { state: 'unknown' };
    const row = this.stmt.bySecret.get(sha256(secret)) as SessionRow | undefined;
    if (!row) return { state: 'unknown' };
    const session = fromRow(row);
    const now = this.clock.now();
    if (now >= session.createdAt + this.timeouts.absoluteMs) {
      this.stmt.remove.run(session.id);
      return { state: 'expired', session, why: 'absolute' };
    }
    if (now >= session.lastSeenAt + this.timeouts.idleMs) {
      this.stmt.remove.run(session.id);
      return { state: 'expired', session, why: 'idle' };
    }
    return { state: 'valid', session };
  }

  /** Records a use of the session (written at most every touchEveryMs). */
  touch(session: SessionRecord): void {
    const now = this.clock.now();
    if (now - session.lastSeenAt >= this.touchEveryMs) {
      this.stmt.touch.run(now, session.id);
      session.lastSeenAt = now;
    }
  }

  /** Ends one session; false when there was none with this id. */
  revoke(id: string): boolean {
    return this.stmt.remove.run(id).changes > 0;
  }

  /** Ends every session of `userName` except `exceptId`; returns their ids. */
  revokeAllOf(userName: string, exceptId: string | null = null): string[] {
    return this.stmt.removeOfUser.all(userName, exceptId ?? '') as string[];
  }

  /** Live sessions, of one user or of all; expired ones are deleted first. */
  list(userName?: string): SessionRecord[] {
    this.prune();
    const rows = (userName === undefined ? this.stmt.all.all() : this.stmt.ofUser.all(userName)) as SessionRow[];
    return rows.map(fromRow);
  }

  /** Deletes expired sessions; returns how many. */
  prune(): number {
    const now = this.clock.now();
    return this.stmt.prune.run(now - this.timeouts.absoluteMs, now - this.timeouts.idleMs).changes;
  }
}
