/**
 * The WebSocket class the simulator hands the SDK: `ws`'s client with hooks for network faults. The SDK
 * constructs it as `new WebSocket(url, 'tendril.v1', wsOptions)`; each device passes its own wsOptions with
 * a SOCKET_OWNER entry, so the socket can tell its device that it exists (for drops and reconnect storms)
 * and learn the latency to add.
 */
import WebSocket from 'ws';
import { realTimers, type Timers } from './scheduler.js';

export const SOCKET_OWNER = Symbol('tendril.simulator.socketOwner');

export interface SocketOwner {
  /** One-way delay added to every frame in each direction, ms. */
  readonly latencyMs: number;
  /** Timers for the added delay (real ones in a run; the fleet passes them in). */
  readonly latencyTimers?: Timers;
  attach(socket: SimSocket): void;
}

export class SimSocket extends WebSocket {
  private readonly latencyMs: number;
  private readonly timers: Timers;

  constructor(
    url: string,
    protocol?: string | string[],
    options?: WebSocket.ClientOptions & { [SOCKET_OWNER]?: SocketOwner },
  ) {
    super(url, protocol, options);
    const owner = options?.[SOCKET_OWNER];
    this.latencyMs = owner?.latencyMs ?? 0;
    this.timers = owner?.latencyTimers ?? realTimers;
    owner?.attach(this);
  }

  /** Cuts the connection without a close handshake, like a network failure (the SDK sees 1006). */
  cut(): void {
    if (
      this.readyState === WebSocket.CONNECTING ||
      this.readyState === WebSocket.OPEN ||
      this.readyState === WebSocket.CLOSING
    ) {
      this.terminate();
    }
  }

  // The SDK calls send(bytes) only; the override keeps ws's overloads by passing the rest through untyped.
  override send(data: Parameters<WebSocket['send']>[0], ...rest: unknown[]): void {
    const sendNow = (): void => (super.send as (...a: unknown[]) => void).call(this, data, ...rest);
    if (this.latencyMs <= 0) return sendNow();
    // Same delay for every frame keeps their order (Node runs equal-duration timers first in, first out).
    this.timers.setTimeout(() => {
      if (this.readyState === WebSocket.OPEN) sendNow();
    }, this.latencyMs);
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    // Incoming frames, and the close that follows them, arrive latencyMs late.
    if (this.latencyMs > 0 && (event === 'message' || event === 'close')) {
      this.timers.setTimeout(() => super.emit(event, ...args), this.latencyMs);
      return true;
    }
    return super.emit(event, ...args);
  }
}
