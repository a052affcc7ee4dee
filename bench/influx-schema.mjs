#!/usr/bin/env node
// What the hub's InfluxDB schema costs influxd (issue 16): influxd CPU per point for the same readings written
// with and without the `@seq`/`@epoch` fields, with nanosecond timestamps (the hub's, sub-ms digits from epoch
// and seq) or millisecond ones, and in requests of 120, 1000 and 5000 lines.
//
//   epoch+seq    readings,device=D @epoch=Ei,@seq=Si,humidity=..,pressure=..,temperature=.. <ns>   precision=ns
//                (the hub's layout before issue 16)
//   seq-only     the same without @epoch (the timestamp's sub-ms digits carry epoch + seq): the hub's layout now
//   bool-marker  a boolean field @r=T instead of @seq: does the field's type matter?
//   seq-1-in-16  @seq on every 16th point only: what a field on some points would cost
//   no-ids       neither field                                                                     precision=ns
//   ms           @epoch and @seq, millisecond timestamps                                            precision=ms
//   plain-ms     neither: 3 fields, millisecond timestamps (the batching-writer baseline)    precision=ms
//
// --readings readings (3 floats each) from 100 devices, 10 ms apart per device; every variant and request size
// writes them into a fresh database, 2 requests in flight over keep-alive, lines built before the clock. The
// CPU influxd spends (from /proc) from the first request until it is quiet again (its cache snapshot
// included) is divided by the points. --rounds rounds, variants in a rotated order each round; medians, and
// each variant's ratio to plain-ms in the same round (the machine is shared: ratios, not absolute figures).
// influxd is Debian's 1.6 started by the test harness (127.0.0.1, free port, temp dir, stopped by PID).
// Reproduce: node bench/influx-schema.mjs [--readings 200000] [--rounds 3] [--sizes 120,1000,5000]
//            [--variants seq-only,no-ids (plain-ms always runs)] [--json]
import http from 'node:http';
import { args, cpuSecondsOf, loadTypeScript, opt, postLines } from './lib/common.mjs';

const READINGS = opt('readings', 200_000);
const ROUNDS = opt('rounds', 3);
const DEVICES = 100;
const SIZES = (args.includes('--sizes') ? args[args.indexOf('--sizes') + 1] : '120,1000,5000').split(',').map(Number);
const asJson = args.includes('--json');

// ids: the hub's own fields on each point, from (epoch, seq). --variants picks some (plain-ms always runs).
const VARIANTS = {
  'epoch+seq': { ids: (e, s) => `@epoch=${e}i,@seq=${s}i,`, precision: 'ns' },
  'seq-only': { ids: (_e, s) => `@seq=${s}i,`, precision: 'ns' },
  'bool-marker': { ids: () => '@r=T,', precision: 'ns' },
  'seq-1-in-16': { ids: (_e, s) => (s % 16 === 0 ? `@seq=${s}i,` : ''), precision: 'ns' },
  'no-ids': { ids: () => '', precision: 'ns' },
  ms: { ids: (e, s) => `@epoch=${e}i,@seq=${s}i,`, precision: 'ms' },
  'plain-ms': { ids: () => '', precision: 'ms' },
};
if (args.includes('--variants')) {
  const keep = new Set([...args[args.indexOf('--variants') + 1].split(','), 'plain-ms']);
  for (const name of Object.keys(VARIANTS)) if (!keep.has(name)) delete VARIANTS[name];
}

function lines(variant) {
  const { ids, precision } = VARIANTS[variant];
  const t0 = Date.now() - 3_600_000;
  const out = new Array(READINGS);
  for (let i = 0; i < READINGS; i++) {
    const device = i % DEVICES;
    const seq = Math.floor(i / DEVICES) + 1;
    const epoch = 1000 + device;
    const ts = t0 + seq * 10;
    const fields = `humidity=${40 + (i % 61) / 4},pressure=${1013.25 - (i % 13)},temperature=${20 + (i % 97) / 8}`;
    // The hub's point time: ms * 1e6 + (epoch + seq) mod 1e6 (docs/storage.md, "Schema").
    const time = precision === 'ns' ? `${ts}${String((epoch + seq) % 1_000_000).padStart(6, '0')}` : String(ts);
    const idFields = ids(epoch, seq);
    out[i] = `readings,device=bench-${String(device).padStart(4, '0')} ${idFields}${fields} ${time}`;
  }
  return out;
}

async function untilQuiet(pid) {
  const deadline = Date.now() + 10_000;
  let last = cpuSecondsOf(pid);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    const now = cpuSecondsOf(pid);
    if (now - last < 0.01) return;
    last = now;
  }
}

async function run(influx, agent, variant, size, db) {
  await influx.query(`CREATE DATABASE "${db}"`);
  const all = lines(variant);
  const bodies = [];
  for (let i = 0; i < all.length; i += size) bodies.push(all.slice(i, i + size).join('\n'));
  const url = `${influx.url}/write?db=${db}&precision=${VARIANTS[variant].precision}`;
  await untilQuiet(influx.pid);
  const cpu0 = cpuSecondsOf(influx.pid);
  const start = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < bodies.length) await postLines(agent, url, bodies[next++]);
  };
  await Promise.all([worker(), worker()]);
  const seconds = (performance.now() - start) / 1000;
  await untilQuiet(influx.pid);
  const cpu = cpuSecondsOf(influx.pid) - cpu0;
  const [count] = await influx.query(`SELECT count("temperature") FROM "readings"`, { db });
  const stored = count?.series?.[0]?.values?.[0]?.[1];
  if (stored !== READINGS) throw new Error(`${variant}/${size}: ${stored} points stored of ${READINGS}`);
  await influx.query(`DROP DATABASE "${db}"`);
  return { cpuUsPerPoint: (cpu / READINGS) * 1e6, pointsPerSecond: Math.round(READINGS / seconds) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const modules = await loadTypeScript({ harness: 'test/support/influxdb.ts' }, 'bench-influx-schema');
const influx = await modules.harness.startInfluxDB({ db: 'warm' });
const agent = new http.Agent({ keepAlive: true });
const results = {};
try {
  // Warm-up: influxd's first writes create shards and compile nothing, but they are slower.
  await run(influx, agent, 'plain-ms', 5000, 'warmup');
  const names = Object.keys(VARIANTS);
  let n = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const size of SIZES) {
      const order = names.map((_, i) => names[(i + round) % names.length]);
      const inRound = {};
      for (const variant of order) inRound[variant] = await run(influx, agent, variant, size, `s${n++}`);
      for (const variant of names) {
        const r = ((results[size] ??= {})[variant] ??= { cpu: [], rate: [], ratio: [] });
        r.cpu.push(inRound[variant].cpuUsPerPoint);
        r.rate.push(inRound[variant].pointsPerSecond);
        r.ratio.push(inRound[variant].cpuUsPerPoint / inRound['plain-ms'].cpuUsPerPoint);
      }
    }
  }
} finally {
  agent.destroy();
  await influx.stop();
  modules.cleanup();
}
if (asJson) {
  console.log(JSON.stringify({ readings: READINGS, rounds: ROUNDS, results }));
} else {
  console.log(`${READINGS} points (3 floats) from ${DEVICES} devices, ${ROUNDS} rounds, 2 requests in flight; medians`);
  console.log('| lines per request | layout | influxd CPU-us per point | vs plain-ms (same round) | points/s |');
  console.log('|---:|---|---:|---:|---:|');
  for (const size of SIZES) {
    for (const [variant, r] of Object.entries(results[size])) {
      const span = r.ratio.length > 1 ? ` (${Math.min(...r.ratio).toFixed(2)}-${Math.max(...r.ratio).toFixed(2)})` : '';
      console.log(
        `| ${size} | ${variant} | ${median(r.cpu).toFixed(2)} | ${median(r.ratio).toFixed(2)}x${span} | ${median(r.rate)} |`,
      );
    }
  }
}
