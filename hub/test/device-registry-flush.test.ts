/**
 * The registry's periodic flush (hub/src/devices/registry.ts, issue 16): presence changes go to hub.db at every
 * flush; a device whose only change is its durable seq or last-seen time waits for every PROGRESS_FLUSH_EVERY-th
 * periodic flush, and a full flush (close, raiseAckedSeqs) writes it at once.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DeviceRegistry, PROGRESS_FLUSH_EVERY } from '../src/devices/registry.js';
import { tempDir } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

/** What hub.db holds for the device: its durable seq of `epoch`, last-seen time and presence state. */
function onDisk(dir: string, id: string, epoch: number): { ackedSeq: number; lastSeen: number | null; state: string } {
  const db = new Database(join(dir, 'hub.db'), { readonly: true });
  try {
    const seq = db
      .prepare('SELECT acked_seq FROM device_epochs WHERE device_id = ? AND epoch = ?')
      .pluck()
      .get(id, epoch);
    const row = db
      .prepare('SELECT last_seen AS lastSeen, presence_state AS state FROM devices WHERE id = ?')
      .get(id) as {
      lastSeen: number | null;
      state: string;
    };
    return { ackedSeq: (seq as number | undefined) ?? 0, ...row };
  } finally {
    db.close();
  }
}

function registryIn(): { registry: DeviceRegistry; dir: string } {
  const dir = tempDir();
  const registry = new DeviceRegistry(dir.path);
  cleanups.push(() => {
    registry.close();
    dir.remove();
  });
  return { registry, dir: dir.path };
}

describe('registry flush', () => {
  it('writes durable seqs and last-seen times every PROGRESS_FLUSH_EVERY periodic flushes, presence at each', () => {
    const { registry, dir } = registryIn();
    const { device } = registry.create({ id: 'd1' }, 1);
    registry.setEpoch(device, 7);
    registry.flush();
    registry.setAckedSeq(device, 7, 5);
    device.presence.lastSeen = 1234;
    for (let i = 1; i < PROGRESS_FLUSH_EVERY; i++) registry.flush(false);
    expect(onDisk(dir, 'd1', 7)).toMatchObject({ ackedSeq: 0, lastSeen: null });
    // A presence change is written at the next periodic flush, with the device's whole row.
    device.presence = { state: 'online', reason: null, since: 1000, lastSeen: 1234, remote: null };
    registry.markDirty(device);
    registry.flush(false);
    expect(onDisk(dir, 'd1', 7)).toMatchObject({ state: 'online', lastSeen: 1234 });
    registry.setAckedSeq(device, 7, 9);
    for (let i = 0; i < PROGRESS_FLUSH_EVERY; i++) registry.flush(false);
    expect(onDisk(dir, 'd1', 7).ackedSeq).toBe(9);
  });

  it('writes everything at a full flush, and the durable seq of an epoch the device left', () => {
    const { registry, dir } = registryIn();
    const { device } = registry.create({ id: 'd1' }, 1);
    registry.setEpoch(device, 7);
    registry.setAckedSeq(device, 7, 5);
    registry.setEpoch(device, 8); // a new epoch before any flush: epoch 7's seq must not be lost
    registry.setAckedSeq(device, 8, 2);
    registry.flush();
    expect(onDisk(dir, 'd1', 7).ackedSeq).toBe(5);
    expect(onDisk(dir, 'd1', 8).ackedSeq).toBe(2);
    expect(registry.ackedSeqOf('d1', 7)).toBe(5);
  });
});
