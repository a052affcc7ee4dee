/**
 * Commands end to end: a real hub on 127.0.0.1:0 with SQLite in a temp dir, real SDK devices over `ws`
 * (and a bare codec client where the test must control every frame). Lifecycle, ordering, one in flight,
 * at-least-once delivery with the SDK's dedup, restart, and §8.2.4 for unknown results.
 */
import { CommandRejected, TendrilDevice, type CommandHandler } from '@tendril/device-sdk';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import type { Command, CommandState } from '../src/commands/model.js';
import { TestDevice } from './device-client.js';
import { auth, provision, startHub, tempDir, waitFor, type TestHub } from './helpers.js';

const FINAL: readonly CommandState[] = ['succeeded', 'failed', 'rejected', 'expired'];

interface Harness {
  hub: TestHub;
  devices: TendrilDevice[];
}

const open: Harness[] = [];
const dirs: Array<{ remove(): void }> = [];

afterEach(async () => {
  for (const h of open.splice(0)) {
    await Promise.all(h.devices.map((d) => d.close()));
    await h.hub.dispose();
  }
  for (const d of dirs.splice(0)) d.remove();
});

async function harness(options: { dataDir?: string; port?: number } = {}): Promise<Harness> {
  const hub = await startHub({
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.port ? { config: { port: options.port } } : {}),
  });
  const h = { hub, devices: [] };
  open.push(h);
  return h;
}

/** An SDK device with the given command handlers; resolves once the hub welcomed it. */
async function connect(
  h: Harness,
  id: string,
  token: string,
  handlers: Record<string, CommandHandler>,
  errors: Error[] = [],
): Promise<TendrilDevice> {
  const device = new TendrilDevice({
    url: h.hub.listening!.deviceUrl,
    deviceId: id,
    token,
    metrics: [],
    WebSocket: WebSocket as never,
    wsOptions: { perMessageDeflate: false },
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
  });
  for (const [name, handler] of Object.entries(handlers)) device.onCommand(name, handler);
  device.on('error', (err) => errors.push(err));
  h.devices.push(device);
  const welcomed = new Promise<void>((resolve) => device.on('connect', () => resolve()));
  device.start();
  await waitFor(`${id} welcomed by the hub`, () => welcomed.then(() => true));
  return device;
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

/** Waits (polling the API) until the command is in one of `states`. */
async function until(hub: TestHub, id: number, states: readonly CommandState[], timeoutMs = 5000): Promise<Command> {
  return waitFor(
    `command ${id} to reach ${states.join(' | ')}`,
    async () => {
      const c = await fetchCommand(hub, id);
      return states.includes(c.state) ? c : null;
    },
    timeoutMs,
  );
}

/** A promise with its resolve function, for handlers the test releases. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('commands to an online device', () => {
  it('a command the hub cannot send is failed (UNDELIVERABLE) and the next one goes out', async () => {
    const h = await harness();
    const token = await provision(h.hub.app, 'lamp-9');
    const ran: string[] = [];
    await connect(h, 'lamp-9', token, { reboot: () => void ran.push('reboot') });
    // Stands in for a command the transport cannot carry (one stored before a check existed, or a hub bug).
    const sessions = h.hub.app.devices.sessions;
    const send = sessions.sendCommand.bind(sessions);
    sessions.sendCommand = (deviceId, command) => {
      if (command.name === 'explode') throw new Error('cannot encode');
      return send(deviceId, command);
    };
    const bad = await submit(h.hub, 'lamp-9', { name: 'explode' });
    const good = await submit(h.hub, 'lamp-9', { name: 'reboot' });
    const failed = await until(h.hub, bad.id, FINAL);
    expect(failed).toMatchObject({ state: 'failed' });
    expect(failed.detail).toMatch(/^UNDELIVERABLE: .*cannot encode/);
    // It used to stay first in the device's line, holding back every command after it.
    expect(await until(h.hub, good.id, FINAL)).toMatchObject({ state: 'succeeded' });
    expect(ran).toEqual(['reboot']);
  });

  it("go queued -> sent -> delivered -> succeeded with the handler's result, seen on the API and as events", async () => {
    const h = await harness();
    const token = await provision(h.hub.app, 'lamp-1');
    const seen: Array<{ args: unknown; timeoutMs: number; commandId: number }> = [];
    await connect(h, 'lamp-1', token, {
      'set-interval': (args, ctx) => {
        seen.push({ args, timeoutMs: ctx.timeoutMs, commandId: ctx.commandId });
        return { interval: args.ms };
      },
    });
    const changes: Array<{ id: number; state: CommandState }> = [];
    h.hub.app.commands.events.on('commandChanged', (c) => changes.push({ id: c.id, state: c.state }));

    const queued = await submit(h.hub, 'lamp-1', { name: 'set-interval', args: { ms: 5000 }, timeoutMs: 7000 });
    const done = await until(h.hub, queued.id, FINAL);
    expect(done).toMatchObject({
      state: 'succeeded',
      detail: '{"interval":5000}',
      result: { interval: 5000 },
      requestedBy: 'admin-token',
    });
    expect(done.history.map((e) => e.state)).toEqual(['queued', 'sent', 'delivered', 'succeeded']);
    const times = done.history.map((e) => e.at);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(seen).toEqual([{ args: { ms: 5000 }, timeoutMs: 7000, commandId: queued.id }]);
    expect(changes.filter((c) => c.id === queued.id).map((c) => c.state)).toEqual([
      'queued',
      'sent',
      'delivered',
      'succeeded',
    ]);

    const metrics = (await h.hub.app.inject({ method: 'GET', url: '/metrics' })).body;
    for (const state of ['queued', 'sent', 'delivered', 'succeeded'])
      expect(metrics).toMatch(new RegExp(`^tendril_commands_total\\{state="${state}"\\} 1$`, 'm'));
  });

  it('a handler that throws gives failed with its message; CommandRejected and an unknown name give rejected', async () => {
    const h = await harness();
    const token = await provision(h.hub.app, 'relay-1');
    await connect(h, 'relay-1', token, {
      reboot: () => {
        throw new Error('watchdog not armed');
      },
      'set-interval': (args) => {
        if (args.ms < 1000) throw new CommandRejected('ms must be >= 1000');
        return null;
      },
    });
    const failed = await submit(h.hub, 'relay-1', { name: 'reboot' });
    const rejected = await submit(h.hub, 'relay-1', { name: 'set-interval', args: { ms: 5 } });
    const unknown = await submit(h.hub, 'relay-1', { name: 'self-destruct' });
    expect(await until(h.hub, failed.id, FINAL)).toMatchObject({
      state: 'failed',
      detail: 'watchdog not armed',
      result: null,
    });
    expect(await until(h.hub, rejected.id, FINAL)).toMatchObject({
      state: 'rejected',
      detail: 'ms must be >= 1000',
      result: null,
    });
    expect(await until(h.hub, unknown.id, FINAL)).toMatchObject({
      state: 'rejected',
      detail: 'unknown command "self-destruct"',
    });
    const list = (
      await h.hub.app.inject({ method: 'GET', url: '/api/v1/devices/relay-1/commands?state=rejected', headers: auth })
    ).json();
    expect(list.commands.map((c: Command) => c.id)).toEqual([unknown.id, rejected.id]);
  });
});

describe('ordering and one command in flight', () => {
  it('commands to an offline device wait, then run in creation order, one at a time, after it connects', async () => {
    const h = await harness();
    const token = await provision(h.hub.app, 'env-1');
    const ids: number[] = [];
    for (const n of [1, 2, 3, 4]) ids.push((await submit(h.hub, 'env-1', { name: 'step', args: { n } })).id);
    for (const id of ids) expect((await fetchCommand(h.hub, id)).state).toBe('queued');

    const ran: number[] = [];
    let running = 0;
    let maxRunning = 0;
    await connect(h, 'env-1', token, {
      step: async (args: { n: number }) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        // Yield to the event loop a few times: a second command sent now would start here.
        for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
        ran.push(args.n);
        running--;
        return { n: args.n };
      },
    });
    for (const id of ids) await until(h.hub, id, FINAL);
    expect(ran).toEqual([1, 2, 3, 4]);
    expect(maxRunning).toBe(1);
    // Each command was sent only after the previous one reached its final state.
    const commands = await Promise.all(ids.map((id) => fetchCommand(h.hub, id)));
    for (let i = 1; i < commands.length; i++) {
      const previousDone = commands[i - 1]!.history.find((e) => e.state === 'succeeded')!.at;
      const sent = commands[i]!.history.find((e) => e.state === 'sent')!.at;
      expect(sent).toBeGreaterThanOrEqual(previousDone);
    }
  });
});

describe('at-least-once delivery', () => {
  it('a connection cut while the command runs: sent again on reconnect, executed once, succeeded', async () => {
    const h = await harness();
    const token = await provision(h.hub.app, 'pump-1');
    const release = gate();
    let executions = 0;
    const errors: Error[] = [];
    const device = await connect(
      h,
      'pump-1',
      token,
      {
        flush: async () => {
          executions++;
          await release.promise;
          return { flushed: true };
        },
      },
      errors,
    );
    let connects = 1;
    device.on('connect', () => connects++);
    const command = await submit(h.hub, 'pump-1', { name: 'flush', timeoutMs: 20_000 });
    await until(h.hub, command.id, ['delivered']);

    // Cut the connection from the hub's side (as a network failure would); the SDK reconnects.
    h.hub.app.deviceChannel.connectionOf('pump-1')!.terminate('CONNECTION_LOST');
    await waitFor('pump-1 to reconnect', () => connects === 2 && h.hub.app.deviceChannel.connectionOf('pump-1')?.ready);
    const resent = await waitFor('the re-send in the history', async () => {
      const c = await fetchCommand(h.hub, command.id);
      return c.history.filter((e) => e.state === 'sent').length === 2 ? c : null;
    });
    expect(resent.state).toBe('delivered');
    expect(resent.history.at(-1)!.detail).toMatch(/sent again after the device reconnected/);

    release.open();
    const done = await until(h.hub, command.id, FINAL);
    expect(done).toMatchObject({ state: 'succeeded', result: { flushed: true } });
    expect(executions).toBe(1);
    expect(errors).toEqual([]);
  });

  it('the device finishes while its connection is cut: the command is sent again and succeeds once, the handler does not run again', async () => {
    const h = await harness();
    const token = await provision(h.hub.app, 'pump-2');
    const release = gate();
    let executions = 0;
    const errors: Error[] = [];
    await connect(
      h,
      'pump-2',
      token,
      {
        flush: async () => {
          executions++;
          await release.promise;
          return 'ok';
        },
      },
      errors,
    );
    const command = await submit(h.hub, 'pump-2', { name: 'flush' });
    await until(h.hub, command.id, ['delivered']);
    // The hub drops the socket first; the device finishes and writes its result into the dead socket.
    h.hub.app.deviceChannel.connectionOf('pump-2')!.terminate('CONNECTION_LOST');
    release.open();
    const done = await until(h.hub, command.id, FINAL);
    expect(done).toMatchObject({ state: 'succeeded', detail: '"ok"', result: 'ok' });
    expect(done.history.filter((e) => e.state === 'sent')).toHaveLength(2);
    expect(executions).toBe(1);
    // A second final status for the same id (the stored answer and the resent one) is not an error (§8.3).
    expect(errors.map((e) => e.message)).toEqual([]);
  });
});

describe('restart', () => {
  it('keeps queued and in-flight commands across a hub restart; the device gets them after reconnecting', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const first = await harness({ dataDir: dir.path });
    const port = first.hub.listening!.port;
    const token = await provision(first.hub.app, 'gw-1');

    // A raw client: it receives the COMMAND and holds its result across the restart.
    const raw = await TestDevice.connect(first.hub.listening!.deviceUrl);
    await raw.hello({ deviceId: 'gw-1', token, metrics: [] });
    const inFlight = await submit(first.hub, 'gw-1', { name: 'calibrate', args: { axis: 'x' }, timeoutMs: 60_000 });
    const frame = await raw.next('command', 'COMMAND calibrate');
    expect(frame).toMatchObject({ commandId: inFlight.id, name: 'calibrate', args: '{"axis":"x"}', timeoutMs: 60_000 });
    raw.send({ type: 'commandResult', commandId: inFlight.id, status: 'delivered', detail: '' });
    await until(first.hub, inFlight.id, ['delivered']);
    const waiting = await submit(first.hub, 'gw-1', { name: 'report' });
    expect((await fetchCommand(first.hub, waiting.id)).state).toBe('queued');
    await first.hub.app.close();
    await raw.closedWithin();

    const second = await harness({ dataDir: dir.path, port });
    expect((await fetchCommand(second.hub, inFlight.id)).state).toBe('delivered');
    expect((await fetchCommand(second.hub, waiting.id)).state).toBe('queued');
    const again = await TestDevice.connect(second.hub.listening!.deviceUrl);
    await again.hello({ deviceId: 'gw-1', token, metrics: [] });
    // §8.3: the command in flight comes again with the same id and the time it has left.
    const resent = await again.next('command', 'the re-sent COMMAND after the restart');
    expect(resent.commandId).toBe(inFlight.id);
    expect(resent.timeoutMs).toBeLessThanOrEqual(60_000);
    expect(resent.timeoutMs).toBeGreaterThan(0);
    // The new hub instance never sent it itself; the store vouches for it (§8.2.4).
    again.send({ type: 'commandResult', commandId: inFlight.id, status: 'succeeded', detail: '{"offset":0.25}' });
    expect(await until(second.hub, inFlight.id, FINAL)).toMatchObject({ state: 'succeeded', result: { offset: 0.25 } });
    const next = await again.next('command', 'the queued COMMAND after the one in flight finished');
    expect(next).toMatchObject({ commandId: waiting.id, name: 'report', args: '' });
    again.send({ type: 'commandResult', commandId: waiting.id, status: 'rejected', detail: 'busy' });
    expect(await until(second.hub, waiting.id, FINAL)).toMatchObject({ state: 'rejected', detail: 'busy' });

    // §8.2.4: a repeated final status for a command the hub sent is no error; an id it never sent is.
    again.send({ type: 'commandResult', commandId: inFlight.id, status: 'succeeded', detail: '{"offset":0.25}' });
    again.send({ type: 'commandResult', commandId: 987_654, status: 'succeeded', detail: '' });
    const error = await again.next('error', 'ERROR UNKNOWN_COMMAND_ID');
    expect(error).toMatchObject({ code: 'UNKNOWN_COMMAND_ID', seq: 0, alias: null });
    expect(error.message).toContain('987654');
    expect(again.frames.filter((f) => f.type === 'error')).toEqual([]);
    expect((await fetchCommand(second.hub, inFlight.id)).history.map((e) => e.state)).toEqual([
      'queued',
      'sent',
      'delivered',
      'sent',
      'succeeded',
    ]);
    again.close();
  });
});
