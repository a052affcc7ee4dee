/**
 * Batches (docs/live.md §3.6): the events of a subscription that are ready in the same turn go out as one
 * `events` message, in order, each with its offset, never larger than batchBytes; a slow client still
 * coalesces (§6.1), and resume works from any event of a batch (§6.2).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { deviceIds, LiveTestClient, type LiveTestHub, type Msg, startLiveHub } from './live-helpers.js';

let hub: LiveTestHub;
const clients: LiveTestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await hub?.close();
});

async function viewer(): Promise<LiveTestClient> {
  const c = await LiveTestClient.viewer(hub);
  clients.push(c);
  return c;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The `events` messages of a subscription, as they came. */
function batches(c: LiveTestClient, sub: number): Array<{ msg: Msg; bytes: number }> {
  return c.frames.filter((f) => f.msg.type === 'events' && f.msg.id === sub);
}

function offsets(list: Msg[]): number[] {
  return list.map((m) => m.offset as number);
}

function expectContiguous(xs: number[]): void {
  for (let i = 1; i < xs.length; i++) expect(xs[i], `offset ${i} follows offset ${i - 1}`).toBe(xs[i - 1]! + 1);
}

describe('batches', () => {
  it('§3.6: events of one turn go out as one message, in order, with contiguous offsets; a presence change keeps its place', async () => {
    hub = await startLiveHub({ devices: 20 });
    const c = await viewer();
    const { result } = await c.subscribe({ stream: 'fleet' });
    const ids = deviceIds(20);
    const framesBefore = c.frames.length;
    for (const [i, id] of ids.entries()) {
      hub.readings(id, 1, 1000 + i, { temperature: i });
      if (i === 9) hub.online('dev-0003', 5000);
    }
    await c.until(() => c.events(1, 'values').length === 20, 'twenty values events');
    const got = c.events(1).filter((m) => m.event.kind !== 'snapshot');
    expect(got.map((m) => m.event.deviceId)).toEqual([...ids.slice(0, 10), 'dev-0003', ...ids.slice(10)]);
    expect(got[10]!.event.kind).toBe('presence');
    expect(got.every((m) => m.batched === true)).toBe(true);
    const xs = offsets(got);
    expect(xs[0]).toBe((result.offset as number) + 1);
    expectContiguous(xs);
    // One message for the whole turn (it is far under batchBytes).
    expect(c.frames.length - framesBefore).toBe(1);
    expect(batches(c, 1)).toHaveLength(1);
    // A single event alone is the ordinary event message (§3.5).
    hub.readings('dev-0000', 2, 3000, { temperature: 99 });
    const alone = await c.next(
      (m) => m.type === 'event' && m.event.kind === 'values' && m.event.latest.temperature?.value === 99,
      'the lone values event',
    );
    expect(alone.batched).toBeUndefined();
    expect(alone.offset).toBe(xs.at(-1)! + 1);
  });

  it('§3.6.2: a batch never exceeds batchBytes; a turn bigger than that is split, in order', async () => {
    const batchBytes = 2048;
    hub = await startLiveHub({ devices: 200, limits: { batchBytes } });
    const c = await viewer();
    const { result } = await c.subscribe({ stream: 'fleet' });
    const ids = deviceIds(200);
    for (const [i, id] of ids.entries()) hub.readings(id, 1, 1000 + i, { temperature: i, humidity: i / 2 });
    await c.until(() => c.events(1, 'values').length === 200, 'two hundred values events');
    const got = c.events(1, 'values');
    expect(got.map((m) => m.event.deviceId)).toEqual(ids);
    const xs = offsets(got);
    expect(xs[0]).toBe((result.offset as number) + 1);
    expectContiguous(xs);
    const sent = batches(c, 1);
    expect(sent.length).toBeGreaterThan(5);
    for (const b of sent) expect(b.bytes).toBeLessThanOrEqual(batchBytes);
    // Full batches: the split happens at the bound, not at every event.
    expect(sent.length).toBeLessThan(200 / 5);
  });

  it('§6.1: a client that stops reading still coalesces, and its backlog comes in batches with the latest values', async () => {
    hub = await startLiveHub({ devices: 2 });
    const c = await viewer();
    await c.subscribe({ stream: 'device', devices: ['dev-0000', 'dev-0001'] });
    c.pause();
    const live = [...hub.app.live.clients][0]!;
    let seq = 0;
    while (live.stats.coalesced === 0) {
      for (let i = 0; i < 2000; i++) {
        seq++;
        hub.readings('dev-0000', seq, seq, { temperature: seq % 50, humidity: 40 });
      }
      await turn();
      if (seq > 2_000_000) throw new Error('the hub never started coalescing');
    }
    for (let i = 0; i < 500; i++) {
      seq++;
      hub.readings('dev-0000', seq, seq, { temperature: -1, humidity: 41 });
    }
    hub.readings('dev-0001', 1, 1, { count: 9 });
    // Still coalescing: held per series, not a batch per event.
    expect(live.dataBytes()).toBeLessThan(64 * 1024);
    c.resume();
    await c.until(
      () =>
        c.events(1, 'readings').some((m) => m.event.deviceId === 'dev-0000' && m.event.readings.at(-1)?.seq === seq),
      'the last reading of dev-0000',
      30_000,
    );
    const readings = c.events(1, 'readings');
    const last = readings.findLast((m) => m.event.deviceId === 'dev-0000')!;
    expect(last.event.readings).toEqual([{ seq, ts: seq, values: { temperature: -1, humidity: 41 } }]);
    expect(last.event.coalesced.temperature).toBeGreaterThan(0);
    expect(readings.some((m) => m.event.deviceId === 'dev-0001')).toBe(true);
    expect(readings.length).toBeLessThan(seq);
    // Offsets never decrease across batches and single messages (§3.5.2).
    const xs = offsets(c.events(1));
    for (let i = 1; i < xs.length; i++) expect(xs[i]!).toBeGreaterThanOrEqual(xs[i - 1]!);
    expect(live.stats.batches).toBeGreaterThan(0);
    expect(c.isClosed).toBe(false);
  });

  it('§6.2: resuming from the last event of a batch, or from one inside it, replays exactly what follows', async () => {
    hub = await startLiveHub({ devices: 10 });
    const ids = deviceIds(10);
    const a = await viewer();
    const { result } = await a.subscribe({ stream: 'fleet' });
    for (const [i, id] of ids.entries()) hub.readings(id, 1, 1000 + i, { temperature: i });
    await a.until(() => a.events(1, 'values').length === 10, 'the first batch');
    expect(batches(a, 1)).toHaveLength(1);
    const first = offsets(a.events(1, 'values'));
    a.close();
    await a.closed;
    // Missed while away: a second turn.
    for (const [i, id] of ids.entries()) hub.readings(id, 2, 2000 + i, { temperature: 100 + i });

    for (const resumeAt of [first.at(-1)!, first[4]!]) {
      const b = await viewer();
      const answer = await b.request({
        type: 'subscribe',
        id: 1,
        stream: 'fleet',
        resume: { epoch: result.epoch, offset: resumeAt },
      });
      expect(answer.result).toMatchObject({ recovered: true });
      const expected = first.at(-1)! + 10 - resumeAt;
      await b.until(() => b.events(1).length === expected, `${expected} replayed events`);
      const replayed = b.events(1);
      const xs = offsets(replayed);
      expect(xs[0]).toBe(resumeAt + 1);
      expectContiguous(xs);
      expect(replayed.at(-1)!.event.latest.temperature.value).toBe(109);
      expect(b.events(1, 'snapshot')).toEqual([]);
      // The replay itself comes batched.
      expect(batches(b, 1).length).toBeGreaterThan(0);
      b.close();
      await b.closed;
    }
  });

  it('§4.4: an unsubscribe answered in the turn of its events: no event of it follows the result', async () => {
    hub = await startLiveHub({ devices: 5 });
    const c = await viewer();
    await c.subscribe({ stream: 'fleet' });
    const ids = deviceIds(5);
    c.send({ type: 'unsubscribe', id: 2, subscription: 1 });
    // Events keep coming while the request is on its way; whatever of them was sent precedes the result.
    let seq = 0;
    let answered = -1;
    while (answered < 0) {
      seq++;
      for (const id of ids) hub.readings(id, seq, seq, { temperature: seq });
      await turn();
      answered = c.messages.findIndex((m) => m.type === 'result' && m.id === 2);
      if (seq > 10_000) throw new Error('the unsubscribe was never answered');
    }
    for (const id of ids) hub.readings(id, seq + 1, seq + 1, { temperature: -1 });
    await c.request({ type: 'ping' });
    expect(c.messages.slice(answered).filter((m) => m.type === 'event' && m.id === 1)).toEqual([]);
  });
});
