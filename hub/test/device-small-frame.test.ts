/**
 * Small hub frames written straight to the device's TCP socket (hub/src/device-channel/small-frame.ts) arrive
 * as the same WebSocket messages ws.send would make, in order with frames ws sent; while ws's Sender holds bytes
 * back the caller is told to send through ws.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { decodeHubFrame, encodeHubFrame } from '@tendril/device-sdk/codec';
import { ackMessage, SMALL_FRAME_MAX, SMALL_HEADER_BYTES, writeSmallFrame } from '../src/device-channel/small-frame.js';
import { waitFor } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

/** A ws server socket (as the hub holds) and a client that records every message it receives. */
async function pair(): Promise<{ server: WebSocket; received: Array<{ data: Buffer; isBinary: boolean }> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  cleanups.push(() => wss.close());
  await once(wss, 'listening');
  const { port } = wss.address() as AddressInfo;
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  cleanups.push(() => client.terminate());
  const received: Array<{ data: Buffer; isBinary: boolean }> = [];
  client.on('message', (data: Buffer, isBinary) => received.push({ data, isBinary }));
  const [server] = (await once(wss, 'connection')) as [WebSocket];
  await once(client, 'open');
  return { server, received };
}

describe('small hub frames', () => {
  it('arrive as the binary messages ws.send makes, in order with frames ws sent, up to 125 bytes', async () => {
    const { server, received } = await pair();
    const sizes = [0, 1, 2, 9, SMALL_FRAME_MAX];
    const payloads = sizes.map((n, i) => Buffer.alloc(n, i + 1));
    server.send(Buffer.from([0xaa, 0xbb])); // through ws first
    for (const p of payloads) expect(writeSmallFrame(server, new Uint8Array(p))).toBe(true);
    server.send(Buffer.from([0xcc])); // and after
    await waitFor('every message at the client', () => received.length === payloads.length + 2);
    expect(received.every((m) => m.isBinary)).toBe(true);
    expect(received.map((m) => m.data.toString('hex'))).toEqual([
      'aabb',
      ...payloads.map((p) => p.toString('hex')),
      'cc',
    ]);
  });

  it('leaves larger payloads, and any while the Sender holds bytes back, to ws.send', async () => {
    const { server } = await pair();
    expect(writeSmallFrame(server, new Uint8Array(SMALL_FRAME_MAX + 1))).toBe(false);
    const sender = (server as unknown as { _sender: { _bufferedBytes: number } })._sender;
    sender._bufferedBytes = 1; // as while it compresses a frame or reads a Blob
    try {
      expect(writeSmallFrame(server, new Uint8Array(2))).toBe(false);
    } finally {
      sender._bufferedBytes = 0;
    }
    expect(writeSmallFrame(server, new Uint8Array(2))).toBe(true);
  });

  it('builds ACK messages with the bytes of the codec for every varint length, up to 2^53-1', () => {
    const seqs = [
      1,
      2,
      127,
      128,
      300,
      16_383,
      16_384,
      2 ** 21 - 1,
      2 ** 21,
      2 ** 28,
      2 ** 35 + 5,
      2 ** 49,
      Number.MAX_SAFE_INTEGER,
    ];
    for (const seq of seqs) {
      const message = ackMessage(seq);
      const payload = encodeHubFrame({ type: 'ack', seq });
      expect(message[0], `seq ${seq}: FIN + binary`).toBe(0x82);
      expect(message[1], `seq ${seq}: 7-bit length`).toBe(payload.length);
      expect(Buffer.from(message.subarray(SMALL_HEADER_BYTES)).toString('hex'), `seq ${seq}`).toBe(
        Buffer.from(payload).toString('hex'),
      );
      expect(decodeHubFrame(message.subarray(SMALL_HEADER_BYTES))).toEqual({ type: 'ack', seq });
    }
  });
});
