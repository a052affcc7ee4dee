import { describe, expect, it } from 'vitest';
import { Scheduler } from '../src/scheduler.js';
import { FakeTime } from './fake-time.js';

function setup(tickMs = 20) {
  const time = new FakeTime(1_000_000);
  const scheduler = new Scheduler({ tickMs, clock: time.clock, timers: time });
  return { time, scheduler };
}

describe('Scheduler (shared timer wheel)', () => {
  it('runs a task at the first tick at or after its due time, not before', () => {
    const { time, scheduler } = setup();
    const ran: number[] = [];
    scheduler.at(time.now + 100, () => ran.push(time.now));
    scheduler.start();
    time.advance(80);
    expect(ran).toEqual([]);
    time.advance(20);
    expect(ran).toEqual([1_000_100]);
    time.advance(1000);
    expect(ran).toHaveLength(1);
  });

  it('keeps one timer armed however many tasks are scheduled', () => {
    const { time, scheduler } = setup();
    let runs = 0;
    const everyDevice = (i: number) => {
      const again = (): void => {
        runs++;
        scheduler.after(1000 + (i % 100), again);
      };
      scheduler.after(i % 1000, again);
    };
    for (let i = 0; i < 10_000; i++) everyDevice(i);
    scheduler.start();
    time.advance(5_000);
    expect(time.pendingTimers).toBe(1);
    // 5 s / 20 ms ticks = 250 timers armed in total, not one per device or per run.
    expect(time.armed).toBeLessThanOrEqual(251);
    expect(runs).toBeGreaterThan(40_000);
  });

  it('runs slots in time order and skips cancelled tasks', () => {
    const { time, scheduler } = setup();
    const order: string[] = [];
    scheduler.after(300, () => order.push('c'));
    scheduler.after(100, () => order.push('a'));
    const cancelled = scheduler.after(200, () => order.push('cancelled'));
    scheduler.after(200, () => order.push('b'));
    scheduler.cancel(cancelled);
    time.advance(1000);
    scheduler.runDue();
    expect(order).toEqual(['a', 'b', 'c']);
  });

  it('a task that reschedules itself for "now" runs on the next tick, not in a loop', () => {
    const { time, scheduler } = setup();
    let runs = 0;
    const again = (): void => {
      runs++;
      scheduler.at(time.now, again);
    };
    scheduler.at(time.now, again);
    scheduler.runDue();
    expect(runs).toBe(1);
    time.advance(20);
    scheduler.runDue();
    expect(runs).toBe(2);
  });

  it('a task due in the past runs on the next tick', () => {
    const { time, scheduler } = setup();
    let ran = false;
    scheduler.runDue();
    scheduler.at(time.now - 5000, () => (ran = true));
    time.advance(20);
    scheduler.runDue();
    expect(ran).toBe(true);
  });

  it('calls tick hooks every tick until removed', () => {
    const { time, scheduler } = setup();
    let ticks = 0;
    const remove = scheduler.onTick(() => ticks++);
    scheduler.start();
    time.advance(200);
    expect(ticks).toBe(10);
    remove();
    time.advance(200);
    expect(ticks).toBe(10);
  });

  it('a throwing task is reported and the others still run', () => {
    const errors: unknown[] = [];
    const time = new FakeTime(0);
    const scheduler = new Scheduler({ clock: time.clock, timers: time, onError: (e) => errors.push(e) });
    let ran = false;
    scheduler.after(10, () => {
      throw new Error('boom');
    });
    scheduler.after(10, () => (ran = true));
    time.advance(40);
    scheduler.runDue();
    expect(ran).toBe(true);
    expect(errors).toHaveLength(1);
  });

  it('stop() disarms the timer', () => {
    const { time, scheduler } = setup();
    scheduler.start();
    expect(time.pendingTimers).toBe(1);
    scheduler.stop();
    expect(time.pendingTimers).toBe(0);
  });
});
