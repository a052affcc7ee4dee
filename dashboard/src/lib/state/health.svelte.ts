/**
 * The hub's health from the live `health` stream (docs/live.md §5.3.2): whether the store is up, the spool's
 * backlog, devices connected, the MQTT broker reachable and not dropping messages. Shown in the header only when something is wrong, so "live" never hides a hub
 * that is spooling because its store is down.
 */
import { createSubscriber } from 'svelte/reactivity';
import type { Health, LiveEvent, MqttHealth, SubscribeSpec } from '../live/protocol.js';

export interface HealthDeps {
  live: { subscribe(spec: SubscribeSpec, handler: { onEvent(e: LiveEvent, offset: number): void }): { close(): void } };
  frames: { schedule(fn: () => void): void };
}

/** What is wrong, in words, or null when nothing is. */
export function healthProblem(h: Health | null): string | null {
  if (!h) return null;
  if (h.shuttingDown) return 'The hub is shutting down.';
  if (h.store.state === 'down') {
    const spooled = h.spool ? `; ${h.spool.depthReadings} readings kept in the spool until it is back` : '';
    return `The ${h.store.kind} store is down${spooled}.`;
  }
  if (h.spool && !h.spool.accepting) return 'The spool is full: devices are asked to hold their readings.';
  const mqtt = mqttProblem(h.mqtt);
  if (mqtt) return mqtt;
  if (h.spool && h.spool.oldestUndrainedAgeMs > 60_000) {
    return `Storage is behind: the oldest reading not yet stored is ${Math.round(h.spool.oldestUndrainedAgeMs / 1000)} s old.`;
  }
  return null;
}

/** The MQTT bridge's problem in words: the broker unreachable, or dropping messages (docs/mqtt.md §8). */
export function mqttProblem(m: MqttHealth | undefined): string | null {
  if (!m || m.broker === 'closed') return null;
  if (m.broker !== 'up') {
    const why = m.lastError ? ` (${m.lastError})` : '';
    const tries = m.reconnectAttempts > 0 ? `, ${m.reconnectAttempts} reconnect attempts so far` : '';
    return `The MQTT broker ${m.url} is unreachable${why}${tries}: MQTT devices show as unknown until it is back.`;
  }
  if (m.brokerDroppedSinceStart > 0) {
    return `The MQTT broker ${m.url} dropped ${m.brokerDroppedSinceStart} messages since the hub connected: its queues are full (raise max_queued_messages or slow the publishers).`;
  }
  return null;
}

export class HealthState {
  #health: Health | null = $state.raw(null);
  #pending: Health | null = null;
  #subscribe: () => void;

  constructor(private readonly deps: HealthDeps) {
    this.#subscribe = createSubscriber(() => {
      const sub = this.deps.live.subscribe({ stream: 'health' }, { onEvent: (e) => this.receive(e) });
      return () => sub.close();
    });
  }

  get health(): Health | null {
    this.#subscribe();
    return this.#health;
  }

  problem = $derived(healthProblem(this.health));

  receive(e: LiveEvent): void {
    if (e.kind === 'health') this.#pending = e.health;
    else if (e.kind === 'snapshot' && e.health) this.#pending = e.health;
    else return;
    this.deps.frames.schedule(this.flush);
  }

  flush = (): void => {
    if (this.#pending) this.#health = this.#pending;
    this.#pending = null;
  };
}
