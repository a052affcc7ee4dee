/**
 * FAKE hub side for the command tests: the real hub has no command API yet, so nothing can send a COMMAND
 * frame to a device through it. This `ws` server on 127.0.0.1 speaks just enough tendril.v1 with the real
 * codec: WELCOME after HELLO, the delta context, a cumulative ACK for every reading, COMMAND frames on
 * request, and it records COMMAND_RESULTs and readings per device.
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import {
  decodeDeviceFrame,
  encodeHubFrame,
  newDeltaContext,
  SUBPROTOCOL,
  type CommandResultFrame,
  type DeltaContext,
  type HelloFrame,
  type Reading,
} from '@tendril/device-sdk';
import { WebSocket, WebSocketServer } from 'ws';

export interface RecordedReading extends Reading {
  /** Metric name -> value, decoded with the HELLO's declarations. */
  named: Record<string, number | boolean | string>;
  receivedAt: number;
}

export class FakeCommandHub {
  readonly events = new EventEmitter();
  readonly hellos: HelloFrame[] = [];
  readonly readings = new Map<string, RecordedReading[]>();
  readonly results = new Map<number, CommandResultFrame[]>();
  readonly closes: Array<{ deviceId: string; code: number }> = [];
  private readonly sockets = new Map<string, WebSocket>();
  private nextCommandId = 1;

  private constructor(private readonly wss: WebSocketServer) {
    wss.on('connection', (ws) => this.accept(ws));
  }

  static async start(): Promise<FakeCommandHub> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, handleProtocols: (p) => (p.has(SUBPROTOCOL) ? SUBPROTOCOL : false) });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    return new FakeCommandHub(wss);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/v1/device`;
  }

  private accept(ws: WebSocket): void {
    let ctx: DeltaContext = newDeltaContext();
    let hello: HelloFrame | null = null;
    ws.on('message', (data: Buffer) => {
      const frame = decodeDeviceFrame(new Uint8Array(data), ctx);
      if (frame.type === 'hello') {
        hello = frame;
        this.hellos.push(frame);
        this.sockets.set(frame.deviceId, ws);
        ctx = newDeltaContext(frame.lastSeq, frame.clock);
        ws.send(encodeHubFrame({ type: 'welcome', serverTime: Date.now(), ackedSeq: frame.lastSeq, heartbeatMs: 10_000, maxFrameBytes: 16_384, maxBatch: 256, maxRate: 0 }));
        this.events.emit('hello', frame);
        return;
      }
      if (!hello) return;
      const h = hello;
      if (frame.type === 'reading' || frame.type === 'batch') {
        const list = frame.type === 'reading' ? [frame] : frame.readings;
        const mine = this.readings.get(h.deviceId) ?? [];
        this.readings.set(h.deviceId, mine);
        for (const r of list) {
          const named: RecordedReading['named'] = {};
          for (const v of r.values) named[h.metrics.find((m) => m.alias === v.alias)?.name ?? `#${v.alias}`] = v.value;
          mine.push({ ...r, named, receivedAt: Date.now() });
          this.events.emit('reading', h.deviceId, mine.at(-1));
        }
        ws.send(encodeHubFrame({ type: 'ack', seq: list.at(-1)!.seq }));
      } else if (frame.type === 'commandResult') {
        const list = this.results.get(frame.commandId) ?? [];
        list.push(frame);
        this.results.set(frame.commandId, list);
        this.events.emit('result', frame);
      }
    });
    ws.on('close', (code: number) => {
      if (hello) {
        this.closes.push({ deviceId: hello.deviceId, code });
        if (this.sockets.get(hello.deviceId) === ws) this.sockets.delete(hello.deviceId);
      }
    });
  }

  isConnected(deviceId: string): boolean {
    return this.sockets.get(deviceId)?.readyState === WebSocket.OPEN;
  }

  /** Sends COMMAND and resolves with the device's final COMMAND_RESULT (not `delivered`). */
  command(deviceId: string, name: string, args?: unknown, timeoutMs = 5000): Promise<CommandResultFrame> {
    const ws = this.sockets.get(deviceId);
    if (!ws) return Promise.reject(new Error(`${deviceId} is not connected to the fake hub`));
    const commandId = this.nextCommandId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off('result', onResult);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for the final result of command ${name} (${commandId}) from ${deviceId}`));
      }, timeoutMs);
      const onResult = (r: CommandResultFrame) => {
        if (r.commandId !== commandId || r.status === 'delivered') return;
        clearTimeout(timer);
        this.events.off('result', onResult);
        resolve(r);
      };
      this.events.on('result', onResult);
      ws.send(encodeHubFrame({ type: 'command', commandId, name, args: args === undefined ? '' : JSON.stringify(args), timeoutMs: 10_000 }));
    });
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
