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
//
// Paced (issue 16): --rate R [--seconds 10] sends R readings/s in total, one READING frame per reading, round
// robin over the devices, for the given seconds (the readings count follows). The baseline is then a batching
// writer: the same readings as 3-field millisecond points (no @seq/@epoch), 1000 lines per request, each request
// sent once its 1000 readings are due at the same rate. Compared: CPU per stored reading of hub + influxd
// against writer + influxd (each measured until influxd is quiet again), influxd's CPU per point on both sides,
// the hub's ack latency p50/p99, and the hub's requests to InfluxDB.
import { execFileSync, spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { args, cpuSecondsOf, hasTaskset, loadTypeScript, opt, postLines } from './lib/common.mjs';
import { encodeDeviceFrame, newDeltaContext } from '../device-sdk/dist/index.js';
import { maskedFrame } from './lib/raw-ws.mjs';
import { connectHubDevice } from './lib/hub-device.mjs';

const DEVICES = opt('devices', 50);
const BATCH = Math.max(1, opt('batch', 1));
/** --rate: readings/s in total, paced (0: flood). */
const RATE = opt('rate', 0);
if (RATE > 0 && BATCH !== 1) throw new Error('--rate sends one READING frame per reading: leave --batch at 1');
const PER_DEVICE =
  Math.ceil((RATE > 0 ? RATE * opt('seconds', 10) : opt('readings', 300_000)) / DEVICES / BATCH) * BATCH;
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
const HUB_WARMUP = opt('hub-warmup', RATE > 0 ? RATE * 3 : 100_000); // paced: 3 s at the rate
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

async function countPoints(influx, db, where = '', field = '@seq') {
  const [r] = await influx.query(`SELECT count("${field}") FROM "readings" ${where}`, { db });
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

/**
 * The paced baseline (--rate): a batching writer posting the readings as 3-field millisecond points, 1000 lines
 * per request, each request once its readings are due at RATE. CPU until influxd is quiet again.
 */
async function runRawPaced(influx, db, readings, warmBodies) {
  await influx.query(`CREATE DATABASE "${db}"`);
  const agent = new http.Agent({ keepAlive: true });
  await postAll(agent, `${influx.url}/write?db=${db}&precision=ns`, warmBodies);
  const lines = readings.map(
    (r) =>
      `readings,device=${r.deviceId} humidity=${r.values[1].value},pressure=${r.values[2].value},temperature=${r.values[0].value} ${r.ts}`,
  );
  const bodies = [];
  for (let i = 0; i < lines.length; i += 1000) bodies.push(lines.slice(i, i + 1000).join('\n'));
  const url = `${influx.url}/write?db=${db}&precision=ms`;
  await untilQuiet(influx.pid);
  const cpu0 = { influxd: cpuSecondsOf(influx.pid), self: process.cpuUsage() };
  const start = performance.now();
  const posts = [];
  for (let j = 0; j < bodies.length; j++) {
    const dueMs = (((j + 1) * 1000) / RATE) * 1000;
    const wait = dueMs - (performance.now() - start);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    posts.push(postLines(agent, url, bodies[j]));
  }
  await Promise.all(posts);
  const seconds = (performance.now() - start) / 1000;
  await untilQuiet(influx.pid);
  const cpu = cpuSince(cpu0, influx);
  agent.destroy();
  const stored = await countPoints(influx, db, `WHERE "device" =~ /^bench-/`, 'temperature');
  if (stored !== READINGS) throw new Error(`paced raw run stored ${stored} points, expected ${READINGS}`);
  return { seconds, cpu };
}

/** The readings of the run in the order a paced fleet sends them: round robin over the devices. */
function pacedOrder(readings) {
  const out = [];
  for (let seq = 1; seq <= PER_DEVICE; seq++)
    for (let d = 0; d < DEVICES; d++) out.push(readings[d * PER_DEVICE + seq - 1]);
  return out;
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
  const nodeArgs = [...(process.env.BENCH_HUB_NODE_ARGS ?? '').split(' ').filter(Boolean), here('./servers/hub.mjs')];
  const child = spawn(
    SPLIT ? 'taskset' : process.execPath,
    SPLIT ? ['-c', '1', process.execPath, ...nodeArgs] : nodeArgs,
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, BENCH_HUB_ENV: JSON.stringify(env) },
    },
  );
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

/** The hub's /readyz details and /metrics are for the admin (docs/operations.md): the run's admin token. */
let hubAuth = {};

/** Samples the hub run every TIMELINE_MS (the /readyz request is part of the hub's load, a small one). */
function startTimeline(base, devices, influxPid, hubPid, start) {
  let last = { t: start, influxd: cpuSecondsOf(influxPid), hub: cpuSecondsOf(hubPid), self: process.cpuUsage() };
  console.log('| t (s) | acked | spool depth | influxd CPU % | hub CPU % | generator CPU % |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  let running = true;
  const loop = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, TIMELINE_MS));
      const body = await (await fetch(`${base}/readyz`, { headers: hubAuth })).json().catch(() => ({}));
      const now = {
        t: performance.now(),
        influxd: cpuSecondsOf(influxPid),
        hub: cpuSecondsOf(hubPid),
        self: process.cpuUsage(),
      };
      const wall = (now.t - last.t) / 1000;
      const pct = (a, b) => Math.round(((a - b) / wall) * 100);
      const self = process.cpuUsage(last.self);
      const acked = devices.reduce((n, d) => n + d.acked, 0);
      console.log(
        `| ${((now.t - start) / 1000).toFixed(2)} | ${acked} | ${body.spool?.depthReadings ?? '?'} | ${pct(now.influxd, last.influxd)} | ${pct(now.hub, last.hub)} | ${Math.round(((self.user + self.system) / 1e6 / wall) * 100)} |`,
      );
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
  /** Ack latency of each reading sent by goPaced(), ms. */
  const latencies = [];
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
    const dev = { conn: null, sent: 0, acked: 0, waiting: false, done: null, fail: null, sentAt: [] };
    dev.finished = new Promise((resolve, reject) => ((dev.done = resolve), (dev.fail = reject)));
    dev.finished.catch(() => {}); // handled where the run awaits it; not an unhandled rejection meanwhile
    dev.conn = await connectHubDevice({
      port: ready.port,
      path: ready.path,
      adminToken: ready.adminToken,
      id: idOf(i),
      clock,
      metrics: METRICS,
      epoch: EPOCH,
      // These devices repeat one frame and cannot resend after a pause (protocol §7.4): a BACKOFF ends the run
      // at once (the hub fell a second behind: the machine is too busy for this rate) instead of waiting for
      // acks that will not come.
      onBackoff(f) {
        dev.fail(
          new Error(
            `${idOf(i)}: the hub answered BACKOFF ${f.code} (${f.reason ?? ''}); rerun when the machine is quieter`,
          ),
        );
      },
      onAck(seq) {
        if (dev.sentAt.length > 0) {
          const now = performance.now();
          for (let k = dev.acked; k < seq; k++) latencies.push(now - dev.sentAt[k]);
        }
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
    latencies,
    go() {
      for (const d of devices) pump(d);
      return Promise.all(devices.map((d) => d.finished));
    },
    /** RATE readings/s in total, one READING frame each, round robin over the devices; resolves when all are acked. */
    async goPaced() {
      const total = count * perDevice;
      const start = performance.now();
      let issued = 0;
      while (issued < total) {
        const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * RATE));
        for (; issued < due; issued++) {
          const dev = devices[issued % count];
          dev.sentAt.push(performance.now());
          dev.sent += 1;
          dev.conn.send(frame);
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      return Promise.all(devices.map((d) => d.finished));
    },
    close() {
      for (const d of devices) d.conn.close();
    },
  };
}

/** Write requests the hub has sent to InfluxDB (its /metrics). */
async function influxRequests(base) {
  const text = await (await fetch(`${base}/metrics`, { headers: hubAuth })).text();
  const m = /^tendril_influx_requests_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

async function runHub(influx, db, clock) {
  const server = startHubServer({
    INFLUX_URL: influx.url,
    INFLUX_DB: db,
    ...(MEMORY_READINGS ? { HUB_SPOOL_MEMORY_READINGS: MEMORY_READINGS } : {}),
  });
  const ready = await server.next('ready');
  const base = `http://127.0.0.1:${ready.port}`;
  hubAuth = { authorization: `Bearer ${ready.adminToken}` };
  const frame = maskedFrame(repeatedFrame(clock));
  const drained = () =>
    waitUntil(
      'the hub to drain its spool into InfluxDB',
      async () => {
        const body = await (await fetch(`${base}/readyz`, { headers: hubAuth })).json();
        return body.spool?.depthReadings === 0;
      },
      300_000,
      2, // the raw run's clock stops at its last response: this one should stop as close to the drain's end
    );
  if (HUB_WARMUP > 0) {
    // As the raw client is warmed up before its runs: the hub's code paths compiled, its InfluxDB shard made.
    // Paced runs warm up at their rate too: a flood from every device at once is what the hub answers with
    // BACKOFF STORE_BUSY, which these devices do not honour (they would wait for acks that never come).
    const warm = await openFleet(ready, warmId, DEVICES, warmPerDevice(), frame, clock);
    await (RATE > 0 ? warm.goPaced() : warm.go());
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
  await (RATE > 0 ? fleet.goPaced() : fleet.go());
  const ackedSeconds = (performance.now() - start) / 1000;
  const hubCpuAtAcked = cpuSecondsOf(server.child.pid) - cpu0.hub;
  await drained();
  const seconds = (performance.now() - start) / 1000;
  if (RATE > 0) await untilQuiet(influx.pid); // as the paced baseline: influxd's work on these points included
  const cpu = cpuSince(cpu0, influx, server.child.pid);
  const requests = (await influxRequests(base)) - requests0;
  await timeline?.stop();
  fleet.close();
  server.child.send({ type: 'stop' });
  await new Promise((r) => server.child.once('exit', r));
  const stored = await countPoints(influx, db, `WHERE "device" =~ /^bench-/`);
  if (stored !== READINGS) throw new Error(`hub run stored ${stored} points, expected ${READINGS}`);
  const sorted = fleet.latencies.sort((a, b) => a - b);
  const ack =
    sorted.length > 0
      ? { p50: sorted[Math.floor(sorted.length * 0.5)], p99: sorted[Math.floor(sorted.length * 0.99)] }
      : null;
  return { seconds, ackedSeconds, cpu, hubCpuAtAcked, requests, ack };
}

const modules = await loadTypeScript(
  { harness: 'test/support/influxdb.ts', schema: 'hub/src/storage/influx-schema.ts' },
  'bench-ingest-influx',
);
const influx = await modules.harness.startInfluxDB({ db: 'bench' });
if (SPLIT) {
  if (!hasTaskset()) throw new Error('--split-cores needs taskset (util-linux)');
  execFileSync('taskset', ['-a', '-cp', '0', String(influx.pid)], { stdio: 'ignore' });
  execFileSync('taskset', ['-a', '-cp', '1', String(process.pid)], { stdio: 'ignore' });
}
/** Stops influxd before exiting early (its hub child exits on its own once this process is gone). */
const bail = (code) => influx.kill9().finally(() => process.exit(code));
const watchdog = setTimeout(() => {
  console.error('ingest-influx benchmark: gave up after 10 minutes');
  bail(2);
}, 600_000);
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => bail(130));
try {
  const clock = Date.now() - 10 * 60_000; // readings 1 ms apart from 10 min ago: all in range
  const bodiesOf = (readings) => {
    const lines = readings.map((r) => modules.schema.readingToLine(r, 'readings').line);
    const bodies = [];
    for (let i = 0; i < lines.length; i += LINES_PER_REQUEST)
      bodies.push(lines.slice(i, i + LINES_PER_REQUEST).join('\n'));
    return bodies;
  };
  const bodies = bodiesOf(storedReadings(clock));
  // The hub's warm-up readings, as lines: the raw client's warm-up (into the database it is measured in).
  const warmBodies = bodiesOf(storedReadings(clock, warmId, warmPerDevice()));
  if (RATE > 0) await pacedRuns(clock, warmBodies);
  else {
    const raw1 = await runRaw(influx, 'raw_1', bodies, warmBodies);
    const hub = await runHub(influx, 'hub_1', clock);
    const raw2 = await runRaw(influx, 'raw_2', bodies, warmBodies);
    const rawSeconds = (raw1.seconds + raw2.seconds) / 2;
    const rawRate = READINGS / rawSeconds;
    /** CPU seconds per million readings, by process. */
    const perMillion = (cpu) =>
      Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, +((v * 1e6) / READINGS).toFixed(2)]));
    const hubRate = READINGS / hub.seconds;
    const result = {
      readings: READINGS,
      devices: DEVICES,
      batch: BATCH,
      window: WINDOW,
      memoryReadings: MEMORY_READINGS ? Number(MEMORY_READINGS) : 'default',
      hubWarmup: HUB_WARMUP,
      splitCores: SPLIT,
      raw: {
        seconds: [raw1.seconds, raw2.seconds],
        pointsPerSecond: Math.round(rawRate),
        cpuSecondsPerMillion: [perMillion(raw1.cpu), perMillion(raw2.cpu)],
      },
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
      console.log(
        `${READINGS} readings (3 f32 values each) from ${DEVICES} devices, ${BATCH === 1 ? 'one READING frame each' : `BATCH frames of ${BATCH}`}, window ${WINDOW}`,
      );
      console.log('| path | points/s | seconds |');
      console.log('|---|---:|---:|');
      console.log(
        `| raw line protocol, 5000-line bodies, 2 in flight (mean of 2 runs) | ${result.raw.pointsPerSecond} | ${rawSeconds.toFixed(2)} |`,
      );
      console.log(
        `| hub: frames -> spool (acked) -> InfluxDB (drained) | ${result.hub.pointsPerSecond} | ${hub.seconds.toFixed(2)} |`,
      );
      console.log(`| hub: acked only (in the spool) | ${result.hub.ackedPerSecond} | ${hub.ackedSeconds.toFixed(2)} |`);
      console.log(`ratio hub / raw (points/s, end to end): ${result.ratio.toFixed(2)}x`);
      const show = (c) =>
        Object.entries(c)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
      console.log(
        `CPU seconds per million readings: raw runs ${result.raw.cpuSecondsPerMillion.map(show).join(' | ')}; hub run ${show(result.hub.cpuSecondsPerMillion)} (client = the device generator; the hub had used ${result.hub.hubCpuSecondsWhenAllAcked} CPU s when every reading was acked)`,
      );
      console.log(
        `hub write requests to InfluxDB: ${result.hub.requests}, ${result.hub.linesPerRequest} lines each on average (raw: ${LINES_PER_REQUEST})`,
      );
    }
  }
} finally {
  clearTimeout(watchdog);
  await influx.stop();
  modules.cleanup();
}

/** --rate: paced baseline, hub, paced baseline; CPU per stored reading of each side (issue 16). */
async function pacedRuns(clock, warmBodies) {
  const readings = pacedOrder(storedReadings(clock));
  const raw1 = await runRawPaced(influx, 'praw_1', readings, warmBodies);
  const hub = await runHub(influx, 'phub_1', clock);
  const raw2 = await runRawPaced(influx, 'praw_2', readings, warmBodies);
  const us = (s) => +((s * 1e6) / READINGS).toFixed(2);
  const rawTotal = (us(raw1.cpu.influxd + raw1.cpu.client) + us(raw2.cpu.influxd + raw2.cpu.client)) / 2;
  const rawInflux = (us(raw1.cpu.influxd) + us(raw2.cpu.influxd)) / 2;
  const hubTotal = us(hub.cpu.influxd + hub.cpu.hub);
  const result = {
    rate: RATE,
    readings: READINGS,
    devices: DEVICES,
    splitCores: SPLIT,
    baseline: {
      cpuUsPerReading: +rawTotal.toFixed(2),
      influxdUsPerPoint: +rawInflux.toFixed(2),
      runs: [raw1, raw2].map((r) => ({
        seconds: +r.seconds.toFixed(2),
        writer: us(r.cpu.client),
        influxd: us(r.cpu.influxd),
      })),
    },
    hub: {
      seconds: +hub.seconds.toFixed(2),
      cpuUsPerReading: +hubTotal.toFixed(2),
      hubUsPerReading: us(hub.cpu.hub),
      influxdUsPerPoint: us(hub.cpu.influxd),
      generatorUsPerReading: us(hub.cpu.client),
      ackP50Ms: hub.ack ? +hub.ack.p50.toFixed(1) : null,
      ackP99Ms: hub.ack ? +hub.ack.p99.toFixed(1) : null,
      requests: hub.requests,
      linesPerRequest: Math.round(READINGS / hub.requests),
    },
    ratio: rawTotal / hubTotal,
    influxdRatio: us(hub.cpu.influxd) / rawInflux,
  };
  if (asJson) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(
    `${READINGS} readings at ${RATE}/s from ${DEVICES} devices, one READING frame each; baseline: 1000-line requests of 3-field ms points`,
  );
  console.log(
    '| path | CPU-us per stored reading (with influxd) | influxd CPU-us per point | requests | lines per request |',
  );
  console.log('|---|---:|---:|---:|---:|');
  console.log(
    `| baseline writer (mean of 2 runs) | ${result.baseline.cpuUsPerReading} | ${result.baseline.influxdUsPerPoint} | ${Math.ceil(READINGS / 1000)} | 1000 |`,
  );
  console.log(
    `| hub (spool, InfluxDB store) | ${result.hub.cpuUsPerReading} (hub ${result.hub.hubUsPerReading}) | ${result.hub.influxdUsPerPoint} | ${result.hub.requests} | ${result.hub.linesPerRequest} |`,
  );
  console.log(
    `ratio baseline / hub (CPU per stored reading): ${result.ratio.toFixed(2)}x; influxd per point hub / baseline: ${result.influxdRatio.toFixed(2)}x`,
  );
  console.log(
    `hub ack latency p50 ${result.hub.ackP50Ms} ms, p99 ${result.hub.ackP99Ms} ms; device generator ${result.hub.generatorUsPerReading} us per reading (not counted)`,
  );
}
