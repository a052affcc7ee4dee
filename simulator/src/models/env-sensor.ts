/** Environment sensor: temperature with a daily cycle and noise, humidity anticorrelated, pressure. */
import { between, clamp, gaussian, seededRandom } from '../random.js';
import { DAY_MS, HOUR_MS, type DeviceModel, type ModelInstance, type Sample } from './model.js';
import { Battery, BATTERY_METRICS, Signal } from './power-source.js';

export const envSensor: DeviceModel = {
  name: 'env-sensor',
  idPrefix: 'env',
  label: 'Env sensor',
  switchName: 'led',
  batteryPowered: true,
  firmware: 'env-fw 2.4.1',
  metrics: [
    { name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
    { name: 'humidity', kind: 'f32', unit: '%', min: 0, max: 100 },
    { name: 'pressure', kind: 'f32', unit: 'hPa', min: 300, max: 1100 },
    ...BATTERY_METRICS,
    { name: 'led', kind: 'bool' },
  ],
  create(seed: number, startMs: number): ModelInstance {
    const random = seededRandom(seed);
    const meanTemp = between(random, 17, 24);
    const swing = between(random, 2, 5); // half the day-night difference, °C
    const peakHour = between(random, 14, 16); // warmest in the afternoon
    const meanHumidity = between(random, 40, 60);
    const basePressure = between(random, 1005, 1022);
    const battery = new Battery(random);
    const signal = new Signal(random);
    let pressure = basePressure;
    let noise = 0; // AR(1) noise: consecutive readings are close, not independent
    let last = startMs;

    const instance: ModelInstance = {
      switchOn: false,
      sample(nowMs: number): Sample {
        const dt = Math.max(0, nowMs - last);
        last = nowMs;
        const phase = (2 * Math.PI * ((nowMs % DAY_MS) / HOUR_MS - peakHour)) / 24;
        const cycle = Math.cos(phase); // +1 at the warmest hour, -1 twelve hours later
        noise = 0.8 * noise + 0.15 * gaussian(random);
        const temperature = meanTemp + swing * cycle + noise;
        // Relative humidity falls as air warms (roughly -2.5 %/°C around room conditions).
        const humidity = clamp(meanHumidity - 2.5 * (temperature - meanTemp) + 0.8 * gaussian(random), 5, 98);
        pressure += 0.02 * (basePressure - pressure) + 0.05 * gaussian(random);
        return {
          temperature: round(temperature, 2),
          humidity: round(humidity, 1),
          pressure: round(pressure, 1),
          battery: round(battery.advance(dt), 2),
          rssi: signal.advance(),
          led: instance.switchOn,
        };
      },
    };
    return instance;
  },
};

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
