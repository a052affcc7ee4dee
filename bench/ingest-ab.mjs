#!/usr/bin/env node
// A/B benchmark of two hub settings (or builds' environments) under the same paced load at the same time:
// hub A and hub B run side by side, each fed --rate readings/s by its own --devices devices with their sends
// interleaved, and their CPU per acked reading is compared window by window (B/A). On a shared, noisy
// machine a slow minute hits both hubs alike, so the per-window ratio is far steadier than the ratio of two
// runs of bench/ingest.mjs made minutes apart (issue 16: the same hub measured 31.7-49.6 µs per reading at
// 10 000/s in three runs of one hour).
// The run is made twice, A's hub started first and then B's, and the two medians are combined (geometric
// mean): the harness has an order bias of its own of up to about 3 %. Check it with the same environment on
// both sides (no --b-env): the combined ratio should be within 1-2 % of 1.
// Each side gets its own environment variables (JSON): BENCH_SPOOL_OPTIONS, BENCH_HUB_ENV or any variable
// servers/hub.mjs or the hub reads. Two hubs and this generator share the machine's cores (unpinned, unless
// --pin: both hubs on core 0, the generator on core 1), so absolute figures and ack latencies are not those
// of bench/ingest.mjs: judge latency there. Keep 2 x rate x (µs per reading) well under one core.
// Reproduce: npm run build && node bench/ingest-ab.mjs --b-env '{"BENCH_SPOOL_OPTIONS":"{\"commitWaitMs\":20}"}'
//   [--a-env JSON] [--rate 10000] [--devices 100] [--windows 6] [--seconds 5] [--warmup 3] [--pin] [--json]
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeDeviceFrame, newDeltaContext } from '../device-sdk/dist/index.js';
import { maskedFrame } from './lib/raw-ws.mjs';
import { connectHubDevice } from './lib/hub-device.mjs';
import { args, hasTaskset, median, opt, percentile, serverChannel } from './lib/common.mjs';

const RATE = opt('rate', 10_000);
const DEVICES = opt('devices', 100);
const WINDOWS = opt('windows', 6);
const SECONDS = opt('seconds', 5);
const WARMUP = opt('warmup', 3);
const asJson = args.includes('--json');
const envArg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? JSON.parse(args[i + 1]) : {};
};
const ENVS = { A: envArg('--a-env'), B: envArg('--b-env') };
const here = (p) => fileURLToPath(new URL(p, import.meta.url));

const pinned = args.includes('--pin') && hasTaskset();
if (pinned) execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });

function startHub(env) {
  const script = here('servers/hub.mjs');
  const cmd = pinned ? 'taskset' : process.execPath;
  const argv = pinned ? ['-c', '0', process.execPath, script] : [script];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, ...env } });
  return serverChannel(child, 'a hub');
}

const METRICS = [
  { alias: 0, name: 'temperature', kind: 'f32', unit: 'C', min: -40, max: 85 },
  { alias: 1, name: 'humidity', kind: 'f32', unit: '%', min: 0, max: 100 },
  { alias: 2, name: 'pressure', kind: 'f32', unit: 'hPa' },
];

const clock = Date.now() - 10 * 60_000; // ts runs 1 ms per reading from 10 min ago: stays in range
// The READING frame every device repeats: seq +1 and ts +1 ms each time, so the bytes never change.
const frame = maskedFrame(
  encodeDeviceFrame(
    {
      type: 'reading',
      seq: 1,
      ts: clock + 1,
      values: [
        { alias: 0, kind: 'f32', value: 21.5 },
        { alias: 1, kind: 'f32', value: 40.25 },
        { alias: 2, kind: 'f32', value: 1013.25 },
      ],
    },
    newDeltaContext(0, clock),
  ),
);

async function startSide(name) {
  const server = startHub(ENVS[name]);
  const ready = await server.next('ready');
  const side = { name, server, devices: [], latencies: null, ackFrames: 0, backoffs: 0 };
  for (let i = 0; i < DEVICES; i++) {
    const dev = { conn: null, sent: 0, acked: 0, sentAt: [], nextDue: 0 };
    dev.conn = await connectHubDevice({
      port: ready.port,
      path: ready.path,
      adminToken: ready.adminToken,
      id: `ab-${String(i).padStart(4, '0')}`,
      clock,
      metrics: METRICS,
      onBackoff() {
        side.backoffs++; // reported: a side that was told to back off did not carry the full rate
      },
      onAck(seq) {
        if (side.latencies) {
          side.ackFrames++;
          const now = performance.now();
          for (let k = dev.acked; k < seq; k++) side.latencies.push(now - dev.sentAt[k]);
        }
        dev.acked = Math.max(dev.acked, seq);
      },
    });
    side.devices.push(dev);
  }
  return side;
}

/** One run: the sides started in `order`, the first one's devices first in each pair of sends. */
async function runOnce(order) {
  const sides = {};
  for (const name of order) sides[name] = await startSide(name);
  const all = [];
  for (let i = 0; i < DEVICES; i++) for (const name of order) all.push(sides[name].devices[i]);
  const interval = (DEVICES / RATE) * 1000;
  const t0 = performance.now() + 50;
  all.forEach((d, i) => {
    d.nextDue = t0 + (Math.floor(i / 2) / DEVICES) * interval;
  });
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    const now = performance.now();
    for (const d of all) {
      // A late tick sends what fell due, at most 10 intervals' worth (the generator's own hiccups).
      let n = 0;
      while (d.nextDue <= now && n++ < 10) {
        d.conn.send(frame);
        d.sentAt[d.sent++] = performance.now();
        d.nextDue += interval;
      }
      if (d.nextDue <= now) d.nextDue = now + interval;
    }
    setTimeout(tick, 1);
  };
  tick();

  const acked = (side) => side.devices.reduce((m, d) => m + d.acked, 0);
  await new Promise((r) => setTimeout(r, WARMUP * 1000)); // warm-up period of the benchmark, not a sync
  const windows = [];
  for (let w = 0; w < WINDOWS; w++) {
    const before = {};
    for (const side of Object.values(sides)) {
      side.latencies = [];
      side.ackFrames = 0;
      before[side.name] = { s: await side.server.sample(), n: acked(side) };
    }
    await new Promise((r) => setTimeout(r, SECONDS * 1000)); // measurement window
    const row = { window: w + 1 };
    for (const side of Object.values(sides)) {
      const s1 = await side.server.sample();
      const { s: s0, n: n0 } = before[side.name];
      const readings = acked(side) - n0;
      const sorted = side.latencies.sort((a, b) => a - b);
      row[side.name] = {
        readings,
        cpuMicrosPerReading: (s1.cpu.user + s1.cpu.system - s0.cpu.user - s0.cpu.system) / readings,
        readingsPerAck: readings / side.ackFrames,
        ackP50Ms: percentile(sorted, 0.5),
        ackP99Ms: percentile(sorted, 0.99),
      };
      side.latencies = null;
    }
    row.ratio = row.B.cpuMicrosPerReading / row.A.cpuMicrosPerReading;
    windows.push(row);
    if (!asJson) {
      const cell = (s) =>
        `${s.cpuMicrosPerReading.toFixed(1)} µs (${s.readingsPerAck.toFixed(2)}/ACK, p99 ${s.ackP99Ms.toFixed(1)} ms)`;
      console.log(
        `  ${order.join('')} window ${w + 1}: A ${cell(row.A)}  B ${cell(row.B)}  B/A ${row.ratio.toFixed(3)}`,
      );
    }
  }
  stopped = true;
  for (const side of Object.values(sides)) {
    for (const d of side.devices) d.conn.close();
    side.server.child.send({ type: 'stop' });
  }
  await Promise.all(Object.values(sides).map((s) => new Promise((r) => s.server.child.once('exit', r))));
  return {
    order: order.join(''),
    medianRatio: median(windows.map((w) => w.ratio)),
    backoffs: { A: sides.A.backoffs, B: sides.B.backoffs },
    windows,
  };
}

const runs = [await runOnce(['A', 'B']), await runOnce(['B', 'A'])];
const combined = Math.sqrt(runs[0].medianRatio * runs[1].medianRatio);
const summary = { rate: RATE, devices: DEVICES, env: ENVS, combinedRatio: combined, runs };
if (asJson) console.log(JSON.stringify(summary, null, 2));
else {
  for (const r of runs) {
    const lower = r.windows.filter((w) => w.ratio < 1).length;
    console.log(
      `${r.order}: B/A median ${r.medianRatio.toFixed(3)}, B lower in ${lower} of ${r.windows.length} windows, backoffs A ${r.backoffs.A} B ${r.backoffs.B}`,
    );
  }
  console.log(`B/A combined (geometric mean of both orders): ${combined.toFixed(3)} at ${RATE} readings/s per hub`);
}
