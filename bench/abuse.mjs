#!/usr/bin/env node
// Abuse benchmark (issue "Hardening"): the hub's memory and its good devices' ack latency while hostile
// clients run beside them, against the same good devices alone in the same run (the baseline).
//   good:     20 devices, 20 readings/s each, every reading timed from send to the ACK that covers it
//   attack:   10 authenticated devices that never read and send readings full of undeclared aliases,
//             500 silent upgrades (no HELLO) from 20 loopback source addresses (127.0.1.x, 25 each),
//             a wrong-token flood (HELLOs with a bad token, 20 at a time, from 127.0.2.x)
// Everything goes to 127.0.0.0/8 only, is bounded in count and time, and stops by itself.
// Reproduce: npm run build && node bench/abuse.mjs [--baseline 10] [--attack 15] [--json]
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { decodeHubFrame, encodeDeviceFrame, newDeltaContext, SUBPROTOCOL } from '../device-sdk/dist/index.js';
import { args, opt } from './lib/common.mjs';
import { connectHubDevice } from './lib/hub-device.mjs';
import { maskedFrame } from './lib/raw-ws.mjs';

const BASELINE_S = opt('baseline', 10);
const ATTACK_S = opt('attack', 15);
const GOOD = 20;
const GOOD_RATE = 20;
const DEAF = 10;
const SILENT = 500;
const FLOOD_CONCURRENCY = 20;
const FLOOD_MAX_ATTEMPTS = 5000;
const asJson = args.includes('--json');
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms)); // pacing of the load generator, not a sync

const METRICS = [
  { alias: 0, name: 'temperature', kind: 'f32', unit: 'C', min: -40, max: 85 },
  { alias: 1, name: 'humidity', kind: 'f32', unit: '%', min: 0, max: 100 },
];

function startHub() {
  // The hub with its default per-device rate limit (100 readings/s, bursts of 1000), as a user runs it.
  const env = { ...process.env, BENCH_HUB_ENV: JSON.stringify({ HUB_DEVICE_RATE: '100', HUB_DEVICE_BURST: '1000' }) };
  const child = spawn(process.execPath, [here('servers/hub.mjs')], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env,
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
    });
  return { child, next, sample: () => (child.send({ type: 'sample' }), next('sample')) };
}

/** A raw WebSocket upgrade from a chosen loopback source address; resolves with the socket once upgraded. */
function upgrade(port, localAddress) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress, noDelay: true });
    const t = setTimeout(() => {
      socket.destroy();
      reject(new Error('upgrade timed out'));
    }, 10_000);
    let head = Buffer.alloc(0);
    const onData = (c) => {
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(t);
      socket.off('data', onData);
      if (!head.subarray(0, 20).toString().includes(' 101 ')) {
        socket.destroy();
        return reject(new Error('upgrade refused'));
      }
      resolve({ socket, rest: head.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    const key = crypto.randomBytes(16).toString('base64');
    socket.write(
      `GET /v1/device HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${SUBPROTOCOL}\r\n\r\n`,
    );
  });
}

/** The first ERROR code the hub sends on a socket (or 'closed' when it closes first). */
function firstError(socket, rest) {
  return new Promise((resolve) => {
    let buf = rest;
    const check = () => {
      while (buf.length >= 2) {
        const len = buf[1] & 0x7f;
        if (len >= 126 || buf.length < 2 + len) return;
        const op = buf[0] & 0x0f;
        const payload = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (op === 0x2) {
          const f = decodeHubFrame(payload);
          if (f.type === 'error') return resolve(f.code);
        }
        if (op === 0x8) return resolve('closed');
      }
    };
    socket.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      check();
    });
    socket.on('close', () => resolve('closed'));
    socket.on('error', () => resolve('closed'));
    check();
  });
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const hub = startHub();
const ready = await hub.next('ready');
const port = ready.port;
const clock = Date.now() - 60_000;

// ---- good devices: paced readings, ack latency per reading ----
const latencies = { baseline: [], attack: [] };
let phase = 'warmup';
const good = [];
for (let i = 0; i < GOOD; i++) {
  const dev = { seq: 0, sentAt: new Map(), ctx: newDeltaContext(0, clock), conn: null };
  dev.conn = await connectHubDevice({
    port,
    path: '/v1/device',
    adminToken: ready.adminToken,
    id: `good-${i}`,
    clock,
    metrics: METRICS,
    onAck(seq) {
      const now = performance.now();
      for (const [s, t] of dev.sentAt) {
        if (s > seq) break;
        if (phase === 'baseline' || phase === 'attack') latencies[phase].push(now - t);
        dev.sentAt.delete(s);
      }
    },
  });
  good.push(dev);
}
const goodTimer = setInterval(() => {
  for (const d of good) {
    const seq = ++d.seq;
    const payload = encodeDeviceFrame(
      {
        type: 'reading',
        seq,
        ts: Date.now(),
        values: [
          { alias: 0, kind: 'f32', value: 21 },
          { alias: 1, kind: 'f32', value: 40 },
        ],
      },
      d.ctx,
    );
    d.sentAt.set(seq, performance.now());
    d.conn.send(maskedFrame(payload));
  }
}, 1000 / GOOD_RATE);

await sleep(2000); // warm-up
phase = 'baseline';
const before = await hub.sample();
await sleep(BASELINE_S * 1000);
const afterBaseline = await hub.sample();

// ---- the attack ----
phase = 'attack';
const stopAt = Date.now() + ATTACK_S * 1000;
const deaf = [];
for (let i = 0; i < DEAF; i++) {
  const conn = await connectHubDevice({
    port,
    path: '/v1/device',
    adminToken: ready.adminToken,
    id: `deaf-${i}`,
    clock,
    metrics: METRICS,
    onAck() {},
  });
  conn.socket.pause();
  deaf.push({ conn, seq: 0, ctx: newDeltaContext(0, clock) });
}
const badValues = Array.from({ length: 64 }, (_, i) => ({ alias: 100 + i, kind: 'f32', value: 1 }));
const deafTimer = setInterval(() => {
  for (const d of deaf) {
    for (let k = 0; k < 10; k++) {
      if (d.conn.socket.destroyed) break;
      d.conn.send(
        maskedFrame(encodeDeviceFrame({ type: 'reading', seq: ++d.seq, ts: Date.now(), values: badValues }, d.ctx)),
      );
    }
  }
}, 50);

const silent = { held: 0, refused: 0 };
const silentSockets = [];
const silentDone = Promise.all(
  Array.from({ length: 20 }, async (_, a) => {
    for (let k = 0; k < SILENT / 20; k++) {
      try {
        const { socket, rest } = await upgrade(port, `127.0.1.${a + 1}`);
        silentSockets.push(socket);
        // The hub refuses at once when the pre-HELLO pool is full; otherwise the socket just waits.
        const code = await Promise.race([firstError(socket, rest), sleep(50).then(() => 'held')]);
        if (code === 'held') silent.held++;
        else silent.refused++;
      } catch {
        silent.refused++;
      }
    }
  }),
);

const flood = { attempts: 0, AUTH_FAILED: 0, AUTH_THROTTLED: 0, other: 0 };
const badHello = (id) =>
  maskedFrame(
    encodeDeviceFrame(
      {
        type: 'hello',
        deviceId: id,
        token: 'wrong-token',
        firmware: 'x',
        sdk: 'x',
        epoch: 1,
        lastSeq: 0,
        clock,
        dropped: 0,
        metrics: [],
      },
      newDeltaContext(),
    ),
  );
const floodDone = Promise.all(
  Array.from({ length: FLOOD_CONCURRENCY }, async (_, w) => {
    while (Date.now() < stopAt && flood.attempts < FLOOD_MAX_ATTEMPTS) {
      flood.attempts++;
      try {
        const { socket, rest } = await upgrade(port, `127.0.2.${w + 1}`);
        const code = firstError(socket, rest);
        socket.write(badHello(`good-${w % GOOD}`));
        const got = await code;
        if (got in flood) flood[got]++;
        else flood.other++;
        socket.destroy();
      } catch {
        flood.other++;
      }
    }
  }),
);
await Promise.all([silentDone, floodDone]);
const remaining = stopAt - Date.now();
if (remaining > 0) await sleep(remaining);
const afterAttack = await hub.sample();
clearInterval(deafTimer);
clearInterval(goodTimer);
phase = 'done';
for (const s of silentSockets) s.destroy();
for (const d of deaf) d.conn.close();
for (const d of good) d.conn.close();
hub.child.send({ type: 'stop' });
await new Promise((r) => hub.child.once('exit', r));

const sum = (xs) => xs.slice().sort((a, b) => a - b);
const base = sum(latencies.baseline);
const att = sum(latencies.attack);
const result = {
  good: { devices: GOOD, readingsPerSecondEach: GOOD_RATE },
  baseline: {
    seconds: BASELINE_S,
    acked: base.length,
    p50Ms: quantile(base, 0.5),
    p99Ms: quantile(base, 0.99),
    rssMiB: afterBaseline.rss / 2 ** 20,
    heapMiB: afterBaseline.heapUsed / 2 ** 20,
  },
  attack: {
    seconds: ATTACK_S,
    acked: att.length,
    p50Ms: quantile(att, 0.5),
    p99Ms: quantile(att, 0.99),
    rssMiB: afterAttack.rss / 2 ** 20,
    heapMiB: afterAttack.heapUsed / 2 ** 20,
    nonReadingDevices: DEAF,
    badReadingsSent: deaf.reduce((n, d) => n + d.seq, 0),
    silentUpgrades: silent,
    wrongTokenFlood: flood,
  },
  startRssMiB: before.rss / 2 ** 20,
};
result.p99Ratio = result.attack.p99Ms / result.baseline.p99Ms;
if (asJson) console.log(JSON.stringify(result, null, 2));
else {
  const f = (n) => n.toFixed(1);
  console.log(
    `good devices: ${GOOD} x ${GOOD_RATE} readings/s; baseline ${BASELINE_S} s, then ${ATTACK_S} s beside the attack`,
  );
  console.log('| phase | acked readings | ack p50 ms | ack p99 ms | hub RSS MiB | hub heap MiB |');
  console.log('|---|---:|---:|---:|---:|---:|');
  console.log(
    `| good devices alone | ${base.length} | ${f(result.baseline.p50Ms)} | ${f(result.baseline.p99Ms)} | ${f(result.baseline.rssMiB)} | ${f(result.baseline.heapMiB)} |`,
  );
  console.log(
    `| beside the attack | ${att.length} | ${f(result.attack.p50Ms)} | ${f(result.attack.p99Ms)} | ${f(result.attack.rssMiB)} | ${f(result.attack.heapMiB)} |`,
  );
  console.log(`ack p99 beside the attack / alone: ${result.p99Ratio.toFixed(2)}x`);
  console.log(`non-reading devices: ${DEAF}, bad readings sent: ${result.attack.badReadingsSent}`);
  console.log(
    `silent upgrades: ${silent.held} held waiting for HELLO, ${silent.refused} refused (pre-HELLO pool: 1024 in all, 32 per address)`,
  );
  console.log(
    `wrong-token flood: ${flood.attempts} HELLOs: ${flood.AUTH_FAILED} AUTH_FAILED, ${flood.AUTH_THROTTLED} AUTH_THROTTLED (1 s each), ${flood.other} other`,
  );
}
