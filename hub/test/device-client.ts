/**
 * A bare test device: `ws` plus the real codec, no SDK. Collects hub frames and lets tests wait for the
 * next one (with a timeout that names what was awaited).
 */
import WebSocket, { type ClientOptions } from 'ws';
import {
  decodeHubFrame,
  encodeDeviceFrame,
  newDeltaContext,
  SUBPROTOCOL,
  type DeltaContext,
  type DeviceFrame,
  type HelloFrame,
  type HubFrame,
  type MetricDeclaration,
  type WelcomeFrame,
} from '@tendril/device-sdk';

export const ENV_METRICS: MetricDeclaration[] = [
  { alias: 0, name: 'temperature', kind: 'f32', unit: '°C', min: -40, max: 85 },
  { alias: 1, name: 'humidity', kind: 'f64', unit: '%', min: 0, max: 100 },
  { alias: 2, name: 'count', kind: 'int', unit: '' },
  { alias: 3, name: 'door', kind: 'bool', unit: '' },
  { alias: 4, name: 'label', kind: 'string', unit: '' },
];

export interface Closed {
  code: number;
  reason: string;
}

export class TestDevice {
  readonly frames: HubFrame[] = [];
  ctx: DeltaContext = newDeltaContext();
  readonly closed: Promise<Closed>;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) throw new Error(`hub sent a text message: ${data.toString()}`);
      this.frames.push(decodeHubFrame(data));
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.wake();
      });
    });
    ws.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static connect(url: string, options: ClientOptions & { protocols?: string[] } = {}): Promise<TestDevice> {
    const { protocols = [SUBPROTOCOL], ...rest } = options;
    const ws = new WebSocket(url, protocols, rest);
    const device = new TestDevice(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(device));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    });
  }

  send(frame: DeviceFrame): void {
    this.ws.send(encodeDeviceFrame(frame, this.ctx));
  }

  sendRaw(bytes: Uint8Array | string): void {
    this.ws.send(bytes);
  }

  /** Removes and returns the first collected frame matching `match`, waiting for it if needed. */
  async next<T extends HubFrame['type']>(
    type: T,
    what = type as string,
    timeoutMs = 5000,
  ): Promise<Extract<HubFrame, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex((f) => f.type === type);
      if (i >= 0) return this.frames.splice(i, 1)[0] as Extract<HubFrame, { type: T }>;
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for an ACK covering `seq` (ACKs are cumulative). */
  async ackFor(seq: number, timeoutMs = 5000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ack = await this.next('ack', `ACK >= ${seq}`, Math.max(1, deadline - Date.now()));
      if (ack.seq >= seq) return ack.seq;
    }
  }

  /** Sends HELLO and waits for WELCOME; starts the delta context as §5.1.2 says. */
  async hello(fields: Partial<HelloFrame> & { deviceId: string; token: string }): Promise<WelcomeFrame> {
    const hello: HelloFrame = {
      type: 'hello',
      firmware: 'fw-1',
      sdk: 'test/0',
      epoch: 7,
      lastSeq: 0,
      clock: Date.now(),
      dropped: 0,
      metrics: ENV_METRICS,
      ...fields,
    };
    this.send(hello);
    const welcome = await this.next('welcome', 'WELCOME');
    this.ctx = newDeltaContext(welcome.ackedSeq, hello.clock);
    return welcome;
  }

  async closedWithin(timeoutMs = 5000): Promise<Closed> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.closed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`timed out after ${timeoutMs} ms waiting for the hub to close the connection`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.ws.close(1000);
  }
}
