/** Mains power meter: voltage, current, active power, and an energy counter that only grows. */
import { between, clamp, gaussian, seededRandom } from '../random.js';
import { round } from './env-sensor.js';
import { DAY_MS, HOUR_MS, type DeviceModel, type ModelInstance, type Sample } from './model.js';

export const powerMeter: DeviceModel = {
  name: 'power-meter',
  idPrefix: 'power',
  label: 'Power meter',
  switchName: 'relay',
  batteryPowered: false,
  firmware: 'meter-fw 1.9.0',
  metrics: [
    { name: 'voltage', kind: 'f32', unit: 'V', min: 0, max: 300 },
    { name: 'current', kind: 'f32', unit: 'A', min: 0, max: 100 },
    { name: 'power', kind: 'f32', unit: 'W', min: 0, max: 30000 },
    { name: 'energy', kind: 'f64', unit: 'kWh', min: 0 },
    { name: 'relay', kind: 'bool' },
  ],
  create(seed: number, startMs: number): ModelInstance {
    const random = seededRandom(seed);
    const nominal = between(random, 228, 232);
    const baseLoad = between(random, 0.3, 1.5); // A, always-on appliances
    const peakLoad = between(random, 4, 12); // A, evening peak
    const powerFactor = between(random, 0.9, 0.99);
    let voltage = nominal;
    let applianceA = 0; // a kettle or oven that switches on now and then
    let applianceLeftMs = 0;
    let energyKWh = round(between(random, 100, 5000), 3);
    let last = startMs;

    const instance: ModelInstance = {
      switchOn: true, // the relay feeds the load; off = nothing flows
      sample(nowMs: number): Sample {
        const dt = Math.max(0, nowMs - last);
        last = nowMs;
        voltage = clamp(voltage + 0.1 * (nominal - voltage) + 0.4 * gaussian(random), 207, 253);
        const hour = (nowMs % DAY_MS) / HOUR_MS;
        // Two humps: morning (7-9 h) and a larger evening (18-22 h) peak.
        const profile = 0.35 * bump(hour, 8, 1.2) + bump(hour, 20, 2);
        applianceLeftMs -= dt;
        if (applianceLeftMs <= 0) {
          applianceA = 0;
          if (random() < 0.03) {
            applianceA = between(random, 5, 10);
            applianceLeftMs = between(random, 60_000, 600_000);
          }
        }
        const current = instance.switchOn
          ? clamp(baseLoad + peakLoad * profile + applianceA + 0.05 * gaussian(random), 0, 100)
          : 0;
        const power = voltage * current * powerFactor;
        energyKWh += (power * dt) / HOUR_MS / 1000; // W x ms -> kWh
        return {
          voltage: round(voltage, 1),
          current: round(current, 2),
          power: round(power, 0),
          // Rounded down so that the reported counter never goes backwards.
          energy: Math.floor(energyKWh * 1000) / 1000,
          relay: instance.switchOn,
        };
      },
    };
    return instance;
  },
};

/** A smooth bump of height 1 centred on `center` hours with the given width, wrapping around midnight. */
function bump(hour: number, center: number, width: number): number {
  let d = Math.abs(hour - center);
  if (d > 12) d = 24 - d;
  return Math.exp(-(d * d) / (2 * width * width));
}
