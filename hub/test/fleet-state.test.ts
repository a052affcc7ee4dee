/** The live channel's fleet rows (hub/src/live/fleet-state.ts): merging durable readings into `latest`. */
import { describe, expect, it } from 'vitest';
import { type DeviceRecordView, FleetState, type TimedValues } from '../src/live/fleet-state.js';
import type { LatestValue } from '../src/live/stream-log.js';

function registryOf(ids: string[]) {
  const records = new Map<string, DeviceRecordView>(
    ids.map((id) => [
      id,
      {
        id,
        name: id,
        model: '',
        labels: {},
        disabled: false,
        transport: 'ws',
        metrics: [],
        dropped: 0,
        presence: { state: 'online', reason: null, since: 1, lastSeen: 1 },
      },
    ]),
  );
  return { get: (id: string) => records.get(id), list: () => [...records.values()] };
}

/** What mergeLatestOnly did before mergeReadings: newest value per metric in the batch, then mergeLatest. */
function viaMergeLatest(fleet: FleetState, id: string, readings: TimedValues[], lastSeen: number | null): boolean {
  const latest: Record<string, LatestValue> = {};
  for (const r of readings)
    for (const v of r.values) {
      const cur = latest[v.metric];
      if (cur === undefined || cur.ts <= r.ts) latest[v.metric] = { ts: r.ts, value: v.value };
    }
  return fleet.mergeLatest(id, latest, lastSeen) !== null;
}

describe('FleetState.mergeReadings', () => {
  it('leaves each row as mergeLatest does: newest value per metric, older ones ignored, lastSeen moved', () => {
    const batches: TimedValues[][] = [
      [
        {
          ts: 100,
          values: [
            { metric: 't', value: 1 },
            { metric: 'h', value: 50 },
          ],
        },
      ],
      // Out of order inside a batch, a string and a bool, an equal ts (the later reading wins, as before).
      [
        { ts: 300, values: [{ metric: 't', value: 3 }] },
        {
          ts: 200,
          values: [
            { metric: 't', value: 2 },
            { metric: 'door', value: true },
          ],
        },
        {
          ts: 300,
          values: [
            { metric: 't', value: 4 },
            { metric: 'label', value: 'x' },
          ],
        },
      ],
      [{ ts: 50, values: [{ metric: 'h', value: 40 }] }], // older than what the row holds: no change
      [],
    ];
    const a = new FleetState(registryOf(['d1']));
    const b = new FleetState(registryOf(['d1']));
    const results: Array<[boolean, boolean]> = [];
    let lastSeen = 10;
    for (const batch of batches) {
      lastSeen++;
      results.push([a.mergeReadings('d1', batch, lastSeen), viaMergeLatest(b, 'd1', batch, lastSeen)]);
      expect(a.json('d1')).toBe(b.json('d1'));
    }
    expect(results).toEqual([
      [true, true],
      [true, true],
      [false, false],
      [false, false],
    ]);
    expect(a.get('d1')!.latest).toEqual({
      t: { ts: 300, value: 4 },
      h: { ts: 100, value: 50 },
      door: { ts: 200, value: true },
      label: { ts: 300, value: 'x' },
    });
    expect(a.get('d1')!.presence.lastSeen).toBe(lastSeen);
  });

  it('replaces a changed value with a new object (an event made earlier keeps what it said)', () => {
    const fleet = new FleetState(registryOf(['d1']));
    fleet.mergeReadings('d1', [{ ts: 1, values: [{ metric: 't', value: 1 }] }], null);
    const before = fleet.get('d1')!.latest.t!;
    fleet.mergeReadings('d1', [{ ts: 2, values: [{ metric: 't', value: 2 }] }], null);
    expect(before).toEqual({ ts: 1, value: 1 });
    expect(fleet.get('d1')!.latest.t).toEqual({ ts: 2, value: 2 });
  });

  it('makes the row JSON again after a change, and ignores unknown devices', () => {
    const fleet = new FleetState(registryOf(['d1']));
    const first = fleet.json('d1');
    fleet.mergeReadings('d1', [{ ts: 5, values: [{ metric: 't', value: 7 }] }], null);
    expect(fleet.json('d1')).not.toBe(first);
    expect(JSON.parse(fleet.json('d1')!).latest).toEqual({ t: { ts: 5, value: 7 } });
    expect(fleet.mergeReadings('nope', [{ ts: 5, values: [{ metric: 't', value: 7 }] }], null)).toBe(false);
  });
});
