/**
 * The InfluxDB store's dead-letter file (docs/storage.md): what InfluxDB refused for good, kept as JSON lines
 * so an operator can save it. Appended durably, because the spool's checkpoint moves past these readings next.
 */
import { appendFile, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { DeadLetter, Entry } from './influx-body.js';

/** Appends `text` to the file and makes it durable; the file and its folder are the hub's user's only. */
export async function appendDeadLetters(path: string, text: string): Promise<void> {
  // Readings, for the hub's user only (issue 11, item 7): a file an earlier hub created 0644 is restricted too.
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await appendFile(path, text, { mode: 0o600 });
  const fh = await open(path, 'r+');
  try {
    await fh.chmod(0o600);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** The values left out of their readings (a field type conflict), one record each. */
export function skippedValuesOf(entries: readonly Entry[]): NonNullable<DeadLetter['values']> {
  const values: NonNullable<DeadLetter['values']> = [];
  for (const e of entries) {
    for (const v of e.skipped) {
      values.push({
        deviceId: e.reading.deviceId,
        epoch: e.reading.epoch,
        seq: e.reading.seq,
        ts: e.reading.ts,
        metric: v.metric,
        kind: v.kind,
        value: v.value,
      });
    }
  }
  return values;
}
