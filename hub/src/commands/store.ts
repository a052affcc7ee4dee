/**
 * Persistence of the command queue: two tables in the registry's database (HUB_DATA_DIR/hub.db), so a
 * command belongs to its device (deleting the device deletes its commands) and survives a restart.
 * Every state change is one transaction: the row and its history entry together.
 */
import type { SqliteDatabase } from '../storage/sqlite.js';
import type { Command, CommandHistoryEntry, CommandState } from './model.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS commands (
  -- AUTOINCREMENT: an id is never reused, even after its device (and so the row) was deleted (§8.1).
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  args TEXT,
  state TEXT NOT NULL,
  detail TEXT,
  requested_by TEXT NOT NULL,
  idempotency_key TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  timeout_ms INTEGER NOT NULL,
  first_sent_at INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS commands_by_device ON commands (device_id, id);
CREATE INDEX IF NOT EXISTS commands_unfinished ON commands (state) WHERE state IN ('queued', 'sent', 'delivered');
CREATE INDEX IF NOT EXISTS commands_by_key ON commands (device_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS command_history (
  command_id INTEGER NOT NULL REFERENCES commands(id) ON DELETE CASCADE,
  at INTEGER NOT NULL,
  state TEXT NOT NULL,
  detail TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS command_history_by_command ON command_history (command_id);
`;

interface CommandRow {
  id: number;
  device_id: string;
  name: string;
  args: string | null;
  state: string;
  detail: string | null;
  requested_by: string;
  idempotency_key: string | null;
  created_at: number;
  expires_at: number;
  timeout_ms: number;
  first_sent_at: number | null;
}

interface HistoryRow {
  command_id: number;
  at: number;
  state: string;
  detail: string | null;
}

/** What the queue keeps in memory of an unfinished command (the rest stays on disk). */
export interface UnfinishedCommand {
  id: number;
  deviceId: string;
  state: CommandState;
  createdAt: number;
  expiresAt: number;
  timeoutMs: number;
  firstSentAt: number | null;
}

/** A stored command without its history. */
export interface CommandRecord {
  id: number;
  deviceId: string;
  name: string;
  /** JSON text; null = no arguments. */
  argsJson: string | null;
  state: CommandState;
  detail: string | null;
  requestedBy: string;
  idempotencyKey: string | null;
  createdAt: number;
  expiresAt: number;
  timeoutMs: number;
  firstSentAt: number | null;
}

export interface NewCommandRecord {
  deviceId: string;
  name: string;
  argsJson: string | null;
  requestedBy: string;
  idempotencyKey: string | null;
  createdAt: number;
  expiresAt: number;
  timeoutMs: number;
}

export interface ListQuery {
  deviceId: string;
  states: readonly CommandState[] | null;
  /** Only ids below this one (the cursor of the previous page). */
  before: number | null;
  limit: number;
}

function toRecord(row: CommandRow): CommandRecord {
  return {
    id: row.id,
    deviceId: row.device_id,
    name: row.name,
    argsJson: row.args,
    state: row.state as CommandState,
    detail: row.detail,
    requestedBy: row.requested_by,
    idempotencyKey: row.idempotency_key,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    timeoutMs: row.timeout_ms,
    firstSentAt: row.first_sent_at,
  };
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

/** The API view of a stored command and its history. */
export function commandView(record: CommandRecord, history: CommandHistoryEntry[]): Command {
  let result: unknown = null;
  if (record.state === 'succeeded' && record.detail !== null) {
    const parsed = parseJson(record.detail);
    if (parsed.ok) result = parsed.value;
  }
  return {
    id: record.id,
    deviceId: record.deviceId,
    name: record.name,
    args: record.argsJson === null ? null : JSON.parse(record.argsJson),
    state: record.state,
    detail: record.detail,
    result,
    requestedBy: record.requestedBy,
    idempotencyKey: record.idempotencyKey,
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    timeoutMs: record.timeoutMs,
    history,
  };
}

export class CommandStore {
  private readonly stmt;
  private readonly insertTx;
  private readonly transitionTx;

  constructor(private readonly db: SqliteDatabase) {
    db.exec(SCHEMA);
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO commands (device_id, name, args, state, requested_by, idempotency_key, created_at, expires_at, timeout_ms)
         VALUES (@deviceId, @name, @argsJson, 'queued', @requestedBy, @idempotencyKey, @createdAt, @expiresAt, @timeoutMs)`,
      ),
      history: db.prepare(`INSERT INTO command_history (command_id, at, state, detail) VALUES (?, ?, ?, ?)`),
      resend: db.prepare(
        `INSERT INTO command_history (command_id, at, state, detail) SELECT id, ?, 'sent', ? FROM commands WHERE id = ?`,
      ),
      setState: db.prepare(
        `UPDATE commands SET state = @state, detail = coalesce(@detail, detail),
           first_sent_at = coalesce(first_sent_at, @sentAt) WHERE id = @id`,
      ),
      get: db.prepare(`SELECT * FROM commands WHERE id = ?`),
      historyOf: db.prepare(`SELECT * FROM command_history WHERE command_id = ? ORDER BY rowid`),
      unfinished: db.prepare(
        `SELECT id, device_id, state, created_at, expires_at, timeout_ms, first_sent_at FROM commands
         WHERE state IN ('queued', 'sent', 'delivered') ORDER BY id`,
      ),
      byKey: db.prepare(
        `SELECT * FROM commands WHERE device_id = ? AND idempotency_key = ? AND created_at > ? ORDER BY id DESC LIMIT 1`,
      ),
      wasSent: db
        .prepare(`SELECT 1 FROM commands WHERE id = ? AND device_id = ? AND first_sent_at IS NOT NULL`)
        .pluck(),
    };
    this.insertTx = db.transaction((c: NewCommandRecord): number => {
      const id = Number(this.stmt.insert.run(c).lastInsertRowid);
      this.stmt.history.run(id, c.createdAt, 'queued', null);
      return id;
    });
    this.transitionTx = db.transaction(
      (id: number, state: CommandState, at: number, detail: string | null, historyDetail: string | null): boolean => {
        const changed =
          this.stmt.setState.run({ id, state, detail, sentAt: state === 'sent' || state === 'delivered' ? at : null })
            .changes > 0;
        if (changed) this.stmt.history.run(id, at, state, historyDetail ?? detail);
        return changed;
      },
    );
  }

  /** Stores a new command in state `queued`; returns its id. */
  insert(command: NewCommandRecord): number {
    return this.insertTx(command);
  }

  /**
   * Moves a command to `state` and records it in the history (`historyDetail` there, else `detail`).
   * `detail` null keeps the stored detail. False when the command no longer exists (device deleted).
   */
  transition(
    id: number,
    state: CommandState,
    at: number,
    detail: string | null = null,
    historyDetail: string | null = null,
  ): boolean {
    return this.transitionTx(id, state, at, detail, historyDetail);
  }

  /** Records a re-send in the history without changing the state (a delivered command stays delivered). */
  recordResend(id: number, at: number, detail: string): void {
    this.stmt.resend.run(at, detail, id);
  }

  get(id: number): CommandRecord | undefined {
    const row = this.stmt.get.get(id) as CommandRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  historyOf(id: number): CommandHistoryEntry[] {
    return (this.stmt.historyOf.all(id) as HistoryRow[]).map(historyEntry);
  }

  /** The command with its history, as the API shows it. */
  view(id: number): Command | undefined {
    const record = this.get(id);
    return record ? commandView(record, this.historyOf(id)) : undefined;
  }

  /** Newest first. */
  list(query: ListQuery): Command[] {
    const where = ['device_id = ?'];
    const params: Array<string | number> = [query.deviceId];
    if (query.states !== null) {
      where.push(`state IN (${query.states.map(() => '?').join(', ')})`);
      params.push(...query.states);
    }
    if (query.before !== null) {
      where.push('id < ?');
      params.push(query.before);
    }
    const rows = this.db
      .prepare(`SELECT * FROM commands WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ?`)
      .all(...params, query.limit) as CommandRow[];
    if (rows.length === 0) return [];
    const histories = new Map<number, CommandHistoryEntry[]>(rows.map((r) => [r.id, []]));
    const historyRows = this.db
      .prepare(`SELECT * FROM command_history WHERE command_id IN (${rows.map(() => '?').join(', ')}) ORDER BY rowid`)
      .all(...rows.map((r) => r.id)) as HistoryRow[];
    for (const h of historyRows) histories.get(h.command_id)!.push(historyEntry(h));
    return rows.map((r) => commandView(toRecord(r), histories.get(r.id)!));
  }

  /** Every command in queued, sent or delivered, in creation order. */
  unfinished(): UnfinishedCommand[] {
    return (this.stmt.unfinished.all() as CommandRow[]).map((r) => ({
      id: r.id,
      deviceId: r.device_id,
      state: r.state as CommandState,
      createdAt: r.created_at,
      expiresAt: r.expires_at,
      timeoutMs: r.timeout_ms,
      firstSentAt: r.first_sent_at,
    }));
  }

  /** The newest command of the device created with `key` after `since`. */
  byIdempotencyKey(deviceId: string, key: string, since: number): CommandRecord | undefined {
    const row = this.stmt.byKey.get(deviceId, key, since) as CommandRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  /** True when the command exists, belongs to the device and was sent to it at least once. */
  wasSentTo(deviceId: string, id: number): boolean {
    return this.stmt.wasSent.get(id, deviceId) !== undefined;
  }
}

function historyEntry(h: HistoryRow): CommandHistoryEntry {
  return h.detail === null
    ? { state: h.state as CommandState, at: h.at }
    : { state: h.state as CommandState, at: h.at, detail: h.detail };
}
