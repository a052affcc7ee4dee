#!/usr/bin/env node
// Durable ingest into InfluxDB, end to end, against raw line-protocol writes of the same points to the same
// influxd, in the same run (issue 3: goal >= 0.8x).
//
//   hub   the built hub (bench/servers/hub.mjs: createHub with INFLUX_URL, the spool in front of the store)
//         takes SDK-codec frames from --devices raw WebSocket devices (bench/lib/raw-ws.mjs, like
//         bench/ingest.mjs); each device keeps --window unacked readings in flight. The clock runs from the
//         first frame until every reading is acked AND the spool has drained it into InfluxDB (/readyz
//         spool.depthReadings = 0). Points/s = readings / that time. --batch N sends BATCH frames of N
//         readings (store-and-forward replay); 1 (default) sends one READING frame per reading.
//   raw   the same points (the store's own lines: same measurement, tag, fields, timestamps), pre-built
//         before the clock starts, POSTed to /write in 5000-line bodies, 2 requests in flight (as the store
//         sends them) over keep-alive: the best a client can do.
//
// Order raw, hub, raw; the baseline is the mean of the two raw runs (the machine is shared and noisy).
// Each run gets a fresh database; both are counted afterwards (count("@seq") must equal the readings).
// influxd is Debian's 1.6, started by the test harness (127.0.0.1, free port, temp dir, stopped by PID).
// CPU seconds per million readings are reported for influxd, the hub and this process (the raw client, or
// the device generator) from /proc. BENCH_HUB_NODE_ARGS adds node flags to the hub (e.g. "--cpu-prof").
// Reproduce: npm run build && node bench/ingest-influx.mjs [--readings 300000] [--devices 50] [--batch 1]
//            [--window 2048] [--memory-readings N (HUB_SPOOL_MEMORY_READINGS)] [--split-cores] [--json]
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

/** Every reading of the run, as the hub will store it: seq 1.., ts clock + seq (1 ms apart), f32 values. */
function storedReadings(clock) {
  const f32 = (v) => Math.fround(v);
  const out = [];
  for (let d = 0; d < DEVICES; d++) {
    for (let seq = 1; seq <= PER_DEVICE; seq++) {
      out.push({
        deviceId: deviceId(d),
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


async function countPoints(influx, db) {
  const [r] = await influx.query('SELECT count("@seq") FROM "readings"', { db });
  return r?.series?.[0]?.values?.[0]?.[1] ?? 0;
}

async function runRaw(influx, db, bodies) {
  await influx.query(`CREATE DATABASE "${db}"`);
  const agent = new http.Agent({ keepAlive: true });
  const url = `${influx.url}/write?db=${db}&precision=ns`;
  const cpu0 = { influxd: cpuSecondsOf(influx.pid), self: process.cpuUsage() };
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 2 }, async () => {
      while (next < bodies.length) await postLines(agent, url, bodies[next++]);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const cpu = cpuSince(cpu0, influx);
  agent.destroy();
  const stored = await countPoints(influx, db);
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
  const nodeArgs = [...(process.env.BENCH_HUB_NODE_ARGS?.split(' ') ?? []), here('./servers/hub.mjs')];
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

async function waitUntil(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runHub(influx, db, clock) {
  const server = startHubServer({ INFLUX_URL: influx.url, INFLUX_DB: db, ...(MEMORY_READINGS ? { HUB_SPOOL_MEMORY_READINGS: MEMORY_READINGS } : {}) });
  const ready = await server.next('ready');
  const base = `http://127.0.0.1:${ready.port}`;
  const frame = maskedFrame(repeatedFrame(clock));
  const devices = [];
  for (let i = 0; i < DEVICES; i++) {
    const id = deviceId(i);
    const dev = { conn: null, sent: 0, acked: 0, waiting: false, done: null };
    dev.finished = new Promise((resolve) => (dev.done = resolve));
    dev.conn = await connectHubDevice({
      port: ready.port, path: ready.path, adminToken: ready.adminToken, id, clock, metrics: METRICS, epoch: EPOCH,
      onAck(seq) {
        dev.acked = seq;
        if (dev.acked >= PER_DEVICE) dev.done();
        if (dev.waiting) {
          dev.waiting = false;
          pump(dev);
        }
      },
    });
    devices.push(dev);
  }
  function pump(dev) {
    if (dev.sent >= PER_DEVICE) return;
    if (dev.sent - dev.acked >= WINDOW) {
      dev.waiting = true;
      return;
    }
    dev.sent += BATCH;
    dev.conn.send(frame, () => setImmediate(pump, dev));
  }
  const cpu0 = { influxd: cpuSecondsOf(influx.pid), self: process.cpuUsage(), hub: cpuSecondsOf(server.child.pid) };
  const start = performance.now();
  for (const d of devices) pump(d);
  await Promise.all(devices.map((d) => d.finished));
  const ackedSeconds = (performance.now() - start) / 1000;
  const hubCpuAtAcked = cpuSecondsOf(server.child.pid) - cpu0.hub;
  await waitUntil(
    'the hub to drain its spool into InfluxDB',
    async () => {
      const body = await (await fetch(`${base}/readyz`)).json();
      return body.spool?.depthReadings === 0;
    },
    300_000,
  );
  const seconds = (performance.now() - start) / 1000;
  const cpu = cpuSince(cpu0, influx, server.child.pid);
  for (const d of devices) d.conn.close();
  server.child.send({ type: 'stop' });
  await new Promise((r) => server.child.once('exit', r));
  const stored = await countPoints(influx, db);
  if (stored !== READINGS) throw new Error(`hub run stored ${stored} points, expected ${READINGS}`);
  return { seconds, ackedSeconds, cpu, hubCpuAtAcked };
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
  const lines = storedReadings(clock).map((r) => modules.schema.readingToLine(r, 'readings').line);
  const bodies = [];
  for (let i = 0; i < lines.length; i += LINES_PER_REQUEST) bodies.push(lines.slice(i, i + LINES_PER_REQUEST).join('\n'));
  lines.length = 0;
  await runRaw(influx, 'warmup', bodies.slice(0, 4)).catch(() => undefined); // JIT and shard creation; not counted
  const raw1 = await runRaw(influx, 'raw_1', bodies);
  const hub = await runHub(influx, 'hub_1', clock);
  const raw2 = await runRaw(influx, 'raw_2', bodies);
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
    splitCores: SPLIT,
    raw: { seconds: [raw1.seconds, raw2.seconds], pointsPerSecond: Math.round(rawRate), cpuSecondsPerMillion: [perMillion(raw1.cpu), perMillion(raw2.cpu)] },
    hub: {
      seconds: hub.seconds,
      ackedSeconds: hub.ackedSeconds,
      pointsPerSecond: Math.round(hubRate),
      ackedPerSecond: Math.round(READINGS / hub.ackedSeconds),
      cpuSecondsPerMillion: perMillion(hub.cpu),
      hubCpuSecondsWhenAllAcked: +hub.hubCpuAtAcked.toFixed(2),
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
  }
} finally {
  clearTimeout(watchdog);
  await influx.stop();
  modules.cleanup();
}
