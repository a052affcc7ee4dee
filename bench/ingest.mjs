#!/usr/bin/env node
// Ingest benchmark: readings per CPU-second of the server process, the hub's full path (decode, validate,
// store in SQLite, ack) against a bare `ws` server that only counts the same frames, in the same run.
// The server runs pinned to core 0; this generator pins itself to core 1. Every frame goes out in its own
// TCP segment (each write waits for the previous write's callback; TCP_NODELAY).
// Frames are encoded once per device by the real SDK codec and masked once.
// Reproduce: npm run build && node bench/ingest.mjs [--devices 50] [--seconds 10] [--window 256] [--json]
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeDeviceFrame, newDeltaContext, SUBPROTOCOL } from '../device-sdk/dist/index.js';
import { connectRaw, maskedFrame } from './lib/raw-ws.mjs';
import { connectHubDevice } from './lib/hub-device.mjs';
import { args, hasTaskset, opt } from './lib/common.mjs';

const DEVICES = opt('devices', 50);
const SECONDS = opt('seconds', 10);
const WARMUP = opt('warmup', 2);
const WINDOW = opt('window', 256); // unacked readings in flight per device (hub run)
const asJson = args.includes('--json');
const here = (p) => fileURLToPath(new URL(p, import.meta.url));

const pinned = hasTaskset();
if (pinned) execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });

function startServer(script) {
  const cmd = pinned ? 'taskset' : process.execPath;
  const argv = pinned ? ['-c', '0', process.execPath, here(script)] : [here(script)];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = (type, timeoutMs = 30_000) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for '${type}' from ${script}`)), timeoutMs);
      const on = (m) => {
        if (m.type !== type) return;
        clearTimeout(t);
        child.off('message', on);
        resolve(m);
      };
      child.on('message', on);
      child.once('exit', (code) => reject(new Error(`${script} exited with ${code} while we waited for '${type}'`)));
    });
  return { child, next, sample: () => (child.send({ type: 'sample' }), next('sample')) };
}

const METRICS = [
  { alias: 0, name: 'temperature', kind: 'f32', unit: 'C', min: -40, max: 85 },
  { alias: 1, name: 'humidity', kind: 'f32', unit: '%', min: 0, max: 100 },
  { alias: 2, name: 'pressure', kind: 'f32', unit: 'hPa' },
];

/** The READING frame every device repeats: seq +1 and ts +1 ms each time, so the bytes never change. */
function readingPayload(clock) {
  const ctx = newDeltaContext(0, clock);
  return encodeDeviceFrame(
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
    ctx,
  );
}

async function run(target) {
  const server = startServer(target === 'hub' ? 'servers/hub.mjs' : 'servers/bare-ws.mjs');
  const ready = await server.next('ready');
  const clock = Date.now() - 10 * 60_000; // ts runs 1 ms per reading from 10 min ago: stays in range
  const frame = maskedFrame(readingPayload(clock));
  const devices = [];
  for (let i = 0; i < DEVICES; i++) {
    const dev = { conn: null, sent: 0, acked: 0, waiting: false, stopped: false };
    dev.conn =
      target === 'hub'
        ? await connectHubDevice({
            port: ready.port,
            path: ready.path,
            adminToken: ready.adminToken,
            id: `bench-${String(i).padStart(4, '0')}`,
            clock,
            metrics: METRICS,
            onAck(seq) {
              dev.acked = seq;
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
    if (dev.stopped) return;
    if (windowed && dev.sent - dev.acked >= WINDOW) {
      dev.waiting = true;
      return;
    }
    dev.sent++;
    dev.conn.send(frame, () => setImmediate(pump, dev));
  }
  for (const d of devices) pump(d);
  const count = () => devices.reduce((n, d) => n + (windowed ? d.acked : d.sent), 0);

  await new Promise((r) => setTimeout(r, WARMUP * 1000)); // warm-up period of the benchmark, not a sync
  const s0 = await server.sample();
  const c0 = windowed ? count() : s0.messages;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, SECONDS * 1000)); // measurement window
  const s1 = await server.sample();
  const c1 = windowed ? count() : s1.messages;
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const d of devices) {
    d.stopped = true;
    d.conn.close();
  }
  server.child.send({ type: 'stop' });
  await new Promise((r) => server.child.once('exit', r));
  const cpuSec = (s1.cpu.user + s1.cpu.system - s0.cpu.user - s0.cpu.system) / 1e6;
  const messages = c1 - c0;
  return {
    target,
    messages,
    wallSeconds: wall,
    cpuSeconds: cpuSec,
    perCpuSecond: messages / cpuSec,
    perWallSecond: messages / wall,
    rssMB: s1.rss / 2 ** 20,
  };
}

const bare = await run('bare-ws');
if (args.includes('--baseline-only')) {
  console.log(JSON.stringify(bare, null, 2));
  process.exit(0);
}
const hub = await run('hub');
const result = {
  devices: DEVICES,
  seconds: SECONDS,
  window: WINDOW,
  pinned,
  bare,
  hub,
  ratio: hub.perCpuSecond / bare.perCpuSecond,
};
if (asJson) console.log(JSON.stringify(result, null, 2));
else {
  console.log(
    `devices=${DEVICES} window=${WINDOW} measured ${SECONDS}s after ${WARMUP}s warm-up, server pinned to core 0: ${pinned}`,
  );
  console.log('| server | messages/CPU-second | messages/second | server CPU-seconds | RSS MB |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of [bare, hub]) {
    console.log(
      `| ${r.target === 'hub' ? 'hub (decode, validate, store, ack)' : 'bare ws (count only)'} | ${Math.round(r.perCpuSecond)} | ${Math.round(r.perWallSecond)} | ${r.cpuSeconds.toFixed(2)} | ${r.rssMB.toFixed(0)} |`,
    );
  }
  console.log(`ratio hub / bare ws (per CPU-second): ${result.ratio.toFixed(2)}x`);
}
