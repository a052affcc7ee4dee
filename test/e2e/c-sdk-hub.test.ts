/**
 * Issue 15, end to end: the C SDK's host example device (device-sdk/c/examples/host, POSIX sockets and
 * mbedTLS) against the real hub (`npm run build` output, hub/dist/main.js, a process of its own), over ws and
 * over wss. Provisioned over the HTTP API; HELLO accepted; readings stored exactly once and acked; a command
 * answered; the hub SIGKILLed and restarted mid-stream with every reading stored once; presence offline with
 * its reason when the device stops (CLOSED) or dies (CONNECTION_LOST).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hubApi,
  makeTempDir,
  makeTestCA,
  startHubProcess,
  waitFor,
  type ServerProcess,
  type TestCA,
} from '../support/index.js';

const run = promisify(execFile);
const repo = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const SDK_DIR = repo('device-sdk/c');
const DEVICE_BIN = join(SDK_DIR, 'build', 'tendril-device');
const HUB_MAIN = repo('hub/dist/main.js');
const ADMIN = 'c-sdk-e2e-admin-token-0123456789abcdef';
const HEARTBEAT_MS = 500;
/** Per test: its waits add up to about a minute on a loaded 2-core machine. */
const TEST_TIMEOUT_MS = 120_000;

interface DeviceEvent {
  event: string;
  seq?: number;
  ackedSeq?: number;
  code?: number;
  reason?: string;
  name?: string;
  lastSeq?: number;
}

interface DeviceProcess {
  child: ChildProcess;
  events: DeviceEvent[];
  exited: Promise<number | null>;
  stderr: string;
}

let ca: TestCA;
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (!existsSync(HUB_MAIN)) throw new Error(`${HUB_MAIN} is missing: run \`npm run build\` first (CI does)`);
  // The example is built by the SDK's own Makefile (gcc, mbedTLS), as a firmware author would build it.
  await run('make', ['-C', SDK_DIR, 'examples'], { timeout: 120_000 });
  ca = await makeTestCA(await makeTempDir('c-sdk-ca'));
}, 180_000);

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

for (const scheme of ['ws', 'wss'] as const) {
  describe(`the C SDK example device against the real hub over ${scheme}`, () => {
    let hub: ServerProcess;
    let base: string;
    let deviceUrl: string;
    /** The HTTP API; over https the client trusts the test CA (the hub's certificate is for 127.0.0.1). */
    function api(method: string, path: string, body?: unknown): Promise<any> {
      return new Promise((resolve, reject) => {
        const options = {
          method,
          headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          ...(scheme === 'wss' ? { ca: ca.caPem } : {}),
        };
        const req = (scheme === 'wss' ? httpsRequest : httpRequest)(`${base}${path}`, options, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status < 200 || status >= 300) reject(new Error(`${method} ${path} -> ${status}: ${text}`));
            else resolve(text ? JSON.parse(text) : null);
          });
        });
        req.on('error', reject);
        req.end(body ? JSON.stringify(body) : undefined);
      });
    }

    // mbedTLS 2.28 does not match IP SANs: the device connects to 127.0.0.1 and verifies the name localhost.
    function runDevice(id: string, token: string, args: string[], serverName = 'localhost'): DeviceProcess {
      const tls = scheme === 'wss' ? ['--ca', ca.caPath, '--server-name', serverName] : [];
      const child = spawn(DEVICE_BIN, ['--url', deviceUrl, '--id', id, ...tls, ...args], {
        env: { ...process.env, TENDRIL_TOKEN: token },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      const events: DeviceEvent[] = [];
      createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line) as DeviceEvent));
      const proc: DeviceProcess = {
        child,
        events,
        exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
        stderr: '',
      };
      child.stderr!.on('data', (c: Buffer) => (proc.stderr += c.toString()));
      return proc;
    }

    const lastAck = (d: DeviceProcess): number =>
      Math.max(0, ...d.events.filter((e) => e.event === 'ack').map((e) => e.seq!));

    async function storedCount(id: string, from: number): Promise<number> {
      const q = new URLSearchParams({
        from: String(from),
        to: String(Date.now() + 60_000),
        step: '86400000',
        agg: 'count',
      });
      const series = await api('GET', `/api/v1/devices/${id}/series/humidity?${q}`);
      return series.points.reduce((n: number, p: { value: number }) => n + p.value, 0);
    }

    async function offlinePresence(id: string, what: string): Promise<{ reason: string }> {
      return waitFor(
        async () => {
          const v = await api('GET', `/api/v1/devices/${id}`);
          return v.presence.state === 'offline' ? v.presence : null;
        },
        { timeoutMs: 10_000, what },
      );
    }

    beforeAll(async () => {
      const started = await startHubProcess({
        script: HUB_MAIN,
        adminToken: ADMIN,
        dirPrefix: `c-sdk-hub-${scheme}`,
        tls: scheme === 'wss',
        env: {
          HUB_HEARTBEAT_MS: String(HEARTBEAT_MS),
          // The device paces itself to WELCOME.maxRate: 1000/s keeps the mid-stream restart test short.
          HUB_DEVICE_RATE: '1000',
          HUB_DEVICE_BURST: '2000',
          ...(scheme === 'wss' ? { HUB_TLS_CERT: ca.certPath, HUB_TLS_KEY: ca.keyPath } : {}),
        },
        // The API client trusts the test CA (fetch does not take one).
        ready: (url) => {
          base = url;
          return api('GET', '/healthz').then(() => true);
        },
      });
      hub = started.proc;
      deviceUrl = started.deviceUrl;
    }, 60_000);

    afterAll(async () => {
      await hub?.stop();
    });

    it(
      'is provisioned, its HELLO accepted, every reading stored once and acked, commands answered, and it shows offline CLOSED when it stops',
      async () => {
        const id = `c-${scheme}-1`;
        const { token } = await api('POST', '/api/v1/devices', { id, name: `C SDK example over ${scheme}` });
        const from = Date.now() - 60_000;
        const device = runDevice(id, token, ['--readings', '300', '--rate', '300', '--firmware', 'c-e2e-1.0']);
        await waitFor(() => device.events.find((e) => e.event === 'connected'), {
          timeoutMs: 10_000,
          what: `${id} to get WELCOME`,
        });
        await waitFor(() => lastAck(device) === 300, {
          timeoutMs: 20_000,
          what: `the hub to ack all 300 readings of ${id}`,
        });

        const view = await api('GET', `/api/v1/devices/${id}`);
        expect(view.presence.state).toBe('online');
        expect(view.transport).toBe('ws');
        expect(view.sdk).toBe('c/0.1.0');
        expect(view.firmware).toBe('c-e2e-1.0');
        expect(view.ackedSeq).toBe(300);
        expect(view.dropped).toBe(0);
        expect(view.metrics).toEqual([
          { alias: 0, name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
          { alias: 1, name: 'humidity', kind: 'f32', unit: '%', min: 0, max: 100 },
          { alias: 2, name: 'door', kind: 'bool', unit: '' },
        ]);
        // Reading n (0-based) carries humidity 40 + n % 10 (several readings may share the last millisecond).
        expect(view.latest.humidity.value).toBeGreaterThanOrEqual(40);
        expect(view.latest.humidity.value).toBeLessThanOrEqual(49);
        expect(typeof view.latest.door.value).toBe('boolean');
        await waitFor(async () => (await storedCount(id, from)) === 300, {
          timeoutMs: 10_000,
          what: `300 stored readings of ${id}`,
        });
        expect(await storedCount(id, from)).toBe(300);

        // A command with a result, one the device rejects.
        const cmd = await api('POST', `/api/v1/devices/${id}/commands`, {
          name: 'set-interval',
          args: { ms: 250 },
          timeoutMs: 10_000,
        });
        const done = await waitFor(
          async () => {
            const c = await api('GET', `/api/v1/commands/${cmd.id}`);
            return ['succeeded', 'failed', 'rejected', 'expired'].includes(c.state) ? c : null;
          },
          { timeoutMs: 10_000, what: `command ${cmd.id} (set-interval) to reach a final state` },
        );
        expect(done.state).toBe('succeeded');
        expect(done.result).toEqual({ intervalMs: 250 });
        expect(done.history.map((h: { state: string }) => h.state)).toEqual([
          'queued',
          'sent',
          'delivered',
          'succeeded',
        ]);
        const bad = await api('POST', `/api/v1/devices/${id}/commands`, { name: 'self-destruct', timeoutMs: 10_000 });
        const rejected = await waitFor(
          async () => {
            const c = await api('GET', `/api/v1/commands/${bad.id}`);
            return c.state === 'rejected' ? c : null;
          },
          { timeoutMs: 10_000, what: `command ${bad.id} (unknown to the device) to be rejected` },
        );
        expect(rejected.detail).toBe('unknown command');
        expect(device.events.filter((e) => e.event === 'command').map((e) => e.name)).toEqual([
          'set-interval',
          'self-destruct',
        ]);

        device.child.kill('SIGTERM'); // the example closes with 1000
        expect(await waitFor(device.exited, { timeoutMs: 10_000, what: `${id} to exit after SIGTERM` })).toBe(0);
        expect((await offlinePresence(id, `${id} to show offline after it stopped`)).reason).toBe('CLOSED');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'stores every reading exactly once across a hub SIGKILL and restart mid-stream, and shows CONNECTION_LOST when the device dies',
      async () => {
        const id = `c-${scheme}-restart`;
        const { token } = await api('POST', '/api/v1/devices', { id });
        const from = Date.now() - 60_000;
        const total = 1500;
        const device = runDevice(id, token, ['--readings', String(total), '--rate', '500', '--max-delay-ms', '400']);
        await waitFor(() => lastAck(device) >= 200, { timeoutMs: 15_000, what: `${id} to have 200 readings acked` });
        await hub.kill9();
        const acksAtKill = lastAck(device);
        expect(acksAtKill).toBeLessThan(total); // the kill came mid-stream
        await hub.restart();
        await waitFor(() => device.events.filter((e) => e.event === 'connected').length >= 2, {
          timeoutMs: 15_000,
          what: `${id} to reconnect to the restarted hub`,
        });
        const disconnect = device.events.find((e) => e.event === 'disconnected');
        expect(disconnect?.code).toBe(1006);
        await waitFor(() => lastAck(device) === total, {
          timeoutMs: 30_000,
          what: `the restarted hub to ack all ${total} readings of ${id}`,
        });
        await waitFor(async () => (await storedCount(id, from)) >= total, {
          timeoutMs: 10_000,
          what: `${total} stored readings of ${id}`,
        });
        expect(await storedCount(id, from)).toBe(total); // none lost, none doubled
        expect((await api('GET', `/api/v1/devices/${id}`)).ackedSeq).toBe(total);

        device.child.kill('SIGKILL');
        expect((await offlinePresence(id, `${id} to show offline after its process was killed`)).reason).toBe(
          'CONNECTION_LOST',
        );
      },
      TEST_TIMEOUT_MS,
    );

    if (scheme === 'ws') {
      it(
        'stops, without retrying, when the hub refuses its token (AUTH_FAILED, close 1008)',
        async () => {
          const id = 'c-ws-bad-token';
          await api('POST', '/api/v1/devices', { id });
          const device = runDevice(id, 'not-the-token', ['--readings', '5']);
          const ended = await waitFor(() => device.events.find((e) => e.event === 'disconnected'), {
            timeoutMs: 10_000,
            what: `${id} to be refused`,
          });
          expect(ended).toMatchObject({ code: 1008, reason: 'AUTH_FAILED', willReconnect: false });
          expect(device.events.find((e) => e.event === 'error')?.code).toBe(20); // the ERROR frame before the close
          expect(await waitFor(device.exited, { timeoutMs: 5_000, what: `${id} to exit after a terminal close` })).toBe(
            1,
          );
          expect(device.events.filter((e) => e.event === 'disconnected')).toHaveLength(1);
        },
        TEST_TIMEOUT_MS,
      );

      it(
        'an instance replaced by a newer one with the same id stops, and the newer one keeps the device online',
        async () => {
          const id = 'c-ws-twin';
          const { token } = await api('POST', '/api/v1/devices', { id });
          const older = runDevice(id, token, ['--readings', '0', '--rate', '5']);
          await waitFor(() => older.events.find((e) => e.event === 'connected'), {
            timeoutMs: 10_000,
            what: `the first ${id} to connect`,
          });
          const newer = runDevice(id, token, ['--readings', '0', '--rate', '5']);
          const replaced = await waitFor(() => older.events.find((e) => e.event === 'disconnected'), {
            timeoutMs: 10_000,
            what: `the first ${id} to be replaced`,
          });
          expect(replaced).toMatchObject({ code: 1008, reason: 'REPLACED', willReconnect: false });
          expect(await waitFor(older.exited, { timeoutMs: 5_000, what: `the replaced ${id} to exit` })).toBe(1);
          const acked = lastAck(newer);
          await waitFor(() => lastAck(newer) > acked, {
            timeoutMs: 10_000,
            what: `the newer ${id} to go on being acked`,
          });
          expect(newer.events.some((e) => e.event === 'disconnected')).toBe(false);
          expect((await api('GET', `/api/v1/devices/${id}`)).presence.state).toBe('online');
          newer.child.kill('SIGTERM');
          expect(await waitFor(newer.exited, { timeoutMs: 10_000, what: `the newer ${id} to exit` })).toBe(0);
        },
        TEST_TIMEOUT_MS,
      );
    }

    if (scheme === 'ws') {
      it(
        "honours BACKOFF RATE_LIMITED from a hub whose burst is smaller than the device's, and every reading is still stored once",
        async () => {
          // A second hub whose bucket holds 10 readings while WELCOME.maxRate (50/s) lets the device start with 50.
          const started = await startHubProcess({
            script: HUB_MAIN,
            adminToken: ADMIN,
            dirPrefix: 'c-sdk-hub-backoff',
            env: { HUB_DEVICE_RATE: '50', HUB_DEVICE_BURST: '10' },
          });
          const tight = started.proc;
          try {
            const call = hubApi(started.base, ADMIN);
            const id = 'c-ws-backoff';
            const { token } = await call('POST', '/api/v1/devices', { id });
            const from = Date.now() - 60_000;
            const child = spawn(
              DEVICE_BIN,
              ['--url', started.deviceUrl, '--id', id, '--readings', '300', '--rate', '200'],
              {
                env: { ...process.env, TENDRIL_TOKEN: token },
                stdio: ['ignore', 'pipe', 'inherit'],
              },
            );
            children.push(child);
            const events: DeviceEvent[] = [];
            createInterface({ input: child.stdout! }).on('line', (line) =>
              events.push(JSON.parse(line) as DeviceEvent),
            );
            const acked = (): number => Math.max(0, ...events.filter((e) => e.event === 'ack').map((e) => e.seq!));
            await waitFor(() => acked() === 300, {
              timeoutMs: 30_000,
              what: `the rate-limited hub to ack all 300 readings of ${id}`,
            });
            child.kill('SIGTERM');
            expect(events.filter((e) => e.event === 'backoff').length).toBeGreaterThan(0);
            expect(events.find((e) => e.event === 'backoff')?.code).toBe(40); // RATE_LIMITED
            expect(events.some((e) => e.event === 'disconnected' && e.code !== 1000)).toBe(false);
            const q = new URLSearchParams({
              from: String(from),
              to: String(Date.now() + 60_000),
              step: '86400000',
              agg: 'count',
            });
            const count = async (): Promise<number> =>
              (await call('GET', `/api/v1/devices/${id}/series/humidity?${q}`)).points.reduce(
                (n: number, p: { value: number }) => n + p.value,
                0,
              );
            await waitFor(async () => (await count()) >= 300, {
              timeoutMs: 10_000,
              what: `300 stored readings of ${id}`,
            });
            expect(await count()).toBe(300);
            expect((await call('GET', `/api/v1/devices/${id}`)).dropped).toBe(0);
          } finally {
            await tight.stop();
          }
        },
        TEST_TIMEOUT_MS,
      );
    }

    if (scheme === 'wss') {
      it(
        'refuses a hub whose certificate does not carry the name the device expects',
        async () => {
          const id = 'c-wss-wrong-name';
          const { token } = await api('POST', '/api/v1/devices', { id });
          const device = runDevice(id, token, ['--readings', '1'], 'hub.other.example');
          await waitFor(() => device.events.filter((e) => e.event === 'disconnected').length >= 2, {
            timeoutMs: 10_000,
            what: `${id} to fail two TLS handshakes`,
          });
          device.child.kill('SIGKILL');
          expect(device.events.some((e) => e.event === 'connected')).toBe(false);
          expect(device.stderr).toContain('Certificate verification failed');
          expect((await api('GET', `/api/v1/devices/${id}`)).presence.state).toBe('never');
        },
        TEST_TIMEOUT_MS,
      );
    }
  });
}
