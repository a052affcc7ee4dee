#!/usr/bin/env node
// The spool at steady, paced rates (issue 16): what adaptive batching changes at the rates real fleets send.
//
// 100 devices accept one reading (3 floats) each at a steady total rate (--rates, readings/s), for --seconds,
// into a spool in front of the InfluxDB store on a real influxd (Debian 1.6, started by the test harness on
// 127.0.0.1). Each rate runs twice, alternating, in the same process:
//   before   the settings of the spool before issue 16: commitWaitMs 0 (a group is what arrived during the
//            fdatasync before it), drainLingerMs 100 for a whole batch (20 000), a checkpoint after every batch
//   after    the defaults: groups sized by the arrival rate (wait <= 10 ms), linger <= 500 ms for one full
//            InfluxDB request (5000), a checkpoint at most once a second while readings flow
// Reported per run: fdatasyncs of group commits per second, ack latency (accept() to its resolve) p50/p99,
// InfluxDB write requests and their average lines, and this process's CPU per reading (spool + store + the
// pacing loop, which is the same for both). --rounds alternating rounds; medians.
// Reproduce: node bench/spool-paced.mjs [--rates 2000,10000,20000] [--seconds 4] [--rounds 3] [--json]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { args, loadTypeScript, opt } from './lib/common.mjs';

const RATES = (args.includes('--rates') ? args[args.indexOf('--rates') + 1] : '2000,10000,20000')
  .split(',')
  .map(Number);
const SECONDS = opt('seconds', 4);
const ROUNDS = opt('rounds', 3);
const DEVICES = 100;
const asJson = args.includes('--json');
const SETTINGS = {
  before: { commitWaitMs: 0, drainLingerMs: 100, drainLingerReadings: 20_000, checkpointIntervalMs: 0 },
  after: {},
};

const modules = await loadTypeScript(
  { harness: 'test/support/influxdb.ts', store: 'hub/src/storage/influx-store.ts', spool: 'hub/src/spool/spool.ts' },
  'bench-spool-paced',
);
const influx = await modules.harness.startInfluxDB({ db: 'paced' });
const dataDir = mkdtempSync(join(tmpdir(), 'tendril-bench-spool-paced-'));
const watchdog = setTimeout(() => {
  console.error('paced spool benchmark: gave up after 15 minutes');
  process.exit(2);
}, 900_000);

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function run(rate, name, n) {
  const store = modules.store.createInfluxStore({ url: influx.url, db: 'paced', retentionDays: null });
  await store.init();
  const spool = await modules.spool.createSpool({ dir: join(dataDir, `s${n}`), store, ...SETTINGS[name] });
  const t0 = Date.now() - 3_600_000;
  const seqs = new Array(DEVICES).fill(n * 1_000_000);
  const latencies = [];
  const acks = [];
  const total = rate * SECONDS;
  let issued = 0;
  let device = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  await new Promise((resolve) => {
    const tick = () => {
      // Issue what the clock says is due: a steady rate whatever the timer's granularity.
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
      for (; issued < due; issued++) {
        const d = device++ % DEVICES;
        const seq = ++seqs[d];
        const at = performance.now();
        const values = [
          { metric: 'temperature', kind: 'f32', value: 20 + (seq % 97) / 8 },
          { metric: 'humidity', kind: 'f64', value: 40 + (seq % 61) / 4 },
          { metric: 'pressure', kind: 'f64', value: 1013.25 - (seq % 13) },
        ];
        acks.push(
          spool
            .accept([{ deviceId: `paced-${d}`, epoch: 7, seq, ts: t0 + seq, values }])
            .then(() => latencies.push(performance.now() - at)),
        );
      }
      if (issued < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  await Promise.all(acks);
  const seconds = (performance.now() - start) / 1000;
  await spool.whenDrained(60_000);
  const cpu = process.cpuUsage(cpu0);
  const stats = store.stats();
  const commits = spool.state.commits;
  await spool.close();
  await store.close();
  latencies.sort((a, b) => a - b);
  return {
    fdatasyncsPerSecond: commits / seconds,
    readingsPerCommit: total / commits,
    ackP50Ms: pct(latencies, 0.5),
    ackP99Ms: pct(latencies, 0.99),
    requests: stats.requests,
    linesPerRequest: stats.linesWritten / Math.max(1, stats.requests),
    cpuUsPerReading: (cpu.user + cpu.system) / total,
  };
}

const results = {};
try {
  await run(2000, 'after', 0); // warm-up
  let n = 1;
  for (let round = 0; round < ROUNDS; round++) {
    for (const rate of RATES) {
      const order = round % 2 === 0 ? ['before', 'after'] : ['after', 'before'];
      for (const name of order) ((results[rate] ??= {})[name] ??= []).push(await run(rate, name, n++));
    }
  }
} finally {
  clearTimeout(watchdog);
  await influx.stop();
  rmSync(dataDir, { recursive: true, force: true });
  modules.cleanup();
}
if (asJson) {
  console.log(JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, results }));
} else {
  console.log(
    `${DEVICES} devices, one reading per accept(), ${SECONDS} s per run, ${ROUNDS} alternating rounds; medians`,
  );
  console.log(
    '| readings/s | spool | fdatasyncs/s | readings per fdatasync | ack p50 ms | ack p99 ms | InfluxDB requests | lines per request | CPU us per reading |',
  );
  console.log('|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const rate of RATES) {
    for (const name of ['before', 'after']) {
      const rs = results[rate][name];
      const m = (k, d = 1) => median(rs.map((r) => r[k])).toFixed(d);
      console.log(
        `| ${rate} | ${name} | ${m('fdatasyncsPerSecond', 0)} | ${m('readingsPerCommit')} | ${m('ackP50Ms')} | ${m('ackP99Ms')} | ${m('requests', 0)} | ${m('linesPerRequest', 0)} | ${m('cpuUsPerReading')} |`,
      );
    }
  }
}
