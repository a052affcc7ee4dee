/**
 * The --malformed fault: devices that speak tendril.v1 badly on purpose, to exercise the hub's error paths.
 * This is the one place the simulator bypasses the SDK (which cannot produce a bad frame): a raw `ws`
 * connection and the codec. Each device authenticates properly (HELLO with its real token, WELCOME), sends
 * one valid READING, then one malformed frame, and expects ERROR with the matching code and a close with
 * 1002 (protocol §9.1, §10). Then it reconnects after a pause and tries the next kind of damage.
 */
import {
  decodeHubFrame,
  encodeDeviceFrame,
  FrameType,
  newDeltaContext,
  SUBPROTOCOL,
  type DeltaContext,
  type HubFrame,
} from '@tendril/device-sdk';
import WebSocket from 'ws';
import type { ScheduledTask, Scheduler } from './scheduler.js';

export interface MalformedKind {
  name: string;
  /** Registry code the hub's ERROR should carry. */
  expectedCode: string;
  /** The frame, built on the connection's delta context after one valid reading. */
  build(ctx: DeltaContext, now: number): Uint8Array;
}

/** Each kind is a frame the decoder must refuse (§9.1); all of them close with 1002 (§10). */
export const MALFORMED_KINDS: readonly MalformedKind[] = [
  { name: 'unknown frame type', expectedCode: 'UNKNOWN_FRAME_TYPE', build: () => Uint8Array.of(0x3f) },
  {
    name: 'truncated reading',
    expectedCode: 'FRAME_TRUNCATED',
    build: (ctx, now) =>
      encodeDeviceFrame(
        { type: 'reading', seq: ctx.prevSeq + 1, ts: now, values: [{ alias: 0, kind: 'f64', value: 21.5 }] },
        { ...ctx },
      ).slice(0, -3),
  },
  {
    name: 'reserved value type',
    // tag = alias 0 * 8 + 6 (reserved, §5.2)
    expectedCode: 'INVALID_VALUE_TYPE',
    build: () => Uint8Array.of(FrameType.READING_UNTIMED, 0x02, 0x06),
  },
  {
    name: 'varint overflow',
    expectedCode: 'VARINT_OVERFLOW',
    build: () => Uint8Array.of(FrameType.READING, ...new Array(9).fill(0xff)),
  },
  { name: 'empty batch', expectedCode: 'BATCH_TOO_LARGE', build: () => Uint8Array.of(FrameType.BATCH, 0x00) },
];

/** A provisioned device that will misbehave: it needs only an identity. */
export interface MalformedDeviceSpec {
  id: string;
  token: string;
}

export interface MalformedCounters {
  devices: number;
  /** Malformed frames sent. */
  framesSent: number;
  /** Connections the hub closed with 1002 after a malformed frame. */
  closed1002: number;
  /** Closes with any other code, by code (HELLO refused, timeouts, ...). */
  closedOther: Record<string, number>;
  /** ERROR codes the hub sent back, by code. */
  errorCodes: Record<string, number>;
  /** ERRORs whose code was not the one the damage calls for. */
  unexpectedCodes: number;
}

export interface MalformedSenderOptions {
  url: string;
  devices: readonly MalformedDeviceSpec[];
  scheduler: Scheduler;
  wsOptions: Record<string, unknown>;
  /** Pause between one device's attempts. Default 2000 ms. */
  everyMs?: number;
}

export class MalformedSender {
  readonly counters: MalformedCounters;
  private readonly sockets = new Set<WebSocket>();
  private readonly tasks = new Set<ScheduledTask>();
  private running = false;
  private attempt = 0;
  private readonly idle: Array<() => void> = [];

  constructor(private readonly options: MalformedSenderOptions) {
    this.counters = {
      devices: options.devices.length,
      framesSent: 0,
      closed1002: 0,
      closedOther: {},
      errorCodes: {},
      unexpectedCodes: 0,
    };
  }

  start(): void {
    this.running = true;
    for (const device of this.options.devices) this.run(device);
  }

  stop(): void {
    this.running = false;
    for (const t of this.tasks) this.options.scheduler.cancel(t);
    this.tasks.clear();
  }

  /** Stops and waits for open sockets to end (terminating any still open after 2 s). */
  async close(): Promise<void> {
    this.stop();
    if (this.sockets.size === 0) return;
    const ended = new Promise<void>((resolve) => this.idle.push(resolve));
    const force = setTimeout(() => {
      for (const s of this.sockets) s.terminate();
    }, 2000);
    await ended;
    clearTimeout(force);
  }

  private run(device: MalformedDeviceSpec): void {
    const kind = MALFORMED_KINDS[this.attempt++ % MALFORMED_KINDS.length]!;
    const c = this.counters;
    const ws = new WebSocket(this.options.url, SUBPROTOCOL, { perMessageDeflate: false, ...this.options.wsOptions });
    this.sockets.add(ws);
    ws.binaryType = 'nodebuffer';
    let ctx: DeltaContext = newDeltaContext();
    let sentMalformed = false;
    ws.on('error', () => {}); // the close event follows and is what counts
    ws.on('open', () => {
      const clock = Date.now();
      ctx = newDeltaContext(0, clock);
      ws.send(
        encodeDeviceFrame(
          {
            type: 'hello',
            deviceId: device.id,
            token: device.token,
            firmware: 'malformed-1',
            sdk: 'simulator-raw',
            epoch: Math.floor(Math.random() * 2 ** 32),
            lastSeq: 0,
            clock,
            dropped: 0,
            metrics: [{ alias: 0, name: 'temperature', kind: 'f64', unit: '°C' }],
          },
          ctx,
        ),
      );
    });
    ws.on('message', (data: Buffer) => {
      let frame: HubFrame;
      try {
        frame = decodeHubFrame(new Uint8Array(data));
      } catch {
        return;
      }
      if (frame.type === 'welcome') {
        ctx = newDeltaContext(frame.ackedSeq, ctx.prevTs);
        const now = Date.now();
        ws.send(
          encodeDeviceFrame(
            { type: 'reading', seq: frame.ackedSeq + 1, ts: now, values: [{ alias: 0, kind: 'f64', value: 20 }] },
            ctx,
          ),
        );
        ws.send(kind.build(ctx, now + 1));
        sentMalformed = true;
        c.framesSent++;
      } else if (frame.type === 'error') {
        c.errorCodes[frame.code] = (c.errorCodes[frame.code] ?? 0) + 1;
        if (sentMalformed && frame.code !== kind.expectedCode) c.unexpectedCodes++;
      }
    });
    ws.on('close', (code: number) => {
      this.sockets.delete(ws);
      if (sentMalformed && code === 1002) c.closed1002++;
      else c.closedOther[String(code)] = (c.closedOther[String(code)] ?? 0) + 1;
      if (this.running) {
        const task = this.options.scheduler.after(this.options.everyMs ?? 2000, () => {
          this.tasks.delete(task);
          if (this.running) this.run(device);
        });
        this.tasks.add(task);
      }
      if (this.sockets.size === 0) for (const resolve of this.idle.splice(0)) resolve();
    });
  }
}
