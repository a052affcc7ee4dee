import { readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir } from '../../test/support/index.js';
import { HELP, parseOptions } from '../src/options.js';
import type { SimulatorSummary } from '../src/report.js';
import { runSimulation } from '../src/run.js';
import { startHub, type TestHub } from './hub-harness.js';

function capture(isTTY = false) {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean };
  stream.isTTY = isTTY;
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  return { stream, text: () => text };
}

describe('the simulate CLI run against the real hub', () => {
  let hub: TestHub;
  let dir: string;
  beforeAll(async () => {
    hub = await startHub();
    dir = await makeTempDir('sim-cli');
  });
  afterAll(async () => {
    await hub?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('provisions, runs, and prints a JSON summary that reconciles; writes the devices file', async () => {
    const devicesFile = join(dir, 'devices.json');
    const options = parseOptions(
      [
        '--hub',
        hub.url,
        '--devices',
        '4',
        '--rate',
        '10',
        '--duration',
        '1.5',
        '--json',
        '--devices-file',
        devicesFile,
        '--progress',
        '0.5',
      ],
      { HUB_ADMIN_TOKEN: hub.adminToken },
    )!;
    const out = capture();
    const err = capture();
    const returned = await runSimulation(options, { stdout: out.stream, stderr: err.stream });
    const summary = JSON.parse(out.text()) as SimulatorSummary;
    expect(summary).toEqual(JSON.parse(JSON.stringify(returned)));

    expect(summary.devices).toBe(4);
    expect(summary.models).toEqual({ 'env-sensor': 1, 'power-meter': 1, 'gps-tracker': 1, 'door-motion': 1 });
    expect(summary.sent).toBeGreaterThanOrEqual(40);
    expect(summary.sent).toBe(summary.acked + summary.rejected + summary.dropped + summary.buffered);
    expect(summary.reconciled).toBe(true);
    expect(summary.buffered).toBe(0);
    expect(summary.latencyMs.count).toBe(summary.acked + summary.rejected);
    expect(summary.latencyMs.p50).not.toBeNull();
    expect(summary.latencyMs.p50!).toBeLessThanOrEqual(summary.latencyMs.p99!);
    expect(summary.cpu.userMs + summary.cpu.systemMs).toBeGreaterThan(0);
    expect(summary.connections.connectedAtEnd).toBe(4);
    for (const key of ['rejectedByCode', 'errorsByCode', 'backoffsByCode', 'commands', 'faults', 'memory'] as const)
      expect(summary).toHaveProperty(key);

    // Progress goes to stderr as plain lines when it is not a terminal.
    expect(err.text()).toMatch(/provisioning 4 device\(s\)/);
    expect(err.text()).toMatch(
      /\| connected 4\/4 \| sent [\d.]+\/s \| acked [\d.]+\/s \| backlog \d+ \| commands 0 \| errors none \| cpu \d+%/,
    );
    expect(err.text()).not.toContain('\r');

    const file = JSON.parse(readFileSync(devicesFile, 'utf8')) as { devices: Array<{ id: string; token: string }> };
    expect(file.devices.map((d) => d.id).sort()).toEqual(['door-0001', 'env-0001', 'gps-0001', 'power-0001']);
    expect(statSync(devicesFile).mode & 0o077).toBe(0);
  });

  it('reuses the devices file without an admin token, and prints the text summary', async () => {
    const devicesFile = join(dir, 'devices.json');
    const options = parseOptions(
      ['--hub', hub.url, '--devices', '4', '--rate', '5', '--duration', '1', '--devices-file', devicesFile],
      {},
    )!;
    expect(options.token).toBeNull();
    const out = capture();
    const err = capture(true);
    const summary = await runSimulation(options, { stdout: out.stream, stderr: err.stream });
    expect(err.text()).toMatch(/reusing 4 device\(s\)/);
    // A terminal gets one live line, rewritten in place.
    expect(err.text()).toMatch(/\r\[\d\d:\d\d\] \| connected/);
    expect(summary.errorsByCode).toEqual({});
    expect(summary.reconciled).toBe(true);
    expect(out.text()).toMatch(
      /readings {3}sent (\d+) = acked \d+ \+ rejected 0 \+ dropped 0 \+ still buffered 0 {2}\(reconciled\)/,
    );
    expect(out.text()).toMatch(/latency {4}send->ack p50 [\d.]+ ms/);
    expect(out.text()).toMatch(/simulator {2}cpu [\d.]+% of one core/);
  });

  it('refuses to run devices it cannot provision without a token, saying what to pass', async () => {
    const options = parseOptions(['--hub', hub.url, '--devices', '6', '--duration', '1'], {})!;
    await expect(runSimulation(options, { stdout: capture().stream, stderr: capture().stream })).rejects.toThrow(
      /no admin token was given: pass --token or set HUB_ADMIN_TOKEN/,
    );
  });

  it('stops early on an interrupt and still drains and summarises', async () => {
    const options = parseOptions(
      ['--hub', hub.url, '--devices', '2', '--rate', '10', '--json', '--token', hub.adminToken, '--models', 'env'],
      {},
    )!;
    let interrupt!: () => void;
    const interrupted = new Promise<void>((resolve) => (interrupt = resolve));
    const out = capture();
    const running = runSimulation(options, { stdout: out.stream, stderr: capture().stream, interrupted });
    setTimeout(interrupt, 800); // the "user" presses Ctrl-C
    const summary = await running;
    expect(summary.durationMs).toBeLessThan(5000);
    expect(summary.models).toEqual({ 'env-sensor': 2 });
    expect(summary.sent).toBeGreaterThan(0);
    expect(summary.reconciled).toBe(true);
  });

  it('--help documents every flag', () => {
    expect(parseOptions(['--help'])).toBeNull();
    for (const flag of [
      '--hub',
      '--devices',
      '--rate',
      '--duration',
      '--json',
      '--token',
      '--devices-file',
      '--models',
      '--seed',
      '--ca',
      '--drop-rate',
      '--latency',
      '--clock-skew',
      '--burst',
      '--malformed',
      '--reconnect-storm',
      '--load',
    ]) {
      expect(HELP).toContain(flag);
    }
  });
});
