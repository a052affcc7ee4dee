/** EndOfTurn's linger (hub/src/ingest/turn.ts): one shared timer, tasks in deadline order, each bounded. */
import { describe, expect, it } from 'vitest';
import type { Timers } from '../src/core/clock.js';
import { EndOfTurn } from '../src/ingest/turn.js';

/** A fake timer source: timeouts run only when the test fires them; the clock moves only with fire(). */
function manualTimers() {
  let t = 1_000;
  const armed: Array<{ at: number; fn: () => void }> = [];
  const timers: Timers = {
    setTimeout: (fn: () => void, ms = 0) => (armed.push({ at: t + ms, fn }), {}) as never,
    clearTimeout: () => undefined,
    setInterval: () => ({}) as never,
    clearInterval: () => undefined,
  };
  return {
    timers,
    now: () => t,
    /** Moves the clock to `at` and runs the timeouts due by then. */
    fireUntil(at: number) {
      t = at;
      for (let i = 0; i < armed.length; ) {
        if (armed[i]!.at <= at) armed.splice(i, 1)[0]!.fn();
        else i++;
      }
    },
  };
}

describe('EndOfTurn.linger', () => {
  it('runs a task withinMs from now, never later than lingerMs, and keeps tasks in deadline order', () => {
    const m = manualTimers();
    const turn = new EndOfTurn(20, m.timers, m.now);
    const ran: string[] = [];
    turn.linger(() => ran.push('a'), 20); // due at 1 020
    turn.linger(() => ran.push('b'), 5); // asked for 1 005: moves to 1 020, behind a
    turn.linger(() => ran.push('c'), 500); // capped at lingerMs: 1 020
    m.fireUntil(1_019);
    expect(ran).toEqual([]);
    m.fireUntil(1_020);
    expect(ran).toEqual(['a', 'b', 'c']);
    turn.linger(() => ran.push('d'), 3); // nothing ahead of it: due at 1 023
    m.fireUntil(1_022);
    expect(ran).toHaveLength(3);
    m.fireUntil(1_023);
    expect(ran.at(-1)).toBe('d');
  });
});

describe('EndOfTurn.linger under steady traffic', () => {
  it('drops the tasks it has run although the queue never runs empty', () => {
    const m = manualTimers();
    const turn = new EndOfTurn(30, m.timers, m.now);
    const queue = turn as unknown as { lingering: unknown[]; deadlines: number[] };
    // Two devices out of phase: when one's ACK runs, the other's is still waiting, so the queue is never empty.
    let ran = 0;
    const ack = (): void => void ran++;
    turn.linger(ack, 30);
    m.fireUntil(m.now() + 15);
    turn.linger(ack, 30);
    for (let i = 0; i < 10_000; i++) {
      m.fireUntil(m.now() + 15);
      turn.linger(ack, 30);
    }
    expect(ran).toBeGreaterThan(9_000);
    // It used to keep every task it had run: about 10 000 of each here, a few thousand a second in a hub.
    expect(queue.lingering.length).toBeLessThanOrEqual(2 * 1024 + 2);
    expect(queue.deadlines.length).toBe(queue.lingering.length);
  });

  it('arms one timer when a task lingers again as it runs', () => {
    const m = manualTimers();
    let armed = 0;
    const timers: Timers = { ...m.timers, setTimeout: (fn, ms) => (armed++, m.timers.setTimeout(fn, ms)) };
    const turn = new EndOfTurn(30, timers, m.now);
    let ran = 0;
    const again = (): void => {
      if (++ran < 100) turn.linger(again, 30);
    };
    turn.linger(again, 30);
    for (let i = 0; i < 150; i++) m.fireUntil(m.now() + 30);
    expect(ran).toBe(100);
    expect(armed).toBe(100); // one per run; it used to arm two, each arming more
  });
});
