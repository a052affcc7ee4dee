/**
 * Topics the bridge listens to (docs/mqtt.md §2): Tendril's own `tendril/v1/<device>/...` tree, and the
 * templates of existing fleets (Tasmota, Zigbee2MQTT, ThingsBoard-style), which name the device with a
 * `{device}` level. Pure functions: no socket, no broker.
 */

export const TENDRIL_PREFIX = 'tendril/v1/';

/** What a device publishes under tendril/v1/<device>/. */
export type TendrilUpKind = 'birth' | 'data' | 'state' | 'cmdResult';

/** The subscriptions of Tendril's own topics, in the order the bridge sends them (births first, §2.4). */
export const TENDRIL_SUBSCRIPTIONS = {
  births: ['tendril/v1/+/birth', 'tendril/v1/+/state'],
  rest: ['tendril/v1/+/data', 'tendril/v1/+/cmd/result'],
} as const;

/** The broker's count of messages it dropped (queue full, ...): Mosquitto, EMQX and others publish it. */
export const SYS_DROPPED_TOPIC = '$SYS/broker/publish/messages/dropped';

/** Device ids as in HELLO (protocol §4.1): 1-64 bytes of A-Z a-z 0-9 . _ : - */
const DEVICE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

export function isDeviceId(id: string): boolean {
  return DEVICE_ID.test(id);
}

export function cmdTopic(deviceId: string): string {
  return `${TENDRIL_PREFIX}${deviceId}/cmd`;
}

export function errorTopic(deviceId: string): string {
  return `${TENDRIL_PREFIX}${deviceId}/error`;
}

export interface TendrilTopic {
  kind: TendrilUpKind;
  deviceId: string;
}

/**
 * Parses `tendril/v1/<device>/<birth|data|state|cmd/result>`. Null for anything else (including a topic
 * whose device level is not a valid device id: such a device could never be registered).
 */
export function parseTendrilTopic(topic: string): TendrilTopic | null {
  if (!topic.startsWith(TENDRIL_PREFIX)) return null;
  const slash = topic.indexOf('/', TENDRIL_PREFIX.length);
  if (slash < 0) return null;
  const deviceId = topic.slice(TENDRIL_PREFIX.length, slash);
  if (!isDeviceId(deviceId)) return null;
  const rest = topic.slice(slash + 1);
  let kind: TendrilUpKind;
  switch (rest) {
    case 'data':
      kind = 'data';
      break;
    case 'birth':
      kind = 'birth';
      break;
    case 'state':
      kind = 'state';
      break;
    case 'cmd/result':
      kind = 'cmdResult';
      break;
    default:
      return null;
  }
  return { kind, deviceId };
}

/**
 * A compiled topic template: levels are literals, `{device}` (one level: the device), `+` (one level,
 * ignored) or a final `#`. `filter` is the MQTT subscription filter it needs.
 */
export interface TopicPattern {
  readonly source: string;
  readonly filter: string;
  /** The device id for `topic`, or null when the topic does not match. */
  match(topic: string): string | null;
}

export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

export function compileTopicPattern(source: string): TopicPattern {
  const levels = source.split('/');
  let deviceLevel = -1;
  const filterLevels: string[] = [];
  levels.forEach((level, i) => {
    if (level === '{device}') {
      if (deviceLevel >= 0) throw new TemplateError(`topic "${source}" names {device} twice`);
      deviceLevel = i;
      filterLevels.push('+');
    } else if (level === '#') {
      if (i !== levels.length - 1) throw new TemplateError(`topic "${source}": # must be the last level`);
      filterLevels.push('#');
    } else if (level === '+') {
      filterLevels.push('+');
    } else if (level.includes('+') || level.includes('#') || level.includes('{')) {
      throw new TemplateError(`topic "${source}": level "${level}" mixes text with a wildcard or placeholder`);
    } else {
      filterLevels.push(level);
    }
  });
  if (source.startsWith('$')) throw new TemplateError(`topic "${source}": topics starting with $ are the broker's`);
  const endsWithHash = levels[levels.length - 1] === '#';
  return {
    source,
    filter: filterLevels.join('/'),
    match(topic: string): string | null {
      const parts = topic.split('/');
      if (endsWithHash ? parts.length < levels.length - 1 : parts.length !== levels.length) return null;
      let device: string | null = null;
      for (let i = 0; i < levels.length; i++) {
        const want = levels[i]!;
        if (want === '#') break;
        const got = parts[i]!;
        if (i === deviceLevel) device = got;
        else if (want !== '+' && want !== got) return null;
      }
      return device;
    },
  };
}
