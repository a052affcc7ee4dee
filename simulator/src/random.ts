/**
 * Seeded pseudo-random numbers. Every model and fault draws from one of these, so a fleet started with the
 * same --seed produces the same values and the same fault schedule.
 */

/** A source of uniform numbers in [0, 1), advanced on every call. */
export type RandomSource = () => number;

/** mulberry32: 32-bit state, fast, good enough for simulated sensor noise (not for secrets). */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes a fleet seed with a device index (and a purpose) into an independent 32-bit seed. */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

/** Standard normal deviate (Box-Muller; the second value of each pair is discarded to keep no state). */
export function gaussian(random: RandomSource): number {
  const u = 1 - random(); // (0, 1]: log(0) would be -Infinity
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Uniform in [min, max). */
export function between(random: RandomSource, min: number, max: number): number {
  return min + (max - min) * random();
}

/** Exponentially distributed waiting time with the given mean (for Poisson events such as drops). */
export function exponential(random: RandomSource, mean: number): number {
  return -Math.log(1 - random()) * mean;
}

export function clamp(value: number, min: number, max: number): number {
  return Math.min(Math.max(value, min), max);
}
