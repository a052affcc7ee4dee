export { liveChannelPlugin, commandSource, healthSource, offersLiveSubprotocol, originAllowed } from './plugin.js';
export type { LivePluginOptions, LiveSources, CommandQueueLike, DurabilityLike } from './plugin.js';
export { LiveHub } from './live-hub.js';
export type { LiveCommandSource, LiveHealthBase, EventsOf } from './live-hub.js';
export { DEFAULT_LIVE_LIMITS, LIVE_PATH, LIVE_SUBPROTOCOL } from './protocol.js';
export type { LiveLimits, StreamName } from './protocol.js';
