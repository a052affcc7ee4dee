/**
 * The shipped Mosquitto configuration (mosquitto/mosquitto.conf and mosquitto/acl) on a real Mosquitto, with
 * only its paths and port changed for the test: every client must log in, one device cannot publish as
 * another nor read another's commands, the hub's user reads the bridge's topics and writes commands.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { userInfo } from 'node:os';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getFreePort, waitFor } from '../../test/support/index.js';
import {
  makeTempDir,
  requireExecutable,
  startServerProcess,
  type ServerProcess,
} from '../../test/support/server-process.js';
import { connect } from 'node:net';

const shipped = (name: string): string => fileURLToPath(new URL(`../../mosquitto/${name}`, import.meta.url));
const PASSWORDS = { hub: 'hub-secret-1', 'dev-a': 'a-secret-1', 'dev-b': 'b-secret-1' } as const;

let broker: ServerProcess;
let url: string;
const clients: mqtt.MqttClient[] = [];

beforeAll(async () => {
  const mosquitto = requireExecutable({ name: 'mosquitto', aptPackage: 'mosquitto', envVar: 'MOSQUITTO_PATH' });
  const passwd = requireExecutable({ name: 'mosquitto_passwd', aptPackage: 'mosquitto' });
  const dir = await makeTempDir('mosquitto-acl');
  const port = await getFreePort();
  url = `mqtt://127.0.0.1:${port}`;
  const passwdPath = join(dir, 'passwd');
  writeFileSync(passwdPath, '');
  for (const [user, password] of Object.entries(PASSWORDS)) execFileSync(passwd, ['-b', passwdPath, user, password]);
  writeFileSync(join(dir, 'acl'), readFileSync(shipped('acl')));
  // The shipped file, with the test's port, paths and user: every other setting as shipped.
  const conf = readFileSync(shipped('mosquitto.conf'), 'utf8')
    .replace(/^listener 1883 0\.0\.0\.0$/m, `listener ${port} 127.0.0.1`)
    .replace('/mosquitto/config/passwd', passwdPath)
    .replace('/mosquitto/config/acl', join(dir, 'acl'))
    .replace('/mosquitto/data/', `${dir}/`)
    .replace(/^log_dest stdout$/m, 'log_dest stderr');
  expect(conf).toMatch(/^allow_anonymous false$/m);
  expect(conf).toMatch(/^persistence true$/m);
  expect(Number(/^max_queued_messages (\d+)$/m.exec(conf)?.[1])).toBeGreaterThanOrEqual(100_000);
  writeFileSync(join(dir, 'mosquitto.conf'), `${conf}\nuser ${userInfo().username}\n`);
  broker = await startServerProcess({
    name: 'mosquitto-acl',
    command: mosquitto,
    args: ['-c', join(dir, 'mosquitto.conf')],
    dir,
    ready: () =>
      new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port });
        s.once('connect', () => (s.destroy(), resolve(true)));
        s.once('error', () => (s.destroy(), resolve(false)));
      }),
    readyWhat: `a TCP connection to 127.0.0.1:${port}`,
  });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await broker?.stop();
});

async function login(user: keyof typeof PASSWORDS, protocolVersion: 4 | 5 = 5): Promise<mqtt.MqttClient> {
  const c = await mqtt.connectAsync(url, {
    username: user,
    password: PASSWORDS[user],
    protocolVersion,
    reconnectPeriod: 0,
    clientId: `${user}-${protocolVersion}-${clients.length}`,
  });
  clients.push(c);
  return c;
}

function refused(options: mqtt.IClientOptions): Promise<string> {
  return mqtt.connectAsync(url, { ...options, reconnectPeriod: 0 }).then(
    async (c) => {
      await c.endAsync(true);
      return 'connected';
    },
    (err: Error) => err.message,
  );
}

it.each([5, 4] as const)(
  'MQTT %s: a packet over 128 KiB never reaches the hub; its sender is disconnected',
  async (version) => {
    const hub = await login('hub');
    const seen: number[] = [];
    hub.on('message', (_topic, payload) => seen.push(payload.length));
    await hub.subscribeAsync('tendril/v1/dev-a/#', { qos: 1 });
    const a = await login('dev-a', version);
    const closed = new Promise<void>((resolve) => a.once('close', () => resolve()));
    a.publish('tendril/v1/dev-a/data', Buffer.alloc(200_000, 0x20), { qos: 0 });
    await closed;
    const b = await login('dev-a', version);
    await b.publishAsync('tendril/v1/dev-a/data', '{"small":1}', { qos: 1 });
    await waitFor(() => seen.includes(11), { what: 'the small message at the hub', timeoutMs: 5000 });
    expect(seen).toEqual([11]);
  },
);

it('refuses anonymous clients and wrong passwords', async () => {
  expect(await refused({ protocolVersion: 5 })).toMatch(/Not authorized|Bad User Name or Password/i);
  expect(await refused({ protocolVersion: 5, username: 'dev-a', password: 'wrong' })).toMatch(
    /Not authorized|Bad User Name or Password/i,
  );
});

it.each([5, 4] as const)(
  'MQTT %s: a device cannot publish as another; the hub sees only its own tree',
  async (version) => {
    const hub = await login('hub');
    const seen: string[] = [];
    hub.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    await hub.subscribeAsync('tendril/v1/#', { qos: 1 });
    const a = await login('dev-a', version);
    await a.publishAsync('tendril/v1/dev-b/data', `{"forged":${version}}`, { qos: 1 }).catch(() => undefined);
    await a.publishAsync('tendril/v1/dev-b/birth', `{"metrics":[]}`, { qos: 1, retain: true }).catch(() => undefined);
    await a.publishAsync('tendril/v1/dev-a/data', `{"own":${version}}`, { qos: 1 });
    // In-order delivery on one subscription: the forged messages would have come before this one.
    await waitFor(() => seen.includes(`tendril/v1/dev-a/data {"own":${version}}`), {
      what: "dev-a's own message at the hub",
      timeoutMs: 5000,
    });
    expect(seen.filter((s) => s.includes('dev-b'))).toEqual([]);
  },
);

it('a device reads only its own commands; the hub writes them and cannot be impersonated', async () => {
  const hub = await login('hub');
  const a = await login('dev-a');
  const b = await login('dev-b');
  const atA: string[] = [];
  const atB: string[] = [];
  a.on('message', (topic) => atA.push(topic));
  b.on('message', (topic) => atB.push(topic));
  await a.subscribeAsync(['tendril/v1/dev-b/cmd', 'tendril/v1/dev-a/cmd'], { qos: 1 });
  await b.subscribeAsync('tendril/v1/dev-b/cmd', { qos: 1 });
  // A device may not write errors or commands to another device either.
  await a.publishAsync('tendril/v1/dev-b/cmd', '{"id":1,"name":"forged"}', { qos: 1 }).catch(() => undefined);
  await hub.publishAsync('tendril/v1/dev-b/cmd', '{"id":2,"name":"real"}', { qos: 1 });
  await hub.publishAsync('tendril/v1/dev-a/cmd', '{"id":3,"name":"real"}', { qos: 1 });
  await waitFor(() => atA.length === 1 && atB.length === 1, { what: 'one command at each device', timeoutMs: 5000 });
  expect(atA).toEqual(['tendril/v1/dev-a/cmd']);
  expect(atB).toEqual(['tendril/v1/dev-b/cmd']);
});
