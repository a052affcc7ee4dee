#!/usr/bin/env node
// MQTT bridge benchmarks, each against a baseline measured in the same run (docs/performance.md, "MQTT bridge"):
//
//  cpu:    readings the hub stores per CPU-second of the hub process, through the bridge (QoS 1, PUBACK
//          after durability, the on-disk spool in front of SQLite), against a bare MQTT.js subscriber (its
//          own process) that only counts the same messages from the same broker. Both are subscribed while
//          --devices publishers (mosquitto_pub -l, C) send --messages QoS 1 readings each; each process's
//          CPU time is measured from before the first message until it has handled the last.
//  influx: the rate at which every QoS 1 reading reaches InfluxDB with none lost or doubled (stored ==
//          published, no broker drops), against the rate at which Mosquitto delivers the same messages to a
//          counting subscriber. Each is the messages over the time from the first publish until the last is
//          stored (hub) or received (subscriber); the broker queues what they have not taken yet, so the
//          publishers are never held back and the figures are each side's sustained rate.
// Reproduce: npm run build && node bench/mqtt-ingest.mjs [--devices 8] [--messages 20000] [--batch 1] [--only cpu|influx] [--json]
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { args, loadTypeScript, opt } from './lib/common.mjs';

const DEVICES = opt('devices', 8);
const MESSAGES = opt('messages', 20_000);
const BATCH = opt('batch', 1);
const onlyIdx = args.indexOf('--only');
const ONLY = onlyIdx >= 0 ? args[onlyIdx + 1] : null;
const asJson = args.includes('--json');
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const TOTAL = DEVICES * MESSAGES;

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startBroker() {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-bench-mosquitto-'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'mosquitto.conf'),
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'max_queued_messages 100000000',
      'max_inflight_messages 1024',
      'sys_interval 1',
      `user ${userInfo().username}`,
      '',
    ].join('\n'),
  );
  const child = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  const url = `mqtt://127.0.0.1:${port}`;
  const { default: mqtt } = await import('mqtt');
  for (let i = 0; i < 100; i++) {
    try {
      const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 500 });
      await c.endAsync(true);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { url, port, stop: () => (child.kill('SIGKILL'), rmSync(dir, { recursive: true, force: true })) };
}

function child(script, argv, env) {
  const proc = fork(script, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env } });
  const next = (type, timeoutMs = 60_000) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for '${type}' from ${script}`)), timeoutMs);
      const on = (m) => {
        if (m.type !== type) return;
        clearTimeout(t);
        proc.off('message', on);
        resolve(m);
      };
      proc.on('message', on);
    });
  return { proc, next, sample: () => (proc.send({ type: 'sample' }), next('sample')) };
}

const cpuMs = (a, b) => (b.user - a.user + b.system - a.system) / 1000;

async function startHub(broker, env = {}) {
  // The bridge reads MQTT_* from the process environment (hub/src/mqtt/config.ts); the rest goes through BENCH_HUB_ENV.
  const mqttEnv = {
    MQTT_URL: broker.url,
    MQTT_CLIENT_ID: `bench-hub-${process.pid}-${Date.now()}`,
    MQTT_RECEIVE_MAXIMUM: '1024',
  };
  const hub = child(here('./servers/hub.mjs'), [], { ...mqttEnv, BENCH_HUB_ENV: JSON.stringify(env) });
  const ready = await hub.next('ready');
  const base = `http://127.0.0.1:${ready.port}`;
  const auth = { authorization: `Bearer ${ready.adminToken}`, 'content-type': 'application/json' };
  const metric = async (name) => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.slice(name.length + 1)) : NaN;
  };
  for (let i = 0; i < 100 && (await metric('tendril_mqtt_broker_up')) !== 1; i++)
    await new Promise((r) => setTimeout(r, 50));
  return { ...hub, base, auth, metric };
}

/** Registers the devices and publishes their births (retained); resolves once the hub attached them all. */
async function prepareDevices(hub, broker, prefix) {
  const { default: mqtt } = await import('mqtt');
  const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  const birth = {
    epoch: 1,
    metrics: [
      { name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
      { name: 'humidity', kind: 'f32', unit: '%', min: 0, max: 100 },
      { name: 'pressure', kind: 'f32', unit: 'hPa' },
    ],
  };
  for (let i = 0; i < DEVICES; i++) {
    const id = `${prefix}-${i}`;
    const res = await fetch(`${hub.base}/api/v1/devices`, {
      method: 'POST',
      headers: hub.auth,
      body: JSON.stringify({ id }),
    });
    if (!res.ok) throw new Error(`provisioning ${id}: ${res.status} ${await res.text()}`);
    await c.publishAsync(`tendril/v1/${id}/birth`, JSON.stringify(birth), { qos: 1, retain: true });
  }
  await c.endAsync();
  for (let i = 0; i < 200 && (await hub.metric('tendril_mqtt_devices_attached')) < DEVICES; i++)
    await new Promise((r) => setTimeout(r, 25));
}

/** One mosquitto_pub -l per device, MESSAGES QoS 1 lines each (seq 1.., BATCH readings per message). */
function publishAll(broker, prefix) {
  return Promise.all(
    Array.from({ length: DEVICES }, (_, i) => {
      let text = '';
      let seq = 0;
      for (let m = 0; m < MESSAGES / BATCH; m++) {
        const readings = [];
        for (let b = 0; b < BATCH; b++)
          readings.push(`{"seq":${++seq},"values":{"temperature":21.5,"humidity":40.25,"pressure":1013.2}}`);
        text += `${BATCH === 1 ? readings[0] : `[${readings.join(',')}]`}\n`;
      }
      return new Promise((resolve, reject) => {
        const pub = spawn(
          'mosquitto_pub',
          [
            '-h',
            '127.0.0.1',
            '-p',
            String(broker.port),
            '-t',
            `tendril/v1/${prefix}-${i}/data`,
            '-q',
            '1',
            '-l',
            '-V',
            'mqttv5',
          ],
          { stdio: ['pipe', 'ignore', 'inherit'] },
        );
        pub.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited with ${code}`))));
        pub.stdin.end(text);
      });
    }),
  );
}

async function until(check, what, timeoutMs = opt('timeout', 600) * 1000, status = async () => '') {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what} ${await status()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const step = (what) => process.env.BENCH_DEBUG && process.stderr.write(`[${new Date().toISOString()}] ${what}\n`);

async function cpuBench(broker) {
  const hub = await startHub(broker);
  step('hub up');
  await prepareDevices(hub, broker, 'cpu');
  step('devices attached');
  const bare = child(fileURLToPath(import.meta.url), ['--role-bare-subscriber', broker.url], {});
  await bare.next('ready');
  step('subscriber up');
  const stored0 = await hub.metric('tendril_readings_accepted_total');
  const hub0 = (await hub.sample()).cpu;
  const bare0 = (await bare.sample()).cpu;
  const published = publishAll(broker, 'cpu');
  let hubCpu = null;
  let bareCpu = null;
  await until(
    async () => {
      if (bareCpu === null) {
        const s = await bare.sample();
        if (s.count >= TOTAL / BATCH) bareCpu = cpuMs(bare0, s.cpu);
      }
      if (hubCpu === null && (await hub.metric('tendril_readings_accepted_total')) - stored0 >= TOTAL)
        hubCpu = cpuMs(hub0, (await hub.sample()).cpu);
      return hubCpu !== null && bareCpu !== null;
    },
    'both to handle every message',
    undefined,
    async () =>
      `(hub stored ${(await hub.metric('tendril_readings_accepted_total')) - stored0}, unacked ${await hub.metric('tendril_mqtt_unacked_messages')}, fed ${await hub.metric('tendril_mqtt_readings_total')}, subscriber ${(await bare.sample()).count}, of ${TOTAL})`,
  );
  await published;
  hub.proc.send({ type: 'stop' });
  bare.proc.send({ type: 'stop' });
  const hubRate = Math.round((TOTAL * 1000) / hubCpu);
  const bareRate = Math.round(((TOTAL / BATCH) * 1000) / bareCpu);
  return {
    readings: TOTAL,
    hubCpuMs: Math.round(hubCpu),
    bareCpuMs: Math.round(bareCpu),
    hubReadingsPerCpuSecond: hubRate,
    bareMessagesPerCpuSecond: bareRate,
    ratio: +(hubRate / bareRate).toFixed(3),
  };
}

async function influxBench(broker) {
  const modules = await loadTypeScript({ harness: 'test/support/influxdb.ts' }, 'bench-mqtt-influx');
  const influx = await modules.harness.startInfluxDB({ db: 'bench' });
  try {
    const db = `mqtt_${process.pid}`;
    const hub = await startHub(broker, { INFLUX_URL: influx.url, INFLUX_DB: db });
    await prepareDevices(hub, broker, 'influx');
    const stored = async () => {
      const [r] = await influx.query(`SELECT count("@seq") FROM readings WHERE "device"::tag =~ /^influx-/`, { db });
      return Number(r?.series?.[0]?.values?.[0]?.[1] ?? 0);
    };
    // The baseline: Mosquitto to a subscriber that only counts, the same messages, the same broker.
    const bare = child(fileURLToPath(import.meta.url), ['--role-bare-subscriber', broker.url], {});
    await bare.next('ready');
    const t0 = performance.now();
    const published = publishAll(broker, 'influx');
    let bareMs = null;
    let hubMs = null;
    await until(async () => {
      if (bareMs === null && (await bare.sample()).count >= TOTAL / BATCH) bareMs = performance.now() - t0;
      if (hubMs === null && (await hub.metric('tendril_readings_accepted_total')) >= TOTAL && (await stored()) >= TOTAL)
        hubMs = performance.now() - t0;
      return bareMs !== null && hubMs !== null;
    }, 'every reading in InfluxDB and at the subscriber');
    await published;
    const finalStored = await stored();
    const dropped = await hub.metric('tendril_mqtt_broker_dropped_messages');
    hub.proc.send({ type: 'stop' });
    bare.proc.send({ type: 'stop' });
    const hubRate = Math.round((TOTAL * 1000) / hubMs);
    const bareRate = Math.round(((TOTAL / BATCH) * 1000) / bareMs);
    return {
      readings: TOTAL,
      stored: finalStored,
      lost: TOTAL - finalStored,
      brokerDropped: dropped,
      hubZeroLossReadingsPerSecond: hubRate,
      mosquittoMessagesPerSecond: bareRate,
      ratio: +(hubRate / bareRate).toFixed(3),
    };
  } finally {
    await influx.stop();
    modules.cleanup();
  }
}

async function main() {
  const broker = await startBroker();
  const out = { devices: DEVICES, messagesPerDevice: MESSAGES, batch: BATCH };
  try {
    if (ONLY !== 'influx') out.cpu = await cpuBench(broker);
    if (ONLY !== 'cpu') out.influx = await influxBench(broker);
  } finally {
    broker.stop();
  }
  if (asJson) console.log(JSON.stringify(out));
  else {
    console.log(`MQTT bridge, ${DEVICES} devices x ${MESSAGES} QoS 1 readings (${BATCH} per message):`);
    if (out.cpu) {
      const c = out.cpu;
      console.log(
        `  hub CPU: ${c.hubReadingsPerCpuSecond} readings/CPU-s (${c.hubCpuMs} ms) vs bare MQTT.js subscriber ${c.bareMessagesPerCpuSecond} messages/CPU-s (${c.bareCpuMs} ms): ${c.ratio}x`,
      );
    }
    if (out.influx) {
      const f = out.influx;
      console.log(
        `  into InfluxDB: ${f.hubZeroLossReadingsPerSecond} readings/s, stored ${f.stored}/${f.readings} (lost ${f.lost}, broker dropped ${f.brokerDropped}) vs Mosquitto to a counting subscriber ${f.mosquittoMessagesPerSecond} messages/s: ${f.ratio}x`,
      );
    }
  }
}

// ---- child role: a bare MQTT.js subscriber that counts messages (and reports its CPU) ----
if (args.includes('--role-bare-subscriber')) {
  const { default: mqtt } = await import('mqtt');
  const url = args[args.indexOf('--role-bare-subscriber') + 1];
  let count = 0;
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 5,
    clientId: `bare-${process.pid}`,
    clean: true,
    properties: { receiveMaximum: 1024 },
  });
  client.on('message', () => count++);
  await client.subscribeAsync('tendril/v1/+/data', { qos: 1 });
  process.send({ type: 'ready' });
  process.on('message', (m) => {
    if (m.type === 'sample') process.send({ type: 'sample', count, cpu: process.cpuUsage() });
    if (m.type === 'stop') client.endAsync(true).then(() => process.exit(0));
  });
} else {
  await main();
}
