/** Topics, payloads and templates of the MQTT bridge (docs/mqtt.md §2-§4): pure functions, no broker. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  isRefusal,
  parseBirth,
  parseCommandResult,
  parseData,
  parseState,
  toValue,
  type BridgeRefusal,
  type JsonReading,
} from '../src/mqtt/payload.js';
import { loadBridgeConfig, parseBridgeConfig, TemplateError } from '../src/mqtt/templates.js';
import { compileTopicPattern, parseTendrilTopic } from '../src/mqtt/topics.js';

const buf = (s: string | object): Buffer => Buffer.from(typeof s === 'string' ? s : JSON.stringify(s));
const example = (name: string): string => fileURLToPath(new URL(`../../mosquitto/templates/${name}`, import.meta.url));

function ok<T>(x: T | BridgeRefusal): T {
  if (isRefusal(x)) throw new Error(`refused: ${x.code} ${x.message}`);
  return x;
}

function code(x: unknown): string | null {
  return isRefusal(x) ? x.code : null;
}

describe('Tendril topics', () => {
  it('parses the four upward topics and nothing else', () => {
    expect(parseTendrilTopic('tendril/v1/dev-1/data')).toEqual({ kind: 'data', deviceId: 'dev-1' });
    expect(parseTendrilTopic('tendril/v1/a.b:c_d/birth')).toEqual({ kind: 'birth', deviceId: 'a.b:c_d' });
    expect(parseTendrilTopic('tendril/v1/x/state')).toEqual({ kind: 'state', deviceId: 'x' });
    expect(parseTendrilTopic('tendril/v1/x/cmd/result')).toEqual({ kind: 'cmdResult', deviceId: 'x' });
    for (const t of [
      'tendril/v1/x/cmd',
      'tendril/v1/x/error',
      'tendril/v1/x/data/more',
      'tendril/v2/x/data',
      'tendril/v1//data',
      'tendril/v1/bad id/data',
      `tendril/v1/${'a'.repeat(65)}/data`,
    ]) {
      expect(parseTendrilTopic(t), t).toBeNull();
    }
  });
});

describe('topic patterns', () => {
  it('turns {device} into + and matches levels exactly', () => {
    const p = compileTopicPattern('tele/{device}/SENSOR');
    expect(p.filter).toBe('tele/+/SENSOR');
    expect(p.match('tele/kitchen/SENSOR')).toBe('kitchen');
    expect(p.match('tele/kitchen/STATE')).toBeNull();
    expect(p.match('tele/kitchen/SENSOR/x')).toBeNull();
    const hash = compileTopicPattern('site/+/{device}/#');
    expect(hash.filter).toBe('site/+/{device}/#'.replace('{device}', '+'));
    expect(hash.match('site/a/dev7/x/y')).toBe('dev7');
    expect(hash.match('site/a/dev7')).toBe('dev7');
  });

  it('refuses malformed templates', () => {
    expect(() => compileTopicPattern('a/{device}/{device}')).toThrow(TemplateError);
    expect(() => compileTopicPattern('a/#/{device}')).toThrow(/last level/);
    expect(() => compileTopicPattern('a/x{device}')).toThrow(/mixes/);
    expect(() => compileTopicPattern('$SYS/{device}')).toThrow(/broker/);
  });
});

describe('data payloads', () => {
  it('takes one reading in the canonical and the short form', () => {
    expect(ok(parseData(buf({ seq: 3, ts: 1_733_300_000_000, values: { t: 21.5, ok: true } })))).toEqual([
      {
        seq: 3,
        ts: 1_733_300_000_000,
        values: [
          ['t', 21.5],
          ['ok', true],
        ],
      },
    ]);
    expect(ok(parseData(buf({ temperature: 21.5 })))).toEqual([
      { seq: null, ts: null, values: [['temperature', 21.5]] },
    ]);
    expect(ok(parseData(buf({ ts: '2026-12-04T10:00:00Z', t: 1 })))[0]!.ts).toBe(Date.UTC(2026, 11, 4, 10));
  });

  it('takes a batch, oldest first', () => {
    const r = ok(
      parseData(
        buf([
          { seq: 1, t: 1 },
          { seq: 2, t: 2 },
        ]),
      ),
    );
    expect(r.map((x: JsonReading) => x.seq)).toEqual([1, 2]);
  });

  it('refuses each malformed payload with its code', () => {
    expect(code(parseData(buf('{"t": ')))).toBe('INVALID_JSON');
    expect(code(parseData(Buffer.from([0xff, 0xfe])))).toBe('INVALID_JSON');
    expect(code(parseData(buf('42')))).toBe('INVALID_FIELD');
    expect(code(parseData(buf({ seq: 0, t: 1 })))).toBe('INVALID_FIELD');
    expect(code(parseData(buf({ seq: 1.5, t: 1 })))).toBe('INVALID_FIELD');
    expect(code(parseData(buf({ ts: '2026-12-04T10:00:00', t: 1 })))).toBe('INVALID_FIELD');
    expect(code(parseData(buf({ ts: 'yesterday', t: 1 })))).toBe('INVALID_FIELD');
    expect(code(parseData(buf({ seq: 1 })))).toBe('EMPTY_READING');
    expect(code(parseData(buf([])))).toBe('BATCH_TOO_LARGE');
    expect(code(parseData(buf(Array.from({ length: 257 }, () => ({ t: 1 })))))).toBe('BATCH_TOO_LARGE');
    const many: Record<string, number> = {};
    for (let i = 0; i < 65; i++) many[`m${i}`] = i;
    expect(code(parseData(buf(many)))).toBe('TOO_MANY_METRICS');
    expect(code(parseData(Buffer.alloc(70_000, 0x20)))).toBe('FRAME_TOO_LARGE');
  });

  it('types JSON values so the validator sees mismatches', () => {
    expect(toValue(0, 'f32', 0.1)).toEqual({ alias: 0, kind: 'f32', value: Math.fround(0.1) });
    expect(toValue(0, 'f64', 2)).toEqual({ alias: 0, kind: 'f64', value: 2 });
    expect(toValue(0, 'int', 2)).toEqual({ alias: 0, kind: 'int', value: 2 });
    expect(toValue(0, 'int', 2.5)).toEqual({ alias: 0, kind: 'f64', value: 2.5 });
    expect(toValue(0, 'bool', 1)).toEqual({ alias: 0, kind: 'int', value: 1 });
    expect(code(toValue(0, 'f64', null))).toBe('TYPE_MISMATCH');
    expect(code(toValue(0, 'string', 'x'.repeat(300)))).toBe('STRING_TOO_LONG');
  });
});

describe('birth, state and command results', () => {
  it('parses a birth as a HELLO declaration', () => {
    const b = ok(
      parseBirth(
        buf({
          epoch: 7,
          firmware: '1.2',
          metrics: [
            { name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
            { name: 'door', kind: 'bool' },
          ],
        }),
      ),
    );
    expect(b).toEqual({
      epoch: 7,
      firmware: '1.2',
      sdk: null,
      dropped: 0,
      metrics: [
        { alias: 0, name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
        { alias: 1, name: 'door', kind: 'bool', unit: '' },
      ],
    });
    expect(ok(parseBirth(buf({ metrics: [] }))).epoch).toBeNull();
  });

  it('refuses declarations HELLO would refuse (§4.2)', () => {
    const bad = [
      { metrics: [{ name: '1x', kind: 'f32' }] },
      { metrics: [{ name: 'x', kind: 'f16' }] },
      {
        metrics: [
          { name: 'x', kind: 'f32' },
          { name: 'x', kind: 'int' },
        ],
      },
      { metrics: [{ name: 'x', kind: 'bool', min: 0 }] },
      { metrics: [{ name: 'x', kind: 'int', min: 5, max: 1 }] },
      { epoch: -1, metrics: [] },
      { epoch: 2 ** 32, metrics: [] },
      { metrics: 'x' },
    ];
    for (const b of bad) expect(code(parseBirth(buf(b))), JSON.stringify(b)).toBe('INVALID_FIELD');
    expect(
      code(parseBirth(buf({ metrics: Array.from({ length: 65 }, (_, i) => ({ name: `m${i}`, kind: 'int' })) }))),
    ).toBe('TOO_MANY_METRICS');
  });

  it('reads state: a plain offline is the last will', () => {
    expect(parseState(buf('online'))).toEqual({ state: 'online' });
    expect(parseState(buf('offline'))).toEqual({ state: 'offline', reason: 'MQTT_WILL' });
    expect(parseState(buf({ state: 'offline', reason: 'CLOSED' }))).toEqual({ state: 'offline', reason: 'CLOSED' });
    expect(code(parseState(buf('maybe')))).toBe('INVALID_FIELD');
    expect(code(parseState(buf({ state: 'offline', reason: 'lower' })))).toBe('INVALID_FIELD');
  });

  it('reads command results (§8.2)', () => {
    expect(parseCommandResult(buf({ id: 4, status: 'succeeded', detail: { ok: 1 } }))).toEqual({
      commandId: 4,
      status: 'succeeded',
      detail: '{"ok":1}',
    });
    expect(code(parseCommandResult(buf({ id: 0, status: 'succeeded' })))).toBe('INVALID_FIELD');
    expect(code(parseCommandResult(buf({ id: 1, status: 'done' })))).toBe('INVALID_FIELD');
  });
});

describe('templates', () => {
  it('Tasmota: tele/<t>/SENSOR with nested JSON, arrival time', () => {
    const [t] = loadBridgeConfig(example('tasmota.json')).templates;
    expect(t!.pattern.filter).toBe('tele/+/SENSOR');
    expect(t!.deviceFor('tele/kitchen/SENSOR')).toBe('tasmota-kitchen');
    expect(t!.deviceFor('tele/kitchen/STATE')).toBeNull();
    const payload = buf({ Time: '2026-12-04T11:00:00', AM2301: { Temperature: 21.4, Humidity: 40.2 }, TempUnit: 'C' });
    expect(ok(t!.readingsOf(payload, { maxPayloadBytes: 65536, maxBatch: 256, maxValues: 64 }))).toEqual([
      {
        seq: null,
        ts: null,
        values: [
          ['temperature', 21.4],
          ['humidity', 40.2],
        ],
      },
    ]);
    expect(code(t!.readingsOf(buf({ Time: 'x' }), { maxPayloadBytes: 65536, maxBatch: 256, maxValues: 64 }))).toBe(
      'EMPTY_READING',
    );
  });

  it('availability: Tasmota LWT words, Zigbee2MQTT JSON state (or the plain word of older versions)', () => {
    const [tasmota] = loadBridgeConfig(example('tasmota.json')).templates;
    expect(tasmota!.availabilityFilter).toBe('tele/+/LWT');
    expect(tasmota!.availabilityOf('tele/kitchen/LWT', buf('Offline'))).toEqual({
      deviceId: 'tasmota-kitchen',
      online: false,
    });
    expect(tasmota!.availabilityOf('tele/kitchen/LWT', buf('Online'))).toEqual({
      deviceId: 'tasmota-kitchen',
      online: true,
    });
    expect(tasmota!.availabilityOf('tele/kitchen/LWT', buf('Rebooting'))).toBeNull();
    expect(tasmota!.availabilityOf('tele/kitchen/SENSOR', buf('Online'))).toBeNull();
    const [z2m] = loadBridgeConfig(example('zigbee2mqtt.json')).templates;
    expect(z2m!.availabilityOf('zigbee2mqtt/lamp/availability', buf({ state: 'offline' }))).toEqual({
      deviceId: 'z2m-lamp',
      online: false,
    });
    expect(z2m!.availabilityOf('zigbee2mqtt/lamp/availability', buf('online'))).toEqual({
      deviceId: 'z2m-lamp',
      online: true,
    });
    expect(loadBridgeConfig(example('thingsboard.json')).templates[0]!.availabilityFilter).toBeNull();
  });

  it('Zigbee2MQTT: zigbee2mqtt/<name>, flat JSON, bridge topics left alone', () => {
    const [t] = loadBridgeConfig(example('zigbee2mqtt.json')).templates;
    expect(t!.deviceFor('zigbee2mqtt/living_room')).toBe('z2m-living_room');
    expect(t!.deviceFor('zigbee2mqtt/bridge/state')).toBeNull();
    expect(t!.deviceFor('zigbee2mqtt/living_room/availability')).toBeNull();
    const r = ok(
      t!.readingsOf(buf({ temperature: 19.5, battery: 97, linkquality: 120, occupancy: false, voltage: 3000 }), {
        maxPayloadBytes: 65536,
        maxBatch: 256,
        maxValues: 64,
      }),
    );
    expect(r[0]!.values).toEqual([
      ['temperature', 19.5],
      ['battery', 97],
      ['linkquality', 120],
      ['occupancy', false],
    ]);
  });

  it('ThingsBoard-style: {ts, values}, a batch array, or flat', () => {
    const [t] = loadBridgeConfig(example('thingsboard.json')).templates;
    expect(t!.deviceFor('v1/devices/pump-3/telemetry')).toBe('pump-3');
    const limits = { maxPayloadBytes: 65536, maxBatch: 256, maxValues: 64 };
    expect(ok(t!.readingsOf(buf({ ts: 1_733_300_000_000, values: { temperature: 42 } }), limits))).toEqual([
      { seq: null, ts: 1_733_300_000_000, values: [['temperature', 42]] },
    ]);
    const batch = ok(
      t!.readingsOf(
        buf([
          { ts: 1_733_300_000_000, values: { humidity: 1 } },
          { ts: 1_733_300_001_000, values: { active: true } },
        ]),
        limits,
      ),
    );
    expect(batch.map((r) => r.ts)).toEqual([1_733_300_000_000, 1_733_300_001_000]);
    expect(ok(t!.readingsOf(buf({ temperature: 3 }), limits))[0]).toEqual({
      seq: null,
      ts: null,
      values: [['temperature', 3]],
    });
  });

  it('refuses a config that cannot work, naming the field', () => {
    expect(() => parseBridgeConfig('{')).toThrow(/not JSON/);
    expect(() => parseBridgeConfig('{"templates":[{"name":"x","topic":"a/b","metrics":[]}]}')).toThrow(/\{device\}/);
    expect(() => parseBridgeConfig('{"templates":[{"name":"x","topic":"a/{device}","metrics":[]}]}')).toThrow(
      /at least one metric/,
    );
    expect(() =>
      parseBridgeConfig(
        '{"templates":[{"name":"x","topic":"a/{device}","metrics":[{"name":"t","kind":"f99","path":"t"}]}]}',
      ),
    ).toThrow(/templates\[0\] \(x\)\.metrics/);
    expect(() =>
      parseBridgeConfig(
        '{"templates":[{"name":"x","topic":"tendril/{device}","metrics":[{"name":"t","kind":"f64","path":"t"}]}]}',
      ),
    ).toThrow(/own tree/);
    expect(() => parseBridgeConfig('{"autoRegister":"yes"}')).toThrow(/autoRegister/);
    expect(parseBridgeConfig('{}')).toEqual({ templates: [], autoRegister: false, homie: null });
    expect(() => loadBridgeConfig('/nonexistent/x.json')).toThrow(/ENOENT/);
    // every shipped example parses
    for (const f of ['tasmota.json', 'zigbee2mqtt.json', 'thingsboard.json'])
      expect(JSON.parse(readFileSync(example(f), 'utf8'))).toBeTruthy();
  });
});

describe('Homie 5 (read only)', () => {
  it('parses its topics, description, values and states', async () => {
    const { parseHomieTopic, parseHomieDescription, parseHomieValue, parseHomieState } = await import(
      '../src/mqtt/homie.js'
    );
    expect(parseHomieTopic('homie/5/thermo/$state')).toEqual({ kind: 'state', device: 'thermo' });
    expect(parseHomieTopic('homie/5/thermo/$description')).toEqual({ kind: 'description', device: 'thermo' });
    expect(parseHomieTopic('homie/5/thermo/room/temp')).toEqual({
      kind: 'value',
      device: 'thermo',
      node: 'room',
      property: 'temp',
    });
    for (const t of [
      'homie/5/thermo/room/temp/set',
      'homie/5/thermo/$target',
      'homie/4/x/$state',
      'homie/5/Bad_Id/$state',
    ])
      expect(parseHomieTopic(t), t).toBeNull();
    const d = ok(
      parseHomieDescription(
        buf({
          nodes: {
            n: {
              properties: {
                t: { datatype: 'float', format: ':100', unit: 'W' },
                c: { datatype: 'integer', format: '1:9' },
                e: { datatype: 'enum', format: 'a,b' },
              },
            },
          },
        }),
        65536,
      ),
    );
    expect(d.metrics).toEqual([
      { alias: 0, name: 'n.t', kind: 'f64', unit: 'W', max: 100 },
      { alias: 1, name: 'n.c', kind: 'int', unit: '', min: 1, max: 9 },
      { alias: 2, name: 'n.e', kind: 'string', unit: '' },
    ]);
    expect(
      code(parseHomieDescription(buf({ nodes: { n: { properties: { x: { datatype: 'quaternion' } } } } }), 65536)),
    ).toBe('INVALID_FIELD');
    expect(code(parseHomieDescription(buf({ homie: '5.0' }), 65536))).toBe('INVALID_FIELD');
    // Every level of the device's JSON is checked for its shape: none of these may throw.
    for (const nodes of [
      { n: { properties: { p: null } } },
      { n: { properties: { p: [null] } } },
      { n: { properties: { p: 'float' } } },
      { n: { properties: [null] } },
      { n: { properties: 5 } },
      { n: null },
      { n: { properties: { p: { datatype: { toString: 1 } } } } },
      { n: { properties: { p: { datatype: 7 } } } },
      { n: { properties: { p: { datatype: 'constructor' } } } },
      { n: { properties: { p: { datatype: '__proto__' } } } },
    ])
      expect(code(parseHomieDescription(buf({ nodes }), 65536)), JSON.stringify(nodes)).toBe('INVALID_FIELD');
    expect([
      parseHomieValue('float', '21.5'),
      parseHomieValue('integer', '-3'),
      parseHomieValue('boolean', 'false'),
      parseHomieValue('enum', 'a'),
    ]).toEqual([21.5, -3, false, 'a']);
    expect(parseHomieValue('integer', '2.5')).toBe('2.5');
    expect([
      parseHomieState('ready'),
      parseHomieState('lost'),
      parseHomieState('disconnected'),
      parseHomieState('init'),
    ]).toEqual([{ online: true }, { online: false, reason: 'MQTT_WILL' }, { online: false, reason: 'CLOSED' }, null]);
  });

  it('is off unless the config turns it on', () => {
    expect(parseBridgeConfig('{}').homie).toBeNull();
    expect(parseBridgeConfig('{"homie": true}').homie).toEqual({ deviceId: 'homie-{device}' });
    expect(parseBridgeConfig('{"homie": {"deviceId": "h:{device}"}}').homie).toEqual({ deviceId: 'h:{device}' });
    expect(() => parseBridgeConfig('{"homie": "yes"}')).toThrow(/homie must be/);
  });
});
