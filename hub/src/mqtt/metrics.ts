/**
 * The bridge's Prometheus series (docs/mqtt.md §8), read from its counters at scrape time.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { MqttBridge } from './bridge.js';

function mirrored(registry: Registry, name: string, help: string, read: () => number): void {
  let reported = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now > reported) this.inc(now - reported);
      reported = now;
    },
  });
}

export function registerMqttMetrics(registry: Registry, bridge: MqttBridge): void {
  const registers = [registry];
  new Gauge({
    name: 'tendril_mqtt_broker_up',
    help: '1 while the MQTT bridge is connected to its broker, else 0 (bridged devices show BRIDGE_DISCONNECTED).',
    registers,
    collect() {
      this.set(bridge.link.state === 'up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tendril_mqtt_unacked_messages',
    help: 'QoS 1 messages received and not acknowledged yet (waiting to be durable, or held while the spool is full).',
    registers,
    collect() {
      this.set(bridge.link.unacked);
    },
  });
  new Gauge({
    name: 'tendril_mqtt_devices_attached',
    help: 'MQTT devices attached to the hub now.',
    registers,
    collect() {
      this.set(bridge.status().devicesAttached);
    },
  });
  new Gauge({
    name: 'tendril_mqtt_broker_dropped_messages',
    help: "The broker's own count of messages it dropped ($SYS/broker/publish/messages/dropped: queues full); -1 until the broker publishes it.",
    registers,
    collect() {
      this.set(bridge.status().brokerDropped ?? -1);
    },
  });
  const c = bridge.counts;
  const l = bridge.link.counts;
  mirrored(registry, 'tendril_mqtt_connects_total', 'Connections the bridge made to its broker.', () => l.connects);
  mirrored(registry, 'tendril_mqtt_disconnects_total', 'Broker connections the bridge lost.', () => l.disconnects);
  mirrored(
    registry,
    'tendril_mqtt_pubacks_total',
    'PUBACKs the bridge sent (each after its message was durable or refused).',
    () => l.pubacksSent,
  );
  mirrored(
    registry,
    'tendril_mqtt_readings_total',
    'Readings the bridge handed to ingest (resends after a pause counted again).',
    () => c.readingsFed,
  );
  mirrored(
    registry,
    'tendril_mqtt_unknown_device_messages_total',
    'Messages for devices that are not registered (refused).',
    () => c.unknownDevices,
  );
  registerMqttIngestMetrics(registry, bridge);
}

/** The bridge's ingest and reply counters (the second half of registerMqttMetrics). */
function registerMqttIngestMetrics(registry: Registry, bridge: MqttBridge): void {
  const registers = [registry];
  const c = bridge.counts;
  mirrored(
    registry,
    'tendril_mqtt_qos0_readings_dropped_total',
    'QoS 0 readings refused while their device was held off (spool full or rate limit).',
    () => c.qos0Dropped,
  );
  mirrored(
    registry,
    'tendril_mqtt_commands_published_total',
    'Commands published on tendril/v1/<id>/cmd.',
    () => c.commandsPublished,
  );
  mirrored(
    registry,
    'tendril_mqtt_errors_published_total',
    'Error messages published on tendril/v1/<id>/error.',
    () => c.errorsPublished,
  );
  mirrored(
    registry,
    'tendril_mqtt_errors_suppressed_total',
    "Error messages not published: over the device's budget (100 at once, 10 per second).",
    () => c.errorsSuppressed,
  );
  mirrored(
    registry,
    'tendril_mqtt_store_busy_pauses_total',
    'Times a bridged device was held off because the spool was full (STORE_BUSY).',
    () => c.storeBusyPauses,
  );
  const kinds = Object.keys(c.messages) as Array<keyof typeof c.messages>;
  const reportedKinds = new Map<string, number>();
  new Counter({
    name: 'tendril_mqtt_messages_total',
    help: 'Messages the bridge received, by kind (data, birth, state, cmdResult, template, sys, unrouted).',
    labelNames: ['kind'],
    registers,
    collect() {
      for (const k of kinds) {
        this.labels(k).inc(c.messages[k] - (reportedKinds.get(k) ?? 0));
        reportedKinds.set(k, c.messages[k]);
      }
    },
  });
  const reportedCodes = new Map<string, number>();
  new Counter({
    name: 'tendril_mqtt_refused_total',
    help: 'Messages or values the bridge refused before ingest, by error code (reported on tendril/v1/<id>/error and acked).',
    labelNames: ['code'],
    registers,
    collect() {
      for (const [code, n] of c.refused) {
        this.labels(code).inc(n - (reportedCodes.get(code) ?? 0));
        reportedCodes.set(code, n);
      }
    },
  });
}
