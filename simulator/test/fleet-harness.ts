/** Runs a provisioned fleet against a real test hub, for the fleet, fault and CLI tests. */
import { waitFor } from '../../test/support/index.js';
import { Fleet, type FleetOptions } from '../src/fleet.js';
import { HubApi } from '../src/hub-api.js';
import { MODELS, type DeviceModel } from '../src/models/index.js';
import { planFleet, planMalformed, provisionRequest } from '../src/plan.js';
import type { TestHub } from './hub-harness.js';

export interface FleetRun {
  fleet: Fleet;
  api: HubApi;
  /** Stops sending, waits until nothing is buffered, and returns. */
  finish(drainMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function provisionedFleet(
  hub: TestHub,
  o: { devices: number; rate: number; models?: readonly DeviceModel[]; seed?: number; malformed?: number } & Partial<
    Omit<FleetOptions, 'devices' | 'deviceUrl' | 'ratePerSecond' | 'malformedDevices'>
  >,
): Promise<FleetRun> {
  const api = new HubApi({ httpBase: hub.url, adminToken: hub.adminToken });
  const planned = planFleet(o.devices, o.models ?? MODELS, o.seed ?? 1);
  const tokens = await api.provisionAll(planned.map(provisionRequest));
  const malformed = await api.provisionAll(planMalformed(o.malformed ?? 0));
  const { devices: _d, rate: _r, models: _m, malformed: _x, ...rest } = o;
  const fleet = new Fleet({
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    ...rest,
    deviceUrl: hub.deviceUrl,
    devices: planned.map((p, i) => ({ ...p, token: tokens[i]!.token })),
    malformedDevices: malformed.map((m) => ({ id: m.id, token: m.token })),
    ratePerSecond: o.rate,
  });
  return {
    fleet,
    api,
    async finish(drainMs = 10_000) {
      fleet.stopSending();
      await waitFor(() => fleet.counters.buffered === 0, {
        what: `the fleet's buffered readings acked (${fleet.counters.buffered} left)`,
        timeoutMs: drainMs,
      });
    },
    async close() {
      await fleet.close();
      api.close();
    },
  };
}

/** SDK-side totals, summed over the fleet: an independent check of the simulator's own accounting. */
export function sdkTotals(fleet: Fleet): { sent: number; acked: number; dropped: number; buffered: number } {
  const t = { sent: 0, acked: 0, dropped: 0, buffered: 0 };
  for (const d of fleet.devices) {
    const s = d.sdk.stats!;
    t.sent += s.sent;
    t.acked += s.acked;
    t.dropped += s.dropped;
    t.buffered += s.buffered;
  }
  return t;
}
