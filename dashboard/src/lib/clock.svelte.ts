/** A shared "now" that moves once a second while something shows it (durations like "offline 3 min"). */
import { createSubscriber } from 'svelte/reactivity';

class Clock {
  #now = $state(Date.now());
  #subscribe = createSubscriber(() => {
    const t = setInterval(() => {
      this.#now = Date.now();
    }, 1000);
    this.#now = Date.now();
    return () => clearInterval(t);
  });

  get now(): number {
    this.#subscribe();
    return this.#now;
  }
}

export const clock = new Clock();
