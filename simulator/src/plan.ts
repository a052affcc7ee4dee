/**
 * Which devices a fleet has: ids, names and seeds follow the models (env-0001, power-0001, ...), mixed
 * round-robin so that any fleet size has every model. Also the devices file that keeps their tokens.
 */
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { ProvisionRequest } from './hub-api.js';
import { modelByName, type DeviceModel } from './models/index.js';
import { deriveSeed } from './random.js';

export interface PlannedDevice {
  id: string;
  name: string;
  model: DeviceModel;
  seed: number;
}

export const MALFORMED_MODEL_NAME = 'malformed-sender';

export function planFleet(count: number, models: readonly DeviceModel[], seed: number): PlannedDevice[] {
  if (models.length === 0) throw new Error('a fleet needs at least one model');
  const perModel = new Map<DeviceModel, number>();
  const out: PlannedDevice[] = [];
  for (let i = 0; i < count; i++) {
    const model = models[i % models.length]!;
    const n = (perModel.get(model) ?? 0) + 1;
    perModel.set(model, n);
    out.push({
      id: `${model.idPrefix}-${String(n).padStart(4, '0')}`,
      name: `${model.label} ${n}`,
      model,
      seed: deriveSeed(seed, model.idPrefix.length, hashString(model.name), n),
    });
  }
  return out;
}

/** Ids of the --malformed devices: malformed-0001, ... */
export function planMalformed(count: number): ProvisionRequest[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `malformed-${String(i + 1).padStart(4, '0')}`,
    name: `Malformed sender ${i + 1}`,
    model: MALFORMED_MODEL_NAME,
    labels: { simulator: 'malformed' },
  }));
}

export function provisionRequest(d: PlannedDevice): ProvisionRequest {
  return { id: d.id, name: d.name, model: d.model.name, labels: { simulator: 'tendril' } };
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** The --devices-file: provisioned devices and their tokens (secret: written with mode 0600). */
export interface DevicesFile {
  version: 1;
  hub: string;
  devices: Array<{ id: string; name: string; model: string; token: string }>;
}

export function readDevicesFile(path: string): DevicesFile | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`--devices-file ${path} is not JSON (${(error as Error).message}); delete it to provision afresh`);
  }
  const file = parsed as Partial<DevicesFile>;
  const ok =
    file?.version === 1 &&
    Array.isArray(file.devices) &&
    file.devices.every(
      (d) =>
        d &&
        typeof d.id === 'string' &&
        typeof d.token === 'string' &&
        typeof d.model === 'string' &&
        typeof d.name === 'string',
    );
  if (!ok)
    throw new Error(
      `--devices-file ${path} is not a simulator devices file (version 1 with devices [{id, name, model, token}]); delete it to provision afresh`,
    );
  return { version: 1, hub: String(file.hub ?? ''), devices: file.devices! };
}

export function writeDevicesFile(path: string, file: DevicesFile): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** The known model of a devices-file entry, or undefined for one the simulator does not run (e.g. malformed). */
export function modelOfEntry(entry: { model: string }): DeviceModel | undefined {
  return modelByName(entry.model);
}
