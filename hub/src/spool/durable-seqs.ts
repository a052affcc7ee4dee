/**
 * The highest durable seq per (device, epoch) (docs/storage.md, "Durable seqs"): from the records in the
 * segments and, for records in segments already deleted, from durable-seqs.json. The last few epochs per device.
 */
import type { StoredReading } from '../storage/types.js';

/** Epochs remembered per device (a device changes epoch only when its counter restarts). */
const EPOCHS_PER_DEVICE = 4;

export type SeqRow = [deviceId: string, epoch: number, seq: number];

export class DurableSeqs {
  private readonly seqs = new Map<string, Map<number, number>>();

  get(deviceId: string, epoch: number): number {
    return this.seqs.get(deviceId)?.get(epoch) ?? 0;
  }

  all(): ReadonlyMap<string, ReadonlyMap<number, number>> {
    return this.seqs;
  }

  note(deviceId: string, epoch: number, seq: number): void {
    let epochs = this.seqs.get(deviceId);
    if (!epochs) {
      epochs = new Map();
      this.seqs.set(deviceId, epochs);
    }
    const prev = epochs.get(epoch);
    if (prev !== undefined) {
      if (seq > prev) epochs.set(epoch, seq);
      return;
    }
    epochs.set(epoch, seq);
    if (epochs.size > EPOCHS_PER_DEVICE) {
      // Forget the epoch first seen longest ago: a device's counter only ever moves to a new epoch.
      const oldest = epochs.keys().next().value;
      if (oldest !== undefined) epochs.delete(oldest);
    }
  }

  /** note() for each run of readings of one (device, epoch) with its highest seq, not for every reading. */
  noteRuns(readings: readonly StoredReading[]): void {
    let run = readings[0];
    if (!run) return;
    let max = run.seq;
    for (let i = 1; i < readings.length; i++) {
      const r = readings[i]!;
      if (r.deviceId === run.deviceId && r.epoch === run.epoch) {
        if (r.seq > max) max = r.seq;
        continue;
      }
      this.note(run.deviceId, run.epoch, max);
      run = r;
      max = r.seq;
    }
    this.note(run.deviceId, run.epoch, max);
  }

  /** The contents of durable-seqs.json. */
  toJson(): string {
    const rows: SeqRow[] = [];
    for (const [deviceId, epochs] of this.seqs) for (const [epoch, seq] of epochs) rows.push([deviceId, epoch, seq]);
    return JSON.stringify(rows);
  }
}
