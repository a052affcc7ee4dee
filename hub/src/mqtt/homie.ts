/**
 * Homie 5 devices, read only (docs/mqtt.md §4.1; https://homieiot.github.io/specification/): the retained
 * `homie/5/<device>/$description` gives the declaration (metric `<node>.<property>`, kind from `datatype`,
 * range from `format` "min:max"), `$state` the presence, and each live (not retained) property value
 * `homie/5/<device>/<node>/<property>` one reading. Pure functions over bytes.
 */
import { DEFAULT_LIMITS, type MetricDeclaration, type MetricKind } from '@tendril/device-sdk/codec';
import { isRefusal, parseDeclarations, parseJson, refusal, type BridgeRefusal } from './payload.js';

export const HOMIE_PREFIX = 'homie/5/';
/** Subscriptions: the description and state first (retained), then the values. */
export const HOMIE_SUBSCRIPTIONS = {
  meta: ['homie/5/+/$state', 'homie/5/+/$description'],
  values: ['homie/5/+/+/+'],
} as const;

const ID = /^[a-z0-9-]+$/;

export type HomieTopic =
  | { kind: 'state' | 'description'; device: string }
  | { kind: 'value'; device: string; node: string; property: string };

/** Parses a homie/5/... topic the bridge reads; null for anything else ($target, /set, attributes, ...). */
export function parseHomieTopic(topic: string): HomieTopic | null {
  if (!topic.startsWith(HOMIE_PREFIX)) return null;
  const parts = topic.slice(HOMIE_PREFIX.length).split('/');
  const device = parts[0]!;
  if (!ID.test(device)) return null;
  if (parts.length === 2 && parts[1] === '$state') return { kind: 'state', device };
  if (parts.length === 2 && parts[1] === '$description') return { kind: 'description', device };
  if (parts.length === 3 && ID.test(parts[1]!) && ID.test(parts[2]!))
    return { kind: 'value', device, node: parts[1]!, property: parts[2]! };
  return null;
}

const KINDS: Record<string, MetricKind> = {
  float: 'f64',
  integer: 'int',
  boolean: 'bool',
  string: 'string',
  enum: 'string',
  color: 'string',
  datetime: 'string',
  duration: 'string',
  json: 'string',
};

export interface HomieDeclaration {
  metrics: MetricDeclaration[];
  /** Metric name -> Homie datatype, to read each value's text. */
  datatypes: Map<string, string>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `$description` -> the declaration: one metric per property, named `<node>.<property>`. */
export function parseHomieDescription(payload: Uint8Array, maxBytes: number): HomieDeclaration | BridgeRefusal {
  const parsed = parseJson(payload, maxBytes) as { json: unknown } | BridgeRefusal;
  if (isRefusal(parsed)) return parsed;
  const nodes = (parsed.json as { nodes?: unknown } | null)?.nodes;
  if (typeof nodes !== 'object' || nodes === null)
    return refusal('INVALID_FIELD', '$description has no "nodes" object');
  const raw: Array<{ name: string; kind: MetricKind; unit?: string; min?: number; max?: number }> = [];
  const datatypes = new Map<string, string>();
  // The JSON is the device's: every level is checked for its shape before it is read (a null property
  // used to throw, and a retained $description would have thrown again at every start).
  for (const [nodeId, node] of Object.entries(nodes)) {
    if (!isObject(node)) return refusal('INVALID_FIELD', `node ${nodeId} is not an object`);
    const properties = node.properties ?? {};
    if (!isObject(properties)) return refusal('INVALID_FIELD', `${nodeId}: "properties" is not an object`);
    for (const [propId, prop] of Object.entries(properties)) {
      if (!isObject(prop)) return refusal('INVALID_FIELD', `${nodeId}.${propId}: the property is not an object`);
      const datatype = prop.datatype ?? 'string';
      if (typeof datatype !== 'string')
        return refusal('INVALID_FIELD', `${nodeId}.${propId}: "datatype" is not a string`);
      const kind = Object.hasOwn(KINDS, datatype) ? KINDS[datatype] : undefined;
      if (kind === undefined)
        return refusal('INVALID_FIELD', `${nodeId}.${propId}: unknown Homie datatype ${datatype.slice(0, 32)}`);
      const m: (typeof raw)[number] = { name: `${nodeId}.${propId}`, kind };
      if (typeof prop.unit === 'string' && Buffer.byteLength(prop.unit) <= DEFAULT_LIMITS.maxUnitBytes)
        m.unit = prop.unit;
      const range =
        typeof prop.format === 'string' && (kind === 'f64' || kind === 'int')
          ? /^(-?[\d.]*):(-?[\d.]*)(?::[\d.]+)?$/.exec(prop.format)
          : null;
      if (range?.[1]) m.min = Number(range[1]);
      if (range?.[2]) m.max = Number(range[2]);
      raw.push(m);
      datatypes.set(m.name, datatype);
    }
  }
  const metrics = parseDeclarations(raw);
  if (isRefusal(metrics)) return metrics;
  return { metrics, datatypes };
}

/** A property value's text as the JSON value the bridge maps (protocol §7.1 then checks it). */
export function parseHomieValue(datatype: string | undefined, text: string): unknown {
  switch (datatype) {
    case 'float':
      return text.trim() === '' ? text : Number(text);
    case 'integer':
      return /^-?\d+$/.test(text.trim()) ? Number(text) : text;
    case 'boolean':
      return text === 'true' ? true : text === 'false' ? false : text;
    default:
      return text;
  }
}

/** `$state` -> online, offline with a presence reason, or null (init: not yet). */
export function parseHomieState(text: string): { online: true } | { online: false; reason: string } | null {
  switch (text.trim()) {
    case 'ready':
    case 'sleeping':
      return { online: true };
    case 'disconnected':
      return { online: false, reason: 'CLOSED' };
    case 'lost':
      return { online: false, reason: 'MQTT_WILL' };
    default:
      return null;
  }
}
