/**
 * What a simulated device model is: the metrics it declares (names, kinds, units, ranges, exactly as the
 * SDK sends them in HELLO) and a cheap, deterministic generator of its readings.
 */
import type { MetricKind } from '@tendril/device-sdk';

/** One metric declaration, in the shape TendrilDevice's `metrics` option takes. */
export interface MetricSpec {
  name: string;
  kind: MetricKind;
  unit?: string;
  min?: number;
  max?: number;
}

export type SampleValue = number | boolean | string;
/** One reading's values by metric name. */
export type Sample = Record<string, SampleValue>;

/** The one switchable output a device has; the command of the same name switches it. */
export type SwitchName = 'relay' | 'led';

export interface ModelInstance {
  /**
   * Values of one reading at device time `nowMs`. Successive calls must pass non-decreasing times; the
   * instance integrates over the gap (energy, drift, battery drain). Same seed + same times = same values.
   */
  sample(nowMs: number): Sample;
  /** State of the device's relay or LED; reported in every reading under the model's switchName. */
  switchOn: boolean;
}

export interface DeviceModel {
  /** Stable model name, stored in the hub's device registry (`model`). */
  readonly name: string;
  /** Device ids are `<idPrefix>-0001`, ... */
  readonly idPrefix: string;
  /** Human name prefix: "Env sensor 1". */
  readonly label: string;
  readonly switchName: SwitchName;
  /** Battery-powered models also report `battery` (draining) and `rssi` (wandering). */
  readonly batteryPowered: boolean;
  readonly firmware: string;
  readonly metrics: readonly MetricSpec[];
  create(seed: number, startMs: number): ModelInstance;
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
