/**
 * Issue 14 in a real Chromium: the dashboard (built from source when older than its sources) served by a
 * real hub process with the MQTT bridge on a real Mosquitto. The header shows the bridge connected; when
 * Mosquitto is killed the header and the problem line say the broker is unreachable (with the reason and
 * the reconnect attempts), and an MQTT device in the fleet shows "unknown: the hub lost its MQTT broker";
 * when Mosquitto is back the header says connected again.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  getFreePort,
  launchChromium,
  makeTempDir,
  startMosquitto,
  startServerProcess,
  type ChromiumInstance,
  type MosquittoServer,
  type ServerProcess,
} from '../support/index.js';
import { bundleForProcess } from '../support/hub-bundle.js';

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));
const repo = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const ADMIN = 'mqtt-dashboard-admin-token-0123456789';
const USER = { name: 'ops', password: 'a long enough password for ops' };

let broker: MosquittoServer;
let hub: ServerProcess;
let base: string;
let browser: ChromiumInstance;
let device: mqtt.MqttClient;

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** As dashboard-live.test.ts: rebuild only when a source is newer than the build. */
function dashboardBuildIsStale(): boolean {
  const index = repo('dashboard/dist/index.html');
  if (!existsSync(index)) return true;
  return newestMtime(repo('dashboard/src')) > statSync(index).mtimeMs;
}

async function api(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} -> ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

beforeAll(async () => {
  if (dashboardBuildIsStale())
    execFileSync('npm', ['run', 'build', '-w', '@tendril/dashboard'], { cwd: repo('.'), stdio: 'pipe' });
  const hubScript = await bundleForProcess(here('./fixtures/hub-process.ts'));
  broker = await startMosquitto();
  const port = await getFreePort();
  const dir = await makeTempDir('mqtt-dashboard');
  base = `http://127.0.0.1:${port}`;
  hub = await startServerProcess({
    name: 'hub',
    command: process.execPath,
    args: [hubScript],
    dir,
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      HUB_DATA_DIR: join(dir, 'data'),
      HUB_ADMIN_TOKEN: ADMIN,
      HUB_LOG_LEVEL: 'warn',
      MQTT_URL: broker.url,
      MQTT_CLIENT_ID: 'hub-mqtt-dashboard',
    },
    ready: async () => (await fetch(`${base}/healthz`)).ok,
    readyWhat: `GET ${base}/healthz -> 200`,
  });
  await api('POST', '/api/v1/users', { ...USER, role: 'operator', mustChangePassword: false });
  await api('POST', '/api/v1/devices', { id: 'mq-1', name: 'MQTT sensor' });
  device = await mqtt.connectAsync(broker.url, { clientId: 'mq-1', reconnectPeriod: 0 });
  const birth = { metrics: [{ name: 'temperature', kind: 'f64', unit: '°C' }] };
  await device.publishAsync('tendril/v1/mq-1/birth', JSON.stringify(birth), { qos: 1, retain: true });
  await device.publishAsync('tendril/v1/mq-1/state', 'online', { qos: 1, retain: true });
  await device.publishAsync('tendril/v1/mq-1/data', JSON.stringify({ temperature: 21.5 }), { qos: 1 });
  browser = await launchChromium();
}, 240_000);

afterAll(async () => {
  await device?.endAsync(true).catch(() => {});
  await browser?.close();
  await hub?.stop();
  await broker?.stop();
});

async function text(page: Page, selector: string, what: string, pattern: RegExp, timeoutMs = 15_000): Promise<string> {
  const locator = page.locator(selector);
  try {
    await locator.filter({ hasText: pattern }).first().waitFor({ timeout: timeoutMs });
  } catch (err) {
    const seen = (await locator.allTextContents().catch(() => [])).join(' | ');
    throw new Error(`waiting for ${what} (${pattern}); on the page: "${seen}"\n${(err as Error).message}`);
  }
  return (await locator.first().textContent()) ?? '';
}

it('Mosquitto stopped: the header says the broker is unreachable, the fleet says why the device is unknown', async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  await page.fill('input[name=username]', USER.name);
  await page.fill('input[name=password]', USER.password);
  await page.click('button[type=submit]');
  await text(page, '[data-testid=mqtt-status]', 'the bridge connected in the header', /MQTT connected/);
  expect(await page.locator('[data-testid=hub-problem]').count()).toBe(0);

  await broker.kill9();
  const header = await text(
    page,
    '[data-testid=mqtt-status]',
    'the broker unreachable in the header',
    /MQTT broker unreachable for \d+ s/,
  );
  expect(await page.locator('[data-testid=mqtt-status]').getAttribute('data-state')).not.toBe('up');
  const problem = await text(
    page,
    '[data-testid=hub-problem]',
    'the problem line naming the broker',
    new RegExp(`The MQTT broker ${broker.url.replace(/[.]/g, '\\.')} is unreachable`),
  );
  expect(problem).toMatch(/MQTT devices show as unknown until it is back/);
  await text(page, 'main', 'the device unknown in the fleet', /unknown: the hub lost its MQTT broker/);
  expect(header).not.toBe('');

  await broker.restart();
  await text(page, '[data-testid=mqtt-status]', 'the bridge connected again', /MQTT connected/, 30_000);
  await page.locator('[data-testid=hub-problem]').waitFor({ state: 'detached', timeout: 10_000 });
}, 120_000);
