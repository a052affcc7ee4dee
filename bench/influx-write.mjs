#!/usr/bin/env node
// InfluxDB write benchmark: the InfluxDB store's write() against raw line-protocol batches of the same
// points to the same influxd, in the same run.
//
//   raw     pre-built line protocol (the store's own lines, built before the clock starts), POSTed to /write in
//           bodies of 5000 lines over a keep-alive connection: the best a client can do.
//   store   createInfluxStore().write() called with 20 000 readings at a time, as the spool's drainer calls it:
//           builds the lines with the client library's Point, splits into 5000-line requests, sends.
//
// Both run with 1 and with 2 requests in flight; runs alternate and each gets a fresh database; the
// median of --rounds is reported. A third figure, the store writing to a local HTTP server that answers 204
// to everything (a sink, not InfluxDB), is the client's own ceiling on one core. influxd is Debian's 1.6 started by the test harness (127.0.0.1, free
// port, temp dir, stopped by PID). Stops by itself.
// Reproduce: node bench/influx-write.mjs [--readings 200000] [--rounds 3] [--json]
import http from 'node:http';
import { args, cpuSecondsOf, loadTypeScript, opt, postLines } from './lib/common.mjs';

const READINGS = opt('readings', 200_000);
const ROUNDS = opt('rounds', 3);
const DEVICES = 100;
const LINES_PER_REQUEST = 5000;
const READINGS_PER_WRITE = opt('per-write', 20_000);
const asJson = args.includes('--json');

function makeReadings(n) {
  const t0 = Date.now() - 3_600_000;
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const device = i % DEVICES;
    const seq = Math.floor(i / DEVICES) + 1;
    out[i] = {
      deviceId: `bench-${String(device).padStart(4, '0')}`,
      epoch: 1000 + device,
      seq,
      ts: t0 + seq * 10,
      values: [
        { metric: 'temperature', kind: 'f32', value: 20 + (i % 97) / 8 },
        { metric: 'humidity', kind: 'f64', value: 40 + (i % 61) / 4 },
        { metric: 'pressure', kind: 'f64', value: 1013.25 - (i % 13) },
      ],
    };
  }
  return out;
}

const cpu = { raw1: [], store1: [], raw2: [], store2: [] };
/** Runs fn, recording influxd's and this process's CPU seconds per million points under `key`. */
async function measured(key, influx, fn) {
  const influxBefore = cpuSecondsOf(influx.pid);
  const selfBefore = process.cpuUsage();
  const seconds = await fn();
  const self = process.cpuUsage(selfBefore);
  cpu[key].push({ influxd: cpuSecondsOf(influx.pid) - influxBefore, client: (self.user + self.system) / 1e6 });
  return seconds;
}

async function runRaw(influx, db, bodies, inFlight) {
  await influx.query(`CREATE DATABASE "${db}"`);
  const agent = new http.Agent({ keepAlive: true });
  const url = `${influx.url}/write?db=${db}&precision=ns`;
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < bodies.length) await postLines(agent, url, bodies[next++]);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  return seconds;
}

async function runStore(modules, influx, db, readings, inFlight) {
  const store = modules.store.createInfluxStore({
    url: influx.url,
    db,
    batchLines: LINES_PER_REQUEST,
    concurrency: inFlight,
    retentionDays: null,
  });
  await store.init();
  const start = performance.now();
  for (let i = 0; i < readings.length; i += READINGS_PER_WRITE)
    await store.write(readings.slice(i, i + READINGS_PER_WRITE));
  const seconds = (performance.now() - start) / 1000;
  const stats = store.stats();
  await store.close();
  if (stats.deadLetteredLines > 0 || stats.requests !== Math.ceil(readings.length / LINES_PER_REQUEST)) {
    throw new Error(`store run was not clean: ${JSON.stringify(stats)}`);
  }
  return seconds;
}

/** The store's throughput against a local server that answers 204 at once: what the client side alone costs. */
async function runStoreAgainstSink(modules, readings) {
  const sink = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204, { 'x-influxdb-version': 'sink' }).end());
  });
  await new Promise((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const store = modules.store.createInfluxStore({
    url: `http://127.0.0.1:${sink.address().port}`,
    db: 'sink',
    batchLines: LINES_PER_REQUEST,
    concurrency: 2,
  });
  await store.init();
  const selfBefore = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < readings.length; i += READINGS_PER_WRITE)
    await store.write(readings.slice(i, i + READINGS_PER_WRITE));
  const seconds = (performance.now() - start) / 1000;
  const self = process.cpuUsage(selfBefore);
  await store.close();
  sink.close();
  return { seconds, cpu: (self.user + self.system) / 1e6 };
}

async function countPoints(influx, db) {
  const [r] = await influx.query('SELECT count("@seq") FROM "readings"', { db });
  return r?.series?.[0]?.values?.[0]?.[1] ?? 0;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const modules = await loadTypeScript(
  {
    harness: 'test/support/influxdb.ts',
    store: 'hub/src/storage/influx-store.ts',
    schema: 'hub/src/storage/influx-schema.ts',
  },
  'bench-influx',
);
const influx = await modules.harness.startInfluxDB({ db: 'bench' });
const watchdog = setTimeout(() => {
  console.error('influx-write benchmark: gave up after 10 minutes');
  process.exit(2);
}, 600_000);
try {
  const readings = makeReadings(READINGS);
  const lines = readings.map((r) => modules.schema.readingToLine(r, 'readings').line);
  const bodies = [];
  for (let i = 0; i < lines.length; i += LINES_PER_REQUEST)
    bodies.push(lines.slice(i, i + LINES_PER_REQUEST).join('\n'));
  const bytesPerLine = bodies.reduce((n, b) => n + Buffer.byteLength(b), 0) / lines.length;

  // Warm-up (JIT, influxd shard creation) on a throw-away database.
  await runRaw(influx, 'warmup_raw', bodies.slice(0, 4), 1);
  await runStore(modules, influx, 'warmup_store', readings.slice(0, 20_000), 1);

  const times = { raw1: [], store1: [], raw2: [], store2: [] };
  const sinkRuns = [];
  let dbn = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const inFlight of [1, 2]) {
      const rawDb = `raw_${++dbn}`;
      const storeDb = `store_${dbn}`;
      times[`raw${inFlight}`].push(
        await measured(`raw${inFlight}`, influx, () => runRaw(influx, rawDb, bodies, inFlight)),
      );
      times[`store${inFlight}`].push(
        await measured(`store${inFlight}`, influx, () => runStore(modules, influx, storeDb, readings, inFlight)),
      );
      const [rawCount, storeCount] = [await countPoints(influx, rawDb), await countPoints(influx, storeDb)];
      if (rawCount !== READINGS || storeCount !== READINGS)
        throw new Error(`stored ${rawCount} (raw) and ${storeCount} (store) points, expected ${READINGS}`);
      await influx.query(`DROP DATABASE "${rawDb}"`);
      await influx.query(`DROP DATABASE "${storeDb}"`);
    }
    sinkRuns.push(await runStoreAgainstSink(modules, readings));
  }
  const rate = (s) => Math.round(READINGS / s);
  const result = {
    readings: READINGS,
    rounds: ROUNDS,
    linesPerRequest: LINES_PER_REQUEST,
    bytesPerLine: Math.round(bytesPerLine),
    influxd: 'Debian influxdb 1.6.7',
    pointsPerSecond: {
      raw1: rate(median(times.raw1)),
      store1: rate(median(times.store1)),
      raw2: rate(median(times.raw2)),
      store2: rate(median(times.store2)),
    },
  };
  // CPU seconds per million points (median), influxd and this process: shows where the time goes on a shared machine.
  result.cpuSecondsPerMillionPoints = Object.fromEntries(
    Object.entries(cpu).map(([k, v]) => [
      k,
      {
        influxd: +((median(v.map((c) => c.influxd)) * 1e6) / READINGS).toFixed(2),
        client: +((median(v.map((c) => c.client)) * 1e6) / READINGS).toFixed(2),
      },
    ]),
  );
  result.storeAgainst204Sink = {
    pointsPerSecond: rate(median(sinkRuns.map((r) => r.seconds))),
    clientCpuSecondsPerMillionPoints: +((median(sinkRuns.map((r) => r.cpu)) * 1e6) / READINGS).toFixed(2),
  };
  result.ratio = {
    store1VsRaw1: +(result.pointsPerSecond.store1 / result.pointsPerSecond.raw1).toFixed(2),
    store2VsRaw2: +(result.pointsPerSecond.store2 / result.pointsPerSecond.raw2).toFixed(2),
    store2VsRaw1: +(result.pointsPerSecond.store2 / result.pointsPerSecond.raw1).toFixed(2),
  };
  if (asJson) {
    console.log(JSON.stringify(result));
  } else {
    const p = result.pointsPerSecond;
    console.log(
      `InfluxDB writes, ${READINGS} readings (3 fields + @seq/@epoch, ~${result.bytesPerLine} B/line), ${LINES_PER_REQUEST}-line requests, median of ${ROUNDS}`,
    );
    console.log(`  in flight  raw points/s  store points/s  store/raw`);
    console.log(
      `  1          ${String(p.raw1).padStart(12)}  ${String(p.store1).padStart(14)}  ${result.ratio.store1VsRaw1}`,
    );
    console.log(
      `  2          ${String(p.raw2).padStart(12)}  ${String(p.store2).padStart(14)}  ${result.ratio.store2VsRaw2}`,
    );
    console.log(`  store (2 in flight, the default) against raw with 1 in flight: ${result.ratio.store2VsRaw1}`);
    console.log(
      `  store against a 204 sink (client side only): ${result.storeAgainst204Sink.pointsPerSecond} points/s, ${result.storeAgainst204Sink.clientCpuSecondsPerMillionPoints} CPU s per million points`,
    );
    const c = result.cpuSecondsPerMillionPoints;
    console.log(
      `  CPU s per million points (influxd / client): raw1 ${c.raw1.influxd}/${c.raw1.client}, store1 ${c.store1.influxd}/${c.store1.client}, raw2 ${c.raw2.influxd}/${c.raw2.client}, store2 ${c.store2.influxd}/${c.store2.client}`,
    );
  }
} finally {
  clearTimeout(watchdog);
  await influx.stop();
  modules.cleanup();
}
