/**
 * The one environment reader of the hub. Each capability declares its own section of the configuration with
 * it (config.ts, spool/config.ts, storage/influx-config.ts, auth/settings.ts, mqtt/config.ts); every error is
 * a ConfigError that names the variable, says what was expected and what the default is.
 */
import { readFileSync } from 'node:fs';

export type Env = Record<string, string | undefined>;

/** A variable's value does not fit; `variable` names it. main.ts prints the message and exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly variable: string | null = null,
  ) {
    super(message);
  }
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

interface Bounds {
  min?: number;
  max?: number;
}

export class EnvReader {
  constructor(readonly env: Env) {}

  /** The trimmed value, or undefined when unset or empty. */
  text(name: string): string | undefined {
    const v = this.env[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  }

  /** The value exactly as set (secrets: surrounding spaces may matter), or undefined when unset or empty. */
  raw(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === '' ? undefined : v;
  }

  /** A whole number within [min, max]. */
  int(name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER }: Bounds = {}): number {
    const raw = this.text(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw))
      throw this.error(
        name,
        `"${raw}" is not a whole number; expected an integer in ${min}..${max} (default ${fallback})`,
      );
    return this.within(name, Number(raw), fallback, min, max);
  }

  /** A size: bytes ("1073741824") or a number with a unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB). */
  bytes(name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER }: Bounds = {}): number {
    const raw = this.text(name);
    if (raw === undefined) return fallback;
    const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw);
    const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
    if (!m || unit === undefined) {
      throw this.error(
        name,
        `"${raw}" is not a size; use bytes (1073741824) or a number with KiB, MiB, GiB, KB, MB or GB (e.g. 512MiB)`,
      );
    }
    return this.within(name, Math.floor(Number(m[1]) * unit), fallback, min, max);
  }

  /** A duration in ms: a bare number of `unit`s (default ms), or a number with ms, s, m, h or d ("10s", "5m"). */
  duration(
    name: string,
    fallbackMs: number,
    { min = 0, max = Number.MAX_SAFE_INTEGER, unit = 'ms' }: Bounds & { unit?: keyof typeof DURATION_UNITS } = {},
  ): number {
    const raw = this.text(name);
    if (raw === undefined) return fallbackMs;
    const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/i.exec(raw);
    if (!m)
      throw this.error(
        name,
        `"${raw}" is not a duration; use a number of ${unit === 'ms' ? 'milliseconds' : unit} or one with a unit (500ms, 10s, 5m, 1h, 7d)`,
      );
    const ms = Math.round(Number(m[1]) * DURATION_UNITS[(m[2] ?? unit).toLowerCase()]!);
    return this.within(name, ms, fallbackMs, min, max);
  }

  /** One of `values` (case-insensitive). */
  oneOf<const T extends string>(name: string, values: readonly T[], fallback: T): T {
    const raw = this.text(name);
    if (raw === undefined) return fallback;
    const found = values.find((v) => v === raw.toLowerCase());
    if (found === undefined)
      throw this.error(name, `"${raw}" is not one of ${values.join(', ')} (default ${fallback})`);
    return found;
  }

  /** true/false (also 1/0, yes/no); `fallback` when unset. */
  bool<F extends boolean | null>(name: string, fallback: F): boolean | F {
    const raw = this.text(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (raw === 'true' || raw === '1' || raw === 'yes') return true;
    if (raw === 'false' || raw === '0' || raw === 'no') return false;
    throw this.error(name, `"${raw}" must be true or false`);
  }

  /** A comma-separated list, items trimmed, empty items dropped. */
  list(name: string): string[] {
    return (this.text(name) ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }

  /** A URL whose scheme is one of `protocols` (e.g. ['http:', 'https:']). */
  url(name: string, protocols: readonly string[]): URL | undefined {
    const raw = this.text(name);
    if (raw === undefined) return undefined;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw this.error(name, `"${raw}" is not a URL; expected ${protocols.map((p) => `${p}//host:port`).join(' or ')}`);
    }
    if (!protocols.includes(url.protocol))
      throw this.error(name, `"${raw}" must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
    return url;
  }

  /** The contents of the file the variable names (certificates, keys). */
  file(name: string): Buffer | undefined {
    const path = this.text(name);
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw this.error(name, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }

  /** A ConfigError for `name`: "NAME: what is wrong". */
  error(name: string, what: string): ConfigError {
    return new ConfigError(`${name}: ${what}.`, name);
  }

  private within(name: string, n: number, fallback: number, min: number, max: number): number {
    if (n < min || n > max)
      throw this.error(
        name,
        `${n} is outside ${min}..${max}; set it within that range or unset it for the default ${fallback}`,
      );
    return n;
  }
}
