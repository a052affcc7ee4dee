#!/usr/bin/env node
// Durable ingest into InfluxDB, end to end, against raw line-protocol writes of the same points to the same
// influxd, in the same run (issue 3: goal >= 0.8x).
//
//   hub   the built hub (bench/servers/hub.mjs: createHub with INFLUX_URL, the spool in front of the store)
//         takes SDK-codec frames from --devices raw WebSocket devices (bench/lib/raw-ws.mjs, like
//         bench/ingest.mjs); each device keeps --window unacked readings in flight. The clock runs from the
//         first frame until every reading is acked AND the spool has drained it into InfluxDB (/readyz
//         spool.depthReadings = 0). Points/s = readings / that time. --batch N sends BATCH frames of N
//         readings (store-and-forward replay); 1 (default) sends one READING frame per reading. Before the
//         clock starts the hub takes --hub-warmup readings from other devices (warm-0000...) and drains them:
//         a warm-up (JIT, connections, the database's shard); only the bench-* devices' points are counted.
//   raw   the same points (the store's own lines: same measurement, tag, fields, timestamps), pre-built
//         before the clock starts, POSTed to /write in 5000-line bodies, 2 requests in flight (as the store
//         sends them) over keep-alive: the best a client can do. It gets the same warm-up: the lines of the
//         hub's warm-up readings, written into its run's database before the clock starts.
//   Both clocks start once influxd (and the hub) are idle: the warm-up leaves influxd work behind (cache
//   snapshots, compactions) that would otherwise land in the timed window.
//
// Order raw, hub, raw; the baseline is the mean of the two raw runs (the machine is shared and noisy).
// Each run gets a fresh database; both are counted afterwards (count("@seq") must equal the readings).
// influxd is Debian's 1.6, started by the test harness (127.0.0.1, free port, temp dir, stopped by PID).
// CPU seconds per million readings are reported for influxd, the hub and this process (the raw client, or
// the device generator) from /proc. BENCH_HUB_NODE_ARGS adds node flags to the hub (e.g. "--cpu-prof").
// Reproduce: npm run build && node bench/ingest-influx.mjs [--readings 300000] [--devices 50] [--batch 1]
//            [--window 2048] [--hub-warmup 100000] [--memory-readings N (HUB_SPOOL_MEMORY_READINGS)] [--split-cores]
//            [--timeline [--timeline-ms 250]] [--json]
import { execFileSync, spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { args, cpuSecondsOf, hasTaskset, loadTypeScript, opt, postLines } from './lib/common.mjs';
import { encodeDeviceFrame, newDeltaContext } from '../device-sdk/dist/index.js';
import { maskedFrame } from './lib/raw-ws.mjs';
import { connectHubDevice } from './lib/hub-device.mjs';

const DEVICES = opt('devices', 50);
const BATCH = Math.max(1, opt('batch', 1));
const PER_DEVICE = Math.ceil(opt('readings', 300_000) / DEVICES / BATCH) * BATCH;
const READINGS = PER_DEVICE * DEVICES;
const WINDOW = Math.max(opt('window', 2048), 2 * BATCH);
/** HUB_SPOOL_MEMORY_READINGS for the hub; unset = the hub's default (100 000). */
const MEMORY_READINGS = args.includes('--memory-readings') ? String(opt('memory-readings', 100_000)) : null;
const LINES_PER_REQUEST = 5000;
const asJson = args.includes('--json');
/**
 * --split-cores: influxd (every thread) on core 0; this process (raw client / device generator) and the hub on
 * core 1. Models InfluxDB on a machine of its own, as deployed; without it all three share both cores.
 */
const SPLIT = args.includes('--split-cores');
/**
 * Readings the hub takes (from devices warm-0000..., through to InfluxDB) before the clock starts, as the
 * raw client writes a warm-up before its runs: JIT, connections and the database's shard, not counted.
 */
const HUB_WARMUP = opt('hub-warmup', 100_000);
/** --timeline: every --timeline-ms (250) of the hub run, print readings acked, the spool depth and each process's CPU use. */
const TIMELINE = args.includes('--timeline');
const TIMELINE_MS = opt('timeline-ms', 250);
const here = (p) => fileURLToPath(new URL(p, import.meta.url));

const METRICS = [
  { alias: 0, name: 'temperature', kind: 'f32', unit: 'C', min: -40, max: 85 },
  { alias: 1, name: 'humidity', kind: 'f32', unit: '%', min: 0, max: 100 },
  { alias: 2, name: 'pressure', kind: 'f32', unit: 'hPa' },
];
const VALUES = [
  { alias: 0, kind: 'f32', value: 21.5 },
  { alias: 1, kind: 'f32', value: 40.25 },
  { alias: 2, kind: 'f32', value: 1013.25 },
];
const EPOCH = 1;


function deviceId(i) {
  return `bench-${String(i).padStart(4, '0')}`;
}

/** The devices of the warm-up, and how many readings each sends (whole frames). */
function warmId(i) {
  return `warm-${String(i).padStart(4, '0')}`;
}
function warmPerDevice() {
  return Math.ceil(HUB_WARMUP / DEVICES / BATCH) * BATCH;
}

/** Every reading of the run, as the hub will store it: seq 1.., ts clock + seq (1 ms apart), f32 values. */
function storedReadings(clock, idOf = deviceId, perDevice = PER_DEVICE) {
  const f32 = (v) => Math.fround(v);
  const out = [];
  for (let d = 0; d < DEVICES; d++) {
    for (let seq = 1; seq <= perDevice; seq++) {
      out.push({
        deviceId: idOf(d),
        epoch: EPOCH,
        seq,
        ts: clock + seq,
        values: [
          { metric: 'temperature', kind: 'f32', value: f32(21.5) },
          { metric: 'humidity', kind: 'f32', value: f32(40.25) },
          { metric: 'pressure', kind: 'f32', value: f32(1013.25) },
        ],
      });
    }
  }
  return out;
}

/** The frame every device repeats: seq and ts advance by 1 per reading, so the bytes never change (§5.1 deltas). */
function repeatedFrame(clock) {
  const ctx = newDeltaContext(0, clock);
  if (BATCH === 1) return encodeDeviceFrame({ type: 'reading', seq: 1, ts: clock + 1, values: VALUES }, ctx);
  const readings = Array.from({ length: BATCH }, (_, i) => ({ seq: i + 1, ts: clock + i + 1, values: VALUES }));
  return encodeDeviceFrame({ type: 'batch', readings }, ctx);
}


async function countPoints(influx, db, where = '') {
  const [r] = await influx.query(`SELECT count("@seq") FROM "readings" ${where}`, { db });
  return r?.series?.[0]?.values?.[0]?.[1] ?? 0;
}

/** Posts `bodies` to `url`, 2 requests in flight. */
async function postAll(agent, url, bodies) {
  let next = 0;
  await Promise.all(
    Array.from({ length: 2 }, async () => {
      while (next < bodies.length) await postLines(agent, url, bodies[next++]);
    }),
  );
}

async function runRaw(influx, db, bodies, warmBodies) {
  await influx.query(`CREATE DATABASE "${db}"`);
  const agent = new http.Agent({ keepAlive: true });
  const url = `${influx.url}/write?db=${db}&precision=ns`;
  await postAll(agent, url, warmBodies);
  await untilQuiet(influx.pid);
  const cpu0 = { influxd: cpuSecondsOf(influx.pid), self: process.cpuUsage() };
  const start = performance.now();
  await postAll(agent, url, bodies);
  const seconds = (performance.now() - start) / 1000;
  const cpu = cpuSince(cpu0, influx);
  agent.destroy();
  const stored = await countPoints(influx, db, `WHERE "device" =~ /^bench-/`);
  if (stored !== READINGS) throw new Error(`raw run stored ${stored} points, expected ${READINGS}`);
  return { seconds, cpu };
}


/** CPU seconds since `cpu0` of influxd, this process (the client or device generator) and the hub, if any. */
function cpuSince(cpu0, influx, hubPid) {
  const self = process.cpuUsage(cpu0.self);
  return {
    influxd: cpuSecondsOf(influx.pid) - cpu0.influxd,
    client: (self.user + self.system) / 1e6,
    ...(hubPid ? { hub: cpuSecondsOf(hubPid) - cpu0.hub } : {}),
  };
}

function startHubServer(env) {
  const nodeArgs = [...((process.env.BENCH_HUB_NODE_ARGS ?? '').split(' ').filter(Boolean)), here('./servers/hub.mjs')];
  const child = spawn(SPLIT ? 'taskset' : process.execPath, SPLIT ? ['-c', '1', process.execPath, ...nodeArgs] : nodeArgs, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, BENCH_HUB_ENV: JSON.stringify(env) },
  });
  const next = (type, timeoutMs = 30_000) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for '${type}' from the hub`)), timeoutMs);
      const on = (m) => {
        if (m.type !== type) return;
        clearTimeout(t);
        child.off('message', on);
        resolve(m);
      };
      child.on('message', on);
      child.once('exit', (code) => reject(new Error(`the hub exited with ${code} while we waited for '${type}'`)));
    });
  return { child, next };
}

/** Polls `check` every `everyMs` until it holds. */
async function waitUntil(what, check, timeoutMs, everyMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Samples the hub run every TIMELINE_MS (the /readyz request is part of the hub's load, a small one). */
function startTimeline(base, devices, influxPid, hubPid, start) {
  let last = { t: start, influxd: cpuSecondsOf(influxPid), hub: cpuSecondsOf(hubPid), self: process.cpuUsage() };
  console.log('| t (s) | acked | spool depth | influxd CPU % | hub CPU % | generator CPU % |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  let running = true;
  const loop = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, TIMELINE_MS));
      const body = await (await fetch(`${base}/readyz`)).json().catch(() => ({}));
      const now = { t: performance.now(), influxd: cpuSecondsOf(influxPid), hub: cpuSecondsOf(hubPid), self: process.cpuUsage() };
      const wall = (now.t - last.t) / 1000;
      const pct = (a, b) => Math.round(((a - b) / wall) * 100);
      const self = process.cpuUsage(last.self);
      const acked = devices.reduce((n, d) => n + d.acked, 0);
      console.log(`| ${((now.t - start) / 1000).toFixed(2)} | ${acked} | ${body.spool?.depthReadings ?? "?"} | ${pct(now.influxd, last.influxd)} | ${pct(now.hub, last.hub)} | ${Math.round(((self.user + self.system) / 1e6 / wall) * 100)} |`);
      last = now;
    }
  })();
  return { stop: () => ((running = false), loop) };
}

/** Waits until `pid` used under 5 % of a core over 100 ms (at most 5 s). */
async function untilQuiet(pid) {
  const deadline = Date.now() + 5000;
  let last = cpuSecondsOf(pid);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const now = cpuSecondsOf(pid);
    if (now - last < 0.005) return;
    last = now;
  }
}

/**
 * Connects `count` devices named by `idOf(i)`; go() makes each send `perDevice` readings (the repeated
 * frame, at most WINDOW unacked) and resolves when all are acked.
 */
async function openFleet(ready, idOf, count, perDevice, frame, clock) {
  const devices = [];
  function pump(dev) {
    if (dev.sent >= perDevice) return;
    if (dev.sent - dev.acked >= WINDOW) {
      dev.waiting = true;
      return;
    }
    dev.sent += BATCH;
    dev.conn.send(frame, () => setImmediate(pump, dev));
  }
  for (let i = 0; i < count; i++) {
    const dev = { conn: null, sent: 0, acked: 0, waiting: false, done: null };
    dev.finished = new Promise((resolve) => (dev.done = resolve));
    dev.conn = await connectHubDevice({
      port: ready.port, path: ready.path, adminToken: ready.adminToken, id: idOf(i), clock, metrics: METRICS, epoch: EPOCH,
      onAck(seq) {
        dev.acked = seq;
        if (dev.acked >= perDevice) dev.done();
        if (dev.waiting) {
          dev.waiting = false;
          pump(dev);
        }
      },
    });
    devices.push(dev);
  }
  return {
    devices,
    go() {
      for (const d of devices) pump(d);
      return Promise.all(devices.map((d) => d.finished));
    },
    close() {
      for (const d of devices) d.conn.close();
    },
  };
}

/** Write requests the hub has sent to InfluxDB (its /metrics). */
async function influxRequests(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = /^tendril_influx_requests_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

async function runHub(influx, db, clock) {
  const server = startHubServer({ INFLUX_URL: influx.url, INFLUX_DB: db, ...(MEMORY_READINGS ? { HUB_SPOOL_MEMORY_READINGS: MEMORY_READINGS } : {}) });
  const ready = await server.next('ready');
  const base = `http://127.0.0.1:${ready.port}`;
  const frame = maskedFrame(repeatedFrame(clock));
  const drained = () =>
    waitUntil(
      'the hub to drain its spool into InfluxDB',
      async () => {
        const body = await (await fetch(`${base}/readyz`)).json();
        return body.spool?.depthReadings === 0;
      },
      300_000,
      2, // the raw run's clock stops at its last response: this one should stop as close to the drain's end
    );
  if (HUB_WARMUP > 0) {
    // As the raw client is warmed up before its runs: the hub's code paths compiled, its InfluxDB shard made.
    const warm = await openFleet(ready, warmId, DEVICES, warmPerDevice(), frame, clock);
    await warm.go();
    await drained();
    warm.close();
  }
  const fleet = await openFleet(ready, deviceId, DEVICES, PER_DEVICE, frame, clock);
  const devices = fleet.devices;
  // Connecting and provisioning (and closing the warm-up devices) leave work behind: start on a quiet hub,
  // and a quiet influxd (as the raw runs do).
  await untilQuiet(server.child.pid);
  await untilQuiet(influx.pid);
  const requests0 = await influxRequests(base);
  const cpu0 = { influxd: cpuSecondsOf(influx.pid), self: process.cpuUsage(), hub: cpuSecondsOf(server.child.pid) };
  const start = performance.now();
  const timeline = TIMELINE ? startTimeline(base, devices, influx.pid, server.child.pid, start) : null;
  await fleet.go();
  const ackedSeconds = (performance.now() - start) / 1000;
  const hubCpuAtAcked = cpuSecondsOf(server.child.pid) - cpu0.hub;
  await drained();
  const seconds = (performance.now() - start) / 1000;
  const cpu = cpuSince(cpu0, influx, server.child.pid);
  const requests = (await influxRequests(base)) - requests0;
  await timeline?.stop();
  fleet.close();
  server.child.send({ type: 'stop' });
  await new Promise((r) => server.child.once('exit', r));
  const stored = await countPoints(influx, db, `WHERE "device" =~ /^bench-/`);
  if (stored !== READINGS) throw new Error(`hub run stored ${stored} points, expected ${READINGS}`);
  return { seconds, ackedSeconds, cpu, hubCpuAtAcked, requests };
}

const modules = await loadTypeScript({ harness: 'test/support/influxdb.ts', schema: 'hub/src/storage/influx-schema.ts' }, 'bench-ingest-influx');
const influx = await modules.harness.startInfluxDB({ db: 'bench' });
if (SPLIT) {
  if (!hasTaskset()) throw new Error('--split-cores needs taskset (util-linux)');
  execFileSync('taskset', ['-a', '-cp', '0', String(influx.pid)], { stdio: 'ignore' });
  execFileSync('taskset', ['-a', '-cp', '1', String(process.pid)], { stdio: 'ignore' });
}
const watchdog = setTimeout(() => {
  console.error('ingest-influx benchmark: gave up after 10 minutes');
  process.exit(2);
}, 600_000);
try {
  const clock = Date.now() - 10 * 60_000; // readings 1 ms apart from 10 min ago: all in range
  const bodiesOf = (readings) => {
    const lines = readings.map((r) => modules.schema.readingToLine(r, 'readings').line);
    const bodies = [];
    for (let i = 0; i < lines.length; i += LINES_PER_REQUEST) bodies.push(lines.slice(i, i + LINES_PER_REQUEST).join('\n'));
    return bodies;
  };
  const bodies = bodiesOf(storedReadings(clock));
  // The hub's warm-up readings, as lines: the raw client's warm-up (into the database it is measured in).
  const warmBodies = bodiesOf(storedReadings(clock, warmId, warmPerDevice()));
  const raw1 = await runRaw(influx, 'raw_1', bodies, warmBodies);
  const hub = await runHub(influx, 'hub_1', clock);
  const raw2 = await runRaw(influx, 'raw_2', bodies, warmBodies);
  const rawSeconds = (raw1.seconds + raw2.seconds) / 2;
  const rawRate = READINGS / rawSeconds;
  /** CPU seconds per million readings, by process. */
  const perMillion = (cpu) => Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, +((v * 1e6) / READINGS).toFixed(2)]));
  const hubRate = READINGS / hub.seconds;
  const result = {
    readings: READINGS,
    devices: DEVICES,
    batch: BATCH,
    window: WINDOW,
    memoryReadings: MEMORY_READINGS ? Number(MEMORY_READINGS) : 'default',
    hubWarmup: HUB_WARMUP,
    splitCores: SPLIT,
    raw: { seconds: [raw1.seconds, raw2.seconds], pointsPerSecond: Math.round(rawRate), cpuSecondsPerMillion: [perMillion(raw1.cpu), perMillion(raw2.cpu)] },
    hub: {
      seconds: hub.seconds,
      ackedSeconds: hub.ackedSeconds,
      pointsPerSecond: Math.round(hubRate),
      ackedPerSecond: Math.round(READINGS / hub.ackedSeconds),
      cpuSecondsPerMillion: perMillion(hub.cpu),
      hubCpuSecondsWhenAllAcked: +hub.hubCpuAtAcked.toFixed(2),
      requests: hub.requests,
      linesPerRequest: Math.round(READINGS / hub.requests),
    },
    ratio: hubRate / rawRate,
  };
  if (asJson) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`${READINGS} readings (3 f32 values each) from ${DEVICES} devices, ${BATCH === 1 ? 'one READING frame each' : `BATCH frames of ${BATCH}`}, window ${WINDOW}`);
    console.log('| path | points/s | seconds |');
    console.log('|---|---:|---:|');
    console.log(`| raw line protocol, 5000-line bodies, 2 in flight (mean of 2 runs) | ${result.raw.pointsPerSecond} | ${rawSeconds.toFixed(2)} |`);
    console.log(`| hub: frames -> spool (acked) -> InfluxDB (drained) | ${result.hub.pointsPerSecond} | ${hub.seconds.toFixed(2)} |`);
    console.log(`| hub: acked only (in the spool) | ${result.hub.ackedPerSecond} | ${hub.ackedSeconds.toFixed(2)} |`);
    console.log(`ratio hub / raw (points/s, end to end): ${result.ratio.toFixed(2)}x`);
    const show = (c) => Object.entries(c).map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`CPU seconds per million readings: raw runs ${result.raw.cpuSecondsPerMillion.map(show).join(' | ')}; hub run ${show(result.hub.cpuSecondsPerMillion)} (client = the device generator; the hub had used ${result.hub.hubCpuSecondsWhenAllAcked} CPU s when every reading was acked)`);
    console.log(`hub write requests to InfluxDB: ${result.hub.requests}, ${result.hub.linesPerRequest} lines each on average (raw: ${LINES_PER_REQUEST})`);
  }
} finally {
  clearTimeout(watchdog);
  await influx.stop();
  modules.cleanup();
}
