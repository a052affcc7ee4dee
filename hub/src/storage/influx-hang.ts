/**
 * A hung InfluxDB, reported within seconds (issue 11, item 9; docs/storage.md, "A hung InfluxDB").
 *
 * A server that stopped answering (influxd stopped by SIGSTOP, swapped out, deadlocked) still accepts TCP
 * connections: the kernel completes them and takes the request bodies. Only the request timeout (10 s) ended
 * such a write, and with 3 attempts per write the spool saw the failure after about 30 s: `tendril_store_up`
 * stayed 1 and no write error was counted meanwhile. A long timeout cannot simply be cut: a busy InfluxDB can
 * take seconds over a large write and is not down.
 *
 * So a write request without an answer for `stallMs` makes the store ask the server for /ping with a deadline
 * of `probeTimeoutMs`. A busy server answers /ping at once (its HTTP handler does not wait for the write); a
 * hung one does not answer at all. Then every write request in flight is abandoned with InfluxHungError (its
 * connection destroyed) and the write fails at once, without the further attempts a transient failure gets:
 * they would hang too. The spool counts the failure (kind `timeout`), marks the store down and retries the
 * batch with its back-off, so a hung server is reported within stallMs + probeTimeoutMs (4 s by default). A
 * write still waiting after a /ping that answered is looked at again every stallMs.
 */
import { InfluxTransportError } from './influx-http.js';

export const DEFAULT_STALL_MS = 2000;
export const DEFAULT_PROBE_TIMEOUT_MS = 2000;

/** The server answered neither a write nor /ping in time: it hangs. */
export class InfluxHungError extends InfluxTransportError {
  override readonly name: string = 'InfluxHungError';
}

export interface HangWatchOptions {
  stallMs: number;
  probeTimeoutMs: number;
  /** GET /ping with this deadline; rejects when there is no answer within it. */
  ping(timeoutMs: number): Promise<void>;
}

interface Watched {
  abort: AbortController;
  timer: NodeJS.Timeout;
}

export class HangWatch {
  private readonly watched = new Set<Watched>();
  private probing: Promise<void> | null = null;

  constructor(private readonly opts: HangWatchOptions) {}

  /**
   * Runs one request; rejects with InfluxHungError when it goes stallMs without an answer and the server then
   * does not answer /ping within probeTimeoutMs. `send` gets a signal that aborts then (a sender that cannot
   * abort is left to its own timeout; its answer is ignored).
   */
  run<T>(send: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    const entry: Watched = { abort, timer: setInterval(() => this.stalled(), this.opts.stallMs) };
    entry.timer.unref();
    this.watched.add(entry);
    const aborted = new Promise<never>((_, reject) => {
      abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true });
    });
    aborted.catch(() => undefined); // settled by the race below or never observed
    return Promise.race([send(abort.signal), aborted]).finally(() => {
      clearInterval(entry.timer);
      this.watched.delete(entry);
    });
  }

  /** A request went stallMs without an answer: ask /ping (one probe at a time for every request in flight). */
  private stalled(): void {
    this.probing ??= this.probe().finally(() => {
      this.probing = null;
    });
  }

  private async probe(): Promise<void> {
    const { stallMs, probeTimeoutMs } = this.opts;
    try {
      await this.opts.ping(probeTimeoutMs);
      return; // answering: a slow write, not a hung server
    } catch (err) {
      const hung = new InfluxHungError(
        `InfluxDB did not answer a write within ${stallMs} ms nor /ping within ${probeTimeoutMs} ms: the server hangs`,
        'timeout',
        { cause: err },
      );
      for (const w of this.watched) w.abort.abort(hung);
    }
  }
}
