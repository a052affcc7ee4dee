#!/usr/bin/env node
// Bytes on the wire per reading: tendril.v1 binary frames against JSON over WebSocket for the same
// readings, WebSocket frame headers included (client->server frames are masked: +4 bytes).
// Reproduce: npm run build && node bench/bytes-per-reading.mjs [--json]
import { encodeDeviceFrame, newDeltaContext } from '../device-sdk/dist/index.js';

/** RFC 6455 header size for a masked client frame carrying `payload` bytes. */
function wsHeader(payload) {
  return 2 + 4 + (payload < 126 ? 0 : payload < 65536 ? 2 : 8);
}

// A deterministic stream: an environment sensor reporting once a second for an hour.
let state = 12345;
function rand() {
  state = (state * 1103515245 + 12345) % 2147483648;
  return state / 2147483648;
}
const start = Date.UTC(2026, 10, 22, 8, 0, 0);
const N = 3600;
const metrics = ['temperature', 'humidity', 'pressure'];
const readings = [];
for (let i = 0; i < N; i++) {
  const t = start + i * 1000 + Math.round(rand() * 20 - 10); // a little timer jitter
  // Two decimals, as sensor firmware typically reports; JSON then prints e.g. 21.37, not an f32 expansion.
  const round2 = (x) => Math.round(x * 100) / 100;
  const temp = round2(21 + 3 * Math.sin(i / 600) + rand() * 0.2);
  const hum = round2(45 - 5 * Math.sin(i / 600) + rand() * 0.5);
  const pres = round2(1013 + rand() * 0.8);
  readings.push({ seq: i + 1, ts: t, values: [temp, hum, pres] });
}

function tendrilLive() {
  const ctx = newDeltaContext(0, start);
  let bytes = 0;
  for (const r of readings) {
    const f = encodeDeviceFrame(
      { type: 'reading', seq: r.seq, ts: r.ts, values: r.values.map((v, alias) => ({ alias, kind: 'f32', value: v })) },
      ctx,
    );
    bytes += f.length + wsHeader(f.length);
  }
  return bytes;
}

function tendrilBatch(size) {
  const ctx = newDeltaContext(0, start);
  let bytes = 0;
  for (let i = 0; i < readings.length; i += size) {
    const chunk = readings.slice(i, i + size).map((r) => ({
      seq: r.seq,
      ts: r.ts,
      values: r.values.map((v, alias) => ({ alias, kind: 'f32', value: v })),
    }));
    const f = encodeDeviceFrame({ type: 'batch', readings: chunk }, ctx);
    bytes += f.length + wsHeader(f.length);
  }
  return bytes;
}

function json(shape) {
  let bytes = 0;
  for (const r of readings) {
    const text =
      shape === 'named'
        ? JSON.stringify({
            device: 'env-0001',
            seq: r.seq,
            ts: r.ts,
            values: Object.fromEntries(metrics.map((m, i) => [m, r.values[i]])),
          })
        : JSON.stringify({ s: r.seq, t: r.ts, v: r.values });
    const len = Buffer.byteLength(text);
    bytes += len + wsHeader(len);
  }
  return bytes;
}

const example = encodeDeviceFrame(
  {
    type: 'reading',
    seq: 42,
    ts: 1_700_000_001_000,
    values: [
      { alias: 0, kind: 'f32', value: 21.5 },
      { alias: 1, kind: 'f32', value: 40.25 },
      { alias: 2, kind: 'f32', value: 1013.25 },
    ],
  },
  newDeltaContext(41, 1_700_000_000_000),
);

const rows = [
  ['tendril.v1 READING (live, one frame per reading)', tendrilLive()],
  ['tendril.v1 BATCH of 60 (store-and-forward replay)', tendrilBatch(60)],
  ['JSON, named fields {device, seq, ts, values:{name: v}}', json('named')],
  ['JSON, terse {s, t, v:[...]}', json('terse')],
].map(([name, total]) => ({ name, perReading: total / N }));
const base = rows[0].perReading;

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ readings: N, example25: example.length + wsHeader(example.length), rows }, null, 2));
} else {
  console.log(
    `Worked example (3 x f32, timestamped): ${example.length} B frame + ${wsHeader(example.length)} B WebSocket header = ${example.length + wsHeader(example.length)} B`,
  );
  console.log(`Stream: ${N} readings of 3 f32 metrics at 1 Hz, WebSocket headers included\n`);
  console.log('| encoding | bytes/reading | vs tendril live |');
  console.log('|---|---:|---:|');
  for (const r of rows)
    console.log(`| ${r.name} | ${r.perReading.toFixed(2)} | ${(r.perReading / base).toFixed(2)}x |`);
}
