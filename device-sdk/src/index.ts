export * from './codec/index.js';
export { TendrilDevice, CommandRejected, TendrilError, SDK_VERSION } from './client.js';
export type {
  CommandContext,
  CommandHandler,
  DeviceStats,
  DisconnectInfo,
  MetricOption,
  RejectInfo,
  TendrilDeviceEvents,
  TendrilDeviceOptions,
  Timers,
  WebSocketConstructor,
  WebSocketLike,
} from './client.js';
