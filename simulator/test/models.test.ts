import { describe, expect, it } from 'vitest';
import {
  doorMotion,
  envSensor,
  gpsTracker,
  MODELS,
  parseModelList,
  powerMeter,
  type DeviceModel,
  type Sample,
} from '../src/models/index.js';

const START = Date.UTC(2025, 5, 1, 0, 0, 0); // midnight UTC
const MINUTE = 60_000;

function run(model: DeviceModel, seed: number, count: number, stepMs: number): Sample[] {
  const instance = model.create(seed, START);
  const out: Sample[] = [];
  for (let i = 1; i <= count; i++) out.push(instance.sample(START + i * stepMs));
  return out;
}

function correlation(xs: number[], ys: number[]): number {
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0,
    sxx = 0,
    syy = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
    syy += (ys[i]! - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

describe.each(MODELS.map((m) => [m.name, m] as const))('model %s', (_name, model) => {
  it('is deterministic given a seed, and different seeds give different devices', () => {
    expect(run(model, 42, 200, MINUTE)).toEqual(run(model, 42, 200, MINUTE));
    expect(run(model, 42, 200, MINUTE)).not.toEqual(run(model, 43, 200, MINUTE));
  });

  it('reports exactly its declared metrics, each of the declared kind and inside the declared range (2 days)', () => {
    const declared = new Map(model.metrics.map((m) => [m.name, m]));
    const problems: string[] = []; // collected, not one expect per value: 8,640 samples per model
    for (const seed of [1, 2, 3]) {
      for (const sample of run(model, seed, 2 * 24 * 60, MINUTE)) {
        if (Object.keys(sample).sort().join() !== [...declared.keys()].sort().join())
          problems.push(`keys ${Object.keys(sample).join()}`);
        for (const [name, value] of Object.entries(sample)) {
          const m = declared.get(name);
          if (!m) continue;
          const expected = m.kind === 'bool' ? 'boolean' : m.kind === 'string' ? 'string' : 'number';
          if (typeof value !== expected) problems.push(`${name}=${String(value)} is not a ${expected}`);
          if (typeof value !== 'number') continue;
          if (!Number.isFinite(value) || (m.kind === 'int' && !Number.isInteger(value)))
            problems.push(`${name}=${value} is not a valid ${m.kind}`);
          if ((m.min !== undefined && value < m.min) || (m.max !== undefined && value > m.max))
            problems.push(`${name}=${value} outside ${m.min}..${m.max}`);
        }
      }
    }
    expect(problems.slice(0, 10)).toEqual([]);
  });

  it('declares its switch, and battery + rssi exactly when battery-powered', () => {
    const names = model.metrics.map((m) => m.name);
    expect(names).toContain(model.switchName);
    expect(names.includes('battery')).toBe(model.batteryPowered);
    expect(names.includes('rssi')).toBe(model.batteryPowered);
  });

  it('reports the switch state it was set to', () => {
    const instance = model.create(7, START);
    instance.switchOn = true;
    expect(instance.sample(START + 1000)[model.switchName]).toBe(true);
    instance.switchOn = false;
    expect(instance.sample(START + 2000)[model.switchName]).toBe(false);
  });
});

describe('env sensor', () => {
  it('has a daily temperature cycle: afternoons are warmer than nights', () => {
    const samples = run(envSensor, 5, 24 * 60, MINUTE);
    const at = (hour: number) =>
      samples.slice(hour * 60, hour * 60 + 60).reduce((a, s) => a + (s.temperature as number), 0) / 60;
    expect(at(15) - at(3)).toBeGreaterThan(2.5);
  });

  it('humidity moves against temperature', () => {
    const samples = run(envSensor, 9, 24 * 60, MINUTE);
    const r = correlation(
      samples.map((s) => s.temperature as number),
      samples.map((s) => s.humidity as number),
    );
    expect(r).toBeLessThan(-0.7);
  });

  it('pressure stays near its base with small steps', () => {
    const samples = run(envSensor, 11, 600, MINUTE);
    for (let i = 1; i < samples.length; i++) {
      expect(Math.abs((samples[i]!.pressure as number) - (samples[i - 1]!.pressure as number))).toBeLessThan(1);
    }
  });
});

describe('power meter', () => {
  it('energy never decreases and grows while the relay is on', () => {
    const samples = run(powerMeter, 3, 24 * 60, MINUTE);
    for (let i = 1; i < samples.length; i++)
      expect(samples[i]!.energy as number).toBeGreaterThanOrEqual(samples[i - 1]!.energy as number);
    expect((samples.at(-1)!.energy as number) - (samples[0]!.energy as number)).toBeGreaterThan(1); // > 1 kWh a day
  });

  it('with the relay off no current flows and the energy counter stands still', () => {
    const instance = powerMeter.create(3, START);
    instance.sample(START + MINUTE);
    instance.switchOn = false;
    const a = instance.sample(START + 2 * MINUTE);
    const b = instance.sample(START + 60 * MINUTE);
    expect(a.current).toBe(0);
    expect(b.power).toBe(0);
    expect(b.energy).toBe(a.energy);
    expect(b.relay).toBe(false);
  });

  it('power is voltage x current x a power factor near 1', () => {
    for (const s of run(powerMeter, 4, 300, MINUTE)) {
      const va = (s.voltage as number) * (s.current as number);
      if (va > 100) expect((s.power as number) / va).toBeGreaterThan(0.85);
    }
  });
});

describe('GPS tracker', () => {
  it('drives: position changes, stays within 10 km of where it started, and moves about as fast as it says', () => {
    const samples = run(gpsTracker, 8, 6 * 60, 10_000);
    const metres = (a: Sample, b: Sample) => {
      const dy = ((b.lat as number) - (a.lat as number)) * 111_320;
      const dx = ((b.lon as number) - (a.lon as number)) * 111_320 * Math.cos(((a.lat as number) * Math.PI) / 180);
      return Math.hypot(dx, dy);
    };
    let moving = 0;
    for (let i = 1; i < samples.length; i++) {
      const d = metres(samples[i - 1]!, samples[i]!);
      expect(metres(samples[0]!, samples[i]!)).toBeLessThan(10_000);
      const speed = samples[i]!.speed as number;
      // Straight-line distance can be shorter than the road (a corner), never much longer.
      expect(d).toBeLessThanOrEqual((speed / 3.6) * 10 + 1);
      if (d > 10) moving++;
    }
    expect(moving).toBeGreaterThan(samples.length / 3);
  });
});

describe('door/motion sensor', () => {
  it('produces door and motion events and a growing openings count', () => {
    const samples = run(doorMotion, 6, 24 * 60, MINUTE);
    const changes = samples.filter((s, i) => i > 0 && s.door_open !== samples[i - 1]!.door_open).length;
    expect(changes).toBeGreaterThan(10);
    expect(samples.some((s) => s.motion === true)).toBe(true);
    expect(samples.some((s) => s.motion === false)).toBe(true);
    for (let i = 1; i < samples.length; i++)
      expect(samples[i]!.openings as number).toBeGreaterThanOrEqual(samples[i - 1]!.openings as number);
  });
});

describe('battery and signal', () => {
  it('the battery drains over hours and the signal wanders', () => {
    const samples = run(envSensor, 12, 4 * 60, MINUTE);
    const first = samples[0]!.battery as number;
    const later = samples.at(-1)!.battery as number;
    // Either drained, or drained to the cut-off and was swapped for a full one.
    expect(later < first || later > 95).toBe(true);
    expect(new Set(samples.map((s) => s.rssi)).size).toBeGreaterThan(5);
  });
});

describe('parseModelList', () => {
  it('accepts names and id prefixes, "all", and names the unknown one', () => {
    expect(parseModelList('all')).toHaveLength(4);
    expect(parseModelList('env,power-meter').map((m) => m.name)).toEqual(['env-sensor', 'power-meter']);
    expect(() => parseModelList('env,toaster')).toThrow(/unknown model "toaster"/);
  });
});
