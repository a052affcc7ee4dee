/**
 * The command catalogue per device model (docs/commands.md, "Command catalogue"): which commands a model
 * accepts, with typed arguments. Admins set it, everyone reads it, the dashboard builds its command form
 * from it, and the command API checks a command against it when the device's model has one. Kept in hub.db
 * with an in-memory copy (a check on every command submit reads memory only).
 */
import type { SqliteDatabase } from '../storage/sqlite.js';
import { HubHttpError } from '../errors.js';

export type ArgType = 'boolean' | 'integer' | 'number' | 'string';

export interface CommandArgSpec {
  name: string;
  type: ArgType;
  label?: string;
  description?: string;
  required?: boolean;
  min?: number;
  max?: number;
  /** Strings only: most characters. */
  maxLength?: number;
  default?: boolean | number | string;
}

export interface CommandSpec {
  name: string;
  label?: string;
  description?: string;
  args?: CommandArgSpec[];
}

export interface ModelCatalogInput {
  /** True: commands not listed here are still sent as they are (free JSON); false: refused. */
  allowUnlisted?: boolean;
  commands: CommandSpec[];
}

export interface ModelCatalog {
  model: string;
  allowUnlisted: boolean;
  commands: CommandSpec[];
  updatedAt: number;
  updatedBy: string;
}

/** Limits of a catalogue (docs/commands.md); the request body limit (64 KiB) applies too. */
export const CATALOG_LIMITS = {
  maxCommands: 64,
  maxArgs: 16,
  maxLabel: 64,
  maxDescription: 512,
  maxStringDefault: 256,
  maxModelLength: 64,
} as const;

const NAME = '^[A-Za-z0-9_.:-]{1,64}$';
const L = CATALOG_LIMITS;
const argSchema = {
  type: 'object',
  required: ['name', 'type'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: NAME },
    type: { type: 'string', enum: ['boolean', 'integer', 'number', 'string'] },
    label: { type: 'string', maxLength: L.maxLabel },
    description: { type: 'string', maxLength: L.maxDescription },
    required: { type: 'boolean' },
    min: { type: 'number' },
    max: { type: 'number' },
    maxLength: { type: 'integer', minimum: 1, maximum: 4096 },
    default: { type: ['boolean', 'number', 'string'], maxLength: L.maxStringDefault },
  },
} as const;

/** JSON schema of the PUT body (fastify validates it; `checkCatalog` adds what a schema cannot say). */
export const catalogBodySchema = {
  type: 'object',
  required: ['commands'],
  additionalProperties: false,
  properties: {
    allowUnlisted: { type: 'boolean' },
    commands: {
      type: 'array',
      maxItems: L.maxCommands,
      items: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', pattern: NAME },
          label: { type: 'string', maxLength: L.maxLabel },
          description: { type: 'string', maxLength: L.maxDescription },
          args: { type: 'array', maxItems: L.maxArgs, items: argSchema },
        },
      },
    },
  },
} as const;

function invalid(message: string): HubHttpError {
  return new HubHttpError('INVALID_REQUEST', message);
}

/** Unique names, min <= max, defaults of the argument's type and within its range. */
export function checkCatalog(input: ModelCatalogInput): void {
  const names = new Set<string>();
  input.commands.forEach((c, i) => {
    if (names.has(c.name)) throw invalid(`body/commands/${i}/name "${c.name}" appears twice.`);
    names.add(c.name);
    const argNames = new Set<string>();
    (c.args ?? []).forEach((a, j) => {
      const at = `body/commands/${i}/args/${j}`;
      if (argNames.has(a.name)) throw invalid(`${at}/name "${a.name}" appears twice in command "${c.name}".`);
      argNames.add(a.name);
      if (a.min !== undefined && a.max !== undefined && a.min > a.max) throw invalid(`${at}: min is above max.`);
      if ((a.min !== undefined || a.max !== undefined) && a.type !== 'integer' && a.type !== 'number')
        throw invalid(`${at}: min and max apply to integer and number arguments only.`);
      if (a.maxLength !== undefined && a.type !== 'string') throw invalid(`${at}: maxLength applies to strings only.`);
      if (a.default !== undefined) {
        const problem = argProblem(a, a.default);
        if (problem) throw invalid(`${at}/default: ${problem}`);
      }
    });
  });
}

/** Why `value` does not fit `a`, or null. */
function argProblem(a: CommandArgSpec, value: unknown): string | null {
  switch (a.type) {
    case 'boolean':
      return typeof value === 'boolean' ? null : `${JSON.stringify(value)} is not true or false`;
    case 'string':
      if (typeof value !== 'string') return `${JSON.stringify(value)} is not a string`;
      if (a.maxLength !== undefined && value.length > a.maxLength) return `longer than ${a.maxLength} characters`;
      return null;
    default: {
      if (typeof value !== 'number' || !Number.isFinite(value)) return `${JSON.stringify(value)} is not a number`;
      if (a.type === 'integer' && !Number.isInteger(value)) return `${value} is not a whole number`;
      if (a.min !== undefined && value < a.min) return `${value} is below the minimum ${a.min}`;
      if (a.max !== undefined && value > a.max) return `${value} is above the maximum ${a.max}`;
      return null;
    }
  }
}

/**
 * Checks a command against its model's catalogue: COMMAND_UNKNOWN for a command the catalogue does not list
 * (unless it allows unlisted ones), COMMAND_ARGS_INVALID for arguments that do not fit. No catalogue: any.
 */
export function checkCommand(catalog: ModelCatalog | undefined, name: string, args: unknown): void {
  if (!catalog) return;
  const spec = catalog.commands.find((c) => c.name === name);
  if (!spec) {
    if (catalog.allowUnlisted) return;
    const known = catalog.commands.map((c) => c.name).join(', ') || 'none';
    throw new HubHttpError(
      'COMMAND_UNKNOWN',
      `Model "${catalog.model}" does not list a command "${name}" (it lists: ${known}); see GET /api/v1/models/${encodeURIComponent(catalog.model)}.`,
    );
  }
  const specs = spec.args ?? [];
  const bad = (why: string) =>
    new HubHttpError('COMMAND_ARGS_INVALID', `Command "${name}" of model "${catalog.model}": ${why}.`);
  if (args === undefined || args === null) {
    const missing = specs.find((a) => a.required);
    if (missing) throw bad(`args/${missing.name} is required`);
    return;
  }
  if (typeof args !== 'object' || Array.isArray(args)) throw bad('args must be a JSON object of named arguments');
  const given = args as Record<string, unknown>;
  for (const key of Object.keys(given))
    if (!specs.some((a) => a.name === key))
      throw bad(`args/${key} is not an argument of it (it takes: ${specs.map((a) => a.name).join(', ') || 'none'})`);
  for (const a of specs) {
    if (!Object.hasOwn(given, a.name)) {
      if (a.required) throw bad(`args/${a.name} is required`);
      continue;
    }
    const problem = argProblem(a, given[a.name]);
    if (problem) throw bad(`args/${a.name}: ${problem}`);
  }
}

interface Row {
  model: string;
  spec: string;
  updated_at: number;
  updated_by: string;
}

export class CommandCatalog {
  private readonly byModel = new Map<string, ModelCatalog>();
  private readonly stmt;

  constructor(db: SqliteDatabase) {
    db.exec(`CREATE TABLE IF NOT EXISTS model_commands (
      model TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_at INTEGER NOT NULL, updated_by TEXT NOT NULL) STRICT`);
    this.stmt = {
      put: db.prepare(
        `INSERT INTO model_commands (model, spec, updated_at, updated_by) VALUES (?, ?, ?, ?)
           ON CONFLICT (model) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      ),
      remove: db.prepare(`DELETE FROM model_commands WHERE model = ?`),
      all: db.prepare(`SELECT model, spec, updated_at, updated_by FROM model_commands`),
    };
    for (const row of this.stmt.all.all() as Row[]) {
      const spec = JSON.parse(row.spec) as ModelCatalogInput;
      this.byModel.set(row.model, {
        model: row.model,
        allowUnlisted: spec.allowUnlisted ?? false,
        commands: spec.commands,
        updatedAt: row.updated_at,
        updatedBy: row.updated_by,
      });
    }
  }

  get(model: string): ModelCatalog | undefined {
    return this.byModel.get(model);
  }

  list(): ModelCatalog[] {
    return [...this.byModel.values()].sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
  }

  /** Replaces the model's catalogue (checked with checkCatalog first). */
  set(model: string, input: ModelCatalogInput, by: string, now: number): ModelCatalog {
    checkCatalog(input);
    const catalog: ModelCatalog = {
      model,
      allowUnlisted: input.allowUnlisted ?? false,
      commands: input.commands,
      updatedAt: now,
      updatedBy: by,
    };
    this.stmt.put.run(
      model,
      JSON.stringify({ allowUnlisted: catalog.allowUnlisted, commands: input.commands }),
      now,
      by,
    );
    this.byModel.set(model, catalog);
    return catalog;
  }

  delete(model: string): boolean {
    if (!this.byModel.has(model)) return false;
    this.stmt.remove.run(model);
    this.byModel.delete(model);
    return true;
  }
}
