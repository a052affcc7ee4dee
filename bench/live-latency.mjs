#!/usr/bin/env node
// Live latency benchmark: time from a device sending a reading to a live client receiving it, p50 and p99.
//   hub:  device --tendril.v1--> hub (decode, validate, spool commit = durable) --tendril.live.v1--> live client
//   bare: device --ws--> a bare `ws` relay that forwards each message at once --ws--> client (same frames, same rate)
// Beside them, the spool's own commit time (accept() to durable) at the same rate on the same disk, measured here
// with the hub's spool over SQLite in a temp dir. Goal (issue 13): hub p99 <= 2 x (bare p99 + spool commit p99).
// Device and live client share this process's clock; each reading's send time is kept by seq. The server runs in
// a child process pinned to core 0 (when taskset exists), this process on core 1.
// Reproduce: npx tsc -b hub && node bench/live-latency.mjs [--rate 200] [--seconds 8] [--runs 2] [--json]
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { encodeDeviceFrame, newDeltaContext, SUBPROTOCOL } from '../device-sdk/dist/index.js';
import { args, hasTaskset, opt } from './lib/common.mjs';
import { connectHubDevice } from './lib/hub-device.mjs';
import { connectRaw, maskedFrame } from './lib/raw-ws.mjs';

const here = fileURLToPath(import.meta.url);
const RATE = opt('rate', 200);
const SECONDS = opt('seconds', 8);
const WARMUP = opt('warmup', 1);
const RUNS = opt('runs', 2);
const asJson = args.includes('--json');
const METRICS = [
  { alias: 0, name: 'temperature', kind: 'f32', unit: 'C' },
  { alias: 1, name: 'humidity', kind: 'f32', unit: '%' },
  { alias: 2, name: 'pressure', kind: 'f32', unit: 'hPa' },
];

// ---------------------------------------------------------------- servers (child process)

async function serve(mode) {
  if (mode === 'hub') {
    const { createHub, listenHub, loadConfig } = await import('../hub/dist/index.js');
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tendril-bench-live-latency-'));
    const adminToken = `bench-admin-token-${process.pid}-0123456789abcdef0123456789`;
    const config = loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      HUB_DATA_DIR: dataDir,
      HUB_ADMIN_TOKEN: adminToken,
      HUB_LOG_LEVEL: 'warn',
    });
    const app = await createHub(config);
    // The hub registers the live plugin itself (app.ts); the live client authenticates with the admin token.
    await listenHub(app, config);
    process.send({ type: 'ready', port: app.server.address().port, adminToken });
    process.on('message', async (m) => {
      if (m.type === 'stop') {
        await app.close();
        fs.rmSync(dataDir, { recursive: true, force: true });
        process.exit(0);
      }
    });
  } else {
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      perMessageDeflate: false,
      handleProtocols: (p) => p.values().next().value ?? false,
    });
    const listeners = new Set();
    wss.on('connection', (ws, req) => {
      if (req.url === '/live') {
        listeners.add(ws);
        ws.on('close', () => listeners.delete(ws));
      } else {
        // The relay: each device message goes to every listener at once, as it came.
        ws.on('message', (data, isBinary) => {
          for (const l of listeners) l.send(data, { binary: isBinary });
        });
      }
    });
    await new Promise((r) => wss.once('listening', r));
    process.send({ type: 'ready', port: wss.address().port });
    process.on('message', (m) => {
      if (m.type === 'stop') {
        for (const c of wss.clients) c.terminate();
        wss.close(() => process.exit(0));
      }
    });
  }
}

// ---------------------------------------------------------------- driver

const pinned = hasTaskset();
const nowMs = () => performance.timeOrigin + performance.now();

function startServer(mode) {
  const cmd = pinned ? 'taskset' : process.execPath;
  const argv = pinned ? ['-c', '0', process.execPath, here, '--serve', mode] : [here, '--serve', mode];
  // The hub prints its first-start admin password on stdout: not part of the figures.
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const ready = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for the ${mode} server`)), 30_000);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`the ${mode} server exited with ${code} before it was ready`));
    });
    child.on('message', (m) => {
      if (m.type === 'ready') {
        clearTimeout(t);
        resolve(m);
      }
    });
  });
  return { child, ready };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(latencies) {
  const s = [...latencies].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] };
}

/** Sends RATE readings a second for WARMUP + SECONDS; returns the latencies of those after the warm-up. */
async function drive(send, received) {
  const sentAt = new Map();
  const latencies = [];
  const warmupUntil = WARMUP * RATE;
  received((seq, at) => {
    const t = sentAt.get(seq);
    if (t === undefined) return;
    sentAt.delete(seq);
    if (seq > warmupUntil) latencies.push(at - t);
  });
  const total = (WARMUP + SECONDS) * RATE;
  const started = nowMs();
  let seq = 0;
  await new Promise((resolve) => {
    const tick = () => {
      // Readings due by now, one frame each, so a late timer does not lower the rate.
      const due = Math.min(total, Math.floor(((nowMs() - started) * RATE) / 1000));
      while (seq < due) {
        seq++;
        sentAt.set(seq, nowMs());
        send(seq);
      }
      if (seq >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await new Promise((r) => setTimeout(r, 500)); // let the last readings arrive
  return { ...summary(latencies), lost: total - warmupUntil - latencies.length };
}

async function runHub() {
  const server = startServer('hub');
  const { port, adminToken } = await server.ready;
  const clock = Date.now();
  const device = await connectHubDevice({
    port,
    path: '/v1/device',
    adminToken,
    id: 'lat-1',
    clock,
    metrics: METRICS,
    onAck() {},
  });
  const live = new WebSocket(`ws://127.0.0.1:${port}/v1/live`, ['tendril.live.v1'], { perMessageDeflate: false });
  let onReading = () => undefined;
  await new Promise((resolve, reject) => {
    live.once('error', reject);
    live.on('message', (data) => {
      const at = nowMs();
      const m = JSON.parse(data);
      if (m.type === 'hello') live.send(JSON.stringify({ type: 'auth', token: adminToken }));
      else if (m.type === 'auth_ok')
        live.send(JSON.stringify({ type: 'subscribe', id: 1, stream: 'device', devices: ['lat-1'] }));
      else if (m.type === 'error') reject(new Error(`live channel: ${m.error.code} ${m.error.message}`));
      else if (m.type === 'event' && m.event.kind === 'snapshot' && m.event.last) resolve();
      else if (m.type === 'event' && m.event.kind === 'readings')
        for (const r of m.event.readings) onReading(r.seq, at);
      else if (m.type === 'events')
        // docs/live.md §3.6: readings of one turn in one message.
        for (const { event } of m.events)
          if (event.kind === 'readings') for (const r of event.readings) onReading(r.seq, at);
    });
  });
  const ctx = newDeltaContext(0, clock);
  const result = await drive(
    (seq) => {
      const payload = encodeDeviceFrame(
        {
          type: 'reading',
          seq,
          ts: Date.now(),
          values: [
            { alias: 0, kind: 'f32', value: 21.5 },
            { alias: 1, kind: 'f32', value: 40.25 },
            { alias: 2, kind: 'f32', value: 1013.25 },
          ],
        },
        ctx,
      );
      device.send(maskedFrame(payload));
    },
    (cb) => (onReading = cb),
  );
  live.terminate();
  device.close();
  server.child.send({ type: 'stop' });
  await new Promise((r) => server.child.once('exit', r));
  return result;
}

async function runBare() {
  const server = startServer('bare');
  const { port } = await server.ready;
  const device = await connectRaw({ port, path: '/device', protocol: SUBPROTOCOL });
  const live = new WebSocket(`ws://127.0.0.1:${port}/live`, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    live.once('open', resolve);
    live.once('error', reject);
  });
  // The relay keeps order: the n-th message received is the n-th sent.
  let received = 0;
  let onReading = () => undefined;
  live.on('message', () => onReading(++received, nowMs()));
  const ctx = newDeltaContext(0, Date.now());
  const result = await drive(
    (seq) => {
      const payload = encodeDeviceFrame(
        {
          type: 'reading',
          seq,
          ts: Date.now(),
          values: [
            { alias: 0, kind: 'f32', value: 21.5 },
            { alias: 1, kind: 'f32', value: 40.25 },
            { alias: 2, kind: 'f32', value: 1013.25 },
          ],
        },
        ctx,
      );
      device.send(maskedFrame(payload));
    },
    (cb) => (onReading = cb),
  );
  live.terminate();
  device.close();
  server.child.send({ type: 'stop' });
  await new Promise((r) => server.child.once('exit', r));
  return result;
}

/** The spool's commit time at the same rate: accept() of one reading until it is durable. */
async function runSpool() {
  const { createSpool } = await import('../hub/dist/spool/index.js');
  const { SqliteStore } = await import('../hub/dist/storage/sqlite-store.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tendril-bench-spool-commit-'));
  const store = new SqliteStore(dir);
  const spool = await createSpool({ dir: path.join(dir, 'spool'), store, maxBytes: 1 << 30 });
  let onDone = () => undefined;
  const result = await drive(
    (seq) => {
      const reading = {
        deviceId: 'lat-1',
        epoch: 1,
        seq,
        ts: Date.now(),
        values: [
          { metric: 'temperature', kind: 'f32', value: 21.5 },
          { metric: 'humidity', kind: 'f32', value: 40.25 },
          { metric: 'pressure', kind: 'f32', value: 1013.25 },
        ],
      };
      spool.accept([reading]).then(() => onDone(seq, nowMs()));
    },
    (cb) => (onDone = cb),
  );
  await spool.close();
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return result;
}

if (args.includes('--serve')) {
  await serve(args[args.indexOf('--serve') + 1]);
} else {
  if (pinned) execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });
  const runs = [];
  const round = (x) => Math.round(x * 100) / 100;
  for (let r = 0; r < RUNS; r++) {
    // Alternate the order so neither side always runs on a warmer machine.
    const run = {};
    for (const step of r % 2 === 0 ? ['bare', 'spool', 'hub'] : ['hub', 'spool', 'bare']) {
      run[step] = step === 'bare' ? await runBare() : step === 'hub' ? await runHub() : await runSpool();
    }
    const goal = 2 * (run.bare.p99 + run.spool.p99);
    runs.push({ run: r + 1, ...run, goalP99: goal, met: run.hub.p99 <= goal });
    if (!asJson) {
      const f = (s) =>
        `p50 ${round(s.p50)} ms, p99 ${round(s.p99)} ms (n ${s.n}${s.lost ? `, ${s.lost} not seen` : ''})`;
      console.log(
        `run ${r + 1} at ${RATE}/s: hub ${f(run.hub)}; bare relay ${f(run.bare)}; spool commit ${f(run.spool)}; goal p99 <= ${round(goal)} ms: ${run.hub.p99 <= goal ? 'met' : 'NOT met'}`,
      );
    }
  }
  if (asJson) console.log(JSON.stringify({ rate: RATE, seconds: SECONDS, pinned, runs }, null, 2));
}
