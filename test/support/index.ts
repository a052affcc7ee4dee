/** Test harness: real servers on 127.0.0.1 (InfluxDB, Mosquitto, Chromium, TLS material) and waiting helpers. */
export { getFreePort, getFreePorts } from './free-port.js';
export { waitFor, withTimeout, once, WaitTimeoutError, type WaitOptions, type OnceOptions } from './wait-for.js';
export {
  ServerProcess,
  startServerProcess,
  makeTempDir,
  pidAlive,
  requireExecutable,
  type ServerProcessOptions,
  type ExecutableSpec,
} from './server-process.js';
export { startInfluxDB, type InfluxDBServer, type InfluxDBOptions, type InfluxQLResult } from './influxdb.js';
export { startMosquitto, type MosquittoServer, type MosquittoOptions } from './mosquitto.js';
export { launchChromium, CHROMIUM_FLAGS, type ChromiumInstance, type ChromiumOptions } from './chromium.js';
export { makeTestCA, type TestCA } from './tls.js';
export { bundleForProcess, WORKSPACE_ALIASES } from './hub-bundle.js';
export {
  startHubProcess,
  hubApi,
  ensureDashboardBuilt,
  type HubProcess,
  type HubProcessOptions,
} from './hub-process.js';
