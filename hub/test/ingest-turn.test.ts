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
