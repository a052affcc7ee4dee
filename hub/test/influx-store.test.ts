/**
 * InfluxDB store against a real influxd (1.6, started by the harness): batching, retries that honour
 * Retry-After, permanent refusals recorded without blocking, 1.x partial writes, set-up and retention.
 * The 2.x write API cannot run here; its request format is checked against a contract fake.
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, rmSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInfluxDB, type InfluxDBServer } from '../../test/support/index.js';
import {
  createInfluxStore,
  InfluxWriteError,
  type InfluxStore,
  type InfluxStoreConfig,
} from '../src/storage/influx-store.js';
import { pointTimestampNs, readingToLine } from '../src/storage/influx-schema.js';
import { influxConfigFromEnv as influxSection } from '../src/storage/influx-config.js';
import { ConfigError, EnvReader } from '../src/core/env.js';

import { captureLogger } from './stores.js';
const influxConfigFromEnv = (env: Record<string, string>, dataDir: string) =>
  influxSection(new EnvReader(env), dataDir);
import { UnreadableBatchError, type StoredReading } from '../src/storage/types.js';
import { encodeRecord, RecordBatch, recordView } from '../src/spool/record.js';

let influx: InfluxDBServer;
let dir: string;
let dbCounter = 0;
const stores: InfluxStore[] = [];

beforeAll(async () => {
  influx = await startInfluxDB();
  dir = mkdtempSync(join(tmpdir(), 'tendril-influx-test-'));
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await influx?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A store on a database of its own (created by the store's set-up). */
function newStore(overrides: Partial<InfluxStoreConfig> = {}): { store: InfluxStore; db: string; delays: number[] } {
  const db = `t${++dbCounter}`;
  const delays: number[] = [];
  const store = createInfluxStore({
    url: influx.url,
    db,
    deadLetterPath: join(dir, `${db}-dead-letter.jsonl`),
    // Retries wait for nothing here; the test asserts the delay that was asked for instead.
    sleep: async (ms) => {
      delays.push(ms);
    },
    backoff: { random: () => 0.5 },
    ...overrides,
  });
  stores.push(store);
  return { store, db, delays };
}

// Recent, so a retention policy of days keeps it (the 12 000-reading test spans 3.3 h before now).
const T0 = Math.floor(Date.now() / 60_000) * 60_000 - 4 * 3_600_000;

function reading(
  seq: number,
  values: StoredReading['values'],
  opts: { deviceId?: string; epoch?: number; ts?: number } = {},
): StoredReading {
  return { deviceId: opts.deviceId ?? 'dev-1', epoch: opts.epoch ?? 7, seq, ts: opts.ts ?? T0 + seq * 1000, values };
}

/** The readings as the spool's drainer hands them over: records of up to 7 readings (of one device or several). */
function asBatch(readings: readonly StoredReading[]): RecordBatch {
  const batch = new RecordBatch();
  for (let i = 0; i < readings.length; i += 7) batch.addRecord(recordView(encodeRecord(readings.slice(i, i + 7), 0)));
  return batch;
}

function temp(v: number): StoredReading['values'][number] {
  return { metric: 'temp', kind: 'f64', value: v };
}

async function countReadings(db: string, where = ''): Promise<number> {
  const [r] = await influx.query(`SELECT count("@seq") FROM "readings" ${where}`, { db });
  return (r?.series?.[0]?.values?.[0]?.[1] as number | undefined) ?? 0;
}

function deadLetters(db: string): Array<Record<string, unknown>> {
  try {
    return readFileSync(join(dir, `${db}-dead-letter.jsonl`), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    return [];
  }
}

/** A local HTTP server in front of the real influxd; `decide` may answer a request itself instead of forwarding. */
async function startProxy(
  decide: (req: IncomingMessage, body: Buffer) => ((res: ServerResponse) => void) | null,
): Promise<{ url: string; server: Server; writes: number }> {
  const target = new URL(influx.url);
  const state = { url: '', server: undefined as unknown as Server, writes: 0 };
  state.server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url?.startsWith('/write')) state.writes++;
      const answer = decide(req, body);
      if (answer) {
        answer(res);
        return;
      }
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (ures) => {
          res.writeHead(ures.statusCode ?? 502, ures.headers);
          ures.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}`;
  return state;
}

describe('schema', () => {
  it('folds (epoch + seq) into the sub-millisecond digits, so two readings of one device in the same ms stay apart and a resend is the same point', () => {
    expect(pointTimestampNs({ ts: 1_767_614_400_123, epoch: 7, seq: 5 })).toBe('1767614400123000012');
    expect(pointTimestampNs({ ts: 1_767_614_400_123, epoch: 7, seq: 6 })).toBe('1767614400123000013');
    expect(pointTimestampNs({ ts: 1_767_614_400_123, epoch: 4_294_967_295, seq: 999_999 })).toBe('1767614400123967294');
    const r = reading(
      5,
      [
        temp(21.5),
        { metric: 'door', kind: 'bool', value: true },
        { metric: 'note', kind: 'string', value: 'a "b", c=d' },
      ],
      { deviceId: 'dev 1,x=y' },
    );
    expect(readingToLine(r, 'readings').line).toBe(readingToLine(r, 'readings').line);
    // Escaping comes from the client library's Point: space, comma and = in tags, quotes in strings.
    expect(readingToLine(r, 'readings').line).toMatch(
      /^readings,device=dev\\ 1\\,x\\=y @seq=5i,door=T,note="a \\"b\\", c=d",temp=21.5 \d{19}$/,
    );
  });
});

// Every write test runs through both entry points: write() with reading objects, and writeBatch() with the
// spool's records (lines encoded straight from the records; reading objects decoded only on a refusal).
describe.each(['write', 'writeBatch'] as const)('InfluxDB store (real influxd), %s()', (via) => {
  const write = (store: InfluxStore, readings: StoredReading[]): Promise<void> =>
    via === 'write' ? store.write(readings) : store.writeBatch(asBatch(readings));

  it('creates its database, applies the retention policy, writes in batches of batchLines and reads back', async () => {
    const { store, db } = newStore({ batchLines: 5000, retentionDays: 30 });
    const readings = Array.from({ length: 12_000 }, (_, i) => reading(i + 1, [temp(i)]));
    await write(store, readings);
    expect(store.stats().requests).toBe(3); // 5000 + 5000 + 2000 lines
    expect(store.stats().linesWritten).toBe(12_000);
    expect(await countReadings(db)).toBe(12_000);
    const [rp] = await influx.query(`SHOW RETENTION POLICIES ON "${db}"`, { db });
    const row = rp?.series?.[0]?.values?.find((r) => r[4] === true);
    expect(row?.[1]).toBe('720h0m0s');
    expect(store.stats().serverVersion).toMatch(/^1\./);
  });

  it('stores a resend of the same (device, epoch, seq) once, and keeps two readings of the same millisecond apart', async () => {
    const { store, db } = newStore();
    const a = reading(1, [temp(1)], { ts: T0 });
    const b = reading(2, [temp(2)], { ts: T0 });
    await write(store, [a, b]);
    await write(store, [a, b, a]);
    expect(await countReadings(db)).toBe(2);
    const [r] = await influx.query('SELECT sum("temp") FROM "readings"', { db });
    expect(r?.series?.[0]?.values?.[0]?.[1]).toBe(3);
  });

  it('writes @seq and no @epoch, and reads and counts points of earlier hubs (with @epoch) beside new ones', async () => {
    const { store, db } = newStore();
    // A point as hubs before issue 16 wrote it: @epoch and @seq fields, same timestamp rule.
    const old = reading(1, [temp(10)], { ts: T0 });
    await influx.query(`CREATE DATABASE "${db}"`);
    await influx.write(`readings,device=dev-1 @epoch=7i,@seq=1i,temp=10 ${pointTimestampNs(old)}`, {
      db,
      precision: 'ns',
    });
    await write(store, [old, reading(2, [temp(20)], { ts: T0 + 1000 })]);
    expect(await countReadings(db)).toBe(2); // the resend of seq 1 is the old point (its @epoch stays)
    const [keys] = await influx.query('SHOW FIELD KEYS FROM "readings"', { db });
    expect(keys?.series?.[0]?.values?.map((v) => v[0])).toEqual(['@epoch', '@seq', 'temp']);
    const [epochs] = await influx.query('SELECT count("@epoch") FROM "readings"', { db });
    expect(epochs?.series?.[0]?.values?.[0]?.[1]).toBe(1); // only the earlier hub's point has one
    const latest = await store.latest('dev-1');
    expect(latest).toEqual({ temp: { ts: T0 + 1000, value: 20 } });
    const points = await store.series({
      deviceId: 'dev-1',
      metric: 'temp',
      from: T0,
      to: T0 + 2000,
      stepMs: 1000,
      agg: 'mean',
    });
    expect(points).toEqual([
      { ts: T0, value: 10 },
      { ts: T0 + 1000, value: 20 },
    ]);
  });

  it('retries a 503 after the Retry-After the server asked for, then writes (proxy in front of the real influxd)', async () => {
    let refusals = 2;
    const proxy = await startProxy((req) => {
      if (!req.url?.startsWith('/write') || refusals === 0) return null;
      refusals--;
      return (res) =>
        res.writeHead(503, { 'retry-after': '3', 'content-type': 'application/json' }).end('{"error":"overloaded"}');
    });
    try {
      const { store, db, delays } = newStore({ url: proxy.url, maxAttempts: 5 });
      await write(store, [reading(1, [temp(1)]), reading(2, [temp(2)])]);
      expect(proxy.writes).toBe(3);
      expect(delays).toHaveLength(2);
      for (const d of delays) expect(d).toBeGreaterThanOrEqual(3000);
      expect(store.stats().writeErrors.throttled).toBe(2);
      expect(await countReadings(db)).toBe(2);
    } finally {
      proxy.server.close();
    }
  });

  it('rejects with a retryable InfluxWriteError once maxAttempts are spent, dropping nothing (next write succeeds)', async () => {
    let down = true;
    const proxy = await startProxy((req) =>
      req.url?.startsWith('/write') && down ? (res) => res.writeHead(500).end('{"error":"engine: cache full"}') : null,
    );
    try {
      const { store, db, delays } = newStore({ url: proxy.url, maxAttempts: 3 });
      const batch = [reading(1, [temp(1)])];
      const err = await write(store, batch).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InfluxWriteError);
      expect((err as InfluxWriteError).kind).toBe('server');
      expect(delays).toHaveLength(2); // between the three attempts
      expect(delays[1]!).toBeGreaterThan(delays[0]!); // exponential
      expect(deadLetters(db)).toEqual([]);
      down = false;
      await write(store, batch);
      expect(await countReadings(db)).toBe(1);
    } finally {
      proxy.server.close();
    }
  });

  it('fails fast with kind "unreachable" when nothing listens', async () => {
    const { store } = newStore({ url: 'http://127.0.0.1:9', maxAttempts: 2 });
    const err = await write(store, [reading(1, [temp(1)])]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfluxWriteError);
    expect((err as InfluxWriteError).kind).toBe('unreachable');
    await expect(store.ping()).rejects.toThrow();
  });

  it('leaves out values whose metric changed type, records them, and keeps the rest of those readings and everything after', async () => {
    const { store, db } = newStore();
    await write(store, [reading(1, [temp(20), { metric: 'hum', kind: 'f64', value: 40 }])]);
    // temp re-declared as a string: InfluxDB holds it as float in this shard.
    const batch = [
      reading(2, [
        { metric: 'temp', kind: 'string', value: 'warm' },
        { metric: 'hum', kind: 'f64', value: 41 },
      ]),
      reading(3, [temp(22), { metric: 'hum', kind: 'f64', value: 42 }]),
    ];
    await write(store, batch);
    await write(store, [
      reading(4, [
        { metric: 'temp', kind: 'string', value: 'hot' },
        { metric: 'hum', kind: 'f64', value: 43 },
      ]),
    ]);
    expect(await countReadings(db)).toBe(4);
    const [hum] = await influx.query('SELECT count("hum") FROM "readings"', { db });
    expect(hum?.series?.[0]?.values?.[0]?.[1]).toBe(4);
    const [t] = await influx.query('SELECT count("temp") FROM "readings"', { db });
    expect(t?.series?.[0]?.values?.[0]?.[1]).toBe(2);
    const letters = deadLetters(db);
    const values = letters.flatMap((l) => (l.values as Array<{ seq: number; value: unknown }> | undefined) ?? []);
    expect(values.map((v) => [v.seq, v.value])).toEqual([
      [2, 'warm'],
      [4, 'hot'],
    ]);
    expect(letters[0]?.reason).toMatch(/"temp" is held as float/);
    expect(statSync(join(dir, `${db}-dead-letter.jsonl`)).mode & 0o777).toBe(0o600); // readings: the hub's user only
    expect(store.stats().deadLetteredValues).toBe(2);
    // The learned type is used up front: the second conflicting write cost one request, not two.
    expect(store.stats().writeErrors.type_conflict).toBe(1);
  });

  it('finds the refused lines of a batch whose new field arrives with two types (1.6 refuses the whole batch without detail)', async () => {
    const { store, db } = newStore();
    const batch = Array.from({ length: 8 }, (_, i) =>
      reading(i + 1, [
        i === 5 ? { metric: 'mode', kind: 'string', value: 'eco' } : { metric: 'mode', kind: 'f64', value: i },
        temp(i),
      ]),
    );
    await write(store, batch);
    await write(store, [reading(9, [temp(9)])]);
    expect(await countReadings(db)).toBe(9);
    const [m] = await influx.query('SELECT count("mode") FROM "readings"', { db });
    expect(m?.series?.[0]?.values?.[0]?.[1]).toBe(7);
    const values = deadLetters(db).flatMap((l) => (l.values as Array<{ seq: number }> | undefined) ?? []);
    expect(values.map((v) => v.seq)).toEqual([6]);
  });

  it('partial write: points beyond the retention policy are dropped by the server, recorded, and the valid ones stored', async () => {
    const { store, db } = newStore({ retentionDays: 1 });
    const now = Date.now();
    const old = [
      reading(1, [temp(1)], { ts: now - 10 * 86_400_000 }),
      reading(2, [temp(2)], { ts: now - 9 * 86_400_000 }),
    ];
    const fresh = [reading(3, [temp(3)], { ts: now - 1000 }), reading(4, [temp(4)], { ts: now - 500 })];
    await write(store, [old[0]!, fresh[0]!, old[1]!, fresh[1]!]);
    expect(await countReadings(db)).toBe(2);
    const rejected = deadLetters(db).filter((l) => l.kind === 'rejected');
    const lines = rejected.flatMap((l) => l.lines as string[]);
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.includes('@seq=1i') || l.includes('@seq=2i'))).toBe(true);
    expect(String(rejected[0]?.reason)).toMatch(/beyond retention policy/);
    expect(store.stats().deadLetteredLines).toBe(2);
    await write(store, [reading(5, [temp(5)], { ts: now })]);
    expect(await countReadings(db)).toBe(3);
  });

  it('runs without admin rights: a refused CREATE DATABASE is logged and writes go to the existing database', async () => {
    const db = `t${++dbCounter}`;
    await influx.query(`CREATE DATABASE "${db}"`);
    const refused: string[] = [];
    const proxy = await startProxy((req, body) => {
      const q = new URLSearchParams(body.toString()).get('q') ?? '';
      if (!req.url?.startsWith('/query') || !/^(CREATE|ALTER|SHOW RETENTION)/.test(q)) return null;
      refused.push(q);
      return (res) =>
        res
          .writeHead(403, { 'content-type': 'application/json' })
          .end(
            `{"error":"error authorizing query: not authorized to execute statement '${q}', requires admin privilege"}`,
          );
    });
    try {
      const warnings: string[] = [];
      const { store } = newStore({
        url: proxy.url,
        db,
        retentionDays: 30,
        logger: captureLogger((_level, _obj, msg) => warnings.push(msg)),
      });
      await write(store, [reading(1, [temp(1)])]);
      expect(refused).toEqual([`CREATE DATABASE "${db}"`]);
      expect(warnings.join('\n')).toMatch(/CREATE DATABASE failed/);
      expect(await countReadings(db)).toBe(1);
    } finally {
      proxy.server.close();
    }
  });

  it('gzips write bodies when asked', async () => {
    const encodings: Array<string | undefined> = [];
    const proxy = await startProxy((req, body) => {
      if (req.url?.startsWith('/write')) {
        encodings.push(req.headers['content-encoding']);
        expect(gunzipSync(body).toString()).toContain('@seq=1i');
      }
      return null;
    });
    try {
      const { store, db } = newStore({ url: proxy.url, gzip: true });
      await write(store, [reading(1, [temp(1)])]);
      expect(encodings).toEqual(['gzip']);
      expect(await countReadings(db)).toBe(1);
    } finally {
      proxy.server.close();
    }
  });
});

describe('InfluxDB store (real influxd), writeBatch() of a record that does not decode', () => {
  it('rejects with UnreadableBatchError, not as an InfluxDB failure, and counts no write error', async () => {
    const { store, db } = newStore({ batchLines: 4 });
    const bad = encodeRecord([reading(5, [temp(5)]), reading(6, [temp(6)])], 0);
    const padded = Buffer.concat([bad, Buffer.from([0])]);
    padded.writeUInt32LE(bad.readUInt32LE(0) + 1, 0); // one byte past the last reading (recordView checks no CRC)
    const batch = asBatch([1, 2, 3, 4].map((seq) => reading(seq, [temp(seq)])));
    batch.addRecord(recordView(padded));
    const err = await store.writeBatch(batch).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreadableBatchError);
    expect((err as Error).message).toMatch(/1 bytes after the last reading/);
    expect(Object.values(store.stats().writeErrors).every((n) => n === 0)).toBe(true);
    expect(store.stats().lastError).toBeNull();
    expect(await countReadings(db)).toBe(4); // the chunk before the record was written: the spool writes it again
  });
});

describe('InfluxDB 2.x write API (contract fake of POST /api/v2/write)', () => {
  // The fake checks what InfluxDB 2.x documents for /api/v2/write: POST, query org, bucket, precision,
  // `Authorization: Token <token>`, `Content-Type: text/plain; charset=utf-8`, line protocol body, 204.
  it('posts line protocol with org, bucket, precision=ns and the token, through the client library', async () => {
    const seen: Array<{
      method?: string;
      path: string;
      query: URLSearchParams;
      auth?: string;
      type?: string;
      body: string;
    }> = [];
    let answer: { status: number; headers?: Record<string, string>; body?: string } = { status: 204 };
    const fake = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://x');
        seen.push({
          method: req.method,
          path: url.pathname,
          query: url.searchParams,
          auth: req.headers.authorization,
          type: req.headers['content-type'],
          body: Buffer.concat(chunks).toString(),
        });
        res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers }).end(answer.body);
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
    const delays: number[] = [];
    const store = createInfluxStore({
      url,
      org: 'acme',
      bucket: 'telemetry',
      token: 's3cret',
      sleep: async (ms) => {
        delays.push(ms);
      },
      maxAttempts: 3,
    });
    stores.push(store);
    try {
      // set-up pings /ping; the fake answers 204 to it like a 2.x server would
      const r1 = reading(1, [temp(21.5)]);
      const r2 = reading(2, [{ metric: 'door', kind: 'bool', value: false }]);
      await store.write([r1, r2]);
      const writes = seen.filter((s) => s.path === '/api/v2/write');
      expect(writes).toHaveLength(1);
      const w = writes[0]!;
      expect(w.method).toBe('POST');
      expect(w.query.get('org')).toBe('acme');
      expect(w.query.get('bucket')).toBe('telemetry');
      expect(w.query.get('precision')).toBe('ns');
      expect(w.auth).toBe('Token s3cret');
      expect(w.type).toBe('text/plain; charset=utf-8');
      expect(w.body).toBe([readingToLine(r1, 'readings').line, readingToLine(r2, 'readings').line].join('\n'));

      // 2.x throttling: 429 with Retry-After is honoured like on the v1 path.
      answer = {
        status: 429,
        headers: { 'retry-after': '2' },
        body: '{"code":"too many requests","message":"slow down"}',
      };
      const failed = await store.write([r1]).catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(InfluxWriteError);
      expect((failed as InfluxWriteError).kind).toBe('throttled');
      expect(delays.length).toBeGreaterThan(0);
      for (const d of delays) expect(d).toBeGreaterThanOrEqual(2000);

      // 2.x reports refused points as 422 with a JSON message; a single refused line is dead-lettered.
      answer = {
        status: 422,
        body: '{"code":"unprocessable entity","message":"failure writing points to database: partial write: points beyond retention policy dropped=1"}',
      };
      await store.write([r1]);
      expect(store.stats().deadLetteredLines).toBe(1);
    } finally {
      await store.close();
      fake.close();
    }
  });
});

describe('configuration from the environment', () => {
  it('selects 1.x / v1-compat by INFLUX_URL + INFLUX_DB and 2.x by ORG + BUCKET + TOKEN, and names what is missing', () => {
    expect(influxConfigFromEnv({}, '/data')).toBeNull();
    const v1 = influxConfigFromEnv({ INFLUX_URL: 'http://h:8086', INFLUX_DB: 'tendril', INFLUX_TOKEN: 't' }, '/data');
    expect(v1).toMatchObject({
      url: 'http://h:8086',
      db: 'tendril',
      token: 't',
      retentionDays: 30,
      deadLetterPath: '/data/dead-letter/influx.jsonl',
    });
    const v2 = influxConfigFromEnv(
      { INFLUX_URL: 'http://h:8086', INFLUX_ORG: 'o', INFLUX_BUCKET: 'b', INFLUX_TOKEN: 't', HUB_RETENTION_DAYS: '0' },
      '/data',
    );
    expect(v2).toMatchObject({ org: 'o', bucket: 'b', db: undefined, retentionDays: 0 });
    expect(() => influxConfigFromEnv({ INFLUX_URL: 'http://h:8086' }, '/d')).toThrow(/INFLUX_DB/);
    expect(() => influxConfigFromEnv({ INFLUX_URL: 'http://h', INFLUX_ORG: 'o', INFLUX_BUCKET: 'b' }, '/d')).toThrow(
      /INFLUX_TOKEN/,
    );
    expect(() => influxConfigFromEnv({ INFLUX_DB: 'x' }, '/d')).toThrow(/INFLUX_URL/);
    expect(() => influxConfigFromEnv({ INFLUX_URL: 'ftp://h', INFLUX_DB: 'x' }, '/d')).toThrow(ConfigError);
    expect(() =>
      influxConfigFromEnv({ INFLUX_URL: 'http://h', INFLUX_DB: 'x', HUB_RETENTION_DAYS: 'a week' }, '/d'),
    ).toThrow(/HUB_RETENTION_DAYS/);
  });
});
