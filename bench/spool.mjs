#!/usr/bin/env node
// Spool benchmark: how fast the on-disk spool takes readings while the store is down, and how long it takes
// to drain into InfluxDB once the store is back.
//
//   1. influxd (Debian 1.6, started by the test harness on 127.0.0.1) is stopped: the store is down.
//   2. Accept phase: `--readings` readings (3 float fields each) go into the spool, `--per-accept` readings per
//      accept() call (1 = one READING frame; 50 = a BATCH replay), `--concurrency` calls in flight (devices
//      whose frames wait for the same group commit). Throughput counts only acknowledged (fdatasync'd) readings.
//   3. The spool is closed and opened again: the start-up scan a restart after kill -9 does.
//   4. influxd is started again; the drainer's back-off wait is cut short (retryNow, as a health probe would)
//      and the time until the spool is empty is measured. The points in InfluxDB are counted.
//
// Stops by itself. Reproduce: node bench/spool.mjs [--readings 300000] [--per-accept 1] [--concurrency 500] [--json]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { args, loadTypeScript, opt } from './lib/common.mjs';

const READINGS = opt('readings', 300_000);
const PER_ACCEPT = opt('per-accept', 1);
const CONCURRENCY = opt('concurrency', 500);
const asJson = args.includes('--json');

const modules = await loadTypeScript(
  { harness: 'test/support/influxdb.ts', store: 'hub/src/storage/influx-store.ts', spool: 'hub/src/spool/spool.ts' },
  'bench-spool',
);
const influx = await modules.harness.startInfluxDB({ db: 'spoolbench' });
const dataDir = mkdtempSync(join(tmpdir(), 'tendril-bench-spool-data-'));
const watchdog = setTimeout(() => {
  console.error('spool benchmark: gave up after 10 minutes');
  process.exit(2);
}, 600_000);
let spool;
let store;
try {
  store = modules.store.createInfluxStore({ url: influx.url, db: 'spoolbench', retentionDays: null, maxAttempts: 1 });
  await store.init();
  spool = await modules.spool.createSpool({
    dir: join(dataDir, 'spool'),
    store,
    maxBytes: 4 * 1024 ** 3,
    backoff: { baseMs: 200, maxMs: 2000 },
  });
  await influx.process.terminate(); // store down

  const t0 = Date.now() - 3_600_000;
  const devices = Math.max(CONCURRENCY, 1);
  const nextSeq = new Array(devices).fill(1);
  let issued = 0;
  const batchFor = (device) => {
    const out = [];
    for (let k = 0; k < PER_ACCEPT; k++) {
      const seq = nextSeq[device]++;
      out.push({
        deviceId: `spool-bench-${device}`,
        epoch: 7,
        seq,
        ts: t0 + seq,
        values: [
          { metric: 'temperature', kind: 'f32', value: 20 + (seq % 97) / 8 },
          { metric: 'humidity', kind: 'f64', value: 40 + (seq % 61) / 4 },
          { metric: 'pressure', kind: 'f64', value: 1013.25 - (seq % 13) },
        ],
      });
    }
    return out;
  };
  const acceptStart = performance.now();
  const cpuStart = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, device) => {
      while (issued < READINGS) {
        issued += PER_ACCEPT;
        await spool.accept(batchFor(device));
      }
    }),
  );
  const acceptSeconds = (performance.now() - acceptStart) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const accepted = spool.state.acceptedReadings;
  const depthBytes = spool.depthBytes;
  const commits = spool.state.commits;
  const storeState = spool.storeState;

  // Restart: the start-up scan (length + CRC of every record, seqs of every reading) over the whole spool.
  await spool.close();
  const recoverStart = performance.now();
  const recoverCpu0 = process.cpuUsage();
  spool = await modules.spool.createSpool({
    dir: join(dataDir, 'spool'),
    store,
    maxBytes: 4 * 1024 ** 3,
    backoff: { baseMs: 200, maxMs: 2000 },
  });
  const recoverSeconds = (performance.now() - recoverStart) / 1000;
  const recoverCpu = process.cpuUsage(recoverCpu0);
  if (spool.state.replayedReadings !== accepted)
    throw new Error(`restart found ${spool.state.replayedReadings} undrained readings, expected ${accepted}`);

  await influx.process.start(); // store back
  const drainStart = performance.now();
  const drainCpu0 = process.cpuUsage();
  spool.retryNow();
  await spool.whenDrained(300_000);
  const drainSeconds = (performance.now() - drainStart) / 1000;
  const drainCpu = process.cpuUsage(drainCpu0);
  // CPU per reading: less sensitive than throughput to a machine shared with other work.
  const usPer = (c) => +((c.user + c.system) / accepted).toFixed(2);
  const [count] = await influx.query('SELECT count("@seq") FROM "readings"');
  const stored = count?.series?.[0]?.values?.[0]?.[1] ?? 0;
  if (stored !== accepted) throw new Error(`accepted ${accepted} readings but InfluxDB holds ${stored}`);

  const result = {
    readings: accepted,
    perAccept: PER_ACCEPT,
    concurrency: CONCURRENCY,
    storeWhileAccepting: storeState,
    accept: {
      readingsPerSecond: Math.round(accepted / acceptSeconds),
      mbPerSecond: +(depthBytes / 1024 / 1024 / acceptSeconds).toFixed(1),
      bytesPerReading: Math.round(depthBytes / accepted),
      fdatasyncs: commits,
      readingsPerFdatasync: Math.round(accepted / commits),
      cpuSecondsPerSecond: +((cpu.user + cpu.system) / 1e6 / acceptSeconds).toFixed(2),
      cpuUsPerReading: usPer(cpu),
    },
    restartScanSeconds: +recoverSeconds.toFixed(2),
    restartScanCpuUsPerReading: usPer(recoverCpu),
    drain: {
      seconds: +drainSeconds.toFixed(2),
      readingsPerSecond: Math.round(accepted / drainSeconds),
      cpuUsPerReading: usPer(drainCpu),
    },
  };
  if (asJson) {
    console.log(JSON.stringify(result));
  } else {
    const a = result.accept;
    console.log(
      `Spool, ${accepted} readings, ${PER_ACCEPT} per accept(), ${CONCURRENCY} accept() calls in flight, store ${storeState}`,
    );
    console.log(
      `  accept: ${a.readingsPerSecond} readings/s acknowledged, ${a.mbPerSecond} MB/s, ${a.bytesPerReading} B/reading, ${a.fdatasyncs} fdatasyncs (${a.readingsPerFdatasync} readings each)`,
    );
    console.log(
      `  restart with ${accepted} undrained readings (${(depthBytes / 1024 / 1024).toFixed(1)} MiB): start-up scan ${result.restartScanSeconds} s`,
    );
    console.log(
      `  drain after the store returned: ${result.drain.seconds} s (${result.drain.readingsPerSecond} readings/s into InfluxDB), all ${stored} stored`,
    );
    console.log(
      `  CPU of this process per reading: accept ${a.cpuUsPerReading} us, start-up scan ${result.restartScanCpuUsPerReading} us, drain ${result.drain.cpuUsPerReading} us`,
    );
  }
} finally {
  clearTimeout(watchdog);
  await spool?.close();
  await store?.close();
  await influx.stop();
  rmSync(dataDir, { recursive: true, force: true });
  modules.cleanup();
}
