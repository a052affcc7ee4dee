// Generator of docs/vectors/tendril-v1.json. Independent of the TypeScript codec on purpose: it builds
// every frame from the spec's primitives (docs/protocol.md §2) so the codec's tests compare two
// implementations. Run: node docs/vectors/generate.mjs > docs/vectors/tendril-v1.json
const hexOf = (bytes) => Buffer.from(bytes).toString('hex');
function varintBytes(n) {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`varint ${n}`);
  const out = [];
  while (n >= 128) {
    out.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
const vHex = (n) => hexOf(varintBytes(n));
const zz = (n) => (n >= 0 ? 2 * n : -2 * n - 1);
const f32Hex = (v) => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return b.toString('hex');
};
const f64Hex = (v) => {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v);
  return b.toString('hex');
};
const utf8 = (s) => Buffer.from(s, 'utf8').toString('hex');
const show = (v) => (typeof v === 'string' ? JSON.stringify(v) : Object.is(v, -0) ? '-0' : String(v));

// Field builders: each returns an array of [hexSlice, comment].
const F = {
  type: (t, name) => [[t.toString(16).padStart(2, '0'), `type 0x${t.toString(16).padStart(2, '0')} ${name}`]],
  u8: (n, c) => [[n.toString(16).padStart(2, '0'), c]],
  varint: (n, c) => [[vHex(n), `${c}: varint ${n}`]],
  svarint: (n, c) => [[vHex(zz(n)), `${c}: svarint ${n >= 0 ? '+' : ''}${n} (zigzag ${zz(n)})`]],
  str: (s, c) => {
    const b = Buffer.from(s, 'utf8');
    const out = [[vHex(b.length), `${c} length ${b.length}`]];
    if (b.length) out.push([b.toString('hex'), `${c} ${JSON.stringify(s)} (UTF-8)`]);
    return out;
  },
  f32: (v, c) => [
    [
      f32Hex(v),
      `${c}: f32 ${show(Math.fround(v))}${Object.is(Math.fround(v), v) || Number.isNaN(v) ? '' : ` (${v} rounded to f32)`}`,
    ],
  ],
  f64: (v, c) => [[f64Hex(v), `${c}: f64 ${show(v)}`]],
  raw: (h, c) => [[h, c]],
};

const WT = { f32: 0, f64: 1, int: 2, false: 3, true: 4, string: 5 };
function value(alias, kind, v) {
  const wt = kind === 'bool' ? (v ? WT.true : WT.false) : WT[kind];
  const tag = alias * 8 + wt;
  const name = kind === 'bool' ? (v ? 'TRUE' : 'FALSE') : kind.toUpperCase();
  const out = [[vHex(tag), `tag ${tag} = alias ${alias} * 8 + ${wt} (${name})`]];
  if (kind === 'f32') out.push(...F.f32(v, `  alias ${alias}`));
  if (kind === 'f64') out.push(...F.f64(v, `  alias ${alias}`));
  if (kind === 'int') out.push(...F.svarint(v, `  alias ${alias} int`));
  if (kind === 'string') out.push(...F.str(v, `  alias ${alias} string`));
  return out;
}
/** JSON form of a float in `decoded` (§14): strings for what JSON cannot hold. */
const jf = (v) =>
  Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : Object.is(v, -0) ? '-0' : v;
const dv = (alias, kind, v) => ({
  alias,
  kind,
  value: kind === 'f32' ? jf(Math.fround(v)) : kind === 'f64' ? jf(v) : v,
});

function metric(m) {
  const kinds = ['f32', 'f64', 'int', 'bool', 'string'];
  const flags = (m.min !== undefined ? 1 : 0) | (m.max !== undefined ? 2 : 0);
  const out = [
    ...F.varint(m.alias, `metric alias`),
    ...F.u8(kinds.indexOf(m.kind), `  kind ${kinds.indexOf(m.kind)} (${m.kind})`),
    ...F.u8(
      flags,
      `  flags 0x${flags.toString(16).padStart(2, '0')}${flags & 1 ? ' hasMin' : ''}${flags & 2 ? ' hasMax' : ''}`,
    ),
    ...F.str(m.name, '  name'),
    ...F.str(m.unit, '  unit'),
  ];
  if (m.min !== undefined) out.push(...F.f64(m.min, '  min'));
  if (m.max !== undefined) out.push(...F.f64(m.max, '  max'));
  return out;
}
function hello(h) {
  return [
    ...F.type(0x01, 'HELLO'),
    ...F.str(h.deviceId, 'deviceId'),
    ...F.str(h.token, 'token'),
    ...F.str(h.firmware, 'firmware'),
    ...F.str(h.sdk, 'sdk'),
    ...F.varint(h.epoch, 'epoch'),
    ...F.varint(h.lastSeq, 'lastSeq'),
    ...F.varint(h.clock, 'clock'),
    ...F.varint(h.dropped, 'dropped'),
    ...F.varint(h.metrics.length, 'metricCount'),
    ...h.metrics.flatMap(metric),
  ];
}
const helloDecoded = (h) => ({
  type: 'hello',
  ...h,
  metrics: h.metrics.map((m) => ({
    ...m,
    ...(m.min !== undefined ? { min: jf(m.min) } : {}),
    ...(m.max !== undefined ? { max: jf(m.max) } : {}),
  })),
});

/** READING / READING_UNTIMED. values: [alias, kind, v]. */
function reading(ctx, seq, ts, values) {
  const fields = [...F.type(ts === null ? 0x03 : 0x02, ts === null ? 'READING_UNTIMED' : 'READING')];
  fields.push(...F.svarint(seq - ctx.prevSeq, `seqDelta (seq ${ctx.prevSeq} -> ${seq})`));
  if (ts !== null) fields.push(...F.svarint(ts - ctx.prevTs, `tsDelta (ts ${ctx.prevTs} -> ${ts})`));
  for (const [a, k, v] of values) fields.push(...value(a, k, v));
  return {
    context: ctx,
    contextAfter: { prevSeq: seq, prevTs: ts === null ? ctx.prevTs : ts },
    fields,
    decoded: { type: 'reading', seq, ts, values: values.map(([a, k, v]) => dv(a, k, v)) },
  };
}
function batch(ctx, readings) {
  const fields = [...F.type(0x04, 'BATCH'), ...F.varint(readings.length, 'count')];
  let { prevSeq, prevTs } = ctx;
  readings.forEach(([seq, ts, values], i) => {
    fields.push(...F.svarint(seq - prevSeq, `[${i}] seqDelta (seq ${prevSeq} -> ${seq})`));
    fields.push(...F.svarint(ts - prevTs, `[${i}] tsDelta (ts ${prevTs} -> ${ts})`));
    fields.push(...F.varint(values.length, `[${i}] valueCount`));
    for (const [a, k, v] of values) fields.push(...value(a, k, v));
    prevSeq = seq;
    prevTs = ts;
  });
  return {
    context: ctx,
    contextAfter: { prevSeq, prevTs },
    fields,
    decoded: {
      type: 'batch',
      readings: readings.map(([seq, ts, values]) => ({ seq, ts, values: values.map(([a, k, v]) => dv(a, k, v)) })),
    },
  };
}
const STATUSES = ['delivered', 'succeeded', 'failed', 'rejected'];
function commandResult(commandId, status, detail) {
  const s = STATUSES.indexOf(status);
  return {
    fields: [
      ...F.type(0x05, 'COMMAND_RESULT'),
      ...F.varint(commandId, 'commandId'),
      ...F.u8(s, `status ${s} (${status})`),
      ...F.str(detail, 'detail'),
    ],
    decoded: { type: 'commandResult', commandId, status, detail },
  };
}
function error(code, wire, seq, alias, message) {
  return {
    fields: [
      ...F.type(0x44, 'ERROR'),
      ...F.varint(wire, `code (${code})`),
      ...F.varint(seq, seq === 0 ? 'seq (0 = not about a reading)' : 'seq'),
      ...F.varint(
        alias === null ? 0 : alias + 1,
        alias === null ? 'alias + 1 (0 = no alias)' : `alias + 1 (alias ${alias})`,
      ),
      ...F.str(message, 'message'),
    ],
    decoded: { type: 'error', code, seq, alias, message },
  };
}

const T = 1732233600000; // 2024-11-22T00:00:00Z
const valid = [];
const add = (name, clause, direction, v) => valid.push({ name, clause, direction, ...v });

// ---- HELLO ----
const helloMin = {
  deviceId: 'env-1',
  token: 'secret',
  firmware: '',
  sdk: '',
  epoch: 1,
  lastSeq: 0,
  clock: 0,
  dropped: 0,
  metrics: [],
};
add('hello-minimal', '§4.1', 'device', { fields: hello(helloMin), decoded: helloDecoded(helloMin) });
const helloFull = {
  deviceId: 'env-1',
  token: 'k7Hq2xZ9',
  firmware: '1.2.0',
  sdk: 'ts/0.1.0',
  epoch: 3735928559,
  lastSeq: 41,
  clock: T,
  dropped: 3,
  metrics: [
    { alias: 0, name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
    { alias: 1, name: 'humidity', kind: 'f32', unit: '%', min: 0, max: 100 },
    { alias: 2, name: 'pressure', kind: 'f64', unit: 'hPa' },
    { alias: 3, name: 'boot.count', kind: 'int', unit: '', min: 0 },
    { alias: 4, name: 'door', kind: 'bool', unit: '' },
    { alias: 300, name: 'fw/state', kind: 'string', unit: '' },
  ],
};
add('hello-six-metrics-every-kind', '§4.2', 'device', { fields: hello(helloFull), decoded: helloDecoded(helloFull) });
const helloUnicode = {
  deviceId: 'air:kitchen_2.b-7',
  token: 'tøken-✓',
  firmware: 'v2 β',
  sdk: 'c/0.9',
  epoch: 4294967295,
  lastSeq: 1000000,
  clock: 0,
  dropped: 0,
  metrics: [
    { alias: 1023, name: 'pm2_5', kind: 'f32', unit: 'µg/m³', max: 1000.5 },
    { alias: 5, name: 'neg-range', kind: 'int', unit: '', min: -1e15, max: -0 },
  ],
};
add('hello-unicode-strings-max-epoch-max-alias', '§4.2', 'device', {
  fields: hello(helloUnicode),
  decoded: helloDecoded(helloUnicode),
});

// ---- readings ----
add(
  'reading-three-f32-size-budget',
  '§12',
  'device',
  reading({ prevSeq: 41, prevTs: T }, 42, T + 1000, [
    [0, 'f32', 21.5],
    [1, 'f32', 48.25],
    [2, 'f32', 1013.25],
  ]),
);
add(
  'reading-every-value-type',
  '§5.2',
  'device',
  reading({ prevSeq: 42, prevTs: T + 1000 }, 43, T + 1050, [
    [0, 'f32', 0.1],
    [2, 'f64', 1013.2512345],
    [3, 'int', -5],
    [4, 'bool', false],
    [6, 'bool', true],
    [300, 'string', 'ok ✓'],
    [7, 'int', 1234567890123],
  ]),
);
add(
  'reading-negative-deltas',
  '§5.1',
  'device',
  reading({ prevSeq: 50, prevTs: T + 10000 }, 45, T + 5000, [[0, 'f32', -12.75]]),
);
add(
  'reading-first-after-welcome-device-without-clock-base',
  '§5.1',
  'device',
  reading({ prevSeq: 0, prevTs: 0 }, 1, T, [[4, 'bool', true]]),
);
add(
  'reading-untimed',
  '§5.3',
  'device',
  reading({ prevSeq: 10, prevTs: T }, 11, null, [
    [0, 'f32', 21.5],
    [3, 'int', 7],
  ]),
);
add(
  'reading-non-finite-and-negative-zero-floats',
  '§2.4',
  'device',
  reading({ prevSeq: 11, prevTs: T }, 12, T + 1, [
    [0, 'f32', NaN],
    [1, 'f64', Infinity],
    [2, 'f32', -Infinity],
    [3, 'f64', -0],
  ]),
);
add(
  'reading-strings-empty-and-unicode',
  '§2.5',
  'device',
  reading({ prevSeq: 12, prevTs: T + 1 }, 13, T + 2, [
    [0, 'string', ''],
    [1, 'string', '温度 🌡'],
    [2, 'string', '\uFEFFbom-is-data'],
  ]),
);
add(
  'reading-int-extremes-8-byte-varints',
  '§2.3',
  'device',
  reading({ prevSeq: 13, prevTs: T + 2 }, 14, T + 3, [
    [0, 'int', -(2 ** 52)],
    [1, 'int', 2 ** 52 - 1],
    [2, 'int', 0],
    [3, 'int', -1],
    [4, 'int', 64],
  ]),
);

// ---- BATCH ----
add(
  'batch-three-readings',
  '§5.4',
  'device',
  batch({ prevSeq: 41, prevTs: T }, [
    [
      42,
      T + 1000,
      [
        [0, 'f32', 21.5],
        [1, 'f32', 48.25],
      ],
    ],
    [
      43,
      T + 2000,
      [
        [0, 'f32', 21.75],
        [1, 'f32', 48.5],
      ],
    ],
    [
      44,
      T + 3000,
      [
        [0, 'f32', 22],
        [4, 'bool', true],
      ],
    ],
  ]),
);
add(
  'batch-resend-after-backoff-goes-back',
  '§7.4',
  'device',
  batch({ prevSeq: 60, prevTs: T + 60000 }, [
    [51, T + 51000, [[0, 'f32', 20]]],
    [52, T + 52000, [[0, 'f32', 20.5]]],
  ]),
);
add('batch-single-reading', '§5.4', 'device', batch({ prevSeq: 0, prevTs: T }, [[1, T, [[3, 'int', 100]]]]));

// ---- COMMAND_RESULT, STATUS ----
add('command-result-delivered', '§8.2', 'device', commandResult(7, 'delivered', ''));
add('command-result-succeeded-json', '§8.2', 'device', commandResult(7, 'succeeded', '{"interval":5000}'));
add(
  'command-result-failed-unicode-detail',
  '§8.2',
  'device',
  commandResult(300, 'failed', 'capteur hors ligne — réessayer'),
);
add('command-result-rejected', '§8.2', 'device', commandResult(8, 'rejected', 'unknown command'));
add('status-dropped', '§7.5', 'device', {
  fields: [...F.type(0x06, 'STATUS'), ...F.varint(300, 'dropped')],
  decoded: { type: 'status', dropped: 300 },
});
add('status-non-minimal-varint-is-accepted', '§2.2', 'device', {
  fields: [
    ...F.type(0x06, 'STATUS'),
    ...F.raw('8000', 'dropped: varint 0 in a non-minimal 2-byte form (accepted; encoders write 00)'),
  ],
  decoded: { type: 'status', dropped: 0 },
  reencoded: '0600',
});

// ---- hub frames ----
const welcome = (serverTime, ackedSeq, heartbeatMs, maxFrameBytes, maxBatch, maxRate) => ({
  fields: [
    ...F.type(0x41, 'WELCOME'),
    ...F.varint(serverTime, 'serverTime'),
    ...F.varint(ackedSeq, 'ackedSeq'),
    ...F.varint(heartbeatMs, 'heartbeatMs'),
    ...F.varint(maxFrameBytes, 'maxFrameBytes'),
    ...F.varint(maxBatch, 'maxBatch'),
    ...F.varint(maxRate, 'maxRate'),
  ],
  decoded: { type: 'welcome', serverTime, ackedSeq, heartbeatMs, maxFrameBytes, maxBatch, maxRate },
});
add('welcome-resume', '§4.3', 'hub', welcome(T + 123, 41, 10000, 16384, 256, 100));
add('welcome-new-epoch', '§4.3', 'hub', welcome(T, 0, 10000, 16384, 256, 100));
add('ack', '§7.3', 'hub', {
  fields: [...F.type(0x42, 'ACK'), ...F.varint(42, 'seq')],
  decoded: { type: 'ack', seq: 42 },
});
add('ack-largest-seq', '§2.2', 'hub', {
  fields: [...F.type(0x42, 'ACK'), ...F.varint(2 ** 53 - 1, 'seq (2^53-1, 8 bytes)')],
  decoded: { type: 'ack', seq: 2 ** 53 - 1 },
});
const command = (commandId, name, args, timeoutMs) => ({
  fields: [
    ...F.type(0x43, 'COMMAND'),
    ...F.varint(commandId, 'commandId'),
    ...F.str(name, 'name'),
    ...F.str(args, 'args'),
    ...F.varint(timeoutMs, 'timeoutMs'),
  ],
  decoded: { type: 'command', commandId, name, args, timeoutMs },
});
add('command-with-json-args', '§8.1', 'hub', command(7, 'set-interval', '{"ms":5000}', 30000));
add('command-without-args', '§8.1', 'hub', command(8, 'reboot', '', 10000));
add('error-with-alias', '§7.6', 'hub', error('OUT_OF_RANGE', 32, 42, 0, 'temperature 120 is above max 85'));
add(
  'error-without-alias-before-close',
  '§6.6',
  'hub',
  error('AUTH_FAILED', 20, 0, null, 'unknown device or wrong token'),
);
add(
  'error-two-byte-alias-unicode-message',
  '§7.6',
  'hub',
  error('TYPE_MISMATCH', 31, 43, 300, 'fw/state erwartet STRING — got INT'),
);
add('error-unknown-wire-code', '§7.6', 'hub', error('UNKNOWN_99', 99, 0, null, ''));
add(
  'error-auth-throttled-before-close',
  '§6.1',
  'hub',
  error('AUTH_THROTTLED', 28, 0, null, 'too many failed HELLOs from this address; retry in 60 s at most'),
);
add(
  'error-too-many-pings-before-close',
  '§6.5',
  'hub',
  error('TOO_MANY_PINGS', 29, 0, null, 'more than 16 Pings arrived before the hub could answer them'),
);
add('backoff-rate-limited', '§7.4', 'hub', {
  fields: [...F.type(0x45, 'BACKOFF'), ...F.varint(40, 'code (RATE_LIMITED)'), ...F.varint(1500, 'pauseMs')],
  decoded: { type: 'backoff', code: 'RATE_LIMITED', pauseMs: 1500 },
});
add('backoff-store-busy', '§7.4', 'hub', {
  fields: [...F.type(0x45, 'BACKOFF'), ...F.varint(41, 'code (STORE_BUSY)'), ...F.varint(5000, 'pauseMs')],
  decoded: { type: 'backoff', code: 'STORE_BUSY', pauseMs: 5000 },
});

for (const v of valid) v.hex = v.fields.map(([h]) => h).join('');

// ---- invalid ----
const invalid = [];
const bad = (name, clause, direction, code, hex, extra = {}) =>
  invalid.push({
    name,
    clause,
    direction,
    ...extra,
    hex: hex.replace(/\s+/g, ''),
    error: { code, incomplete: code === 'FRAME_TRUNCATED' },
  });
const C = { prevSeq: 10, prevTs: T };
const h = (...parts) => parts.join('');
const strHex = (s) => vHex(Buffer.byteLength(s)) + utf8(s);
const helloHead = (deviceId = 'env-1', token = 'secret') => h('01', strHex(deviceId), strHex(token), '00', '00');
// epoch 1, lastSeq 0, clock 0, dropped 0
const helloTail = '01000000';
const decl = (alias, kind, flags, name, unit = '', extra = '') =>
  h(
    vHex(alias),
    kind.toString(16).padStart(2, '0'),
    flags.toString(16).padStart(2, '0'),
    strHex(name),
    strHex(unit),
    extra,
  );

bad('empty-message', '§3.1', 'device', 'FRAME_TRUNCATED', '');
bad('empty-message-hub', '§3.1', 'hub', 'FRAME_TRUNCATED', '');
bad('hello-ends-inside-device-id', '§2.5', 'device', 'FRAME_TRUNCATED', '01 05 656e76');
bad('reading-ends-inside-f32', '§2.4', 'device', 'FRAME_TRUNCATED', '02 02 02 00 0000ac', { context: C });
bad('reading-ends-inside-varint', '§2.2', 'device', 'FRAME_TRUNCATED', '02 02 d0', { context: C });
bad('batch-ends-before-second-reading', '§5.4', 'device', 'FRAME_TRUNCATED', '04 02 02 02 01 1c', { context: C });
bad('ack-without-seq', '§7.3', 'hub', 'FRAME_TRUNCATED', '42');
bad(
  'welcome-without-max-rate',
  '§4.3',
  'hub',
  'FRAME_TRUNCATED',
  h('41', vHex(T), '29', vHex(10000), vHex(16384), vHex(256)),
);
bad('hub-frame-type-sent-to-hub', '§3.1', 'device', 'UNKNOWN_FRAME_TYPE', '42 2a');
bad('device-frame-type-sent-to-device', '§3.1', 'hub', 'UNKNOWN_FRAME_TYPE', '06 00');
bad('type-0x00', '§3.1', 'device', 'UNKNOWN_FRAME_TYPE', '00');
bad('reserved-device-type-0x07', '§3.1', 'device', 'UNKNOWN_FRAME_TYPE', '07 00');
bad('reserved-hub-type-0x46', '§3.1', 'hub', 'UNKNOWN_FRAME_TYPE', '46 00');
bad('type-0xff', '§3.1', 'hub', 'UNKNOWN_FRAME_TYPE', 'ff');
bad('status-trailing-byte', '§3.1', 'device', 'TRAILING_BYTES', '06 03 00');
bad('command-result-trailing-byte', '§3.1', 'device', 'TRAILING_BYTES', '05 07 00 00 00');
bad('hello-trailing-byte', '§3.1', 'device', 'TRAILING_BYTES', h(helloHead(), helloTail, '00', 'ff'));
bad('ack-trailing-byte', '§3.1', 'hub', 'TRAILING_BYTES', '42 2a 2a');
bad('batch-trailing-byte', '§5.4', 'device', 'TRAILING_BYTES', '04 01 02 02 01 1c 00', { context: C });
bad('varint-nine-bytes', '§2.2', 'device', 'VARINT_OVERFLOW', '06 80808080808080 80 00');
bad('varint-2-pow-53', '§2.2', 'device', 'VARINT_OVERFLOW', '06 80808080808080 10');
bad('varint-overflow-in-ack', '§2.2', 'hub', 'VARINT_OVERFLOW', '42 ffffffffffffff 7f');
bad('utf8-overlong-nul', '§2.5', 'device', 'INVALID_UTF8', '05 07 01 02 c080');
bad('utf8-encoded-surrogate', '§2.5', 'device', 'INVALID_UTF8', '05 07 01 03 eda080');
bad('utf8-cut-sequence-in-string-value', '§2.5', 'device', 'INVALID_UTF8', '03 02 05 02 e282', { context: C });
bad('utf8-0xff-in-error-message', '§2.5', 'hub', 'INVALID_UTF8', '44 20 00 00 02 41ff');
bad(
  'device-id-65-bytes',
  '§4.1',
  'device',
  'STRING_TOO_LONG',
  h('01 41', utf8('d'.repeat(65)), strHex('secret'), '0000', helloTail, '00'),
);
bad('length-checked-before-bytes', '§9.1', 'device', 'STRING_TOO_LONG', '01 41');
bad('string-value-257-bytes', '§5.2', 'device', 'STRING_TOO_LONG', h('03 02 05 8102', utf8('x'.repeat(257))), {
  context: C,
});
bad('error-message-257-bytes', '§7.6', 'hub', 'STRING_TOO_LONG', h('44 20 00 00 8102', utf8('m'.repeat(257))));
bad('value-type-6', '§5.2', 'device', 'INVALID_VALUE_TYPE', '03 02 06', { context: C });
bad('value-type-7-alias-1', '§5.2', 'device', 'INVALID_VALUE_TYPE', '02 02 02 03 0f', { context: C });
bad('hello-65-metrics', '§4.1', 'device', 'TOO_MANY_METRICS', h(helloHead(), helloTail, '41'));
bad('reading-65-values', '§5.3', 'device', 'TOO_MANY_METRICS', h('03 02', '04'.repeat(65)), { context: C });
bad('batch-entry-value-count-65', '§5.4', 'device', 'TOO_MANY_METRICS', '04 01 02 02 41', { context: C });
bad('batch-count-0', '§5.4', 'device', 'BATCH_TOO_LARGE', '04 00', { context: C });
bad('batch-count-257', '§5.4', 'device', 'BATCH_TOO_LARGE', '04 8102', { context: C });
bad('reading-without-values', '§5.3', 'device', 'EMPTY_READING', '02 02 02', { context: C });
bad('reading-untimed-without-values', '§5.3', 'device', 'EMPTY_READING', '03 02', { context: C });
bad('batch-entry-value-count-0', '§5.4', 'device', 'EMPTY_READING', '04 01 02 02 00', { context: C });
bad('device-id-empty', '§4.1', 'device', 'INVALID_FIELD', h('01 00', strHex('secret'), '0000', helloTail, '00'));
bad('device-id-with-space', '§4.1', 'device', 'INVALID_FIELD', h(helloHead('env 1'), helloTail, '00'));
bad('device-id-non-ascii', '§4.1', 'device', 'INVALID_FIELD', h(helloHead('capteur-é'), helloTail, '00'));
bad('token-empty', '§4.1', 'device', 'INVALID_FIELD', h('01', strHex('env-1'), '00 00 00', helloTail, '00'));
bad('epoch-above-u32', '§4.1', 'device', 'INVALID_FIELD', h(helloHead(), vHex(2 ** 32), '000000', '00'));
bad(
  'metric-alias-above-1023',
  '§4.2',
  'device',
  'INVALID_FIELD',
  h(helloHead(), helloTail, '01', decl(1024, 0, 0, 'temp')),
);
bad(
  'metric-alias-declared-twice',
  '§4.2',
  'device',
  'INVALID_FIELD',
  h(helloHead(), helloTail, '02', decl(0, 0, 0, 'a'), decl(0, 0, 0, 'b')),
);
bad('metric-kind-5', '§4.2', 'device', 'INVALID_FIELD', h(helloHead(), helloTail, '01', decl(0, 5, 0, 'temp')));
bad(
  'metric-flags-reserved-bit',
  '§4.2',
  'device',
  'INVALID_FIELD',
  h(helloHead(), helloTail, '01', decl(0, 0, 4, 'temp')),
);
bad(
  'bool-metric-with-range',
  '§4.2',
  'device',
  'INVALID_FIELD',
  h(helloHead(), helloTail, '01', decl(0, 3, 1, 'door', '', f64Hex(0))),
);
bad(
  'metric-name-starts-with-digit',
  '§4.2',
  'device',
  'INVALID_FIELD',
  h(helloHead(), helloTail, '01', decl(0, 0, 0, '2temp')),
);
bad(
  'metric-name-declared-twice',
  '§4.2',
  'device',
  'INVALID_FIELD',
  h(helloHead(), helloTail, '02', decl(0, 0, 0, 'temp'), decl(1, 0, 0, 'temp')),
);
bad(
  'metric-min-nan',
  '§4.2',
  'device',
  'INVALID_FIELD',
  h(helloHead(), helloTail, '01', decl(0, 1, 1, 'temp', '', f64Hex(NaN))),
);
bad(
  'metric-max-infinite',
  '§4.2',
  'device',
  'INVALID_FIELD',
  h(helloHead(), helloTail, '01', decl(0, 1, 2, 'temp', '', f64Hex(Infinity))),
);
bad(
  'metric-min-above-max',
  '§4.2',
  'device',
  'INVALID_FIELD',
  h(helloHead(), helloTail, '01', decl(0, 1, 3, 'temp', '', f64Hex(10) + f64Hex(5))),
);
bad('value-alias-above-1023', '§5.2', 'device', 'INVALID_FIELD', h('03 02', vHex(1024 * 8 + 4)), { context: C });
bad('seq-zero-after-delta', '§5.1', 'device', 'INVALID_FIELD', '03 13 04', { context: C });
bad('timestamp-below-zero-after-delta', '§5.1', 'device', 'INVALID_FIELD', h('02 02', vHex(zz(-1)), '04'), {
  context: { prevSeq: 0, prevTs: 0 },
});
bad('command-result-id-0', '§8.2', 'device', 'INVALID_FIELD', '05 00 01 00');
bad('command-result-status-4', '§8.2', 'device', 'INVALID_FIELD', '05 07 04 00');
bad('command-id-0', '§8.1', 'hub', 'INVALID_FIELD', h('43 00', strHex('reboot'), '00 10'));
bad('command-name-empty', '§8.1', 'hub', 'INVALID_FIELD', '43 07 00 00 10');
const limits16 = { maxFrameBytes: 16 };
bad(
  'reading-18-bytes-cut-short-with-limit-16-size-checked-first',
  '§9.2',
  'device',
  'FRAME_TOO_LARGE',
  '02 02 d00f 00 0000ac41 08 00004142 10 00507d',
  { context: C, limits: limits16 },
);
bad('hub-frame-17-bytes-with-limit-16', '§9.2', 'hub', 'FRAME_TOO_LARGE', h('44 20 00 00 0c', utf8('x'.repeat(12))), {
  limits: limits16,
});
bad('size-checked-before-type', '§3.1', 'device', 'FRAME_TOO_LARGE', 'ff'.repeat(17), { limits: limits16 });

const doc = {
  description:
    'Golden test vectors of the tendril.v1 device protocol (docs/protocol.md; format in §14). valid: decode hex (with context, limits) to decoded and the context to contextAfter; encode decoded to hex (or to reencoded where present); fields annotate hex slice by slice. invalid: decoding hex must fail with error.code; error.incomplete is true only for FRAME_TRUNCATED. Floats JSON cannot hold appear in decoded as "NaN", "Infinity", "-Infinity", "-0". Timestamps are ms since the Unix epoch; 1732233600000 is 2024-11-22T00:00:00Z.',
  protocol: 'tendril.v1',
  valid,
  invalid,
};

// Pretty-print with one [hex, comment] pair per line.
function format(value, indent = '') {
  const next = indent + '  ';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string')
      return `[${JSON.stringify(value[0])}, ${JSON.stringify(value[1])}]`;
    return '[\n' + value.map((v) => next + format(v, next)).join(',\n') + '\n' + indent + ']';
  }
  if (value && typeof value === 'object') {
    const entries = Object.entries(value);
    if (
      entries.every(([, v]) => v === null || typeof v !== 'object') &&
      JSON.stringify(value).length < 100 &&
      indent.length > 2
    )
      return '{' + entries.map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(', ') + '}';
    return (
      '{\n' +
      entries.map(([k, v]) => `${next}${JSON.stringify(k)}: ${format(v, next)}`).join(',\n') +
      '\n' +
      indent +
      '}'
    );
  }
  return JSON.stringify(value);
}
// Key order within a valid vector: name, clause, direction, context, contextAfter, limits, hex, reencoded, fields, decoded.
const order = [
  'name',
  'clause',
  'direction',
  'context',
  'contextAfter',
  'limits',
  'hex',
  'reencoded',
  'fields',
  'decoded',
  'error',
];
const sortKeys = (v) => Object.fromEntries(order.filter((k) => k in v).map((k) => [k, v[k]]));
doc.valid = doc.valid.map(sortKeys);
doc.invalid = doc.invalid.map(sortKeys);
process.stdout.write(format(doc) + '\n');
