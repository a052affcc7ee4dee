/** The app's shared state, wired to the real hub (tests build the state classes with fakes instead). */
import { api, setUnauthorizedHandler } from './api.js';
import { frames } from './frame.js';
import { live, onLiveConnectFailures, onLiveUnauthorized } from './live/index.js';
import { CommandsState } from './state/commands.svelte.js';
import { DeviceState } from './state/device.svelte.js';
import { FleetState } from './state/fleet.svelte.js';
import { HealthState } from './state/health.svelte.js';
import { SessionState } from './state/session.svelte.js';

export const session = new SessionState(api);

const expire = (): void => {
  session.expired();
  live.stop();
};
setUnauthorizedHandler(expire);
onLiveUnauthorized(expire);
// An upgrade refused for an expired session looks like any failed connection to the page: /me tells (a 401
// there ends the session through the API's handler).
onLiveConnectFailures(() => {
  if (session.status === 'authenticated') api.me().catch(() => {});
});

export const fleet = new FleetState({
  live,
  loadDevices: async () => (await api.devices()).devices,
  frames,
});

export const hubHealth = new HealthState({ live, frames });

export function deviceState(id: string): DeviceState {
  return new DeviceState(id, { live, api, frames });
}

export function commandsState(id: string): CommandsState {
  return new CommandsState(id, { live, api, frames });
}

export { live };
