/**
 * Command deadlines on fake time (docs/commands.md "TTL and timeout"): the hub is built with a fake clock
 * and fake timers, so a TTL of an hour or a 5 s timeout passes at once and exactly, without sleeping.
 * Devices are real (SDK over `ws`, or the bare codec client) and run on real time.
 */
import { TendrilDevice } from '@tendril/device-sdk';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock, TimerHandle, Timers } from '../src/core/clock.js';
import type { Command, CommandState } from '../src/commands/model.js';
import { TestDevice } from './device-client.js';
import { auth, provision, startHub, tempDir, waitFor, type TestHub } from './helpers.js';

/** FAKE clock and timers (real time cannot be fast-forwarded); `advance` fires due timers in order. */
class FakeTime implements Clock, Timers {
  private t = Date.UTC(2025, 2, 1, 8, 0, 0);
  private timers: Array<{ handle: TimerHandle; at: number; fn: () => void; every: number | null }> = [];

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, null);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, ms);
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.handle !== handle);
  }

  clearInterval(handle: TimerHandle): void {
    this.clearTimeout(handle);
  }

  /** Moves time forward, firing every timer that comes due (in due order) at its own time. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.t = Math.max(this.t, due.at);
      if (due.every === null) this.timers = this.timers.filter((t) => t !== due);
      else due.at += due.every;
      due.fn();
    }
    this.t = end;
  }

  private add(fn: () => void, ms: number, every: number | null): TimerHandle {
    const handle: TimerHandle = { unref: () => handle };
    this.timers.push({ handle, at: this.t + Math.max(0, ms), fn, every });
    return handle;
  }
}

const DAY = 86_400_000;
const hubs: TestHub[] = [];
const devices: TendrilDevice[] = [];
const dirs: Array<{ remove(): void }> = [];

afterEach(async () => {
  await Promise.all(devices.splice(0).map((d) => d.close()));
  for (const hub of hubs.splice(0)) await hub.dispose();
  for (const d of dirs.splice(0)) d.remove();
});

async function fakeTimeHub(time: FakeTime, options: { dataDir?: string; listen?: boolean } = {}): Promise<TestHub> {
  const hub = await startHub({
    listen: options.listen ?? false,
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    // Heartbeat and registry flush far away: these tests move time by hours.
    config: { heartbeatMs: 30 * DAY },
    deps: { clock: time, timers: time, registryFlushMs: 30 * DAY },
  });
  hubs.push(hub);
  return hub;
}

async function submit(hub: TestHub, deviceId: string, body: Record<string, unknown>): Promise<Command> {
  const res = await hub.app.inject({
    method: 'POST',
    url: `/api/v1/devices/${deviceId}/commands`,
    headers: auth,
    payload: body,
  });
  if (res.statusCode !== 202) throw new Error(`POST command failed: ${res.statusCode} ${res.body}`);
  return res.json() as Command;
}

async function fetchCommand(hub: TestHub, id: number): Promise<Command> {
  return (await hub.app.inject({ method: 'GET', url: `/api/v1/commands/${id}`, headers: auth })).json() as Command;
}

async function until(hub: TestHub, id: number, states: readonly CommandState[]): Promise<Command> {
  return waitFor(`command ${id} to reach ${states.join(' | ')}`, async () => {
    const c = await fetchCommand(hub, id);
    return states.includes(c.state) ? c : null;
  });
}

describe('TTL', () => {
  it('expires commands still queued for an offline device when their TTL passes, each at its own time', async () => {
    const time = new FakeTime();
    const hub = await fakeTimeHub(time);
    await provision(hub.app, 'buoy-1');
    const expired: number[] = [];
    hub.app.commands.events.on('commandChanged', (c) => c.state === 'expired' && expired.push(c.id));
    const a = await submit(hub, 'buoy-1', { name: 'sample', ttlMs: 60_000 });
    const b = await submit(hub, 'buoy-1', { name: 'sample', ttlMs: 120_000 });

    time.advance(59_999);
    expect((await fetchCommand(hub, a.id)).state).toBe('queued');
    time.advance(1);
    const first = await fetchCommand(hub, a.id);
    expect(first).toMatchObject({
      state: 'expired',
      detail: expect.stringMatching(/^EXPIRED: still queued when its TTL of 60000 ms passed/),
    });
    expect(first.history).toEqual([
      { state: 'queued', at: a.createdAt },
      { state: 'expired', at: a.createdAt + 60_000, detail: first.detail },
    ]);
    expect((await fetchCommand(hub, b.id)).state).toBe('queued');
    time.advance(60_000);
    expect((await fetchCommand(hub, b.id)).state).toBe('expired');
    expect(expired).toEqual([a.id, b.id]);
    expect((await hub.app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(
      /^tendril_commands_total\{state="expired"\} 2$/m,
    );
  });

  it('applies TTLs that passed while the hub was down at start-up, and keeps timing the others after a restart', async () => {
    const time = new FakeTime();
    const dir = tempDir();
    dirs.push(dir);
    const before = await fakeTimeHub(time, { dataDir: dir.path });
    await provision(before.app, 'buoy-2');
    const short = await submit(before, 'buoy-2', { name: 'sample', ttlMs: 60_000 });
    const long = await submit(before, 'buoy-2', { name: 'sample', ttlMs: 3_600_000 });
    await before.app.close();

    time.advance(10 * 60_000); // the hub is down for 10 minutes
    const after = await fakeTimeHub(time, { dataDir: dir.path });
    const gone = await fetchCommand(after, short.id);
    expect(gone.state).toBe('expired');
    expect(gone.history.at(-1)!.at).toBe(time.now()); // noticed at start-up
    expect((await fetchCommand(after, long.id)).state).toBe('queued');
    time.advance(long.expiresAt - time.now() - 1);
    expect((await fetchCommand(after, long.id)).state).toBe('queued');
    time.advance(1);
    expect((await fetchCommand(after, long.id)).state).toBe('expired');
  });

  it('expires a command queued behind one in flight; the TTL does not apply once a command was sent', async () => {
    const time = new FakeTime();
    const hub = await fakeTimeHub(time, { listen: true });
    const token = await provision(hub.app, 'arm-1');
    const raw = await TestDevice.connect(hub.listening!.deviceUrl);
    try {
      await raw.hello({ deviceId: 'arm-1', token, metrics: [] });
      const busy = await submit(hub, 'arm-1', { name: 'move', ttlMs: 1000, timeoutMs: 600_000 });
      await raw.next('command', 'COMMAND move');
      raw.send({ type: 'commandResult', commandId: busy.id, status: 'delivered', detail: '' });
      await until(hub, busy.id, ['delivered']);
      const behind = await submit(hub, 'arm-1', { name: 'home', ttlMs: 2000 });
      time.advance(2000);
      expect((await fetchCommand(hub, behind.id)).state).toBe('expired');
      // The command in flight is past its TTL too, but it was sent: only its timeout counts.
      expect((await fetchCommand(hub, busy.id)).state).toBe('delivered');
    } finally {
      raw.close();
    }
  });
});

describe('timeout', () => {
  it('fails a command without a final status timeoutMs after it was sent, then sends the next one', async () => {
    const time = new FakeTime();
    const hub = await fakeTimeHub(time, { listen: true });
    const token = await provision(hub.app, 'valve-1');
    const device = new TendrilDevice({
      url: hub.listening!.deviceUrl,
      deviceId: 'valve-1',
      token,
      metrics: [],
      WebSocket: WebSocket as never,
      wsOptions: { perMessageDeflate: false },
    });
    devices.push(device);
    device.onCommand('open', () => new Promise(() => undefined)); // never finishes
    device.onCommand('status', () => ({ open: false }));
    device.start();
    await waitFor('valve-1 online', () => hub.app.deviceChannel.connectionOf('valve-1')?.ready);

    const stuck = await submit(hub, 'valve-1', { name: 'open', timeoutMs: 5000 });
    const next = await submit(hub, 'valve-1', { name: 'status' });
    const delivered = await until(hub, stuck.id, ['delivered']);
    const sentAt = delivered.history.find((e) => e.state === 'sent')!.at;
    expect((await fetchCommand(hub, next.id)).state).toBe('queued');

    time.advance(sentAt + 4999 - time.now());
    expect((await fetchCommand(hub, stuck.id)).state).toBe('delivered');
    time.advance(1);
    const failed = await fetchCommand(hub, stuck.id);
    expect(failed.state).toBe('failed');
    expect(failed.detail).toMatch(/^TIMEOUT: no final status from the device within 5000 ms/);
    expect(failed.history.at(-1)).toEqual({ state: 'failed', at: sentAt + 5000, detail: failed.detail });
    // Ended by the hub: the devices layer keeps its id no longer (a late result is still known, §8.2.4).
    const sessions = hub.app.devices.sessions as unknown as { outstandingCommands: Map<string, Set<number>> };
    expect(sessions.outstandingCommands.get('valve-1')?.has(stuck.id) ?? false).toBe(false);
    // The line moves on.
    expect(await until(hub, next.id, ['succeeded'])).toMatchObject({ result: { open: false } });
  });

  it('runs while the device is offline: a command sent before the device left fails at its deadline', async () => {
    const time = new FakeTime();
    const hub = await fakeTimeHub(time, { listen: true });
    const token = await provision(hub.app, 'valve-2');
    const raw = await TestDevice.connect(hub.listening!.deviceUrl);
    await raw.hello({ deviceId: 'valve-2', token, metrics: [] });
    const command = await submit(hub, 'valve-2', { name: 'close', timeoutMs: 10_000 });
    await raw.next('command', 'COMMAND close');
    raw.close();
    await raw.closedWithin();
    await waitFor('valve-2 offline', () => hub.app.devices.registry.get('valve-2')?.presence.state === 'offline');
    time.advance(10_000);
    expect(await fetchCommand(hub, command.id)).toMatchObject({
      state: 'failed',
      detail: expect.stringMatching(/^TIMEOUT/),
    });
    // A result that comes after the timeout is still one for a command sent to this device: no ERROR for it
    // (the command stays failed). An id never sent is refused; ERRORs come in order, so its is the first.
    const again = await TestDevice.connect(hub.listening!.deviceUrl);
    await again.hello({ deviceId: 'valve-2', token, metrics: [] });
    again.send({ type: 'commandResult', commandId: command.id, status: 'succeeded', detail: '' });
    again.send({ type: 'commandResult', commandId: 999_999, status: 'succeeded', detail: '' });
    const error = await again.next('error', 'ERROR UNKNOWN_COMMAND_ID');
    expect(error.message).toBe('command 999999 was not sent to this device');
    expect((await fetchCommand(hub, command.id)).state).toBe('failed');
    again.close();
    await again.closedWithin();
  });
});
