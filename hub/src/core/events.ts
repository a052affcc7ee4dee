/**
 * Typed events: names and payloads checked at compile time. A listener that throws is reported through
 * onListenerError and the other listeners still run: a failing dashboard fan-out must not take a
 * device connection down with it.
 */
type Listener<T> = (payload: T) => void;

export class TypedEvents<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<string, Array<Listener<never>>>();
  /** Reports a listener that threw; without it the error propagates to the emitter. */
  onListenerError: ((err: unknown, event: string) => void) | null = null;

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events & string>(event: K, listener: Listener<Events[K]>): () => void {
    // Copy on write: an emit in progress keeps iterating the array it started with.
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener as Listener<never>]);
    return () => {
      const list = this.listeners.get(event);
      if (!list) return;
      const next = list.filter((l) => l !== listener);
      if (next.length > 0) this.listeners.set(event, next);
      else this.listeners.delete(event);
    };
  }

  emit<K extends keyof Events & string>(event: K, payload: Events[K]): void {
    const list = this.listeners.get(event) as Array<Listener<Events[K]>> | undefined;
    if (!list) return;
    for (const listener of list) {
      try {
        listener(payload);
      } catch (err) {
        if (!this.onListenerError) throw err;
        this.onListenerError(err, event);
      }
    }
  }

  /** True when someone listens: lets the hot path skip building payloads nobody reads. */
  has<K extends keyof Events & string>(event: K): boolean {
    return this.listeners.has(event);
  }
}
