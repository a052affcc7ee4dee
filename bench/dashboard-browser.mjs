#!/usr/bin/env node
/**
 * Browser benchmark of the dashboard (issue 13) in Debian's Chromium (playwright-core).
 *
 * The page is the built dashboard (dashboard/dist, `npm run build` first) served by a small server in this
 * process that also plays the hub: a FAKE LIVE FEED speaking tendril.live.v1 (docs/live.md) and the few HTTP
 * routes the page asks for (/api/v1/me, history, commands). The fake feed is what lets one machine put 10 000
 * devices reporting once a second in front of a page; the hub's own fan-out is measured by its own bench.
 *
 *   1. Fleet: 10 000 devices, each sending a new value once a second (10 000 `values` events per second, 500
 *      every 50 ms), while the list is scrolled. The feed sends what the hub sends: the events of one turn as
 *      `events` messages of at most 64 KiB (docs/live.md §3.6), here two messages per 50 ms; `--feed single`
 *      sends one message per event instead (the live channel before batches). Reports main-thread long tasks (PerformanceObserver
 *      'longtask': > 50 ms), the app's work per frame (apply + render, from the page's frame stats) and the
 *      interval between animation frames (smoothness of scrolling).
 *   2. Device chart: one device with 24 h of history at about one bucket per pixel, streaming 20 readings/s.
 *      Reports the app's work per frame (goal < 16 ms) and long tasks.
 *   Baselines, same run and browser: the frame intervals of a blank page, and of a page that receives the same
 *   fleet feed and only parses each message (what the feed costs the browser without the app), and the same
 *   with one message per event (what 10 000 messages a second cost it).
 *
 * Flags: --seconds N (each phase, default 15), --devices N (default 10000), --rate N (readings/s of the
 * chart, default 20), --part-bytes N (snapshot part size, default the hub's 65 536), --trace (a Chrome trace of the fleet phases: each long task broken down by the self time of
 * what ran inside it, bench/cdp-attribution.mjs; tasks of another renderer, such as a browser-internal page, are
 * marked and not counted), --profile (a V8 CPU profile of the fleet's load, written to
 * test-results/dashboard-load.cpuprofile; with --trace each long task of the load is broken down by function),
 * --dist DIR (another build, e.g. `vite build --minify false` for function names). Every phase also reports the main thread's script, style and
 * layout time and the JS heap (CDP Performance.getMetrics). Prints a JSON summary last.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { metrics, metricsDelta, profile, profileSelfTimes, traceLongTasks } from './cdp-attribution.mjs';
import { WebSocketServer } from 'ws';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SECONDS = opt('seconds', 15);
const DEVICES = opt('devices', 10_000);
const CHART_RATE = opt('rate', 20);
// The hub's default snapshotPartBytes (hub/src/live/protocol.ts).
const PART_BYTES = opt('part-bytes', 65_536);
// --trace: record a Chrome trace of each fleet phase and break every long task down by what ran inside it.
const TRACE = args.includes('--trace');
// --feed single: one WebSocket message per event, as the hub sent before batches (docs/live.md §3.6).
const FEED = args.includes('--feed') ? args[args.indexOf('--feed') + 1] : 'batched';
// The hub's default batchBytes (hub/src/live/protocol.ts).
const BATCH_BYTES = 65_536;
// --profile: a V8 CPU profile of the fleet's load; with --trace, each long task of the load broken down by function.
const PROFILE = args.includes('--profile');
// --dist DIR: another build of the dashboard (e.g. `vite build --minify false --outDir DIR` for function names).
const dist = args.includes('--dist')
  ? `${args[args.indexOf('--dist') + 1]}/`
  : fileURLToPath(new URL('../dashboard/dist/', import.meta.url));
if (!existsSync(join(dist, 'index.html'))) {
  console.error('dashboard/dist is missing: run `npm run build` first');
  process.exit(2);
}

// ---- the fake hub ----

const MODELS = ['env-sensor', 'power-meter', 'gps-tracker', 'door-motion'];
const METRICS = [
  { name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
  { name: 'humidity', kind: 'f32', unit: '%', min: 0, max: 100 },
  { name: 'battery', kind: 'f32', unit: '%', min: 0, max: 100 },
];
const id = (i) => `dev-${String(i).padStart(5, '0')}`;
const started = Date.now();
function device(i) {
  return {
    id: id(i),
    name: `Device ${i}`,
    model: MODELS[i % MODELS.length],
    labels: { room: `room-${i % 40}`, floor: String(i % 5) },
    disabled: false,
    transport: i % 7 === 0 ? 'mqtt' : 'ws',
    presence:
      i % 50 === 0
        ? { state: 'offline', reason: 'HEARTBEAT_LOST', since: started - 60_000 }
        : { state: 'online', reason: null, since: started - i * 10 },
    metrics: METRICS,
    latest: {
      temperature: { ts: started, value: 20 + (i % 10) },
      humidity: { ts: started, value: 40 },
      battery: { ts: started, value: 90 },
    },
    rejected: i % 97 === 0 ? 3 : 0,
    dropped: 0,
  };
}
const wave = (t) => 20 + 5 * Math.sin(t / 600_000) + Math.sin(t / 7_000);

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const json = (o) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(o));
  };
  if (url.pathname === '/api/v1/me')
    return json({ user: { name: 'bench', role: 'operator', mustChangePassword: false } });
  let m = /^\/api\/v1\/devices\/([^/]+)\/series\/([^/]+)$/.exec(url.pathname);
  if (m) {
    const from = Number(url.searchParams.get('from'));
    const to = Number(url.searchParams.get('to'));
    const step = Number(url.searchParams.get('step'));
    const agg = url.searchParams.get('agg');
    const points = [];
    for (let t = from; t < to; t += step) {
      const v = wave(t);
      points.push({ ts: t, value: agg === 'min' ? v - 1.5 : agg === 'max' ? v + 1.5 : v });
    }
    return json({ stepMs: step, from, to, points });
  }
  m = /^\/api\/v1\/devices\/([^/]+)\/commands$/.exec(url.pathname);
  if (m) return json({ commands: [], nextBefore: null });
  m = /^\/api\/v1\/devices\/([^/]+)$/.exec(url.pathname);
  if (m) return json(device(Number(m[1].slice(4))));
  if (url.pathname === '/api/v1/devices')
    return json({ devices: Array.from({ length: DEVICES }, (_, i) => device(i)) });
  if (url.pathname === '/sink') {
    // Baseline: the same feed into a page that only parses each message (no app, nothing drawn).
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(`<!doctype html><title>sink</title><body><script>
      let n = 0;
      const ws = new WebSocket('ws://' + location.host + '/v1/live' + location.search, 'tendril.live.v1');
      ws.onmessage = (e) => { const m = JSON.parse(e.data); n++; if (m.type === 'hello') ws.send(JSON.stringify({ type: 'subscribe', id: 1, stream: 'fleet' })); };
      window.__count = () => n;
    </script></body>`);
  }
  if (url.pathname === '/blank') {
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end('<!doctype html><title>blank</title><body></body>');
  }
  let file = normalize(join(dist, url.pathname));
  if (!file.startsWith(dist) || !existsSync(file) || url.pathname === '/') file = join(dist, 'index.html');
  else if (!extname(file)) file = join(dist, 'index.html');
  res.writeHead(200, {
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    'content-security-policy': CSP,
  });
  res.end(readFileSync(file));
});

const wss = new WebSocketServer({
  server,
  path: '/v1/live',
  handleProtocols: () => 'tendril.live.v1',
  perMessageDeflate: false,
});
let offset = 1;
wss.on('connection', (ws, req) => {
  const send = (o) => ws.send(JSON.stringify(o));
  const feed = new URL(req.url, 'http://x').searchParams.get('feed') ?? FEED;
  /** Sends a turn's events of one subscription as the hub does: `events` messages under BATCH_BYTES (§3.6). */
  const sendTurn = (sid, items) => {
    if (feed === 'single') {
      for (const it of items) send({ type: 'event', id: sid, offset: it.offset, event: it.event });
      return;
    }
    let batch = [];
    let size = 40;
    const out = () => {
      if (batch.length === 1) send({ type: 'event', id: sid, offset: batch[0].offset, event: batch[0].event });
      else if (batch.length > 1) send({ type: 'events', id: sid, events: batch });
      batch = [];
      size = 40;
    };
    for (const it of items) {
      const bytes = JSON.stringify(it).length + 1;
      if (size + bytes > BATCH_BYTES) out();
      batch.push(it);
      size += bytes;
    }
    out();
  };
  const timers = [];
  send({
    type: 'hello',
    protocol: 'tendril.live.v1',
    auth: 'ok',
    principal: { kind: 'user', name: 'bench', role: 'operator' },
    serverTime: Date.now(),
    limits: {},
  });
  ws.on('message', (raw) => {
    const msg = JSON.parse(String(raw));
    if (msg.type === 'ping') return send({ type: 'result', id: msg.id, result: { serverTime: Date.now() } });
    if (msg.type !== 'subscribe') return send({ type: 'result', id: msg.id, result: {} });
    const sid = msg.id;
    send({ type: 'result', id: sid, result: { epoch: 'bench', offset, recovered: false } });
    if (msg.stream === 'fleet') {
      // Snapshot in parts under PART_BYTES like the hub's (§5.4.2), then every device once a second, in 20
      // batches a second.
      const chunks = [[]];
      let size = 0;
      for (let i = 0; i < DEVICES; i++) {
        const d = device(i);
        const bytes = JSON.stringify(d).length + 1;
        if (size + bytes > PART_BYTES && chunks.at(-1).length > 0) {
          chunks.push([]);
          size = 0;
        }
        chunks.at(-1).push(d);
        size += bytes;
      }
      const parts = chunks.length;
      for (const [p, devices] of chunks.entries()) {
        const last = p === parts - 1;
        send({
          type: 'event',
          id: sid,
          offset,
          event: { kind: 'snapshot', part: p, parts, last, gap: false, devices },
        });
      }
      let next = 0;
      const perBatch = Math.ceil(DEVICES / 20);
      timers.push(
        setInterval(() => {
          const now = Date.now();
          const items = [];
          for (let k = 0; k < perBatch; k++) {
            const i = next++ % DEVICES;
            items.push({
              offset: ++offset,
              event: {
                kind: 'values',
                deviceId: id(i),
                latest: {
                  temperature: { ts: now, value: wave(now) + (i % 10) },
                  battery: { ts: now, value: 90 - (now % 1000) / 100 },
                },
              },
            });
          }
          sendTurn(sid, items);
        }, 50),
      );
    } else if (msg.stream === 'device') {
      send({
        type: 'event',
        id: sid,
        offset,
        event: {
          kind: 'snapshot',
          part: 0,
          parts: 1,
          gap: false,
          devices: msg.devices.map((d) => device(Number(d.slice(4)))),
        },
      });
      let seq = 0;
      timers.push(
        setInterval(() => {
          const now = Date.now();
          seq++;
          send({
            type: 'event',
            id: sid,
            offset: ++offset,
            event: {
              kind: 'readings',
              deviceId: msg.devices[0],
              readings: [
                {
                  seq,
                  ts: now,
                  values: { temperature: wave(now) + Math.random(), humidity: 40 + Math.random(), battery: 90 },
                },
              ],
            },
          });
        }, 1000 / CHART_RATE),
      );
    } else {
      send({
        type: 'event',
        id: sid,
        offset,
        event: { kind: 'snapshot', part: 0, parts: 1, gap: false, commands: [], health: null },
      });
    }
  });
  ws.on('close', () => timers.forEach(clearInterval));
});

await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

// ---- the browser ----

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });

const OBSERVE = () => {
  window.__long = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__long.push({ at: e.startTime, ms: e.duration });
  }).observe({ type: 'longtask', buffered: true });
  window.__raf = [];
  let last = performance.now();
  const loop = (t) => {
    window.__raf.push(t - last);
    last = t;
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
};

const pct = (xs, p) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round = (x) => Math.round(x * 100) / 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function measure(page, seconds, during) {
  await page.evaluate(() => {
    window.__long = window.__long.filter(() => false);
    window.__raf = [];
    window.__tendril?.frames.stats.reset();
  });
  const stop = Date.now() + seconds * 1000;
  while (Date.now() < stop) await during?.();
  return page.evaluate(() => ({
    long: window.__long,
    raf: window.__raf.slice(1),
    frames: window.__tendril ? window.__tendril.frames.stats.last() : [],
    frameCount: window.__tendril ? window.__tendril.frames.stats.count : 0,
  }));
}

function summary(r) {
  return {
    longTasks: r.long.length,
    longestTaskMs: round(Math.max(0, ...r.long.map((l) => l.ms))),
    frameWorkMs: {
      p50: round(pct(r.frames, 50)),
      p95: round(pct(r.frames, 95)),
      p99: round(pct(r.frames, 99)),
      max: round(Math.max(0, ...r.frames)),
      frames: r.frameCount,
    },
    rafIntervalMs: {
      p50: round(pct(r.raf, 50)),
      p95: round(pct(r.raf, 95)),
      p99: round(pct(r.raf, 99)),
      max: round(Math.max(0, ...r.raf)),
    },
  };
}

// Baseline: a blank page's animation frames in the same browser.
const blank = await context.newPage();
await blank.goto(`${base}/blank`);
await blank.evaluate(OBSERVE);
await sleep(500);
const baseline = summary(await measure(blank, Math.min(5, SECONDS)));
await blank.close();

// Baseline 2: the fleet feed into a page that only parses it.
const sink = await context.newPage();
await sink.addInitScript(OBSERVE);
await sink.goto(`${base}/sink`);
await sleep(3000);
const sinkRun = summary(await measure(sink, SECONDS));
await sink.close();
// Baseline 3: the same, one message per event (what the live channel sent before batches).
const sinkSingle = await context.newPage();
await sinkSingle.addInitScript(OBSERVE);
await sinkSingle.goto(`${base}/sink?feed=single`);
await sleep(3000);
const sinkSingleRun = summary(await measure(sinkSingle, SECONDS));
await sinkSingle.close();

// 1. Fleet
const page = await context.newPage();
const cdp = await context.newCDPSession(page);
await cdp.send('Performance.enable');
await page.addInitScript(OBSERVE);
/** A phase with its main-thread metrics and, with --trace, its long tasks attributed. */
async function phase(run) {
  let main;
  const measured = async () => {
    const before = await metrics(cdp);
    const r = await run();
    main = metricsDelta(before, await metrics(cdp));
    return r;
  };
  const { result, longTasks } = TRACE ? await traceLongTasks(cdp, measured) : { result: await measured() };
  return { result, main, ...(longTasks ? { traced: longTasks } : {}) };
}
const loadStart = Date.now();
let loadProfile = null;
const load = await phase(async () => {
  const run = async () => {
    await page.goto(`${base}/`);
    await page.waitForFunction(
      (n) => document.querySelector('[data-testid=fleet-summary]')?.textContent?.includes(`${n} devices`),
      DEVICES,
      { timeout: 60_000 },
    );
  };
  if (!PROFILE) return run();
  loadProfile = (await profile(cdp, run)).profile;
});
if (loadProfile) {
  // Opens in Chromium's DevTools (Performance panel) for the whole picture.
  mkdirSync(fileURLToPath(new URL('../test-results/', import.meta.url)), { recursive: true });
  const out = fileURLToPath(new URL('../test-results/dashboard-load.cpuprofile', import.meta.url));
  writeFileSync(out, JSON.stringify(loadProfile));
}
const fleetLoadMs = Date.now() - loadStart;
const loadLong = await page.evaluate(() => window.__long.slice());
await sleep(1000);
const stillPhase = await phase(() => measure(page, Math.min(SECONDS, 8), () => sleep(200)));
const still = { ...summary(stillPhase.result), main: stillPhase.main, traced: stillPhase.traced };
const list = page.locator('[data-testid=fleet-list] > div').first();
let dir = 1;
const scrollPhase = await phase(() =>
  measure(page, SECONDS, async () => {
    // Scroll the virtual list steadily, back and forth (a person flicking through the fleet).
    await list.evaluate((el, d) => el.scrollBy(0, d * 400), dir);
    const top = await list.evaluate((el) => el.scrollTop);
    if (top > 200_000 || top <= 0) dir = -dir;
    await sleep(50);
  }),
);
const fleet = {
  ...summary(scrollPhase.result),
  main: scrollPhase.main,
  traced: scrollPhase.traced,
  still,
  loadMs: fleetLoadMs,
  loadLongTasks: loadLong.length,
  loadLongestTaskMs: round(Math.max(0, ...loadLong.map((l) => l.ms))),
  loadMain: load.main,
  loadTraced: load.traced,
};
await page
  .screenshot({ path: fileURLToPath(new URL('../test-results/bench-dashboard-fleet.png', import.meta.url)) })
  .catch(() => {});

// 2. A device chart over 24 h with 20 readings/s
await page.goto(`${base}/devices/${id(1)}?range=24h`);
await page.waitForFunction(
  () => Number(document.querySelector('figure[data-metric=temperature]')?.getAttribute('data-buckets')) > 100,
  undefined,
  { timeout: 30_000 },
);
const buckets = Number(await page.getAttribute('figure[data-metric=temperature]', 'data-buckets'));
await sleep(1000);
const chart = {
  ...summary(await measure(page, SECONDS, () => sleep(200))),
  bucketsPerChart: buckets,
  charts: await page.locator('figure[data-metric]').count(),
};
await page
  .screenshot({ path: fileURLToPath(new URL('../test-results/bench-dashboard-device.png', import.meta.url)) })
  .catch(() => {});

await browser.close();
wss.close();
server.close();

const cpuLong = (list) => (list ?? []).filter((t) => t.cpuMs !== null && t.cpuMs > 50 && !t.otherRenderer);
const result = {
  bench: 'dashboard-browser',
  feed: `fake live feed (tendril.live.v1) in the bench process, ${FEED === 'single' ? 'one message per event' : 'events batched per turn (docs/live.md §3.6)'}`,
  devices: DEVICES,
  valuesPerSecond: DEVICES,
  chartReadingsPerSecond: CHART_RATE,
  seconds: SECONDS,
  baseline: {
    blankRafIntervalMs: baseline.rafIntervalMs,
    sinkRafIntervalMs: sinkRun.rafIntervalMs,
    sinkLongTasks: sinkRun.longTasks,
    sinkLongestTaskMs: sinkRun.longestTaskMs,
    sinkOneMessagePerEventRafIntervalMs: sinkSingleRun.rafIntervalMs,
    sinkOneMessagePerEventLongTasks: sinkSingleRun.longTasks,
  },
  fleet: {
    ...fleet,
    rafP95VsBlank: round(fleet.rafIntervalMs.p95 / baseline.rafIntervalMs.p95),
    rafP95VsSink: round(fleet.rafIntervalMs.p95 / sinkRun.rafIntervalMs.p95),
  },
  chart: { ...chart, rafP95VsBlank: round(chart.rafIntervalMs.p95 / baseline.rafIntervalMs.p95) },
  goals: {
    fleetNoTaskOver50ms: fleet.longTasks === 0,
    // With --trace: no task over 50 ms of the main thread's own CPU time (starvation by other processes aside).
    ...(TRACE ? { fleetNoTaskOver50msOnCpu: cpuLong([...fleet.traced, ...still.traced]).length === 0 } : {}),
    chartFrameWorkUnder16ms: chart.frameWorkMs.max < 16,
  },
};
console.log(
  `fleet: ${DEVICES} devices, ${DEVICES} values/s, scrolling: long tasks ${fleet.longTasks} (longest ${fleet.longestTaskMs} ms); frame work p50 ${fleet.frameWorkMs.p50} / p99 ${fleet.frameWorkMs.p99} / max ${fleet.frameWorkMs.max} ms; frame interval p95 ${fleet.rafIntervalMs.p95} ms (blank page ${baseline.rafIntervalMs.p95} ms)`,
);
console.log(
  `fleet, not scrolling: long tasks ${still.longTasks} (longest ${still.longestTaskMs} ms); frame work p99 ${still.frameWorkMs.p99} / max ${still.frameWorkMs.max} ms; frame interval p95 ${still.rafIntervalMs.p95} ms`,
);
console.log(
  `baseline, same feed into a page that only parses it: long tasks ${sinkRun.longTasks} (longest ${sinkRun.longestTaskMs} ms); frame interval p95 ${sinkRun.rafIntervalMs.p95} ms`,
);
console.log(
  `baseline, one message per event into a page that only parses it: long tasks ${sinkSingleRun.longTasks} (longest ${sinkSingleRun.longestTaskMs} ms); frame interval p95 ${sinkSingleRun.rafIntervalMs.p95} ms`,
);
console.log(
  `feed: ${FEED === 'single' ? 'one message per event (--feed single)' : 'events batched per turn, as the hub sends'}`,
);
console.log(
  `fleet load: ${fleet.loadMs} ms to show ${DEVICES} devices; long tasks while loading ${fleet.loadLongTasks} (longest ${fleet.loadLongestTaskMs} ms)`,
);
console.log(
  `chart: 24 h (${buckets} buckets per chart, ${chart.charts} charts), ${CHART_RATE} readings/s: frame work p50 ${chart.frameWorkMs.p50} / p99 ${chart.frameWorkMs.p99} / max ${chart.frameWorkMs.max} ms; long tasks ${chart.longTasks}; frame interval p95 ${chart.rafIntervalMs.p95} ms`,
);
const mainLine = (m) =>
  `${m.wallMs} ms: tasks ${m.taskMs} ms, script ${m.scriptMs} ms, style ${m.styleMs} ms (${m.styleRecalcs}), layout ${m.layoutMs} ms (${m.layouts}); heap ${m.heapUsedMB}/${m.heapTotalMB} MB, ${m.domNodes} DOM nodes`;
console.log(`main thread, fleet scrolling: ${mainLine(fleet.main)}`);
console.log(`main thread, fleet still: ${mainLine(still.main)}`);
console.log(`main thread, fleet load: ${mainLine(fleet.loadMain)}`);
for (const [name, list] of [
  ['load', fleet.loadTraced],
  ['still', still.traced],
  ['scrolling', fleet.traced],
]) {
  for (const t of list ?? []) {
    const where = t.otherRenderer ? ' [another renderer, not the page]' : '';
    console.log(`traced long task (${name})${where} ${t.ms} ms, on CPU ${t.cpuMs} ms: ${t.selfMs}`);
    if (name !== 'load' || !loadProfile) continue;
    const p = profileSelfTimes(loadProfile, t.startUs, t.endUs);
    console.log(`  profiled ${p.sampledMs} ms; self: ${p.self.join(', ')}`);
    console.log(`  total: ${p.total.join(', ')}`);
  }
  if (list?.phase)
    console.log(
      `fleet ${name}, all main-thread tasks: ${list.phase.taskMs} ms (${list.phase.cpuMs} ms on the CPU); self time: ${list.phase.selfMs}`,
    );
  if (list)
    console.log(
      `fleet ${name}: ${list.length} traced tasks over 50 ms, ${cpuLong(list).length} of the page's over 50 ms on the CPU`,
    );
}
console.log(JSON.stringify(result));
