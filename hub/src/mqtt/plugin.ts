/**
 * The MQTT bridge as a plugin (docs/mqtt.md). Needs tendril-base (config, clock, timers, metrics,
 * lifecycle) and tendril-devices (registry and sessions). Decorates `app.mqttBridge`: null when MQTT_URL
 * is unset, else { status(), readiness(), bridge }. Shuts down in the lifecycle's transports phase: what the
 * bridge took becomes durable and acknowledged, then it disconnects (the broker keeps the session).
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { MqttBridge, type BridgeRegistry, type BridgeStatus } from './bridge.js';
import { mqttConfigFromEnv, type MqttConfig } from './config.js';
import { registerMqttMetrics } from './metrics.js';

export interface MqttBridgeDecoration {
  bridge: MqttBridge;
  status(): BridgeStatus;
  /** 'ok', or why the bridge cannot take readings now (for /readyz). */
  readiness(): 'ok' | string;
}

declare module 'fastify' {
  interface FastifyInstance {
    mqttBridge: MqttBridgeDecoration | null;
  }
}

export interface MqttBridgePluginOptions {
  /** The bridge's configuration; default from the environment (null there = no bridge). */
  config?: MqttConfig | null | undefined;
  random?: (() => number) | undefined;
  /** Pause in ms before reconnecting grows from this (default 500) ... */
  reconnectInitialMs?: number | undefined;
  /** ... to this (default 30 000). */
  reconnectMaxMs?: number | undefined;
}

/** /readyz's view of the bridge: not ready while the broker is unreachable; broker drops are reported. */
export function mqttReadiness(status: BridgeStatus): 'ok' | string {
  if (status.broker !== 'up') {
    return `MQTT broker ${status.url} not reachable (${status.lastError ?? status.broker}): bridged devices are BRIDGE_DISCONNECTED`;
  }
  if (status.brokerDroppedSinceStart > 0) {
    return `the MQTT broker dropped ${status.brokerDroppedSinceStart} messages since the hub connected ($SYS/broker/publish/messages/dropped): raise its max_queued_messages or slow the publishers`;
  }
  return 'ok';
}

export const mqttBridgePlugin = fp<MqttBridgePluginOptions>(
  async (app: FastifyInstance, opts) => {
    const config = opts.config !== undefined ? opts.config : mqttConfigFromEnv(process.env);
    if (config === null) {
      app.decorate('mqttBridge', null);
      return;
    }
    const { registry, sessions } = app.devices;
    const bridgeRegistry: BridgeRegistry = {
      get: (id) => registry.get(id),
      quarantine: (id) => {
        registry.create({ id, labels: { quarantine: 'mqtt' } }, app.clock.now());
        registry.update(id, { disabled: true });
        sessions.events.emit('changed', { deviceId: id, change: 'created' });
      },
    };
    const bridge = new MqttBridge({
      link: {
        url: config.url,
        username: config.username,
        password: config.password,
        ca: config.ca,
        cert: config.cert,
        key: config.key,
        clientId: config.clientId,
        protocolVersion: config.protocolVersion,
        keepaliveSec: config.keepaliveSec,
        sessionExpirySec: config.sessionExpirySec,
        receiveMaximum: config.receiveMaximum,
        maximumPacketSize: config.limits.maxPayloadBytes + 65_536 + 1024,
        connectTimeoutMs: 10_000,
        reconnectInitialMs: opts.reconnectInitialMs ?? 500,
        reconnectMaxMs: opts.reconnectMaxMs ?? 30_000,
      },
      templates: config.file.templates,
      autoRegister: config.file.autoRegister,
      homie: config.file.homie,
      limits: config.limits,
      attacher: sessions,
      registry: bridgeRegistry,
      clock: app.clock,
      timers: app.timers,
      log: app.log.child({ component: 'mqtt' }),
      ...(opts.random ? { random: opts.random } : {}),
    });
    registerMqttMetrics(app.metrics.registry, bridge);
    app.decorate('mqttBridge', {
      bridge,
      status: () => bridge.status(),
      readiness: () => mqttReadiness(bridge.status()),
    });
    app.lifecycle.onShutdown('transports', () => bridge.close());
    app.addHook('onReady', async () => bridge.start());
    app.addHook('onClose', async () => bridge.close());
  },
  { name: 'tendril-mqtt', fastify: '5.x', dependencies: ['tendril-base', 'tendril-devices'] },
);
