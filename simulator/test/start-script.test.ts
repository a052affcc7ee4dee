/**
 * `npm start` (scripts/start.mjs): the hub plus a demo fleet in one process. The script runs the built
 * packages (hub/dist, simulator/dist), as `npm start` does after its build step; so does this test.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, makeTestCA, once, waitFor } from '../../test/support/index.js';
import { HubApi } from '../src/hub-api.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
  dataDir: string;
}

async function startScript(env: Record<string, string>): Promise<Started> {
  const dataDir = await makeTempDir('sim-start');
  const child = spawn(process.execPath, [join(root, 'scripts/start.mjs')], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      HOST: '127.0.0.1',
      HUB_DATA_DIR: dataDir,
      HUB_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (text += c.toString()));
  const url = await waitFor(() => /Tendril hub is running: (https?:\/\/\S+)/.exec(text)?.[1], {
    what: `the start script printing its URL (output so far: ${JSON.stringify(text)})`,
    timeoutMs: 20_000,
  });
  return { child, url, output: () => text, dataDir };
}

async function devices(s: Started): Promise<Array<{ id: string; presence: { state: string }; ackedSeq: number }>> {
  const token = readFileSync(join(s.dataDir, 'admin-token'), 'utf8').trim();
  const res = await fetch(`${s.url}/api/v1/devices`, { headers: { authorization: `Bearer ${token}` } });
  return ((await res.json()) as { devices: Array<{ id: string; presence: { state: string }; ackedSeq: number }> })
    .devices;
}

describe('npm start (scripts/start.mjs)', () => {
  let started: Started | null = null;
  beforeAll(() => {
    // What `npm start`'s prestart does; incremental, so it costs a fraction of a second when dist is fresh.
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b', 'hub', 'simulator'], {
      cwd: root,
      stdio: 'inherit',
    });
  }, 180_000);
  afterEach(async () => {
    if (started && started.child.exitCode === null && started.child.signalCode === null) started.child.kill('SIGKILL');
    if (started) await rm(started.dataDir, { recursive: true, force: true });
    started = null;
  });

  it('starts the hub with a live demo fleet, prints the URL, and stops cleanly on SIGINT', async () => {
    started = await startScript({ HUB_DEMO_DEVICES: '4', HUB_DEMO_RATE: '5' });
    const s = started;
    await waitFor(() => /demo fleet: 4 simulated devices/.test(s.output()), {
      what: 'the start script announcing its demo fleet',
      timeoutMs: 10_000,
    });
    const live = await waitFor(
      async () => {
        const list = await devices(s);
        return list.length === 4 && list.every((d) => d.presence.state === 'online' && d.ackedSeq >= 3) ? list : null;
      },
      { what: '4 demo devices online with readings stored', timeoutMs: 15_000 },
    );
    expect(live.map((d) => d.id).sort()).toEqual(['door-0001', 'env-0001', 'gps-0001', 'power-0001']);
    const exited = once(s.child, 'exit', { what: 'the start script exiting after SIGINT', timeoutMs: 15_000 });
    s.child.kill('SIGINT');
    const [code] = await exited;
    expect(code).toBe(0);
  });

  it('with TLS configured, the demo fleet reaches the hub over wss', async () => {
    const tlsDir = await makeTempDir('sim-start-tls');
    try {
      const ca = await makeTestCA(tlsDir);
      started = await startScript({
        HUB_DEMO_DEVICES: '2',
        HUB_DEMO_RATE: '5',
        HUB_TLS_CERT: ca.certPath,
        HUB_TLS_KEY: ca.keyPath,
      });
      const s = started;
      expect(s.url).toMatch(/^https:/);
      const api = new HubApi({
        httpBase: s.url.replace('localhost', '127.0.0.1'),
        adminToken: readFileSync(join(s.dataDir, 'admin-token'), 'utf8').trim(),
        ca: ca.caPem,
      });
      try {
        await waitFor(
          async () => {
            const res = await api.request('GET', '/api/v1/devices');
            const list = (res.body as { devices: Array<{ presence: { state: string }; ackedSeq: number }> }).devices;
            return list.length === 2 && list.every((d) => d.presence.state === 'online' && d.ackedSeq >= 2);
          },
          { what: '2 demo devices online over wss with readings stored', timeoutMs: 15_000 },
        );
      } finally {
        api.close();
      }
    } finally {
      await rm(tlsDir, { recursive: true, force: true });
    }
  });

  it('HUB_DEMO_DEVICES=0 starts the hub without a fleet', async () => {
    started = await startScript({ HUB_DEMO_DEVICES: '0' });
    const s = started;
    await waitFor(() => s.output().includes('demo fleet off (HUB_DEMO_DEVICES=0)'), {
      what: 'the start script saying the demo fleet is off',
    });
    expect(await devices(s)).toEqual([]);
  });

  it('a bad HUB_DEMO_DEVICES is refused with a message naming it', async () => {
    const dataDir = await makeTempDir('sim-start-bad');
    try {
      const child = spawn(process.execPath, [join(root, 'scripts/start.mjs')], {
        cwd: root,
        env: {
          PATH: process.env.PATH ?? '',
          PORT: '0',
          HOST: '127.0.0.1',
          HUB_DATA_DIR: dataDir,
          HUB_DEMO_DEVICES: 'lots',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      const [code] = await once(child, 'exit', {
        what: 'the start script refusing HUB_DEMO_DEVICES=lots',
        timeoutMs: 15_000,
      });
      expect(code).toBe(2);
      expect(err).toMatch(/HUB_DEMO_DEVICES="lots" must be a whole number/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
