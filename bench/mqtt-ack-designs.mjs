#!/usr/bin/env node
// How fast can a QoS 1 subscriber go when each PUBACK must wait for durability? Three designs, one broker,
// one run (docs/mqtt.md, "Why a receive loop of our own"):
//   serial:  MQTT.js 5 with customHandleAcks, the ack callback held until the message is "durable";
//            MQTT.js reads the next packet only after that callback (its serial inbound handling).
//   shared:  the same on K clients of one shared subscription ($share/g/...), so K messages wait at once.
//   link:    the hub's BrokerLink (hub/src/mqtt/broker-link.ts): every packet parsed at once, PUBACKs sent
//            in PUBLISH order as completions arrive.
// "Durable" = a simulated group commit every --commit-ms (default 5, about an fdatasync on our disks):
// every message received before a commit completes at it. The broker's queue for each design's persistent
// session is filled first (--messages, by mosquitto_pub -l, while the design is offline), then the design
// connects and drains it: the publisher's speed does not enter the figure.
// Reports acked messages per second for each design, and each as a ratio to the link.
// Reproduce: npm run build && node bench/mqtt-ack-designs.mjs [--messages 50000] [--seconds 3] [--commit-ms 5] [--shared 8] [--json]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { BrokerLink } from '../hub/dist/mqtt/broker-link.js';
import { args, opt } from './lib/common.mjs';

const SECONDS = opt('seconds', 3);
const MESSAGES = opt('messages', 50_000);
const COMMIT_MS = opt('commit-ms', 5);
const SHARED = opt('shared', 8);
const RECEIVE_MAX = opt('receive-max', 1024);
const asJson = args.includes('--json');

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
      'max_queued_messages 10000000',
      'max_inflight_messages 1024',
      `user ${userInfo().username}`,
      '',
    ].join('\n'),
  );
  const child = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try {
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 500 });
      await c.endAsync(true);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: () => (child.kill('SIGKILL'), rmSync(dir, { recursive: true, force: true })),
  };
}

/** Group commit: callbacks queued now run at the next tick. */
function groupCommit() {
  let queue = [];
  const timer = setInterval(() => {
    const q = queue;
    queue = [];
    for (const f of q) f();
  }, COMMIT_MS);
  return { add: (f) => queue.push(f), stop: () => clearInterval(timer) };
}

/** Queues `n` QoS 1 messages on `topic` (for the offline persistent sessions subscribed to it). */
function preload(url, topic, n) {
  const { port } = new URL(url);
  const line = `${JSON.stringify({ temperature: 21.5, humidity: 40.25, pressure: 1013.2 })}\n`;
  return new Promise((resolve, reject) => {
    const pub = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-t', topic, '-q', '1', '-l'], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    pub.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited with ${code}`))));
    pub.stdin.end(line.repeat(n));
  });
}

async function runMqttJs(url, topic, clients) {
  const commit = groupCommit();
  let acked = 0;
  const options = (i) => ({
    protocolVersion: 5,
    reconnectPeriod: 0,
    clean: false,
    clientId: `bench-mqttjs-${topic.replace(/\W/g, '')}-${i}`,
    properties: { receiveMaximum: RECEIVE_MAX, sessionExpiryInterval: 300 },
    customHandleAcks: (_t, _m, _p, done) => commit.add(() => (acked++, done(0))),
  });
  const filter = clients > 1 ? `$share/g/${topic}` : topic;
  for (let i = 0; i < clients; i++) {
    const c = await mqtt.connectAsync(url, options(i));
    await c.subscribeAsync(filter, { qos: 1 });
    await c.endAsync();
  }
  await preload(url, topic, MESSAGES);
  const subs = await Promise.all(Array.from({ length: clients }, (_, i) => mqtt.connectAsync(url, options(i))));
  const result = await measure(() => acked);
  commit.stop();
  await Promise.all(subs.map((c) => c.endAsync(true)));
  return result;
}

async function runLink(url, topic) {
  const commit = groupCommit();
  let acked = 0;
  const make = (onSubscribed) =>
    new BrokerLink(
      {
        url,
        clientId: `bench-link-${process.pid}`,
        protocolVersion: 5,
        keepaliveSec: 30,
        sessionExpirySec: 300,
        receiveMaximum: RECEIVE_MAX,
        maximumPacketSize: 1 << 20,
        connectTimeoutMs: 5000,
        reconnectInitialMs: 100,
        reconnectMaxMs: 1000,
        subscriptions: [[{ topic, qos: 1 }]],
        clock: { now: () => Date.now() },
        timers: { setTimeout, clearTimeout, setInterval, clearInterval },
      },
      { up() {}, down() {}, subscribed: onSubscribed, message: (m) => commit.add(() => (acked++, m.complete())) },
    );
  let subscribed;
  const first = make(() => subscribed());
  first.start();
  await new Promise((r) => (subscribed = r));
  await first.close();
  await preload(url, topic, MESSAGES);
  const link = make(() => {});
  link.start();
  const result = await measure(() => acked);
  commit.stop();
  await link.close();
  return result;
}

/** Acked messages per second from the first ack, over SECONDS or until the queue is drained. */
async function measure(count) {
  while (count() === 0) await new Promise((r) => setTimeout(r, 1));
  const a = count();
  const t0 = performance.now();
  while (performance.now() - t0 < SECONDS * 1000 && count() < MESSAGES) await new Promise((r) => setTimeout(r, 5));
  return Math.round(((count() - a) * 1000) / (performance.now() - t0));
}

const broker = await startBroker();
try {
  const link = await runLink(broker.url, 'bench/link');
  const serial = await runMqttJs(broker.url, 'bench/serial', 1);
  const shared = await runMqttJs(broker.url, 'bench/shared', SHARED);
  const out = {
    commitMs: COMMIT_MS,
    receiveMaximum: RECEIVE_MAX,
    ackedPerSecond: { link, serial, [`shared${SHARED}`]: shared },
    ratioToLink: { serial: +(serial / link).toFixed(4), [`shared${SHARED}`]: +(shared / link).toFixed(4) },
  };
  if (asJson) console.log(JSON.stringify(out));
  else {
    console.log(`QoS 1, PUBACK after a simulated group commit every ${COMMIT_MS} ms, receive maximum ${RECEIVE_MAX}:`);
    console.log(`  BrokerLink (own receive loop)          ${link} acked/s`);
    console.log(`  MQTT.js customHandleAcks, 1 client      ${serial} acked/s  (${out.ratioToLink.serial}x)`);
    console.log(
      `  MQTT.js, ${SHARED} clients, shared subscription ${shared} acked/s  (${out.ratioToLink[`shared${SHARED}`]}x)`,
    );
  }
} finally {
  broker.stop();
}
