import { describe, expect, it } from 'vitest';
import { LOAD_PRESET, parseOptions, UsageError } from '../src/options.js';

describe('parseOptions', () => {
  it('returns null for --help and -h', () => {
    expect(parseOptions(['--help'])).toBeNull();
    expect(parseOptions(['-h'])).toBeNull();
  });

  it('parses the documented core flags', () => {
    const o = parseOptions([
      '--hub',
      'http://127.0.0.1:8080',
      '--devices',
      '25',
      '--rate',
      '0.5',
      '--duration',
      '30',
      '--json',
    ])!;
    expect(o).toMatchObject({
      hub: 'http://127.0.0.1:8080',
      devices: 25,
      ratePerSecond: 0.5,
      durationSeconds: 30,
      json: true,
      seed: 1,
    });
    expect(o.models.map((m) => m.name)).toEqual(['env-sensor', 'power-meter', 'gps-tracker', 'door-motion']);
  });

  it('takes the token from --token, else from HUB_ADMIN_TOKEN', () => {
    expect(parseOptions(['--hub', 'h:1'], { HUB_ADMIN_TOKEN: 'from-env' })!.token).toBe('from-env');
    expect(parseOptions(['--hub', 'h:1', '--token', 'flag'], { HUB_ADMIN_TOKEN: 'from-env' })!.token).toBe('flag');
    expect(parseOptions(['--hub', 'h:1'], {})!.token).toBeNull();
  });

  it('parses every fault flag', () => {
    const o = parseOptions([
      '--hub',
      'h:1',
      '--drop-rate',
      '12',
      '--latency',
      '40',
      '--clock-skew',
      '-90000',
      '--burst',
      '50/5',
      '--malformed',
      '2',
      '--reconnect-storm',
      '20',
    ])!;
    expect(o.faults).toEqual({
      dropRatePerHour: 12,
      latencyMs: 40,
      clockSkewMs: -90000,
      burst: { readings: 50, everySeconds: 5 },
      malformedDevices: 2,
      reconnectStormSeconds: 20,
    });
    expect(parseOptions(['--hub', 'h:1', '--burst', '10'])!.faults.burst).toEqual({ readings: 10, everySeconds: 30 });
  });

  it('--load presets 10,000 devices, and explicit flags win over the preset', () => {
    const o = parseOptions(['--hub', 'h:1', '--load'])!;
    expect(o.devices).toBe(LOAD_PRESET.devices);
    expect(o.connectsPerSecond).toBe(LOAD_PRESET.connectsPerSecond);
    expect(parseOptions(['--hub', 'h:1', '--load', '--devices', '2000'])!.devices).toBe(2000);
  });

  it.each([
    [['--devices', '25'], /--hub URL is required/],
    [['--hub', 'h:1', '--devices', '0'], /--devices 0: expected an integer >= 1/],
    [['--hub', 'h:1', '--devices', '2.5'], /--devices 2.5: expected an integer/],
    [['--hub', 'h:1', '--rate', 'fast'], /--rate fast: expected a number/],
    [['--hub', 'h:1', '--burst', '5/0'], /--burst 5\/0: expected N or N\/S/],
    [['--hub', 'h:1', '--clock-skew', '1h'], /--clock-skew 1h: expected an integer/],
    [['--hub', 'h:1', '--models', 'env,toaster'], /unknown model "toaster"/],
    [['--hub', 'h:1', '--bogus'], /Unknown option '--bogus'/],
  ])('refuses %j with a message that says what was expected', (argv, message) => {
    expect(() => parseOptions(argv)).toThrow(UsageError);
    expect(() => parseOptions(argv)).toThrow(message);
  });
});
