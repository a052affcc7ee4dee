/**
 * The transport-neutral ingest path, driven by a fake transport of a dozen lines: no WebSocket, no frames.
 * Whatever a transport is (tendril.v1, the MQTT bridge), it gets dedupe, validation, durable acks, the resync
 * rule and back-off from the devices layer alone. Section numbers (§) are docs/protocol.md.
 */
import type { MetricDeclaration, Reading } from '@tendril/device-sdk/codec';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { systemTimers, type Timers } from '../src/core/clock.js';
import { PresenceTracker } from '../src/devices/presence.js';
import { DeviceRegistry } from '../src/devices/registry.js';
import { DeviceSessions } from '../src/devices/sessions.js';
import type { AttachedDevice, TransportHandle } from '../src/devices/types.js';
import { ACK_EVERY } from '../src/ingest/session.js';
import { EndOfTurn } from '../src/ingest/turn.js';
import type { IngestReporter } from '../src/ingest/types.js';
import type { ReadingSink, StoredReading } from '../src/storage/types.js';
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
  constructor(readonly coalesceAcks = false) {}
}

/** A fake timer source and clock for the ACK linger: its timeouts fire only when the test says so. */
class ManualTimers implements Timers {
  private due: Array<() => void> = [];
  private t = Date.now();
  readonly now = () => this.t;
  /** The delay of every timeout armed, in order. */
  readonly delays: number[] = [];
  setTimeout = (fn: () => void, ms = 0) => (this.due.push(fn), this.delays.push(ms), {});
  clearTimeout = () => undefined;
  setInterval = () => ({});
  clearInterval = () => undefined;
  get pending(): number {
    return this.due.length;
  }
  /** Moves the clock `ms` on without running anything. */
  advance(ms: number): void {
    this.t += ms;
  }
  /** Moves the clock `ms` on and runs every timeout armed so far. */
  fire(ms: number): void {
    this.t += ms;
    const due = this.due;
    this.due = [];
    for (const f of due) f();
  }
}

/** A fake slow durability chain: the real spool, but every accept() takes `delayMs` longer to resolve. */
function slowSink(inner: ReadingSink, delayMs: number): ReadingSink {
  return {
    get accepting() {
      return inner.accepting;
    },
    accept: (readings: readonly StoredReading[]) =>
      new Promise<void>((resolve, reject) => setTimeout(() => inner.accept(readings).then(resolve, reject), delayMs)),
    close: () => inner.close(),
  };
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
interface RigOptions {
  deviceRate?: number;
  deviceBurst?: number;
  /** The ACK linger's timers (default: the system's, lingering 0 ms). */
  lingerTimers?: ManualTimers;
  overloadAckMs?: number;
  /** Wraps the spool (a slow chain). */
  sink?: (spool: Spool) => ReadingSink;
}

async function rig(limits: RigOptions = {}): Promise<Rig> {
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
      sink: limits.sink ? limits.sink(spool) : spool,
      metrics: new HubMetrics({ defaultMetrics: false }),
      turn: limits.lingerTimers ? new EndOfTurn(20, limits.lingerTimers, limits.lingerTimers.now) : new EndOfTurn(0),
      ...(limits.overloadAckMs !== undefined ? { overloadAckMs: limits.overloadAckMs } : {}),
      clock: limits.lingerTimers ? { now: limits.lingerTimers.now } : clock,
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

async function attach(
  r: Rig,
  id: string,
  epoch = 1,
  coalesceAcks = false,
): Promise<{ t: FakeTransport; device: AttachedDevice }> {
  if (!r.registry.get(id)) r.registry.create({ id }, Date.now());
  const t = new FakeTransport(coalesceAcks);
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

  it('coalesces ACKs: holds one for the linger, and sends at once when ACK_EVERY readings wait or the device is sparse (§7.3.4)', async () => {
    // The session's clock is the manual one too: time moves only when the test says.
    const timers = new ManualTimers();
    const r = await rig({ lingerTimers: timers });
    const { t, device } = await attach(r, 'fake-5', 1, true);
    let reports = 0;
    const onDurable = t.onDurable;
    t.onDurable = (seq) => {
      reports++;
      onDurable(seq);
    };
    const durable = (seq: number) =>
      waitFor(`reading ${seq} durable in the spool`, () => r.registry.get('fake-5')!.ackedSeq === seq);
    // The first advance has nothing recent to share an ACK with: acked at once.
    device.ingest.ingest([reading(1)], 0, timers.now());
    await waitFor('ACK 1 with no linger timer fired', () => t.acked === 1);
    expect(timers.pending).toBe(0);
    // The next ones follow within the linger: durable, but their ACK waits for more.
    device.ingest.ingest([reading(2)], 1, timers.now());
    await durable(2);
    device.ingest.ingest([reading(3)], 2, timers.now());
    await durable(3);
    expect(t.acked).toBe(1);
    expect(timers.pending).toBe(1);
    timers.fire(20);
    expect(t.acked).toBe(3);
    expect(reports).toBe(2);
    // A linger since the last advance: the next ACK would share nothing, so it goes at once.
    device.ingest.ingest([reading(4)], 3, timers.now());
    await waitFor('ACK 4 with no linger timer fired', () => t.acked === 4);
    expect(timers.pending).toBe(0);
    // ACK_EVERY readings waiting: at once too.
    const many = Array.from({ length: ACK_EVERY }, (_, i) => reading(5 + i));
    device.ingest.ingest(many, 4, timers.now());
    await waitFor(`ACK ${4 + ACK_EVERY} with no linger timer fired`, () => t.acked === 4 + ACK_EVERY);
    expect(reports).toBe(4);
    // One more lingers; shutdown's flush() reports it at once (§6.6.3).
    const last = 5 + ACK_EVERY;
    device.ingest.ingest([reading(last)], last - 1, timers.now());
    await durable(last);
    expect(t.acked).toBe(last - 1);
    device.ingest.flush();
    expect(t.acked).toBe(last);
  });

  it('counts the ACK linger from when the reading was handed to the sink, so a slow commit shortens it (§7.3.4)', async () => {
    const timers = new ManualTimers();
    // The real spool behind a gate: a write completes when the test opens it, after the clock moved.
    const gate: Array<() => void> = [];
    const r = await rig({
      lingerTimers: timers,
      sink: (spool) => ({
        get accepting() {
          return spool.accepting;
        },
        accept: (readings) =>
          new Promise<void>((resolve, reject) => gate.push(() => void spool.accept(readings).then(resolve, reject))),
        close: () => spool.close(),
      }),
    });
    const { t, device } = await attach(r, 'fake-5b', 1, true);
    const commit = async (seq: number, takesMs: number) => {
      device.ingest.ingest([reading(seq)], seq - 1, timers.now());
      await waitFor(`reading ${seq} handed to the sink`, () => gate.length === 1);
      timers.advance(takesMs);
      gate.shift()!();
      await waitFor(`reading ${seq} durable in the spool`, () => r.registry.get('fake-5b')!.ackedSeq === seq);
    };
    await commit(1, 1); // nothing recent to share an ACK with: at once
    await waitFor('ACK 1 with no linger timer fired', () => t.acked === 1);
    // Handed over, then 15 ms until durable: its ACK waits the 5 ms left of the linger, not 20 more.
    await commit(2, 15);
    expect(t.acked).toBe(1);
    expect(timers.pending).toBe(1);
    expect(timers.delays.at(-1)).toBe(5);
    timers.fire(5);
    expect(t.acked).toBe(2);
  });

  it('backs off with STORE_BUSY when durability falls behind, and loses nothing: stored == acked (§7.4.1)', async () => {
    // Every accept takes 250 ms longer than the spool needs; the hub calls 100 ms behind an overload.
    const r = await rig({ overloadAckMs: 100, sink: (spool) => slowSink(spool, 250) });
    const { t, device } = await attach(r, 'fake-6');
    // A fake device: one reading per 10 ms; on BACKOFF it pauses, then resends everything unacked.
    let next = 1;
    let prev = 0;
    let pausedUntil = 0;
    let seenRefusals = 0;
    const start = Date.now();
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const now = Date.now();
        if (t.refused.length > seenRefusals) {
          seenRefusals = t.refused.length;
          pausedUntil = now + t.refused.at(-1)!.pauseMs;
          next = t.acked + 1; // §7.4.3: resend everything unacked, oldest first
        }
        if (now - start > 1500) {
          clearInterval(tick);
          resolve();
          return;
        }
        if (now < pausedUntil) return;
        device.ingest.ingest([reading(next)], prev, now);
        prev = next++;
      }, 10);
    });
    expect(t.refused.length).toBeGreaterThan(0);
    expect(t.refused[0]!.code).toBe('STORE_BUSY');
    // Resend what is still unacked until the hub has it all.
    const last = prev;
    await waitFor(
      `ACK ${last} after the resends`,
      () => {
        if (t.acked < last && Date.now() >= pausedUntil) {
          device.ingest.ingest(
            Array.from({ length: last - t.acked }, (_, i) => reading(t.acked + 1 + i)),
            last,
            Date.now(),
          );
          pausedUntil = Date.now() + 300;
        }
        return t.acked === last;
      },
      10_000,
    );
    await waitFor('the spool to drain into the store', () => storedSeqs(r.store, 'fake-6').length === last, 10_000);
    expect(storedSeqs(r.store, 'fake-6')).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  });
});
