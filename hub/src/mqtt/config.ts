/**
 * The MQTT bridge's section of the environment (docs/mqtt.md §7, docs/operations.md). MQTT_URL unset =
 * no bridge. Every error names its variable.
 */
import { ConfigError, EnvReader } from '../core/env.js';
import type { DataLimits } from './payload.js';
import { loadBridgeConfig, TemplateError, type BridgeFileConfig } from './templates.js';

export interface MqttConfig {
  url: string;
  username: string | undefined;
  password: string | undefined;
  ca: Buffer | undefined;
  cert: Buffer | undefined;
  key: Buffer | undefined;
  /** Must stay the same across restarts: the broker keeps the persistent session under it. */
  clientId: string;
  protocolVersion: 4 | 5;
  keepaliveSec: number;
  sessionExpirySec: number;
  receiveMaximum: number;
  limits: DataLimits;
  file: BridgeFileConfig;
}

export const MQTT_DEFAULTS = Object.freeze({
  clientId: 'tendril-hub',
  protocolVersion: 5 as const,
  keepaliveSec: 30,
  /** A week: the broker keeps QoS 1 messages for a hub that is down that long. */
  sessionExpirySec: 604_800,
  receiveMaximum: 1024,
  maxPayloadBytes: 65_536,
});

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  return new EnvReader(env).int(name, fallback, { min, max });
}

function file(env: Env, name: string): Buffer | undefined {
  return new EnvReader(env).file(name);
}

/** The bridge's configuration, or null when MQTT_URL is unset (no bridge). */
export function mqttConfigFromEnv(env: Env = process.env): MqttConfig | null {
  const raw = env.MQTT_URL?.trim();
  if (raw === undefined || raw === '') return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`MQTT_URL must be a URL such as mqtt://broker:1883 or mqtts://broker:8883, got "${raw}"`);
  }
  if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:'].includes(url.protocol)) {
    throw new ConfigError(
      `MQTT_URL must start with mqtt:// or mqtts:// (WebSocket brokers are not supported), got "${url.protocol}//"`,
    );
  }
  // Credentials in the URL work too; the variables win.
  const username = env.MQTT_USERNAME ?? (url.username !== '' ? decodeURIComponent(url.username) : undefined);
  const password = env.MQTT_PASSWORD ?? (url.password !== '' ? decodeURIComponent(url.password) : undefined);
  const version = int(env, 'MQTT_PROTOCOL_VERSION', MQTT_DEFAULTS.protocolVersion, 4, 5);
  const clientId = env.MQTT_CLIENT_ID?.trim() || MQTT_DEFAULTS.clientId;
  if (Buffer.byteLength(clientId) > 65_535) throw new ConfigError('MQTT_CLIENT_ID is too long');
  const cert = file(env, 'MQTT_CERT');
  const key = file(env, 'MQTT_KEY');
  if ((cert === undefined) !== (key === undefined))
    throw new ConfigError('MQTT_CERT and MQTT_KEY go together (a client certificate and its key)');
  let bridgeFile: BridgeFileConfig = { templates: [], autoRegister: false, homie: null };
  const configPath = env.HUB_MQTT_CONFIG?.trim();
  if (configPath) {
    try {
      bridgeFile = loadBridgeConfig(configPath);
    } catch (err) {
      if (err instanceof TemplateError) throw new ConfigError(err.message);
      throw err;
    }
  }
  return {
    url: raw,
    username,
    password,
    ca: file(env, 'MQTT_CA'),
    cert,
    key,
    clientId,
    protocolVersion: version === 4 ? 4 : 5,
    keepaliveSec: int(env, 'MQTT_KEEPALIVE_S', MQTT_DEFAULTS.keepaliveSec, 5, 3600),
    sessionExpirySec: int(env, 'MQTT_SESSION_EXPIRY_S', MQTT_DEFAULTS.sessionExpirySec, 0, 0xffff_ffff),
    receiveMaximum: int(env, 'MQTT_RECEIVE_MAXIMUM', MQTT_DEFAULTS.receiveMaximum, 1, 65_535),
    limits: {
      maxPayloadBytes: int(env, 'MQTT_MAX_PAYLOAD_BYTES', MQTT_DEFAULTS.maxPayloadBytes, 1024, 16 * 1024 * 1024),
      maxBatch: 256,
      maxValues: 64,
    },
    file: bridgeFile,
  };
}
