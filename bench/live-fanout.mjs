#!/usr/bin/env node
// Live fan-out benchmark: readings per CPU-second of the server process delivered to C live clients, the live
// channel (hub/dist/live: device events -> stream event serialised once -> each client's subscription -> ws)
// against two bare `ws` broadcast loops in the same run: `bare` sends each reading as its own message (one
// JSON.stringify and one UTF-8 encoding per reading, ws.send of those bytes to every client); `bare-batch` sends
// the readings of each tick as one `events` message (docs/live.md §3.6; serialised and encoded once, sent to
// every client), the strongest loop for what the hub now sends. Each client subscribes to the `device` stream of every device.
// The server runs in a child process pinned to core 0 (when taskset exists), the clients here on core 1.
// The rate is chosen so the clients keep up (no coalescing: every reading is delivered to every client; the
// run checks it).
// Reproduce: npx tsc -b hub && node bench/live-fanout.mjs [--clients 10,100] [--seconds 5] [--messages 40000] [--runs 2] [--json]
// Profile the server: add --server-flags=--cpu-prof,--cpu-prof-dir=/tmp/prof (one .cpuprofile per server process).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { args, hasTaskset, opt } from './lib/common.mjs';

const here = fileURLToPath(import.meta.url);
const DEVICES = opt('devices', 100);
const SECONDS = opt('seconds', 5);
const WARMUP = opt('warmup', 1.5);
/** Messages per second the server sends in total (readings/s x clients). */
const MESSAGES = opt('messages', 40_000);
const RUNS = opt('runs', 2);
const clientCounts = (args.includes('--clients') ? args[args.indexOf('--clients') + 1] : '10,100')
  .split(',')
  .map(Number);
const asJson = args.includes('--json');
const TICK_MS = 10;

function deviceId(i) {
  return `dev-${String(i).padStart(4, '0')}`;
}

// ---------------------------------------------------------------- server (child process)

async function serve(mode) {
  let emitReading;
  let close;
  let port;
  let emitted = 0;
  let sentMessages = () => 0;
  if (mode === 'live') {
    const { default: Fastify } = await import('fastify');
    const { default: fastifyWebsocket } = await import('@fastify/websocket');
    const { DeviceRegistry } = await import('../hub/dist/devices/registry.js');
    const { TypedEvents } = await import('../hub/dist/core/events.js');
    const { liveChannelPlugin, healthSource } = await import('../hub/dist/live/index.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tendril-bench-live-'));
    const registry = new DeviceRegistry(dir);
    for (let i = 0; i < DEVICES; i++) {
      const { device } = registry.create({ id: deviceId(i) }, Date.now());
      device.metrics = [
        { alias: 0, name: 'temperature', kind: 'f32', unit: 'C' },
        { alias: 1, name: 'humidity', kind: 'f32', unit: '%' },
        { alias: 2, name: 'pressure', kind: 'f32', unit: 'hPa' },
      ];
    }
    const events = new TypedEvents();
    const app = Fastify({ logger: false });
    await app.register(fastifyWebsocket, { options: { perMessageDeflate: false } });
    await app.register(liveChannelPlugin, {
      authenticate: () => ({ kind: 'user', name: 'bench', role: 'viewer' }),
      verifyToken: () => null,
      // Every bench client comes from 127.0.0.1.
      limits: { maxClientsPerAddress: 10_000 },
      sources: {
        registry,
        deviceEvents: events,
        health: healthSource({ store: { kind: 'none' }, sink: { accepting: true } }),
      },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = app.server.address().port;
    emitReading = (deviceId, seq, ts, values) =>
      events.emit('readings', {
        deviceId,
        epoch: 1,
        readings: [
          {
            deviceId,
            epoch: 1,
            seq,
            ts,
            values: [
              { metric: 'temperature', kind: 'f32', value: values[0] },
              { metric: 'humidity', kind: 'f32', value: values[1] },
              { metric: 'pressure', kind: 'f32', value: values[2] },
            ],
          },
        ],
      });
    sentMessages = () => [...app.live.clients].reduce((n, c) => n + c.stats.messagesSent, 0);
    close = async () => {
      await app.close();
      registry.close();
      fs.rmSync(dir, { recursive: true, force: true });
    };
  } else {
    const batched = mode === 'bare-batch';
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    await new Promise((r) => wss.once('listening', r));
    port = wss.address().port;
    let offset = 0;
    let bareSent = 0;
    // The batched bare loop: a tick's readings in one message, sent when the tick ends.
    let tick = [];
    const sendTick = () => {
      const data = Buffer.from(JSON.stringify({ type: 'events', id: 1, events: tick }));
      tick = [];
      for (const c of wss.clients) c.send(data, { binary: false });
      bareSent += wss.clients.size;
    };
    // The bare loop: serialise once, send to every client.
    emitReading = (deviceId, seq, ts, values) => {
      const event = {
        kind: 'readings',
        deviceId,
        readings: [{ seq, ts, values: { temperature: values[0], humidity: values[1], pressure: values[2] } }],
      };
      if (batched) {
        if (tick.length === 0) setImmediate(sendTick);
        tick.push({ offset: ++offset, event });
        return;
      }
      const text = JSON.stringify({ type: 'event', id: 1, offset: ++offset, event });
      // Encoded once too: the strongest bare loop, not one that pays UTF-8 encoding per client.
      const data = Buffer.from(text);
      for (const c of wss.clients) c.send(data, { binary: false });
      bareSent += wss.clients.size;
    };
    sentMessages = () => bareSent;
    close = async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
    };
  }
  let timer = null;
  process.on('message', async (m) => {
    if (m.type === 'start') {
      // m.perTick readings every TICK_MS, round robin over the devices.
      // Due readings from the elapsed time, so a late timer catches up instead of lowering the rate.
      let seq = 0;
      const started = performance.now();
      timer = setInterval(() => {
        const n = Math.floor(((performance.now() - started) * m.perSecond) / 1000) - seq;
        for (let k = 0; k < n; k++) {
          seq++;
          emitted++;
          emitReading(deviceId(seq % DEVICES), seq, 1_767_225_600_000 + seq, [20 + (seq % 10) / 4, 40.25, 1013.25]);
        }
      }, TICK_MS);
    }
    if (m.type === 'sample')
      process.send({
        type: 'sample',
        cpu: process.cpuUsage(),
        rss: process.memoryUsage().rss,
        emitted,
        sent: sentMessages(),
      });
    if (m.type === 'stop') {
      clearInterval(timer);
      await close();
      process.exit(0);
    }
  });
  process.send({ type: 'ready', port });
}

// ---------------------------------------------------------------- driver

const pinned = hasTaskset();

/** Node flags for the server process only, e.g. `--server-flags=--cpu-prof,--cpu-prof-dir=/tmp/prof` to profile it. */
const serverFlags = (args.find((a) => a.startsWith('--server-flags='))?.slice('--server-flags='.length) ?? '')
  .split(',')
  .filter(Boolean);

function startServer(mode) {
  const cmd = pinned ? 'taskset' : process.execPath;
  const node = [...serverFlags, here, '--serve', mode, '--devices', String(DEVICES)];
  const argv = pinned ? ['-c', '0', process.execPath, ...node] : node;
  const child = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = (type, timeoutMs = 30_000) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`timed out waiting for '${type}' from the ${mode} server`)),
        timeoutMs,
      );
      const on = (m) => {
        if (m.type !== type) return;
        clearTimeout(t);
        child.off('message', on);
        resolve(m);
      };
      child.on('message', on);
    });
  return { child, next, sample: () => (child.send({ type: 'sample' }), next('sample')) };
}

async function openClient(mode, port, stats) {
  const url = mode === 'live' ? `ws://127.0.0.1:${port}/v1/live` : `ws://127.0.0.1:${port}/`;
  const ws = new WebSocket(url, mode === 'live' ? ['tendril.live.v1'] : [], { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let subscribed = mode !== 'live';
  let resolveSub;
  const ready = new Promise((r) => (resolveSub = r));
  ws.on('message', (data) => {
    const m = JSON.parse(data);
    if (m.type === 'events') {
      for (const { event } of m.events) {
        if (event.kind !== 'readings') continue;
        stats.readings += event.readings.length;
        if (event.coalesced) stats.coalesced++;
      }
    } else if (m.type === 'event' && m.event.kind === 'readings') {
      stats.readings += m.event.readings.length;
      if (m.event.coalesced) stats.coalesced++;
    } else if (m.type === 'event' && m.event.kind === 'snapshot' && m.event.last) {
      subscribed = true;
      resolveSub();
    }
  });
  if (mode === 'live') {
    ws.send(
      JSON.stringify({
        type: 'subscribe',
        id: 1,
        stream: 'device',
        devices: Array.from({ length: DEVICES }, (_, i) => deviceId(i)),
      }),
    );
    await ready;
  }
  return { ws, subscribed };
}

async function run(mode, clients) {
  const server = startServer(mode);
  const { port } = await server.next('ready');
  const stats = { readings: 0, coalesced: 0 };
  const conns = [];
  for (let i = 0; i < clients; i++) conns.push(await openClient(mode, port, stats));
  const readingsPerSecond = MESSAGES / clients;
  server.child.send({ type: 'start', perSecond: readingsPerSecond });
  await new Promise((r) => setTimeout(r, WARMUP * 1000)); // warm-up period of the benchmark, not a sync
  const s0 = await server.sample();
  const r0 = stats.readings;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, SECONDS * 1000)); // measurement window
  const s1 = await server.sample();
  const r1 = stats.readings;
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  server.child.send({ type: 'stop' });
  await new Promise((r) => server.child.once('exit', r));
  for (const c of conns) c.ws.terminate();
  const cpuSeconds = (s1.cpu.user + s1.cpu.system - s0.cpu.user - s0.cpu.system) / 1e6;
  const delivered = r1 - r0;
  return {
    mode,
    clients,
    delivered,
    expected: Math.round(readingsPerSecond * wall * clients),
    coalescedMessages: stats.coalesced,
    emitted: s1.emitted - s0.emitted,
    serverSent: s1.sent - s0.sent,
    cpuSeconds,
    perCpuSecond: delivered / cpuSeconds,
    cpuShare: cpuSeconds / wall,
    rssMB: s1.rss / 2 ** 20,
  };
}

if (args.includes('--serve')) {
  await serve(args[args.indexOf('--serve') + 1]);
} else {
  if (pinned) execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });
  const results = [];
  for (const clients of clientCounts) {
    for (let r = 0; r < RUNS; r++) {
      // Alternate the order so no side always runs on a warmer machine.
      const order = r % 2 === 0 ? ['bare', 'bare-batch', 'live'] : ['live', 'bare-batch', 'bare'];
      const pair = {};
      for (const mode of order) pair[mode] = await run(mode, clients);
      const ratio = pair.live.perCpuSecond / pair.bare.perCpuSecond;
      const ratioBatched = pair.live.perCpuSecond / pair['bare-batch'].perCpuSecond;
      results.push({
        clients,
        run: r + 1,
        ratio,
        ratioBatched,
        bare: pair.bare,
        bareBatch: pair['bare-batch'],
        live: pair.live,
      });
      if (!asJson) {
        const f = (x) => Math.round(x).toLocaleString('en');
        const cpu = (x) => `CPU ${(x.cpuShare * 100).toFixed(0)}%`;
        console.log(
          `${clients} clients, run ${r + 1}: live ${f(pair.live.perCpuSecond)} readings/CPU-s (${pair.live.delivered}/${pair.live.expected} delivered, ` +
            `${pair.live.coalescedMessages} coalesced, ${pair.live.serverSent} messages, ${cpu(pair.live)}), bare ${f(pair.bare.perCpuSecond)} ` +
            `(${cpu(pair.bare)}): ratio ${ratio.toFixed(2)}x; bare batched ${f(pair['bare-batch'].perCpuSecond)} ` +
            `(${pair['bare-batch'].serverSent} messages, ${cpu(pair['bare-batch'])}): ratio ${ratioBatched.toFixed(2)}x`,
        );
      }
    }
  }
  if (asJson)
    console.log(
      JSON.stringify({ devices: DEVICES, seconds: SECONDS, messagesPerSecond: MESSAGES, pinned, results }, null, 2),
    );
}
