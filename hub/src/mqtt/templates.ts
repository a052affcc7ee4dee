/**
 * Topic templates for fleets that already speak MQTT in their own shapes (docs/mqtt.md §4), in the
 * spirit of Telegraf's topic parsing: a template maps a topic (with a `{device}` level) and JSON paths in
 * the payload to a device, its metrics and their timestamp. Loaded from the JSON file HUB_MQTT_CONFIG.
 *
 *   { "templates": [ { "name": "tasmota", "topic": "tele/{device}/SENSOR", "deviceId": "tasmota-{device}",
 *       "metrics": [ { "name": "temperature", "path": "AM2301.Temperature", "kind": "f64", "unit": "°C" } ] } ] }
 */
import { readFileSync } from 'node:fs';
import type { MetricDeclaration } from '@tendril/device-sdk/codec';
import {
  isRefusal,
  parseDeclarations,
  parseJson,
  parseTimestamp,
  refusal,
  type BridgeRefusal,
  type DataLimits,
  type JsonReading,
} from './payload.js';
import { compileTopicPattern, isDeviceId, TemplateError, type TopicPattern } from './topics.js';

export { TemplateError };

export interface TemplateConfig {
  /** Shown in logs and metrics. */
  name: string;
  /** MQTT topic with one `{device}` level, e.g. `tele/{device}/SENSOR`; `+` and a final `#` allowed. */
  topic: string;
  /** The hub's device id made from the `{device}` level; default `{device}`. */
  deviceId?: string;
  /** Path of an array of readings in the payload (default: the payload itself when it is an array). */
  readings?: string;
  /** Path, inside a reading, of the object holding the metrics (e.g. ThingsBoard's `values`). */
  values?: string;
  /** Where the timestamp is, in a reading; none = hub arrival time. */
  timestamp?: { path: string; unit?: 'ms' | 's' | 'iso' };
  /** The metrics, each with the JSON path of its value in a reading (relative to `values`). */
  metrics: Array<{ name: string; path: string; kind: string; unit?: string; min?: number; max?: number }>;
  /**
   * Presence: a topic (with the same `{device}` level) whose payload says online or offline, e.g. Tasmota's
   * retained last will `tele/{device}/LWT` (`Online`/`Offline`). `path`: where the word is in a JSON payload
   * (Zigbee2MQTT's `{"state": "online"}`); without it the payload is the word.
   */
  availability?: { topic: string; online: string; offline: string; path?: string };
}

export interface CompiledTemplate {
  readonly name: string;
  readonly pattern: TopicPattern;
  readonly metrics: readonly MetricDeclaration[];
  /** The device id for a topic, or null when the topic is not this template's (or the id is invalid). */
  deviceFor(topic: string): string | null;
  /** The readings of one payload (names are the declared metric names). */
  readingsOf(payload: Uint8Array, limits: DataLimits): JsonReading[] | BridgeRefusal;
  /** The availability topic's subscription filter, if the template has one. */
  readonly availabilityFilter: string | null;
  /** For a message on the availability topic: the device and whether it is online (null: not this topic, or neither word). */
  availabilityOf(topic: string, payload: Uint8Array): { deviceId: string; online: boolean } | null;
}

type Path = readonly string[];

function compilePath(path: string, where: string): Path {
  if (path === '') return [];
  const parts = path.split('.');
  if (parts.some((p) => p === '')) throw new TemplateError(`${where}: path "${path}" has an empty level`);
  return parts;
}

function at(obj: unknown, path: Path): unknown {
  let cur = obj;
  for (const key of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** Checks a template of the configuration file and compiles its topic, paths and declarations. */
function checkTemplate(config: TemplateConfig, index: number) {
  const where = `templates[${index}]${typeof config?.name === 'string' ? ` (${config.name})` : ''}`;
  if (typeof config !== 'object' || config === null) throw new TemplateError(`${where} must be an object`);
  if (typeof config.name !== 'string' || config.name === '')
    throw new TemplateError(`${where}.name must be a non-empty string`);
  if (typeof config.topic !== 'string' || !config.topic.includes('{device}')) {
    throw new TemplateError(`${where}.topic must be an MQTT topic with a {device} level, e.g. tele/{device}/SENSOR`);
  }
  const pattern = compileTopicPattern(config.topic);
  const idTemplate = config.deviceId ?? '{device}';
  if (typeof idTemplate !== 'string' || !idTemplate.includes('{device}'))
    throw new TemplateError(`${where}.deviceId must contain {device}`);
  if (!Array.isArray(config.metrics)) throw new TemplateError(`${where}.metrics must be an array`);
  const parsed = parseDeclarations(
    config.metrics.map(({ name, kind, unit, min, max }) => ({ name, kind, unit, min, max })),
  );
  if (isRefusal(parsed)) throw new TemplateError(`${where}.metrics: ${parsed.message}`);
  const declared: MetricDeclaration[] = parsed;
  if (declared.length === 0) throw new TemplateError(`${where}.metrics must declare at least one metric`);
  const paths = config.metrics.map((m, i) => {
    if (typeof m.path !== 'string')
      throw new TemplateError(`${where}.metrics[${i}].path must be a JSON path such as AM2301.Temperature`);
    return compilePath(m.path, `${where}.metrics[${i}]`);
  });
  const readingsPath = config.readings === undefined ? null : compilePath(config.readings, `${where}.readings`);
  const valuesPath = config.values === undefined ? null : compilePath(config.values, `${where}.values`);
  const ts = config.timestamp;
  if (
    ts !== undefined &&
    (typeof ts.path !== 'string' || (ts.unit !== undefined && !['ms', 's', 'iso'].includes(ts.unit)))
  ) {
    throw new TemplateError(`${where}.timestamp must be {"path": "...", "unit": "ms" | "s" | "iso"}`);
  }
  const tsPath = ts === undefined ? null : compilePath(ts.path, `${where}.timestamp`);
  const tsUnit: 'ms' | 's' = ts?.unit === 's' ? 's' : 'ms';
  const avail = config.availability;
  if (
    avail !== undefined &&
    (typeof avail.topic !== 'string' ||
      !avail.topic.includes('{device}') ||
      typeof avail.online !== 'string' ||
      typeof avail.offline !== 'string')
  ) {
    throw new TemplateError(
      `${where}.availability must be {"topic": "...{device}...", "online": "...", "offline": "...", "path"?: "..."}`,
    );
  }
  const availPattern = avail === undefined ? null : compileTopicPattern(avail.topic);
  const availPath = avail?.path === undefined ? null : compilePath(avail.path, `${where}.availability`);
  return {
    pattern,
    idTemplate,
    declared,
    paths,
    readingsPath,
    valuesPath,
    tsPath,
    tsUnit,
    avail,
    availPattern,
    availPath,
  };
}

/** One reading of a template's payload: its timestamp and the declared metrics found at their paths. */
function readingOfItem(
  t: ReturnType<typeof checkTemplate>,
  template: string,
  item: unknown,
): JsonReading | BridgeRefusal {
  const { tsPath, tsUnit, valuesPath, declared, paths } = t;
  let when: number | null = null;
  if (tsPath !== null) {
    const raw = at(item, tsPath);
    if (raw !== undefined) {
      const parsed = parseTimestamp(raw, tsUnit);
      if (isRefusal(parsed)) return parsed;
      when = parsed;
    }
  }
  const inner = valuesPath === null ? item : (at(item, valuesPath) ?? item);
  const values: Array<[string, unknown]> = [];
  for (let i = 0; i < declared.length; i++) {
    const v = at(inner, paths[i]!);
    if (v !== undefined) values.push([declared[i]!.name, v]);
  }
  if (values.length === 0)
    return refusal('EMPTY_READING', `none of the metrics of template ${template} is in the payload`);
  return { seq: null, ts: when, values };
}

export function compileTemplate(config: TemplateConfig, index = 0): CompiledTemplate {
  const checked = checkTemplate(config, index);
  const { pattern, idTemplate, declared, readingsPath, avail, availPattern, availPath } = checked;
  const idFor = (level: string): string | null => {
    const id = idTemplate.replace('{device}', level);
    return isDeviceId(id) ? id : null;
  };

  const readingOf = (item: unknown) => readingOfItem(checked, config.name, item);

  return {
    name: config.name,
    pattern,
    metrics: declared,
    deviceFor(topic) {
      const level = pattern.match(topic);
      return level === null ? null : idFor(level);
    },
    availabilityFilter: availPattern?.filter ?? null,
    availabilityOf(topic, payload) {
      const level = availPattern?.match(topic) ?? null;
      const deviceId = level === null ? null : idFor(level);
      if (deviceId === null || avail === undefined) return null;
      let word: unknown = Buffer.from(payload).toString('utf8').trim();
      if (availPath !== null) {
        try {
          word = at(JSON.parse(word as string), availPath);
        } catch {
          // not JSON: take the text as it is
        }
      }
      if (word === avail.online) return { deviceId, online: true };
      if (word === avail.offline) return { deviceId, online: false };
      return null;
    },
    readingsOf(payload, limits) {
      const parsed = parseJson(payload, limits.maxPayloadBytes) as { json: unknown } | BridgeRefusal;
      if (isRefusal(parsed)) return parsed;
      const root = parsed.json;
      const list = readingsPath !== null ? at(root, readingsPath) : root;
      const items = Array.isArray(list) ? list : [root];
      if (items.length === 0 || items.length > limits.maxBatch) {
        return refusal('BATCH_TOO_LARGE', `a batch holds 1 to ${limits.maxBatch} readings, this one ${items.length}`);
      }
      const out: JsonReading[] = [];
      for (const item of items) {
        if (typeof item !== 'object' || item === null)
          return refusal('INVALID_FIELD', 'a reading must be a JSON object');
        const r = readingOf(item);
        if (isRefusal(r)) return r;
        out.push(r);
      }
      return out;
    },
  };
}

export interface BridgeFileConfig {
  templates: CompiledTemplate[];
  /** Messages for unknown devices create them disabled, labelled quarantine=mqtt, for an admin to approve. */
  autoRegister: boolean;
  /** Homie 5 discovery (read only): the hub's device id made from the Homie id; null = off. */
  homie: { deviceId: string } | null;
}

/** Parses the HUB_MQTT_CONFIG file's text; TemplateError names the file and the field. */
export function parseBridgeConfig(text: string, source = 'HUB_MQTT_CONFIG'): BridgeFileConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new TemplateError(`${source}: not JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new TemplateError(`${source}: expected an object {"templates": [...]}`);
  const {
    templates = [],
    autoRegister = false,
    homie = false,
  } = json as { templates?: unknown; autoRegister?: unknown; homie?: unknown };
  let homieConfig: { deviceId: string } | null = null;
  if (homie === true) homieConfig = { deviceId: 'homie-{device}' };
  else if (
    typeof homie === 'object' &&
    homie !== null &&
    typeof (homie as { deviceId?: unknown }).deviceId === 'string'
  ) {
    homieConfig = { deviceId: (homie as { deviceId: string }).deviceId };
    if (!homieConfig.deviceId.includes('{device}'))
      throw new TemplateError(`${source}: homie.deviceId must contain {device}`);
  } else if (homie !== false)
    throw new TemplateError(`${source}: homie must be true, false or {"deviceId": "homie-{device}"}`);
  if (!Array.isArray(templates)) throw new TemplateError(`${source}: templates must be an array`);
  if (typeof autoRegister !== 'boolean') throw new TemplateError(`${source}: autoRegister must be true or false`);
  const compiled: CompiledTemplate[] = [];
  const names = new Set<string>();
  templates.forEach((t: TemplateConfig, i) => {
    try {
      const c = compileTemplate(t, i);
      if (names.has(c.name)) throw new TemplateError(`templates[${i}]: the name ${c.name} is used twice`);
      if (c.pattern.filter.startsWith('tendril/'))
        throw new TemplateError(`templates[${i}]: tendril/... is the bridge's own tree`);
      names.add(c.name);
      compiled.push(c);
    } catch (err) {
      if (err instanceof TemplateError) throw new TemplateError(`${source}: ${err.message}`);
      throw err;
    }
  });
  return { templates: compiled, autoRegister, homie: homieConfig };
}

export function loadBridgeConfig(path: string): BridgeFileConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TemplateError(
      `HUB_MQTT_CONFIG: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  return parseBridgeConfig(text, `HUB_MQTT_CONFIG (${path})`);
}
