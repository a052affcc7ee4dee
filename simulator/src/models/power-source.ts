/** Battery level and radio signal strength, shared by every battery-powered model. */
import { between, clamp, gaussian, type RandomSource } from '../random.js';
import { HOUR_MS, type MetricSpec } from './model.js';

export const BATTERY_METRICS: readonly MetricSpec[] = [
  { name: 'battery', kind: 'f32', unit: '%', min: 0, max: 100 },
  { name: 'rssi', kind: 'int', unit: 'dBm', min: -120, max: -20 },
];

/**
 * A battery that drains at a steady rate plus a small cost per transmission, and is swapped for a full one
 * when it reaches the cut-off (so a long demo never ends up with a fleet of dead devices).
 */
export class Battery {
  level: number;
  private readonly drainPerHour: number;
  private static readonly costPerReading = 0.0005;
  private static readonly cutOff = 3;

  constructor(random: RandomSource) {
    this.level = between(random, 55, 100);
    // Faster than a real battery so that a demo shows the trend within minutes.
    this.drainPerHour = between(random, 0.5, 2.5);
  }

  advance(dtMs: number): number {
    this.level -= (this.drainPerHour * dtMs) / HOUR_MS + Battery.costPerReading;
    if (this.level <= Battery.cutOff) this.level = 100;
    return this.level;
  }
}

/** Received signal strength: a mean-reverting random walk around the device's own typical level. */
export class Signal {
  private dbm: number;
  private readonly typical: number;

  constructor(private readonly random: RandomSource) {
    this.typical = between(random, -95, -55);
    this.dbm = this.typical;
  }

  advance(): number {
    this.dbm += 0.1 * (this.typical - this.dbm) + 1.5 * gaussian(this.random);
    this.dbm = clamp(this.dbm, -120, -20);
    return Math.round(this.dbm);
  }
}
