/** Public entry of @tendril/simulator: the fleet, its models and the pieces scripts/start.mjs and benches use. */
export {
  Fleet,
  SimulatedDevice,
  type FleetOptions,
  type FleetDeviceSpec,
  type FleetSnapshot,
  type FaultCounters,
} from './fleet.js';
export { MODELS, modelByName, parseModelList, envSensor, powerMeter, gpsTracker, doorMotion } from './models/index.js';
export type { DeviceModel, MetricSpec, ModelInstance, Sample, SampleValue, SwitchName } from './models/index.js';
export { Scheduler, realTimers, type Timers, type ScheduledTask, type SchedulerOptions } from './scheduler.js';
export {
  HubApi,
  HubApiError,
  hubEndpoints,
  type ProvisionedDevice,
  type ProvisionRequest,
  type HubEndpoints,
} from './hub-api.js';
export {
  planFleet,
  planMalformed,
  provisionRequest,
  readDevicesFile,
  writeDevicesFile,
  type PlannedDevice,
  type DevicesFile,
} from './plan.js';
export {
  parseOptions,
  HELP,
  LOAD_PRESET,
  NO_FAULTS,
  UsageError,
  type SimulatorOptions,
  type FaultOptions,
  type BurstOptions,
} from './options.js';
export { runSimulation, type RunIO } from './run.js';
export { buildSummary, formatSummary, formatProgress, type SimulatorSummary } from './report.js';
export { FleetCounters, ReadingLedger, CpuMeter } from './accounting.js';
export { MalformedSender, MALFORMED_KINDS, type MalformedCounters, type MalformedDeviceSpec } from './malformed.js';
export { SimSocket } from './sim-socket.js';
