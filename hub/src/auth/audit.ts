/**
 * The audit log (docs/security.md#audit-log): who did what, from where, to what, and how it ended. One row per
 * action in the hub's database, kept HUB_AUDIT_RETENTION_DAYS (default 365; 0 = forever), read by admins
 * through GET /api/v1/audit, newest first, with cursor pagination.
 */
import type { Clock } from '../core/clock.js';
import type { SqliteDatabase } from '../storage/sqlite.js';
import type { Principal } from './types.js';

export type AuditOutcome = 'success' | 'failure' | 'denied';

/**
 * Actions the hub records. The auth module records its own; the rest are recorded by the routes that do
 * them (commands, devices). `action` stays a string so a new capability can add its own.
 */
export const AUDIT_ACTIONS = [
  'login',
  'logout',
  'session.revoke',
  'password.change',
  'user.create',
  'user.update',
  'user.delete',
  'token.create',
  'token.revoke',
  'command.send',
  'command.cancel',
  'device.provision',
  'device.update',
  'device.disable',
  'device.enable',
  'device.delete',
  'device.token.rotate',
] as const;

export interface AuditInput {
  /** What was done, e.g. `login`, `command.send` (see AUDIT_ACTIONS). */
  action: string;
  /** The request it happened in: actor and client address are taken from it unless given. */
  request?: { ip: string; principal: Principal | null } | undefined;
  /** Who did it: a principal, a plain name (`cli`, `system`), or null when unknown (a failed login). */
  actor?: Principal | string | null | undefined;
  /** Client address. */
  client?: string | null | undefined;
  /** What it was done to: `user:alice`, `token:<id>`, `session:<id>`, a command id, ... */
  target?: string | null | undefined;
  /** The device concerned, if any (filterable). */
  device?: string | null | undefined;
  /** Default `success`. `failure`: it was tried and failed; `denied`: refused for lack of rights. */
  outcome?: AuditOutcome | undefined;
  /** Anything else worth keeping (JSON, at most 4 KiB; longer is cut). Never secrets. */
  detail?: Record<string, unknown> | null | undefined;
}

export interface AuditEntry {
  seq: number;
  at: number;
  actor: string | null;
  actorKind: string | null;
  client: string | null;
  action: string;
  target: string | null;
  device: string | null;
  outcome: AuditOutcome;
  detail: Record<string, unknown> | null;
}

export interface AuditQuery {
  actor?: string | undefined;
  device?: string | undefined;
  /** Exact action, or a prefix ending in `.*` (`device.*`). */
  action?: string | undefined;
  /** Inclusive bounds, ms. */
  from?: number | undefined;
  to?: number | undefined;
  /** Default 100, at most 1000. */
  limit?: number | undefined;
  /** `nextCursor` of the previous page. */
  cursor?: string | undefined;
}

export interface AuditPage {
  entries: AuditEntry[];
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  nextCursor: string | null;
}

interface AuditRow {
  seq: number;
  at: number;
  actor: string | null;
  actor_kind: string | null;
  client: string | null;
  action: string;
  target: string | null;
  device: string | null;
  outcome: string;
  detail: string | null;
}

const DETAIL_MAX = 4096;
const TEXT_MAX = 256;
const DAY_MS = 86_400_000;
const PRUNE_EVERY_MS = 3_600_000;

export class InvalidCursorError extends Error {
  override readonly name = 'InvalidCursorError';
}

function cut(text: string | null | undefined): string | null {
  if (text === null || text === undefined) return null;
  return text.length > TEXT_MAX ? text.slice(0, TEXT_MAX) : text;
}

export class AuditLog {
  private readonly insert;
  private readonly deleteBefore;
  private lastPrune = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly options: { clock: Clock; retentionDays: number },
  ) {
    this.insert = db.prepare(
      `INSERT INTO audit_log (at, actor, actor_kind, client, action, target, device, outcome, detail)
       VALUES (@at, @actor, @actorKind, @client, @action, @target, @device, @outcome, @detail)`,
    );
    this.deleteBefore = db.prepare(`DELETE FROM audit_log WHERE at < ?`);
    this.prune();
  }

  /** Appends an entry and returns it. Never throws for a bad detail: it is cut, not refused. */
  record(input: AuditInput): AuditEntry {
    const now = this.options.clock.now();
    const actor = input.actor !== undefined ? input.actor : (input.request?.principal ?? null);
    const actorName = actor === null ? null : typeof actor === 'string' ? actor : actor.name;
    const actorKind = actor === null ? null : typeof actor === 'string' ? 'system' : actor.kind;
    // A token's actor is its owner; which token it was goes into the detail.
    const via =
      actor !== null && typeof actor !== 'string' && actor.kind === 'token'
        ? { token: actor.tokenId, tokenName: actor.tokenName }
        : null;
    let detail: string | null = null;
    if (input.detail || via) {
      detail = JSON.stringify({ ...input.detail, ...via });
      if (detail.length > DETAIL_MAX) detail = JSON.stringify({ truncated: detail.slice(0, DETAIL_MAX - 64) });
    }
    const row = {
      at: now,
      actor: cut(actorName),
      actorKind,
      client: cut(input.client !== undefined ? input.client : (input.request?.ip ?? null)),
      action: cut(input.action)!,
      target: cut(input.target),
      device: cut(input.device),
      outcome: input.outcome ?? 'success',
      detail,
    };
    const seq = Number(this.insert.run(row).lastInsertRowid);
    if (now - this.lastPrune >= PRUNE_EVERY_MS) this.prune();
    return { seq, ...row, detail: detail === null ? null : (JSON.parse(detail) as Record<string, unknown>) };
  }

  /** Deletes entries older than the retention; returns how many. */
  prune(): number {
    this.lastPrune = this.options.clock.now();
    if (this.options.retentionDays <= 0) return 0;
    return this.deleteBefore.run(this.lastPrune - this.options.retentionDays * DAY_MS).changes;
  }

  /** Newest first. Throws InvalidCursorError for a cursor this log did not hand out. */
  query(q: AuditQuery = {}): AuditPage {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (q.cursor !== undefined) {
      const seq = /^\d{1,15}$/.test(q.cursor) ? Number(q.cursor) : Number.NaN;
      if (!Number.isSafeInteger(seq))
        throw new InvalidCursorError(
          `cursor "${q.cursor}" is not one the hub handed out; pass nextCursor of the previous page.`,
        );
      where.push('seq < ?');
      args.push(seq);
    }
    if (q.actor !== undefined) {
      where.push('actor = ?');
      args.push(q.actor);
    }
    if (q.device !== undefined) {
      where.push('device = ?');
      args.push(q.device);
    }
    if (q.action !== undefined) {
      if (q.action.endsWith('.*')) {
        where.push(`substr(action, 1, ?) = ?`);
        const prefix = q.action.slice(0, -1);
        args.push(prefix.length, prefix);
      } else {
        where.push('action = ?');
        args.push(q.action);
      }
    }
    if (q.from !== undefined) {
      where.push('at >= ?');
      args.push(q.from);
    }
    if (q.to !== undefined) {
      where.push('at <= ?');
      args.push(q.to);
    }
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 1000);
    const sql = `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
    const rows = this.db.prepare(sql).all(...args, limit + 1) as AuditRow[];
    const more = rows.length > limit;
    const entries = rows.slice(0, limit).map(fromRow);
    return { entries, nextCursor: more ? String(entries[entries.length - 1]!.seq) : null };
  }
}

function fromRow(row: AuditRow): AuditEntry {
  return {
    seq: row.seq,
    at: row.at,
    actor: row.actor,
    actorKind: row.actor_kind,
    client: row.client,
    action: row.action,
    target: row.target,
    device: row.device,
    outcome: row.outcome as AuditOutcome,
    detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>),
  };
}
