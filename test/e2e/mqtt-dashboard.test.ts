/**
 * Issue 14 in a real Chromium: the dashboard (built from source when older than its sources) served by a
 * real hub process with the MQTT bridge on a real Mosquitto. The header shows the bridge connected; when
 * Mosquitto is killed the header and the problem line say the broker is unreachable (with the reason and
 * the reconnect attempts), and an MQTT device in the fleet shows "unknown: the hub lost its MQTT broker";
 * when Mosquitto is back the header says connected again.
 */
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  ensureDashboardBuilt,
  hubApi,
  launchChromium,
  startHubProcess,
  startMosquitto,
  type ChromiumInstance,
  type MosquittoServer,
  type ServerProcess,
} from '../support/index.js';
import { bundleForProcess } from '../support/hub-bundle.js';

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));
const ADMIN = 'mqtt-dashboard-admin-token-0123456789';
const USER = { name: 'ops', password: 'a long enough password for ops' };

let broker: MosquittoServer;
let hub: ServerProcess;
let base: string;
let browser: ChromiumInstance;
let device: mqtt.MqttClient;

const api = hubApi(() => base, ADMIN);

beforeAll(async () => {
  ensureDashboardBuilt();
  const hubScript = await bundleForProcess(here('./fixtures/hub-process.ts'));
  broker = await startMosquitto();
  const started = await startHubProcess({
    script: hubScript,
    adminToken: ADMIN,
    dirPrefix: 'mqtt-dashboard',
    env: { MQTT_URL: broker.url, MQTT_CLIENT_ID: 'hub-mqtt-dashboard' },
  });
  hub = started.proc;
  base = started.base;
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
