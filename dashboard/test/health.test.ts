import { beforeAll, expect, it } from 'vitest';
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

it('says nothing while the hub is healthy, and what is wrong when it is not', () => {
  expect(H.healthProblem(null)).toBeNull();
  expect(H.healthProblem(ok)).toBeNull();
  expect(
    H.healthProblem({ ...ok, store: { kind: 'influxdb', state: 'down' }, spool: { ...ok.spool, depthReadings: 1200 } }),
  ).toBe('The influxdb store is down; 1200 readings kept in the spool until it is back.');
  expect(H.healthProblem({ ...ok, spool: { ...ok.spool, accepting: false } })).toMatch(/spool is full/);
  expect(H.healthProblem({ ...ok, spool: { ...ok.spool, oldestUndrainedAgeMs: 90_000 } })).toMatch(/90 s old/);
  expect(H.healthProblem({ ...ok, shuttingDown: true })).toMatch(/shutting down/);
});

it('applies the latest health once per frame', () => {
  const frames = new ManualFrames();
  const state = new H.HealthState({ live: { subscribe: () => ({ close: () => {} }) }, frames });
  state.receive({ kind: 'snapshot', gap: false, health: ok });
  state.receive({ kind: 'health', health: { ...ok, store: { kind: 'sqlite', state: 'down' }, spool: null } });
  expect(frames.queue.size).toBe(1);
  frames.run();
  expect(state.problem).toBe('The sqlite store is down.');
});
