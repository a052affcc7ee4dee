/** The MQTT bridge's environment (docs/operations.md, "MQTT bridge"): defaults, and errors that name the variable. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config.js';
import { mqttConfigFromEnv, MQTT_DEFAULTS } from '../src/mqtt/config.js';
import { mqttReadiness } from '../src/mqtt/plugin.js';
import { redactUrl } from '../src/mqtt/bridge-types.js';

describe('mqttConfigFromEnv', () => {
  it('is off without MQTT_URL', () => {
    expect(mqttConfigFromEnv({})).toBeNull();
    expect(mqttConfigFromEnv({ MQTT_URL: '  ' })).toBeNull();
  });

  it('takes the defaults, and credentials from the URL unless the variables say otherwise', () => {
    const c = mqttConfigFromEnv({ MQTT_URL: 'mqtt://hub:s%40cret@broker:1883' })!;
    expect(c).toMatchObject({
      username: 'hub',
      password: 's@cret',
      clientId: MQTT_DEFAULTS.clientId,
      protocolVersion: 5,
      keepaliveSec: 30,
      sessionExpirySec: 604_800,
      receiveMaximum: 1024,
      limits: { maxPayloadBytes: 65_536, maxBatch: 256, maxValues: 64 },
      file: { templates: [], autoRegister: false, homie: null },
    });
    expect(
      mqttConfigFromEnv({ MQTT_URL: 'mqtt://hub:x@broker', MQTT_PASSWORD: 'other', MQTT_PROTOCOL_VERSION: '4' }),
    ).toMatchObject({ password: 'other', protocolVersion: 4 });
  });

  it('names the variable in every error', () => {
    const bad: Array<[Record<string, string>, RegExp]> = [
      [{ MQTT_URL: 'not a url' }, /^MQTT_URL/],
      [{ MQTT_URL: 'ws://broker:9001' }, /^MQTT_URL must start with mqtt/],
      [{ MQTT_URL: 'mqtt://b', MQTT_PROTOCOL_VERSION: '3' }, /^MQTT_PROTOCOL_VERSION/],
      [{ MQTT_URL: 'mqtt://b', MQTT_RECEIVE_MAXIMUM: '0' }, /^MQTT_RECEIVE_MAXIMUM/],
      [{ MQTT_URL: 'mqtt://b', MQTT_KEEPALIVE_S: 'soon' }, /^MQTT_KEEPALIVE_S/],
      [{ MQTT_URL: 'mqtt://b', MQTT_CA: '/nonexistent/ca.pem' }, /^MQTT_CA: cannot read/],
      [{ MQTT_URL: 'mqtt://b', MQTT_CERT: '/nonexistent/c.pem' }, /^MQTT_CERT: cannot read/],
      [{ MQTT_URL: 'mqtt://b', HUB_MQTT_CONFIG: '/nonexistent/bridge.json' }, /^HUB_MQTT_CONFIG: cannot read/],
    ];
    for (const [env, message] of bad) {
      expect(() => mqttConfigFromEnv(env), JSON.stringify(env)).toThrow(ConfigError);
      expect(() => mqttConfigFromEnv(env), JSON.stringify(env)).toThrow(message);
    }
    const dir = mkdtempSync(join(tmpdir(), 'tendril-mqtt-config-'));
    writeFileSync(join(dir, 'cert.pem'), 'x');
    expect(() => mqttConfigFromEnv({ MQTT_URL: 'mqtts://b', MQTT_CERT: join(dir, 'cert.pem') })).toThrow(
      /MQTT_CERT and MQTT_KEY go together/,
    );
    writeFileSync(join(dir, 'bad.json'), '{"templates": [{"name": "x"}]}');
    expect(() => mqttConfigFromEnv({ MQTT_URL: 'mqtt://b', HUB_MQTT_CONFIG: join(dir, 'bad.json') })).toThrow(
      /HUB_MQTT_CONFIG \(.*bad\.json\): templates\[0\]/,
    );
  });
});

describe('status', () => {
  it('never shows the broker password', () => {
    expect(redactUrl('mqtt://hub:secret@broker:1883')).toBe('mqtt://hub:***@broker:1883');
  });

  it('readiness: not ready while the broker is unreachable, and says when the broker dropped messages', () => {
    const base = {
      since: 0,
      reconnectAttempts: 0,
      url: 'mqtt://b',
      refused: 0,
      devicesAttached: 0,
      unackedMessages: 0,
      brokerDropped: 0,
      brokerDroppedSinceStart: 0,
    };
    expect(mqttReadiness({ ...base, broker: 'up', lastError: null })).toBe('ok');
    expect(mqttReadiness({ ...base, broker: 'down', lastError: 'connect ECONNREFUSED' })).toMatch(
      /not reachable \(connect ECONNREFUSED\)/,
    );
    expect(
      mqttReadiness({ ...base, broker: 'up', lastError: null, brokerDropped: 7, brokerDroppedSinceStart: 7 }),
    ).toMatch(/dropped 7 messages/);
  });
});
