/** The live channel's pure parts: request parsing, the resume window, and a subscription's coalescing outbox. */
import { describe, expect, it } from 'vitest';
import { addItem, batchMessage, emptyBatch } from '../src/live/batch.js';
import { DEFAULT_LIVE_LIMITS, LiveRequestError, parseClientMessage } from '../src/live/protocol.js';
import { type LiveEvent, type LiveReading, liveEvent, StreamLog } from '../src/live/stream-log.js';
import { Subscription } from '../src/live/subscription.js';

function refusal(text: string): { code: string; id: number | null } {
  try {
    parseClientMessage(text, DEFAULT_LIVE_LIMITS);
  } catch (err) {
    if (err instanceof LiveRequestError) return { code: err.code, id: err.id };
    throw err;
  }
  throw new Error(`accepted: ${text}`);
}

describe('parseClientMessage (docs/live.md §3, §4)', () => {
  it('reads subscribe, update, unsubscribe, ping and auth', () => {
    expect(
      parseClientMessage(
        '{"type":"subscribe","id":1,"stream":"device","devices":["a","a","b"],"minIntervalMs":100}',
        DEFAULT_LIVE_LIMITS,
      ),
    ).toEqual({
      type: 'subscribe',
      id: 1,
      stream: 'device',
      devices: ['a', 'b'],
      metrics: null,
      minIntervalMs: 100,
      resume: null,
    });
    expect(
      parseClientMessage('{"type":"update","id":2,"subscription":1,"minIntervalMs":null}', DEFAULT_LIVE_LIMITS),
    ).toMatchObject({ minIntervalMs: null });
    expect(parseClientMessage('{"type":"unsubscribe","id":3,"subscription":1}', DEFAULT_LIVE_LIMITS)).toEqual({
      type: 'unsubscribe',
      id: 3,
      subscription: 1,
    });
    expect(parseClientMessage('{"type":"auth","token":"x"}', DEFAULT_LIVE_LIMITS)).toEqual({
      type: 'auth',
      token: 'x',
    });
  });

  it('refuses each malformed request with its code and, where it could read one, its id', () => {
    expect(refusal('nope')).toEqual({ code: 'INVALID_REQUEST', id: null });
    expect(refusal('{"type":"ping"}')).toEqual({ code: 'INVALID_REQUEST', id: null });
    expect(refusal('{"type":"ping","id":1.5}')).toEqual({ code: 'INVALID_REQUEST', id: null });
    expect(refusal('{"type":"dance","id":4}')).toEqual({ code: 'INVALID_REQUEST', id: 4 });
    expect(refusal('{"type":"subscribe","id":5,"stream":"fleet","devices":["a"]}')).toEqual({
      code: 'INVALID_REQUEST',
      id: 5,
    });
    expect(refusal('{"type":"subscribe","id":6,"stream":"device","devices":[]}')).toEqual({
      code: 'INVALID_REQUEST',
      id: 6,
    });
    const many = JSON.stringify(Array.from({ length: 501 }, (_, i) => `d${i}`));
    expect(refusal(`{"type":"subscribe","id":7,"stream":"device","devices":${many}}`)).toEqual({
      code: 'TOO_MANY_DEVICES',
      id: 7,
    });
    expect(refusal('{"type":"subscribe","id":8,"stream":"device","devices":["a"],"minIntervalMs":10}')).toEqual({
      code: 'INVALID_REQUEST',
      id: 8,
    });
    expect(refusal('{"type":"subscribe","id":9,"stream":"fleet","resume":{"epoch":"e","offset":-1}}')).toEqual({
      code: 'INVALID_REQUEST',
      id: 9,
    });
    expect(refusal('{"type":"update","id":10,"subscription":1}')).toEqual({ code: 'INVALID_REQUEST', id: 10 });
  });
});

function ev(partial: Partial<LiveEvent> & Pick<LiveEvent, 'kind' | 'key'>): LiveEvent {
  return { offset: 0, at: 0, control: false, deviceId: 'd', body: '{}', ...partial };
}

describe('StreamLog (§6.2)', () => {
  it('resumes only within its epoch and window; trims by count, bytes and age', () => {
    let now = 1000;
    const log = new StreamLog('fleet', { maxEvents: 3, maxBytes: 1 << 20, maxAgeMs: 500 }, () => now);
    for (let i = 0; i < 5; i++) log.append(ev({ kind: 'health', key: 'h' }));
    expect(log.head).toBe(5);
    expect(log.size).toBe(3);
    expect(log.canResume(log.epoch, 2)).toBe(true);
    expect(log.canResume(log.epoch, 1)).toBe(false);
    expect(log.canResume(log.epoch, 6)).toBe(false);
    expect(log.canResume('other', 5)).toBe(false);
    expect([...log.since(3)].map((e) => e.offset)).toEqual([4, 5]);
    now += 600;
    expect(log.canResume(log.epoch, 4)).toBe(false);
    expect(log.canResume(log.epoch, 5)).toBe(true);
  });

  it('is idle while no client is connected and none was for its window age: skipped events take offsets and empty the window', () => {
    let now = 1000;
    const log = new StreamLog('device', { maxEvents: 100, maxBytes: 1 << 20, maxAgeMs: 500 }, () => now);
    expect(log.idle).toBe(true); // no client since the hub started: nobody holds an offset of this run
    log.setWatched(true);
    expect(log.idle).toBe(false);
    log.append(ev({ kind: 'health', key: 'h' }));
    log.append(ev({ kind: 'health', key: 'h' }));
    log.setWatched(false);
    now += 400;
    expect(log.idle).toBe(false); // the client that left 400 ms ago may still resume
    log.append(ev({ kind: 'health', key: 'h' }));
    expect(log.canResume(log.epoch, 2)).toBe(true);
    now += 200;
    expect(log.idle).toBe(true);
    log.skip();
    expect(log.head).toBe(4);
    expect(log.size).toBe(0);
    expect(log.canResume(log.epoch, 2)).toBe(false); // a gap nobody can replay: not recovered
    expect(log.canResume(log.epoch, 4)).toBe(true);
  });

  it('replays what it appended: kind, key, device, control flag, body, and the readings and latest values read back', () => {
    const log = new StreamLog('device', { maxEvents: 10, maxBytes: 1 << 20, maxAgeMs: 60_000 }, () => 5000);
    const readings: LiveReading[] = [
      { seq: 7, ts: 1_767_225_600_123, values: { t: 20.25, ok: true, mode: 'eco "quiet"' } },
      { seq: 8, ts: 1_767_225_600_124, values: { t: -0.1 } },
    ];
    const latest = { t: { ts: 1_767_225_600_124, value: -0.1 } };
    log.append(
      liveEvent('readings', false, 'd', 'd', JSON.stringify({ kind: 'readings', deviceId: 'd', readings }), readings),
    );
    log.append(
      liveEvent(
        'values',
        false,
        'd',
        'v:d',
        JSON.stringify({ kind: 'values', deviceId: 'd', latest }),
        undefined,
        latest,
      ),
    );
    log.append(liveEvent('presence', true, 'd', 'p:d', '{"kind":"presence"}'));
    const replayed = [...log.since(0)];
    expect(replayed.map((e) => [e.offset, e.at, e.kind, e.key, e.deviceId, e.control])).toEqual([
      [1, 5000, 'readings', 'd', 'd', false],
      [2, 5000, 'values', 'v:d', 'd', false],
      [3, 5000, 'presence', 'p:d', 'd', true],
    ]);
    expect(replayed[0]!.readings).toEqual(readings);
    expect(replayed[0]!.latest).toBeUndefined();
    expect(replayed[1]!.latest).toEqual(latest);
    expect(replayed[1]!.readings).toBeUndefined();
    expect(replayed[2]!.body).toBe('{"kind":"presence"}');
    expect([...log.since(2)].map((e) => e.offset)).toEqual([3]);
    expect(log.retainedBytes).toBe(replayed.reduce((n, e) => n + e.body.length + 64, 0));
  });
});

describe('Subscription outbox (§6.1, §3.5.2)', () => {
  it('keeps the latest value per series, counts what it skipped, and never claims an offset it has not sent', () => {
    const sub = new Subscription(1, 'device', ['d'], ['t'], null);
    const readings = (seq: number, t: number) =>
      ev({ kind: 'readings', key: 'd', offset: seq, readings: [{ seq, ts: seq, values: { t, h: 1 } }] });
    sub.addPending(readings(10, 1));
    sub.addPending(readings(11, 2));
    sub.addPending(readings(12, 3));
    // A control event of offset 13 may only carry what is sent: 12 is still pending, so 11 (pending first - 1).
    expect(sub.offsetFor(13)).toBe(11);
    const out = sub.takeOldest()!;
    expect(out.offset).toBe(12);
    expect(JSON.parse(out.body)).toEqual({
      kind: 'readings',
      deviceId: 'd',
      readings: [{ seq: 12, ts: 12, values: { t: 3 } }],
      coalesced: { t: 2 },
    });
    expect(sub.pendingBytes).toBe(0);
    // Offsets never go back.
    expect(sub.offsetFor(5)).toBe(12);
  });

  it('merges fleet values per device and replaces other data per key, oldest change first', () => {
    const sub = new Subscription(2, 'fleet', null, null, null);
    sub.addPending(ev({ kind: 'values', key: 'v:a', deviceId: 'a', offset: 1, latest: { t: { ts: 1, value: 1 } } }));
    sub.addPending(ev({ kind: 'counters', key: 'c:b', deviceId: 'b', offset: 2, body: '{"kind":"counters","n":1}' }));
    sub.addPending(ev({ kind: 'values', key: 'v:a', deviceId: 'a', offset: 3, latest: { h: { ts: 3, value: 2 } } }));
    sub.addPending(ev({ kind: 'counters', key: 'c:b', deviceId: 'b', offset: 4, body: '{"kind":"counters","n":2}' }));
    const first = sub.takeOldest()!;
    expect(JSON.parse(first.body)).toEqual({
      kind: 'values',
      deviceId: 'a',
      latest: { t: { ts: 1, value: 1 }, h: { ts: 3, value: 2 } },
    });
    expect(first.offset).toBe(3);
    const second = sub.takeOldest()!;
    expect(second.body).toBe('{"kind":"counters","n":2}');
    expect(sub.takeOldest()).toBeNull();
  });
});

describe('batchMessage (§3.6)', () => {
  it('makes a message once for clients whose batches hold the same elements under the same id', () => {
    const a = Buffer.from('{"offset":1,"event":{"kind":"x"}}');
    const b = Buffer.from('{"offset":2,"event":{"kind":"y"}}');
    const batch = (id: number, items: Buffer[]) => {
      const out = emptyBatch(id);
      for (const item of items) addItem(out, item);
      return out;
    };
    const first = batchMessage(1, batch(1, [a, b]));
    expect(JSON.parse(first.toString())).toEqual({
      type: 'events',
      id: 1,
      events: [
        { offset: 1, event: { kind: 'x' } },
        { offset: 2, event: { kind: 'y' } },
      ],
    });
    expect(batchMessage(1, batch(1, [a, b]))).toBe(first);
    // Another id, other elements, or the same bytes in other buffers: made again, and right.
    expect(JSON.parse(batchMessage(2, batch(2, [a, b])).toString()).id).toBe(2);
    expect(batchMessage(1, batch(1, [a]))).not.toBe(first);
    expect(JSON.parse(batchMessage(1, batch(1, [a])).toString())).toEqual({
      type: 'event',
      id: 1,
      offset: 1,
      event: { kind: 'x' },
    });
    expect(batchMessage(1, batch(1, [a, Buffer.from(b)]))).not.toBe(first);
  });
});
