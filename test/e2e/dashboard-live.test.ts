/**
 * Issue 13, end to end in a real Chromium: the dashboard (built from source in beforeAll) served by a real hub
 * process (createHub, as `npm start` builds it), simulated devices through the real SDK, the live channel.
 *   - the admin logs in with the generated password, must choose a new one, sees the fleet online;
 *   - a live value changes on screen; a relay command sent from the form succeeds;
 *   - a device that stops answering (SIGSTOP: a power cut, no TCP close) goes offline with HEARTBEAT_LOST
 *     within the heartbeat bound (2 x HUB_HEARTBEAT_MS) plus the page's own delay;
 *   - the browser's live socket is cut (page.routeWebSocket) while readings flow: the indicator says
 *     reconnecting with the attempt, then live; the chart resumes with no silent gap (every bucket of the cut
 *     is there, or a gap is marked);
 *   - a viewer sees no command form;
 *   - no Content-Security-Policy violation on any page.
 * Screenshots of the fleet and device views go to test-results/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import type { Page, WebSocketRoute } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, HubApi, envSensor, planFleet, powerMeter, provisionRequest } from '@tendril/simulator';
import {
  ensureDashboardBuilt,
  hubApi,
  launchChromium,
  startHubProcess,
  waitFor,
  WORKSPACE_ALIASES,
  type ChromiumInstance,
  type ServerProcess,
} from '../support/index.js';

// Functions passed to page.evaluate/waitForFunction run in the page; the test's tsconfig has no DOM library.
declare const document: any;
declare const window: any;
type HTMLElement = any;

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));
const repo = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const ADMIN_TOKEN = 'dashboard-e2e-admin-token-0123456789abcdef';
const HEARTBEAT_MS = 1000;
const RESULTS = repo('test-results');
const OPERATOR = { name: 'ada', password: 'correct horse battery staple' };
const VIEWER = { name: 'vic', password: 'viewer password of some length' };

let hub: ServerProcess;
let base: string;
let dataDir: string;
let fleet: Fleet;
let stoppable: ChildProcess | undefined;
let browser: ChromiumInstance;
const cspViolations: string[] = [];

const api = hubApi(() => base, ADMIN_TOKEN);

beforeAll(async () => {
  mkdirSync(RESULTS, { recursive: true });
  ensureDashboardBuilt();
  // The hub process as faults.test.ts runs it, bundled from source. Files the hub finds next to its modules
  // (the common-password list, dashboard/dist) are found from the sources' own place.
  const hubScript = here('./.build/dashboard-hub-process.mjs');
  await build({
    entryPoints: [here('./fixtures/hub-process.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: hubScript,
    external: [
      'fastify',
      'fastify-plugin',
      '@fastify/*',
      'ws',
      'better-sqlite3',
      'prom-client',
      '@influxdata/*',
      'mqtt',
      'mqtt-packet',
    ],
    alias: WORKSPACE_ALIASES,
    define: { 'import.meta.url': JSON.stringify(pathToFileURL(repo('hub/src/web/plugin.ts')).href) },
    logLevel: 'error',
  });
  // The simulator's CLI in a process of its own: the device the test freezes.
  const simScript = here('./.build/dashboard-sim-cli.mjs');
  await build({
    entryPoints: [repo('simulator/src/cli.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: simScript,
    external: ['ws', 'mqtt', 'mqtt-packet'],
    alias: WORKSPACE_ALIASES,
    logLevel: 'error',
  });

  const started = await startHubProcess({
    script: hubScript,
    adminToken: ADMIN_TOKEN,
    dirPrefix: 'dashboard-e2e',
    env: { HUB_HEARTBEAT_MS: String(HEARTBEAT_MS) },
  });
  const { port, dir } = started;
  hub = started.proc;
  base = started.base;
  dataDir = started.dataDir;

  await api('POST', '/api/v1/users', {
    name: OPERATOR.name,
    role: 'operator',
    password: OPERATOR.password,
    mustChangePassword: false,
  });
  await api('POST', '/api/v1/users', {
    name: VIEWER.name,
    role: 'viewer',
    password: VIEWER.password,
    mustChangePassword: false,
  });

  // Four devices in this process (power meters have a relay), five readings a second each.
  const planned = planFleet(4, [powerMeter, envSensor], 7);
  const provisioner = new HubApi({ httpBase: base, adminToken: ADMIN_TOKEN });
  const provisioned = await provisioner.provisionAll(planned.map(provisionRequest));
  provisioner.close();
  fleet = new Fleet({
    deviceUrl: `ws://127.0.0.1:${port}/v1/device`,
    devices: planned.map((p, i) => ({ ...p, token: provisioned[i]!.token })),
    ratePerSecond: 5,
  });
  fleet.start();
  // One door sensor in its own process.
  stoppable = spawn(
    process.execPath,
    [
      simScript,
      '--hub',
      base,
      '--devices',
      '1',
      '--models',
      'door-motion',
      '--rate',
      '2',
      '--seed',
      '3',
      '--progress',
      '3600',
    ],
    {
      env: { ...process.env, HUB_ADMIN_TOKEN: ADMIN_TOKEN },
      stdio: ['ignore', openSync(join(dir, 'door-sim.log'), 'a'), openSync(join(dir, 'door-sim.log'), 'a')],
    },
  );
  let online: string[] = [];
  await waitFor(
    async () => {
      online = (await api('GET', '/api/v1/devices')).devices
        .filter((d: any) => d.presence.state === 'online')
        .map((d: any) => d.id);
      return online.length === 5;
    },
    { what: 'all five simulated devices online (GET /api/v1/devices)', timeoutMs: 20_000 },
  ).catch((err: Error) => {
    throw new Error(
      `${err.message}; online: ${online.join(', ')}; door simulator log: ${readFileSync(join(dir, 'door-sim.log'), 'utf8').slice(-1500)}`,
    );
  });
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  if (stoppable && stoppable.exitCode === null) {
    stoppable.kill('SIGCONT');
    stoppable.kill('SIGKILL');
  }
  await fleet?.close();
  await browser?.close();
  await hub?.stop();
});

async function newPage(): Promise<Page> {
  const page = await browser.newPage();
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e: { violatedDirective: string; blockedURI: string }) => {
      (window as unknown as { __csp: string[] }).__csp ??= [];
      (window as unknown as { __csp: string[] }).__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  return page;
}

async function login(page: Page, user: { name: string; password: string }): Promise<void> {
  await page.context().clearCookies(); // one browser profile: log the previous user out
  await page.goto(`${base}/`);
  await page.fill('input[name=username]', user.name);
  await page.fill('input[name=password]', user.password);
  await page.click('button[type=submit]');
}

async function expectNoCspViolation(page: Page): Promise<void> {
  const seen = await page.evaluate(() => (window as unknown as { __csp?: string[] }).__csp ?? []);
  expect([...seen, ...cspViolations]).toEqual([]);
}

describe('the dashboard in Chromium', () => {
  let page: Page;

  it('the admin logs in with the generated password, chooses a new one, and sees the fleet online', async () => {
    page = await newPage();
    const generated = readFileSync(join(dataDir, 'initial-admin-password'), 'utf8').trim();
    await login(page, { name: 'admin', password: generated });
    await page.waitForSelector('text=Choose a new password', { timeout: 10_000 });
    await page.fill('input[autocomplete=current-password]', generated);
    const fresh = 'a brand new admin password 42';
    const inputs = page.locator('input[autocomplete=new-password]');
    await inputs.nth(0).fill(fresh);
    await inputs.nth(1).fill(fresh);
    await page.click('button[type=submit]');
    await page.waitForSelector('[data-testid=fleet-list]', { timeout: 10_000 });
    await page.waitForFunction(() => document.querySelectorAll('[data-presence=online]').length >= 5, undefined, {
      timeout: 10_000,
    });
    await page.waitForSelector('.conn[data-state=live]', { timeout: 10_000 });
    expect(await page.textContent('[data-testid=fleet-summary]')).toContain('5 online');
    await page.screenshot({ path: join(RESULTS, 'dashboard-fleet-online.png'), fullPage: true });
    await expectNoCspViolation(page);
    await page.close();
  });

  it('an operator watches a live value change, then sends a relay command and sees it succeed', async () => {
    page = await newPage();
    await login(page, OPERATOR);
    await page.waitForSelector('[data-device="power-0001"][data-presence=online]', { timeout: 10_000 });
    // A value in the fleet list changes by itself (live, not a reload).
    const cell = page.locator('[data-device="power-0001"] .values');
    const before = await cell.textContent();
    await page.waitForFunction(
      (old) => document.querySelector('[data-device="power-0001"] .values')?.textContent !== old,
      before,
      { timeout: 10_000 },
    );
    await page.click('[data-device="power-0001"]');
    await page.waitForSelector('figure[data-metric=voltage]', { timeout: 10_000 });
    const lastTs = async () => Number(await page.getAttribute('figure[data-metric=voltage]', 'data-last-ts'));
    await page.waitForFunction(
      () => Number(document.querySelector('figure[data-metric=voltage]')?.getAttribute('data-last-ts')) > 0,
      undefined,
      { timeout: 10_000 },
    );
    const t0 = await lastTs();
    await page.waitForFunction(
      (t) => Number(document.querySelector('figure[data-metric=voltage]')?.getAttribute('data-last-ts')) > t,
      t0,
      { timeout: 10_000 },
    );

    const form = page.locator('[data-testid=command-form]');
    await form.locator('select').selectOption('relay');
    await form.locator('input[type=checkbox]').check();
    await form.locator('button[type=submit]').click();
    await page.waitForSelector('[data-testid=command-history] tr[data-state=succeeded] >> text=relay', {
      timeout: 15_000,
    });
    await page.screenshot({ path: join(RESULTS, 'dashboard-device.png'), fullPage: true });
    const row = page.locator('[data-testid=command-history] tr[data-state=succeeded]').first();
    expect(await row.textContent()).toContain(OPERATOR.name); // who sent it

    // CSV of the chart's range: the buckets on screen, with units in the header.
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 10_000 }),
      page.click('button[aria-label="Download voltage as CSV"]'),
    ]);
    const csv = readFileSync(await download.path(), 'utf8');
    const lines = csv.trim().split('\r\n');
    expect(lines[0]).toBe('time,ts,voltage min (V),voltage mean (V),voltage max (V)');
    expect(lines.length).toBeGreaterThan(2);
    expect(lines[1]).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z,\d+,[\d.]+,[\d.]+,[\d.]+$/);
    await expectNoCspViolation(page);
  });

  it('a device that stops answering goes offline with HEARTBEAT_LOST within the heartbeat bound', async () => {
    await page.goto(`${base}/?q=door`);
    await page.waitForSelector('[data-device="door-0001"][data-presence=online]', { timeout: 10_000 });
    const stoppedAt = Date.now();
    stoppable!.kill('SIGSTOP');
    await page.waitForSelector('[data-device="door-0001"][data-presence=offline]', {
      timeout: 2 * HEARTBEAT_MS + 5000,
    });
    const seenAfter = Date.now() - stoppedAt;
    expect(await page.textContent('[data-device="door-0001"]')).toContain('heartbeat lost');
    // 2 x heartbeat on the hub, then the live event and one frame.
    expect(seenAfter).toBeLessThan(2 * HEARTBEAT_MS + 3000);
    stoppable!.kill('SIGKILL');
    // The whole fleet with the frozen device offline, wide and narrow (a phone).
    await page.goto(`${base}/?sort=presence`);
    await page.waitForSelector('[data-device="door-0001"][data-presence=offline]', { timeout: 10_000 });
    await page.screenshot({ path: join(RESULTS, 'dashboard-fleet.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(RESULTS, 'dashboard-fleet-narrow.png'), fullPage: true });
    await page.goto(`${base}/devices/power-0001`);
    await page.waitForSelector('figure[data-metric=voltage]', { timeout: 10_000 });
    await page.screenshot({ path: join(RESULTS, 'dashboard-device-narrow.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 720 });
  });

  it('the live socket is cut while readings flow: the indicator tells it, and the chart resumes with no silent gap', async () => {
    page = await newPage();
    let route: WebSocketRoute | undefined;
    let connections = 0;
    await page.routeWebSocket(/\/v1\/live$/, (ws) => {
      connections++;
      route = ws;
      ws.connectToServer();
    });
    await page.goto(`${base}/devices/power-0002`);
    await page.waitForSelector('.conn[data-state=live]', { timeout: 10_000 });
    await page.waitForFunction(
      () => Number(document.querySelector('figure[data-metric=voltage]')?.getAttribute('data-last-ts')) > 0,
      undefined,
      { timeout: 10_000 },
    );
    const cutAt = Date.now();
    await route!.close({ code: 4000, reason: 'cut by the test' });
    await page.waitForSelector('.conn[data-state=reconnecting]', { timeout: 5000 });
    expect(Number(await page.getAttribute('.conn', 'data-attempt'))).toBeGreaterThanOrEqual(1);
    expect(await page.textContent('.conn')).toMatch(/Reconnecting \(attempt \d+/);
    await page.waitForSelector('.conn[data-state=live]', { timeout: 10_000 });
    expect(connections).toBe(2);
    // Readings keep coming after the cut.
    await page.waitForFunction(
      (t) => Number(document.querySelector('figure[data-metric=voltage]')?.getAttribute('data-last-ts')) > t + 4000,
      cutAt,
      { timeout: 15_000 },
    );
    const chart = await page.evaluate(() => {
      const el = document.querySelector('figure[data-metric=voltage] .plot') as HTMLElement & {
        uplot?: { data: Array<Array<number | null>> };
      };
      return { data: el.uplot!.data, gaps: Number(el.closest('figure')!.getAttribute('data-gap-marks')) };
    });
    const [xs, , mean] = chart.data as [number[], unknown, Array<number | null>];
    // From before the cut on, every bucket is there, or a null (a drawn gap) sits between two points.
    const step =
      xs.length > 2
        ? Math.min(
            ...xs
              .slice(1)
              .map((x, i) => x - xs[i]!)
              .filter((d) => d > 0),
          )
        : 500;
    let silent = 0;
    for (let i = 1; i < xs.length; i++) {
      if (xs[i]! < cutAt - 3000 || mean[i] === null || mean[i - 1] === null) continue;
      if (xs[i]! - xs[i - 1]! > 1.5 * step) silent++; // a whole bucket missing, not drawn as a gap
    }
    expect(silent).toBe(0);
    const after = xs.filter((x, i) => x > cutAt && mean[i] !== null).length;
    expect(after).toBeGreaterThanOrEqual(3); // 1 s buckets at this chart width
    await expectNoCspViolation(page);
    await page.close();
  });

  it('a viewer sees the commands but no command form', async () => {
    const viewer = await newPage();
    try {
      await login(viewer, VIEWER);
      await viewer.waitForSelector('[data-device="power-0001"]', { timeout: 10_000 });
      // A shared deep link opens the device with its range.
      await viewer.goto(`${base}/devices/power-0001?range=1h`);
      await viewer.waitForSelector('[data-testid=command-history]', { timeout: 10_000 });
      expect(await viewer.textContent('[role=radio][aria-checked=true]')).toBe('1 h');
      expect(await viewer.locator('[data-testid=command-form]').count()).toBe(0);
      expect(await viewer.textContent('body')).toContain('can see commands but not send them');
    } finally {
      await viewer.close();
    }
  });
});
