import { SDK_VERSION } from '@tendril/device-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/index.js';
import { Fleet } from '../src/fleet.js';
import { envSensor, powerMeter } from '../src/models/index.js';
import { FakeCommandHub, type RecordedReading } from './fake-command-hub.js';

describe('commands every simulated device answers (through the SDK handlers)', () => {
  let hub: FakeCommandHub;
  let fleet: Fleet;
  const readingsOf = (id: string): RecordedReading[] => hub.readings.get(id) ?? [];

  beforeAll(async () => {
    hub = await FakeCommandHub.start();
    fleet = new Fleet({
      deviceUrl: hub.url,
      devices: [
        { id: 'env-0001', name: 'Env sensor 1', model: envSensor, token: 'token-env-0001', seed: 1 },
        { id: 'power-0001', name: 'Power meter 1', model: powerMeter, token: 'token-power-0001', seed: 2 },
      ],
      ratePerSecond: 2,
      reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    });
    fleet.start();
    await waitFor(() => hub.isConnected('env-0001') && hub.isConnected('power-0001'), { what: 'both devices connected to the fake hub' });
  });

  afterAll(async () => {
    await fleet?.close();
    await hub?.close();
  });

  it('set-interval {ms} changes the reporting interval', async () => {
    const result = await hub.command('env-0001', 'set-interval', { ms: 100 });
    expect(result).toMatchObject({ status: 'succeeded', detail: '{"intervalMs":100}' });
    const from = readingsOf('env-0001').length;
    await waitFor(() => readingsOf('env-0001').length >= from + 8, { what: '8 readings from env-0001 at the new interval' });
    const ts = readingsOf('env-0001').slice(from + 2, from + 8).map((r) => r.ts!);
    const gaps = ts.slice(1).map((t, i) => t - ts[i]!);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(60);
      expect(gap).toBeLessThanOrEqual(160);
    }
    await hub.command('env-0001', 'set-interval', { ms: 500 });
  });

  it('set-interval with a bad interval is rejected with the reason', async () => {
    const result = await hub.command('env-0001', 'set-interval', { ms: 5 });
    expect(result.status).toBe('rejected');
    expect(result.detail).toMatch(/set-interval needs \{"ms": integer 100\.\./);
  });

  it('relay {on} switches a power meter and reports the new state as a reading at once', async () => {
    const result = await hub.command('power-0001', 'relay', { on: false });
    expect(result).toMatchObject({ status: 'succeeded', detail: '{"relay":false}' });
    const state = await waitFor(() => readingsOf('power-0001').find((r) => Object.keys(r.named).join() === 'relay'), { what: 'a reading with just the relay state' });
    expect(state.named.relay).toBe(false);
    // Regular readings now show the relay off and no current.
    const after = readingsOf('power-0001').length;
    const next = await waitFor(() => readingsOf('power-0001').slice(after).find((r) => 'current' in r.named), { what: 'the next full power meter reading' });
    expect(next.named).toMatchObject({ relay: false, current: 0 });
  });

  it('led {on} switches an env sensor; relay on a device without one is rejected', async () => {
    expect(await hub.command('env-0001', 'led', { on: true })).toMatchObject({ status: 'succeeded', detail: '{"led":true}' });
    await waitFor(() => readingsOf('env-0001').find((r) => r.named.led === true && Object.keys(r.named).length === 1), { what: 'the LED state reading' });
    const wrong = await hub.command('env-0001', 'relay', { on: true });
    expect(wrong.status).toBe('rejected');
    expect(wrong.detail).toMatch(/has a led, not a relay/);
    const bad = await hub.command('env-0001', 'led', { on: 'yes' });
    expect(bad).toMatchObject({ status: 'rejected' });
    expect(bad.detail).toMatch(/needs \{"on": true\|false\}/);
  });

  it('firmware-info returns the firmware, SDK and model', async () => {
    const result = await hub.command('power-0001', 'firmware-info');
    expect(result.status).toBe('succeeded');
    expect(JSON.parse(result.detail)).toMatchObject({ model: 'power-meter', firmware: powerMeter.firmware, sdk: SDK_VERSION });
  });

  it('an unknown command is rejected with a reason', async () => {
    const result = await hub.command('env-0001', 'self-destruct', { now: true });
    expect(result.status).toBe('rejected');
    expect(result.detail).toMatch(/unknown command "self-destruct"/);
  });

  it('reboot {delayMs} disconnects, comes back after the delay, and resumes reporting in the same epoch', async () => {
    const hellosBefore = hub.hellos.filter((h) => h.deviceId === 'power-0001').length;
    const sentAt = Date.now();
    const result = await hub.command('power-0001', 'reboot', { delayMs: 400 });
    expect(result).toMatchObject({ status: 'succeeded', detail: '{"rebooting":true,"delayMs":400}' });
    await waitFor(() => hub.closes.some((c) => c.deviceId === 'power-0001' && c.code === 1000), { what: 'power-0001 closing its connection for the reboot' });
    const hello = await waitFor(() => hub.hellos.filter((h) => h.deviceId === 'power-0001')[hellosBefore], { what: 'power-0001 saying HELLO again after the reboot' });
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(400);
    expect(hello.epoch).toBe(hub.hellos.find((h) => h.deviceId === 'power-0001')!.epoch);
    const count = readingsOf('power-0001').length;
    await waitFor(() => readingsOf('power-0001').length > count, { what: 'power-0001 reporting again after the reboot' });
  });

  it('counts the commands it handled, by name', () => {
    const c = fleet.counters;
    expect(c.commandsByName['set-interval']).toBe(3);
    expect(c.commandsByName.reboot).toBe(1);
    expect(c.commandsByName['firmware-info']).toBe(1);
    // bad interval, relay on an env sensor, led "yes"; the unknown command is rejected by the SDK itself
    expect(c.commandsRejected).toBe(3);
  });
});
