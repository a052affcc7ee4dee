/**
 * Retry delays for talking to a store that may be down: exponential back-off with full jitter
 * (delay = random(0, min(max, base * 2^attempt))), so many writers that failed together do not retry
 * together. A server's Retry-After wins over the computed delay: waiting less would only be refused again.
 */

export interface BackoffOptions {
  /** Ceiling of the first retry's delay, ms. Default 100. */
  baseMs?: number;
  /** Largest delay, ms. Default 10 000. */
  maxMs?: number;
  /** Largest Retry-After honoured, ms; a longer one is clamped so a confused server cannot park us for hours. Default 60 000. */
  maxRetryAfterMs?: number;
  /** Uniform [0, 1); injectable so tests get fixed delays. */
  random?: () => number;
}

export interface Backoff {
  /** Delay before retry number `attempt` (0 = first retry). `retryAfterMs` is the server's hint, if any. */
  delay(attempt: number, retryAfterMs?: number | null): number;
}

export function createBackoff(options: BackoffOptions = {}): Backoff {
  const baseMs = options.baseMs ?? 100;
  const maxMs = options.maxMs ?? 10_000;
  const maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
  const random = options.random ?? Math.random;
  return {
    delay(attempt, retryAfterMs) {
      const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
      const jittered = Math.floor(random() * ceiling);
      if (retryAfterMs !== undefined && retryAfterMs !== null && retryAfterMs > 0) {
        // Honour Retry-After; add at most 10% so writers told the same instant do not return in lockstep.
        const after = Math.min(retryAfterMs, maxRetryAfterMs);
        return after + Math.floor(random() * after * 0.1);
      }
      return jittered;
    },
  };
}

/**
 * Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Returns ms from `nowMs`, or null when
 * absent or unparseable.
 */
export function parseRetryAfter(value: string | string[] | undefined | null, nowMs: number): number | null {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text === null) return null;
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - nowMs);
}

/** A sleep that close() can cut short: pending waits reject with the given reason. */
export type AbortableSleep = (ms: number) => Promise<void>;

export function abortableSleep(
  signal: AbortSignal,
  setTimer: (fn: () => void, ms: number) => unknown = setTimeout,
  clearTimer: (h: unknown) => void = (h) => clearTimeout(h as NodeJS.Timeout),
): AbortableSleep {
  return (ms) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        clearTimer(handle);
        reject(signal.reason);
      };
      const handle = setTimer(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
}
