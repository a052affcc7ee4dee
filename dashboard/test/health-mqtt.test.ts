import { beforeAll, expect, it } from 'vitest';
import { reasonText } from '../src/lib/format.js';
import type { MqttHealth } from '../src/lib/live/protocol.js';
import type * as HealthModule from '../src/lib/state/health.svelte.js';
import { importRunes, ManualFrames } from './runes.js';

let H: typeof HealthModule;
beforeAll(async () => {
  H = await importRunes<typeof HealthModule>('../src/lib/state/health.svelte.ts');
});

const ok = {
  store: { kind: 'influxdb', state: 'up' as const },
  spool: { accepting: true, depthBytes: 0, depthReadings: 0, oldestUndrainedAgeMs: 0 },
  devices: { connected: 3, registered: 3 },
  shuttingDown: false,
};
const bridge: MqttHealth = {
  broker: 'up',
  url: 'mqtt://broker:1883',
  since: 1_000,
  reconnectAttempts: 0,
  lastError: null,
  brokerDropped: 40,
  brokerDroppedSinceStart: 0,
  refused: 2,
  unackedMessages: 5,
  devicesAttached: 3,
};

it('names the MQTT broker when it is unreachable or dropping messages, and says nothing while it is fine', () => {
  expect(H.healthProblem({ ...ok, mqtt: bridge })).toBeNull();
  expect(
    H.healthProblem({
      ...ok,
      mqtt: { ...bridge, broker: 'down', lastError: 'connect ECONNREFUSED 127.0.0.1:1883', reconnectAttempts: 4 },
    }),
  ).toBe(
    'The MQTT broker mqtt://broker:1883 is unreachable (connect ECONNREFUSED 127.0.0.1:1883), 4 reconnect attempts so far: MQTT devices show as unknown until it is back.',
  );
  expect(H.healthProblem({ ...ok, mqtt: { ...bridge, broker: 'connecting', lastError: 'not connected yet' } })).toMatch(
    /MQTT broker mqtt:\/\/broker:1883 is unreachable \(not connected yet\):/,
  );
  expect(H.healthProblem({ ...ok, mqtt: { ...bridge, brokerDropped: 52, brokerDroppedSinceStart: 12 } })).toMatch(
    /MQTT broker mqtt:\/\/broker:1883 dropped 12 messages since the hub connected/,
  );
  // The hub stopping on purpose is not a broker problem.
  expect(H.healthProblem({ ...ok, mqtt: { ...bridge, broker: 'closed', lastError: 'closed by the hub' } })).toBeNull();
  // A store that is down is said first: readings are at stake there.
  expect(
    H.healthProblem({ ...ok, store: { kind: 'influxdb', state: 'down' }, mqtt: { ...bridge, broker: 'down' } }),
  ).toMatch(/influxdb store is down/);
});

it('a health event with the broker gone becomes the problem shown under the header', () => {
  const frames = new ManualFrames();
  const state = new H.HealthState({ live: { subscribe: () => ({ close: () => {} }) }, frames });
  state.receive({ kind: 'snapshot', gap: false, health: { ...ok, mqtt: bridge } });
  frames.run();
  expect(state.problem).toBeNull();
  state.receive({ kind: 'health', health: { ...ok, mqtt: { ...bridge, broker: 'down', lastError: 'keepalive' } } });
  frames.run();
  expect(state.problem).toMatch(/^The MQTT broker mqtt:\/\/broker:1883 is unreachable \(keepalive\)/);
  expect(state.health?.mqtt?.refused).toBe(2);
});

it('the fleet view says the MQTT presence reasons in words', () => {
  expect(reasonText('MQTT_WILL')).toBe('vanished (its MQTT last will)');
  expect(reasonText('BRIDGE_DISCONNECTED')).toBe('unknown: the hub lost its MQTT broker');
});
