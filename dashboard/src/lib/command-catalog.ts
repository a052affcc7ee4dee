/**
 * What a device accepts, for the command form. The hub does not (yet) publish command schemas, so the form
 * knows the commands of the Tendril SDK's simulated models (simulator/src/fleet.ts) and offers a switch
 * command for any device that reports a `relay` or `led` metric; every device also takes free JSON.
 */
import type { MetricDeclaration } from './types.js';

export interface ArgField {
  name: string;
  type: 'boolean' | 'integer' | 'number' | 'string';
  label: string;
  min?: number;
  max?: number;
  default?: boolean | number | string;
  required?: boolean;
}

export interface CommandSpec {
  name: string;
  label: string;
  args: ArgField[];
  description: string;
}

const COMMON: CommandSpec[] = [
  {
    name: 'set-interval',
    label: 'Set reporting interval',
    description: 'How often the device sends a reading.',
    args: [
      { name: 'ms', type: 'integer', label: 'Interval (ms)', min: 100, max: 86_400_000, default: 5000, required: true },
    ],
  },
  {
    name: 'reboot',
    label: 'Reboot',
    description: 'Restart the device after a delay.',
    args: [{ name: 'delayMs', type: 'integer', label: 'Delay (ms)', min: 0, max: 600_000, default: 5000 }],
  },
  { name: 'firmware-info', label: 'Firmware info', description: 'Report model, firmware and uptime.', args: [] },
];

const SIMULATED_MODELS = new Set(['env-sensor', 'power-meter', 'gps-tracker', 'door-motion']);

function switchCommand(name: 'relay' | 'led'): CommandSpec {
  return {
    name,
    label: name === 'relay' ? 'Switch relay' : 'Switch LED',
    description: `Turn the ${name} on or off.`,
    args: [{ name: 'on', type: 'boolean', label: 'On', default: true, required: true }],
  };
}

/** Commands the form offers for a device of `model` declaring `metrics`. */
export function commandsFor(model: string, metrics: readonly MetricDeclaration[]): CommandSpec[] {
  const out: CommandSpec[] = [];
  for (const name of ['relay', 'led'] as const) {
    if (metrics.some((m) => m.name === name && m.kind === 'bool')) out.push(switchCommand(name));
  }
  if (SIMULATED_MODELS.has(model)) out.push(...COMMON);
  return out;
}

/** Turns form values (strings from inputs, booleans from checkboxes) into the command's args, or an error. */
export function buildArgs(
  spec: CommandSpec,
  values: Record<string, string | boolean>,
): { args?: Record<string, unknown>; error?: string } {
  const args: Record<string, unknown> = {};
  for (const f of spec.args) {
    const raw = values[f.name];
    if (f.type === 'boolean') {
      args[f.name] = raw === true || raw === 'true';
      continue;
    }
    const text = typeof raw === 'string' ? raw.trim() : '';
    if (text === '') {
      if (f.required) return { error: `${f.label} is required.` };
      continue;
    }
    if (f.type === 'string') {
      args[f.name] = text;
      continue;
    }
    const n = Number(text);
    if (!Number.isFinite(n) || (f.type === 'integer' && !Number.isInteger(n)))
      return { error: `${f.label} must be ${f.type === 'integer' ? 'a whole number' : 'a number'}.` };
    if (f.min !== undefined && n < f.min) return { error: `${f.label} must be at least ${f.min}.` };
    if (f.max !== undefined && n > f.max) return { error: `${f.label} must be at most ${f.max}.` };
    args[f.name] = n;
  }
  return { args };
}

/** Free JSON args: parsed, or an error saying where it is broken. Empty text means no args. */
export function parseJsonArgs(text: string): { args?: unknown; error?: string } {
  if (text.trim() === '') return { args: undefined };
  try {
    return { args: JSON.parse(text) };
  } catch (err) {
    return { error: `Arguments are not valid JSON: ${(err as Error).message}` };
  }
}
