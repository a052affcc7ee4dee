/** The command form's model (src/lib/command-catalog.ts): specs from the hub's catalogue, form values to args. */
import { describe, expect, it } from 'vitest';
import { buildArgs, commandsFor, type ModelCatalog, parseJsonArgs } from '../src/lib/command-catalog.js';
import type { MetricDeclaration } from '../src/lib/types.js';

const catalog: ModelCatalog = {
  model: 'power-meter',
  allowUnlisted: false,
  commands: [
    { name: 'relay', label: 'Switch relay', args: [{ name: 'on', type: 'boolean', required: true, default: true }] },
    {
      name: 'set-interval',
      description: 'How often.',
      args: [{ name: 'ms', type: 'integer', label: 'Interval (ms)', min: 100, max: 1000, required: true }],
    },
    { name: 'label', args: [{ name: 'text', type: 'string', maxLength: 5 }] },
  ],
};
const relayMetric: MetricDeclaration[] = [{ name: 'relay', kind: 'bool' }];

describe('command catalogue in the dashboard', () => {
  it("offers the hub catalogue's commands, labels defaulting to names", () => {
    const specs = commandsFor(catalog, []);
    expect(specs.map((s) => [s.name, s.label])).toEqual([
      ['relay', 'Switch relay'],
      ['set-interval', 'set-interval'],
      ['label', 'label'],
    ]);
    expect(specs[0]!.args[0]).toMatchObject({ name: 'on', label: 'on', type: 'boolean', default: true });
    expect(specs[1]!.description).toBe('How often.');
  });

  it('without a catalogue: a switch for a relay or LED metric, nothing hard-coded per model', () => {
    expect(commandsFor(null, relayMetric).map((s) => s.name)).toEqual(['relay']);
    expect(commandsFor(null, [])).toEqual([]);
  });

  it('turns form values into typed args and refuses values outside the catalogue', () => {
    const [relay, interval, label] = commandsFor(catalog, []);
    expect(buildArgs(relay!, { on: false })).toEqual({ args: { on: false } });
    expect(buildArgs(interval!, { ms: '500' })).toEqual({ args: { ms: 500 } });
    expect(buildArgs(interval!, { ms: '50' }).error).toBe('Interval (ms) must be at least 100.');
    expect(buildArgs(interval!, { ms: '1.5' }).error).toBe('Interval (ms) must be a whole number.');
    expect(buildArgs(interval!, { ms: '' }).error).toBe('Interval (ms) is required.');
    expect(buildArgs(label!, { text: 'toolong' }).error).toBe('text must be at most 5 characters.');
    expect(buildArgs(label!, { text: '' })).toEqual({ args: {} });
  });

  it('parses free JSON or says where it is broken', () => {
    expect(parseJsonArgs('')).toEqual({ args: undefined });
    expect(parseJsonArgs('[1, "x"]')).toEqual({ args: [1, 'x'] });
    expect(parseJsonArgs('{bad').error).toMatch(/^Arguments are not valid JSON/);
  });
});
