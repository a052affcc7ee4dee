/**
 * What a device accepts, for the command form: the command catalogue its model publishes on the hub
 * (GET /api/v1/models/:model, docs/commands.md "Command catalogue"). A model without one gets an on/off
 * switch when the device reports a `relay` or `led` boolean; every device also takes free JSON (a name and
 * any JSON arguments), which the hub refuses only when the catalogue says `allowUnlisted: false`.
 */
import type { MetricDeclaration } from './types.js';

export interface ArgField {
  name: string;
  type: 'boolean' | 'integer' | 'number' | 'string';
  label: string;
  min?: number;
  max?: number;
  maxLength?: number;
  default?: boolean | number | string;
  required?: boolean;
}

export interface CommandSpec {
  name: string;
  label: string;
  args: ArgField[];
  description: string;
}

/** A model's catalogue as the hub answers it. */
export interface ModelCatalog {
  model: string;
  allowUnlisted: boolean;
  commands: Array<{
    name: string;
    label?: string;
    description?: string;
    args?: Array<Omit<ArgField, 'label'> & { label?: string; description?: string }>;
  }>;
  updatedAt?: number;
  updatedBy?: string;
}

function switchCommand(name: 'relay' | 'led'): CommandSpec {
  return {
    name,
    label: name === 'relay' ? 'Switch relay' : 'Switch LED',
    description: `Turn the ${name} on or off.`,
    args: [{ name: 'on', type: 'boolean', label: 'On', default: true, required: true }],
  };
}

/** Commands the form offers: the model's catalogue when it has one, else a switch for a relay or LED. */
export function commandsFor(catalog: ModelCatalog | null, metrics: readonly MetricDeclaration[]): CommandSpec[] {
  if (catalog) {
    return catalog.commands.map((c) => ({
      name: c.name,
      label: c.label ?? c.name,
      description: c.description ?? '',
      args: (c.args ?? []).map(({ description: _d, ...a }) => ({ ...a, label: a.label ?? a.name })),
    }));
  }
  const out: CommandSpec[] = [];
  for (const name of ['relay', 'led'] as const) {
    if (metrics.some((m) => m.name === name && m.kind === 'bool')) out.push(switchCommand(name));
  }
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
      if (f.maxLength !== undefined && text.length > f.maxLength)
        return { error: `${f.label} must be at most ${f.maxLength} characters.` };
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
