/**
 * The device registry: who may connect, what each device declared, and where its sequence counter
 * stands. SQLite (HUB_DATA_DIR/hub.db) with an in-memory copy of every device, so authentication and
 * the device list never touch the disk on the hot path.
 *
 * Creation, token rotation and deletion are written through at once. Connection state that changes
 * often (durable seq, dropped count, presence, last seen) is marked dirty and written in one
 * transaction per flush (every flushIntervalMs and on close; durable seqs and last-seen times alone only every
 * PROGRESS_FLUSH_EVERY-th periodic flush). Losing the last flush in a crash is safe:
 * the durable seq only lags, devices then resend what the store already holds, and the store drops
 * those duplicates by (device, epoch, seq).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import type { MetricDeclaration } from '@tendril/device-sdk/codec';
import { openDatabase, type SqliteDatabase } from '../storage/sqlite.js';
import { type ConnectionEvent, ConnectionLog } from './connection-log.js';

export type PresenceState = 'online' | 'offline' | 'never';
import type { Transport } from './types.js';

export type { Transport };

export interface Presence {
  state: PresenceState;
  /** Why the device is in this state (null while online or never seen). */
  reason: string | null;
  /** When the state began, ms. */
  since: number | null;
  /** Last frame received from the device, ms. */
  lastSeen: number | null;
  /** Remote address of the current or last connection. */
  remote: string | null;
}

export interface DeviceRecord {
  id: string;
  name: string;
  model: string;
  labels: Record<string, string>;
  createdAt: number;
  disabled: boolean;
  /** SHA-256 of the device token (tokens are 32 random bytes: a fast hash is enough for such secrets). */
  tokenHash: Buffer;
  transport: Transport | null;
  firmware: string | null;
  sdk: string | null;
  /** Epoch of the latest HELLO, null before the first one. */
  epoch: number | null;
  /** Durable seq of `epoch`. */
  ackedSeq: number;
  dropped: number;
  metrics: MetricDeclaration[];
  presence: Presence;
}

export interface NewDevice {
  id: string;
  name?: string | undefined;
  model?: string | undefined;
  labels?: Record<string, string> | undefined;
}

export interface DevicePatch {
  name?: string | undefined;
  model?: string | undefined;
  labels?: Record<string, string> | undefined;
  disabled?: boolean | undefined;
}

interface DeviceRow {
  id: string;
  name: string;
  model: string;
  labels: string;
  created_at: number;
  disabled: number;
  token_hash: Buffer;
  transport: string | null;
  firmware: string | null;
  sdk: string | null;
  epoch: number | null;
  dropped: number;
  metrics: string;
  presence_state: string;
  presence_reason: string | null;
  presence_since: number | null;
  last_seen: number | null;
  remote: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  model TEXT NOT NULL,
  labels TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  token_hash BLOB NOT NULL,
  transport TEXT,
  firmware TEXT,
  sdk TEXT,
  epoch INTEGER,
  dropped INTEGER NOT NULL DEFAULT 0,
  metrics TEXT NOT NULL DEFAULT '[]',
  presence_state TEXT NOT NULL DEFAULT 'never',
  presence_reason TEXT,
  presence_since INTEGER,
  last_seen INTEGER,
  remote TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS device_epochs (
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  epoch INTEGER NOT NULL,
  acked_seq INTEGER NOT NULL,
  PRIMARY KEY (device_id, epoch)
) STRICT, WITHOUT ROWID;
`;

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** 32 random bytes, base64url (43 characters). */
export function newDeviceToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Compares two secrets in time independent of where they differ (and of their lengths). */
export function secretsEqual(presented: string, expected: string): boolean {
  return timingSafeEqual(hashToken(presented), hashToken(expected));
}

// Stands in for the hash of an unknown device, so unknown id and wrong token take the same path.
const UNKNOWN_DEVICE_HASH = hashToken(randomBytes(32).toString('base64url'));

export class DeviceExistsError extends Error {
  override readonly name = 'DeviceExistsError';
}

/** The periodic flush writes durable seqs and last-seen times every this many calls (10 s at 1 s). */
export const PROGRESS_FLUSH_EVERY = 10;

export class DeviceRegistry {
  readonly db: SqliteDatabase;
  /** Presence transitions per device (connection-log.ts), written with this registry's flushes. */
  readonly connections: ConnectionLog;
  private readonly devices = new Map<string, DeviceRecord>();
  private readonly dirtyDevices = new Set<string>();
  /**
   * Devices whose durable seq (of their current epoch) or last-seen time moved and nothing else: written by
   * flush(), but by flush(false) (the periodic one) only every PROGRESS_FLUSH_EVERY calls. Every ack moves them
   * (100 devices: 100 rows a second); the spool's durable seqs are the authority after a crash (raiseAckedSeqs),
   * so a lag here only means older last-seen times after a crash.
   */
  private readonly progressDevices = new Set<DeviceRecord>();
  private flushes = 0;
  /** key `${deviceId}\0${epoch}` -> durable seq not yet written (epochs a device no longer uses). */
  private readonly dirtyEpochs = new Map<string, { deviceId: string; epoch: number; ackedSeq: number }>();
  private readonly stmt;
  private closed = false;

  constructor(dataDir: string) {
    this.db = openDatabase(join(dataDir, 'hub.db'));
    this.db.exec(SCHEMA);
    this.connections = new ConnectionLog(this.db);
    this.stmt = {
      insert: this.db.prepare(
        `INSERT INTO devices (id, name, model, labels, created_at, token_hash) VALUES (@id, @name, @model, @labels, @createdAt, @tokenHash)`,
      ),
      setToken: this.db.prepare(`UPDATE devices SET token_hash = ? WHERE id = ?`),
      setProfile: this.db.prepare(
        `UPDATE devices SET name = @name, model = @model, labels = @labels, disabled = @disabled WHERE id = @id`,
      ),
      remove: this.db.prepare(`DELETE FROM devices WHERE id = ?`),
      saveState: this.db.prepare(
        `UPDATE devices SET transport = @transport, firmware = @firmware, sdk = @sdk, epoch = @epoch, dropped = @dropped,
           metrics = @metrics, presence_state = @state, presence_reason = @reason, presence_since = @since,
           last_seen = @lastSeen, remote = @remote WHERE id = @id`,
      ),
      saveEpoch: this.db.prepare(
        `INSERT INTO device_epochs (device_id, epoch, acked_seq) VALUES (?, ?, ?)
           ON CONFLICT (device_id, epoch) DO UPDATE SET acked_seq = max(acked_seq, excluded.acked_seq)`,
      ),
      loadEpoch: this.db.prepare(`SELECT acked_seq FROM device_epochs WHERE device_id = ? AND epoch = ?`).pluck(),
      all: this.db.prepare(`SELECT * FROM devices`),
    };
    for (const row of this.stmt.all.all() as DeviceRow[]) this.devices.set(row.id, this.fromRow(row));
  }

  private fromRow(row: DeviceRow): DeviceRecord {
    const record: DeviceRecord = {
      id: row.id,
      name: row.name,
      model: row.model,
      labels: JSON.parse(row.labels) as Record<string, string>,
      createdAt: row.created_at,
      disabled: row.disabled !== 0,
      tokenHash: row.token_hash,
      transport: row.transport as Transport | null,
      firmware: row.firmware,
      sdk: row.sdk,
      epoch: row.epoch,
      ackedSeq: 0,
      dropped: row.dropped,
      metrics: JSON.parse(row.metrics) as MetricDeclaration[],
      presence: {
        state: row.presence_state as PresenceState,
        reason: row.presence_reason,
        since: row.presence_since,
        lastSeen: row.last_seen,
        remote: row.remote,
      },
    };
    if (row.epoch !== null) record.ackedSeq = (this.stmt.loadEpoch.get(row.id, row.epoch) as number | undefined) ?? 0;
    return record;
  }

  get size(): number {
    return this.devices.size;
  }

  list(): DeviceRecord[] {
    return [...this.devices.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: string): DeviceRecord | undefined {
    return this.devices.get(id);
  }

  /** Registers a device and returns it with its token; the token is not kept anywhere in clear. */
  create(input: NewDevice, now: number): { device: DeviceRecord; token: string } {
    if (this.devices.has(input.id)) throw new DeviceExistsError(`device ${input.id} exists`);
    const token = newDeviceToken();
    const device: DeviceRecord = {
      id: input.id,
      name: input.name ?? input.id,
      model: input.model ?? '',
      labels: input.labels ?? {},
      createdAt: now,
      disabled: false,
      tokenHash: hashToken(token),
      transport: null,
      firmware: null,
      sdk: null,
      epoch: null,
      ackedSeq: 0,
      dropped: 0,
      metrics: [],
      presence: { state: 'never', reason: null, since: null, lastSeen: null, remote: null },
    };
    this.stmt.insert.run({
      id: device.id,
      name: device.name,
      model: device.model,
      labels: JSON.stringify(device.labels),
      createdAt: now,
      tokenHash: device.tokenHash,
    });
    this.devices.set(device.id, device);
    return { device, token };
  }

  /** New token for the device; the old one stops working at once. Undefined when the device is unknown. */
  rotateToken(id: string): string | undefined {
    const device = this.devices.get(id);
    if (!device) return undefined;
    const token = newDeviceToken();
    const hash = hashToken(token);
    this.stmt.setToken.run(hash, id);
    device.tokenHash = hash;
    return token;
  }

  update(id: string, patch: DevicePatch): DeviceRecord | undefined {
    const device = this.devices.get(id);
    if (!device) return undefined;
    const next = {
      name: patch.name ?? device.name,
      model: patch.model ?? device.model,
      labels: patch.labels ?? device.labels,
      disabled: patch.disabled ?? device.disabled,
    };
    this.stmt.setProfile.run({
      id,
      name: next.name,
      model: next.model,
      labels: JSON.stringify(next.labels),
      disabled: next.disabled ? 1 : 0,
    });
    Object.assign(device, next);
    return device;
  }

  delete(id: string): boolean {
    if (!this.devices.has(id)) return false;
    this.stmt.remove.run(id);
    this.devices.delete(id);
    this.dirtyDevices.delete(id);
    for (const d of this.progressDevices) if (d.id === id) this.progressDevices.delete(d);
    this.connections.forget(id);
    for (const [key, entry] of this.dirtyEpochs) if (entry.deviceId === id) this.dirtyEpochs.delete(key);
    return true;
  }

  /**
   * The device if `token` is its current token, else null. Unknown ids are compared against a stand-in
   * hash, so an unknown device and a wrong token cost the same and look the same.
   */
  authenticate(id: string, token: string): DeviceRecord | null {
    const device = this.devices.get(id);
    const ok = timingSafeEqual(hashToken(token), device?.tokenHash ?? UNKNOWN_DEVICE_HASH);
    return ok && device ? device : null;
  }

  /** Durable seq the hub holds for (device, epoch); 0 for an epoch it has not seen. */
  ackedSeqOf(id: string, epoch: number): number {
    const device = this.devices.get(id);
    if (device && device.epoch === epoch) return device.ackedSeq;
    const pending = this.dirtyEpochs.get(`${id}\0${epoch}`);
    if (pending) return pending.ackedSeq;
    return (this.stmt.loadEpoch.get(id, epoch) as number | undefined) ?? 0;
  }

  /** Switches the device's current epoch (HELLO); the durable seq is that epoch's. */
  setEpoch(device: DeviceRecord, epoch: number): void {
    if (device.epoch !== epoch) {
      // The durable seq of the epoch it leaves is still to be written.
      if (this.progressDevices.delete(device) && device.epoch !== null)
        this.noteEpochSeq(device, device.epoch, device.ackedSeq);
      device.ackedSeq = this.ackedSeqOf(device.id, epoch);
      device.epoch = epoch;
    }
    this.markDirty(device);
  }

  /** Records a new durable seq for the device's current epoch (called after the store committed). */
  setAckedSeq(device: DeviceRecord, epoch: number, seq: number): void {
    if (device.epoch === epoch) {
      if (seq <= device.ackedSeq) return;
      device.ackedSeq = seq;
      if (this.devices.get(device.id) === device) this.progressDevices.add(device);
      return;
    }
    this.noteEpochSeq(device, epoch, seq);
  }

  private noteEpochSeq(device: DeviceRecord, epoch: number, seq: number): void {
    const key = `${device.id}\0${epoch}`;
    const pending = this.dirtyEpochs.get(key);
    if (pending) pending.ackedSeq = Math.max(pending.ackedSeq, seq);
    else this.dirtyEpochs.set(key, { deviceId: device.id, epoch, ackedSeq: seq });
    this.dirtyDevices.add(device.id);
  }

  /** The device's state (presence, firmware, dropped, ...) changed in memory; write it with the next flush. */
  markDirty(device: DeviceRecord): void {
    if (this.devices.get(device.id) === device) this.dirtyDevices.add(device.id);
  }

  get dirty(): boolean {
    return (
      this.dirtyDevices.size > 0 || this.progressDevices.size > 0 || this.dirtyEpochs.size > 0 || this.connections.dirty
    );
  }

  /** The device's connection history, newest first (flushes pending state first so none is missing). */
  connectionHistory(id: string, limit: number, before?: number): ConnectionEvent[] {
    this.flush();
    return this.connections.page(id, limit, before);
  }

  /**
   * Writes every dirty device and epoch in one transaction. `all` false (the periodic flush): devices whose
   * only change is their durable seq or last-seen time wait for every PROGRESS_FLUSH_EVERY-th such call.
   */
  flush(all = true): void {
    if (this.closed || !this.dirty) return;
    const progress = all || ++this.flushes % PROGRESS_FLUSH_EVERY === 0;
    if (!progress && this.dirtyDevices.size === 0 && this.dirtyEpochs.size === 0 && !this.connections.dirty) return;
    const write = this.db.transaction(() => {
      for (const id of this.dirtyDevices) {
        const d = this.devices.get(id);
        if (d) this.saveState(d);
      }
      if (progress) {
        for (const d of this.progressDevices) {
          if (this.devices.get(d.id) !== d) continue;
          if (!this.dirtyDevices.has(d.id)) this.saveState(d);
          if (d.epoch !== null) this.stmt.saveEpoch.run(d.id, d.epoch, d.ackedSeq);
        }
      }
      for (const e of this.dirtyEpochs.values()) {
        if (this.devices.has(e.deviceId)) this.stmt.saveEpoch.run(e.deviceId, e.epoch, e.ackedSeq);
      }
      this.connections.writePending((id) => this.devices.has(id));
    });
    write();
    this.dirtyDevices.clear();
    if (progress) this.progressDevices.clear();
    this.dirtyEpochs.clear();
  }

  private saveState(d: DeviceRecord): void {
    this.stmt.saveState.run({
      id: d.id,
      transport: d.transport,
      firmware: d.firmware,
      sdk: d.sdk,
      epoch: d.epoch,
      dropped: d.dropped,
      metrics: JSON.stringify(d.metrics),
      state: d.presence.state,
      reason: d.presence.reason,
      since: d.presence.since,
      lastSeen: d.presence.lastSeen,
      remote: d.presence.remote,
    });
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.db.close();
  }
}
