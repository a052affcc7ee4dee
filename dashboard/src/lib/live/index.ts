/**
 * The app's one live connection (docs/live.md). Components never open sockets: they read `connection`
 * (reactive, via createSubscriber: the socket is held open while something shows it) and state modules
 * subscribe through `live`.
 */
import { createSubscriber } from 'svelte/reactivity';
import { LiveClient, type LiveStatus } from './client.js';

function liveUrl(): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/v1/live`;
}

let unauthorized: () => void = () => {};
/** The session module says what to do when the hub no longer accepts the session. */
export function onLiveUnauthorized(fn: () => void): void {
  unauthorized = fn;
}

let connectFailures: () => void = () => {};
/** What to do when connecting keeps failing before hello (the app asks the HTTP API whether the session holds). */
export function onLiveConnectFailures(fn: () => void): void {
  connectFailures = fn;
}

export const live = new LiveClient({
  url: liveUrl,
  onUnauthorized: () => unauthorized(),
  onConnectFailures: () => connectFailures(),
});

if (typeof window !== 'undefined') {
  window.addEventListener('online', () => live.networkOnline());
  window.addEventListener('offline', () => live.networkOffline());
}

/** Reactive view of the connection's status; reading it (in a component or effect) keeps the socket open. */
class ConnectionView {
  #subscribe = createSubscriber((update) => {
    const off = live.onStatus(() => update());
    const release = live.retain();
    return () => {
      off();
      release();
    };
  });

  get status(): LiveStatus {
    this.#subscribe();
    return live.status;
  }
}

export const connection = new ConnectionView();
