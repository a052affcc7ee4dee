/**
 * FairSlicer: background work (the spool's drain) yields to the event loop and then gets a slice as long as
 * the other work took meanwhile, within its bounds. The clock is a fake the "other work" moves forward.
 */
import { describe, expect, it } from 'vitest';
import { FairSlicer } from '../src/core/fair-slice.js';

function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('FairSlicer', () => {
  it('is due before its first yield, so background work starts by giving the event loop a turn', () => {
    expect(new FairSlicer().due()).toBe(true);
  });

  it('after a turn in which other work ran for 20 ms, gives a slice of 20 ms', async () => {
    const clock = fakeClock();
    const slicer = new FairSlicer(1, 100, clock.now);
    setImmediate(() => clock.advance(20)); // queued before the yield's own immediate: other work of that turn
    await slicer.yield();
    clock.advance(19);
    expect(slicer.due()).toBe(false);
    clock.advance(1);
    expect(slicer.due()).toBe(true);
  });

  it('gives at least minMs after an idle turn and at most maxMs after a long one', async () => {
    const clock = fakeClock();
    const slicer = new FairSlicer(2, 5, clock.now);
    await slicer.yield(); // nothing else ran
    clock.advance(1);
    expect(slicer.due()).toBe(false);
    clock.advance(1);
    expect(slicer.due()).toBe(true);
    setImmediate(() => clock.advance(40));
    await slicer.yield();
    clock.advance(4);
    expect(slicer.due()).toBe(false);
    clock.advance(1);
    expect(slicer.due()).toBe(true);
  });
});
