/**
 * Commands (§8) against the FAKE hub: `delivered` at once, then exactly one final status; duplicates by
 * command id run nothing and get the stored result again; results finished while offline go out after
 * the next WELCOME.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CommandRejected, TendrilDevice, type CommandResultFrame } from '@tendril/device-sdk';
import { FakeHub, nextEvent, waitUntil, type FakeConnection } from './support/fake-hub.js';

let hub: FakeHub;
let d: TendrilDevice;

afterEach(async () => {
  await d?.close();
  await hub?.close();
  expect(hub?.violations ?? []).toEqual([]);
});

async function connected(): Promise<FakeConnection> {
  hub = await FakeHub.start();
  d = new TendrilDevice({
    url: hub.url,
    deviceId: 'relay-1',
    token: 'secret',
    metrics: [{ name: 'relay', kind: 'bool' }],
    WebSocket,
    reconnect: { initialDelayMs: 1, maxDelayMs: 5 },
  });
  const connect = nextEvent(d, 'connect', 'the connect event');
  d.start();
  const conn = await hub.connection(0);
  await connect;
  return conn;
}

function command(conn: FakeConnection, commandId: number, name: string, args = ''): void {
  conn.send({ type: 'command', commandId, name, args, timeoutMs: 5000 });
}

function results(conn: FakeConnection, commandId: number): Array<[string, string]> {
  return conn.frames
    .filter((f): f is CommandResultFrame => f.type === 'commandResult' && f.commandId === commandId)
    .map((f) => [f.status, f.detail]);
}

function settled(conn: FakeConnection, commandId: number, count = 2): Promise<Array<[string, string]>> {
  return waitUntil(
    () => results(conn, commandId).length >= count && results(conn, commandId),
    `${count} results for command ${commandId}`,
  );
}

describe('commands (§8)', () => {
  it('answers delivered, runs the handler with parsed args, then succeeded with the JSON result', async () => {
    const conn = await connected();
    const calls: unknown[] = [];
    d.onCommand('set-interval', async (args, ctx) => {
      calls.push([args, ctx]);
      return { interval: (args as { ms: number }).ms };
    });
    command(conn, 1, 'set-interval', '{"ms":500}');
    expect(await settled(conn, 1)).toEqual([
      ['delivered', ''],
      ['succeeded', '{"interval":500}'],
    ]);
    expect(calls).toEqual([[{ ms: 500 }, { commandId: 1, name: 'set-interval', timeoutMs: 5000 }]]);
  });

  it('no args and no return value: the handler gets undefined and the result is null', async () => {
    const conn = await connected();
    let got: unknown = 'not called';
    d.onCommand('reboot', (args) => {
      got = args;
    });
    command(conn, 2, 'reboot');
    expect(await settled(conn, 2)).toEqual([
      ['delivered', ''],
      ['succeeded', 'null'],
    ]);
    expect(got).toBeUndefined();
  });

  it('a thrown error is failed with its message; CommandRejected is rejected', async () => {
    const conn = await connected();
    d.onCommand('relay', () => {
      throw new Error('relay coil open');
    });
    d.onCommand('firmware-update', async () => {
      throw new CommandRejected('battery below 20 %');
    });
    command(conn, 3, 'relay', '{"on":true}');
    command(conn, 4, 'firmware-update');
    expect(await settled(conn, 3)).toEqual([
      ['delivered', ''],
      ['failed', 'relay coil open'],
    ]);
    expect(await settled(conn, 4)).toEqual([
      ['delivered', ''],
      ['rejected', 'battery below 20 %'],
    ]);
  });

  it('rejects unknown commands, bad JSON args, and fails results too long for the frame', async () => {
    const conn = await connected();
    d.onCommand('dump', () => 'x'.repeat(2000));
    d.onCommand('set-interval', () => 1);
    command(conn, 5, 'self-destruct');
    command(conn, 6, 'set-interval', '{ms: 5}');
    command(conn, 7, 'dump');
    expect(await settled(conn, 5)).toEqual([
      ['delivered', ''],
      ['rejected', 'unknown command "self-destruct"'],
    ]);
    expect(await settled(conn, 6)).toEqual([
      ['delivered', ''],
      ['rejected', 'arguments of "set-interval" are not valid JSON'],
    ]);
    expect(await settled(conn, 7)).toEqual([
      ['delivered', ''],
      ['failed', 'result of "dump" is longer than 1024 bytes of JSON'],
    ]);
  });

  it('runs a duplicate delivery once: delivered while running, the stored final result afterwards (§8.3)', async () => {
    const conn = await connected();
    let release!: () => void;
    let runs = 0;
    d.onCommand('calibrate', async () => {
      runs++;
      await new Promise<void>((resolve) => (release = resolve));
      return 'calibrated';
    });
    command(conn, 8, 'calibrate');
    await waitUntil(() => runs === 1, 'the handler to start');
    command(conn, 8, 'calibrate');
    expect(await settled(conn, 8)).toEqual([
      ['delivered', ''],
      ['delivered', ''],
    ]);
    release();
    await settled(conn, 8, 3);
    command(conn, 8, 'calibrate');
    expect(await settled(conn, 8, 4)).toEqual([
      ['delivered', ''],
      ['delivered', ''],
      ['succeeded', '"calibrated"'],
      ['succeeded', '"calibrated"'],
    ]);
    expect(runs).toBe(1);
  });

  it('a result that completes while disconnected is sent after the next WELCOME', async () => {
    const conn0 = await connected();
    let release!: () => void;
    d.onCommand('calibrate', () => new Promise<string>((resolve) => (release = () => resolve('done'))));
    command(conn0, 9, 'calibrate');
    await settled(conn0, 9, 1);
    const disconnected = nextEvent(d, 'disconnect', 'the disconnect event');
    conn0.kill();
    await disconnected;
    release();
    const conn1 = await hub.connection(1);
    expect(await settled(conn1, 9, 1)).toEqual([['succeeded', '"done"']]);
    expect(conn1.frames.map((f) => f.type)).toEqual(['hello', 'commandResult']);
  });
});
