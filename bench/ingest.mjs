#!/usr/bin/env node
// Ingest benchmark: readings per CPU-second of the server process, the hub's full path (decode, validate,
// store in SQLite, ack) against a bare `ws` server that only counts the same frames, in the same run.
// The server runs pinned to core 0; this generator pins itself to core 1. Every frame goes out in its own
// TCP segment (each write waits for the previous write's callback; TCP_NODELAY).
// Frames are encoded once per device by the real SDK codec and masked once.
// Two kinds of run, each against both servers in the same process run:
// - flood: every device sends as fast as its window (hub) or its socket (bare ws) allows;
// - paced: --paced-devices (100) devices send --rates readings/s in total (2000,10000,20000), each reading
//   one socket write at its due time, the devices' phases spread evenly. The hub's ack latency (the write ->
//   the ACK covering it, measured here) is reported per rate as p50/p99, with the p99 counted from the due
//   time instead and this generator's own lag behind its schedule (due -> write): a late timer here is not
//   the hub's latency, but it is what a device that fell behind would see.
// Reproduce: npm run build && node bench/ingest.mjs [--devices 50] [--seconds 10] [--window 256]
//   [--rates 2000,10000,20000] [--paced-devices 100] [--no-flood] [--repeat 3] [--json]
// --repeat N runs the whole sequence N times (bare and hub alternating within each round) and adds the
// median of each row.
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeDeviceFrame, newDeltaContext, SUBPROTOCOL } from '../device-sdk/dist/index.js';
import { connectRaw, maskedFrame } from './lib/raw-ws.mjs';
import { connectHubDevice } from './lib/hub-device.mjs';
import { args, hasTaskset, median, opt, percentile, serverChannel } from './lib/common.mjs';

const DEVICES = opt('devices', 50);
const SECONDS = opt('seconds', 10);
const WARMUP = opt('warmup', 2);
const WINDOW = opt('window', 256); // unacked readings in flight per device (hub run)
const asJson = args.includes('--json');
const PACED_DEVICES = opt('paced-devices', 100);
const ratesArg = args.indexOf('--rates');
const RATES =
  ratesArg >= 0
    ? args[ratesArg + 1]
        .split(',')
        .map(Number)
        .filter((n) => n > 0)
    : [2000, 10000, 20000];
const FLOOD = !args.includes('--no-flood');
const here = (p) => fileURLToPath(new URL(p, import.meta.url));

const pinned = hasTaskset();
if (pinned) execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });

function startServer(script) {
  const cmd = pinned ? 'taskset' : process.execPath;
  // BENCH_NODE_ARGS: flags for the server's node, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof' to profile it;
  // BENCH_HUB_NODE_ARGS: flags for the hub's node only, to try a runtime setting against an unchanged baseline.
  const flags = (name) => (process.env[name] ?? '').split(' ').filter(Boolean);
  const nodeArgs = [...flags('BENCH_NODE_ARGS'), ...(script === 'servers/hub.mjs' ? flags('BENCH_HUB_NODE_ARGS') : [])];
  const argv = pinned ? ['-c', '0', process.execPath, ...nodeArgs, here(script)] : [...nodeArgs, here(script)];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return serverChannel(child, script);
}

const METRICS = [
  { alias: 0, name: 'temperature', kind: 'f32', unit: 'C', min: -40, max: 85 },
  { alias: 1, name: 'humidity', kind: 'f32', unit: '%', min: 0, max: 100 },
  { alias: 2, name: 'pressure', kind: 'f32', unit: 'hPa' },
];

/** A READING of seq `seq` (ts clock + seq), encoded against `ctx`. */
function readingPayloadAt(clock, seq, ctx) {
  return encodeDeviceFrame(
    {
      type: 'reading',
      seq,
      ts: clock + seq,
      values: [
        { alias: 0, kind: 'f32', value: 21.5 },
        { alias: 1, kind: 'f32', value: 40.25 },
        { alias: 2, kind: 'f32', value: 1013.25 },
      ],
    },
    ctx,
  );
}

/** The READING frame every device repeats: seq +1 and ts +1 ms each time, so the bytes never change. */
function readingPayload(clock) {
  return readingPayloadAt(clock, 1, newDeltaContext(0, clock));
}

/** A paced sender: device i sends at t0 + (i / n + k) * interval, k = 0, 1, ...; one write per reading. */
function pace(devices, totalRate, send) {
  const interval = (devices.length / totalRate) * 1000;
  const t0 = performance.now() + 50;
  devices.forEach((d, i) => {
    d.nextDue = t0 + (i / devices.length) * interval;
  });
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    const now = performance.now();
    for (const d of devices) {
      // A late tick sends what fell due, at most 10 intervals' worth (the generator's own hiccups).
      let n = 0;
      while (d.nextDue <= now && n++ < 10) {
        send(d, d.nextDue);
        d.nextDue += interval;
      }
      if (d.nextDue <= now) d.nextDue = now + interval;
    }
    setTimeout(tick, 1);
  };
  tick();
  return () => {
    stopped = true;
  };
}

async function run(target, rate = null) {
  const n = rate === null ? DEVICES : PACED_DEVICES;
  const server = startServer(target === 'hub' ? 'servers/hub.mjs' : 'servers/bare-ws.mjs');
  const ready = await server.next('ready');
  const clock = Date.now() - 10 * 60_000; // ts runs 1 ms per reading from 10 min ago: stays in range
  const frame = maskedFrame(readingPayload(clock));
  const devices = [];
  let backoffs = 0;
  let latencies = null; // ack latencies in ms, collected during the measurement window (paced hub runs)
  let dueLatencies = null; // the same, counted from the reading's due time
  let lags = null; // due time -> write, ms (paced runs)
  let ackFrames = 0; // ACK frames received during the measurement window
  for (let i = 0; i < n; i++) {
    const dev = {
      conn: null,
      sent: 0,
      acked: 0,
      waiting: false,
      stopped: false,
      sentAt: [],
      dueAt: [],
      nextDue: 0,
      pausedUntil: 0,
      resend: false,
    };
    dev.conn =
      target === 'hub'
        ? await connectHubDevice({
            port: ready.port,
            path: ready.path,
            adminToken: ready.adminToken,
            id: `bench-${String(i).padStart(4, '0')}`,
            clock,
            metrics: METRICS,
            // §7.4.3: pause, then go on from the oldest unacked reading (the paced stream resends it).
            onBackoff(f) {
              backoffs++;
              dev.pausedUntil = performance.now() + f.pauseMs;
              dev.resend = true;
              if (dev.waiting) {
                dev.waiting = false;
                pump(dev);
              }
            },
            onAck(seq) {
              if (latencies) ackFrames++;
              if (rate !== null) {
                const now = performance.now();
                // sentAt[k] is the send time of seq k + 1; the ACK covers every seq up to `seq`.
                if (latencies)
                  for (let k = dev.acked; k < seq; k++) {
                    latencies.push(now - dev.sentAt[k]);
                    dueLatencies.push(now - dev.dueAt[k]);
                  }
              }
              dev.acked = Math.max(dev.acked, seq);
              if (dev.waiting) {
                dev.waiting = false;
                pump(dev);
              }
            },
          })
        : await connectRaw({ port: ready.port, path: ready.path, protocol: SUBPROTOCOL });
    devices.push(dev);
  }
  const windowed = target === 'hub';
  // Each write waits for the previous one's callback (its own TCP segment), then yields to the event
  // loop: a write that completes at once calls back on the next tick, and a tight chain would starve
  // the timers and the ack reader.
  function pump(dev) {
    if (dev.stopped || rate !== null) return;
    const pause = dev.pausedUntil - performance.now();
    if (pause > 0) {
      setTimeout(pump, pause, dev); // §7.4.3: a BACKOFF pause
      return;
    }
    if (windowed && !dev.resend && dev.sent - dev.acked >= WINDOW) {
      dev.waiting = true;
      return;
    }
    sendNext(dev, () => setImmediate(pump, dev));
  }
  /** Sends the next reading: the constant frame, or after a BACKOFF one that steps back to the oldest unacked. */
  function sendNext(d, cb) {
    if (d.resend) {
      // The hub's delta context is at the last seq sent; the constant frame (+1) follows on from the resend.
      d.resend = false;
      const ctx = newDeltaContext(d.sent, clock + d.sent);
      d.sent = d.acked;
      d.conn.send(maskedFrame(readingPayloadAt(clock, d.sent + 1, ctx)), cb);
    } else d.conn.send(frame, cb);
    d.sent++;
  }
  let stopPacing = () => undefined;
  if (rate === null) for (const d of devices) pump(d);
  else
    stopPacing = pace(devices, rate, (d, due) => {
      if (due < d.pausedUntil) return; // held during a BACKOFF pause
      sendNext(d);
      const now = performance.now();
      if (lags) lags.push(now - due);
      // Latency from the first send of a reading (a resend after a BACKOFF keeps it).
      if (d.sentAt[d.sent - 1] === undefined) {
        d.sentAt[d.sent - 1] = now;
        d.dueAt[d.sent - 1] = due;
      }
    });
  const count = () => devices.reduce((m, d) => m + (windowed ? d.acked : d.sent), 0);

  await new Promise((r) => setTimeout(r, WARMUP * 1000)); // warm-up period of the benchmark, not a sync
  const s0 = await server.sample();
  const c0 = windowed ? count() : s0.messages;
  latencies = [];
  dueLatencies = [];
  lags = [];
  ackFrames = 0;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, SECONDS * 1000)); // measurement window
  const s1 = await server.sample();
  const c1 = windowed ? count() : s1.messages;
  const measured = latencies;
  const measuredDue = dueLatencies.sort((a, b) => a - b);
  const measuredLags = lags.sort((a, b) => a - b);
  latencies = dueLatencies = lags = null;
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  stopPacing();
  for (const d of devices) {
    d.stopped = true;
    d.conn.close();
  }
  server.child.send({ type: 'stop' });
  await new Promise((r) => server.child.once('exit', r));
  const cpuSec = (s1.cpu.user + s1.cpu.system - s0.cpu.user - s0.cpu.system) / 1e6;
  const messages = c1 - c0;
  const sorted = measured.sort((a, b) => a - b);
  return {
    target,
    rate,
    devices: n,
    messages,
    wallSeconds: wall,
    cpuSeconds: cpuSec,
    perCpuSecond: messages / cpuSec,
    perWallSecond: messages / wall,
    cpuMicrosPerReading: (cpuSec / messages) * 1e6,
    // The same split as the kernel accounts it: user (JS, V8, the addons) and system (syscalls, loopback TCP).
    userMicrosPerReading: (s1.cpu.user - s0.cpu.user) / messages,
    systemMicrosPerReading: (s1.cpu.system - s0.cpu.system) / messages,
    ...(windowed ? { backoffs, readingsPerAck: messages / ackFrames } : {}),
    ...(windowed && rate !== null
      ? {
          ackP50Ms: percentile(sorted, 0.5),
          ackP99Ms: percentile(sorted, 0.99),
          ackP99FromDueMs: percentile(measuredDue, 0.99),
          senderLagP99Ms: percentile(measuredLags, 0.99),
        }
      : {}),
    ...(s1.loopDelayMs ? { loopDelayMs: s1.loopDelayMs } : {}),
    rssMB: s1.rss / 2 ** 20,
  };
}

if (args.includes('--baseline-only')) {
  console.log(JSON.stringify(await run('bare-ws'), null, 2));
  process.exit(0);
}
const REPEAT = opt('repeat', 1);
const rows = [];
for (let round = 1; round <= REPEAT; round++) {
  // Bare and hub alternate within each round, and rounds repeat the whole sequence (issue 16: "three
  // alternating runs"), so a noisy stretch of the shared machine hits both sides of a ratio alike.
  const flood = FLOOD ? { bare: await run('bare-ws'), hub: await run('hub') } : null;
  const floodMicros = flood?.hub.cpuMicrosPerReading ?? NaN;
  if (flood)
    rows.push({
      round,
      name: 'flood',
      ...flood,
      ratio: flood.hub.perCpuSecond / flood.bare.perCpuSecond,
      cpuPerReadingVsFlood: 1,
    });
  for (const rate of RATES) {
    const p = { rate, bare: await run('bare-ws', rate), hub: await run('hub', rate) };
    rows.push({
      round,
      name: `${rate}/s paced`,
      ...p,
      ratio: p.hub.perCpuSecond / p.bare.perCpuSecond,
      cpuPerReadingVsFlood: p.hub.cpuMicrosPerReading / floodMicros,
    });
  }
}
const medians = [...new Set(rows.map((r) => r.name))].map((name) => {
  const of = rows.filter((r) => r.name === name);
  return {
    name,
    ratio: median(of.map((r) => r.ratio)),
    hubMicrosPerReading: median(of.map((r) => r.hub.cpuMicrosPerReading)),
    cpuPerReadingVsFlood: median(of.map((r) => r.cpuPerReadingVsFlood)),
    ackP50Ms: median(of.map((r) => r.hub.ackP50Ms)),
    ackP99Ms: median(of.map((r) => r.hub.ackP99Ms)),
    ackP99FromDueMs: median(of.map((r) => r.hub.ackP99FromDueMs)),
    senderLagP99Ms: median(of.map((r) => r.hub.senderLagP99Ms)),
    readingsPerAck: median(of.map((r) => r.hub.readingsPerAck)),
  };
});
const result = {
  devices: DEVICES,
  pacedDevices: PACED_DEVICES,
  seconds: SECONDS,
  window: WINDOW,
  pinned,
  repeat: REPEAT,
  rows,
  medians,
};
if (asJson) console.log(JSON.stringify(result, null, 2));
else {
  console.log(
    `flood: ${DEVICES} devices, window ${WINDOW}; paced: ${PACED_DEVICES} devices; measured ${SECONDS}s after ${WARMUP}s warm-up; server pinned to core 0: ${pinned}; rounds: ${REPEAT}`,
  );
  console.log(
    '| run | bare ws readings/CPU-s | hub readings/CPU-s | hub/bare | hub µs CPU/reading | hub µs user / system | × flood | ack p50 ms | ack p99 ms | ack p99 from due ms | sender lag p99 ms | hub loop delay p99 / max ms | hub readings/s | readings per ACK | BACKOFFs |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '—');
  for (const r of rows)
    console.log(
      `| ${REPEAT > 1 ? `${r.round}: ` : ''}${r.name} | ${Math.round(r.bare.perCpuSecond)} | ${Math.round(r.hub.perCpuSecond)} | ${f(r.ratio, 2)}x | ${f(r.hub.cpuMicrosPerReading)} | ${f(r.hub.userMicrosPerReading)} / ${f(r.hub.systemMicrosPerReading)} | ${f(r.cpuPerReadingVsFlood, 2)}x | ${f(r.hub.ackP50Ms)} | ${f(r.hub.ackP99Ms)} | ${f(r.hub.ackP99FromDueMs)} | ${f(r.hub.senderLagP99Ms)} | ${f(r.hub.loopDelayMs?.p99)} / ${f(r.hub.loopDelayMs?.max)} | ${Math.round(r.hub.perWallSecond)} | ${f(r.hub.readingsPerAck, 2)} | ${r.hub.backoffs} |`,
    );
  if (REPEAT > 1)
    for (const m of medians)
      console.log(
        `| median: ${m.name} | | | ${f(m.ratio, 2)}x | ${f(m.hubMicrosPerReading)} | | ${f(m.cpuPerReadingVsFlood, 2)}x | ${f(m.ackP50Ms)} | ${f(m.ackP99Ms)} | ${f(m.ackP99FromDueMs)} | ${f(m.senderLagP99Ms)} | | | ${f(m.readingsPerAck, 2)} | |`,
      );
}
