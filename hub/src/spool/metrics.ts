/**
 * Prometheus series for the spool and the InfluxDB store (docs/storage.md, "Monitoring"). Values are read
 * from their state on every scrape (collect callbacks), so nothing on the write path touches prom-client.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { InfluxStore } from '../storage/influx-store.js';
import type { Spool } from './spool.js';

/** A counter that mirrors a monotonic number kept elsewhere (adds the growth since the last scrape). */
function mirrorCounter(counter: Counter, labels: Record<string, string> | undefined, read: () => number): () => void {
  let seen = 0;
  return () => {
    const now = read();
    if (now > seen) {
      if (labels) counter.inc(labels, now - seen);
      else counter.inc(now - seen);
      seen = now;
    }
  };
}

export function registerStorageMetrics(registry: Registry, spool: Spool, influx?: InfluxStore): void {
  const registers = [registry];
  registerSpoolGauges(registers, spool);
  const updates: Array<() => void> = [];
  // Registered first among the counters: its collect refreshes every mirrored counter before they are read.
  const drained = new Counter({
    name: 'tendril_spool_drained_readings_total',
    help: 'Readings the spool wrote to the store.',
    registers,
    collect: () => {
      for (const update of updates) update();
    },
  });
  const commits = new Counter({
    name: 'tendril_spool_commits_total',
    help: 'Group commits (fdatasync calls) of the spool.',
    registers,
  });
  const inlineCommits = new Counter({
    name: 'tendril_spool_inline_commits_total',
    help: 'Group commits of the spool made on the event loop thread (a fast disk), not through the thread pool.',
    registers,
  });
  const writeErrors = new Counter({
    name: 'tendril_store_write_errors_total',
    help: 'Failed store writes of the spool drainer, by kind (unreachable, timeout, throttled, server, auth, not_found, ...).',
    labelNames: ['kind'],
    registers,
  });
  updates.push(mirrorCounter(drained, undefined, () => spool.state.drainedReadings));
  updates.push(mirrorCounter(commits, undefined, () => spool.state.commits));
  updates.push(mirrorCounter(inlineCommits, undefined, () => spool.state.inlineCommits));
  const errorKinds = new Set<string>();
  const errorMirrors: Array<() => void> = [];
  updates.push(() => {
    for (const kind of Object.keys(spool.state.writeErrors)) {
      if (errorKinds.has(kind)) continue;
      errorKinds.add(kind);
      errorMirrors.push(mirrorCounter(writeErrors, { kind }, () => spool.state.writeErrors[kind] ?? 0));
    }
    for (const mirror of errorMirrors) mirror();
  });
  if (influx) registerInfluxCounters(registers, influx, updates);
}

/** The spool's gauges, read on every scrape. */
function registerSpoolGauges(registers: Registry[], spool: Spool): void {
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  };
  gauge(
    'tendril_store_up',
    'Whether the last write of the spool drainer to the time-series store succeeded (1) or failed (0); 1 before the first write.',
    () => (spool.storeState === 'down' ? 0 : 1),
  );
  gauge(
    'tendril_spool_accepting',
    'Whether the spool takes readings (0: full or failed, devices get BACKOFF STORE_BUSY).',
    () => (spool.accepting ? 1 : 0),
  );
  gauge(
    'tendril_spool_failed',
    'Whether an append or fdatasync of the spool failed (1): it takes no readings until the hub is restarted.',
    () => (spool.state.failure ? 1 : 0),
  );
  gauge('tendril_spool_bytes', 'Bytes of readings in the spool not yet written to the store.', () => spool.depthBytes);
  gauge('tendril_spool_readings', 'Readings in the spool not yet written to the store.', () => spool.depthReadings);
  gauge(
    'tendril_spool_oldest_undrained_seconds',
    'Age of the oldest reading in the spool not yet written to the store (0 when drained).',
    () => spool.state.oldestUndrainedAgeMs / 1000,
  );
}

/** The InfluxDB store's counters, mirrored from its stats by `updates` (run on every scrape). */
function registerInfluxCounters(registers: Registry[], influx: InfluxStore, updates: Array<() => void>): void {
  const requests = new Counter({
    name: 'tendril_influx_requests_total',
    help: 'Write requests sent to InfluxDB (retries and splits included).',
    registers,
  });
  const httpErrors = new Counter({
    name: 'tendril_influx_write_errors_total',
    help: 'Failed InfluxDB write requests, by kind (every attempt counts).',
    labelNames: ['kind'],
    registers,
  });
  const deadLines = new Counter({
    name: 'tendril_influx_dead_lettered_lines_total',
    help: 'Lines InfluxDB refused for good (recorded in the dead-letter file).',
    registers,
  });
  const deadValues = new Counter({
    name: 'tendril_influx_dead_lettered_values_total',
    help: 'Values left out of their reading because InfluxDB holds the field with another type (recorded in the dead-letter file).',
    registers,
  });
  updates.push(mirrorCounter(requests, undefined, () => influx.stats().requests));
  updates.push(mirrorCounter(deadLines, undefined, () => influx.stats().deadLetteredLines));
  updates.push(mirrorCounter(deadValues, undefined, () => influx.stats().deadLetteredValues));
  for (const kind of Object.keys(influx.stats().writeErrors)) {
    updates.push(
      mirrorCounter(
        httpErrors,
        { kind },
        () => influx.stats().writeErrors[kind as keyof ReturnType<InfluxStore['stats']>['writeErrors']],
      ),
    );
  }
}
