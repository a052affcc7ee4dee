import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { startMosquitto } from '../support/mosquitto.js';
import { pidAlive } from '../support/server-process.js';
import { once } from '../support/wait-for.js';

describe('startMosquitto', () => {
  it('relays a published message to a subscriber on loopback and stops by PID', async () => {
    const broker = await startMosquitto();
    const client = mqtt.connect(broker.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 });
    try {
      expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
      await once(client, 'connect', { what: `an MQTT CONNACK from ${broker.url}` });
      await client.subscribeAsync('tendril/selftest/#', { qos: 1 });
      const received = once(client, 'message', { what: 'the message on tendril/selftest/d1' });
      await client.publishAsync('tendril/selftest/d1', '{"t":21.5}', { qos: 1 });
      const [topic, payload] = await received;
      expect(topic).toBe('tendril/selftest/d1');
      expect(String(payload)).toBe('{"t":21.5}');
    } finally {
      await client.endAsync(true);
      const pid = broker.pid;
      await broker.stop();
      expect(pidAlive(pid)).toBe(false);
    }
  });
});
