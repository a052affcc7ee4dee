/**
 * Each fault flag against the real hub, showing the hub handling it. The fleet's reconnect back-off is
 * shortened (20..200 ms) so the tests stay short; everything else is the simulator's normal path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/index.js';
import { MALFORMED_KINDS } from '../src/malformed.js';
import { envSensor, powerMeter } from '../src/models/index.js';
import { provisionedFleet, sdkTotals, type FleetRun } from './fleet-harness.js';
import { startHub, type TestHub } from './hub-harness.js';

/** Waits until the hub's durable seq of every device equals the last seq it sent: nothing lost. */
async function hubHoldsEverything(run: FleetRun): Promise<void> {
  for (const d of run.fleet.devices) {
    await waitFor(
      async () => ((await run.api.getDevice(d.spec.id)) as { ackedSeq: number }).ackedSeq === d.sdk.stats!.sent,
      { what: `the hub's durable seq of ${d.spec.id} reaching ${d.sdk.stats!.sent}`, timeoutMs: 10_000 },
    );
  }
}

function expectReconciled(run: FleetRun): void {
  const c = run.fleet.counters;
  expect(c.sent).toBe(c.acked + c.rejected + c.dropped + c.buffered);
  expect(c.reconciled).toBe(true);
  expect(sdkTotals(run.fleet)).toEqual({
    sent: c.sent,
    acked: c.acked + c.rejected,
    dropped: c.dropped,
    buffered: c.buffered,
  });
}

describe('fault injection against the real hub', () => {
  let hub: TestHub;
  let run: FleetRun | null = null;
  beforeAll(async () => {
    hub = await startHub();
  });
  afterAll(async () => {
    await run?.close();
    await hub?.close();
  });
  const start = async (...args: Parameters<typeof provisionedFleet> extends [unknown, infer O] ? [O] : never) => {
    await run?.close();
    run = await provisionedFleet(hub, args[0]);
    run.fleet.start();
    return run;
  };

  it('--drop-rate: connections cut at random; after the run sent = acked and the hub holds every reading', async () => {
    const r = await start({ devices: 4, rate: 20, faults: { dropRatePerHour: 7200 } }); // about 2 cuts per device-second
    // Wait for the devices to see the cuts, not for the cuts to be made: a cut's close event comes a turn
    // later, and a run finished in between counted one drop fewer than it injected.
    await waitFor(() => (r.fleet.counters.closeCodes['1006'] ?? 0) >= 6, {
      what: '6 connection drops seen by the devices (close 1006)',
      timeoutMs: 10_000,
    });
    await r.finish();
    const c = r.fleet.counters;
    expect(c.disconnects).toBeGreaterThanOrEqual(6);
    // Every abnormal close was one the simulator injected: the hub itself closed no connection.
    expect(c.closeCodes['1006']).toBeLessThanOrEqual(r.fleet.faultCounters.dropsInjected);
    expect(c.disconnects).toBe(c.closeCodes['1006']);
    expect({ acked: c.acked, rejected: c.rejected, dropped: c.dropped, buffered: c.buffered }).toEqual({
      acked: c.sent,
      rejected: 0,
      dropped: 0,
      buffered: 0,
    });
    expectReconciled(r);
    await hubHoldsEverything(r);
  });

  it('--latency: every frame is delayed each way, so send->ack takes at least twice the added latency', async () => {
    const r = await start({ devices: 2, rate: 10, faults: { latencyMs: 150 } });
    await waitFor(() => r.fleet.counters.acked >= 10, {
      what: '10 readings acked through the delayed link',
      timeoutMs: 10_000,
    });
    await r.finish();
    const latency = r.fleet.counters.latency.summary();
    expect(latency.p50!).toBeGreaterThanOrEqual(300);
    expect(latency.max!).toBeLessThan(2000);
    expect(r.fleet.counters.acked).toBe(r.fleet.counters.sent);
    expectReconciled(r);
  });

  it('--clock-skew 2 h ahead: the hub rejects every reading with TIMESTAMP_OUT_OF_RANGE, acks them, keeps the connection', async () => {
    const r = await start({ devices: 2, rate: 10, models: [envSensor], faults: { clockSkewMs: 2 * 3_600_000 } });
    await waitFor(() => r.fleet.counters.rejected >= 10, {
      what: '10 readings rejected for their timestamp',
      timeoutMs: 10_000,
    });
    await r.finish();
    const c = r.fleet.counters;
    expect(c.rejected).toBe(c.sent);
    expect(c.acked).toBe(0);
    // §7.1: one ERROR per reading (the timestamp rejects the whole reading), never a close.
    expect(c.rejectedByCode).toEqual({ TIMESTAMP_OUT_OF_RANGE: c.sent });
    expect(c.disconnects).toBe(0);
    expectReconciled(r);
  });

  it('--clock-skew small (30 min behind, 5 s ahead): the hub accepts the readings', async () => {
    for (const skew of [-30 * 60_000, 5000]) {
      const r = await start({ devices: 2, rate: 10, models: [powerMeter], faults: { clockSkewMs: skew } });
      await waitFor(() => r.fleet.counters.acked >= 10, {
        what: `10 readings acked with ${skew} ms of skew`,
        timeoutMs: 10_000,
      });
      await r.finish();
      expect(r.fleet.counters.rejected).toBe(0);
      expect(r.fleet.counters.acked).toBe(r.fleet.counters.sent);
      expectReconciled(r);
    }
  });

  it('--burst: periodic bursts on top of the steady rate are all taken and acked', async () => {
    const r = await start({ devices: 3, rate: 2, faults: { burst: { readings: 150, everySeconds: 0.5 } } });
    await waitFor(() => r.fleet.faultCounters.bursts >= 6, { what: '6 bursts', timeoutMs: 10_000 });
    await r.finish();
    const c = r.fleet.counters;
    expect(c.sent).toBeGreaterThanOrEqual(900);
    expect({ acked: c.acked, dropped: c.dropped, buffered: c.buffered }).toEqual({
      acked: c.sent,
      dropped: 0,
      buffered: 0,
    });
    expectReconciled(r);
    await hubHoldsEverything(r);
  });

  it('--malformed: the hub closes each malformed sender with 1002 and the other devices are unaffected', async () => {
    const r = await start({ devices: 3, rate: 10, malformed: 2, malformedEveryMs: 100 });
    const m = r.fleet.malformedCounters!;
    await waitFor(() => m.closed1002 >= MALFORMED_KINDS.length * 2, {
      what: `${MALFORMED_KINDS.length * 2} malformed connections closed with 1002`,
      timeoutMs: 15_000,
    });
    await r.finish();
    expect(m.closedOther).toEqual({});
    expect(m.unexpectedCodes).toBe(0);
    // Every kind of damage drew its own code from the hub.
    for (const kind of MALFORMED_KINDS) expect(m.errorCodes[kind.expectedCode], kind.name).toBeGreaterThanOrEqual(1);
    const c = r.fleet.counters;
    expect(c.disconnects).toBe(0);
    expect(c.errorsByCode).toEqual({});
    expect(c.acked).toBe(c.sent);
    expectReconciled(r);
    await hubHoldsEverything(r);
  });

  it('--reconnect-storm: all devices cut at once, all back online, everything acked', async () => {
    const r = await start({ devices: 6, rate: 10, faults: { reconnectStormSeconds: 0.5 } });
    await waitFor(() => r.fleet.faultCounters.storms >= 3, { what: '3 reconnect storms', timeoutMs: 10_000 });
    await waitFor(() => r.fleet.counters.connected === 6, {
      what: 'all 6 devices back online after the storms',
      timeoutMs: 10_000,
    });
    await r.finish();
    const c = r.fleet.counters;
    expect(c.connects).toBeGreaterThanOrEqual(6 * 3);
    expect({ acked: c.acked, dropped: c.dropped, buffered: c.buffered }).toEqual({
      acked: c.sent,
      dropped: 0,
      buffered: 0,
    });
    expectReconciled(r);
    await hubHoldsEverything(r);
  });
});
