/**
 * Issue "Foundation", end to end: a device provisioned over HTTPS connects with the SDK over wss (a CA made
 * by the test), its readings are stored in SQLite and acknowledged, it shows online with its latest values,
 * and it goes offline with a reason when its process is killed (CONNECTION_LOST) or freezes (HEARTBEAT_LOST).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHub, listenHub, loadConfig, type Listening } from '@tendril/hub';
import { makeTestCA, waitFor, WORKSPACE_ALIASES, type TestCA } from '../support/index.js';

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));
const ADMIN = 'e2e-admin-token-0123456789abcdef';
const HEARTBEAT_MS = 300; // dead connections found within 2 x heartbeat

let dir: string;
let ca: TestCA;
let app: FastifyInstance;
let hub: Listening;
let deviceScript: string;
const children: ChildProcess[] = [];

function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${hub.url}${path}`,
      {
        method,
        ca: ca.caPem,
        headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null }));
      },
    );
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

interface DeviceProcess {
  child: ChildProcess;
  events: Array<{ event: string; seq?: number; message?: string }>;
}

function runDevice(id: string, token: string, readings: number): DeviceProcess {
  const child = spawn(process.execPath, [deviceScript], {
    env: {
      ...process.env,
      DEVICE_URL: hub.deviceUrl,
      DEVICE_ID: id,
      DEVICE_TOKEN: token,
      DEVICE_CA: ca.caPath,
      DEVICE_READINGS: String(readings),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const proc: DeviceProcess = { child, events: [] };
  createInterface({ input: child.stdout! }).on('line', (line) => proc.events.push(JSON.parse(line)));
  return proc;
}

const lastAck = (p: DeviceProcess): number =>
  Math.max(0, ...p.events.filter((e) => e.event === 'ack').map((e) => e.seq!));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tendril-e2e-'));
  ca = await makeTestCA(dir);
  // Bundle the device program from source so the test needs no prior build; `ws` stays external.
  mkdirSync(here('./.build'), { recursive: true });
  deviceScript = here('./.build/device-process.mjs');
  await build({
    entryPoints: [here('./fixtures/device-process.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: deviceScript,
    external: ['ws'],
    alias: WORKSPACE_ALIASES,
    logLevel: 'error',
  });
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    HUB_DATA_DIR: join(dir, 'data'),
    HUB_ADMIN_TOKEN: ADMIN,
    HUB_TLS_CERT: ca.certPath,
    HUB_TLS_KEY: ca.keyPath,
    HUB_HEARTBEAT_MS: String(HEARTBEAT_MS),
    HUB_LOG_LEVEL: 'warn',
  });
  app = buildHub(config);
  hub = await listenHub(app, config);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a device over wss through the real SDK and hub', () => {
  it('is provisioned, stores and acks every reading, shows online with latest values, and goes offline when killed', async () => {
    const created = await api('POST', '/api/v1/devices', { id: 'e2e-env-1', name: 'E2E environment sensor' });
    expect(created.status).toBe(201);
    expect(created.json.token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    // The token is shown once: reads never return it.
    expect(JSON.stringify((await api('GET', '/api/v1/devices/e2e-env-1')).json)).not.toContain(created.json.token);

    const device = runDevice('e2e-env-1', created.json.token, 500);
    await waitFor(() => lastAck(device) === 500, {
      timeoutMs: 20_000,
      what: 'the hub to ack all 500 readings of e2e-env-1',
    });

    const view = (await api('GET', '/api/v1/devices/e2e-env-1')).json;
    expect(view.presence.state).toBe('online');
    expect(view.transport).toBe('ws');
    expect(view.firmware).toBe('e2e-1.0');
    expect(view.ackedSeq).toBe(500);
    expect(view.metrics.map((m: { name: string }) => m.name)).toEqual(['temperature', 'humidity', 'door']);
    expect(view.latest.temperature.value).toBeCloseTo(25, 4); // 20 + 500/100, as f32
    expect(view.latest.door.value).toBe(true);

    // Every acked reading is in SQLite, once: 500 readings over a wide window, counted by the history API.
    const from = Date.now() - 3_600_000;
    const count = await api(
      'GET',
      `/api/v1/devices/e2e-env-1/series/humidity?agg=count&from=${from}&to=${Date.now() + 60_000}&step=86400000`,
    );
    expect(count.status).toBe(200);
    const total = count.json.points.reduce((n: number, p: { value: number }) => n + p.value, 0);
    expect(total).toBe(500);

    device.child.kill('SIGKILL');
    const offline = await waitFor(
      async () => {
        const v = (await api('GET', '/api/v1/devices/e2e-env-1')).json;
        return v.presence.state === 'offline' ? v.presence : null;
      },
      { timeoutMs: 5_000, what: 'e2e-env-1 to show offline after its process was killed' },
    );
    expect(offline.reason).toBe('CONNECTION_LOST');
    expect(offline.lastSeen).toBeGreaterThan(from);
  });

  it('shows a device that freezes without closing its socket offline with HEARTBEAT_LOST within the bound', async () => {
    const created = await api('POST', '/api/v1/devices', { id: 'e2e-env-2' });
    const device = runDevice('e2e-env-2', created.json.token, 10);
    await waitFor(() => lastAck(device) === 10, {
      timeoutMs: 20_000,
      what: 'the hub to ack the 10 readings of e2e-env-2',
    });
    device.child.kill('SIGSTOP'); // the socket stays open, nothing answers pings any more
    const stoppedAt = Date.now();
    const offline = await waitFor(
      async () => {
        const v = (await api('GET', '/api/v1/devices/e2e-env-2')).json;
        return v.presence.state === 'offline' ? v.presence : null;
      },
      { timeoutMs: 10_000, what: 'e2e-env-2 to show offline after it froze' },
    );
    expect(offline.reason).toBe('HEARTBEAT_LOST');
    // Bound: 2 x heartbeat, plus scheduling slack on a shared machine.
    expect(Date.now() - stoppedAt).toBeLessThan(2 * HEARTBEAT_MS + 2_000);
    device.child.kill('SIGKILL');
  });
});
