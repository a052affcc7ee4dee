/** The models a fleet can mix, by name. */
import { doorMotion } from './door-motion.js';
import { envSensor } from './env-sensor.js';
import { gpsTracker } from './gps-tracker.js';
import type { DeviceModel } from './model.js';
import { powerMeter } from './power-meter.js';

export type { DeviceModel, MetricSpec, ModelInstance, Sample, SampleValue, SwitchName } from './model.js';
export { envSensor, powerMeter, gpsTracker, doorMotion };

export const MODELS: readonly DeviceModel[] = [envSensor, powerMeter, gpsTracker, doorMotion];

export function modelByName(name: string): DeviceModel | undefined {
  return MODELS.find((m) => m.name === name || m.idPrefix === name);
}

/**
 * Resolves a --models list ("env-sensor,power" or "all") to models; throws naming the unknown one.
 */
export function parseModelList(list: string): DeviceModel[] {
  if (list.trim() === '' || list.trim() === 'all') return [...MODELS];
  return list.split(',').map((raw) => {
    const name = raw.trim();
    const model = modelByName(name);
    if (!model)
      throw new Error(`unknown model "${name}"; expected one of ${MODELS.map((m) => m.name).join(', ')} (or all)`);
    return model;
  });
}
