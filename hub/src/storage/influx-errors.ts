/**
 * Errors of the InfluxDB store and how InfluxDB's answers map to them (docs/storage.md, "Writes, retries and
 * refusals").
 */

export type InfluxWriteErrorKind =
  | 'unreachable'
  | 'timeout'
  | 'throttled'
  | 'server'
  | 'auth'
  | 'not_found'
  | 'rejected'
  | 'type_conflict';

export interface InfluxStoreStats {
  mode: 'v1' | 'v2';
  /** X-Influxdb-Version of the server, once seen. */
  serverVersion: string | null;
  requests: number;
  /** Lines the server answered 2xx for (a line re-sent after a split counts again). */
  linesWritten: number;
  /** Failed requests by kind (transient ones included, each attempt counted). */
  writeErrors: Record<InfluxWriteErrorKind, number>;
  /** Lines refused for good (recorded in the dead-letter file). */
  deadLetteredLines: number;
  /** Values left out of their reading because of a field type conflict. */
  deadLetteredValues: number;
  lastError: { kind: InfluxWriteErrorKind; message: string; at: number } | null;
}

/** A write that did not become durable; retry the same readings later. */
export class InfluxWriteError extends Error {
  override readonly name = 'InfluxWriteError';
  constructor(
    message: string,
    readonly kind: InfluxWriteErrorKind,
    /** The server's Retry-After, ms, if it sent one. */
    readonly retryAfterMs: number | null,
  ) {
    super(message);
  }
}

/** The aggregate does not apply to the metric's type (e.g. mean of a string). The history API answers 400. */
export class UnsupportedAggregateError extends Error {
  override readonly name = 'UnsupportedAggregateError';
  readonly code = 'UNSUPPORTED_AGGREGATE';
}

export class InfluxQueryError extends Error {
  override readonly name = 'InfluxQueryError';
}

/** The kind of a write answer worth waiting out (tried again), or null for a refusal. */
export function transientKindOf(status: number): InfluxWriteErrorKind | null {
  if (status === 429) return 'throttled';
  if (status === 401 || status === 403) return 'auth';
  if (status === 404) return 'not_found';
  if (status === 408 || status >= 500) return status === 503 ? 'throttled' : 'server';
  return null;
}

/** The message of an InfluxDB error body: 1.x `{"error": ...}`, 2.x/3.x `{"message": ...}`, else the text. */
export function errorText(body: string): string {
  const trimmed = body.trim();
  if (trimmed.startsWith('{')) {
    try {
      const parsed = JSON.parse(trimmed) as { error?: unknown; message?: unknown };
      if (typeof parsed.error === 'string') return parsed.error;
      if (typeof parsed.message === 'string') return parsed.message;
    } catch {
      // fall through to the raw text
    }
  }
  return trimmed.slice(0, 1000);
}
