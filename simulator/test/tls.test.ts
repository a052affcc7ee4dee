import { rm } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, makeTestCA, type TestCA } from '../../test/support/index.js';
import { parseOptions } from '../src/options.js';
import { runSimulation } from '../src/run.js';
import { startHub, type TestHub } from './hub-harness.js';

const sink = () => new PassThrough().resume();

describe('a hub serving wss/https with a private CA', () => {
  let dir: string;
  let ca: TestCA;
  let hub: TestHub;
  beforeAll(async () => {
    dir = await makeTempDir('sim-tls');
    ca = await makeTestCA(dir);
    hub = await startHub({ HUB_TLS_CERT: ca.certPath, HUB_TLS_KEY: ca.keyPath });
  });
  afterAll(async () => {
    await hub?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('--ca: provisions over https and runs the fleet over wss', async () => {
    expect(hub.url).toMatch(/^https:/);
    const options = parseOptions(
      [
        '--hub',
        hub.url,
        '--devices',
        '2',
        '--rate',
        '10',
        '--duration',
        '1',
        '--ca',
        ca.caPath,
        '--token',
        hub.adminToken,
      ],
      {},
    )!;
    const summary = await runSimulation(options, { stdout: sink(), stderr: sink() });
    expect(summary.connections.connectedAtEnd).toBe(2);
    expect(summary.sent).toBeGreaterThan(0);
    expect(summary.acked).toBe(summary.sent);
    expect(summary.reconciled).toBe(true);
  });

  it('without --ca the certificate is not trusted, and the error says so', async () => {
    const options = parseOptions(
      ['--hub', hub.url, '--devices', '1', '--duration', '1', '--token', hub.adminToken],
      {},
    )!;
    await expect(runSimulation(options, { stdout: sink(), stderr: sink() })).rejects.toThrow(/certificate/i);
  });
});
