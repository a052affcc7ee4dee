/**
 * Connection history per device: every presence transition (online with its transport, offline with its
 * reason), in hub.db next to the registry. Bounded: a device keeps its newest CONNECTION_LOG_LIMIT entries,
 * older ones are pruned as new ones are written. Deleting a device deletes its history (ON DELETE CASCADE).
 *
 * Off the hot path: record() only appends to memory; the registry's periodic flush writes the pending
 * entries in its transaction. A reader flushes first, so the API never misses an entry the hub holds.
 */
import type { SqliteDatabase } from '../storage/sqlite.js';
import type { Transport } from './types.js';

/** Entries kept per device (docs/api.md, connection history). */
export const CONNECTION_LOG_LIMIT = 200;

export interface ConnectionEvent {
  /** Increasing across the hub: the paging cursor (`before`). */
  id: number;
  /** When the transition happened, ms since the epoch. */
  at: number;
  event: 'online' | 'offline';
  transport: Transport | null;
  /** Offline: why (CLOSED, HEARTBEAT_LOST, MQTT_WILL, ...). Online: REPLACED when it took over, else null. */
  reason: string | null;
  /** Remote address of the connection, when the transport knows it. */
  remote: string | null;
}

export type NewConnectionEvent = Omit<ConnectionEvent, 'id'>;

interface Row {
  id: number;
  at: number;
  event: string;
  transport: string | null;
  reason: string | null;
  remote: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS device_connections (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  at INTEGER NOT NULL,
  event TEXT NOT NULL,
  transport TEXT,
  reason TEXT,
  remote TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS device_connections_by_device ON device_connections (device_id, id);
`;

export class ConnectionLog {
  /** deviceId -> entries not yet written, oldest first, at most `limit` per device. */
  private readonly pending = new Map<string, NewConnectionEvent[]>();
  private readonly stmt;

  constructor(
    db: SqliteDatabase,
    private readonly limit = CONNECTION_LOG_LIMIT,
  ) {
    db.exec(SCHEMA);
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO device_connections (device_id, at, event, transport, reason, remote)
           VALUES (@deviceId, @at, @event, @transport, @reason, @remote)`,
      ),
      // Everything older than the device's `limit`-th newest entry.
      prune: db.prepare(
        `DELETE FROM device_connections WHERE device_id = @deviceId AND id <= (
           SELECT id FROM device_connections WHERE device_id = @deviceId ORDER BY id DESC LIMIT 1 OFFSET @limit)`,
      ),
      page: db.prepare(
        `SELECT id, at, event, transport, reason, remote FROM device_connections
           WHERE device_id = ? AND id < ? ORDER BY id DESC LIMIT ?`,
      ),
    };
  }

  /** Appends a transition; written with the next flush. */
  record(deviceId: string, entry: NewConnectionEvent): void {
    let list = this.pending.get(deviceId);
    if (!list) {
      list = [];
      this.pending.set(deviceId, list);
    }
    list.push(entry);
    // A device flapping faster than the flush cannot grow memory past what the table would keep anyway.
    if (list.length > this.limit) list.shift();
  }

  get dirty(): boolean {
    return this.pending.size > 0;
  }

  /**
   * Writes pending entries of devices `exists` accepts and prunes each such device to `limit`. Call inside
   * a transaction (the registry's flush does).
   */
  writePending(exists: (deviceId: string) => boolean): void {
    for (const [deviceId, list] of this.pending) {
      if (!exists(deviceId)) continue;
      for (const e of list) this.stmt.insert.run({ deviceId, ...e });
      this.stmt.prune.run({ deviceId, limit: this.limit });
    }
    this.pending.clear();
  }

  /** Drops what is pending for a deleted device (its rows go with the device, ON DELETE CASCADE). */
  forget(deviceId: string): void {
    this.pending.delete(deviceId);
  }

  /** Newest first: up to `limit` entries with id < `before` (all when `before` is undefined). */
  page(deviceId: string, limit: number, before?: number): ConnectionEvent[] {
    const rows = this.stmt.page.all(deviceId, before ?? Number.MAX_SAFE_INTEGER, limit) as Row[];
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      event: r.event as ConnectionEvent['event'],
      transport: r.transport as Transport | null,
      reason: r.reason,
      remote: r.remote,
    }));
  }
}
