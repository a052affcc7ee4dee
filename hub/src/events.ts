/** A typed facade over Node's EventEmitter: event names and payloads checked at compile time. */
import { EventEmitter } from 'node:events';

export class TypedEvents<Events extends Record<string, unknown>> {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Several plugins (live fan-out, command queue, MQTT bridge) listen to the same hub events.
    this.emitter.setMaxListeners(64);
  }

  on<K extends keyof Events & string>(event: K, listener: (payload: Events[K]) => void): () => void {
    this.emitter.on(event, listener as (payload: unknown) => void);
    return () => this.emitter.off(event, listener as (payload: unknown) => void);
  }

  emit<K extends keyof Events & string>(event: K, payload: Events[K]): void {
    this.emitter.emit(event, payload);
  }

  /** True when someone listens: lets the hot path skip building payloads nobody reads. */
  has<K extends keyof Events & string>(event: K): boolean {
    return this.emitter.listenerCount(event) > 0;
  }
}
