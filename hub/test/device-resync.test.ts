/**
 * Where the hub takes readings again after BACKOFF (§7.4.5): never over a reading it refused or ignored
 * itself, so a cumulative ACK cannot cover a reading that was never stored; gaps the device made (its
 * buffer dropped the oldest, §7.5) are still taken. The hub's clock is injected: the BACKOFF pause and the
 * token bucket move only when a test moves them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { HubFrame } from '@tendril/device-sdk';
import { TestDevice } from './device-client.js';
import { GroupCommitWriter } from '../src/storage/group-commit.js';
import type { SqliteStore } from '../src/storage/sqlite-store.js';
import { provision, startHub, waitFor, type TestHub } from './helpers.js';
import { storedValues } from './stores.js';

const clock = {
  t: 0,
  now(): number {
    return clock.t;
  },
};
let hub: TestHub;
const tokens = new Map<string, string>();

beforeEach(async () => {
  clock.t = Date.now();
  hub = await startHub({
    config: { deviceRate: 10, deviceBurst: 3 },
    deps: { clock, sink: (st) => new GroupCommitWriter(st) },
  });
});

afterEach(async () => {
  await hub.dispose();
});

async function connect(id: string, token?: string): Promise<TestDevice> {
  token ??= await provision(hub.app, id);
  tokens.set(id, token);
  const d = await TestDevice.connect(hub.listening!.deviceUrl);
  await d.hello({ deviceId: id, token, epoch: 1, clock: clock.t });
  return d;
}

function batch(seqs: number[]): {
  type: 'batch';
  readings: Array<{ seq: number; ts: number; values: [{ alias: number; kind: 'int'; value: number }] }>;
} {
  return {
    type: 'batch',
    readings: seqs.map((seq) => ({ seq, ts: clock.t - 60_000 + seq, values: [{ alias: 2, kind: 'int', value: seq }] })),
  };
}

function storedSeqs(id: string): number[] {
  return storedValues(hub.app.durability.store as SqliteStore, id).map((r) => r.seq);
}

/** Removes and returns the first ACK above `seq` or BACKOFF the hub sends, whichever comes first. */
async function nextAckAboveOrBackoff(d: TestDevice, seq: number, what: string): Promise<HubFrame> {
  const i = await waitFor(what, () => {
    const at = d.frames.findIndex((f) => (f.type === 'ack' && f.seq > seq) || f.type === 'backoff');
    return at >= 0 ? at + 1 : null;
  });
  return d.frames.splice(i - 1, 1)[0]!;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('§7.4.5 taking readings again after BACKOFF', () => {
  it('answers a stale frame of an earlier resend with BACKOFF when a second BACKOFF hit that resend, so no ACK covers the refused reading', async () => {
    const d = await connect('rs-stale');
    // Live 1..10 in one frame: the burst of 3 takes 1..3, refuses 4, the pause ignores 5..10.
    d.send(batch(range(1, 10)));
    const first = await d.next('backoff', 'BACKOFF for reading 4');
    expect(await d.ackFor(3)).toBe(3);
    clock.t += first.pauseMs;
    // The device's resend, in two frames; the hub takes 4..6 and refuses 7 (second BACKOFF).
    d.send(batch([4, 5, 6, 7]));
    const second = await d.next('backoff', 'BACKOFF for reading 7');
    expect(await d.ackFor(6)).toBe(6);
    clock.t += second.pauseMs + 1000; // the pause is over and the bucket is full again
    // The rest of that resend was on its way before the device saw the second BACKOFF: taking it would
    // let the ACK cover 7, which the hub refused.
    d.send(batch([8, 9, 10]));
    const answer = await nextAckAboveOrBackoff(d, 6, 'BACKOFF (or an ACK) for the stale frame 8..10');
    expect(answer).toMatchObject({ type: 'backoff', code: 'RATE_LIMITED' });
    clock.t += 1000;
    // The device's resend after the second BACKOFF starts again at 7 (paced to the bucket of 3).
    d.send(batch([7, 8, 9]));
    expect(await d.ackFor(9)).toBe(9);
    clock.t += 1000;
    d.send(batch([10]));
    expect(await d.ackFor(10)).toBe(10);
    expect(storedSeqs('rs-stale')).toEqual(range(1, 10));
    d.close();
    await d.closedWithin();
  });

  it('takes the resend when the device dropped the refused reading from its full buffer during the pause', async () => {
    const d = await connect('rs-dropped');
    d.send(batch(range(1, 6))); // takes 1..3, refuses 4, ignores 5 and 6
    const backoff = await d.next('backoff', 'BACKOFF for reading 4');
    expect(await d.ackFor(3)).toBe(3);
    clock.t += backoff.pauseMs;
    // §7.5: the buffer overflowed during the pause and dropped its oldest, 4 and 5; the device says so.
    d.send({ type: 'status', dropped: 2 });
    // Its resend starts at its oldest unacked reading, 6: back at a reading it had sent, so a resend.
    d.send(batch([6, 7]));
    expect(await nextAckAboveOrBackoff(d, 3, 'ACK for the resend 6..7')).toEqual({ type: 'ack', seq: 7 });
    expect(storedSeqs('rs-dropped')).toEqual([1, 2, 3, 6, 7]);
    expect(hub.app.devices.registry.get('rs-dropped')!.dropped).toBe(2);
    d.close();
    await d.closedWithin();
  });
});

describe('gaps the device made are taken', () => {
  it('§5.1.2 takes a first reading after WELCOME above ackedSeq + 1', async () => {
    const d = await connect('gap-welcome');
    d.send(batch([5, 6]));
    expect(await d.ackFor(6)).toBe(6);
    expect(storedSeqs('gap-welcome')).toEqual([5, 6]);
    d.close();
    await d.closedWithin();
    // A reconnect in the same epoch resumes after 6; the device's buffer dropped 7..9 meanwhile.
    const again = await TestDevice.connect(hub.listening!.deviceUrl);
    const welcome = await again.hello({
      deviceId: 'gap-welcome',
      token: tokens.get('gap-welcome')!,
      epoch: 1,
      clock: clock.t,
    });
    expect(welcome.ackedSeq).toBe(6);
    again.send(batch([10]));
    expect(await again.ackFor(10)).toBe(10);
    expect(storedSeqs('gap-welcome')).toEqual([5, 6, 10]);
    again.close();
    await again.closedWithin();
  });
});
