import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { requireExecutable } from '../support/server-process.js';

const run = promisify(execFile);
const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const inCI = process.env.CI === 'true' || process.env.CI === '1';

function findDockerCompose(): string | undefined {
  try {
    return requireExecutable({ name: 'docker-compose', aptPackage: 'docker-compose' });
  } catch (err) {
    if (inCI) throw err; // CI installs it (scripts/install-system-deps.sh): missing there is a failure.
    return undefined;
  }
}

const dockerCompose = findDockerCompose();
/** The secrets the compose file requires (it refuses to start without them); dummy values for validation. */
const TEST_SECRETS = { INFLUX_TOKEN: 'validation-only-token', INFLUX_ADMIN_PASSWORD: 'validation-only' };

/** Runs docker-compose with no Docker engine: `config` only parses, interpolates and validates. */
async function compose(
  args: string[],
  cwd = repoRoot,
  secrets: Record<string, string> = TEST_SECRETS,
): Promise<{ code: number; stdout: string; stderr: string }> {
  // A developer's own .env or COMPOSE_* settings must not change what is validated.
  const env = {
    ...Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('COMPOSE_') && !/^(HUB|INFLUX|MQTT|GRAFANA)_/.test(k)),
    ),
    ...secrets,
  };
  try {
    const { stdout, stderr } = await run(dockerCompose!, args, { cwd, env, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as Error & { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

describe.skipIf(dockerCompose === undefined)('docker-compose.yml', () => {
  it('passes `docker-compose -f docker-compose.yml config -q`', async () => {
    const result = await compose(['-f', 'docker-compose.yml', 'config', '-q']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('refuses to start without the InfluxDB secrets, and leaves the hub admin token to the hub when unset', async () => {
    const missing = await compose(['-f', 'docker-compose.yml', 'config', '-q'], repoRoot, {});
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('set INFLUX_TOKEN in .env');
    const { stdout } = await compose(['-f', 'docker-compose.yml', 'config']);
    expect(stdout).toContain("HUB_ADMIN_TOKEN: ''"); // empty = unset: the hub generates one (hub/src/config.ts)
  });

  it('wires the hub to InfluxDB and Mosquitto, publishes 8080, keeps data in a volume', async () => {
    const { code, stdout } = await compose(['-f', 'docker-compose.yml', '--profile', 'grafana', 'config']);
    expect(code).toBe(0);
    for (const line of [
      'INFLUX_URL: http://influxdb:8086',
      'MQTT_URL: mqtt://mosquitto:1883',
      'HUB_DATA_DIR: /data',
      'INFLUX_ORG: tendril',
      'INFLUX_BUCKET: tendril',
      'DOCKER_INFLUXDB_INIT_MODE: setup',
      'image: influxdb:2.7',
      'image: eclipse-mosquitto:2',
      '- published: 8080\n      target: 8080',
      '- hub-data:/data:rw',
    ]) {
      expect(stdout).toContain(line);
    }
    const services = (
      await compose(['-f', 'docker-compose.yml', '--profile', 'grafana', 'config', '--services'])
    ).stdout
      .split('\n')
      .filter(Boolean)
      .sort();
    expect(services).toEqual(['grafana', 'hub', 'influxdb', 'mosquitto']);
    // Grafana is opt-in (docker-compose 1.29 lists profiled services under --services anyway, so look at the profile).
    expect(stdout).toMatch(/\n {2}grafana:\n(?: {4}.*\n| {4}- .*\n)*? {4}profiles:\n {4}- grafana\n/);
  });

  it('the validator is not vacuous: it rejects a key docker-compose 1.29 does not know', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tendril-compose-'));
    try {
      await writeFile(
        join(dir, 'docker-compose.yml'),
        [
          'services:',
          '  hub:',
          '    image: tendril/hub:local',
          '    healthcheck:',
          '      test: ["CMD", "true"]',
          '      start_interval: 1s',
          '',
        ].join('\n'),
      );
      const result = await compose(['-f', 'docker-compose.yml', 'config', '-q'], dir);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/start_interval/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
