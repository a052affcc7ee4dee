/**
 * Small frames without ws's per-frame machinery (hub/src/device-channel/small-frame.ts). Sent: hub frames
 * written straight to the device's TCP socket arrive as the same WebSocket messages ws.send would make, in
 * order with frames ws sent; while ws's Sender holds bytes back the caller is told to send through ws.
 * Received: a device's small frame is emitted as the same 'message' ws would emit, and every byte sequence ws
 * handles otherwise (split or joined frames, fragments, control frames, frames ws refuses) ends the same way
 * with the small-frame path as without it.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { decodeHubFrame, encodeHubFrame } from '@tendril/device-sdk/codec';
import {
  ackMessage,
  receiveSmallFrames,
  SMALL_FRAME_MAX,
  SMALL_HEADER_BYTES,
  writeSmallFrame,
} from '../src/device-channel/small-frame.js';
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

/** A client frame (RFC 6455 §5.2): FIN, opcode, masked unless `masked` is false, any RSV bits in `rsv`. */
function clientFrame(
  payload: Buffer,
  opts: { opcode?: number; fin?: boolean; masked?: boolean; rsv?: number } = {},
): Buffer {
  const { opcode = 0x2, fin = true, masked = true, rsv = 0 } = opts;
  const len = payload.length;
  const ext = len < 126 ? 0 : 2;
  const head = Buffer.alloc(2 + ext);
  head[0] = (fin ? 0x80 : 0) | rsv | opcode;
  head[1] = (masked ? 0x80 : 0) | (ext === 0 ? len : 126);
  if (ext === 2) head.writeUInt16BE(len, 2);
  if (!masked) return Buffer.concat([head, payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!));
  return Buffer.concat([head, mask, body]);
}

type Seen = { message: string; isBinary: boolean } | { close: number };

/**
 * A ws server socket (as the hub holds, with the small-frame path when `small`) and a raw TCP client after the
 * upgrade; `seen` lists the server socket's messages and its close code. `viaWs` counts chunks ws's Receiver
 * parsed itself.
 */
async function rawPair(small: boolean) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 16_384 });
  cleanups.push(() => wss.close());
  await once(wss, 'listening');
  const { port } = wss.address() as AddressInfo;
  const client = net.connect({ port, host: '127.0.0.1', noDelay: true });
  cleanups.push(() => client.destroy());
  const key = randomBytes(16).toString('base64');
  client.write(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const [server] = (await once(wss, 'connection')) as [WebSocket];
  let head = '';
  await new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        client.off('data', onData);
        resolve();
      }
    };
    client.on('data', onData);
  });
  expect(head.startsWith('HTTP/1.1 101')).toBe(true);
  // What the server sends after the upgrade (Pongs, its Close frame).
  const fromServer: Buffer[] = [];
  client.on('data', (d: Buffer) => fromServer.push(d));
  const seen: Seen[] = [];
  server.on('message', (data: Buffer, isBinary: boolean) => seen.push({ message: data.toString('hex'), isBinary }));
  server.on('close', (code: number) => seen.push({ close: code }));
  server.on('error', () => undefined); // ws closes the connection itself after a protocol error
  client.on('error', () => undefined); // writes after the server dropped the connection
  const rx = (server as unknown as { _receiver: object })._receiver;
  const own = Object.getPrototypeOf(rx) as { write(chunk: Buffer): boolean };
  const counter = { viaWs: 0 };
  const parse = own.write;
  // Counts the chunks that reach ws's own Receiver.write (the prototype's, which the small-frame path falls back
  // to): a prototype of this Receiver alone, between it and ws's.
  const counted = function (this: unknown, chunk: Buffer) {
    counter.viaWs++;
    return parse.call(this, chunk);
  };
  Object.setPrototypeOf(rx, Object.create(own, { write: { value: counted, writable: true } }));
  if (small) expect(receiveSmallFrames(server)).toBe(true);
  const rxState = rx as { _state: number; _fragmented: number };
  return { client, server, seen, counter, rxState, fromServer: () => Buffer.concat(fromServer).toString('hex') };
}

type RawPair = Awaited<ReturnType<typeof rawPair>>;
/** Bytes to write, the number of events the server has seen once they are handled, and what else shows it. */
type Step = { bytes: Buffer; until: number; also?: (p: RawPair) => boolean };

/**
 * Writes each step's bytes as its own TCP write and waits until the server has handled them, so that no two
 * steps reach the server as one chunk.
 */
async function play(small: boolean, steps: Step[]) {
  const p = await rawPair(small);
  for (const [i, step] of steps.entries()) {
    p.client.write(step.bytes);
    await waitFor(
      `step ${i}: ${step.until} events at the server`,
      () => p.seen.length >= step.until && (step.also?.(p) ?? true),
    );
  }
  return p;
}

/** ws's Receiver has read part of a frame (its state is other than between frames). */
const midFrame = (p: RawPair) => p.rxState._state !== 0;
const inFragment = (p: RawPair) => p.rxState._fragmented !== 0;

describe('small device frames received', () => {
  it('are emitted as the messages ws emits, without ws parsing them, one frame per chunk up to 125 bytes', async () => {
    const sizes = [0, 1, 3, 4, 5, 8, 9, 64, SMALL_FRAME_MAX];
    const steps = sizes.map((n, i) => ({ bytes: clientFrame(randomBytes(n)), until: i + 1 }));
    const fast = await play(true, steps);
    const ref = await play(false, steps);
    expect(fast.seen).toEqual(ref.seen);
    expect(fast.seen.every((m) => 'isBinary' in m && m.isBinary)).toBe(true);
    expect(fast.counter.viaWs).toBe(0);
    expect(ref.counter.viaWs).toBe(sizes.length);
  });

  it('leave joined, split, larger, text and control frames to ws, in order with the small ones', async () => {
    const a = clientFrame(Buffer.from('aa', 'hex'));
    const b = clientFrame(Buffer.from('bbbb', 'hex'));
    const big = clientFrame(Buffer.alloc(SMALL_FRAME_MAX + 1, 7));
    const steps: Step[] = [
      { bytes: a, until: 1 },
      { bytes: Buffer.concat([a, b]), until: 3 }, // two frames in one chunk
      { bytes: b.subarray(0, 3), until: 3, also: midFrame }, // a frame in two chunks
      { bytes: b.subarray(3), until: 4 },
      { bytes: big, until: 5 }, // a 16-bit length
      { bytes: clientFrame(Buffer.from('hi'), { opcode: 0x1 }), until: 6 }, // text
      {
        bytes: clientFrame(Buffer.from('p'), { opcode: 0x9 }),
        until: 6,
        also: (p) => p.fromServer().endsWith('8a0170'),
      }, // a Ping: a Pong, no message
      { bytes: clientFrame(Buffer.from('c0', 'hex'), { fin: false }), until: 6, also: inFragment }, // a fragment...
      { bytes: clientFrame(Buffer.from('c1', 'hex'), { opcode: 0x0 }), until: 7 }, // ...and its end
      { bytes: a, until: 8 },
    ];
    const fast = await play(true, steps);
    const ref = await play(false, steps);
    expect(fast.seen).toEqual(ref.seen);
    expect(fast.seen.map((m) => ('message' in m ? m.message : null))).toEqual([
      'aa',
      'aa',
      'bbbb',
      'bbbb',
      '07'.repeat(SMALL_FRAME_MAX + 1),
      Buffer.from('hi').toString('hex'),
      'c0c1',
      'aa',
    ]);
    // The first small frame, and the last (after the fragmented message ended), skipped ws's parsing.
    expect(fast.counter.viaWs).toBe(ref.counter.viaWs - 2);
  });

  for (const [name, bad] of [
    ['an unmasked frame', clientFrame(Buffer.from('01', 'hex'), { masked: false })],
    ['a frame with RSV1 and no extension', clientFrame(Buffer.from('01', 'hex'), { rsv: 0x40 })],
    ['a small binary frame inside a fragmented message', clientFrame(Buffer.from('01', 'hex'))],
  ] as const) {
    it(`end the connection as ws does on ${name}`, async () => {
      const fragmented = name.includes('fragmented');
      const steps: Step[] = [
        { bytes: clientFrame(Buffer.from('aa', 'hex')), until: 1 },
        ...(fragmented
          ? [{ bytes: clientFrame(Buffer.from('f0', 'hex'), { fin: false }), until: 1, also: inFragment }]
          : []),
        { bytes: bad, until: 2 },
      ];
      const fast = await play(true, steps);
      const ref = await play(false, steps);
      expect(fast.seen).toEqual(ref.seen);
      // ws answers a protocol error with Close 1002 and drops the connection (so its own close event says 1006).
      for (const p of [fast, ref]) expect(p.fromServer()).toContain('880203ea');
    });
  }

  it('emit nothing after a Close frame, as ws does', async () => {
    const steps: Step[] = [
      { bytes: clientFrame(Buffer.from('aa', 'hex')), until: 1 },
      {
        bytes: clientFrame(Buffer.from([0x03, 0xe8]), { opcode: 0x8 }),
        until: 1,
        also: (p) => p.fromServer().includes('880203e8'),
      },
      { bytes: clientFrame(Buffer.from('bb', 'hex')), until: 1 },
    ];
    const fast = await play(true, steps);
    const ref = await play(false, steps);
    for (const p of [fast, ref]) {
      p.client.end();
      await waitFor('the server socket closed', () => p.seen.length === 2);
    }
    expect(fast.seen).toEqual(ref.seen);
    expect(fast.seen).toEqual([{ message: 'aa', isBinary: true }, { close: 1000 }]);
  });

  it('end every random byte stream as ws alone does (seeded: frames valid and not, joined and split)', async () => {
    let messages = 0;
    let cutShort = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const bytes = randomStream(seed);
      const runs: Seen[][] = [];
      const fromServer: string[] = [];
      for (const small of [true, false]) {
        const p = await rawPair(small);
        for (const chunk of bytes) p.client.write(chunk);
        p.client.end();
        await waitFor(`seed ${seed}: the server socket closed`, () => p.seen.some((e) => 'close' in e));
        runs.push(p.seen);
        fromServer.push(p.fromServer());
      }
      expect(runs[0], `seed ${seed}`).toEqual(runs[1]);
      messages += runs[1]!.length - 1;
      if (fromServer[1]!.includes('880203ea')) cutShort++; // ws's Close 1002
    }
    // Not vacuous: many messages got through, and some streams met a frame ws refuses, some did not.
    expect(messages).toBeGreaterThan(100);
    expect(cutShort).toBeGreaterThan(0);
    expect(cutShort).toBeLessThan(12);
  });
});

/** A deterministic PRNG (mulberry32), so a failing seed can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * The TCP writes of a random client: mostly small binary frames, with larger, text, Ping and fragmented
 * messages between them, and in half the streams one frame ws refuses (unmasked, RSV1, an unknown opcode, a
 * stray continuation); frames written alone, two in one write, or one split over two writes.
 */
function randomStream(seed: number): Buffer[] {
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const bytesOf = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const frames: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    const r = rand();
    if (r < 0.6) frames.push(clientFrame(bytesOf(int(SMALL_FRAME_MAX + 1))));
    else if (r < 0.7) frames.push(clientFrame(bytesOf(SMALL_FRAME_MAX + 1 + int(200))));
    else if (r < 0.8) frames.push(clientFrame(Buffer.from('x'.repeat(int(20))), { opcode: 0x1 }));
    else if (r < 0.9) frames.push(clientFrame(bytesOf(int(10)), { opcode: 0x9 }));
    else {
      frames.push(clientFrame(bytesOf(int(30)), { fin: false }));
      frames.push(clientFrame(bytesOf(int(30)), { opcode: 0x0 }));
    }
  }
  // Half the streams meet one frame ws refuses, somewhere in their second half.
  if (rand() < 0.5) {
    const refused = [
      clientFrame(bytesOf(1 + int(10)), { masked: false }),
      clientFrame(bytesOf(1 + int(10)), { rsv: 0x40 }),
      clientFrame(bytesOf(1 + int(10)), { opcode: 0x3 }),
      clientFrame(bytesOf(1 + int(10)), { opcode: 0x0 }), // a continuation with no message begun
    ][int(4)]!;
    frames.splice(frames.length / 2 + int(frames.length / 2), 0, refused);
  }
  const writes: Buffer[] = [];
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i]!;
    const r = rand();
    if (r < 0.15 && i + 1 < frames.length) writes.push(Buffer.concat([f, frames[++i]!]));
    else if (r < 0.3 && f.length > 1) {
      const at = 1 + int(f.length - 1);
      writes.push(f.subarray(0, at), f.subarray(at));
    } else writes.push(f);
  }
  return writes;
}
