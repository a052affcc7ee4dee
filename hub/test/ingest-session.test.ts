/**
 * The transport-neutral ingest path, driven by a fake transport of a dozen lines: no WebSocket, no frames.
 * Whatever a transport is (tendril.v1, the MQTT bridge), it gets dedupe, validation, durable acks, the resync
 * rule and back-off from the devices layer alone. Section numbers (§) are docs/protocol.md.
 */
import type { MetricDeclaration, Reading } from '@tendril/device-sdk/codec';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { systemTimers } from '../src/core/clock.js';
import { PresenceTracker } from '../src/devices/presence.js';
import { DeviceRegistry } from '../src/devices/registry.js';
import { DeviceSessions } from '../src/devices/sessions.js';
import type { AttachedDevice, TransportHandle } from '../src/devices/types.js';
import { EndOfTurn } from '../src/ingest/turn.js';
import type { IngestReporter } from '../src/ingest/types.js';
import { HubMetrics } from '../src/ops/metrics.js';
import { createSpool, type Spool } from '../src/spool/index.js';
import { SqliteStore } from '../src/storage/sqlite-store.js';
import { storedSeqs } from './stores.js';
import { tempDir, waitFor } from './helpers.js';

/** The whole fake transport: it records what the hub would send the device. */
class FakeTransport implements TransportHandle, IngestReporter {
  readonly transport = 'mqtt' as const;
  readonly remote = 'fake';
  acked = 0;
  readonly refused: Array<{ code: string; pauseMs: number }> = [];
  readonly rejected: Array<{ code: string; seq: number; alias: number | null }> = [];
  closedWith: string | null = null;
  onDurable = (seq: number) => void (this.acked = seq);
  onRefused = (code: string, pauseMs: number) => void this.refused.push({ code, pauseMs });
  onRejected = (code: string, seq: number, alias: number | null) => void this.rejected.push({ code, seq, alias });
  sendCommand = () => true;
  close = (reason: string) => void (this.closedWith = reason);
}

/** fastify's logger with logging off: the hub's one logger type, silent. */
const silent = Fastify({ logger: false }).log;

const METRICS: MetricDeclaration[] = [{ alias: 1, name: 'temperature', kind: 'f32', unit: 'C', min: -40, max: 85 }];
const reading = (seq: number, value = 20): Reading => ({
  seq,
  ts: Date.now(),
  values: [{ alias: 1, kind: 'f32', value }],
});

interface Rig {
  sessions: DeviceSessions;
  registry: DeviceRegistry;
  store: SqliteStore;
  spool: Spool;
  dispose(): Promise<void>;
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.dispose();
});

/** The production chain: the on-disk spool in front of a real SQLite store. */
async function rig(limits: { deviceRate?: number; deviceBurst?: number } = {}): Promise<Rig> {
  const dir = tempDir();
  const store = new SqliteStore(dir.path);
  const spool = await createSpool({ dir: `${dir.path}/spool`, maxBytes: 64 * 1024 * 1024, store });
  const registry = new DeviceRegistry(dir.path);
  const clock = { now: () => Date.now() };
  const presence = new PresenceTracker(registry, store, clock);
  const sessions = new DeviceSessions({
    registry,
    presence,
    ingest: {
      sink: spool,
      metrics: new HubMetrics({ defaultMetrics: false }),
      turn: new EndOfTurn(),
      clock,
      deviceRate: limits.deviceRate ?? 10_000,
      deviceBurst: limits.deviceBurst ?? 10_000,
      storeBusyPauseMs: 200,
      log: silent,
    },
    clock,
    timers: systemTimers,
    log: silent,
  });
  const r: Rig = {
    sessions,
    registry,
    store,
    spool,
    async dispose() {
      await spool.close();
      registry.close();
      await store.close();
      dir.remove();
    },
  };
  rigs.push(r);
  return r;
}

async function attach(r: Rig, id: string, epoch = 1): Promise<{ t: FakeTransport; device: AttachedDevice }> {
  if (!r.registry.get(id)) r.registry.create({ id }, Date.now());
  const t = new FakeTransport();
  const device = await r.sessions.attach(id, { epoch, metrics: METRICS, firmware: null, sdk: null, dropped: 0 }, t, t);
  device.online();
  return { t, device };
}

describe('ingest session behind a fake transport', () => {
  it('acks only what is durable in the spool, cumulatively, and drops duplicates by (device, epoch, seq) (§7.2, §7.3)', async () => {
    const r = await rig();
    const { t, device } = await attach(r, 'fake-1');
    device.ingest.ingest([reading(1), reading(2), reading(3)], 0, Date.now());
    await waitFor('ACK 3 after the spool made readings 1-3 durable', () => t.acked === 3);
    device.ingest.ingest([reading(2), reading(3), reading(4)], 3, Date.now());
    await waitFor('ACK 4', () => t.acked === 4);
    await waitFor('the spool to drain readings 1-4 into the store', () => storedSeqs(r.store, 'fake-1').length === 4);
    expect(storedSeqs(r.store, 'fake-1')).toEqual([1, 2, 3, 4]);
  });

  it('validates against the declarations: rejects the bad value, acks past it, stores the good ones (§7.1)', async () => {
    const r = await rig();
    const { t, device } = await attach(r, 'fake-2');
    const bad: Reading = { seq: 2, ts: Date.now(), values: [{ alias: 9, kind: 'f32', value: 1 }] };
    const rejected: string[] = [];
    r.sessions.events.on('rejected', (e) => rejected.push(`${e.deviceId}:${e.code}`));
    device.ingest.ingest([reading(1), bad, reading(3, 500)], 0, Date.now());
    await waitFor('ACK 3', () => t.acked === 3);
    expect(rejected).toEqual(['fake-2:UNKNOWN_ALIAS', 'fake-2:OUT_OF_RANGE']);
    expect(t.rejected).toEqual([
      { code: 'UNKNOWN_ALIAS', seq: 2, alias: 9 },
      { code: 'OUT_OF_RANGE', seq: 3, alias: 1 },
    ]);
  });

  it('refuses with RATE_LIMITED past the bucket, then takes readings again only where the resend begins (§7.4.1, §7.4.5)', async () => {
    const r = await rig({ deviceRate: 10, deviceBurst: 2 });
    const { t, device } = await attach(r, 'fake-3');
    const now = Date.now();
    device.ingest.ingest([reading(1), reading(2), reading(3)], 0, now);
    expect(t.refused).toHaveLength(1);
    expect(t.refused[0]!.code).toBe('RATE_LIMITED');
    await waitFor('ACK 2', () => t.acked === 2);
    // After the pause, a reading that skips seq 3 is not the resend: refused again, nothing acked past 2.
    const later = now + t.refused[0]!.pauseMs + 1000;
    device.ingest.ingest([reading(4)], 3, later);
    expect(t.refused).toHaveLength(2);
    // The resend steps back to 3: taken.
    device.ingest.ingest([reading(3), reading(4)], 4, later + t.refused[1]!.pauseMs + 1000);
    await waitFor('ACK 4 after the resend', () => t.acked === 4);
  });

  it('resumes after a re-attach from the durable seq, and a newer attach replaces the older one (§6.3.4, §6.4)', async () => {
    const r = await rig();
    const first = await attach(r, 'fake-4');
    first.device.ingest.ingest([reading(1), reading(2)], 0, Date.now());
    const second = await attach(r, 'fake-4');
    expect(first.t.closedWith).toBe('REPLACED');
    // The newer attach waited for what the older one took: its ackedSeq counts readings 1 and 2.
    expect(second.device.ingest.ackedSeq).toBe(2);
    expect(r.sessions.transportOf('fake-4')).toBe('mqtt');
    first.device.detach('REPLACED');
    expect(r.registry.get('fake-4')!.presence.state).toBe('online');
    second.device.detach('CLOSED');
    expect(r.registry.get('fake-4')!.presence).toMatchObject({ state: 'offline', reason: 'CLOSED' });
  });
});
