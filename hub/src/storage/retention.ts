/**
 * Retention (docs/storage.md, "Retention"): readings older than HUB_RETENTION_DAYS (default 30; 0 = keep
 * forever) are removed by the store itself where it can (an InfluxDB 1.x retention policy), and by a
 * periodic pruning job where it cannot (SQLite).
 */
import type { EnvReader } from '../core/env.js';
import type { InfluxQLResult } from './influx-schema.js';

export const DEFAULT_RETENTION_DAYS = 30;
const DAY_MS = 86_400_000;

/** HUB_RETENTION_DAYS: whole days, 0 = keep forever. Throws naming the variable when malformed. */
/** HUB_RETENTION_DAYS: whole days, 0 keeps data forever. */
export function retentionDaysFromEnv(e: EnvReader): number {
  return e.int('HUB_RETENTION_DAYS', DEFAULT_RETENTION_DAYS, { max: 36_500 });
}

/** InfluxQL duration for a retention in days; 0 = INF. */
export function retentionDuration(days: number): string {
  return days === 0 ? 'INF' : `${days}d`;
}

/**
 * Shard group duration InfluxDB itself picks for a policy of this length (its documented defaults). It has
 * to be set with the duration: a 7-day shard group (the default of an infinite policy) is refused for a
 * 1-day policy.
 */
export function shardDuration(days: number): string {
  if (days === 0 || days > 183) return '7d';
  if (days >= 2) return '1d';
  return '1h';
}

/** Go duration text as SHOW RETENTION POLICIES prints it ("720h0m0s", "0s" = infinite) -> ms. */
export function parseGoDuration(text: string): number {
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g)) {
    const n = Number(m[1]);
    const unit = m[2];
    ms += unit === 'h' ? n * 3_600_000 : unit === 'm' ? n * 60_000 : unit === 's' ? n * 1000 : unit === 'ms' ? n : 0;
  }
  return ms;
}

/**
 * Makes the database's default retention policy (or `rp`) keep `days` days (InfluxDB 1.x). Alters the
 * existing policy rather than adding a new default one, so data already written stays visible to queries
 * that do not name a policy. Returns what was done, for the log.
 */
export async function applyInfluxRetention(
  query: (q: string) => Promise<InfluxQLResult[]>,
  db: string,
  days: number,
  rp?: string,
): Promise<'unchanged' | 'altered' | 'created'> {
  const ident = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const [result] = await query(`SHOW RETENTION POLICIES ON ${ident(db)}`);
  if (result?.error) throw new Error(`SHOW RETENTION POLICIES ON ${db}: ${result.error}`);
  const series = result?.series?.[0];
  const col = (name: string): number => series?.columns.indexOf(name) ?? -1;
  const rows = series?.values ?? [];
  const target = rows.find((r) => (rp ? r[col('name')] === rp : r[col('default')] === true));
  const wantMs = days * DAY_MS;
  if (!target) {
    const name = rp ?? 'autogen';
    const [created] = await query(
      `CREATE RETENTION POLICY ${ident(name)} ON ${ident(db)} DURATION ${retentionDuration(days)} REPLICATION 1 SHARD DURATION ${shardDuration(days)}${rp ? '' : ' DEFAULT'}`,
    );
    if (created?.error) throw new Error(`CREATE RETENTION POLICY ${name}: ${created.error}`);
    return 'created';
  }
  const name = String(target[col('name')]);
  if (parseGoDuration(String(target[col('duration')])) === wantMs) return 'unchanged';
  const [altered] = await query(
    `ALTER RETENTION POLICY ${ident(name)} ON ${ident(db)} DURATION ${retentionDuration(days)} SHARD DURATION ${shardDuration(days)}`,
  );
  if (altered?.error) throw new Error(`ALTER RETENTION POLICY ${name}: ${altered.error}`);
  return 'altered';
}

export interface IntervalTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const systemIntervals: IntervalTimers = {
  setInterval: (fn, ms) => setInterval(fn, ms).unref(),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

export interface PruningJobOptions {
  /** Deletes readings with ts < cutoffMs; returns how many went (for the log and metrics). */
  prune: (cutoffMs: number) => number | Promise<number>;
  retentionDays: number;
  /** Default hourly. */
  intervalMs?: number;
  /** ms since the Unix epoch; injectable for tests. */
  clock?: { now(): number };
  /** Injectable interval timer (tests drive it by hand). */
  timers?: IntervalTimers;
  onPruned?: (deleted: number, cutoffMs: number) => void;
  onError?: (err: unknown) => void;
}

export interface PruningJob {
  /** Runs one pruning pass now (also what the timer runs). Resolves with the rows deleted. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Periodic pruning for stores without server-side retention (SQLite). The first pass runs at start, then
 * every intervalMs; passes never overlap. retentionDays 0 = keep forever (the job does nothing).
 */
export function startPruningJob(options: PruningJobOptions): PruningJob {
  const clock = options.clock ?? { now: () => Date.now() };
  const timers = options.timers ?? systemIntervals;
  const intervalMs = options.intervalMs ?? 3_600_000;
  let running: Promise<number> | null = null;
  let stopped = false;
  const runOnce = (): Promise<number> => {
    if (options.retentionDays === 0) return Promise.resolve(0);
    if (running) return running;
    const cutoff = clock.now() - options.retentionDays * DAY_MS;
    running = (async () => {
      try {
        const deleted = await options.prune(cutoff);
        options.onPruned?.(deleted, cutoff);
        return deleted;
      } finally {
        running = null;
      }
    })();
    return running;
  };
  const tick = (): void => {
    if (stopped) return;
    runOnce().catch((err: unknown) => options.onError?.(err));
  };
  const handle = options.retentionDays === 0 ? null : timers.setInterval(tick, intervalMs);
  tick();
  return {
    runOnce,
    async stop() {
      stopped = true;
      if (handle) timers.clearInterval(handle);
      await running?.catch(() => undefined);
    },
  };
}
