/**
 * §12 Size budget: a three-metric timestamped reading is 19 bytes of frame and 25 bytes on the wire with
 * the masked client WebSocket header. Measured on a real WebSocket connection over 127.0.0.1.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import {
  encodeDeviceFrame,
  encodeHubFrame,
  newDeltaContext,
  SUBPROTOCOL,
  type DeviceFrame,
} from '@tendril/device-sdk/codec';

const T = 1_732_233_600_000;
const threeMetricReading: DeviceFrame = {
  type: 'reading',
  seq: 42,
  ts: T + 1000,
  values: [
    { alias: 0, kind: 'f32', value: 21.5 },
    { alias: 1, kind: 'f32', value: 48.25 },
    { alias: 2, kind: 'f32', value: 1013.25 },
  ],
};

let server: WebSocketServer;
let port: number;

beforeAll(async () => {
  server = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    handleProtocols: (p) => (p.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const c of server.clients) c.terminate();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

test('§12: the example reading is the 19 bytes the spec annotates', () => {
  const frame = encodeDeviceFrame(threeMetricReading, newDeltaContext(41, T));
  expect(Buffer.from(frame).toString('hex')).toBe('0202d00f000000ac4108000041421000507d44');
  expect(frame.length).toBe(19);
});

test('§12: device -> hub it costs 25 bytes on the wire (6-byte masked header); hub -> device headers are 2 bytes', async () => {
  const frame = encodeDeviceFrame(threeMetricReading, newDeltaContext(41, T));
  const serverSide = once(server, 'connection') as Promise<
    [WebSocket, { socket: { bytesRead: number; bytesWritten: number } }]
  >;
  const client = new WebSocket(`ws://127.0.0.1:${port}/v1/device`, SUBPROTOCOL, { perMessageDeflate: false });
  try {
    await withTimeout(once(client, 'open'), 5000, 'the WebSocket handshake');
    const [peer, req] = await withTimeout(serverSide, 5000, 'the server-side connection');
    expect(client.protocol).toBe(SUBPROTOCOL);

    const readBefore = req.socket.bytesRead;
    const message = once(peer, 'message');
    client.send(frame);
    const [data, isBinary] = (await withTimeout(message, 5000, 'the reading at the server')) as [Buffer, boolean];
    expect(isBinary).toBe(true);
    expect(data.length).toBe(19);
    expect(req.socket.bytesRead - readBefore).toBe(25);

    // Hub -> device frames are not masked: an ACK (3 bytes: type + 2-byte varint) is 5 bytes on the wire.
    const ack = encodeHubFrame({ type: 'ack', seq: 300 });
    const writtenBefore = req.socket.bytesWritten;
    const received = once(client, 'message');
    peer.send(ack);
    await withTimeout(received, 5000, 'the ACK at the client');
    expect(ack.length).toBe(3);
    expect(req.socket.bytesWritten - writtenBefore).toBe(ack.length + 2);
  } finally {
    client.terminate();
  }
});
