import { expect, it } from 'vitest';
import { FrameBatcher } from '../src/lib/frame.js';

it('runs each queued flush once per frame, however often it was scheduled', () => {
  const frames: Array<() => void> = [];
  const batcher = new FrameBatcher({ request: (cb) => (frames.push(cb), () => {}) });
  let a = 0;
  let b = 0;
  const fa = () => a++;
  const fb = () => b++;
  for (let i = 0; i < 1000; i++) batcher.schedule(fa);
  batcher.schedule(fb);
  expect(frames).toHaveLength(1); // one frame requested for all of it
  frames[0]!();
  expect([a, b]).toEqual([1, 1]);
  expect(batcher.frames).toBe(1);
  batcher.schedule(fa);
  expect(frames).toHaveLength(2);
});

it('a flush that throws does not stop the others', () => {
  let run: () => void = () => {};
  const batcher = new FrameBatcher({ request: (cb) => ((run = cb), () => {}) });
  let ok = 0;
  const orig = console.error;
  console.error = () => {};
  batcher.schedule(() => {
    throw new Error('boom');
  });
  batcher.schedule(() => ok++);
  run();
  console.error = orig;
  expect(ok).toBe(1);
});
