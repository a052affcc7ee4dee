/** loadConfig: documented defaults and clear errors naming the variable (docs/operations.md). */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      dataDir: resolve('./data'),
      adminToken: null,
      tls: null,
      heartbeatMs: 10_000,
      helloTimeoutMs: 10_000,
      deviceRate: 100,
      deviceBurst: 1000,
      maxFrameBytes: 16_384,
      maxConnections: 20_000,
      logLevel: 'info',
    });
  });

  it('reads every variable', () => {
    const c = loadConfig({
      PORT: '9000',
      HOST: '127.0.0.1',
      HUB_DATA_DIR: '/tmp/x',
      HUB_ADMIN_TOKEN: 'a-long-enough-admin-token-0123456789',
      HUB_TLS_CERT: '/c.pem',
      HUB_TLS_KEY: '/k.pem',
      HUB_HEARTBEAT_MS: '5000',
      HUB_HELLO_TIMEOUT_MS: '3000',
      HUB_DEVICE_RATE: '50',
      HUB_DEVICE_BURST: '200',
      HUB_MAX_FRAME_BYTES: '32768',
      HUB_MAX_CONNECTIONS: '10',
      HUB_LOG_LEVEL: 'debug',
    });
    expect(c).toMatchObject({
      port: 9000,
      host: '127.0.0.1',
      dataDir: '/tmp/x',
      adminToken: 'a-long-enough-admin-token-0123456789',
      tls: { certPath: '/c.pem', keyPath: '/k.pem' },
      heartbeatMs: 5000,
      helloTimeoutMs: 3000,
      deviceRate: 50,
      deviceBurst: 200,
      maxFrameBytes: 32_768,
      maxConnections: 10,
      logLevel: 'debug',
    });
  });

  it('takes durations and sizes with units', () => {
    const c = loadConfig({ HUB_HEARTBEAT_MS: '15s', HUB_HELLO_TIMEOUT_MS: '2500ms', HUB_MAX_FRAME_BYTES: '32KiB' });
    expect(c).toMatchObject({ heartbeatMs: 15_000, helloTimeoutMs: 2500, maxFrameBytes: 32_768 });
  });

  it('names the variable of every error in ConfigError.variable', () => {
    try {
      loadConfig({ HUB_DEVICE_BURST: 'many' });
      expect.unreachable('loadConfig accepted HUB_DEVICE_BURST=many');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe('HUB_DEVICE_BURST');
    }
  });

  it('ignores variables that belong to other components', () => {
    expect(() => loadConfig({ MQTT_URL: 'mqtt://y' })).not.toThrow();
  });

  it('storage: SQLite with a 1 GiB spool and 30-day retention by default; INFLUX_* selects InfluxDB', () => {
    expect(loadConfig({ HUB_DATA_DIR: '/tmp/x' }).storage).toEqual({
      influx: null,
      spool: { dir: '/tmp/x/spool', maxBytes: 1024 ** 3, memoryTailReadings: 100_000 },
      retentionDays: 30,
    });
    const c = loadConfig({
      HUB_DATA_DIR: '/tmp/x',
      INFLUX_URL: 'http://127.0.0.1:8086',
      INFLUX_DB: 'telemetry',
      HUB_SPOOL_MAX_BYTES: '64MiB',
      HUB_RETENTION_DAYS: '7',
    });
    expect(c.storage.spool.maxBytes).toBe(64 * 1024 ** 2);
    expect(c.storage.retentionDays).toBe(7);
    expect(c.storage.influx).toMatchObject({
      url: 'http://127.0.0.1:8086',
      db: 'telemetry',
      retentionDays: 7,
      deadLetterPath: '/tmp/x/dead-letter/influx.jsonl',
    });
  });

  it.each([
    [{ PORT: 'eighty' }, /^PORT: "eighty" is not a whole number/],
    [{ PORT: '70000' }, /^PORT: 70000 is outside 0\.\.65535/],
    [{ HUB_HEARTBEAT_MS: '-5' }, /^HUB_HEARTBEAT_MS: "-5" is not a duration/],
    [{ HUB_DEVICE_RATE: '0' }, /^HUB_DEVICE_RATE: 0 is outside 1\.\./],
    [{ HUB_MAX_FRAME_BYTES: '1.5' }, /^HUB_MAX_FRAME_BYTES: 1 is outside 512\.\./],
    [{ HUB_TLS_CERT: '/c.pem' }, /HUB_TLS_CERT and HUB_TLS_KEY must be set together/],
    [
      { HUB_ADMIN_TOKEN: 'short-but-not-32-characters-long'.slice(0, 31) },
      /^HUB_ADMIN_TOKEN: is shorter than 32 characters/,
    ],
    [{ HUB_LOG_LEVEL: 'loud' }, /^HUB_LOG_LEVEL: "loud" is not one of fatal, error/],
    [{ INFLUX_URL: 'http://x' }, /INFLUX_URL is set without INFLUX_DB/],
    [{ INFLUX_DB: 'x' }, /INFLUX_URL is not set/],
    [{ HUB_SPOOL_MAX_BYTES: 'whatever' }, /^HUB_SPOOL_MAX_BYTES: "whatever" is not a size/],
    [{ HUB_RETENTION_DAYS: 'forever' }, /^HUB_RETENTION_DAYS: "forever" is not a whole number/],
    [{ HUB_SESSION_IDLE_MINUTES: '0' }, /^HUB_SESSION_IDLE_MINUTES: 0 is outside 1\.\./],
    [{ HUB_SECURE_COOKIES: 'maybe' }, /^HUB_SECURE_COOKIES: "maybe" must be true or false/],
    [
      { HUB_ALLOWED_ORIGINS: 'https://ops.example.com/path' },
      /HUB_ALLOWED_ORIGINS: "https:\/\/ops.example.com\/path" is not an origin/,
    ],
  ])('rejects %o with a message naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('documents every variable it reads, with its default, in docs/operations.md', () => {
    const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const defaults: Record<string, string> = {
      PORT: '8080',
      HOST: '0.0.0.0',
      HUB_DATA_DIR: './data',
      HUB_HEARTBEAT_MS: '10000',
      HUB_HELLO_TIMEOUT_MS: '10000',
      HUB_DEVICE_RATE: '100',
      HUB_DEVICE_BURST: '1000',
      HUB_MAX_FRAME_BYTES: '16384',
      HUB_MAX_CONNECTIONS: '20000',
      HUB_LOG_LEVEL: 'info',
    };
    for (const [name, value] of Object.entries(defaults)) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${name}\` |`));
      expect(row, name).toBeDefined();
      expect(row!.split('|')[2]!.trim(), name).toBe(`\`${value}\``);
    }
    expect(doc).toContain('`HUB_ADMIN_TOKEN`');
    expect(doc).toContain('`HUB_TLS_CERT` / `HUB_TLS_KEY`');
  });
});
