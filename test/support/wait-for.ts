/**
 * Waiting helpers for tests. They replace sleeps: each waits for the thing itself and, when it does not
 * come, fails with an error that names what was awaited.
 */

export interface WaitOptions {
  /** What is being awaited, in words: it becomes the timeout message ("timed out after 5000 ms waiting for <what>"). */
  what: string;
  /** Default 5000. */
  timeoutMs?: number;
  /** How often a predicate is re-evaluated. Default 10 ms. */
  intervalMs?: number;
}

export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    detail?: string,
  ) {
    super(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `: ${detail}` : ''}`);
  }
}

const DEFAULT_TIMEOUT_MS = 5000;

/**
 * Resolves with the first truthy value of `predicate` (re-evaluated every `intervalMs`, errors it throws
 * count as "not yet"), or with the value of `promise`. Rejects with WaitTimeoutError after `timeoutMs`;
 * when the predicate threw on its last attempt, that error's message is included.
 */
export function waitFor<T>(
  target: Promise<T> | (() => T | Promise<T>),
  options: WaitOptions,
): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  type Truthy = Exclude<T, false | null | undefined | 0 | ''>;
  if (typeof target !== 'function') {
    return withTimeout(target as Promise<Truthy>, timeoutMs, options.what);
  }
  const predicate = target;
  const intervalMs = options.intervalMs ?? 10;
  return new Promise<Truthy>((resolve, reject) => {
    let lastError: unknown;
    let done = false;
    let pollTimer: NodeJS.Timeout | undefined;
    const deadline = setTimeout(() => {
      done = true;
      clearTimeout(pollTimer);
      const detail = lastError === undefined ? undefined : `last attempt threw: ${errorMessage(lastError)}`;
      reject(new WaitTimeoutError(options.what, timeoutMs, detail));
    }, timeoutMs);
    const attempt = async (): Promise<void> => {
      try {
        const value = await predicate();
        if (done) return;
        if (value) {
          done = true;
          clearTimeout(deadline);
          resolve(value as Truthy);
          return;
        }
        lastError = undefined;
      } catch (err) {
        lastError = err;
      }
      if (!done) pollTimer = setTimeout(() => void attempt(), intervalMs);
    };
    void attempt();
  });
}

/** Races `promise` against a timer; the timer is cleared either way so it never holds the process open. */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new WaitTimeoutError(what, timeoutMs)), timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** Anything with Node's EventEmitter listener methods (EventEmitter, ws.WebSocket, ChildProcess, mqtt client...). */
export interface ListenerTarget {
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

export interface OnceOptions {
  what: string;
  /** Default 5000. */
  timeoutMs?: number;
  /** Resolve only for an emission whose arguments pass this filter. */
  filter?: (...args: any[]) => boolean;
  /** Reject when the emitter emits 'error' first. Default true (as Node's events.once). */
  rejectOnError?: boolean;
}

/**
 * Resolves with the arguments of the next `event` emitted by `emitter` (optionally the next one that passes
 * `filter`). Rejects with WaitTimeoutError after `timeoutMs`, or with the error if 'error' comes first.
 */
export function once(emitter: ListenerTarget, event: string, options: OnceOptions): Promise<any[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const rejectOnError = options.rejectOnError ?? event !== 'error';
  return new Promise<any[]>((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      emitter.off(event, onEvent);
      if (rejectOnError) emitter.off('error', onError);
    };
    const onEvent = (...args: any[]): void => {
      if (options.filter && !options.filter(...args)) return;
      cleanup();
      resolve(args);
    };
    const onError = (err: unknown): void => {
      cleanup();
      reject(err instanceof Error ? err : new Error(`error event while waiting for ${options.what}: ${String(err)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new WaitTimeoutError(options.what, timeoutMs, `no '${event}' event`));
    }, timeoutMs);
    emitter.on(event, onEvent);
    if (rejectOnError) emitter.on('error', onError);
  });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
