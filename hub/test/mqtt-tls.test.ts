/**
 * The bridge's broker connection over TLS (mqtts://) with MQTT_CA, and with a client certificate
 * (MQTT_CERT/MQTT_KEY) on a real Mosquitto that requires one: connects when the chain is right, stays down
 * with the reason when the client certificate is missing or the CA is not the broker's.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  getFreePort,
  makeTempDir,
  makeTestCA,
  startMosquitto,
  waitFor,
  type MosquittoServer,
  type TestCA,
} from '../../test/support/index.js';
import { systemClock, systemTimers } from '../src/core/clock.js';
import { BrokerLink } from '../src/mqtt/broker-link.js';
import { mqttConfigFromEnv, type MqttConfig } from '../src/mqtt/config.js';

const run = promisify(execFile);
let broker: MosquittoServer;
let ca: TestCA;
let dir: string;
let tlsUrl: string;

beforeAll(async () => {
  dir = await makeTempDir('mqtt-tls');
  ca = await makeTestCA(dir);
  // A client certificate for the hub, signed by the same CA.
  const p = (f: string) => join(dir, f);
  await run('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    p('hub-key.pem'),
    '-out',
    p('hub.csr'),
    '-subj',
    '/CN=hub',
  ]);
  await writeFile(
    p('hub.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n',
  );
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    p('hub.csr'),
    '-CA',
    ca.caPath,
    '-CAkey',
    p('ca-key.pem'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    p('hub.ext'),
    '-out',
    p('hub.pem'),
  ]);
  const port = await getFreePort();
  tlsUrl = `mqtts://127.0.0.1:${port}`;
  broker = await startMosquitto({
    extraConfig: [
      `listener ${port} 127.0.0.1`,
      `cafile ${ca.caPath}`,
      `certfile ${ca.certPath}`,
      `keyfile ${ca.keyPath}`,
      'require_certificate true',
      'use_identity_as_username true',
    ].join('\n'),
  });
});

afterAll(async () => {
  await broker?.stop();
});

function link(config: MqttConfig) {
  const events = { ups: 0, downs: [] as string[] };
  const l = new BrokerLink(
    {
      url: config.url,
      ca: config.ca,
      cert: config.cert,
      key: config.key,
      clientId: `tls-${Math.random()}`,
      protocolVersion: 5,
      keepaliveSec: 30,
      sessionExpirySec: 60,
      receiveMaximum: 10,
      maximumPacketSize: 1 << 20,
      connectTimeoutMs: 3000,
      reconnectInitialMs: 50,
      reconnectMaxMs: 200,
      subscriptions: [],
      clock: systemClock,
      timers: systemTimers,
    },
    { up: () => events.ups++, down: (r) => events.downs.push(r), subscribed() {}, message() {} },
  );
  l.start();
  return { l, events };
}

it('connects over TLS with the CA and a client certificate', async () => {
  const config = mqttConfigFromEnv({
    MQTT_URL: tlsUrl,
    MQTT_CA: ca.caPath,
    MQTT_CERT: join(dir, 'hub.pem'),
    MQTT_KEY: join(dir, 'hub-key.pem'),
  })!;
  const { l, events } = link(config);
  await waitFor(() => events.ups === 1, { what: 'a TLS connection with the client certificate', timeoutMs: 5000 });
  expect(l.state).toBe('up');
  await l.close();
});

it('stays down, saying why, without the client certificate or with a CA that is not the broker’s', async () => {
  const noCert = link(mqttConfigFromEnv({ MQTT_URL: tlsUrl, MQTT_CA: ca.caPath })!);
  await waitFor(() => noCert.events.downs.length >= 2, {
    what: 'refused attempts without a client certificate',
    timeoutMs: 5000,
  });
  expect(noCert.events.ups).toBe(0);
  await noCert.l.close();

  const otherDir = await makeTempDir('mqtt-tls-other');
  const other = await makeTestCA(otherDir);
  const wrongCa = link(
    mqttConfigFromEnv({
      MQTT_URL: tlsUrl,
      MQTT_CA: other.caPath,
      MQTT_CERT: join(dir, 'hub.pem'),
      MQTT_KEY: join(dir, 'hub-key.pem'),
    })!,
  );
  await waitFor(() => wrongCa.events.downs.length >= 1, {
    what: 'a refused attempt with the wrong CA',
    timeoutMs: 5000,
  });
  expect(wrongCa.events.ups).toBe(0);
  expect(wrongCa.l.lastError).toMatch(/certificate|self.signed|verify/i);
  await wrongCa.l.close();
});
