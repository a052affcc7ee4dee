/** Decoder limits (protocol §9.2). Every one is an option; these are the defaults both ends use. */
export interface Limits {
  /** Largest frame (WebSocket message payload) in bytes. */
  maxFrameBytes: number;
  maxDeviceIdBytes: number;
  maxTokenBytes: number;
  /** firmware and sdk strings in HELLO. */
  maxVersionBytes: number;
  maxMetricNameBytes: number;
  maxUnitBytes: number;
  /** Metric declarations in one HELLO, and values in one reading. */
  maxMetrics: number;
  /** Highest alias number. */
  maxAlias: number;
  /** STRING values. */
  maxStringValueBytes: number;
  /** Readings in one BATCH. */
  maxBatch: number;
  maxCommandNameBytes: number;
  maxCommandArgsBytes: number;
  /** COMMAND_RESULT detail. */
  maxDetailBytes: number;
  /** ERROR message. */
  maxMessageBytes: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxFrameBytes: 16_384,
  maxDeviceIdBytes: 64,
  maxTokenBytes: 128,
  maxVersionBytes: 32,
  maxMetricNameBytes: 64,
  maxUnitBytes: 16,
  maxMetrics: 64,
  maxAlias: 1023,
  maxStringValueBytes: 256,
  maxBatch: 256,
  maxCommandNameBytes: 64,
  maxCommandArgsBytes: 4096,
  maxDetailBytes: 1024,
  maxMessageBytes: 256,
});

/**
 * Fills unset options with the defaults. An option given as `undefined` keeps its default (a spread would
 * copy the undefined and silently lift the limit); a value that is not a non-negative integer is a
 * configuration error (RangeError), not a frame error.
 */
export function resolveLimits(partial?: Partial<Limits>): Limits {
  if (!partial) return DEFAULT_LIMITS;
  const limits: Limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(partial) as Array<keyof Limits>) {
    const value = partial[key];
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) throw new RangeError(`unknown limit ${String(key)}`);
    if (!Number.isSafeInteger(value) || value < 0)
      throw new RangeError(`limit ${key} must be a non-negative integer, got ${value}`);
    limits[key] = value;
  }
  return limits;
}

/** Device ids: 1..maxDeviceIdBytes of [A-Za-z0-9._:-] (protocol §4.1). */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9._:-]+$/;
/** Metric names: [A-Za-z0-9_./-], starting with a letter (protocol §4.2). */
export const METRIC_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_./-]*$/;
