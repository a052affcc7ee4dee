import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/index.js';
import { MODELS } from '../src/models/index.js';
import { provisionedFleet, sdkTotals } from './fleet-harness.js';
import { startHub, type TestHub } from './hub-harness.js';

describe('a mixed fleet against the real hub', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startHub();
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('runs every model through the SDK: the hub registers each declaration and stores every reading', async () => {
    const run = await provisionedFleet(hub, { devices: 8, rate: 10 });
    try {
      const { fleet, api } = run;
      fleet.start();
      await waitFor(() => fleet.devices.every((d) => d.sdk.stats!.acked >= 5), {
        what: 'at least 5 acked readings from each of the 8 devices',
        timeoutMs: 10_000,
      });
      await run.finish();

      const c = fleet.counters;
      expect(c.sent).toBeGreaterThanOrEqual(40);
      expect({ acked: c.acked, rejected: c.rejected, dropped: c.dropped, buffered: c.buffered }).toEqual({
        acked: c.sent,
        rejected: 0,
        dropped: 0,
        buffered: 0,
      });
      expect(c.reconciled).toBe(true);
      expect(c.errorsByCode).toEqual({});
      expect(c.latency.count).toBe(c.sent);
      // The SDK's own counters agree with the simulator's ledger.
      expect(sdkTotals(fleet)).toEqual({
        sent: c.sent,
        acked: c.acked + c.rejected,
        dropped: c.dropped,
        buffered: c.buffered,
      });

      expect(new Set(fleet.devices.map((d) => d.spec.model.name))).toEqual(new Set(MODELS.map((m) => m.name)));
      for (const d of fleet.devices) {
        const model = d.spec.model;
        // The registry writes durable seqs periodically; wait for it to show the last one.
        const view = await waitFor(
          async () => {
            const v = (await api.getDevice(d.spec.id)) as { ackedSeq: number };
            return v.ackedSeq === d.sdk.stats!.sent ? v : null;
          },
          { what: `the hub's durable seq of ${d.spec.id} reaching ${d.sdk.stats!.sent}`, timeoutMs: 10_000 },
        );
        const device = view as unknown as {
          model: string;
          firmware: string;
          presence: { state: string };
          metrics: Array<{ name: string; kind: string }>;
          latest: Record<string, unknown>;
        };
        expect(device.model).toBe(model.name);
        expect(device.firmware).toBe(model.firmware);
        expect(device.presence.state).toBe('online');
        expect(device.metrics.map((m) => [m.name, m.kind])).toEqual(model.metrics.map((m) => [m.name, m.kind]));
        expect(Object.keys(device.latest).sort()).toEqual(model.metrics.map((m) => m.name).sort());
      }
    } finally {
      await run.close();
    }
  });
});
